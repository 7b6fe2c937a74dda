"""Every registered hand-pose model: interface, both forms, gradients; tiny_hand's budget.

Parametrized over the registry (timm's tests/test_models.py), so a new model is tested without anyone adding it;
profile-only models (not hand-pose networks, see effbench.registry) are listed as skipped, with the reason.
The expected params/MACs sit next to each builder (as torchvision keeps them in its weights metadata); tests/test_counter_coverage.py rebuilds and
profiles every registered model against them.
"""

from __future__ import annotations

import pytest
import torch

import effbench
from effbench.crop import CROP_KEYS
from effbench.data.skeleton import NUM_KEYPOINTS, NUM_KEYPOSES
from effbench.registry import create_model, list_models, model_info
from profile_helpers import deployed_profile

HAND_POSE_MODELS = [n for n in list_models() if not model_info(n).profile_only]
AUX_KEYS = {"seg", "visibility", "keypose", "handedness"}
#: Every registered model; the profile-only ones skip the hand-pose tests, saying why.
ALL_MODELS = [
    n if n in HAND_POSE_MODELS else pytest.param(n, marks=pytest.mark.skip(
        reason=f"{n} is profile-only (not a hand-pose network): profiled and gated, not trained; "
        "tests/test_counter_coverage.py checks its figures"))
    for n in list_models()
]  # fmt: skip


def _small_shape(name: str) -> tuple[int, int, int, int]:
    # Half the registered resolution keeps the MobileNets quick; every model takes any multiple of 4.
    _, c, h, w = model_info(name).input_shape
    return (2, c, h // 2, w // 2)


def _depth(shape: tuple[int, ...]) -> torch.Tensor:
    # Millimetres: values at 300-800 mm with some holes (0 = no return), as the camera gives.
    g = torch.Generator().manual_seed(0)
    depth = 300 + 500 * torch.rand(shape, generator=g)
    return depth * (torch.rand(depth.shape, generator=g) > 0.1)


@pytest.fixture(scope="module")
def profiles() -> dict[str, effbench.profiler.Profile]:
    """Deployable-form profile (no latency) of every hand-pose model and of the reference, computed once."""
    return {name: deployed_profile(name) for name in HAND_POSE_MODELS}


def test_hand_pose_models_registered():
    assert {"tiny_hand", "mobilenet_v2_100", "mobilenet_v2_035"} <= set(HAND_POSE_MODELS)
    assert "mobilenet_v2_100_imagenet" not in HAND_POSE_MODELS


@pytest.mark.parametrize("name", ALL_MODELS)
def test_both_forms_shapes_and_finite(name: str):
    shape = _small_shape(name)
    _, _, h, w = shape
    torch.manual_seed(0)
    model = create_model(name).train()
    depth = _depth(shape)
    out = model(depth)
    # A two-stage model also says where it cropped, and its heatmaps are the crop's (effbench.crop).
    two_stage = CROP_KEYS if "crop" in out else set()
    assert set(out) == {"keypoints", "heatmaps"} | AUX_KEYS | two_stage
    assert out["keypoints"].shape == (2, NUM_KEYPOINTS, 2)
    keypoint_net = model.deployable().net if two_stage else model.deployable()
    stride = keypoint_net.softargmax.stride  # 4, or 8 for the tiny nets
    hm_h, hm_w = (int(out["crop"][0, 3]),) * 2 if two_stage else (h, w)
    assert out["heatmaps"].shape == (2, NUM_KEYPOINTS, hm_h // stride, hm_w // stride)
    assert out["seg"].shape[:2] == (2, 1) and out["seg"].ndim == 4
    assert out["visibility"].shape == (2, NUM_KEYPOINTS)
    assert out["keypose"].shape == (2, NUM_KEYPOSES)
    assert out["handedness"].shape == (2, 1)
    model.eval()
    with torch.no_grad():
        dep = model.deployable()(depth)
        full = model(depth)
    assert set(dep) == {"keypoints", "heatmaps"} | two_stage
    # The deployable form is the training form's backbone + keypoint head: same numbers, not a copy.
    torch.testing.assert_close(dep["keypoints"], full["keypoints"])
    for key, value in [*out.items(), *dep.items()]:
        assert torch.isfinite(value).all(), f"{key} has NaN/inf"
    # Soft-argmax keypoints are a convex combination of cell centres, so they lie inside the frame (a two-stage
    # model's crop may reach past it, and it holds its keypoints inside).
    kp = dep["keypoints"]
    assert (kp[..., 0] >= 0).all() and (kp[..., 0] <= w - 1).all()
    assert (kp[..., 1] >= 0).all() and (kp[..., 1] <= h - 1).all()


@pytest.mark.parametrize("name", ALL_MODELS)
def test_deployable_has_no_auxiliary_parameters(name: str):
    model = create_model(name)
    deploy = model.deployable()
    dep_ids = {id(p) for p in deploy.parameters()}
    aux_ids = {id(p) for p in model.aux.parameters()}
    assert dep_ids.isdisjoint(aux_ids)
    # Shares the training form's weights: every deployable parameter is one of the model's.
    assert dep_ids <= {id(p) for p in model.parameters()}
    assert dep_ids | aux_ids == {id(p) for p in model.parameters()}
    assert sum(p.numel() for p in deploy.parameters()) == model_info(name).params


@pytest.mark.parametrize("name", ALL_MODELS)
def test_gradients_reach_every_parameter(name: str):
    torch.manual_seed(0)
    model = create_model(name).train()
    out = model(_depth(_small_shape(name)))
    g = torch.Generator().manual_seed(1)
    # A random projection of every output, so no gradient cancels by symmetry.
    loss = sum((v * torch.randn(v.shape, generator=g)).sum() for v in out.values())
    loss.backward()
    for pname, p in model.named_parameters():
        assert p.grad is not None, f"{pname} gets no gradient"
        assert p.grad.abs().sum() > 0, f"{pname} gets a zero gradient"


@pytest.mark.parametrize("name", ["tiny_hand", "tiny_hand_crop"])
def test_tiny_hand_within_targets(profiles, name: str):
    tiny, ref = profiles[name], profiles["mobilenet_v2_100"]
    assert tiny.flops <= 35_000_000
    assert tiny.as_dict()["weight_bytes_fp32"] < 300_000
    assert tiny.flops <= 0.03 * ref.flops
    assert tiny.params <= 0.02 * ref.params


def test_mobilenet_v2_100_head_share(profiles):
    # The baseline is fair: its keypoint head adds at most 20% to the backbone's MACs.
    prof = profiles["mobilenet_v2_100"]
    backbone = {row.name: row.macs for row in prof.by_module}["encoder"]
    head_macs = prof.macs - backbone
    assert 0 < head_macs <= 0.20 * backbone


def test_soft_argmax_decodes_a_peak_to_its_pixel():
    # A sharp peak at cell (i, j) of a 1/4-resolution map decodes to the centre of its 4x4 block: 4j + 1.5, 4i + 1.5.
    from architectures.hand_pose import SoftArgmax2d

    logits = torch.full((1, 2, 30, 40), -1e4)
    logits[0, 0, 3, 5] = 0.0
    logits[0, 1, 29, 0] = 0.0
    kp = SoftArgmax2d(4)(logits)
    torch.testing.assert_close(kp, torch.tensor([[[21.5, 13.5], [1.5, 117.5]]]))
    # Uniform logits: the image centre ((160 - 1) / 2, (120 - 1) / 2).
    torch.testing.assert_close(SoftArgmax2d(4)(torch.zeros(1, 1, 30, 40)), torch.tensor([[[79.5, 59.5]]]))


def test_soft_argmax_at_stride_8_decodes_a_peak_to_its_block_centre():
    # tiny_hand's heatmaps are at 1/8: cell (i, j) stands for the centre of its 8x8 block, 8j + 3.5, 8i + 3.5.
    from architectures.hand_pose import SoftArgmax2d

    logits = torch.full((1, 1, 15, 20), -1e4)
    logits[0, 0, 14, 2] = 0.0
    torch.testing.assert_close(SoftArgmax2d(8)(logits), torch.tensor([[[19.5, 115.5]]]))
    torch.testing.assert_close(SoftArgmax2d(8)(torch.zeros(1, 1, 15, 20)), torch.tensor([[[79.5, 59.5]]]))


def test_depth_clamp_makes_everything_beyond_it_one_value():
    from architectures.hand_pose import DepthNorm

    depth = torch.tensor([0.0, 500.0, 999.0, 1000.0, 1800.0, 4000.0])
    torch.testing.assert_close(DepthNorm(max_mm=1000)(depth), torch.tensor([-2.0, 0.0, 1.996, 2.0, 2.0, 2.0]))
    torch.testing.assert_close(DepthNorm()(depth)[-1], torch.tensor(14.0))  # no clamp by default (MobileNetV2)
    assert "max_mm=1000.0" in repr(create_model("tiny_hand").net.norm)  # so a run's model fingerprint sees it


def test_tiny_hand_decoder_rejects_an_unknown_heatmap_stride():
    from architectures.tiny_hand import TinyHandConfig, TinyHandDecoder

    with pytest.raises(ValueError, match="heatmap_stride must be 4 or 8, got 2"):
        TinyHandDecoder(TinyHandConfig(heatmap_stride=2))


def test_aux_pooling_reads_the_hand_region():
    from architectures.hand_pose import AuxHeads

    feats = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]]]])
    # mask logits at twice the features' resolution: the hand fills the top-left 2x2 block only
    seg = torch.full((1, 1, 4, 4), -30.0)
    seg[..., :2, :2] = 30.0
    pooled = AuxHeads.pool(feats, seg)
    # mask-weighted mean = the top-left cell (1), then the max (4) and the global mean (2.5)
    assert torch.allclose(pooled, torch.tensor([[1.0, 4.0, 2.5]]), atol=1e-5)
