"""How long profiling takes: effbench's profile against fvcore alone and thop alone, per model, in the same run.

Not part of the default test run (see tests/conftest.py). Run with:

    python -m pytest tests/benchmarks/test_profile_speed.py --benchmark-enable --benchmark-group-by=param:name

Per model, the groups hold: ``effbench_count`` (op-level MACs/FLOPs, module breakdown and peak memory, one traced
forward), ``fvcore`` (FlopCountAnalysis, a JIT trace), ``thop`` (module hooks, on a copy as effbench runs it),
and ``effbench_full`` (everything ``bench.py profile`` does: count, memory, the three peers, latency on 1 and
all threads). ``test_embedded_suite_under_30s`` checks the target of issue 2 (a quiet machine is assumed).
"""

import time

import pytest
import torch

from effbench import profile, registry
from effbench.errors import UsageError
from effbench.profiler import peers


def _models() -> list[str]:
    try:
        names = registry.get_suite("embedded").models()
    except UsageError:
        names = []
    return names + ["mobilenet_v2_100_imagenet"]


def _build(name: str) -> tuple[torch.nn.Module, torch.Tensor]:
    model = registry.create_model(name)
    model = model.deployable() if hasattr(model, "deployable") else model
    return model.eval(), torch.randn(registry.model_info(name).input_shape)


@pytest.mark.parametrize("name", _models())
@pytest.mark.parametrize("tool", ["effbench_count", "fvcore", "thop", "effbench_full"])
def test_profile_time(benchmark, name, tool):
    model, x = _build(name)
    shape = tuple(x.shape)
    run = {
        "effbench_count": lambda: profile(model, shape, latency=False, peers=False),
        "fvcore": lambda: peers.fvcore_count(model, x),
        "thop": lambda: peers.thop_count(model, x),
        "effbench_full": lambda: profile(model, shape),
    }[tool]
    benchmark.group = name
    result = benchmark.pedantic(run, rounds=3 if tool != "effbench_full" else 1, iterations=1, warmup_rounds=1)
    macs = result.macs
    assert macs and macs > 0


def test_embedded_suite_under_30s():
    try:
        names = registry.get_suite("embedded").models()
    except UsageError:
        pytest.skip("no embedded suite registered")
    start = time.perf_counter()
    for name in names:
        model, x = _build(name)
        profile(model, tuple(x.shape))
    elapsed = time.perf_counter() - start
    print(f"embedded suite ({len(names)} models) profiled with latency and peers in {elapsed:.1f} s")
    assert elapsed <= 30, f"{elapsed:.1f} s for {len(names)} models"
