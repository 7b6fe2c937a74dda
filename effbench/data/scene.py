"""Scenes around the hand and the depth sensor's defects: background planes, occluding objects, depth noise that
grows with distance, missing pixels and flying pixels at depth edges. Every effect can be switched off in
:class:`SceneConfig`; :func:`generate` turns a seeded generator into a batch of labelled frames.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from effbench.data import hand as hand_mod
from effbench.data.render import render_capsules, render_planes
from effbench.data.skeleton import NUM_JOINTS

#: Bump when anything changes the frames a seed produces: caches of another version are rebuilt.
GENERATOR_VERSION = 4


@dataclass(frozen=True)
class SceneConfig:
    """Everything that decides the frames of a seed (saved in the cache manifest)."""

    height: int = 120
    width: int = 160
    #: Focal length in px at the default 160 px width (~60 degrees horizontal field of view); scaled with width.
    focal_px: float = 140.0
    #: Palm centre distance range, mm.
    z_min: float = 200.0
    z_max: float = 700.0
    #: Fraction of frames that hold no hand (only background and objects).
    no_hand_prob: float = 0.05
    left_prob: float = 0.5
    #: Background planes (a wall and/or a table behind the hand); off -> only what the hand and objects return.
    background: bool = True
    #: Random capsule-shaped objects, some in front of the hand.
    occluders: bool = True
    occluder_prob: float = 0.3
    #: Depth noise, std = noise_a + noise_b * z^2 (mm), like structured-light and ToF sensors.
    noise: bool = True
    noise_a: float = 0.5
    noise_b: float = 2.0e-6
    #: Missing pixels: isolated dropouts and blobs.
    holes: bool = True
    hole_prob: float = 0.01
    #: Flying pixels: mixed depths on depth edges.
    flying_pixels: bool = True
    flying_prob: float = 0.3
    #: Returns beyond this range read 0 (no return).
    max_range: float = 2500.0

    @property
    def intrinsics(self) -> tuple[float, float, float, float]:
        """fx, fy, cx, cy with pixel centres at integers (docs/conventions.md)."""
        f = self.focal_px * self.width / 160.0
        return (f, f, (self.width - 1) / 2.0, (self.height - 1) / 2.0)

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


#: Extra capsules for objects besides the hand's 21.
MAX_OCCLUDERS = 2
#: A joint counts as visible when the depth at its pixel is within its capsule radius plus this tolerance of its z:
#: the surface seen there is that joint's own, not something in front (occlusion) or far behind (a gap).
VISIBILITY_TOL_MM = 6.0


def project(points: torch.Tensor, intrinsics: tuple[float, float, float, float]) -> torch.Tensor:
    """Pinhole projection (..., 3) mm -> (..., 2) px: ``u = fx X / Z + cx``, ``v = fy Y / Z + cy``."""
    fx, fy, cx, cy = intrinsics
    return torch.stack([fx * points[..., 0] / points[..., 2] + cx, fy * points[..., 1] / points[..., 2] + cy], -1)


def joint_visibility(
    joints: torch.Tensor, joint_radius: torch.Tensor, depth: torch.Tensor, intrinsics: tuple[float, float, float, float]
) -> torch.Tensor:
    """(B, J) bool: the joint projects inside the frame and the surface seen at its nearest pixel is its own.

    Z-test against the clean depth (B, H, W) (0 = no return): visible when ``|depth - z| <= radius + tol``. A
    surface nearer than that occludes the joint; a farther one (a gap between fingers at a silhouette) means the
    pixel does not show the joint either, so a visible keypoint always lies on its own finger.
    """
    n, h, w = depth.shape
    kp = project(joints, intrinsics)
    ui, vi = kp[..., 0].round().long(), kp[..., 1].round().long()
    inside = (ui >= 0) & (ui < w) & (vi >= 0) & (vi < h) & (joints[..., 2] > 0)
    flat = vi.clamp(0, h - 1) * w + ui.clamp(0, w - 1)
    seen = depth.reshape(n, -1).gather(1, flat)
    seen = torch.where(seen > 0, seen, torch.inf)
    return inside & ((seen - joints[..., 2]).abs() <= joint_radius + VISIBILITY_TOL_MM)


def _u(n: int, lo: float, hi: float, g: torch.Generator) -> torch.Tensor:
    return lo + (hi - lo) * torch.rand(n, generator=g)


def _occluders(n: int, g: torch.Generator, cfg: SceneConfig, target: torch.Tensor, target_z: torch.Tensor):
    """Random capsule objects near the hand on screen, between the camera and somewhat behind the hand."""
    fx, fy, cx, cy = cfg.intrinsics
    k = MAX_OCCLUDERS
    present = (torch.rand(n, k, generator=g) < cfg.occluder_prob) if cfg.occluders else torch.zeros(n, k, dtype=bool)
    r = 8.0 + 30.0 * torch.rand(n, k, generator=g)
    z = 150.0 + (target_z[:, None] + 250.0 - 150.0) * torch.rand(n, k, generator=g)
    uv = target[:, None, :] + torch.randn(n, k, 2, generator=g) * torch.tensor([cfg.width, cfg.height]) * 0.25
    centre = torch.stack([(uv[..., 0] - cx) * z / fx, (uv[..., 1] - cy) * z / fy, z], -1)
    d = torch.randn(n, k, 3, generator=g)
    d = d / d.norm(dim=-1, keepdim=True)
    half = 0.5 * 150.0 * torch.rand(n, k, 1, generator=g)
    a, b = centre - d * half, centre + d * half
    r = torch.where(present, r, 0.0)
    return a, b, r


def _background(n: int, g: torch.Generator, cfg: SceneConfig, joints: torch.Tensor, has_hand: torch.Tensor):
    """Up to two planes (a wall facing the camera, a table below), pushed behind every hand joint."""
    wall_tilt = torch.randn(n, 2, generator=g) * 0.25
    wall_n = torch.cat([wall_tilt, torch.ones(n, 1)], -1)
    beta = _u(n, 20.0, 70.0, g) * math.pi / 180
    yaw = torch.randn(n, generator=g) * 0.2
    table_n = torch.stack([yaw, -torch.cos(beta), torch.sin(beta)], -1)  # faces the camera and up (y is down)
    normal = torch.stack([wall_n, table_n], 1)
    normal = normal / normal.norm(dim=-1, keepdim=True)
    zmax = torch.where(has_hand, joints[..., 2].amax(-1), 300.0)
    dist = zmax[:, None] + 100.0 + 900.0 * torch.rand(n, 2, generator=g)
    offset = normal[..., 2] * dist  # plane through (0, 0, dist)
    # Push each plane behind every joint by a margin: offset >= (z_j + margin) * (n . ray_j) where the ray hits it.
    rays = joints / joints[..., 2:3].clamp(min=1.0)
    ndotr = torch.einsum("bpk,bjk->bpj", normal, rays)
    need = ((joints[..., 2][:, None, :] + 60.0) * ndotr).amax(-1)
    offset = torch.where(has_hand[:, None], torch.maximum(offset, need), offset)
    which = torch.rand(n, generator=g)
    present = torch.stack([which < 0.6, (which > 0.35) & (which < 0.85)], -1) & cfg.background
    offset = torch.where(present, offset, -1.0)
    return normal, offset


def _sensor(depth: torch.Tensor, g: torch.Generator, cfg: SceneConfig) -> torch.Tensor:
    """Apply flying pixels, noise and holes to (B, H, W) clean depth (0 = no return)."""
    n, h, w = depth.shape
    valid = depth > 0
    # One uniform field drives both flying pixels (low values) and dropouts (high values): the two events are
    # disjoint, and one draw per pixel instead of three keeps the sensor model cheap.
    u = torch.rand(n, h, w, generator=g)
    if cfg.flying_pixels:
        # A pixel on a depth edge (its right or lower neighbour more than 30 mm away, or no return) sometimes
        # reads a mix of both sides, as time-of-flight pixels that see two surfaces do.
        far = torch.where(valid, depth, depth.amax() + 300.0)
        right = torch.cat([far[:, :, 1:], far[:, :, -1:]], 2)
        down = torch.cat([far[:, 1:], far[:, -1:]], 1)
        other = torch.where((right - far).abs() > (down - far).abs(), right, down)
        fly = valid & ((other - far).abs() > 30.0) & (u < cfg.flying_prob)
        depth = torch.where(fly, depth + (u / cfg.flying_prob) * (other - depth), depth)
    if cfg.noise:
        sigma = cfg.noise_a + cfg.noise_b * depth * depth
        depth = torch.where(valid, depth + sigma * torch.randn(n, h, w, generator=g), depth)
    if cfg.holes:
        blobs = torch.rand(n, 1, h // 8 + 1, w // 8 + 1, generator=g)
        blobs = F.interpolate(blobs, size=(h, w), mode="bilinear", align_corners=False)[:, 0]
        depth = torch.where((u > 1.0 - cfg.hole_prob) | (blobs > 0.93), 0.0, depth)
    return depth


def generate(n: int, g: torch.Generator, cfg: SceneConfig) -> dict[str, torch.Tensor]:
    """Generate ``n`` labelled frames from generator ``g`` (CPU). Same generator state -> same tensors.

    Returns a dict of the item keys of :class:`effbench.data.SyntheticHands` stacked over ``n``, plus
    ``clean_depth`` (before the sensor effects; used for visibility and tests).
    """
    h, w = cfg.height, cfg.width
    fx, fy, cx, cy = intr = cfg.intrinsics
    hands = hand_mod.sample_hands(n, g, intr, (h, w), (cfg.z_min, cfg.z_max), cfg.left_prob)
    has_hand = torch.rand(n, generator=g) >= cfg.no_hand_prob

    joints = hands.joints
    kp = project(joints, intr)
    target = torch.where(has_hand[:, None], kp[:, 0], torch.tensor([cx, cy]))
    occ_a, occ_b, occ_r = _occluders(n, g, cfg, target, torch.where(has_hand, joints[:, 0, 2], 500.0))

    hand_r = torch.where(has_hand[:, None], hands.radius, 0.0)
    a = torch.cat([hands.caps_a, occ_a], 1)
    b = torch.cat([hands.caps_b, occ_b], 1)
    r = torch.cat([hand_r, occ_r], 1)
    group = torch.ones(n, a.shape[1], dtype=torch.long)  # 1: not hand (forearm, objects)
    group[:, : hand_mod.NUM_CAPSULES] = 0
    group[:, hand_mod.FOREARM_CAPSULE] = 1
    zb = render_capsules(a, b, r, group, 2, h, w, intr)
    normal, offset = _background(n, g, cfg, joints, has_hand)
    planes = render_planes(normal, offset, h, w, intr)
    other = torch.minimum(zb[:, 1], planes)
    hand_z = zb[:, 0]
    clean = torch.minimum(hand_z, other)
    mask = (hand_z < other) & torch.isfinite(hand_z)
    clean = torch.where(clean <= cfg.max_range, clean, 0.0)

    visible = joint_visibility(joints, hands.joint_radius, clean, intr) & has_hand[:, None]

    depth = _sensor(clean, g, cfg)
    depth = torch.where((depth > 0) & (depth <= cfg.max_range), depth, 0.0)

    none = ~has_hand
    zeros3 = torch.zeros(n, NUM_JOINTS, 3)
    return {
        "depth": depth[:, None].float().contiguous(),
        "joints_3d": torch.where(none[:, None, None], zeros3, joints).float(),
        "keypoints_2d": torch.where(none[:, None, None], zeros3[..., :2], kp).float(),
        "visibility": visible.float(),
        "mask": mask[:, None].float(),
        "keypose": torch.where(none, -1, hands.keypose),
        "handedness": torch.where(none, -1, hands.handedness),
        "intrinsics": torch.tensor(intr, dtype=torch.float32).expand(n, 4).contiguous(),
        "has_hand": has_hand,
        "clean_depth": clean[:, None].float().contiguous(),
    }
