"""Which runtime the report's latency figures come from, and the cost columns that follow from it.

A suite's manifest names its deployment runtime (``deployment_runtime``, default ``ort``: ONNX Runtime fp32). When
the profiles hold that runtime's latency, the cost tables and the latency Pareto plot use it, with eager PyTorch
and the other runtimes timed kept as columns beside it, the file each runtime deploys, and the share of the GEMM
roofline. When they do not (profiles measured before runtimes existed, or a suite timed in eager PyTorch only),
the report is exactly what it was before: eager PyTorch's latency under the old titles.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pandas as pd

from effbench.report.tables import COST_COLUMNS, is_missing
from effbench.results import Store, runtime_suffix as suffix

#: The runtime the report uses when the manifest names none (the profiler's default deployment runtime).
DEFAULT_RUNTIME = "ort"
#: Runtimes other than the deployment one whose 1-thread latency gets a column, when the profiles have it.
OTHER_RUNTIMES: tuple[str, ...] = ("eager", "ort", "ort-int8", "executorch", "executorch-int8")
#: What each runtime is, for the report's header.
RUNTIME_TITLES: dict[str, str] = {
    "eager": "eager PyTorch, BatchNorm folded",
    "ort": "ONNX Runtime fp32, all graph optimisations",
    "ort-int8": "ONNX Runtime, static int8 (QDQ, per-channel weights), head in fp32",
    "executorch": "ExecuTorch, XNNPACK fp32",
    "executorch-int8": "ExecuTorch, XNNPACK int8 (every layer, the head too)",
}


@dataclass(frozen=True)
class LatencyView:
    """The runtime behind the report's latency, or None for eager PyTorch as before runtimes existed.

    Attributes:
        runtime: The deployment runtime whose latency the tables and plot show, or None (eager, the old layout).
        timed: Every runtime the profiles hold a latency for, in :data:`OTHER_RUNTIMES` order.
        cost_columns: (title, prof_* key, scale, digits) of the cost table; ratios to the reference use them too.
    """

    runtime: str | None
    timed: tuple[str, ...] = ()
    cost_columns: tuple[tuple[str, str, float, int], ...] = COST_COLUMNS

    @property
    def latency_key(self) -> str:
        """The ``prof_*`` column of the 1-thread latency the Pareto plot uses."""
        return f"prof_latency_ms_1t{suffix(self.runtime or 'eager')}"

    @property
    def axis_title(self) -> str:
        """The latency plot's axis title."""
        where = f", {self.runtime}" if self.runtime else ""
        return f"latency ms, batch 1, 1 thread{where} (log)"


def _has(frame: pd.DataFrame, column: str) -> bool:
    return column in frame and any(not is_missing(v) for v in frame[column])


def latency_view(store: Store, frame: pd.DataFrame) -> LatencyView:
    """The report's latency view: the manifest's deployment runtime when the profiles have its latency, else None."""
    runtime = store.manifest.get("deployment_runtime") or DEFAULT_RUNTIME
    if runtime == "eager" or not _has(frame, f"prof_latency_ms_1t{suffix(runtime)}"):
        return LatencyView(None)
    timed = tuple(r for r in OTHER_RUNTIMES if _has(frame, f"prof_latency_ms_1t{suffix(r)}"))
    s = suffix(runtime)
    columns = COST_COLUMNS[:-2] + (
        ("file KB", f"prof_file_bytes{s}", 1e-3, 1),
        ("latency ms 1t", f"prof_latency_ms_1t{s}", 1.0, 3),
        ("Hz 1t", f"prof_hz_1t{s}", 1.0, 0),
        ("CV 1t", f"prof_latency_cv_1t{s}", 1.0, 2),
        ("% roofline", f"prof_roofline_frac_1t{s}", 100.0, 1),
    )
    columns += tuple((f"{r} ms 1t", f"prof_latency_ms_1t{suffix(r)}", 1.0, 3) for r in timed if r != runtime)
    return LatencyView(runtime, timed, columns)


def header_lines(view: LatencyView, frame: pd.DataFrame) -> list[str]:
    """Report header lines naming the latency runtime, every runtime timed with its version, and the roofline."""
    if view.runtime is None:
        return []
    first = frame.drop_duplicates("model")

    def distinct(column: str) -> list[Any]:
        return list(dict.fromkeys(v for v in first.get(column, []) if not is_missing(v)))

    lines = [f"- latency runtime: `{view.runtime}` (file KB: the file it loads, the measured weight footprint; "
             "% roofline: MACs / latency over this core's fp32 GEMM rate)"]
    for r in view.timed:
        versions = ", ".join(distinct(f"prof_runtime_version{suffix(r)}")) or "version unknown"
        lines.append(f"  - `{r}`: {RUNTIME_TITLES.get(r, r)} ({versions})")
    roofs = distinct("prof_roofline_gmacs_1t")
    if roofs:
        shown = ", ".join(f"{v:,.1f}" for v in roofs)
        lines.append(f"- GEMM roofline: {shown} GMAC/s (the faster fp32 matmul of torch and ONNX Runtime, 1 thread, "
                     "measured in the profiling run)")
    return lines
