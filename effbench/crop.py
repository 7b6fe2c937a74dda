"""The crop contract of two-stage hand-pose models: where in the frame the second stage looked.

A two-stage model first locates the hand in the whole frame, then runs its keypoint network on a square crop around
it, resampled to ``size x size`` pixels. Its output then carries ``"crop"``, a ``(B, 4)`` tensor per frame:
``(scale, offset_x, offset_y, size)``, such that a crop pixel ``(j, i)`` is the frame pixel
``(j * scale + offset_x, i * scale + offset_y)`` (pixel centres at integers in both). Its ``"keypoints"`` are in frame
pixels like every model's; its ``"heatmaps"`` and ``"seg"`` are in the crop's, and the losses and metrics map their
labels into the crop with the functions here.

A crop's side in pixels is the camera's focal length times its side in millimetres over the hand's distance, so the
crop stage holds the focal length (px) as its ``focal_px`` attribute; :func:`use_camera` sets it from the data.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

#: The keys a two-stage model's output adds: its crop and its first stage's hand centre logits (1/16 map), centre
#: (B, 2) px and distance (B,) mm, which :func:`effbench.train.losses.locator_loss` trains.
CROP_KEYS = frozenset({"crop", "centre_logits", "hand_centre", "hand_z"})


def use_camera(model: torch.nn.Module, focal_px: float) -> torch.nn.Module:
    """Give every crop stage of ``model`` (each submodule with a ``focal_px``) the camera's focal length in px.

    A two-stage model built for one camera and fed another's frames crops the hand at the wrong scale: measured on
    ``tiny_hand_crop``, 15-24% higher EPE at a 50 or 70 degree field of view (trained at 60) when not told. A model with
    no crop stage is returned unchanged.
    """
    for module in model.modules():
        if hasattr(module, "focal_px"):
            module.focal_px = float(focal_px)
    return model


def to_crop(points: Tensor, crop: Tensor) -> Tensor:
    """(B, K, 2) frame px -> crop px of each frame's crop."""
    return (points - crop[:, None, 1:3]) / crop[:, None, :1]


def to_frame(points: Tensor, crop: Tensor) -> Tensor:
    """(B, K, 2) crop px -> frame px."""
    return points * crop[:, None, :1] + crop[:, None, 1:3]


def clamp_to_frame(points: Tensor, height: int, width: int) -> Tensor:
    """(..., 2) px held within the frame's pixel centres, ``[0, W-1] x [0, H-1]`` (one clip and one min)."""
    last = torch.tensor([width - 1, height - 1], dtype=points.dtype, device=points.device)
    return torch.minimum(points.clamp(min=0), last)


def _positions(crop: Tensor, size: int) -> Tensor:
    """(B, 2, size): the frame x of each crop column and the frame y of each crop row, px."""
    j = torch.arange(size, dtype=crop.dtype, device=crop.device)
    return j * crop[:, 0:1, None] + crop[:, 1:3, None]


def crop_grid(crop: Tensor, size: int, height: int, width: int) -> Tensor:
    """The ``(B, size, size, 2)`` sampling grid of ``F.grid_sample`` (``align_corners=False``) for each crop.

    Built from broadcast affines rather than ``F.affine_grid``: elementwise ops that every exporter and runtime has.
    Frame pixel ``x`` is normalised coordinate ``(2 x + 1) / W - 1``.
    """
    pos = _positions(crop, size)
    gx = (2 * pos[:, 0] + 1) / width - 1  # (B, size)
    gy = (2 * pos[:, 1] + 1) / height - 1
    return torch.stack([gx[:, None, :].expand(-1, size, -1), gy[:, :, None].expand(-1, -1, size)], -1)


def crop_frames(frames: Tensor, crop: Tensor, size: int) -> Tensor:
    """Resample ``(B, C, H, W)`` frames into their ``size x size`` crops, nearest pixel; outside the frame reads 0
    (a hole).

    Nearest, because interpolating across a depth edge would invent surfaces between the hand and the wall (flying
    pixels). One gather from the frame padded by a pixel of zeros, at indices held within the padding, rather than
    ``grid_sample``: the same pixels, but ONNX Runtime's GridSample took ~200 us per frame on a 2-core Xeon, longer
    than the whole one-stage network, and every op here is a cheap elementwise one.
    """
    b, c, height, width = frames.shape
    # (B, 2, size): the nearest frame column (x) and row (y) of each crop column and row; pixel centres are at
    # integers, so the nearest pixel of x is floor(x + 0.5). Anything outside lands on the zero padding.
    pos = torch.floor(_positions(crop, size) + 0.5)
    last = torch.tensor([[width], [height]], dtype=crop.dtype, device=crop.device)
    pos = (torch.minimum(pos.clamp(min=-1), last) + 1).long()
    index = pos[:, 1, :, None] * (width + 2) + pos[:, 0, None, :]  # (B, size, size) into the padded frame
    padded = F.pad(frames, (1, 1, 1, 1)).flatten(2)  # (B, C, (H + 2) (W + 2))
    picked = padded.gather(2, index.flatten(1)[:, None, :].expand(-1, c, -1))
    return picked.view(b, c, size, size)


def mask_for(out: dict[str, Tensor], mask: Tensor) -> Tensor:
    """A ``(B, 1, H, W)`` frame mask in the pixels of a model's ``seg`` output: the frame's, or its crop's."""
    return mask if "crop" not in out else crop_mask(mask, out["crop"])


def crop_mask(mask: Tensor, crop: Tensor) -> Tensor:
    """A ``(B, 1, H, W)`` 0/1 frame mask in each frame's crop (bilinear: a soft border), at the crop's size."""
    size = int(crop[0, 3])
    grid = crop_grid(crop, size, *mask.shape[-2:])
    return F.grid_sample(mask.to(crop.dtype), grid, mode="bilinear", padding_mode="zeros", align_corners=False)
