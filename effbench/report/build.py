"""Build the report folder from a results store: ``report.md``, ``results.csv``/``.json`` and the Pareto PNGs.

Nothing here reads the clock or the machine: the header's date, commit, machine and torch version come from
the records, so building twice from the same store gives the same bytes.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd

from effbench.errors import UsageError
from effbench.provenance import describe_machine
from effbench.report import claims, tables
from effbench.report.curves import plot_curves
from effbench.report.frame import results_frame
from effbench.report.runtime import LatencyView, header_lines, latency_view
from effbench.report.pareto import Point, plot_pareto
from effbench.results import Store, load_store, write_atomic
from effbench.results.store import PENDING

#: The Pareto plots: (file stem, prof_* cost key, scale, short name, axis title).
PARETO_PLOTS: tuple[tuple[str, str, float, str, str], ...] = (
    ("mflops", "prof_flops", 1e-6, "MFLOPs", "MFLOPs of the deployable model (FLOPs = 2 x MACs + other ops; log)"),
    ("params", "prof_params", 1.0, "parameters", "parameters of the deployable model (log)"),
    ("latency", "prof_latency_ms_1t", 1.0, "latency", "latency ms, batch 1, 1 thread (log)"),
    ("footprint", "prof_footprint_bytes_int8", 1e-3, "deployed footprint",
     "deployed footprint KB int8 = weights + peak activations (log)"),
)

#: Accuracy metrics a plot can use: key -> (test_* column, short name, axis title). Lower is better for both.
PLOT_METRICS: dict[str, tuple[str, str, str]] = {
    "epe_px": ("test_epe_px", "2D EPE", "2D end-point error, px (test split; lower is better)"),
    "err3d_mm": ("test_err3d_mm", "2.5D error", "2.5D keypoint error, mm (test split; lower is better)"),
}

COUNTING_RULES = (
    "A MAC is one multiply-accumulate of a convolution (any groups, dilation, stride, transposed), linear layer "
    "or matmul. FLOPs = 2 x MACs + one per output element of every other arithmetic op (BatchNorm, activations, "
    "add, pooling, interpolation, softmax...); MFLOPs = FLOPs / 1e6 and never means MACs. Peak activation memory: "
    "batch 1, BatchNorm folded, activations in place, each tensor freed after its last use, the input counted while "
    "live. Deployed footprint = weight bytes + peak activation bytes (int8 here). KB = 1000 bytes. Latency: batch "
    "1, inference mode, median after warm-up, on 1 thread; ratios to the reference come from the same run."
)
#: The latency sentence of the counting rules when a deployment runtime's latency is shown.
LATENCY_RULE_RUNTIME = (
    "Latency: batch 1, after warm-up, the median of five timed windows' medians (MLPerf Tiny single-stream), on 1 "
    "thread, under the latency runtime named below (eager PyTorch and other runtimes as extra columns); every model "
    "timed in the same run, in interleaved rounds (one window of each per round), so ratios to the reference cancel "
    "the machine's drift."
)


#: The budget every suite has for checking the pipeline, and what its report says about it.
QUICK_BUDGET = "quick"
QUICK_NOTE = (
    "**A quick budget checks that the pipeline runs end to end; it is not for conclusions.** Its runs are far from "
    "converged (the auxiliary heads may sit at chance), so the accuracy figures below do not compare architectures: "
    "use the `full` budget (`--budget full`) for that."
)


def pareto_points(frame: pd.DataFrame, cost_key: str, scale: float, metric_key: str,
                  error_scale: dict[str, float] | None = None) -> list[Point]:
    """One point per (model, aux) with a cost and at least one successful run: the seed mean and sample std, each
    error times its model's ``error_scale`` (default 1)."""
    points = []
    for (name, aux), group in frame[frame["aux"].notna()].groupby(["model", "aux"], sort=False):
        ok = group[group["status"] == "ok"]
        cost = group.iloc[0].get(cost_key)
        factor = (error_scale or {}).get(name, 1.0)
        errors = [float(v) * factor for v in ok.get(metric_key, pd.Series(dtype=float)) if not tables.is_missing(v)]
        if tables.is_missing(cost) or not cost or cost <= 0 or not errors:
            continue
        mean, std = tables.mean_std(errors)
        points.append(Point(str(name), bool(aux), float(cost) * scale, mean, std))
    return points


def _distinct(values: list[Any]) -> list[Any]:
    return [v for v in dict.fromkeys(v for v in values if v not in (None, ""))]


def header_facts(store: Store) -> dict[str, str]:
    """Date, commit, machine and torch version, taken from the records (never from the clock)."""
    records = list(store.profiles.values()) + store.runs
    created = _distinct([r.get("created") for r in records])
    commits = _distinct([r.get("commit") for r in records])
    torches = _distinct([r.get("torch_version") for r in records])
    # Latency is measured while profiling, so the profiles' machine (listed first) is the one the cost table describes.
    machines = _distinct([describe_machine(r["machine"]) for r in records if r.get("machine")])
    machine = machines[0] if machines else "unknown"
    if len(machines) > 1:
        machine += f" (and {len(machines) - 1} other machine(s) in the records)"
    devices = _distinct([(r.get("config") or {}).get("device") for r in store.runs])
    gpus = _distinct([(r.get("machine") or {}).get("gpu") for r in store.runs])
    return {
        "date": max(created) if created else "unknown",
        "commit": ", ".join(c[:12] for c in commits) if commits else "unknown",
        "machine": machine,
        "torch": ", ".join(torches) if torches else "unknown",
        "training device": ", ".join(devices + gpus) if devices else "none",
    }


def budget_lines(store: Store, frame: pd.DataFrame) -> list[str]:
    """The training budget and seeds, from the manifest (or, without one, from the run configs)."""
    man = store.manifest
    lines = []
    if man.get("budget"):
        lines.append(f"- training budget: `{man['budget']}`")
    overrides = man.get("train") or {}
    if overrides:
        shown = ", ".join(f"`{k}={v}`" for k, v in sorted(overrides.items()))
        lines.append(f"- training config (overrides of TrainConfig): {shown}")
    else:
        keys = ("train_steps", "train_batch_size", "train_train_size", "train_test_size", "train_lr")
        found = [f"`{k[len('train_'):]}={_distinct(frame[k].tolist())}`" for k in keys if k in frame]
        if found:
            lines.append("- training config (from the runs): " + ", ".join(found))
    by_overrides: dict[str, list[str]] = {}  # the overrides shown -> the models with them
    for name, values in (man.get("model_train") or {}).items():
        by_overrides.setdefault(", ".join(f"`{k}={v}`" for k, v in sorted(values.items())), []).append(f"`{name}`")
    if by_overrides:
        lines.append("- per model: " + "; ".join(f"{', '.join(m)}: {shown}" for shown, m in by_overrides.items()))
    seeds = man.get("seeds")
    if seeds:
        groups: dict[int, list[str]] = {}
        for name, n in seeds.items():
            groups.setdefault(int(n), []).append(name)
        shown = "; ".join(f"{n}: {', '.join(m)}" for n, m in sorted(groups.items(), reverse=True))
        lines.append(f"- seeds per model and aux setting: {shown}")
    elif "seed" in frame:
        lines.append(f"- seeds: {sorted(int(s) for s in _distinct(frame['seed'].dropna().tolist()))}")
    return lines


def headline(frame: pd.DataFrame, store: Store, view: LatencyView = LatencyView(None)) -> str | None:
    """One sentence comparing the suite's first model with the reference: cost ratios and EPE with aux."""
    ref, models = store.reference, store.models
    if not ref or not models or models[0] == ref:
        return None
    ratio = tables.ratio_table(frame, ref, view.cost_columns)
    acc = tables.accuracy_table(frame)
    if ratio.empty or models[0] not in set(ratio["model"]) or models[0] not in set(acc["model"]):
        return None
    r = ratio.set_index("model").loc[models[0]]
    a = acc.set_index("model")
    if ref not in a.index:
        return None
    return (
        f"`{models[0]}` against `{ref}`: {r['MFLOPs']} of the FLOPs, {r['params']} of the parameters, "
        f"{r['Hz 1t']} the 1-thread rate{f' under {view.runtime}' if view.runtime else ''}; EPE with aux "
        f"{_px(a.loc[models[0], 'EPE px on'])} (without: {_px(a.loc[models[0], 'EPE px off'])}) against "
        f"{_px(a.loc[ref, 'EPE px on'])} (without: {_px(a.loc[ref, 'EPE px off'])})."
    )


def _px(cell: str) -> str:
    """An EPE cell with its unit, or the cell as it is when it holds no number (``pending``, ``failed: ...``)."""
    return f"{cell} px" if cell[:1].isdigit() else cell


#: Reconciliation columns: (profile key, title). Peers are in MACs (torch's FLOPs halved by the profiler).
RECON_COLUMNS: tuple[tuple[str, str], ...] = (
    ("op_type", "op type"),
    ("macs", "ours MACs"),
    ("flops", "ours FLOPs"),
    ("fvcore", "fvcore"),
    ("thop", "thop"),
    ("torch", "torch (FLOPs / 2)"),
)


def reconciliation_sections(store: Store) -> list[str]:
    """Per model, our MACs and FLOPs beside each peer's figure by op type, then one line per peer saying why.

    Read from the profiles' ``reconciliation`` rows and ``peer_notes``. The reference model and the suite's
    first model are shown open, the others folded (``<details>``), so the section stays readable.
    """
    out = []
    shown = {store.reference, store.models[0] if store.models else None}
    for name in store.models:
        prof = store.profiles.get(name) or {}
        rows = prof.get("reconciliation")
        if not rows:
            continue
        body = []
        for row in rows:
            cells = {}
            for key, title in RECON_COLUMNS:
                value = row.get(key)
                cells[title] = value if key == "op_type" else tables.fmt(value, 0)
            body.append(cells)
        block = [tables.to_markdown(pd.DataFrame(body, columns=[t for _, t in RECON_COLUMNS])), ""]
        block += [f"- {peer}: {note}" for peer, note in sorted((prof.get("peer_notes") or {}).items())]
        if name in shown:
            out += [f"#### {name}", ""] + block + [""]
        else:
            out += [f"<details><summary>{name}</summary>", ""] + block + ["", "</details>", ""]
    return out


def input_size_note(frame: pd.DataFrame) -> str:
    """A sentence naming the models whose input size differs from the suite's most common one: their EPE and
    PCK are in their own pixels (a 240 x 320 frame has twice the pixels per mm of a 120 x 160 one), so only the
    3D error compares across sizes."""
    if "prof_input_shape" not in frame:
        return ""
    shapes = frame.drop_duplicates("model").set_index("model")["prof_input_shape"].dropna()
    if shapes.nunique() < 2:
        return ""
    common = shapes.value_counts().index[0]
    odd = ", ".join(f"`{m}` ({s.split('x', 2)[-1]})" for m, s in shapes.items() if s != common)
    return (
        f" Input {common.split('x', 2)[-1]} unless named: {odd} report EPE and PCK in their own pixels; "
        "the 3D error (mm) compares across input sizes."
    )


def pixel_scale(frame: pd.DataFrame) -> tuple[dict[str, float], int | None]:
    """Per model, the factor that brings its pixel errors to the suite's most common frame width (a model at 240 x
    320 has twice the pixels per mm of one at 120 x 160: its EPE is halved), and that width; ``({}, None)`` when every
    model has the same input size."""
    if "prof_input_shape" not in frame:
        return {}, None
    shapes = frame.drop_duplicates("model").set_index("model")["prof_input_shape"].dropna()
    widths = {m: int(str(s).split("x")[-1]) for m, s in shapes.items()}
    if len(set(widths.values())) < 2:
        return {}, None
    common = int(pd.Series(list(widths.values())).value_counts().index[0])
    return {m: common / w for m, w in widths.items()}, common


def seeds_text(frame: pd.DataFrame) -> str:
    """``seeds per point: 3 (tiny_hand, mobilenet_v2_100), 1 (the others)``, from the successful runs."""
    ok = frame[(frame["status"] == "ok") & frame["aux"].notna()]
    per_model = ok.groupby("model", sort=False)["seed"].nunique()
    if per_model.empty:
        return "no successful runs"
    counts = per_model.value_counts()
    if len(counts) == 1:
        n = int(counts.index[0])
        return f"{n} seed{'s' * (n != 1)} per point"
    common = int(counts.index[0])
    others = [f"{int(n)} ({', '.join(per_model[per_model == n].index)})" for n in sorted(counts.index, reverse=True)
              if n != common]
    return f"seeds per point: {', '.join(others)}, {common} (the others)"


def curve_lines(store: Store, plots: list[str]) -> list[str]:
    """The learning-curve section: the plots, the equal-steps comparison, every run's convergence and the runs
    part-way through training (nothing when no run, finished or part-way, has a curve, as in stores written before
    curves were kept)."""
    table = claims.convergence_table(store.runs)
    if table.empty and not store.training:
        return []
    lines = ["## Learning curves and convergence", ""]
    if not table.empty:
        flagged = int((table["still improving"] == "**yes**").sum())
        lines += ["Validation EPE during training; each run is tested with the weights of its best validation point. "
                  "A run is **still improving** when the best EPE of the last fifth of its curve is more than 2% below "
                  "that of the fifth before and the run ended at its step cap (a run that stopped on its plateau rule "
                  f"saw no real gain at its lowest learning rate): {flagged} of {len(table)} run(s) here.", ""]
    lines += [f"![{name}]({name})" for name in plots] + [""]
    if not table.empty:
        lines += claims.equal_steps_lines(store.runs, store.models) + [tables.to_markdown(table), ""]
    if store.training:
        lines += ["Runs part-way through training (a checkpoint, no record yet: their curves so far are dotted in the "
                  "plots; none of their figures enters a table above). Training the suite again goes on from each.",
                  "", tables.to_markdown(claims.training_table(store.training)), ""]
    return lines


def accuracy_lines(
    store: Store, frame: pd.DataFrame, plots: list[tuple[str, str]], metric: str, curve_plots: list[str]
) -> list[str]:
    """The accuracy sections: tables without and with aux, the auxiliary heads, the ablation, the lift to 3D, int8,
    the learning curves and the Pareto plots."""
    lines = ["## Accuracy without and with auxiliary tasks", ""]
    lines += [
        "Test split; mean ± sample std over seeds (one seed: the value alone). Δ = aux on - aux off of the seed "
        "means, and relative to aux off. EPE and 3D error: lower is better; PCK@5: higher is better. p95 frame EPE: "
        "the 95th percentile over test frames of each frame's EPE, where whole-frame failures show (a missed hand) "
        "that the mean over keypoints spreads thin; `-` for runs recorded before it was kept."
        + input_size_note(frame),
        "",
        tables.to_markdown(tables.accuracy_table(frame)),
        "",
        "### Auxiliary heads (aux-trained runs)",
        "",
        tables.to_markdown(tables.aux_table(frame)),
        "",
    ]
    ablation = claims.ablation_table(frame)
    if not ablation.empty:
        lines += ["### Which auxiliary task buys what (ablation)", "",
                  "Each auxiliary task trained alone beside none and all, and all of them with a teacher where the "
                  "budget distils one (test split; mean ± std over seeds).", "",
                  tables.to_markdown(ablation), ""]
    lines += claims.lift_lines(frame)
    int8 = claims.int8_table(frame)
    if not int8.empty:
        lines += ["### The deployed model in int8", "",
                  "Test EPE of the deployed model under ONNX Runtime, fp32 and int8 (static, per-channel, calibrated on "
                  "training frames, the soft-argmax head in fp32).", "", tables.to_markdown(int8), ""]
    lines += curve_lines(store, curve_plots)
    lines += ["## Pareto plots", ""]
    _, width = pixel_scale(frame) if metric == "epe_px" else ({}, None)
    scaled = f" EPE in pixels of a {width}-px-wide frame: a model at another input size has its EPE scaled by the " \
             "ratio of the widths." if width else ""
    lines += [f"Accuracy ({PLOT_METRICS[metric][2]}) against each cost; open marker: aux off, filled: aux on, "
              f"arrow from off to on; dashed: the non-dominated front.{scaled}", ""]
    lines += [f"![{title}]({fname})" for fname, title in plots] + [""]
    return lines


def render_markdown(
    store: Store,
    frame: pd.DataFrame,
    plots: list[tuple[str, str]],
    metric: str,
    view: LatencyView = LatencyView(None),
    curve_plots: list[str] = (),
) -> str:
    """The text of ``report.md``; latency from ``view``'s runtime (eager PyTorch, the old layout, by default)."""
    facts = header_facts(store)
    ref = store.reference
    lines = [f"# effbench report: suite `{store.suite}`", ""]
    lines += [f"- {k}: {v}" for k, v in facts.items()]
    lines += header_lines(view, frame)
    if ref:
        lines.append(f"- reference model: `{ref}`")
    trained = bool(store.runs)  # a suite of profile-only models (tinyml) has costs, no accuracy
    lines += budget_lines(store, frame) if trained else ["- profile-only suite: no training runs"]
    rules = COUNTING_RULES
    if view.runtime:
        rules = rules[: rules.index("Latency:")] + LATENCY_RULE_RUNTIME
    lines += [f"- counting rules: {rules}", ""]
    if trained and store.manifest.get("budget") == QUICK_BUDGET:
        lines += [QUICK_NOTE, ""]
    failures = tables.failures_table(frame)
    pending = sum(r.get("status") == PENDING for r in store.runs)
    short = sum(bool(r.get("planned_steps")) for r in store.runs)
    if pending or short:
        capped = (f", {short} of them only to a lower step cap than the budget's (the convergence table's `cap`)"
                  if short else "")
        training = f"; {len(store.training)} part-way through training" if store.training else ""
        lines += [f"**Interim report: {len(store.runs) - pending} of {len(store.runs)} planned runs trained{capped}, "
                  f"{pending} pending{training}.** The suite run that wrote it stopped at its time limit (`--hours`), "
                  "was interrupted, or trained under a lower cap; the same command goes on from where each run stopped "
                  "and rewrites this report. Every figure below comes from the runs trained so far.", ""]
    if not failures.empty:
        complete = "" if pending or short else " Everything else is complete."
        lines += [f"**{len(failures)} stage(s) failed or did not run**; see [Failures](#failures).{complete}", ""]
    line = headline(frame, store, view)
    if line:
        lines += [line, ""]
    if ref and store.models and store.models[0] != ref:
        lines += claims.claim_lines(frame, store.models[0], ref, store.runs)
    lines += ["## Cost of the deployable models", "", tables.to_markdown(tables.cost_table(frame, view.cost_columns)), ""]
    if ref:
        lines += [f"## Cost relative to `{ref}` (same run)", ""]
        lines += ["Each figure as a percentage of the reference model's; Hz as a multiple of it (above 1x: faster).",
                  ""]
        lines += [tables.to_markdown(tables.ratio_table(frame, ref, view.cost_columns)), ""]
    if trained:
        lines += accuracy_lines(store, frame, plots, metric, curve_plots)
    lines += ["## Counter cross-check", ""]
    lines += [
        "MACs of each deployable model by our counter and by fvcore, thop and torch's FlopCounterMode (its FLOPs / 2), "
        "and each peer's difference from ours.",
        "",
        tables.to_markdown(tables.counter_table(frame)),
        "",
    ]
    recon = reconciliation_sections(store)
    if recon:
        lines += ["### Reconciliation by op type", ""] + recon
    lines += ["## Failures", "", tables.to_markdown(failures), ""]
    return "\n".join(lines).rstrip("\n") + "\n"


def build_report(runs_dir: str | Path, out_dir: str | Path, *, metric: str = "epe_px") -> dict[str, Any]:
    """Read the store in ``runs_dir`` and write the report files into ``out_dir`` (each one atomically).

    Args:
        runs_dir: The results store folder.
        out_dir: Where ``report.md``, ``results.csv``, ``results.json`` and ``pareto_*.png`` go.
        metric: The accuracy the Pareto plots show: ``epe_px`` or ``err3d_mm``.

    Returns:
        ``{"files": [paths written], "failed": number of failed stages, "frame": the results DataFrame,
        "bad_files": [(path, why)] of the store's files left out as unreadable, "left_out": [the runs they held]}``.
    """
    store = load_store(runs_dir)
    frame = results_frame(store)
    out = Path(out_dir)
    written = [
        write_atomic(out / "results.csv", frame.to_csv(index=False)),
        write_atomic(out / "results.json", frame.to_json(orient="records", indent=2) + "\n"),
    ]
    if metric not in PLOT_METRICS:
        raise UsageError(f"unknown plot metric {metric!r}; valid: {', '.join(PLOT_METRICS)}")
    metric_key, metric_name, ylabel = PLOT_METRICS[metric]
    view = latency_view(store, frame)
    error_scale, width = pixel_scale(frame) if metric == "epe_px" else ({}, None)
    if width is not None:
        ylabel = (f"2D end-point error, px of a {width}-px-wide frame (lower is better)\n"
                  "test split; models at other input sizes scaled by width")
    budget = store.manifest.get("budget")
    subtitle = (f"budget {budget}, " if budget else "") + seeds_text(frame) + "; error bars: std over seeds"
    plots = []
    for stem, cost_key, scale, cost_name, xlabel in PARETO_PLOTS if store.runs else ():
        if stem == "latency" and view.runtime:
            cost_key, xlabel, cost_name = view.latency_key, view.axis_title, f"latency ({view.runtime})"
        fname = f"pareto_{stem}.png"
        points = pareto_points(frame, cost_key, scale, metric_key, error_scale)
        title = f"suite {store.suite}: {metric_name} against {cost_name}"
        png = plot_pareto(points, xlabel=xlabel, ylabel=ylabel, title=title, models=store.models, subtitle=subtitle)
        written.append(write_atomic(out / fname, png))
        plots.append((fname, title))
    profiles = tables.model_profiles(frame)
    flops = {name: f for name, f in profiles.get("prof_flops", pd.Series(dtype=float)).items()
             if not tables.is_missing(f) and f}
    curve_pngs = plot_curves(store.runs, flops, f"suite {store.suite}: learning curves", store.training)
    written += [write_atomic(out / name, png) for name, png in curve_pngs.items()]
    markdown = render_markdown(store, frame, plots, metric, view, list(curve_pngs))
    written.append(write_atomic(out / "report.md", markdown))
    left_out = [_run_name(r) for r in store.runs if r.get("status") == "missing"]
    return {"files": written, "failed": len(tables.failures_table(frame)), "frame": frame,
            "bad_files": store.bad_files, "left_out": left_out}


def _run_name(record: dict[str, Any]) -> str:
    """``model aux=on seed=0`` of a run, from its (possibly partial) config."""
    cfg = record.get("config") or {}
    return f"{cfg.get('model')} aux={'on' if cfg.get('aux') else 'off'} seed={cfg.get('seed')}"
