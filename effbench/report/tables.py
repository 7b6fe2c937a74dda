"""The report's tables, computed from the flat results rows (:func:`effbench.report.frame.results_frame`).

Each function returns a DataFrame of display strings (the numbers formatted once, here), so the markdown
and any test that checks it read the same text. Units: KB = 1000 bytes (the unit of the paper's "under 300 KB"),
MFLOPs = FLOPs / 1e6 where FLOPs = 2 x MACs + other arithmetic (never MACs), latency at batch 1 on one thread.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from tabulate import tabulate

from effbench.results.store import PENDING
from effbench.train.config import AUX_TASKS

#: (column title, prof_* key, scale, digits) of the cost table. Ratios to the reference use the same keys.
COST_COLUMNS: tuple[tuple[str, str, float, int], ...] = (
    ("MACs (M)", "prof_macs", 1e-6, 2),
    ("MFLOPs", "prof_flops", 1e-6, 2),
    ("params", "prof_params", 1.0, 0),
    ("weights KB fp32", "prof_weight_bytes_fp32", 1e-3, 1),
    ("weights KB int8", "prof_weight_bytes_int8", 1e-3, 1),
    ("peak act KB int8", "prof_peak_act_bytes_int8", 1e-3, 1),
    ("footprint KB int8", "prof_footprint_bytes_int8", 1e-3, 1),
    ("latency ms 1t", "prof_latency_ms_1t", 1.0, 3),
    ("Hz 1t", "prof_hz_1t", 1.0, 0),
)

#: (column title, test_* key, scale, digits) of the accuracy table: lower is better except PCK.
ACCURACY_METRICS: tuple[tuple[str, str, float, int], ...] = (
    ("EPE px", "test_epe_px", 1.0, 2),
    ("p95 frame EPE px", "test_epe_px_p95_frame", 1.0, 2),
    ("PCK@5 %", "test_pck5", 100.0, 1),
    ("2.5D err mm", "test_err25_mm", 1.0, 1),
    ("3D err mm", "test_err3d_mm", 1.0, 1),
)

#: Metrics of the auxiliary heads, for aux-trained runs.
AUX_METRICS: tuple[tuple[str, str, float, int], ...] = (
    ("mask IoU %", "test_mask_iou", 100.0, 1),
    ("visibility F1 %", "test_vis_f1", 100.0, 1),
    ("keypose acc %", "test_keypose_acc", 100.0, 1),
    ("handedness acc %", "test_handedness_acc", 100.0, 1),
)

#: Peer counters of the cross-check table: (title, prof_* key).
PEER_COUNTERS: tuple[tuple[str, str], ...] = (
    ("fvcore", "prof_macs_fvcore"),
    ("thop", "prof_macs_thop"),
    ("torch", "prof_macs_torch"),
)

NA = "-"


def is_missing(value: Any) -> bool:
    """True for None, NaN and pandas' NA (what a missing number becomes in a DataFrame)."""
    if value is None or value is pd.NA:
        return True
    return isinstance(value, float) and math.isnan(value)


def fmt(value: Any, digits: int = 2, scale: float = 1.0) -> str:
    """A number scaled and formatted with thousands separators and fixed decimals; ``-`` when missing."""
    if is_missing(value):
        return NA
    return f"{float(value) * scale:,.{digits}f}"


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (ddof=1) over seeds; the std of a single value is 0."""
    vals = np.asarray(values, dtype=float)
    return float(vals.mean()), float(vals.std(ddof=1)) if len(vals) > 1 else 0.0


def _present(values: Sequence[Any], scale: float) -> list[float]:
    return [float(v) * scale for v in values if not is_missing(v)]


def fmt_mean_std(values: Sequence[float], digits: int, scale: float = 1.0) -> str:
    """``mean ± std`` over seeds (sample std, ddof=1); just the mean for one seed; ``-`` for none."""
    vals = _present(values, scale)
    if not vals:
        return NA
    mean, std = mean_std(vals)
    if len(vals) == 1:
        return f"{mean:,.{digits}f}"
    return f"{mean:,.{digits}f} ± {std:,.{digits}f}"


def fmt_change(off: Sequence[float], on: Sequence[float], digits: int, scale: float = 1.0) -> str:
    """Change of the seed mean that aux training brings: ``on - off`` and, relative to off, in percent."""
    a, b = _present(off, scale), _present(on, scale)
    if not a or not b:
        return NA
    mean_a, mean_b = mean_std(a)[0], mean_std(b)[0]
    delta = mean_b - mean_a
    rel = f" ({delta / mean_a * 100:+.1f}%)" if mean_a else ""
    return f"{delta:+,.{digits}f}{rel}"


def fmt_ratio(value: Any, reference: Any, times: bool = False) -> str:
    """``value / reference`` as a percentage (or as ``N.Nx`` when ``times``); ``-`` when missing or reference 0."""
    if is_missing(value) or is_missing(reference) or not reference:
        return NA
    ratio = float(value) / float(reference)
    return f"{ratio:.1f}x" if times else f"{ratio * 100:.1f}%"


def escape_cell(text: Any) -> str:
    """One markdown table cell: no newlines, no bare ``|``, at most 160 characters."""
    s = " ".join(str(text).split()).replace("|", "\\|")
    return s if len(s) <= 160 else s[:157] + "..."


def model_profiles(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per model (the profile columns are the same on each of its rows), in report order."""
    return frame.drop_duplicates("model", keep="first").set_index("model", drop=False)


def profile_failed(row: pd.Series) -> str | None:
    """The error of a model whose profile failed, else None."""
    if row.get("prof_status", "ok") != "ok":
        return f"{row.get('prof_status')}: {row.get('prof_error') or 'unknown error'}"
    return None


#: Cost columns that are no cost, so have no ratio to the reference.
NO_RATIO: frozenset[str] = frozenset({"CV 1t"})


def cost_table(frame: pd.DataFrame, columns: Sequence[tuple[str, str, float, int]] = COST_COLUMNS) -> pd.DataFrame:
    """Cost of each deployable model: MACs, MFLOPs, params, weight, peak activation and footprint KB, latency
    (``columns``: :data:`COST_COLUMNS`, or a runtime's, :func:`effbench.report.runtime.latency_view`)."""
    rows = []
    for name, row in model_profiles(frame).iterrows():
        failed = profile_failed(row)
        cells = {"model": name}
        for title, key, scale, digits in columns:
            cells[title] = NA if failed else fmt(row.get(key), digits, scale)
        if failed:
            cells[columns[0][0]] = failed
        rows.append(cells)
    return pd.DataFrame(rows, columns=["model"] + [c[0] for c in columns])


def ratio_table(
    frame: pd.DataFrame, reference: str | None, columns: Sequence[tuple[str, str, float, int]] = COST_COLUMNS
) -> pd.DataFrame:
    """Each cost as a percentage of the reference model's, measured in the same run; Hz as a multiple of it."""
    profiles = model_profiles(frame)
    columns = [c for c in columns if c[0] not in NO_RATIO]
    titles = ["model"] + [c[0] for c in columns]
    if reference is None or reference not in profiles.index or profile_failed(profiles.loc[reference]):
        return pd.DataFrame([], columns=titles)
    ref = profiles.loc[reference]
    rows = []
    for name, row in profiles.iterrows():
        failed = profile_failed(row)
        cells = {"model": name}
        for title, key, _, _ in columns:
            cells[title] = NA if failed else fmt_ratio(row.get(key), ref.get(key), times=key.startswith("prof_hz_1t"))
        if failed:
            cells[columns[0][0]] = "failed"
        rows.append(cells)
    return pd.DataFrame(rows, columns=titles)


def _runs(frame: pd.DataFrame, model: str, aux: bool) -> pd.DataFrame:
    """The runs of ``model`` without (``aux`` False) or with every auxiliary task; ablations and distilled runs are
    left out."""
    sel = (frame["model"] == model) & (frame["aux"] == aux)
    if "train_teacher" in frame:
        sel &= frame["train_teacher"].map(lambda t: is_missing(t) or not t)
    if aux and "train_aux_tasks" in frame:
        full = frame["train_aux_tasks"].map(lambda t: is_missing(t) or set(t.split(",")) == set(AUX_TASKS))
        sel &= full
    return frame[sel]


def seed_cell(runs: pd.DataFrame) -> str:
    """Successful runs, as ``ok`` or ``ok/planned`` when some failed."""
    ok = int((runs["status"] == "ok").sum())
    return str(ok) if ok == len(runs) else f"{ok}/{len(runs)}"


def _failed_cell(runs: pd.DataFrame, full: bool = True) -> str | None:
    """``failed: <error>`` (or just ``failed`` when not ``full``) when no run of this group succeeded, else None.

    A table row gives the error once, in its first metric column, and the bare status in the others.
    """
    if len(runs) and not (runs["status"] == "ok").any():
        ended = runs[runs["status"] != PENDING]
        if ended.empty:
            return PENDING
        first = ended.iloc[0]
        return f"{first['status']}: {first['error'] or 'unknown error'}" if full else str(first["status"])
    return None


def accuracy_table(frame: pd.DataFrame, metrics=ACCURACY_METRICS) -> pd.DataFrame:
    """Per model: each metric without and with aux training (mean ± std over seeds) and the change aux brings.

    Only successful runs enter the statistics; the seeds column says ``ok/planned`` when some failed.
    """
    columns = ["model", "seeds off", "seeds on"]
    for title, *_ in metrics:
        columns += [f"{title} off", f"{title} on", f"Δ {title}"]
    rows = []
    for name in frame["model"].drop_duplicates():
        off, on = _runs(frame, name, False), _runs(frame, name, True)
        if not len(off) and not len(on):
            continue
        cells: dict[str, str] = {"model": name, "seeds off": seed_cell(off), "seeds on": seed_cell(on)}
        ok_off, ok_on = off[off["status"] == "ok"], on[on["status"] == "ok"]
        for i, (title, key, scale, digits) in enumerate(metrics):
            a = ok_off[key].tolist() if key in frame else []
            b = ok_on[key].tolist() if key in frame else []
            cells[f"{title} off"] = _failed_cell(off, i == 0) or fmt_mean_std(a, digits, scale)
            cells[f"{title} on"] = _failed_cell(on, i == 0) or fmt_mean_std(b, digits, scale)
            cells[f"Δ {title}"] = fmt_change(a, b, digits, scale)
        rows.append(cells)
    return pd.DataFrame(rows, columns=columns)


def aux_table(frame: pd.DataFrame) -> pd.DataFrame:
    """Metrics of the auxiliary heads of the aux-trained runs (mean ± std over seeds)."""
    columns = ["model", "seeds"] + [m[0] for m in AUX_METRICS]
    rows = []
    for name in frame["model"].drop_duplicates():
        on = _runs(frame, name, True)
        if not len(on):
            continue
        ok = on[on["status"] == "ok"]
        cells = {"model": name, "seeds": seed_cell(on)}
        for i, (title, key, scale, digits) in enumerate(AUX_METRICS):
            values = ok[key].tolist() if key in frame else []
            cells[title] = _failed_cell(on, i == 0) or fmt_mean_std(values, digits, scale)
        rows.append(cells)
    return pd.DataFrame(rows, columns=columns)


def fmt_diff(value: Any, ours: Any) -> str:
    """Relative difference of a peer's count from ours, ``+x.x%``."""
    if is_missing(value) or is_missing(ours) or not ours:
        return NA
    return f"{(float(value) - float(ours)) / float(ours) * 100:+.1f}%"


def counter_table(frame: pd.DataFrame) -> pd.DataFrame:
    """MACs of each model by our counter and by the peers (fvcore, thop, torch FlopCounterMode / 2), and how
    far each peer is from ours."""
    columns = ["model", "ours MACs (M)"] + [f"{t} (M)" for t, _ in PEER_COUNTERS]
    columns += [f"{t} vs ours" for t, _ in PEER_COUNTERS]
    rows = []
    for name, row in model_profiles(frame).iterrows():
        failed = profile_failed(row)
        cells = {"model": name, "ours MACs (M)": failed or fmt(row.get("prof_macs"), 3, 1e-6)}
        for title, key in PEER_COUNTERS:
            cells[f"{title} (M)"] = NA if failed else fmt(row.get(key), 3, 1e-6)
            cells[f"{title} vs ours"] = NA if failed else fmt_diff(row.get(key), row.get("prof_macs"))
        rows.append(cells)
    return pd.DataFrame(rows, columns=columns)


def failures_table(frame: pd.DataFrame) -> pd.DataFrame:
    """Every failed stage: profile of a model, or one (model, aux, seed) run, with its error."""
    rows = []
    for name, row in model_profiles(frame).iterrows():
        if row.get("prof_status") == "failed":  # a missing profile (runs from `bench.py train`) is no failure
            rows.append({"model": name, "stage": "profile", "error": row.get("prof_error") or row.get("prof_status")})
    for _, row in frame.iterrows():
        if row["status"] not in ("ok", "not run", PENDING):
            stage = f"train aux={'on' if row['aux'] else 'off'} seed={row['seed']}"
            rows.append({"model": row["model"], "stage": stage, "error": f"{row['status']}: {row['error']}"})
    return pd.DataFrame(rows, columns=["model", "stage", "error"])


def to_markdown(table: pd.DataFrame) -> str:
    """A display table as GitHub markdown (tabulate), text kept exactly as formatted, numbers right-aligned."""
    if table.empty:
        return "_(none)_"
    align = ["left"] + ["right"] * (len(table.columns) - 1)
    body = [[escape_cell(v) for v in row] for row in table.itertuples(index=False)]
    return tabulate(body, headers=list(table.columns), tablefmt="github", disable_numparse=True, colalign=align)
