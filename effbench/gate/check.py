"""Compare flat profile rows with budgets and the baseline; no profiling, no I/O, so it is tested on plain dicts.

For every gated model and metric the result holds one :class:`Check` (a line of the summary table). A check
fails when the value is past its budget (budgets are inclusive: a value exactly at its budget passes) or worse
than the baseline by more than the metric's relative tolerance (0 by default for counts and bytes; latency is
compared with the baseline only when a tolerance names it). Count and byte failures are errors; latency failures
are warnings unless the model's budget says ``latency = "error"``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from effbench.gate.budgets import ModelBudget
from effbench.gate.metrics import BUDGET_KEYS, LATENCY_RATIO_KEY, METRICS, Metric
from effbench.profiler.runtimes import RUNTIMES
from effbench.results.records import runtime_suffix as suffix

Row = Mapping[str, Any]

# Relative slack on exact comparisons, so that a budget written as 299.99 KB holds 299,990 bytes although
# 299.99 * 1000 is not exact in binary floating point.
_EPS = 1e-9


@dataclass
class Check:
    """One model and metric: the values, the bounds, and the verdict.

    Attributes:
        model: Model name.
        metric: Metric name (see :data:`effbench.gate.metrics.METRICS`).
        now: This run's value, in the metric's unit; None if not measured.
        baseline: The baseline's value, or None.
        budget: The bound, or None; ``bound`` says whether it is a ``max`` or a ``min``.
        tolerance: Relative tolerance against the baseline, or None when the baseline is not compared.
        status: ``ok``, ``fail`` (an error), ``warn`` (a latency violation that only warns) or ``skipped``.
        reasons: Why it did not pass: ``over budget``, ``under budget``, ``worse than baseline``...
    """

    model: str
    metric: str
    now: float | None
    baseline: float | None = None
    budget: float | None = None
    bound: Literal["max", "min"] | None = None
    tolerance: float | None = None
    status: Literal["ok", "fail", "warn", "skipped"] = "ok"
    reasons: list[str] = field(default_factory=list)

    @property
    def change(self) -> float | None:
        """Relative change from the baseline (0.1 = +10%), or None without a usable baseline."""
        if self.baseline is None or self.now is None or self.baseline == 0:
            return None
        return (self.now - self.baseline) / abs(self.baseline)

    def as_dict(self) -> dict[str, Any]:
        """JSON-friendly form, with the unit and the change."""
        m = METRICS.get(self.metric)
        return {
            "model": self.model, "metric": self.metric, "unit": m.unit if m else "", "baseline": self.baseline,
            "now": self.now, "change": self.change, "budget": self.budget, "bound": self.bound,
            "tolerance": self.tolerance, "status": self.status, "reasons": list(self.reasons),
        }


@dataclass
class GateResult:
    """Everything one gate run found.

    Attributes:
        checks: One per gated model and metric, in report order; failed models get a check with metric
            ``error``, a changed input shape one with metric ``input_shape``.
        notes: Things worth saying that pass (no baseline for a model, latency not measured...).
        models: Model name -> the profile row it was judged on.
        baseline_compared: Whether there was a baseline to compare with.
    """

    checks: list[Check] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    models: dict[str, dict[str, Any]] = field(default_factory=dict)
    baseline_compared: bool = True

    @property
    def failures(self) -> list[Check]:
        return [c for c in self.checks if c.status == "fail"]

    @property
    def warnings(self) -> list[Check]:
        return [c for c in self.checks if c.status == "warn"]

    @property
    def exit_code(self) -> int:
        """0 when every budget and the baseline hold (warnings allowed), 1 otherwise."""
        return 1 if self.failures else 0


def add_latency_ratios(rows: Mapping[str, dict[str, Any]], reference: str | None) -> None:
    """Set ``latency_ratio_1t`` (median 1-thread latency / the reference's, same run and runtime) on every row that
    can have it, under each runtime timed (``latency_ratio_1t_ort``...)."""
    ref = rows.get(reference) if reference else None
    for runtime in RUNTIMES:
        s = suffix(runtime)
        ref_ms = ref.get(f"latency_ms_1t{s}") if ref else None
        for row in rows.values():
            ms = row.get(f"latency_ms_1t{s}")
            if ref_ms and ms is not None:
                row[f"{LATENCY_RATIO_KEY}{s}"] = ms / ref_ms


def _budget_holds(value: float, budget: float, bound: str) -> bool:
    if bound == "max":
        return value <= budget + _EPS * abs(budget)
    return value >= budget - _EPS * abs(budget)


def _baseline_holds(metric: Metric, value: float, base: float, tolerance: float) -> bool:
    if metric.better == "lower":
        return value <= base * (1 + tolerance) + _EPS * abs(base)
    return value >= base * (1 - tolerance) - _EPS * abs(base)


def check_model(budget: ModelBudget, row: Row | None, baseline_row: Row | None) -> list[Check]:
    """Every check of one model.

    Args:
        budget: The model's merged budget (limits may be empty: then only the baseline gates it).
        row: This run's flat profile row; an ``error`` key means it could not be built or profiled.
        baseline_row: The baseline's row for this model, or None.
    """
    model = budget.model
    if row is None or row.get("error"):
        why = row.get("error") if row else "not profiled"
        return [Check(model, "error", None, status="fail", reasons=[f"could not profile: {why}"])]
    checks: list[Check] = []
    if baseline_row is not None and baseline_row.get("input_shape") not in (None, row.get("input_shape")):
        checks.append(Check(model, "input_shape", None, status="fail", reasons=[
            f"baseline measured at input {_shape(baseline_row['input_shape'])}, now {_shape(row.get('input_shape'))}; "
            "update the baseline"]))
        baseline_row = None
    bounds = {BUDGET_KEYS[k][0]: (v, BUDGET_KEYS[k][1]) for k, v in budget.limits.items()}
    compared = set(budget.baseline_metrics()) if baseline_row is not None else set()
    for name, metric in METRICS.items():
        if name not in bounds and name not in compared:
            continue
        budget_value, bound = bounds.get(name, (None, None))
        c = Check(model, name, metric.get(row), budget=budget_value, bound=bound)
        if name in compared:
            c.baseline = metric.get(baseline_row)
            c.tolerance = budget.tolerance.get(name, 0.0)
        if c.now is None:
            if budget_value is None and c.baseline is None:
                continue  # nothing to say: neither measured nor asked for
            # Latency is skipped on purpose (--no-latency); a count or byte the profiler did not give is a failure,
            # never a silent pass.
            c.status = "skipped" if metric.kind == "latency" else "fail"
            c.reasons.append("not measured")
        else:
            if budget_value is not None and not _budget_holds(c.now, budget_value, bound):
                c.reasons.append("over budget" if bound == "max" else "under budget")
            if c.baseline is not None and not _baseline_holds(metric, c.now, c.baseline, c.tolerance):
                slack = f" + {c.tolerance:.0%} tolerance" if c.tolerance else ""
                c.reasons.append(f"{'above' if metric.better == 'lower' else 'below'} baseline{slack}")
            if c.reasons:
                soft = metric.kind == "latency" and budget.latency != "error"
                c.status = "warn" if soft else "fail"
        checks.append(c)
    return checks


def check(
    budgets: Sequence[ModelBudget],
    rows: Mapping[str, Row],
    baseline: Mapping[str, Row] | None = None,
) -> GateResult:
    """Check every budgeted model.

    Args:
        budgets: One merged budget per gated model, in report order.
        rows: Model name -> this run's flat profile row (base units, as ``Profile.as_dict()``).
        baseline: Model name -> the baseline's row, or None when there is no baseline.

    Returns:
        The checks (with a verdict each) and notes.
    """
    result = GateResult(models={b.model: dict(rows.get(b.model) or {}) for b in budgets},
                        baseline_compared=baseline is not None)
    for budget in budgets:
        base_row = baseline.get(budget.model) if baseline is not None else None
        if baseline is not None and base_row is None:
            result.notes.append(f"{budget.model}: not in the baseline yet (`--update-baseline` adds it)")
        checks = check_model(budget, rows.get(budget.model), base_row)
        if any(c.status == "skipped" and METRICS[c.metric].kind == "latency" for c in checks if c.metric in METRICS):
            result.notes.append(f"{budget.model}: latency not measured, its latency budgets were not checked")
        result.checks += checks
    if baseline is not None:
        gone = sorted(set(baseline) - {b.model for b in budgets})
        if gone:
            result.notes.append(f"in the baseline but not gated: {', '.join(gone)}")
    return result


def _shape(shape: Any) -> str:
    return "x".join(map(str, shape)) if isinstance(shape, (list, tuple)) else str(shape)
