"""The CI gate: hold each model to its budgets and to the committed baseline (``python bench.py gate``).

- :mod:`~effbench.gate.metrics`: the gated metrics and their units (KB = 1000 bytes).
- :mod:`~effbench.gate.budgets`: read and validate ``[tool.effbench.budgets]``.
- :mod:`~effbench.gate.baseline`: write and read the baseline JSON.
- :mod:`~effbench.gate.check`: compare flat profile rows with budgets and baseline.
- :mod:`~effbench.gate.format`: violation lines, summary table, markdown, JSON.
- :mod:`~effbench.gate.runner`: build, profile and check the gated models.
"""

from effbench.gate.baseline import read_baseline, write_baseline
from effbench.gate.budgets import Budgets, ModelBudget, load_budgets
from effbench.gate.check import Check, GateResult, check
from effbench.gate.runner import run_gate

__all__ = [
    "Budgets",
    "Check",
    "GateResult",
    "ModelBudget",
    "check",
    "load_budgets",
    "read_baseline",
    "run_gate",
    "write_baseline",
]
