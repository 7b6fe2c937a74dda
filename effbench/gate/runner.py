"""Run a gate: find the gated models, build their deployable form, profile them, check, maybe update the baseline.

Registered models are built with :func:`effbench.create_model` at their registered input shape; custom models
come from ``pkg.mod:factory`` specs (a function or class called with no arguments), named after the factory.
A model with ``deployable()`` is gated in that form (DESIGN.md: what is deployed is what is gated).
"""

from __future__ import annotations

import importlib
import re
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from torch import nn

from effbench.errors import UsageError, closest
from effbench.gate.baseline import read_baseline, write_baseline
from effbench.gate.budgets import Budgets, ModelBudget, find_budgets_file, load_budgets
from effbench.gate.check import GateResult, add_latency_ratios, check
from effbench.gate.metrics import BASELINE_ROW_KEYS, METRICS
from effbench.registry import DEFAULT_INPUT_SHAPE

ProfileFn = Callable[..., Any]


@dataclass
class CustomModel:
    """A model from ``--module pkg.mod:factory``."""

    name: str
    factory: Callable[[], nn.Module]
    input_shape: tuple[int, ...]


@dataclass
class GateRun:
    """What :func:`run_gate` did: the result, and the files it used or wrote."""

    result: GateResult
    budgets_path: Path
    baseline_path: Path | None
    baseline_written: bool = False
    notes: list[str] = field(default_factory=list)


def parse_shape(text: str) -> tuple[int, ...]:
    """``"1,1,120,160"`` or ``"1x1x120x160"`` -> ``(1, 1, 120, 160)``.

    Raises:
        UsageError: If it is not positive integers.
    """
    parts = re.split(r"\s*[x,]\s*", text.strip())
    shape = tuple(int(p) for p in parts) if all(p.isdigit() for p in parts) else ()
    if not shape or any(d <= 0 for d in shape):
        raise UsageError(f"input shape {text!r} is not positive integers like 1,1,120,160 (batch included)")
    return shape


def load_custom(spec: str, input_shape: tuple[int, ...] | None = None) -> CustomModel:
    """Import ``pkg.mod:factory`` (the current folder is importable, as with ``python -m``).

    Raises:
        UsageError: A spec without ``:``, a module that does not import, or a missing factory.
    """
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise UsageError(f"--module {spec!r} must look like pkg.mod:factory")
    if "" not in sys.path and str(Path.cwd()) not in sys.path:
        sys.path.insert(0, str(Path.cwd()))
    try:
        module = importlib.import_module(module_name)
    except ImportError as err:
        raise UsageError(f"--module {spec!r}: cannot import {module_name!r}: {err}") from None
    factory = getattr(module, attr, None)
    if not callable(factory):
        names = [n for n, v in vars(module).items() if callable(v) and not n.startswith("_")]
        raise UsageError(f"--module {spec!r}: {module_name} has no callable {attr!r}; {closest(attr, names)}")
    return CustomModel(attr, factory, tuple(input_shape or DEFAULT_INPUT_SHAPE))


def _default_profile(model: nn.Module, input_shape: tuple[int, ...], *, latency: bool) -> dict[str, Any]:
    from effbench.profiler import profile

    return profile(model, input_shape, latency=latency).as_dict()


def profile_model(
    name: str, custom: CustomModel | None, *, latency: bool, profile_fn: ProfileFn | None = None
) -> dict[str, Any]:
    """Build one model's deployable form and profile it; any exception becomes an ``error`` field."""
    from effbench import registry

    profile_fn = profile_fn or _default_profile
    shape = custom.input_shape if custom else registry.model_info(name).input_shape
    try:
        model = custom.factory() if custom else registry.create_model(name)
        if not isinstance(model, nn.Module):
            raise TypeError(f"factory returned {type(model).__name__}, not an nn.Module")
        if callable(getattr(model, "deployable", None)):
            model = model.deployable()
        model.eval()
        row = dict(profile_fn(model, shape, latency=latency))
    except UsageError:
        raise  # e.g. an input shape the model rejects: a config error (exit 2), not a grown model
    except Exception as err:  # noqa: BLE001 - a model that fails is reported, the others still get gated
        return {"input_shape": list(shape), "error": f"{type(err).__name__}: {err}"}
    row["input_shape"] = list(shape)
    return row


def baseline_row(row: dict[str, Any], budget: ModelBudget) -> dict[str, Any]:
    """What the baseline keeps of a row: counts and bytes, and latency figures only where a tolerance compares them
    (absolute latency is machine-dependent: committing it would churn the file on every update)."""
    keep_latency = any(METRICS[m].kind == "latency" for m in budget.tolerance)
    latency_keys = {k for m in METRICS.values() if m.kind == "latency" for k in m.row_keys} | {"latency_ms_1t"}
    out: dict[str, Any] = {"input_shape": row["input_shape"]}
    for key in BASELINE_ROW_KEYS:
        if row.get(key) is not None and (keep_latency or key not in latency_keys):
            out[key] = row[key]
    return out


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
        profile_fn: ``(model, input_shape, latency=) -> row``; defaults to ``effbench.profile(...).as_dict()``.
        progress: Called with a line per model profiled (for a CLI's stderr).

    Raises:
        UsageError: Config errors (file, keys, model names); exit 2.
    """
    from effbench import registry

    budgets_path = find_budgets_file(budgets_file)
    budgets: Budgets = load_budgets(budgets_path)
    customs = [load_custom(spec, input_shape) for spec in modules]
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

    needs_ratio = latency and any("max_latency_ratio" in b.limits or "latency_ratio_1t" in b.tolerance
                                  for b in model_budgets)
    if needs_ratio and budgets.reference is None:
        raise UsageError(f"{budgets.path}: max_latency_ratio needs `reference = \"MODEL\"` in the budgets table")
    to_profile = list(order)
    if needs_ratio and budgets.reference not in to_profile:
        to_profile.append(budgets.reference)

    rows: dict[str, dict[str, Any]] = {}
    for name in to_profile:
        wants_latency = latency and (
            (name in gated and gated[name].needs_latency()) or (needs_ratio and name == budgets.reference))
        if progress:
            progress(f"profiling {name}{' (with latency)' if wants_latency else ''}")
        rows[name] = profile_model(name, by_name.get(name), latency=wants_latency, profile_fn=profile_fn)
    add_latency_ratios(rows, budgets.reference if needs_ratio else None)

    run = GateRun(GateResult(), budgets_path, baseline_path)
    baseline_models: dict[str, Any] | None = None
    if update_baseline:
        failed = [n for n in order if rows[n].get("error")]
        if failed:
            run.notes.append(f"baseline NOT written: {', '.join(failed)} could not be profiled")
        else:
            baseline_models = {n: baseline_row(rows[n], gated[n]) for n in order}
            write_baseline(baseline_path, baseline_models)
            run.baseline_written = True
    elif baseline_path is not None and baseline_path.is_file():
        baseline_models = read_baseline(baseline_path)["models"]
    else:
        run.notes.append(f"no baseline at {baseline_path}: checked budgets only (`--update-baseline` writes one)")
        run.baseline_path = None
    run.result = check(model_budgets, rows, baseline_models)
    run.result.notes[:0] = run.notes
    return run
