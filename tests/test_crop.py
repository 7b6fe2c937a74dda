"""Two-stage models: the crop contract (effbench.crop), its losses, and tiny_hand_crop's mapping back to the frame."""

from __future__ import annotations

import pytest
import torch

from effbench.crop import crop_frames, crop_mask, to_crop, to_frame
from effbench.registry import create_model
from effbench.train.losses import heatmap_kl, locator_loss, task_losses


def _frame(h: int = 12, w: int = 16) -> torch.Tensor:
    # Every pixel a distinct value: 100 * row + column.
    return (100 * torch.arange(h)[:, None] + torch.arange(w)[None, :]).float()[None, None]


def _crop(scale: float, ox: float, oy: float, size: int, n: int = 1) -> torch.Tensor:
    return torch.tensor([[scale, ox, oy, float(size)]] * n)


def test_crop_pixels_map_to_the_frame_and_back():
    crop = torch.tensor([[0.5, 10.0, 20.0, 64.0], [2.0, -3.0, 4.0, 64.0]])
    points = torch.tensor([[[0.0, 0.0], [7.0, 3.0]], [[1.0, 1.0], [10.0, 0.5]]])
    frame = to_frame(points, crop)
    # Crop pixel (j, i) is frame pixel (j * scale + ox, i * scale + oy).
    torch.testing.assert_close(frame[0, 1], torch.tensor([13.5, 21.5]))
    torch.testing.assert_close(frame[1, 1], torch.tensor([17.0, 5.0]))
    torch.testing.assert_close(to_crop(frame, crop), points)


def test_a_unit_scale_crop_is_a_slice_and_outside_reads_as_a_hole():
    frame = _frame()
    out = crop_frames(frame, _crop(1.0, 3.0, 2.0, 5), 5)
    torch.testing.assert_close(out, frame[..., 2:7, 3:8])
    # Half of this crop lies left of the frame: those pixels are holes (0 mm).
    out = crop_frames(frame, _crop(1.0, -2.0, 0.0, 4), 4)
    assert (out[..., :2] == 0).all()
    torch.testing.assert_close(out[..., 2:], frame[..., :4, :2])


def test_a_scale_two_crop_takes_every_other_pixel():
    frame = _frame()
    out = crop_frames(frame, _crop(2.0, 0.0, 0.0, 6), 6)
    torch.testing.assert_close(out, frame[..., 0:12:2, 0:12:2])


def test_the_crop_takes_the_pixels_grid_sample_would():
    # The reference: torch's grid_sample, nearest, zeros outside, over random crops reaching past every border.
    import torch.nn.functional as F

    from effbench.crop import crop_grid

    g = torch.Generator().manual_seed(0)
    frames = 1000 * torch.rand(3, 1, 24, 32, generator=g)
    crop = torch.cat([0.3 + 1.5 * torch.rand(3, 1, generator=g), 60 * torch.rand(3, 2, generator=g) - 20,
                      torch.full((3, 1), 20.0)], 1)
    expected = F.grid_sample(frames, crop_grid(crop, 20, 24, 32), mode="nearest", padding_mode="zeros",
                             align_corners=False)
    assert (expected == 0).any() and (expected != 0).any()
    torch.testing.assert_close(crop_frames(frames, crop, 20), expected)


def test_a_mask_is_cropped_bilinearly_at_the_crops_size():
    mask = torch.zeros(1, 1, 12, 16)
    mask[..., :, 8:] = 1
    # Scale 1 with a half-pixel offset: the crop pixel at x = 7.5 reads half of pixel 7 and half of pixel 8.
    out = crop_mask(mask, _crop(1.0, 5.5, 0.0, 4))
    assert out.shape == (1, 1, 4, 4)
    torch.testing.assert_close(out[0, 0, 1], torch.tensor([0.0, 0.0, 0.5, 1.0]))


def _hand_batch(n: int = 2) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return {
        "depth": torch.full((n, 1, 32, 48), 600.0),
        "keypoints_2d": 8 + 20 * torch.rand(n, 21, 2, generator=g),
        "joints_3d": 300 + 200 * torch.rand(n, 21, 3, generator=g),
        "has_hand": torch.tensor([1] + [0] * (n - 1)),
    }


def test_locator_loss_is_the_centre_and_distance_error_on_frames_with_a_hand():
    batch = _hand_batch()
    centre = batch["keypoints_2d"].mean(1)
    z = batch["joints_3d"][..., 2].mean(1)
    flat = torch.zeros(2, 1, 2, 3)  # a uniform 1/16 map of the 32 x 48 frame
    kl = heatmap_kl(flat, centre[:, None], batch["has_hand"].bool()[:, None], 16, 8.0)
    exact = {"hand_centre": centre.clone(), "hand_z": z.clone(), "centre_logits": flat}
    torch.testing.assert_close(locator_loss(exact, batch), kl)
    # Off by (3, -1) px and 50 mm: + mean(3, 1) px and + 50 / 25; the second frame (no hand) counts for nothing.
    off = dict(exact, hand_centre=centre + torch.tensor([3.0, -1.0]), hand_z=z + 50.0)
    off["hand_centre"][1] += 100.0
    torch.testing.assert_close(locator_loss(off, batch), kl + 2.0 + 2.0)


def test_heatmap_term_reads_labels_in_the_crops_pixels():
    batch = _hand_batch(1)
    batch["has_hand"] = torch.tensor([1])
    crop = _crop(0.5, 6.0, 4.0, 32)
    heatmaps = torch.randn(1, 8, 4, 4)
    out = {"keypoints": torch.zeros(1, 8, 2), "heatmaps": heatmaps, "crop": crop}
    from effbench.train.losses import inside_frame, keypoint_l1, subset_index

    target = batch["keypoints_2d"].index_select(1, subset_index(torch.device("cpu")))
    in_crop = to_crop(target, crop)
    valid = inside_frame(target, 32, 48)
    expected = keypoint_l1(out["keypoints"], target, valid) + heatmap_kl(
        heatmaps, in_crop, valid & inside_frame(in_crop, 32, 32), 8, 4.0)
    got = task_losses(out, batch, aux=False, heatmap_weight=1.0, heatmap_sigma_px=4.0)["keypoints"]
    torch.testing.assert_close(got, expected)


def test_tiny_hand_crop_maps_its_keypoints_back_and_trains_no_gradient_through_the_crop():
    torch.manual_seed(0)
    model = create_model("tiny_hand_crop")
    net = model.deployable()
    depth = 400 + 300 * torch.rand(2, 1, 120, 160)
    net.eval()
    with torch.no_grad():
        out = net(depth)
        loc = net.locator(depth)
        # The crop is the located box: side = focal * 250 mm / distance, centred on the located centre.
        side = 140.0 * 250.0 / loc["hand_z"]
        torch.testing.assert_close(out["crop"][:, 0], side / 120)
        torch.testing.assert_close(to_frame(torch.tensor([[[59.5, 59.5]]]).expand(2, 1, 2), out["crop"])[:, 0],
                                   loc["hand_centre"])
        inner = net.net(net.relative(crop_frames(depth, out["crop"], 120), out["crop"]))
        expected = to_frame(inner["keypoints"], out["crop"])
        expected = torch.stack([expected[..., 0].clamp(0, 159), expected[..., 1].clamp(0, 119)], -1)
        torch.testing.assert_close(out["keypoints"], expected)
    # In training the crop is jittered and detached: the keypoints' loss reaches the second stage only.
    model.train()
    a, b = model(depth)["crop"], model(depth)["crop"]
    assert not torch.equal(a, b)
    out = model(depth)
    out["keypoints"].sum().backward()
    assert all(p.grad is None for p in model.net.locator.parameters())
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.net.net.parameters())


def test_the_keypoint_network_reads_depth_relative_to_the_crops_distance():
    net = create_model("tiny_hand_crop").deployable()
    # A crop whose side is 70 px is 250 mm at 140 * 250 / 70 = 500 mm; the window is +-125 mm.
    crop = torch.tensor([[70 / 120, 0.0, 0.0, 120.0]])
    depth = torch.tensor([500.0, 562.5, 437.5, 700.0, 300.0, 0.0]).view(1, 1, 1, 6)
    expected = torch.tensor([0.0, 0.5, -0.5, 1.0, -1.0, 1.0]).view(1, 1, 1, 6)  # beyond: clamped; a hole: far
    torch.testing.assert_close(net.relative(depth, crop), expected)


@pytest.mark.parametrize("aux", [False, True])
def test_tiny_hand_crop_losses_are_finite_and_reach_the_locator(aux: bool):
    from effbench.data import SyntheticHands

    torch.manual_seed(0)
    data = SyntheticHands("train", 4, 0).tensors()
    data["mask"] = data["mask"].float()
    model = create_model("tiny_hand_crop").train()
    losses = task_losses(model(data["depth"]), data, aux=aux, heatmap_weight=1.0)
    assert set(losses) == ({"keypoints", "seg", "vis", "keypose", "hand"} if aux else {"keypoints"})
    sum(losses.values()).backward()
    assert all(torch.isfinite(v) for v in losses.values())
    assert model.net.locator.head.weight.grad.abs().sum() > 0


class _Maps(torch.nn.Module):
    """Stands in for the locator's head: returns fixed (centre logits, distance logits, correction) maps."""

    def __init__(self, maps: torch.Tensor):
        super().__init__()
        self.maps = maps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.maps.expand(len(x), -1, -1, -1)


def test_the_locator_reads_the_distance_where_its_own_attention_points_not_where_the_centre_is():
    locator = create_model("tiny_hand_crop").net.locator.eval()
    # A 120 x 160 frame at 600 mm with a disc-like occluder at 300 mm over the 8 x 8 block (row 7, column 10),
    # where the centre's logits peak: the hand is behind it, and block (7, 12) shows the hand's surface at 450 mm.
    depth = torch.full((1, 1, 120, 160), 600.0)
    depth[..., 56:64, 80:88] = 300.0
    depth[..., 56:64, 96:104] = 450.0
    maps = torch.zeros(1, 3, 15, 20)
    maps[0, 0, 7, 10] = 50.0  # the centre: block (7, 10), whose pixel centre is (10 * 8 + 3.5, 7 * 8 + 3.5)
    maps[0, 2] = 0.2  # a correction of 0.2 x 100 mm everywhere
    locator.head = _Maps(maps)
    with torch.no_grad():
        out = locator(depth)
    torch.testing.assert_close(out["hand_centre"], torch.tensor([[83.5, 59.5]]))
    # With no distance logits of its own, the distance is read where the centre is: the occluder's 300 mm + 20.
    torch.testing.assert_close(out["hand_z"], torch.tensor([320.0]))
    # The distance's logits move its weights off the occluder onto the hand's block; the centre stays.
    maps[0, 1, 7, 10], maps[0, 1, 7, 12] = -100.0, 100.0
    with torch.no_grad():
        out = locator(depth)
    torch.testing.assert_close(out["hand_centre"], torch.tensor([[83.5, 59.5]]))
    torch.testing.assert_close(out["hand_z"], torch.tensor([470.0]))


def test_a_crop_model_trains_with_the_focal_length_of_its_datas_camera():
    from effbench.train.config import TrainConfig
    from effbench.train.loop import build_model

    frame = torch.full((1, 1, 120, 160), 900.0)
    frame[..., 40:80, 60:100] = 400.0
    crops = {}
    for focal in (140.0, 114.0):
        torch.manual_seed(0)
        net = build_model(TrainConfig(model="tiny_hand_crop", data_config={"focal_px": focal})).deployable().eval()
        assert net.focal_px == focal
        with torch.no_grad():
            crops[focal] = net(frame)["crop"]
    # Same weights and frame, so the same located distance: the crop's side (scale x 120 px) goes with the focal length.
    assert (crops[114.0][0, 0] / crops[140.0][0, 0]).item() == pytest.approx(114.0 / 140.0, rel=1e-5)
    # A wider frame of the same camera (the focal length scales with the width); a model with no crop is as built.
    wide = build_model(TrainConfig(model="tiny_hand_crop", data_config={"height": 240, "width": 320}))
    assert wide.deployable().focal_px == 280.0
    assert not hasattr(build_model(TrainConfig(model="tiny_hand")).deployable(), "focal_px")
