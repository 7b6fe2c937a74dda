"""Gate output: one line per violation (after size-limit), then a summary table of every gated model and metric.

A violation line reads ``FAIL tiny_hand mflops: 33.120 MFLOPs -> 36.250 MFLOPs (+9.5%), budget 35 MFLOPs:
over budget``: model, metric, baseline -> now, the change, the budget, and why. Text for logs, markdown for a
pull-request comment, JSON for dashboards.
"""

from __future__ import annotations

from typing import Any

from tabulate import tabulate

from effbench.gate.check import Check, GateResult
from effbench.gate.metrics import METRICS
from effbench.results import json_text

_STATUS = {"ok": "ok", "fail": "FAIL", "warn": "warn", "skipped": "skipped"}


def _value(c: Check, value: float | None) -> str:
    m = METRICS.get(c.metric)
    return m.format(value) if m else "-"


def _budget(c: Check) -> str:
    if c.budget is None:
        return "-"
    number = f"{int(c.budget):,}" if float(c.budget).is_integer() else f"{c.budget:,}"
    unit = METRICS[c.metric].unit
    text = f"{number} {unit}" if unit else number
    return f">= {text}" if c.bound == "min" else text


def _change(c: Check) -> str:
    change = c.change
    if change is None:
        return "-"
    return f"{change:+.1%}"


def violation_line(c: Check) -> str:
    """``FAIL model metric: baseline -> now (+x%), budget B: why`` (``warn`` for a latency warning)."""
    head = f"{_STATUS[c.status]} {c.model} {c.metric}"
    if c.metric not in METRICS:  # a model that failed to profile, or a changed input shape
        return f"{head}: {'; '.join(c.reasons)}"
    base = _value(c, c.baseline) if c.baseline is not None else "(no baseline)"
    change = f" ({_change(c)})" if c.change is not None else ""
    budget = f"budget {_budget(c)}" if c.budget is not None else "no budget"
    return f"{head}: {base} -> {_value(c, c.now)}{change}, {budget}: {', '.join(c.reasons)}"


def _table_rows(result: GateResult) -> list[list[str]]:
    rows = []
    for c in result.checks:
        if c.metric not in METRICS:
            rows.append([c.model, c.metric, "-", "-", "-", "-", _STATUS[c.status]])
            continue
        rows.append([c.model, c.metric, _value(c, c.baseline), _value(c, c.now), _change(c), _budget(c),
                     _STATUS[c.status]])
    return rows


_HEADERS = ["model", "metric", "baseline", "now", "change", "budget", "status"]
_ALIGN = ("left", "left", "right", "right", "right", "right", "left")


def summary(result: GateResult) -> str:
    """One sentence: passed or failed, how many violations and warnings, over how many models."""
    n_models = len(result.models)
    fails, warns = len(result.failures), len(result.warnings)
    warn_text = f", {warns} warning{'s' * (warns != 1)}" if warns else ""
    models = f"{n_models} model{'s' * (n_models != 1)}"
    if fails:
        return f"gate FAILED: {fails} violation{'s' * (fails != 1)}{warn_text} over {models}"
    against = "budget and baseline" if result.baseline_compared else "budget (no baseline compared)"
    return f"gate passed: {models} within {against}{warn_text}"


def format_text(result: GateResult, header: str = "") -> str:
    """Plain text for CI logs: header, violation lines, the table, notes, the summary."""
    parts = [header] if header else []
    lines = [violation_line(c) for c in result.failures + result.warnings]
    if lines:
        parts.append("\n".join(lines))
    parts.append(tabulate(_table_rows(result), headers=_HEADERS, colalign=_ALIGN, disable_numparse=True))
    if result.notes:
        parts.append("\n".join(f"note: {n}" for n in result.notes))
    parts.append(summary(result))
    return "\n\n".join(parts) + "\n"


def format_markdown(result: GateResult, header: str = "") -> str:
    """Markdown for a pull-request comment: a heading with the verdict, violations as code, the table."""
    verdict = "FAILED" if result.failures else "passed"
    parts = [f"### effbench gate {verdict}", summary(result) + "."]
    if header:
        parts.append(header)
    lines = [violation_line(c) for c in result.failures + result.warnings]
    if lines:
        parts.append("```\n" + "\n".join(lines) + "\n```")
    parts.append(tabulate(_table_rows(result), headers=_HEADERS, tablefmt="github", colalign=_ALIGN,
                          disable_numparse=True))
    if result.notes:
        parts.append("\n".join(f"- {n}" for n in result.notes))
    return "\n\n".join(parts) + "\n"


def as_json_dict(result: GateResult, **context: Any) -> dict[str, Any]:
    """Everything, JSON-serialisable: verdict, exit code, violations (with their line), checks, notes, rows."""
    return {
        "ok": not result.failures,
        "exit_code": result.exit_code,
        **context,
        "violations": [{**c.as_dict(), "line": violation_line(c)} for c in result.failures + result.warnings],
        "checks": [c.as_dict() for c in result.checks],
        "notes": list(result.notes),
        "models": result.models,
    }


def format_json(result: GateResult, **context: Any) -> str:
    """:func:`as_json_dict` by effbench's JSON rule (:func:`effbench.results.json_text`), non-finite floats as null."""
    return json_text(_finite(as_json_dict(result, **context)))


def _finite(obj: Any) -> Any:
    # NaN and infinity are not JSON (strict parsers, browsers and jq reject them); a dashboard reads null.
    if isinstance(obj, float) and (obj != obj or obj in (float("inf"), float("-inf"))):
        return None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    return obj
