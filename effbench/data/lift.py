"""The 2.5D lift: read the depth at each 2D keypoint robustly and back-project it through the intrinsics."""

from __future__ import annotations

import torch


def lift_to_2p5d(
    keypoints_px: torch.Tensor, depth: torch.Tensor, intrinsics: torch.Tensor, window: int = 3
) -> torch.Tensor:
    """Lift 2D keypoints to camera-frame 3D points (mm) with the depth frame.

    The depth at a keypoint is the median of the valid (> 0) depths in a ``window x window`` patch around its
    nearest pixel, which ignores isolated holes and noise; when the whole patch is a hole, the nearest valid
    pixel of the frame is used instead; a frame with no valid pixel gives z = 0. The point is then
    ``((u - cx) z / fx, (v - cy) z / fy, z)`` at the keypoint's sub-pixel position.

    Args:
        keypoints_px: (B, K, 2) pixel coordinates (x = column, y = row), pixel centres at integers.
        depth: (B, 1, H, W) depth in mm, 0 = no return.
        intrinsics: (B, 4) or (4,) fx, fy, cx, cy.
        window: odd patch size for the median.

    Returns:
        (B, K, 3) points in mm, same dtype and device as ``keypoints_px``.
    """
    b, k, _ = keypoints_px.shape
    h, w = depth.shape[-2:]
    d = depth.reshape(b, h * w).to(keypoints_px.dtype)
    intr = intrinsics.to(keypoints_px).expand(b, 4) if intrinsics.dim() == 1 else intrinsics.to(keypoints_px)
    fx, fy, cx, cy = (intr[:, i : i + 1] for i in range(4))

    ui = keypoints_px[..., 0].round().long().clamp(0, w - 1)
    vi = keypoints_px[..., 1].round().long().clamp(0, h - 1)
    r = window // 2
    off = torch.arange(-r, r + 1, device=d.device)
    wu = (ui[..., None, None] + off[None, :]).clamp(0, w - 1)  # (B, K, 1, win)
    wv = (vi[..., None, None] + off[:, None]).clamp(0, h - 1)  # (B, K, win, 1)
    patch = d.gather(1, (wv * w + wu).reshape(b, -1)).reshape(b, k, -1)
    patch = torch.where(patch > 0, patch, torch.nan)
    z = patch.nanmedian(dim=-1).values  # NaN when the whole patch is a hole

    hole = torch.isnan(z)
    if hole.any():
        # Nearest valid pixel, for the keypoints that need it only.
        bi, ki = hole.nonzero(as_tuple=True)
        ys = torch.arange(h, device=d.device).repeat_interleave(w).to(d)
        xs = torch.arange(w, device=d.device).repeat(h).to(d)
        dist = (xs[None] - ui[bi, ki, None]) ** 2 + (ys[None] - vi[bi, ki, None]) ** 2
        valid = d[bi] > 0
        dist = torch.where(valid, dist, torch.inf)
        nearest = dist.argmin(dim=1)
        z_fill = torch.where(valid.any(dim=1), d[bi].gather(1, nearest[:, None])[:, 0], 0.0)
        z = z.index_put((bi, ki), z_fill)
    x = (keypoints_px[..., 0] - cx) * z / fx
    y = (keypoints_px[..., 1] - cy) * z / fy
    return torch.stack([x, y, z], dim=-1)
