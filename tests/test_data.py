"""The synthetic depth hand renderer and data set: geometry checked against numbers worked out by hand."""

import json
import math

import pytest
import torch

from effbench.data import SyntheticHands, lift_to_2p5d
from effbench.data import hand as hand_mod
from effbench.data.dataset import shard_seed
from effbench.data.render import render_capsules, render_planes
from effbench.data.scene import SceneConfig, generate, joint_visibility, project
from effbench.data.skeleton import KEYPOSES, NO_POSE
from effbench.errors import UsageError

INTR = (140.0, 140.0, 79.5, 59.5)  # the default 120 x 160 camera
ODD = (140.0, 140.0, 80.0, 60.0)  # a 121 x 161 frame whose principal point is a pixel centre


def test_default_intrinsics_and_projection_of_a_known_point():
    assert SceneConfig().intrinsics == INTR
    # u = 140 * 100 / 500 + 79.5 = 107.5, v = 140 * -50 / 500 + 59.5 = 45.5
    uv = project(torch.tensor([[100.0, -50.0, 500.0]]), INTR)
    assert uv.tolist() == [[107.5, 45.5]]


def _one_capsule(a, b, r, size=(121, 161), intr=ODD):
    t = torch.tensor
    return render_capsules(t([[a]]), t([[b]]), t([[r]]), torch.zeros(1, 1, dtype=torch.long), 1, *size, intr)[0, 0]


def test_sphere_depth_and_silhouette():
    z = _one_capsule([0.0, 0.0, 500.0], [0.0, 0.0, 500.0], 20.0)
    assert z[60, 80].item() == pytest.approx(480.0, abs=1e-3)
    # Ray D = (xn, 0, 1) meets |s D - C| = r where s^2 (1 + xn^2) - 1000 s + 500^2 - 20^2 = 0.
    xn = 5 / 140
    s = (500 - math.sqrt(500**2 - (1 + xn**2) * (500**2 - 20**2))) / (1 + xn**2)
    assert z[60, 85].item() == pytest.approx(s, abs=1e-2)
    # Image radius 140 * tan(asin(20 / 500)) = 5.60 px: 5 px off the centre is hit, 6 px is not.
    assert torch.isinf(z[60, 86]) and torch.isinf(z[66, 80])
    disc = sum(1 for dy in range(-6, 7) for dx in range(-6, 7) if dx * dx + dy * dy <= 31)  # 5.60^2 = 31.4
    assert torch.isfinite(z).sum().item() == disc


def test_capsule_body_depth_is_constant_along_its_axis():
    # A horizontal capsule along x at y = 0, z = 500, radius 10: every ray (xn, 0, 1) meets its body at z = 490,
    # while the hit point's x = (u - 80) * 490 / 140 stays inside [-50, 50], i.e. |u - 80| <= 14.
    z = _one_capsule([-50.0, 0.0, 500.0], [50.0, 0.0, 500.0], 10.0)
    for u in range(66, 95):
        assert z[60, u].item() == pytest.approx(490.0, abs=1e-2)
    assert 490.0 < z[60, 96].item() < 500.0  # the end cap curves away
    assert torch.isinf(z[60, 100])


def test_plane_depth():
    # Plane 0.2 y + z = 500: at the principal ray z = 500; 20 rows down yn = 1/7, z = 500 / (1 + 0.2 / 7).
    z = render_planes(torch.tensor([[[0.0, 0.2, 1.0]]]), torch.tensor([[500.0]]), 121, 161, ODD)[0]
    assert z[60, 80].item() == pytest.approx(500.0)
    assert z[80, 3].item() == pytest.approx(500.0 / (1 + 0.2 / 7), rel=1e-6)


def test_lift_inverts_the_projection_on_a_noiseless_plane():
    depth = render_planes(torch.tensor([[[0.0, 0.2, 1.0]]]), torch.tensor([[500.0]]), 120, 160, INTR)[:, None]
    g = torch.Generator().manual_seed(0)
    uv = torch.rand(1, 50, 2, generator=g) * torch.tensor([150.0, 110.0]) + 5.0  # sub-pixel positions
    fx, fy, cx, cy = INTR
    d = torch.stack([(uv[..., 0] - cx) / fx, (uv[..., 1] - cy) / fy, torch.ones(1, 50)], -1)
    truth = d * (500.0 / (0.2 * d[..., 1] + 1.0))[..., None]  # the points of the plane on those rays
    assert torch.allclose(project(truth, INTR), uv, atol=1e-3)
    lifted = lift_to_2p5d(project(truth, INTR), depth, torch.tensor(INTR))
    assert (lifted - truth).norm(dim=-1).max().item() < 1.0


def test_lift_median_ignores_a_hole_and_falls_back_to_the_nearest_valid_depth():
    depth = torch.full((2, 1, 120, 160), 800.0)
    depth[0, 0, 50, 70] = 0.0  # one hole in the 3 x 3 window: the median of the 8 others
    depth[1, 0, 40:61, 60:76] = 0.0  # the whole window is a hole ...
    depth[1, 0, :, 76] = 650.0  # ... and the nearest valid pixel to (72, 50) is 4 columns right, at 650 mm
    kp = torch.tensor([[[70.0, 50.0]], [[72.0, 50.0]]])
    out = lift_to_2p5d(kp, depth, torch.tensor([INTR, INTR]))
    assert out[0, 0, 2].item() == 800.0
    assert out[1, 0, 2].item() == 650.0
    assert out[1, 0, 0].item() == pytest.approx((72.0 - 79.5) * 650.0 / 140.0)
    # A frame without any return lifts to z = 0 rather than failing.
    assert lift_to_2p5d(kp[:1], torch.zeros(1, 1, 120, 160), torch.tensor(INTR))[0, 0, 2].item() == 0.0


def _fist_seen_from_the_back():
    """A right fist, the back of the hand facing the camera, fingers up, palm centre 400 mm away."""
    fist = hand_mod.keypose_templates()[KEYPOSES.index("Fist")][None]
    lengths, bases = torch.tensor(hand_mod._LENGTHS)[None], torch.tensor(hand_mod._BASES)[None]
    local = hand_mod.forward_kinematics(fist, lengths, bases)
    one = torch.ones(1)
    a, b, r, jr = hand_mod.hand_capsules(local, one, one, torch.tensor([[0.0, -1.0, 0.0]]))
    # Local x -> camera x, local y (forward) -> camera -y (up), local z (dorsal) -> camera -z (towards the camera).
    rot = torch.tensor([[1.0, 0.0, 0.0], [0.0, -1.0, 0.0], [0.0, 0.0, -1.0]])
    t = torch.tensor([0.0, 50.0, 400.0])  # puts the local point (0, 50, 0) at (0, 0, 400)
    a, b, joints = (p @ rot.T + t for p in (a, b, local))
    depth = render_capsules(a, b, r, torch.zeros(1, 21, dtype=torch.long), 1, 120, 160, INTR)[:, 0]
    return joints, jr, torch.where(torch.isfinite(depth), depth, 0.0)


def test_finger_tips_curled_behind_the_palm_are_not_visible():
    joints, jr, depth = _fist_seen_from_the_back()
    vis = joint_visibility(joints, jr, depth, INTR)[0]
    tips, mcps = [8, 12, 16, 20], [5, 9, 13, 17]
    # By hand for the index: flexions 85, 100, 60 deg put its tip at local z ~ -18 (palm side), i.e. ~418 mm from
    # the camera, while the metacarpals' backs (radius 12 around local z = 0) are at ~388 mm in front of it.
    assert 410 < joints[0, 8, 2].item() < 425
    uv = project(joints[0], INTR).round().long()
    for j in tips:
        assert 0 <= uv[j, 0] < 160 and 0 <= uv[j, 1] < 120
        assert depth[0, uv[j, 1], uv[j, 0]].item() < joints[0, j, 2].item() - 20  # something is in front of it
        assert not vis[j]
    assert vis[mcps].all()


def test_rendered_depth_at_visible_joints_lies_within_a_finger_radius():
    joints, jr, depth = _fist_seen_from_the_back()
    vis = joint_visibility(joints, jr, depth, INTR)[0]
    uv = project(joints[0], INTR).round().long()
    for j in vis.nonzero()[:, 0].tolist():
        seen = depth[0, uv[j, 1], uv[j, 0]].item()
        assert abs(seen - joints[0, j, 2].item()) <= jr[0, j].item() + 6.0
    # Across random frames (no sensor noise): a visible tip's depth is within its finger's radius of its z (the
    # largest tip radius is 9 mm x 1.265 scale; plus the 6 mm visibility tolerance).
    cfg = SceneConfig(noise=False, holes=False, flying_pixels=False)
    out = generate(32, torch.Generator().manual_seed(1), cfg)
    tips = [4, 8, 12, 16, 20]
    kp = out["keypoints_2d"][:, tips].round().long()
    z = out["joints_3d"][:, tips, 2]
    vis = out["visibility"][:, tips] > 0
    seen = out["clean_depth"][:, 0][torch.arange(32)[:, None], kp[..., 1].clamp(0, 119), kp[..., 0].clamp(0, 159)]
    assert vis.float().mean() > 0.3
    assert ((seen - z).abs()[vis] <= 9.0 * 1.265 + 6.0).all()


def test_contact_keyposes_touch_thumb_to_index():
    t = hand_mod.keypose_templates()
    lengths, bases = torch.tensor(hand_mod._LENGTHS)[None], torch.tensor(hand_mod._BASES)[None]
    for name in ("Ok", "Pinch"):
        j = hand_mod.forward_kinematics(t[KEYPOSES.index(name)][None], lengths, bases)[0]
        assert (j[4] - j[8]).norm().item() == pytest.approx(9.0 + 7.5, abs=1.5)  # thumb + index tip radii
    # The keyposes differ from each other (no two templates alike) and stay inside the anatomical limits.
    deg = t / (math.pi / 180)
    lim = torch.tensor(hand_mod.LIMITS_DEG)
    assert ((deg >= lim[..., 0] - 1e-4) & (deg <= lim[..., 1] + 1e-4)).all()
    assert torch.cdist(deg.reshape(8, -1), deg.reshape(8, -1)).add(torch.eye(8) * 1e3).min() > 30


def test_generated_labels():
    cfg = SceneConfig(no_hand_prob=0.3)
    out = generate(32, torch.Generator().manual_seed(2), cfg)
    none = ~out["has_hand"]
    assert none.any() and out["has_hand"].any()
    assert (out["keypose"][none] == -1).all() and (out["handedness"][none] == -1).all()
    assert (out["mask"][none] == 0).all() and (out["visibility"][none] == 0).all()
    assert out["keypose"][~none].min() >= 0 and out["keypose"][~none].max() <= NO_POSE
    assert set(out["handedness"][~none].tolist()) <= {0, 1}
    # Keypoints are the projections of the joints; depth is non-negative mm with 0 for no return.
    h = ~none
    assert torch.allclose(project(out["joints_3d"][h], INTR), out["keypoints_2d"][h], atol=1e-3)
    assert (out["depth"] >= 0).all() and (out["depth"] <= cfg.max_range).all()
    z = out["joints_3d"][h][..., 2]
    assert z.min() > 50 and z.max() < 1000
    # Hands come mostly from below: the wrist is below the middle tip in most frames (image y grows downwards).
    kp = out["keypoints_2d"][h]
    assert (kp[:, 0, 1] > kp[:, 12, 1]).float().mean() > 0.6


def test_items_have_every_key_dtype_and_shape(tmp_path):
    ds = SyntheticHands("train", 12, seed=0, cache_dir=tmp_path, height=60, width=80)
    item = ds[3]
    shapes = {k: (tuple(v.shape), v.dtype) for k, v in item.items()}
    assert shapes == {
        "depth": ((1, 60, 80), torch.float32),
        "joints_3d": ((21, 3), torch.float32),
        "keypoints_2d": ((21, 2), torch.float32),
        "visibility": ((21,), torch.float32),
        "mask": ((1, 60, 80), torch.float32),
        "keypose": ((), torch.int64),
        "handedness": ((), torch.int64),
        "intrinsics": ((4,), torch.float32),
        "has_hand": ((), torch.bool),
    }
    t = ds.tensors()
    assert t["depth"].shape == (12, 1, 60, 80) and t["keypose"].shape == (12,)
    assert ds.intrinsics == (70.0, 70.0, 39.5, 29.5)
    with pytest.raises(UsageError, match="closest: background"):
        SyntheticHands("train", 4, cache_dir=tmp_path, backgrund=False)
    with pytest.raises(UsageError, match="unknown split"):
        SyntheticHands("training", 4, cache_dir=tmp_path)


def test_same_seed_same_bytes_and_disjoint_splits(tmp_path):
    a = SyntheticHands("val", 16, seed=5, cache_dir=tmp_path / "a")
    b = SyntheticHands("val", 16, seed=5, cache_dir=tmp_path / "b")
    ma = json.loads((a.cache_path / "manifest.json").read_text())
    mb = json.loads((b.cache_path / "manifest.json").read_text())
    assert ma["shards"] == mb["shards"]  # same SHA-256 of every shard file
    assert all(torch.equal(a.tensors()[k], b.tensors()[k]) for k in a.tensors())

    test = SyntheticHands("test", 16, seed=5, cache_dir=tmp_path / "a")
    other = SyntheticHands("val", 16, seed=6, cache_dir=tmp_path / "a")
    assert len({shard_seed(5, s, 0) for s in ("train", "val", "test")}) == 3
    for ds in (test, other):
        for x in a.tensors()["depth"]:
            assert not any(torch.equal(x, y) for y in ds.tensors()["depth"])


def test_stale_or_corrupt_cache_is_rebuilt(tmp_path):
    ds = SyntheticHands("train", 8, seed=1, cache_dir=tmp_path)
    assert ds.rebuilt
    again = SyntheticHands("train", 8, seed=1, cache_dir=tmp_path)
    assert not again.rebuilt
    reference = ds.tensors()["depth"].clone()

    manifest_path = ds.cache_path / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["generator_version"] = -1  # written by an older generator
    manifest_path.write_text(json.dumps(manifest))
    stale = SyntheticHands("train", 8, seed=1, cache_dir=tmp_path)
    assert stale.rebuilt and torch.equal(stale.tensors()["depth"], reference)

    shard = ds.cache_path / "shard-00000.pt"
    raw = bytearray(shard.read_bytes())
    raw[len(raw) // 2] ^= 0xFF  # one flipped byte
    shard.write_bytes(bytes(raw))
    corrupt = SyntheticHands("train", 8, seed=1, cache_dir=tmp_path)
    assert corrupt.rebuilt and torch.equal(corrupt.tensors()["depth"], reference)

    shard.write_bytes(shard.read_bytes()[:100])  # truncated
    assert SyntheticHands("train", 8, seed=1, cache_dir=tmp_path).rebuilt
    assert not SyntheticHands("train", 8, seed=1, cache_dir=tmp_path).rebuilt


def test_parallel_generation_gives_the_same_frames():
    from concurrent.futures import ThreadPoolExecutor

    from effbench.data.dataset import RENDER_BATCH, generate_frames

    cfg = SceneConfig(height=30, width=40)
    serial = generate_frames(RENDER_BATCH + 8, 7, cfg)
    with ThreadPoolExecutor(2) as pool:
        parallel = generate_frames(RENDER_BATCH + 8, 7, cfg, pool)
    assert all(torch.equal(serial[k], parallel[k]) for k in serial)


@pytest.mark.slow
def test_handedness_cue_a_simple_rule_on_the_depth_frame_beats_chance():
    """Left and right hands are mirror images; what tells them apart on a headset is where the arm comes from.
    Rule, on the depth frame alone: the near surfaces (within 250 mm of the nearest) that touch the frame's bottom or
    side edges (the forearm coming in) lie right of the near surfaces' centroid -> a right hand. Chance is 50%;
    over ~900 hands its standard error is under 2 points."""
    g = torch.Generator().manual_seed(1)
    d = generate(1024, g, SceneConfig())
    depth, has_hand, hand = d["depth"][:, 0], d["has_hand"], d["handedness"]
    h, w = depth.shape[-2:]
    valid = depth > 0
    nearest = torch.where(valid, depth, torch.inf).flatten(1).kthvalue(20, dim=1).values  # robust to noise
    near = valid & (depth < nearest[:, None, None] + 250)
    edge = torch.zeros(h, w, dtype=torch.bool)
    edge[-3:], edge[:, :3], edge[:, -3:] = True, True, True
    xs = torch.arange(w, dtype=torch.float32)

    def centroid_x(m):
        return (m.sum(1) * xs).sum(1) / m.sum((1, 2)).clamp_min(1)

    guess = (centroid_x(near & edge) > centroid_x(near)).long()
    accuracy = float((guess == hand)[has_hand].float().mean())
    assert accuracy > 0.65
