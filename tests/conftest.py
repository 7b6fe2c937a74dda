"""Shared test configuration.

``tests/benchmarks/`` holds pytest-benchmark latency benchmarks: they take minutes and their numbers mean
something only on a quiet machine, so the default run (``python -m pytest``) does not collect them. Run them with
``python -m pytest tests/benchmarks --benchmark-enable``.

Tests marked ``slow`` (whole suites end to end, ImageNet-sized profiles) run by default; ``python -m pytest -m "not
slow"`` leaves them out for a run of under a minute while working.

Torch runs on one thread in every test (the ``one_thread`` fixture). Tests leave nothing in the home folder: the
synthetic data cache (``EFFBENCH_CACHE``) and matplotlib's font cache (``MPLCONFIGDIR``) go to a temporary folder
for the session, inherited by spawned worker processes too.
"""

import os
import shutil
import tempfile
from pathlib import Path

import pytest

_BENCHMARKS = Path(__file__).parent / "benchmarks"
_SCRATCH = Path(tempfile.mkdtemp(prefix="effbench-tests-"))
os.environ["EFFBENCH_CACHE"] = str(_SCRATCH / "data")
os.environ["MPLCONFIGDIR"] = str(_SCRATCH / "matplotlib")


def pytest_ignore_collect(collection_path: Path, config) -> bool | None:
    if collection_path == _BENCHMARKS and not config.getoption("benchmark_enable", False):
        return True
    return None


def pytest_unconfigure(config) -> None:
    shutil.rmtree(_SCRATCH, ignore_errors=True)


@pytest.fixture(scope="session", autouse=True)
def one_thread():
    """Torch on one thread for every test: test machines share their cores, and OpenMP threads contending with other
    processes are many times slower than one (the MobileNet model tests: 46 s on 2 threads, 9 s on one, on a busy
    2-core machine). Tests of multi-thread latency pass their thread count explicitly."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> str:
    """A data cache folder shared by the training tests of one module."""
    return str(tmp_path_factory.mktemp("data-cache"))
