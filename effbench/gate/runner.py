"""Run a gate: find the gated models, build their deployable form, profile them, check, maybe update the baseline.

Registered models are built from the registry at their registered input shape; custom models come from
``--module`` specs (:func:`effbench.measure.from_spec`: a function or class called with no arguments), named after
the factory. A model with ``deployable()`` is gated in that form: what is deployed is what is gated.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from effbench import measure
from effbench.errors import UsageError, error_text
from effbench.gate.baseline import read_baseline, write_baseline
from effbench.gate.budgets import Budgets, ModelBudget, find_budgets_file, load_budgets
from effbench.gate.check import Check, GateResult, add_latency_ratios, check
from effbench.gate.metrics import BASELINE_ROW_KEYS, LATENCY_MS_KEYS, METRICS
from effbench.profiler import runtimes as rt

ProfileFn = Callable[..., Any]


@dataclass
class GateRun:
    """What :func:`run_gate` did: the result, and the files it used or wrote."""

    result: GateResult
    budgets_path: Path
    baseline_path: Path | None
    baseline_written: bool = False
    notes: list[str] = field(default_factory=list)


def profile_models(
    targets: dict[str, measure.Target], timed: set[str], *, runtimes: tuple[str, ...] = ("eager",),
    profile_fn: ProfileFn | None = None, max_memory_gb: float | None = measure.DEFAULT_LIMIT_GB,
    progress: Callable[[str], None] | None = None,
) -> dict[str, dict[str, Any]]:
    """Build each model's deployable form and profile it, the ``timed`` ones under ``runtimes`` too, all timed in
    the same interleaved rounds (:func:`effbench.measure.profile_targets`) so that their latency ratios cancel the
    machine's drift; an error of a model's own becomes an ``error`` field.

    Args:
        targets: Name -> what to build.
        timed: The names whose latency a budget needs.
        runtimes: Runtime names to time them under.
        profile_fn: ``(model, input_shape, latency=, runtimes=) -> row`` to use instead, one model at a time (tests).
        max_memory_gb: Refuse an input shape whose forward pass needs more (None: no limit).
        progress: Called with a line per model profiled.

    Raises:
        UsageError: A model that rejects its input shape, or whose shape needs more than ``max_memory_gb``.
    """

    def said(target: measure.Target) -> None:
        if progress:
            progress(f"profiling {target.name}{' (with latency)' if target.name in timed else ''}")

    found: dict[str, Any] = {}
    if profile_fn is None:
        for with_latency in (True, False):
            group = [t for n, t in targets.items() if (n in timed) == with_latency]
            profs = measure.profile_targets(group, max_memory_gb, latency=with_latency, runtimes=runtimes,
                                            on_profiled=said)
            found.update({t.name: p if isinstance(p, Exception) else p.as_dict() for t, p in zip(group, profs)})
    else:
        for name, target in targets.items():
            said(target)
            try:
                found[name] = dict(profile_fn(measure.build_checked(target, max_memory_gb), target.input_shape,
                                              latency=name in timed, runtimes=runtimes))
            except Exception as err:  # noqa: BLE001 - sorted below
                found[name] = err
    rows = {}
    for name, target in targets.items():
        row = found[name]
        if isinstance(row, UsageError):
            raise row  # e.g. an input shape the model rejects: a config error (exit 2), not a grown model
        if isinstance(row, Exception):  # a model that fails is reported, the others still get gated
            rows[name] = {"input_shape": list(target.input_shape), "error": error_text(row)}
        else:
            rows[name] = {**row, "input_shape": list(target.input_shape)}
    return rows


def baseline_row(row: dict[str, Any], budget: ModelBudget) -> dict[str, Any]:
    """What the baseline keeps of a row: counts and bytes, and latency figures only where a tolerance compares them
    (absolute latency is machine-dependent: committing it would churn the file on every update)."""
    keep_latency = any(METRICS[m].kind == "latency" for m in budget.tolerance)
    latency_keys = {k for m in METRICS.values() if m.kind == "latency" for k in m.row_keys} | set(LATENCY_MS_KEYS)
    out: dict[str, Any] = {"input_shape": row["input_shape"]}
    for key in BASELINE_ROW_KEYS:
        if row.get(key) is not None and (keep_latency or key not in latency_keys):
            out[key] = row[key]
    return out


def runtime_versions() -> dict[str, str]:
    """Each installed runtime's version (``{"eager": "torch 2.13.0", "ort": "onnxruntime 1.32.0", ...}``), for the
    baseline: a latency compared across baselines means little if the runtime changed between them."""
    return {name: r.version() for name, r in rt.RUNTIMES.items() if r.missing() is None}


def run_gate(
    budgets_file: str | Path | None = None,
    baseline_file: str | Path | None = None,
    *,
    modules: Sequence[str] = (),
    input_shape: tuple[int, ...] | None = None,
    update_baseline: bool = False,
    latency: bool = True,
    profile_fn: ProfileFn | None = None,
    progress: Callable[[str], None] | None = None,
    max_memory_gb: float | None = measure.DEFAULT_LIMIT_GB,
    allow_missing_baseline: bool = False,
) -> GateRun:
    """Gate every model the budgets name, plus the ``--module`` models.

    Args:
        budgets_file: The budgets file; None looks for effbench.toml, then pyproject.toml, in the current folder.
        baseline_file: The baseline JSON; None uses the budgets' ``baseline`` setting (missing file: budgets
            only). Given explicitly, it must exist unless ``update_baseline``.
        modules: ``pkg.mod:factory`` specs of custom models; each is gated by its budget entries (matched by
            the factory's name) and the baseline even without a budget.
        input_shape: Input of the custom models, batch included (default 1,1,120,160).
        update_baseline: Write this run's profiles as the new baseline before checking.
        latency: Measure latency where a budget or tolerance needs it; False skips latency checks.
        profile_fn: ``(model, input_shape, latency=, runtimes=) -> row``; defaults to
            ``effbench.profile(...).as_dict()``.
        progress: Called with a line per model profiled (for a CLI's stderr).
        max_memory_gb: Refuse a ``--module`` model whose forward pass needs more memory (None: no limit).
        allow_missing_baseline: Pass when the baseline the budgets file names does not exist; otherwise that fails
            the gate (a baseline that is not there compares nothing, and a typo in its path must not pass silently).

    Raises:
        UsageError: Config errors (file, keys, model names); exit 2.
    """
    from effbench import registry

    budgets_path = find_budgets_file(budgets_file)
    budgets: Budgets = load_budgets(budgets_path)
    customs = [measure.from_spec(spec, input_shape) for spec in modules]
    registered = registry.list_models()
    for c in customs:
        if c.name in registered:
            raise UsageError(f"--module model {c.name!r} has the name of a registered model; rename the factory")
    by_name = {c.name: c for c in customs}
    if len(by_name) != len(customs):
        raise UsageError("two --module factories have the same name")
    resolved = budgets.resolve(registered + list(by_name))
    gated = {b.model: b for b in resolved}
    for c in customs:  # custom models are gated against the baseline even without a budget entry
        gated.setdefault(c.name, ModelBudget(c.name, latency=budgets.latency, tolerance=dict(budgets.tolerance)))
    order = [n for n in registered + list(by_name) if n in gated]
    model_budgets = [gated[n] for n in order]

    explicit_baseline = baseline_file is not None
    baseline_path = Path(baseline_file) if explicit_baseline else budgets.baseline
    if explicit_baseline and not update_baseline and not baseline_path.is_file():
        read_baseline(baseline_path)  # raises the "does not exist" usage error

    needs_ratio = latency and any(m.startswith("latency_ratio_1t") for b in model_budgets for m in b.latency_metrics())
    if needs_ratio and budgets.reference is None:
        raise UsageError(f"{budgets.path}: max_latency_ratio needs `reference = \"MODEL\"` in the budgets table")
    to_profile = list(order)
    if needs_ratio and budgets.reference not in to_profile:
        to_profile.append(budgets.reference)

    # Every model is timed under every runtime some budget names, in one run, so that ratios compare like with like.
    wanted = [r for r in rt.RUNTIMES if any(r in b.runtimes() for b in model_budgets)] or ["eager"]
    runtimes, skipped = rt.available(wanted)
    notes = [f"{line}: its latency budgets were not checked" for line in skipped]
    timed = {name for name in to_profile if latency and bool(runtimes) and (
        (name in gated and gated[name].needs_latency()) or (needs_ratio and name == budgets.reference))}
    rows = profile_models({name: by_name.get(name) or measure.registered(name) for name in to_profile}, timed,
                          runtimes=tuple(runtimes or ("eager",)), profile_fn=profile_fn, max_memory_gb=max_memory_gb,
                          progress=progress)
    add_latency_ratios(rows, budgets.reference if needs_ratio else None)

    run = GateRun(GateResult(), budgets_path, baseline_path, notes=notes)
    baseline_models: dict[str, Any] | None = None
    missing: Check | None = None  # the failure of a baseline the budgets name that is not there
    if update_baseline:
        failed = [n for n in order if rows[n].get("error")]
        if failed:
            run.notes.append(f"baseline NOT written: {', '.join(failed)} could not be profiled")
        else:
            baseline_models = {n: baseline_row(rows[n], gated[n]) for n in order}
            write_baseline(baseline_path, baseline_models, runtime_versions())
            run.baseline_written = True
    elif baseline_path is not None and baseline_path.is_file():
        baseline_models = read_baseline(baseline_path)["models"]
    else:
        if budgets.baseline_set and not allow_missing_baseline:
            missing = Check("gate", "baseline", None, status="fail", reasons=[
                f"the baseline {baseline_path} named at {budgets.where('baseline')} does not exist; write it with "
                "--update-baseline, fix the path, or pass --allow-missing-baseline"])
        else:
            run.notes.append(f"no baseline at {baseline_path}: checked budgets only (`--update-baseline` writes one)")
        run.baseline_path = None
    run.result = check(model_budgets, rows, baseline_models)
    run.result.notes[:0] = run.notes
    if missing is not None:
        run.result.checks.insert(0, missing)
    return run
