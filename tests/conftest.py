"""Shared test configuration.

``tests/benchmarks/`` holds pytest-benchmark latency benchmarks: they take minutes and their numbers mean
something only on a quiet machine, so the default run (``python -m pytest``) does not collect them. Run them with
``python -m pytest tests/benchmarks --benchmark-enable``.
"""

from pathlib import Path

_BENCHMARKS = Path(__file__).parent / "benchmarks"


def pytest_ignore_collect(collection_path: Path, config) -> bool | None:
    if collection_path == _BENCHMARKS and not config.getoption("benchmark_enable", False):
        return True
    return None
