"""Training: configuration, losses, loss balancing and the loop; records go to the results store
(:mod:`effbench.results`).

Public API::

    from effbench.train import TrainConfig, run, run_many
    record = run(TrainConfig(model="tiny_hand", aux=True, seed=0, steps=2000), "runs")

``run`` and ``run_many`` import torch when first used, so that the command line's ``--help`` (which reads the
config's fields) stays fast.
"""

from __future__ import annotations

import importlib
from typing import Any

from effbench.train.config import TrainConfig

__all__ = ["TrainConfig", "run", "run_many"]


def __getattr__(name: str) -> Any:
    if name in ("run", "run_many"):
        return getattr(importlib.import_module("effbench.train.loop"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
