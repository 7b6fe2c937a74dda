"""Training augmentations applied to a batch of frames and their labels together, on any device.

An in-plane rotation, scale and translation of the image about the principal point is a 2D similarity ``A``; labels move
with it: ``keypoints' = A(keypoints)``; the depth shift ``dz`` adds to every valid depth and to the joints' z;
``joints_3d`` are re-projected from the new keypoints at the new z, so ``joints_3d`` and ``keypoints_2d`` stay exactly
consistent with the intrinsics (scaling the image then means a larger hand at the same distance). With ``move=True`` the
depth shift moves the scene instead: the image also scales by ``z / (z + dz)`` about the principal point (``z`` the
hand's distance), so a hand moved away looks smaller, as it would; the plain shift keeps the image and so shows a hand
of another size at the new distance. Depth and mask are resampled with nearest neighbours so no depth that was not
measured is invented at edges; pixels brought in from outside the frame read 0 (no return). Visibility is the old
visibility of points that are still inside the frame.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def augment_batch(
    batch: dict[str, torch.Tensor],
    generator: torch.Generator,
    rotation_deg: float = 30.0,
    scale: tuple[float, float] = (0.85, 1.15),
    translate: float = 0.1,
    depth_shift_mm: float = 50.0,
    move: bool = False,
) -> dict[str, torch.Tensor]:
    """Randomly rotate, scale, translate and depth-shift a batch (returns a new dict; the input is not changed).

    Args:
        batch: item keys stacked over B (see :class:`effbench.data.SyntheticHands`); ``depth`` and
            ``intrinsics`` are required, ``mask``, ``keypoints_2d``, ``joints_3d``, ``visibility`` and
            ``has_hand`` are transformed when present, other keys pass through.
        generator: the source of randomness (CPU or on the batch's device); same state -> same output.
        rotation_deg: rotation drawn uniformly in +-rotation_deg.
        scale: zoom factor drawn log-uniformly in this range.
        translate: shift drawn uniformly in +-translate x frame size.
        depth_shift_mm: depth offset drawn uniformly in +-depth_shift_mm.
        move: The depth offset moves the scene: the image scales with it (by ``z / (z + dz)``, ``z`` the mean of
            ``joints_3d``'s z where there is a hand, else the median measured depth).

    Returns:
        The augmented batch.
    """
    depth = batch["depth"]
    b, _, h, w = depth.shape
    dev = depth.device
    r = torch.rand(b, 5, generator=generator, device=generator.device).to(dev, torch.float32)
    theta = (2 * r[:, 0] - 1) * rotation_deg * math.pi / 180
    s = torch.exp(math.log(scale[0]) + r[:, 1] * (math.log(scale[1]) - math.log(scale[0])))
    t = (2 * r[:, 2:4] - 1) * translate * torch.tensor([w, h], device=dev, dtype=torch.float32)
    dz = (2 * r[:, 4] - 1) * depth_shift_mm
    if move:
        z = _distance(batch).to(dev)
        s = s * z / (z + dz)
    intr = batch["intrinsics"].to(dev, torch.float32).expand(b, 4)
    fx, fy, c = intr[:, 0:1], intr[:, 1:2], intr[:, 2:4]

    cos, sin = torch.cos(theta), torch.sin(theta)
    rot = torch.stack([torch.stack([cos, -sin], -1), torch.stack([sin, cos], -1)], -2)  # (B, 2, 2)
    fwd = s[:, None, None] * rot

    # Output pixel p' comes from input pixel p = A^-1 (p' - c - t) + c.
    ys, xs = torch.meshgrid(torch.arange(h, device=dev, dtype=torch.float32),
                            torch.arange(w, device=dev, dtype=torch.float32), indexing="ij")
    out_px = torch.stack([xs, ys], -1).reshape(1, h * w, 2)
    inv = rot.transpose(1, 2) / s[:, None, None]
    src = (out_px - (c + t)[:, None]) @ inv.transpose(1, 2) + c[:, None]
    grid = torch.stack([2 * src[..., 0] / (w - 1) - 1, 2 * src[..., 1] / (h - 1) - 1], -1).reshape(b, h, w, 2)

    out = dict(batch)
    # Depth and mask warp in one grid_sample (stacked as channels): the same nearest pixels, half the sampling cost.
    planes = torch.cat([depth.float(), batch["mask"].float()], 1) if "mask" in batch else depth.float()
    planes = F.grid_sample(planes, grid, mode="nearest", padding_mode="zeros", align_corners=True)
    warped = planes[:, :1]
    out["depth"] = torch.where(warped > 0, (warped + dz[:, None, None, None]).clamp(min=1.0), 0.0)
    if "mask" in batch:
        out["mask"] = planes[:, 1:]

    if "keypoints_2d" in batch:
        has = batch.get("has_hand", torch.ones(b, dtype=torch.bool, device=dev)).to(dev).bool()[:, None, None]
        kp = batch["keypoints_2d"].float()
        kp_new = (kp - c[:, None]) @ fwd.transpose(1, 2) + c[:, None] + t[:, None]
        out["keypoints_2d"] = torch.where(has, kp_new, kp)
        if "joints_3d" in batch:
            j = batch["joints_3d"].float()
            z = j[..., 2] + dz[:, None]
            xyz = torch.stack([(kp_new[..., 0] - c[:, 0:1]) * z / fx, (kp_new[..., 1] - c[:, 1:2]) * z / fy, z], -1)
            out["joints_3d"] = torch.where(has, xyz, j)
        if "visibility" in batch:
            u, v = kp_new[..., 0].round(), kp_new[..., 1].round()
            inside = (u >= 0) & (u <= w - 1) & (v >= 0) & (v <= h - 1)
            out["visibility"] = batch["visibility"] * inside.to(batch["visibility"].dtype)
    return out


def _distance(batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """(B,) how far each frame's hand is (mean joint z, mm); the median measured depth where there is no hand."""
    depth = batch["depth"].flatten(1).float()
    if "joints_3d" not in batch:
        return _median_depth(depth)
    has = batch.get("has_hand", torch.ones(len(depth), dtype=torch.bool, device=depth.device)).to(depth.device).bool()
    z = batch["joints_3d"][..., 2].float().mean(1)
    # The median only where it is used: it sorts every pixel, a fifth of a training step's augmentation.
    if not has.all():
        z[~has] = _median_depth(depth[~has])
    return z


def _median_depth(depth: torch.Tensor) -> torch.Tensor:
    """(N,) the median measured (non-zero) depth of each (N, P) frame; a frame with no measured pixel at all (every one
    a hole) moves as if it were mid-range, 500 mm."""
    return torch.where(depth > 0, depth, float("nan")).nanmedian(1).values.nan_to_num(500.0)
