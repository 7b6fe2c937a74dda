"""Calibration inputs for post-training quantization: frames like those the model will see.

A static int8 model fixes each activation's range from a calibration set, so the set must look like deployment
data: for a hand-pose model (a 1-channel input and a ``keypoints`` output), depth frames of the training split of
the procedural data set at the model's input size (generated once and cached: 32 frames take well under a second);
for any other model, seeded standard-normal inputs of its input shape.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import torch
from torch import Tensor

from effbench.profiler.runtimes.base import Workspace

#: Frames in a calibration set (MLPerf Tiny's calibration sets are of this order; more changes int8 ranges little).
FRAMES = 32
#: Data seed of the calibration frames (the training split's stream: never the test split that accuracy uses).
SEED = 0


def default_dir() -> Path:
    """Where calibration frames are cached by default: a folder in the system temp dir, never the home folder."""
    return Path(tempfile.gettempdir()) / "effbench-calibration"


def is_depth_model(workspace: Workspace) -> bool:
    """Whether the workspace's model takes depth frames: a ``(1, 1, H, W)`` input and a ``keypoints`` output."""
    x = workspace.example
    return x.dim() == 4 and x.shape[:2] == (1, 1) and "keypoints" in workspace.reference_outputs()


def frames(workspace: Workspace, n: int = FRAMES) -> list[Tensor]:
    """The workspace's own calibration inputs if it has them, else ``n`` made for it (:func:`_make`), each of the
    example's shape (shared by the runtimes of one workspace)."""
    if workspace.calibration is not None:
        return workspace.calibration
    return workspace.shared(f"calibration-{n}", lambda: _make(workspace, n))


def _make(workspace: Workspace, n: int) -> list[Tensor]:
    shape = tuple(workspace.example.shape)
    if is_depth_model(workspace):
        from effbench.data import SyntheticHands

        folder = workspace.calibration_dir or default_dir()
        data = SyntheticHands("train", n, SEED, cache_dir=folder, height=shape[2], width=shape[3])
        return list(data.tensors()["depth"].unsqueeze(1))
    g = torch.Generator().manual_seed(SEED)
    return [torch.randn(shape, generator=g) for _ in range(n)]
