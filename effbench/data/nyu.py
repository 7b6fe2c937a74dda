"""A loader for the NYU Hand Pose data set layout (Tompson et al. 2014), yielding the SyntheticHands item format.

Layout: ``<root>/<split>/joint_data.mat`` with ``joint_uvd`` and ``joint_xyz`` of shape (kinects, frames, 36, 3)
and ``<root>/<split>/depth_<kinect>_<frame:07d>.png`` (frames counted from 1), whose depth in mm is
``green * 256 + blue``. Frames are 640 x 480 with fx = 588.03, fy = 587.07, cx = 320, cy = 240.

The 36 NYU points are named ``<finger>_KNU<segment>_<A|B>`` (F1 pinky ... F4 index, TH thumb; KNU3 distal,
KNU2 middle, KNU1 proximal segment; A the bone's far end, B its base joint) plus six PALM points. The 21-joint
skeleton takes each segment's base joint (B) and the distal segment's end (A, the tip), and the wrist as the
midpoint of PALM_1 and PALM_2 (the two sides of the wrist). Frames are downsampled to the requested size by
taking one pixel per block (nearest, so no depth is invented) and the labels are mapped with it.

NYU has no mask, visibility, keypose or handedness labels: ``mask`` is estimated (pixels inside the joints'
padded bounding box within the joints' depth range), ``visibility`` is in-frame and not occluded by a z-test
against the frame, ``keypose`` is -1 (unknown) and ``handedness`` is 1 (the recorded hand is a right hand).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from effbench.errors import UsageError

NYU_INTRINSICS = (588.03, 587.07, 320.0, 240.0)
NYU_SIZE = (480, 640)
#: NYU point index for each of our 21 joints (after the wrist, which averages PALM_1 and PALM_2).
NYU_TO_SKELETON: tuple[int, ...] = (
    29, 27, 25, 24,  # thumb: TH_KNU1_B (CMC), TH_KNU2_B (MCP), TH_KNU3_B (IP), TH_KNU3_A (tip)
    23, 21, 19, 18,  # index F4: KNU1_B (MCP), KNU2_B (PIP), KNU3_B (DIP), KNU3_A (tip)
    17, 15, 13, 12,  # middle F3
    11, 9, 7, 6,  # ring F2
    5, 3, 1, 0,  # pinky F1
)
NYU_WRIST = (30, 31)  # PALM_1, PALM_2
#: Occlusion tolerance of the z-test (mm): NYU joints lie inside the fitted hand model, about a finger radius deep.
_VIS_TOL_MM = 25.0


def read_nyu_depth(path: str | os.PathLike) -> np.ndarray:
    """Depth in mm (float32, H x W) from an NYU PNG: the high byte in green, the low byte in blue."""
    from PIL import Image

    rgb = np.asarray(Image.open(path).convert("RGB"))
    return (rgb[..., 1].astype(np.float32) * 256.0 + rgb[..., 2].astype(np.float32))


class NYUHands(Dataset):
    """NYU Hand Pose frames in the :class:`effbench.data.SyntheticHands` item format.

    Args:
        root: folder holding ``train/`` and ``test/``.
        split: "train" or "test".
        kinect: which of the three cameras (1, 2 or 3).
        height, width: output frame size; 480 x 640 must be a whole multiple of it.
        max_frames: use only the first frames (None: all).
    """

    def __init__(
        self,
        root: str | os.PathLike,
        split: str = "train",
        kinect: int = 1,
        height: int = 120,
        width: int = 160,
        max_frames: int | None = None,
    ) -> None:
        from scipy.io import loadmat

        self.folder = Path(root) / split
        mat_path = self.folder / "joint_data.mat"
        if not mat_path.exists():
            raise UsageError(f"no NYU joint file at {mat_path}; expected <root>/{{train,test}}/joint_data.mat")
        if NYU_SIZE[0] % height or NYU_SIZE[1] % width or NYU_SIZE[0] // height != NYU_SIZE[1] // width:
            raise UsageError(f"NYU frames are 480x640; {height}x{width} is not a whole-factor downsampling of it")
        mat = loadmat(mat_path)
        uvd = np.asarray(mat["joint_uvd"], dtype=np.float64)
        if uvd.ndim != 4 or uvd.shape[2:] != (36, 3):
            raise UsageError(f"{mat_path}: joint_uvd has shape {uvd.shape}, expected (kinects, frames, 36, 3)")
        if not 1 <= kinect <= uvd.shape[0]:
            raise UsageError(f"kinect must be 1..{uvd.shape[0]}, got {kinect}")
        self.kinect = kinect
        self.height, self.width = height, width
        self.factor = NYU_SIZE[1] // width
        uvd = uvd[kinect - 1]
        if max_frames is not None:
            uvd = uvd[:max_frames]
        self.size = len(uvd)
        joints_uvd = np.concatenate([uvd[:, list(NYU_WRIST)].mean(1, keepdims=True), uvd[:, list(NYU_TO_SKELETON)]], 1)
        fx, fy, cx, cy = NYU_INTRINSICS
        s = self.factor
        # Our camera frame (y down, docs/conventions.md) from (u, v, d); NYU's own joint_xyz has y up.
        z = joints_uvd[..., 2]
        self._joints = torch.from_numpy(
            np.stack([(joints_uvd[..., 0] - cx) * z / fx, (joints_uvd[..., 1] - cy) * z / fy, z], -1)
        ).float()
        # Pixel (u, v) of the full frame -> (u + 0.5) / s - 0.5 of the downsampled one (pixel centres at integers).
        self._keypoints = torch.from_numpy((joints_uvd[..., :2] + 0.5) / s - 0.5).float()
        self.intrinsics = (fx / s, fy / s, (cx + 0.5) / s - 0.5, (cy + 0.5) / s - 0.5)

    def __len__(self) -> int:
        return self.size

    def _depth(self, index: int) -> torch.Tensor:
        path = self.folder / f"depth_{self.kinect}_{index + 1:07d}.png"
        if not path.exists():
            raise UsageError(f"missing NYU depth frame {path}")
        full = read_nyu_depth(path)
        s = self.factor
        return torch.from_numpy(np.ascontiguousarray(full[s // 2 :: s, s // 2 :: s]))

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        if not -self.size <= index < self.size:
            raise IndexError(f"index {index} out of range for {self.size} frames")
        index %= self.size
        depth = self._depth(index)
        h, w = depth.shape
        kp, joints = self._keypoints[index], self._joints[index]
        ui, vi = kp[:, 0].round().long(), kp[:, 1].round().long()
        inside = (ui >= 0) & (ui < w) & (vi >= 0) & (vi < h)
        seen = depth[vi.clamp(0, h - 1), ui.clamp(0, w - 1)]
        visible = inside & ((seen <= 0) | (seen >= joints[:, 2] - _VIS_TOL_MM))
        # Mask estimate: inside the joints' box padded by 15% (+2 px) and within their depth range +-40 mm.
        lo, hi = kp.amin(0), kp.amax(0)
        pad = 0.15 * (hi - lo) + 2.0
        ys, xs = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
        box = (xs >= lo[0] - pad[0]) & (xs <= hi[0] + pad[0]) & (ys >= lo[1] - pad[1]) & (ys <= hi[1] + pad[1])
        band = (depth >= joints[:, 2].min() - 40.0) & (depth <= joints[:, 2].max() + 40.0)
        return {
            "depth": depth[None].float(),
            "joints_3d": joints.clone(),
            "keypoints_2d": kp.clone(),
            "visibility": visible.float(),
            "mask": (box & band)[None].float(),
            "keypose": torch.tensor(-1),
            "handedness": torch.tensor(1),
            "intrinsics": torch.tensor(self.intrinsics, dtype=torch.float32),
            "has_hand": torch.tensor(True),
        }

    def tensors(self) -> dict[str, torch.Tensor]:
        """Every item key stacked over the split (reads every frame: mind ``max_frames`` on the full set)."""
        items = [self[i] for i in range(self.size)]
        return {k: torch.stack([it[k] for it in items]) for k in items[0]}
