"""Latency of every deployable hand-pose model, with pytest-benchmark (batch 1, one thread, inference mode).

Not part of the default test run (see tests/conftest.py). Run, save, and compare against the last saved run:

    python -m pytest tests/benchmarks --benchmark-enable --benchmark-autosave
    python -m pytest tests/benchmarks --benchmark-enable --benchmark-compare --benchmark-compare-fail=median:10%

``--benchmark-compare-fail`` inside the pytest run is what fails a build; ``pytest-benchmark compare`` on its own
cannot (pytest-benchmark #273). Absolute times are machine-dependent: compare runs from the same machine.
"""

import pytest
import torch

from effbench import registry
from effbench.errors import UsageError


def _deployable_models() -> list[str]:
    # The embedded suite and its reference model; without that suite, every hand-pose model (the profile-only
    # ones take other inputs and exist to check the counters, not to be deployed here).
    try:
        suite = registry.get_suite("embedded")
    except UsageError:
        return [n for n in registry.list_models() if not registry.model_info(n).profile_only]
    names = suite.models()
    return names + [suite.reference] if suite.reference and suite.reference not in names else names


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    # The embedded-like figure (docs/conventions.md): one thread, so the number does not depend on the runner's
    # core count.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.mark.parametrize("name", _deployable_models())
def test_latency_1t(benchmark, name):
    info = registry.model_info(name)
    model = registry.create_model(name)
    if callable(getattr(model, "deployable", None)):
        model = model.deployable()
    model.eval()
    generator = torch.Generator().manual_seed(0)
    frame = 300 + 700 * torch.rand(info.input_shape, generator=generator)  # a depth frame, 0.3 to 1 m
    benchmark.group = "latency_1t"
    benchmark.extra_info.update(input_shape=list(info.input_shape), params=sum(p.numel() for p in model.parameters()))
    with torch.inference_mode():
        for _ in range(3):  # warm-up outside the timed rounds
            model(frame)
        out = benchmark(model, frame)
    keypoints = out["keypoints"] if isinstance(out, dict) else out
    assert torch.isfinite(keypoints).all()
