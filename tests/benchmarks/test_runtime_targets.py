"""The deployment targets of the tiny net under ONNX Runtime fp32, on one thread, batch 1, at 120 x 160: at least
5,000 Hz, at least 30x mobilenet_v2_100's rate, and within 5x of the roofline time (its MACs at this core's fp32
GEMM rate).

Not part of the default test run (see tests/conftest.py). Run on a quiet machine with:

    python -m pytest tests/benchmarks/test_runtime_targets.py --benchmark-enable -s

The models are timed as ``bench.py profile`` times them: together, in interleaved rounds, so the ratio cancels the
machine's drift; the round trip is repeated ``REPEATS`` times in this process and the median of each figure checked
(the spread is printed). A failure here is a target missed on this machine, not a broken build.
"""

from __future__ import annotations

import statistics

import pytest

from effbench.measure import profile_targets, registered
from effbench.profiler import TimingConfig

MODEL, REFERENCE = "tiny_hand", "mobilenet_v2_100"
MIN_HZ, MIN_RATIO, MAX_ROOFLINE_MULTIPLE = 5000.0, 30.0, 5.0
REPEATS = 5
#: Ten windows a round: a longer look than a profile's five, for a target.
TIMING = TimingConfig(windows=10, budget_s=0.7, max_s=2.0)


@pytest.fixture(scope="module")
def figures() -> dict[str, list[float]]:
    out: dict[str, list[float]] = {"hz": [], "ratio": [], "roofline_multiple": []}
    targets = [registered(MODEL), registered(REFERENCE)]
    for _ in range(REPEATS):
        tiny, ref = (p.as_dict() for p in profile_targets(targets, latency=True, runtimes=("ort",), peers=False,
                                                           timing=TIMING))
        out["hz"].append(tiny["hz_1t_ort"])
        out["ratio"].append(ref["latency_ms_1t_ort"] / tiny["latency_ms_1t_ort"])
        out["roofline_multiple"].append(1.0 / tiny["roofline_frac_1t_ort"])  # its time over its MACs' roofline time
    for key, values in out.items():
        print(f"\n{MODEL} under ort, {key}: median {statistics.median(values):.2f} (min {min(values):.2f}, max "
              f"{max(values):.2f}, {REPEATS} rounds)")
    return out


def test_rate(figures):
    assert statistics.median(figures["hz"]) >= MIN_HZ


def test_ratio_to_mobilenet_v2(figures):
    assert statistics.median(figures["ratio"]) >= MIN_RATIO


def test_within_5x_of_the_roofline(figures):
    assert statistics.median(figures["roofline_multiple"]) <= MAX_ROOFLINE_MULTIPLE
