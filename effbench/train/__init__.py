"""Training: configuration, losses, loss balancing, the loop, and the results store.

Public API::

    from effbench.train import TrainConfig, run, run_many
    record = run(TrainConfig(model="tiny_hand", aux=True, seed=0, steps=2000), "runs")
"""

from effbench.train.config import TrainConfig
from effbench.train.loop import run, run_many
from effbench.train.store import load_records

__all__ = ["TrainConfig", "load_records", "run", "run_many"]
