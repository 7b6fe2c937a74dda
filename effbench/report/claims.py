"""The report's accuracy conclusions: the seed paper's claim and our answer, the paired aux effect over seeds,
the per-task ablation, how every run converged (from the records' learning curves), and how much of the 3D error
the lift to 3D causes.

The aux effect is a paired difference: for every seed trained both ways (same seed, same data), ``EPE(aux on) -
EPE(aux off)``; its mean and a 95% Student-t interval over those seeds. Pairing removes the seed's own effect on
both runs, which unpaired standard deviations would count twice.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from effbench.report import tables
from effbench.report.curves import aux_label, convergence_rows

#: The claim of the seed paper (Chidananda et al., arXiv 1909.05897), in our words.
CLAIM = (
    "a network with about 3% of MobileNetV2's FLOPs and 2% of its parameters, trained with auxiliary tasks, reaches "
    "accuracy comparable to MobileNetV2's"
)

#: The aux setting of a run with every auxiliary task and a teacher (:func:`effbench.report.curves.aux_label`).
DISTILLED = "on + distilled"
#: The ablation's aux settings, in the order the table lists them.
ABLATION_ORDER = ("off", "on: seg", "on: vis", "on: keypose", "on: hand", "on", DISTILLED)


def aux_settings(frame: pd.DataFrame) -> pd.Series:
    """Each row's aux setting: ``off``, ``on`` (every auxiliary task) or ``on: <tasks>`` (an ablation), with
    ``+ distilled`` after it for a run with a teacher."""
    def column(name: str) -> list[Any]:
        values = frame[name] if name in frame else [None] * len(frame)
        return [None if tables.is_missing(v) else v for v in values]

    return pd.Series(
        [aux_label({"aux": bool(a), "aux_tasks": t, "teacher": teacher})
         for a, t, teacher in zip(frame["aux"], column("train_aux_tasks"), column("train_teacher"))],
        index=frame.index,
    )


def paired_effect(
    frame: pd.DataFrame, model: str, key: str = "test_epe_px", base: str = "off", treated: str = "on"
) -> dict[str, float] | None:
    """Mean of ``key``(``treated``) - ``key``(``base``) over the seeds with both runs ok, and its 95% t-interval;
    the settings are :func:`aux_settings` labels (by default aux on against aux off).

    Returns ``{"mean", "low", "high", "n", "rel"}`` (``rel``: the mean over the base's mean), or None without a
    pair; with one pair the interval is unbounded (NaN).
    """
    setting = aux_settings(frame)
    ok = frame[(frame["model"] == model) & (frame["status"] == "ok")]
    off = ok[setting[ok.index] == base].set_index("seed")[key]
    on = ok[setting[ok.index] == treated].set_index("seed")[key]
    seeds = sorted(set(off.dropna().index) & set(on.dropna().index))
    if not seeds:
        return None
    diff = np.array([float(on[s]) - float(off[s]) for s in seeds])
    mean, n = float(diff.mean()), len(diff)
    half = float("nan")
    if n > 1:
        half = float(stats.t.ppf(0.975, n - 1) * diff.std(ddof=1) / np.sqrt(n))
    base = float(np.mean([float(off[s]) for s in seeds]))
    return {"mean": mean, "low": mean - half, "high": mean + half, "n": n, "rel": mean / base if base else float("nan")}


def fmt_effect(effect: dict[str, float] | None, unit: str = "px") -> str:
    """``-0.42 px (-3.1%), 95% CI [-0.80, -0.04], 3 seeds``."""
    if effect is None:
        return "no seed trained both ways"
    ci = "CI needs 2 seeds" if np.isnan(effect["low"]) else f"95% CI [{effect['low']:+.2f}, {effect['high']:+.2f}]"
    return f"{effect['mean']:+.2f} {unit} ({effect['rel'] * 100:+.1f}%), {ci}, {effect['n']} seed(s)"


def _mean_of(frame: pd.DataFrame, model: str, setting: str, key: str) -> float | None:
    ok = frame[(frame["model"] == model) & (frame["status"] == "ok") & (aux_settings(frame) == setting)]
    values = [float(v) for v in ok[key] if not tables.is_missing(v)] if key in frame else []
    return float(np.mean(values)) if values else None


def claim_lines(frame: pd.DataFrame, tiny: str, reference: str, runs: Sequence[dict[str, Any]] = ()) -> list[str]:
    """The claim and our answer: the tiny net's EPE as a ratio of the reference's (both with aux) and the aux effect
    on each, from the runs of this store (whatever budget they had; the header says which). ``runs`` (the store's
    records) say whether the runs behind the ratio had converged (:func:`ratio_caveat`)."""
    ours, ref = _mean_of(frame, tiny, "on", "test_epe_px"), _mean_of(frame, reference, "on", "test_epe_px")
    if ours is None or ref is None:
        return []
    caveat = ratio_caveat(runs, tiny, reference)
    lines = [
        "## The claim, measured",
        "",
        f"The seed paper claims that {CLAIM}. Here, with auxiliary tasks: `{tiny}` {ours:.2f} px EPE against "
        f"`{reference}` {ref:.2f} px, **{ours / ref:.2f}x** its error.{' ' + caveat if caveat else ''}",
        "",
        "Aux effect (paired over seeds: same seed and data, aux on - aux off, test EPE):",
        "",
    ]
    for name in (tiny, reference):
        lines.append(f"- `{name}`: {fmt_effect(paired_effect(frame, name))}")
    distilled = _mean_of(frame, tiny, DISTILLED, "test_epe_px")
    if distilled is not None:
        effect = fmt_effect(paired_effect(frame, tiny, base="on", treated=DISTILLED))
        lines += ["", f"Distilled from a teacher (its heatmaps, besides the labels; see the ablation table): `{tiny}` "
                      f"with aux {distilled:.2f} px, **{distilled / ref:.2f}x** `{reference}`'s error. Distillation "
                      f"effect (paired, distilled - aux on): {effect}."]
    return lines + [""]


def ratio_caveat(runs: Sequence[dict[str, Any]], tiny: str, reference: str) -> str:
    """What the ratio of the two models' aux-on EPE is worth when some of their runs ended still improving: such a
    run's model would read lower converged, so a still-improving reference makes the ratio a lower bound on the
    converged one and a still-improving tiny net an upper bound (both: neither). Empty when none is."""
    finished = convergence_rows([r for r in runs if r.get("status") == "ok"])
    flagged = {}
    for name in (tiny, reference):
        rows = [r for r in finished if r["model"] == name and r["aux"] == "on"]
        if improving := sum(bool(r["still improving"]) for r in rows):
            flagged[name] = f"{improving} of {len(rows)}"
    if not flagged:
        return ""
    which = " and ".join(f"`{name}`'s ({n})" for name, n in flagged.items())
    tail = ("the converged ratio may lie either side of this one" if len(flagged) == 2 else
            f"this ratio is {'a lower' if reference in flagged else 'an upper'} bound on the converged one")
    return f"Not converged: {which} aux-on runs stopped at their step cap still improving, so {tail}."


def ablation_table(frame: pd.DataFrame) -> pd.DataFrame:
    """Per model with ablation runs: each aux setting (none, one task alone, all) with EPE, PCK@5 and the trained
    heads' metrics (mean ± std over seeds)."""
    setting = aux_settings(frame)
    columns = ["model", "aux", "seeds", "EPE px", "PCK@5 %", "2.5D err mm", "handedness acc %", "keypose acc %"]
    keys = (("EPE px", "test_epe_px", 1.0, 2), ("PCK@5 %", "test_pck5", 100.0, 1),
            ("2.5D err mm", "test_err25_mm", 1.0, 1), ("handedness acc %", "test_handedness_acc", 100.0, 1),
            ("keypose acc %", "test_keypose_acc", 100.0, 1))
    rows = []
    for name in frame["model"].drop_duplicates():
        mine = setting[frame["model"] == name]
        if not any(s not in ("off", "on") for s in mine):
            continue
        for label in sorted(set(mine), key=lambda s: ABLATION_ORDER.index(s) if s in ABLATION_ORDER else 99):
            runs = frame[(frame["model"] == name) & (setting == label)]
            ok = runs[runs["status"] == "ok"]
            cells = {"model": name, "aux": label, "seeds": tables.seed_cell(runs)}
            for title, key, scale, digits in keys:
                values = ok[key].tolist() if key in frame else []
                cells[title] = tables.fmt_mean_std(values, digits, scale)
            rows.append(cells)
    return pd.DataFrame(rows, columns=columns)


def convergence_table(runs: list[dict[str, Any]]) -> pd.DataFrame:
    """Every run with a learning curve: best validation EPE, best and stop step, its cap, how it stopped, and the
    still-improving flag (``yes`` is a run whose numbers are not its model's)."""
    rows = []
    for r in convergence_rows(runs):
        rows.append({
            "model": r["model"], "aux": r["aux"], "seed": r["seed"],
            "best val EPE px": tables.fmt(r["best val EPE px"], 2),
            "best step": tables.fmt(r["best step"], 0), "stop step": tables.fmt(r["stop step"], 0),
            "cap": tables.fmt(r["cap"], 0) + (f" of {tables.fmt(r['planned cap'], 0)}" if r["planned cap"] else ""),
            "stopped": "plateau" if r["stopped on plateau"] else "cap",
            "still improving": {True: "**yes**", False: "no", None: "-"}[r["still improving"]],
            "wall min": tables.fmt(None if r["wall s"] is None else r["wall s"] / 60, 1),
        })
    return pd.DataFrame(rows)


def training_table(states: list[dict[str, Any]]) -> pd.DataFrame:
    """Every run part-way through training (:func:`effbench.results.store.in_training`): the step its checkpoint
    reached, its cap, the best validation EPE so far and its step, the plateaus so far and the wall time so far."""
    rows = []
    for state in states:
        cfg, points = state["config"], [p for p in state["curve"] if p.get("val_epe_px") is not None]
        best = min(points, key=lambda p: p["val_epe_px"]) if points else {}
        rows.append({
            "model": cfg.get("model"), "aux": aux_label(cfg), "seed": cfg.get("seed"),
            "step": tables.fmt(state["step"], 0), "cap": tables.fmt(cfg.get("steps"), 0),
            "best val EPE px so far": tables.fmt(best.get("val_epe_px"), 2),
            "at step": tables.fmt(best.get("step"), 0), "plateaus": state["plateaus"],
            "wall min": tables.fmt(state["wall_s"] / 60, 1),
        })
    return pd.DataFrame(rows)


def equal_steps_lines(runs: list[dict[str, Any]], models: list[str]) -> list[str]:
    """Validation EPE of every (model, aux on/off) at the largest step every such run reached (seed means), so that
    models are also compared at equal training steps, not only at convergence."""
    curves = [r for r in runs if r.get("curve") and r["config"]["model"] in models]
    if not curves:
        return []
    common = min(max(p["step"] for p in r["curve"]) for r in curves)
    at: dict[tuple[str, str], list[float]] = {}
    for r in curves:
        pts = [p for p in r["curve"] if p["step"] <= common and p.get("val_epe_px") is not None]
        if pts:
            key = (r["config"]["model"], aux_label(r["config"]))
            at.setdefault(key, []).append(min(p["val_epe_px"] for p in pts))
    shown = "; ".join(f"`{m}` aux {a}: {np.mean(v):.2f}" for (m, a), v in at.items() if a in ("off", "on"))
    return [f"At equal steps (the best validation EPE up to step {common:,}, the last step every run reached): "
            f"{shown} px.", ""]


def int8_table(frame: pd.DataFrame, tolerance: float = 0.02) -> pd.DataFrame:
    """Per model whose runs were tested under ONNX Runtime: test EPE in fp32 and int8 (static, per-channel, head in
    fp32; seed means over every run), the relative change, and whether it loses more than ``tolerance``."""
    if "test_ort_int8_epe_px" not in frame:
        return pd.DataFrame()
    rows = []
    for name in frame["model"].drop_duplicates():
        ok = frame[(frame["model"] == name) & (frame["status"] == "ok")]
        pairs = [(float(a), float(b)) for a, b in zip(ok["test_ort_epe_px"], ok["test_ort_int8_epe_px"])
                 if not tables.is_missing(a) and not tables.is_missing(b)]
        if not pairs:
            continue
        fp32, int8 = np.mean([a for a, _ in pairs]), np.mean([b for _, b in pairs])
        change = (int8 - fp32) / fp32
        rows.append({"model": name, "runs": len(pairs), "EPE px fp32": f"{fp32:.2f}", "EPE px int8": f"{int8:.2f}",
                     "change": f"{change * 100:+.1f}%", f"loses > {tolerance:.0%}": "**yes**" if change > tolerance
                     else "no"})
    return pd.DataFrame(rows)


#: (column title, test_* key) of the lift table's errors, all in mm.
LIFT_COLUMNS: tuple[tuple[str, str], ...] = (
    ("2.5D err mm", "test_err25_mm"),
    ("2.5D err mm visible", "test_err25_mm_vis"),
)


def lift_table(frame: pd.DataFrame) -> pd.DataFrame:
    """Per model and aux setting (off, on): the 3D error, the share of it that the lift floor is (the lift of the
    true 2D keypoints against the true joints, one figure per test split), and the 2.5D error that measures the
    network alone (its lifted prediction against the lifted label), over all keypoints and the visible ones (mean ±
    std over seeds; the share: the mean of each run's)."""
    if "test_lift_err3d_mm" not in frame:
        return pd.DataFrame()
    setting = aux_settings(frame)
    rows = []
    for name in frame["model"].drop_duplicates():
        for label in ("off", "on"):
            ok = frame[(frame["model"] == name) & (setting == label) & (frame["status"] == "ok")]
            pairs = [(float(a), float(b)) for a, b in zip(ok["test_err3d_mm"], ok["test_lift_err3d_mm"])
                     if not tables.is_missing(a) and not tables.is_missing(b) and a > 0]
            if not pairs:
                continue
            cells = {"model": name, "aux": label, "seeds": str(len(ok)),
                     "3D err mm": tables.fmt_mean_std(ok["test_err3d_mm"].tolist(), 1),
                     "lift floor / 3D err": f"{np.mean([floor / err for err, floor in pairs]) * 100:.0f}%"}
            for title, key in LIFT_COLUMNS:
                cells[title] = tables.fmt_mean_std(ok[key].tolist() if key in frame else [], 1)
            rows.append(cells)
    return pd.DataFrame(rows)


def _span(values: pd.Series, digits: int) -> str:
    """``low-high`` of ``values``, or the one value when they all round to it."""
    low, high = f"{values.min():.{digits}f}", f"{values.max():.{digits}f}"
    return low if low == high else f"{low}-{high}"


def lift_lines(frame: pd.DataFrame) -> list[str]:
    """The report's section on the lift to 3D: what the lift of the true 2D keypoints already misses, its share of
    each model's 3D error, and the 2.5D error beside it; nothing without runs that measured it."""
    table = lift_table(frame)
    if table.empty:
        return []
    floors = frame.loc[frame["status"] == "ok", "test_lift_err3d_mm"].dropna().astype(float)
    shares = table["lift floor / 3D err"].str.rstrip("%").astype(float)
    floor = _span(floors, 1)
    floor = f"{floor} mm" + (" (by input size)" if "-" in floor else "")
    return ["### The 3D error and the lift", "",
            "A keypoint's 3D position is its 2D prediction lifted with the frame's own depth at it (2.5D). The lift "
            f"errs by itself: lifting the *true* 2D keypoints misses the true joints by {floor} on the test split "
            "(a joint lies inside its finger, about a finger's radius behind the surface the camera sees, and an "
            "occluded joint reads its occluder's depth). That floor is under every model's 3D error: "
            f"{_span(shares, 0)}% of it here (errors of 3D vectors do not add, so the rest is "
            "not the network's share exactly). The 2.5D error measures the network alone: its lifted prediction "
            "against the lifted true keypoints, the label a 2D prediction can reach, over all keypoints and over the "
            "visible ones (an occluded keypoint's label reads its occluder's depth, as its prediction does).", "",
            tables.to_markdown(table), ""]
