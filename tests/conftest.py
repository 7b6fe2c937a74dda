"""Shared test configuration.

``tests/benchmarks/`` holds pytest-benchmark latency benchmarks: they take minutes and their numbers mean
something only on a quiet machine, so the default run (``python -m pytest``) does not collect them. Run them with
``python -m pytest tests/benchmarks --benchmark-enable``.

Tests marked ``slow`` (whole suites end to end, ImageNet-sized profiles) run by default; ``python -m pytest -m "not
slow"`` leaves them out for a run of under a minute while working.

Tests leave nothing in the home folder: the synthetic data cache (``EFFBENCH_CACHE``) and matplotlib's font cache
(``MPLCONFIGDIR``) go to a temporary folder for the session, inherited by spawned worker processes too.
"""

import os
import shutil
import tempfile
from pathlib import Path

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
