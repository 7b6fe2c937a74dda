"""Frames per second of the synthetic hand generator (issue 4 target: >= 500 frames/s at 120 x 160).

Not part of the default run (see tests/conftest.py). Run with:

    python -m pytest tests/benchmarks/test_data_speed.py --benchmark-enable

Numbers mean something only on a quiet machine: the generator runs on one intra-op thread (see
effbench.data.dataset.generate_frames), so other processes on the cores slow it down directly.
"""

import pytest

from effbench.data.dataset import generate_frames
from effbench.data.scene import SceneConfig

FRAMES = 512


@pytest.mark.parametrize("effects", ["all", "none"])
def test_generate_frames_per_second(benchmark, effects):
    off = dict(background=False, occluders=False, noise=False, holes=False, flying_pixels=False)
    cfg = SceneConfig(**(off if effects == "none" else {}))
    generate_frames(64, 0, cfg)  # warm-up
    benchmark.pedantic(generate_frames, args=(FRAMES, 1, cfg), rounds=3, iterations=1)
    fps = FRAMES / benchmark.stats.stats.median
    benchmark.extra_info["frames_per_s"] = fps
    print(f"\n{effects} effects: {fps:.0f} frames/s at {cfg.height}x{cfg.width}")
