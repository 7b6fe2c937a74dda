"""effbench: efficiency benchmarking for tiny neural networks.

The pipeline: registry -> profile -> train/evaluate -> report -> gate. The names below import torch on first
use, not with the package, so that ``bench.py --help`` answers at once.
"""

from __future__ import annotations

import importlib
from typing import Any

from effbench.errors import UsageError

__version__ = "0.1.0"

#: Public name -> the module that defines it.
_LAZY: dict[str, str] = {
    "Profile": "effbench.profiler",
    "profile": "effbench.profiler",
    "create_model": "effbench.registry",
    "get_suite": "effbench.registry",
    "list_models": "effbench.registry",
    "list_suites": "effbench.registry",
    "register_model": "effbench.registry",
    "register_suite": "effbench.registry",
}

__all__ = ["UsageError", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
