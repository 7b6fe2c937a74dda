"""The report stage: tables, Pareto plots, ``report.md`` and flat results files, built from the results store alone.

The results store (see :mod:`effbench.results.store`) holds one run record per trained (model, aux, seed), one
profile per deployable model and a manifest naming the suite, its reference model, the budget and the planned
runs. Everything in the report is computed from those files, so ``bench.py report --runs DIR`` rebuilds it byte
for byte.
"""

from effbench.report.build import build_report
from effbench.report.frame import results_frame
from effbench.report.pareto import pareto_front

__all__ = ["build_report", "pareto_front", "results_frame"]
