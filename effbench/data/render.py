"""Vectorized depth rendering of capsules and planes through a pinhole camera.

Capsules are ray-cast exactly (cylinder body plus two sphere caps), but only near each capsule's projected bounding
box: each capsule gets a tile at least as large as its box, the tile sizes come in steps of ~1.4x, and all the
capsules of one tile size, over every frame of the batch, are intersected at once by broadcasting; the hits are
reduced into a z-buffer with ``scatter_reduce(amin)``. A hand covers a few thousand pixels of a 120 x 160 frame,
so this tests far fewer (capsule, pixel) pairs than every capsule against every pixel; the only Python loop is
over the few tile sizes, never over pixels, capsules or frames.

Depth here is the z coordinate (mm) of the first hit, as a depth camera reports it, not the ray length.
Misses are ``inf``.
"""

from __future__ import annotations

import torch

#: Capsules closer than this (mm, nearest surface point) are not rendered; sensors do not see that close.
NEAR_MM = 20.0


def pixel_rays(height: int, width: int, intrinsics: tuple[float, float, float, float]) -> torch.Tensor:
    """(H*W, 3) ray directions ``((u - cx) / fx, (v - cy) / fy, 1)`` at pixel centres, row-major."""
    fx, fy, cx, cy = intrinsics
    v, u = torch.meshgrid(torch.arange(height, dtype=torch.float32), torch.arange(width, dtype=torch.float32),
                          indexing="ij")
    return torch.stack([(u - cx) / fx, (v - cy) / fy, torch.ones_like(u)], -1).reshape(-1, 3)


def _sphere_bbox(c: torch.Tensor, r: torch.Tensor, f: float, axis: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Conservative range of ``f * X / Z`` (axis 0) or ``f * Y / Z`` (axis 1) over a sphere in front of the camera."""
    x, z = c[..., axis], c[..., 2]
    zn, zf = (z - r).clamp(min=1e-3), z + r
    hi = torch.maximum((x + r) / zn, (x + r) / zf)
    lo = torch.minimum((x - r) / zn, (x - r) / zf)
    return f * lo, f * hi


def render_capsules(
    a: torch.Tensor,
    b: torch.Tensor,
    radius: torch.Tensor,
    group: torch.Tensor,
    num_groups: int,
    height: int,
    width: int,
    intrinsics: tuple[float, float, float, float],
) -> torch.Tensor:
    """Z-buffer of capsule sets, one buffer per group (e.g. hand, other objects).

    Args:
        a, b: (B, C, 3) capsule segment end points, camera frame, mm.
        radius: (B, C) radii, mm; a capsule with radius <= 0 is skipped (an absent object).
        group: (B, C) int64 in [0, num_groups): which z-buffer the capsule is drawn into.
        num_groups: number of z-buffers.
        height, width: frame size.
        intrinsics: fx, fy, cx, cy.

    Returns:
        (B, num_groups, H, W) float32 depth (z, mm) of the nearest hit, ``inf`` where nothing is hit.
    """
    fx, fy, cx, cy = intrinsics
    n, c = radius.shape
    hw = height * width
    a, b, radius = a.float(), b.float(), radius.float()

    # Screen bounding box of each capsule = union of its two end spheres' boxes (perspective maps the convex hull
    # of the spheres to the convex hull of their images).
    ax0, ax1 = _sphere_bbox(a, radius, fx, 0)
    bx0, bx1 = _sphere_bbox(b, radius, fx, 0)
    ay0, ay1 = _sphere_bbox(a, radius, fy, 1)
    by0, by1 = _sphere_bbox(b, radius, fy, 1)
    x0 = (torch.minimum(ax0, bx0) + cx).floor().clamp(0, width - 1).long()
    x1 = (torch.maximum(ax1, bx1) + cx).ceil().clamp(-1, width - 1).long()
    y0 = (torch.minimum(ay0, by0) + cy).floor().clamp(0, height - 1).long()
    y1 = (torch.maximum(ay1, by1) + cy).ceil().clamp(-1, height - 1).long()
    nearest = torch.minimum(a[..., 2], b[..., 2]) - radius
    ok = (radius > 0) & (nearest > NEAR_MM)
    bw = (x1 - x0 + 1).clamp(min=0)
    bh = (y1 - y0 + 1).clamp(min=0)

    # Ray-capsule intersection (Inigo Quilez, "capsule - ray intersection") with the ray origin at the camera
    # centre and the unnormalized ray D = ((u - cx) / fx, (v - cy) / fy, 1), whose parameter is the depth itself.
    # The dot products with D are affine in (xn, yn), so they broadcast from per-capsule constants.
    ba = b - a
    baba = (ba * ba).sum(-1)
    baoa = -(ba * a).sum(-1)
    r2 = radius * radius
    c_body = baba * (a * a).sum(-1) - baoa * baoa - r2 * baba
    c_cap_a = (a * a).sum(-1) - r2
    c_cap_b = (b * b).sum(-1) - r2
    frame = torch.arange(n)[:, None].expand(n, c)
    base = (frame * num_groups + group) * hw  # start of the capsule's z-buffer
    consts = torch.stack(
        [ba[..., 0], ba[..., 1], ba[..., 2], -a[..., 0], -a[..., 1], -a[..., 2], baba, baoa, c_body, c_cap_a, c_cap_b,
         x0.float(), y0.float(), x1.float(), y1.float(), base.float()],
        0,
    ).reshape(16, n * c)

    # Each capsule is ray-cast over a tile at least as large as its bounding box; tiles come in a few sizes (steps
    # of ~1.4x), and all capsules of one tile size are done at once by broadcasting. Gathering per-pixel capsule
    # constants instead costs ~10x more per pixel on CPU than the arithmetic, which outweighs the padding.
    sizes = _TILE_SIZES
    wi = torch.searchsorted(sizes, bw.reshape(-1))
    hi = torch.searchsorted(sizes, bh.reshape(-1))
    key = torch.where(ok.reshape(-1) & (bw.reshape(-1) > 0) & (bh.reshape(-1) > 0), wi * len(sizes) + hi, -1)
    order = torch.argsort(key, stable=True)
    keys, counts = torch.unique_consecutive(key[order], return_counts=True)
    dump = n * num_groups * hw  # an extra z-buffer slot takes the tile pixels that fall off the frame
    depths, indices = [], []
    for k, sel in zip(keys.tolist(), torch.split(order, counts.tolist())):
        if k < 0:
            continue
        tw, th = int(sizes[k // len(sizes)]), int(sizes[k % len(sizes)])
        d, idx = _cast_tiles(consts.index_select(1, sel), tw, th, width, intrinsics, dump)
        depths.append(d.reshape(-1))
        indices.append(idx.reshape(-1))
    zbuf = torch.full((dump + 1,), float("inf"))
    if depths:
        zbuf.scatter_reduce_(0, torch.cat(indices), torch.cat(depths), reduce="amin")
    return zbuf[:-1].reshape(n, num_groups, height, width)


#: Tile edge lengths (px), ~1.4x apart.
_TILE_SIZES = torch.tensor([1, 2, 3, 4, 6, 8, 11, 16, 22, 32, 45, 64, 90, 128, 180, 256, 362, 512, 1024, 4096])


def _cast_tiles(
    consts: torch.Tensor, tw: int, th: int, width: int, intrinsics: tuple[float, float, float, float], dump: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Depth (m, th, tw) of m capsules over tiles anchored at their boxes' corners, and their z-buffer indices."""
    fx, fy, cx, cy = intrinsics
    bax, bay, baz, nax, nay, naz, baba, baoa, c_body, c_cap_a, c_cap_b, x0, y0, x1, y1, base = (
        t[:, None, None] for t in consts
    )
    xs = x0 + torch.arange(tw, dtype=torch.float32)[None, None, :]  # (m, 1, tw)
    ys = y0 + torch.arange(th, dtype=torch.float32)[None, :, None]  # (m, th, 1)
    xn, yn = (xs - cx) / fx, (ys - cy) / fy
    dd = xn * xn + yn * yn + 1.0  # |D|^2
    bard = (bax * xn + baz) + bay * yn  # ba . D
    rdoa = (nax * xn + naz) + nay * yn  # (o - a) . D
    qa = (baba * dd - bard * bard).clamp(min=1e-6)
    qb = baba * rdoa - baoa * bard
    h = qb * qb - qa * c_body
    t_body = (-qb - h.clamp(min=0).sqrt()) / qa
    y = baoa + t_body * bard
    body = (y > 0) & (y < baba)
    # Caps: the sphere at a when the body hit falls before a, else the sphere at b ((o - b) . D = rdoa - bard).
    use_a = y <= 0
    oc_dot = torch.where(use_a, rdoa, rdoa - bard)
    h2 = oc_dot * oc_dot - dd * torch.where(use_a, c_cap_a, c_cap_b)
    t_cap = (-oc_dot - h2.clamp(min=0).sqrt()) / dd
    depth = torch.where(body, t_body, torch.where(h2 > 0, t_cap, torch.inf))
    inside = (xs <= x1) & (ys <= y1)
    depth = torch.where((h >= 0) & (depth > 0) & inside, depth, torch.inf)
    index = torch.where(inside, (base + ys * width + xs).long(), dump)
    return depth, index


def render_planes(
    normal: torch.Tensor, offset: torch.Tensor, height: int, width: int, intrinsics: tuple[float, float, float, float]
) -> torch.Tensor:
    """Depth of the nearest of several planes ``normal . P = offset`` per frame.

    Args:
        normal: (B, P, 3) plane normals (any length); offset: (B, P). A plane with offset <= 0 is absent.

    Returns:
        (B, H, W) depth (z, mm), ``inf`` where no plane is hit in front of the camera.
    """
    rays = pixel_rays(height, width, intrinsics)  # (HW, 3), z = 1 so the ray parameter is the depth
    denom = torch.einsum("bpk,nk->bpn", normal.float(), rays)
    z = offset[..., None] / denom
    z = torch.where((denom > 0) & (offset[..., None] > 0), z, torch.inf)
    return z.amin(1).reshape(-1, height, width)
