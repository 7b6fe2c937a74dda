"""The report stage: tables, Pareto plots, ``report.md`` and flat results files, built from the results store alone.

The results store (see :mod:`effbench.report.store`) holds one run record per trained (model, aux, seed), one
profile per deployable model and a manifest naming the suite, its reference model, the budget and the planned
runs. Everything in the report is computed from those files, so ``bench.py report --runs DIR`` rebuilds it byte
for byte.
"""

from effbench.report.build import build_report
from effbench.report.pareto import pareto_front
from effbench.report.store import Store, load_store, results_frame

__all__ = ["Store", "build_report", "load_store", "pareto_front", "results_frame"]
