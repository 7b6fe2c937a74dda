"""augment_batch: frame and labels move together."""

import pytest
import torch

from effbench.data import augment_batch
from effbench.data.scene import project

INTR = (140.0, 140.0, 79.5, 59.5)


def _marker_batch(b: int = 6) -> dict[str, torch.Tensor]:
    """Frames with a 3 x 3 patch at 500 mm around joint 0's pixel; joint 1 sits in the top-left corner."""
    g = torch.Generator().manual_seed(0)
    depth = torch.zeros(b, 1, 120, 160)
    kp = torch.zeros(b, 21, 2)
    kp[:, 0] = torch.stack([torch.randint(50, 110, (b,), generator=g), torch.randint(40, 80, (b,), generator=g)], 1)
    kp[:, 1] = torch.tensor([1.0, 1.0])
    kp[:, 2:] = torch.tensor([80.0, 60.0])
    for i in range(b):
        u, v = kp[i, 0].long().tolist()
        depth[i, 0, v - 1 : v + 2, u - 1 : u + 2] = 500.0
    z = torch.full((b, 21), 500.0)
    joints = torch.stack([(kp[..., 0] - 79.5) * z / 140.0, (kp[..., 1] - 59.5) * z / 140.0, z], -1)
    return {
        "depth": depth,
        "mask": (depth > 0).float(),
        "keypoints_2d": kp,
        "joints_3d": joints,
        "visibility": torch.ones(b, 21),
        "intrinsics": torch.tensor(INTR).expand(b, 4),
        "has_hand": torch.ones(b, dtype=torch.bool),
        "keypose": torch.arange(b),
    }


def test_identity_parameters_change_nothing():
    batch = _marker_batch()
    out = augment_batch(batch, torch.Generator().manual_seed(0), rotation_deg=0.0, scale=(1.0, 1.0), translate=0.0,
                        depth_shift_mm=0.0)
    for k in batch:
        assert torch.allclose(out[k].float(), batch[k].float(), atol=1e-4), k


def test_a_moved_point_lands_where_its_pixel_moved():
    batch = _marker_batch()
    out = augment_batch(batch, torch.Generator().manual_seed(3), rotation_deg=40.0, translate=0.1)
    for i in range(len(batch["depth"])):
        ys, xs = (out["mask"][i, 0] > 0).nonzero(as_tuple=True)
        assert len(xs) >= 4  # the patch survives nearest resampling (scale >= 0.85)
        centre = torch.stack([xs.float().mean(), ys.float().mean()])
        assert (centre - out["keypoints_2d"][i, 0]).norm() < 1.0
        # The depth shift moved the patch's depth and joint 0's z together, and only valid pixels.
        patch = out["depth"][i, 0][ys, xs]
        assert torch.allclose(patch, out["joints_3d"][i, 0, 2].expand_as(patch), atol=1e-3)
        assert ((out["depth"][i] > 0) == (out["mask"][i] > 0)).all()
    # joints_3d and keypoints_2d stay consistent through the intrinsics.
    assert torch.allclose(project(out["joints_3d"], INTR), out["keypoints_2d"], atol=1e-3)
    assert not torch.allclose(out["keypoints_2d"][:, 0], batch["keypoints_2d"][:, 0])
    assert torch.equal(out["keypose"], batch["keypose"])


def test_points_leaving_the_frame_lose_visibility_and_runs_repeat():
    batch = _marker_batch()
    out = augment_batch(batch, torch.Generator().manual_seed(1), rotation_deg=0.0, scale=(1.0, 1.0), translate=0.3)
    u, v = out["keypoints_2d"][..., 0].round(), out["keypoints_2d"][..., 1].round()
    inside = (u >= 0) & (u <= 159) & (v >= 0) & (v <= 119)
    assert not inside[:, 1].all()  # the corner joint left the frame in some frames
    assert torch.equal(out["visibility"], inside.float())
    again = augment_batch(batch, torch.Generator().manual_seed(1), rotation_deg=0.0, scale=(1.0, 1.0), translate=0.3)
    assert all(torch.equal(out[k], again[k]) for k in out)


def test_frames_without_a_hand_keep_their_empty_labels():
    batch = _marker_batch(2)
    batch["has_hand"] = torch.tensor([False, True])
    batch["joints_3d"][0] = 0.0
    batch["keypoints_2d"][0] = 0.0
    out = augment_batch(batch, torch.Generator().manual_seed(2))
    assert (out["joints_3d"][0] == 0).all() and (out["keypoints_2d"][0] == 0).all()


def test_a_move_in_depth_shrinks_or_grows_the_image_as_the_camera_would_see_it():
    batch = _marker_batch()
    out = augment_batch(batch, torch.Generator().manual_seed(4), rotation_deg=0.0, scale=(1.0, 1.0), translate=0.0,
                        depth_shift_mm=100.0, move=True)
    z = out["joints_3d"][..., 2]
    assert (z - 500.0).abs().max() > 20  # the draws moved some hands by more than 20 mm
    # The hand moved along the optical axis only: the same X and Y, so its pixels are c + f X / z (pinhole camera).
    assert torch.allclose(out["joints_3d"][..., :2], batch["joints_3d"][..., :2], atol=1e-3)
    centre = torch.tensor([79.5, 59.5])
    assert torch.allclose(out["keypoints_2d"], centre + 140.0 * batch["joints_3d"][..., :2] / z[..., None], atol=1e-3)
    # The marker is drawn there at the new depth.
    for i in range(len(z)):
        u, v = out["keypoints_2d"][i, 0].round().long().tolist()
        assert out["depth"][i, 0, v, u] == pytest.approx(float(z[i, 0]), abs=1e-3)
    # Without move the depth shifts and the image stays: the same pixels at another depth.
    shifted = augment_batch(batch, torch.Generator().manual_seed(4), rotation_deg=0.0, scale=(1.0, 1.0),
                            translate=0.0, depth_shift_mm=100.0)
    assert torch.equal(shifted["keypoints_2d"], batch["keypoints_2d"])
    assert torch.allclose(shifted["joints_3d"][..., 2], z)


def test_a_move_scales_a_frame_by_its_hands_distance_or_else_by_its_median_depth():
    from effbench.data.augment import _distance

    batch = _marker_batch(3)
    batch["has_hand"] = torch.tensor([True, False, False])
    batch["joints_3d"][0, :, 2] = torch.linspace(300.0, 500.0, 21)  # mean 400 mm
    batch["depth"][1] = 0.0
    batch["depth"][1, 0, 0, :3] = torch.tensor([200.0, 900.0, 300.0])  # the rest holes: median of 200, 300, 900
    batch["depth"][2] = 0.0  # nothing measured: mid-range
    assert _distance(batch).tolist() == pytest.approx([400.0, 300.0, 500.0])
    batch["has_hand"][:] = True  # every frame's hand: no median at all
    assert _distance(batch)[1:].tolist() == pytest.approx([500.0, 500.0])
