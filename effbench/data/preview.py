"""A PNG contact sheet of frames with their labels drawn on them, for a person to look at.

Each tile: depth in grey (near = bright, no return = black), the hand mask tinted orange, the skeleton's bones
coloured per finger, keypoints as filled dots when visible and hollow red rings when not (occluded or off the
frame), and the keypose and handedness (or "no hand") written in the corner.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

from effbench.data.skeleton import HANDEDNESS, KEYPOSES, PARENTS

_FINGER_COLOURS = ((255, 80, 80), (255, 200, 0), (80, 220, 80), (0, 200, 255), (200, 120, 255))


def _tile(item: dict[str, torch.Tensor], zoom: int) -> Image.Image:
    depth = item["depth"][0].float().numpy()
    mask = item["mask"][0].numpy() > 0.5
    valid = depth > 0
    grey = np.zeros_like(depth)
    if valid.any():
        lo, hi = np.percentile(depth[valid], [1, 99])
        grey = np.where(valid, 1.0 - np.clip((depth - lo) / max(hi - lo, 1.0), 0, 1) * 0.8, 0.0)
    rgb = np.repeat((grey * 255)[..., None], 3, -1)
    rgb[mask] = 0.55 * rgb[mask] + 0.45 * np.array([255, 140, 0])
    img = Image.fromarray(rgb.astype(np.uint8)).resize((depth.shape[1] * zoom, depth.shape[0] * zoom), Image.NEAREST)
    draw = ImageDraw.Draw(img)
    if bool(item["has_hand"]):
        kp = (item["keypoints_2d"].numpy() + 0.5) * zoom
        vis = item["visibility"].numpy() > 0.5
        for j, p in enumerate(PARENTS):
            if p >= 0:
                draw.line([tuple(kp[p]), tuple(kp[j])], fill=_FINGER_COLOURS[(j - 1) // 4], width=1)
        for j, (x, y) in enumerate(kp):
            r = 2.5
            if vis[j]:
                draw.ellipse([x - r, y - r, x + r, y + r], fill=_FINGER_COLOURS[max(j - 1, 0) // 4])
            else:
                draw.ellipse([x - r, y - r, x + r, y + r], outline=(255, 0, 0))
        label = f"{KEYPOSES[int(item['keypose'])]} {HANDEDNESS[int(item['handedness'])]}"
    else:
        label = "no hand"
    draw.rectangle([0, 0, 6 * len(label) + 4, 12], fill=(0, 0, 0))
    draw.text((2, 0), label, fill=(255, 255, 255))
    return img


def save_preview(items: list[dict[str, torch.Tensor]], path: str | Path, columns: int = 4, zoom: int = 2) -> Path:
    """Draw ``items`` (dicts of one frame each) into a grid PNG at ``path``; returns the path."""
    tiles = [_tile(it, zoom) for it in items]
    w, h = tiles[0].size
    rows = (len(tiles) + columns - 1) // columns
    sheet = Image.new("RGB", (columns * w + (columns - 1) * 2, rows * h + (rows - 1) * 2), (40, 40, 40))
    for i, t in enumerate(tiles):
        sheet.paste(t, ((i % columns) * (w + 2), (i // columns) * (h + 2)))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(path)
    return path
