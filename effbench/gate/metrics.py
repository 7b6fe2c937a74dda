"""The metrics a gate can hold a model to, one handle each, read from a flat profile row.

A profile row (``Profile.as_dict()``) is in base units: counts, bytes, milliseconds, Hz. A gate metric is a
named view of that row in the unit people write budgets in:

- ``KB`` is 1000 bytes (not KiB), so "under 300 KB" and "under 300,000 bytes" are the same budget.
- ``mflops`` is FLOPs / 1e6, where FLOPs = 2 x MACs + one per output element of every other arithmetic op
  (docs/conventions.md); it never means MACs.
- The deployed footprint is weight bytes + peak activation bytes at one precision: ``footprint_kb_int8`` is
  int8 weights + int8 peak activations (what an int8 runtime on a microcontroller holds), ``footprint_kb_fp32``
  the same at fp32.
- ``latency_ratio_1t`` is this model's median 1-thread latency over the reference model's, both measured in the
  same run, so it carries over between machines far better than absolute milliseconds.
- Latency metrics name their runtime: ``hz_1t`` and ``latency_ratio_1t`` are eager PyTorch's (as budget files
  written before runtimes existed mean them), ``hz_1t_ort`` and ``latency_ratio_1t_ort`` ONNX Runtime fp32's,
  ``hz_1t_ort_int8`` its int8 model's, and so on for every runtime of :mod:`effbench.profiler.runtimes`.

Counts and bytes are deterministic and make hard gates; latency metrics are noisy on shared CI runners and only
warn unless a budget says ``latency = "error"``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from effbench.profiler.runtimes import RUNTIMES
from effbench.results.records import runtime_suffix as suffix

Row = Mapping[str, Any]


@dataclass(frozen=True)
class Metric:
    """One gated quantity.

    Attributes:
        name: What budgets, tolerances and reports call it (``mflops``, ``weight_kb_fp32``...).
        get: Reads the value, in this metric's unit, from a profile row; None when the row lacks it.
        unit: Shown after values ("" for plain counts).
        kind: ``count``/``bytes`` are hard gates; ``latency`` warns unless the budget says otherwise.
        better: ``lower`` for sizes and times, ``higher`` for rates.
        digits: Decimals shown in reports.
        row_keys: The profile row keys it reads (what the baseline has to keep).
        runtime: The runtime a latency metric is timed under (None for counts and bytes).
    """

    name: str
    get: Callable[[Row], float | None]
    unit: str
    kind: Literal["count", "bytes", "latency"]
    better: Literal["lower", "higher"]
    digits: int
    row_keys: tuple[str, ...]
    runtime: str | None = None

    def format(self, value: float | None) -> str:
        """``value`` with its unit, thousands separated; ``-`` for None."""
        if value is None:
            return "-"
        text = f"{value:,.{self.digits}f}" if self.digits or isinstance(value, float) else f"{value:,}"
        return f"{text} {self.unit}" if self.unit else text


def _scaled(key: str, scale: float) -> Callable[[Row], float | None]:
    def get(row: Row) -> float | None:
        value = row.get(key)
        if value is None or scale == 1:
            return value  # counts stay ints
        return value / scale

    return get


def _sum_scaled(keys: tuple[str, ...], scale: float) -> Callable[[Row], float | None]:
    def get(row: Row) -> float | None:
        values = [row.get(k) for k in keys]
        return None if any(v is None for v in values) else sum(values) / scale

    return get


def _metric(name: str, keys: tuple[str, ...], scale: float, unit: str, kind: str, better: str = "lower",
            digits: int = 0, runtime: str | None = None) -> Metric:
    get = _scaled(keys[0], scale) if len(keys) == 1 else _sum_scaled(keys, scale)
    return Metric(name, get, unit, kind, better, digits, keys, runtime)  # type: ignore[arg-type]


#: Latency ratios are computed by the gate (they need the reference row); rows carry them under this key (eager),
#: and this key plus the runtime's suffix for the others (``latency_ratio_1t_ort``).
LATENCY_RATIO_KEY = "latency_ratio_1t"


def _latency_metrics() -> list[Metric]:
    out = []
    for runtime in RUNTIMES:
        s = suffix(runtime)
        out += [_metric(f"hz_1t{s}", (f"hz_1t{s}",), 1, "Hz", "latency", better="higher", digits=1, runtime=runtime),
                _metric(f"latency_ratio_1t{s}", (f"{LATENCY_RATIO_KEY}{s}",), 1, "x", "latency", digits=3,
                        runtime=runtime)]  # fmt: skip
    return out

_KB = 1000.0  # KB = 1000 bytes, see the module docstring

#: Every gated metric by name, in report order.
METRICS: dict[str, Metric] = {
    m.name: m
    for m in (
        _metric("params", ("params",), 1, "", "count"),
        _metric("macs", ("macs",), 1, "", "count"),
        _metric("mflops", ("flops",), 1e6, "MFLOPs", "count", digits=3),
        _metric("weight_kb_fp32", ("weight_bytes_fp32",), _KB, "KB", "bytes", digits=3),
        _metric("weight_kb_int8", ("weight_bytes_int8",), _KB, "KB", "bytes", digits=3),
        _metric("peak_act_kb_fp32", ("peak_act_bytes_fp32",), _KB, "KB", "bytes", digits=3),
        _metric("peak_act_kb_int8", ("peak_act_bytes_int8",), _KB, "KB", "bytes", digits=3),
        _metric("footprint_kb_fp32", ("weight_bytes_fp32", "peak_act_bytes_fp32"), _KB, "KB", "bytes", digits=3),
        _metric("footprint_kb_int8", ("weight_bytes_int8", "peak_act_bytes_int8"), _KB, "KB", "bytes", digits=3),
        *_latency_metrics(),
    )
}

#: Budget key -> (metric, "max" or "min"). A budget is an inclusive bound: a value exactly at it passes.
BUDGET_KEYS: dict[str, tuple[str, Literal["max", "min"]]] = {
    "max_params": ("params", "max"),
    "max_macs": ("macs", "max"),
    "max_mflops": ("mflops", "max"),
    "max_weight_kb_fp32": ("weight_kb_fp32", "max"),
    "max_weight_kb_int8": ("weight_kb_int8", "max"),
    "max_peak_act_kb_fp32": ("peak_act_kb_fp32", "max"),
    "max_peak_act_kb_int8": ("peak_act_kb_int8", "max"),
    "max_footprint_kb_fp32": ("footprint_kb_fp32", "max"),
    "max_footprint_kb_int8": ("footprint_kb_int8", "max"),
    **{f"min_hz_1t{suffix(r)}": (f"hz_1t{suffix(r)}", "min") for r in RUNTIMES},
    **{f"max_latency_ratio{suffix(r)}": (f"latency_ratio_1t{suffix(r)}", "max") for r in RUNTIMES},
}

#: Metrics compared with the baseline by default (tolerance 0); latency ones only when a tolerance names them.
HARD_METRICS: tuple[str, ...] = tuple(n for n, m in METRICS.items() if m.kind != "latency")

#: Profile row keys of the 1-thread latency under each runtime (kept in the baseline for context with a tolerance).
LATENCY_MS_KEYS: tuple[str, ...] = tuple(f"latency_ms_1t{suffix(r)}" for r in RUNTIMES)

#: Profile row keys the baseline stores (everything any metric reads, plus the latency figures for context).
BASELINE_ROW_KEYS: tuple[str, ...] = tuple(
    dict.fromkeys([k for m in METRICS.values() for k in m.row_keys] + ["flops", *LATENCY_MS_KEYS])
)
