"""What ``profile``, ``gate`` and a suite measure: a registered model or a user's factory, built in its deployable
form at its input shape, under one name.

A *target* is a name, a way to build the model and an input shape. Registered models come from the registry at
their registered shape. A factory comes from ``--module``: ``pkg.mod:factory`` (imported with the current folder
on ``sys.path``, as ``python -m`` does) or ``path/to/file.py:factory``; it is named after the factory (``toy`` for
``toymod:toy``) in every command, so budgets, baselines and tables agree. A model that has ``deployable()`` is
measured in that form: what ships is what is measured.
"""

from __future__ import annotations

import importlib
import importlib.util
import re
import sys
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from effbench.errors import UsageError, closest

_SPEC_FORMS = "pkg.mod:factory or path/to/file.py:factory"
#: The default of ``--max-memory-gb``: the most memory (GB, 1e9 bytes) one forward pass of a measured model may need.
DEFAULT_LIMIT_GB = 2.0


@dataclass(frozen=True)
class Target:
    """One model to measure.

    Attributes:
        name: What tables, budgets and baselines call it.
        build: Builds the model (trained form; :func:`build_deployable` takes the deployable one).
        input_shape: Its input, batch included.
        known_shape: Whether the shape is the one the model is registered (and tested) at, so that its memory
            needs no guard (:mod:`effbench.memory_guard`).
    """

    name: str
    build: Callable[[], Any]
    input_shape: tuple[int, ...]
    known_shape: bool = False


def parse_shape(text: str) -> tuple[int, ...]:
    """``"1,1,120,160"`` or ``"1x1x120x160"`` -> ``(1, 1, 120, 160)``.

    Raises:
        UsageError: If it is not positive integers.
    """
    if not text.strip():
        raise UsageError("--input-shape is empty; give positive integers like 1,1,120,160 (batch first)")
    parts = re.split(r"\s*[x,]\s*", text.strip())
    for part in parts:
        if not re.fullmatch(r"[+-]?\d+", part):
            raise UsageError(f"--input-shape {text!r}: {part!r} is not an integer; give positive integers like "
                             "1,1,120,160 (batch first)")
        if int(part) <= 0:
            raise UsageError(f"--input-shape {text!r}: dimension {int(part)} is not positive; every dimension is a "
                             "size >= 1, like 1,1,120,160 (batch first)")
    return tuple(int(p) for p in parts)


def registered(name: str, input_shape: tuple[int, ...] | None = None) -> Target:
    """A registered model, at its registered input shape unless ``input_shape`` is given.

    Raises:
        UsageError: If no model has that name (with the closest names).
    """
    from effbench import registry

    info = registry.model_info(name)
    shape = tuple(input_shape or info.input_shape)
    return Target(name, lambda: registry.create_model(name), shape, known_shape=shape == tuple(info.input_shape))


def from_spec(spec: str, input_shape: tuple[int, ...] | None = None) -> Target:
    """The factory ``spec`` names (``pkg.mod:factory`` or ``path/to/file.py:factory``), called with no arguments.

    Args:
        spec: Where the factory is.
        input_shape: Its input (default: the hand-pose task's depth frame, ``registry.DEFAULT_INPUT_SHAPE``).

    Raises:
        UsageError: A spec of neither form, a file or module that does not import, or no such callable in it.
    """
    where, sep, attr = spec.rpartition(":")
    if not sep or not where or not attr.isidentifier():
        module, dot, name = spec.rpartition(".")
        if sep:  # a colon, but nothing before it or no name after it
            example = f"{where or 'pkg.mod'}:build"
        elif dot and name != "py":  # pkg.mod.factory
            example = f"{module}:{name}"
        else:  # a module or file without its factory
            example = f"{spec}:build"
        raise UsageError(f"--module {spec!r} must look like {_SPEC_FORMS}: the module or file, a colon, then the "
                         f"function that builds the model (e.g. {example})")
    module = _import_file(spec, Path(where)) if _is_path(where) else _import_module(spec, where)
    factory = getattr(module, attr, None)
    if factory is None:
        names = [n for n, v in vars(module).items() if callable(v) and not n.startswith("_")]
        raise UsageError(f"--module {spec!r}: {where} has no callable {attr!r}; {closest(attr, names)}")
    if not callable(factory):
        raise UsageError(f"--module {spec!r}: {attr!r} is a {type(factory).__name__}, not callable")
    from effbench.registry import DEFAULT_INPUT_SHAPE

    return Target(attr, factory, tuple(input_shape or DEFAULT_INPUT_SHAPE))


def _is_path(where: str) -> bool:
    return where.endswith(".py") or "/" in where or "\\" in where


def _on_sys_path(folder: Path) -> None:
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))


def _import_module(spec: str, name: str) -> Any:
    _on_sys_path(Path.cwd())  # as `python -m` does; `python bench.py` puts the script's folder there instead
    try:
        return importlib.import_module(name)
    except Exception as err:  # ImportError, or the module raising while it imports
        hint = ""
        if isinstance(err, ModuleNotFoundError) and err.name == name.split(".")[0]:
            hint = (f"; pkg.mod:factory must be importable from the current folder ({Path.cwd()}): give the file "
                    "instead, path/to/file.py:factory")
        raise UsageError(f"--module {spec!r}: cannot import {name!r} ({type(err).__name__}: {err}){hint}") from None


def _import_file(spec: str, path: Path) -> Any:
    if path.suffix != ".py":
        guess = ""
        if path.with_name(path.name + ".py").is_file():
            guess = f"; did you mean {path}.py:{spec.rpartition(':')[2]}?"
        raise UsageError(f"--module {spec!r}: a file must end in .py ({_SPEC_FORMS}){guess}")
    if not path.is_file():
        raise UsageError(f"--module {spec!r}: no file {str(path)!r} (from {Path.cwd()})")
    # Imported as a module named after the file, its folder on sys.path, as `python path/to/file.py` would run it:
    # so its own imports of neighbouring files work.
    _on_sys_path(path.resolve().parent)
    module_spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(module_spec)
    sys.modules[path.stem] = module  # dataclasses and pickling look a class's module up there
    try:
        module_spec.loader.exec_module(module)
    except Exception as err:
        del sys.modules[path.stem]
        raise UsageError(f"--module {spec!r}: cannot import {str(path)!r} ({type(err).__name__}: {err})") from None
    return module


def build_deployable(target: Target) -> Any:
    """Build the target and return its deployable form: ``model.deployable()`` when it has one, else the model.

    Raises:
        UsageError: If the factory returns something other than an ``nn.Module``. An error of the model's own code
            propagates as it is.
    """
    from torch import nn

    model = target.build()
    if not isinstance(model, nn.Module):
        raise UsageError(f"{target.name}: the factory returned a {type(model).__name__}, not an nn.Module")
    return model.deployable() if callable(getattr(model, "deployable", None)) else model


def build_checked(target: Target, max_memory_gb: float | None = DEFAULT_LIMIT_GB) -> Any:
    """:func:`build_deployable`, then refuse an input shape whose forward pass would need more than ``max_memory_gb``
    (not checked at a registered model's own shape).

    Raises:
        UsageError: As :func:`build_deployable`, or over the memory limit (:func:`effbench.memory_guard.check_memory`).
    """
    from effbench.memory_guard import check_memory

    model = build_deployable(target)
    if not target.known_shape:
        check_memory(model, target.input_shape, max_memory_gb, target.name)
    return model


def profile_targets(
    targets: list[Target],
    max_memory_gb: float | None = DEFAULT_LIMIT_GB,
    *,
    latency: bool = True,
    runtimes: tuple[str, ...] = ("eager",),
    calibration_dir: str | None = None,
    peers: bool = True,
    timing: Any = None,
    on_profiled: Callable[[Target], None] | None = None,
) -> list[Any]:
    """Profile several targets, then time them together: every model under every runtime in the same interleaved
    rounds (:func:`effbench.profiler.time_together`), so that their latency ratios cancel the machine's drift.

    Args:
        targets: What to measure.
        max_memory_gb: Refuse an input shape whose forward pass needs more (:func:`build_checked`); None: no limit.
        latency: Time the models (and measure the GEMM roofline) under ``runtimes``.
        runtimes: Runtime names; one that cannot run a model records why in its profile.
        calibration_dir: Where int8 calibration frames are cached (default: the system temp folder).
        peers: Also run fvcore, thop and torch's FlopCounterMode on each model.
        timing: The timing protocol (:class:`effbench.profiler.TimingConfig`; default its defaults).
        on_profiled: Called with each target before it is counted (for progress).

    Returns:
        For each target in order, its :class:`effbench.profiler.Profile` (with the warnings raised while it was
        counted in its ``warnings``), or the exception that stopped it (a model that fails does not stop the others).
    """
    from effbench.profiler import TimingConfig, default_input, profile, time_together

    out: list[Any] = []
    timed = []
    for target in targets:
        if on_profiled is not None:
            on_profiled(target)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                model = build_checked(target, max_memory_gb)
                x = default_input(target.input_shape)
                prof = profile(model, target.input_shape, latency=False, peers=peers, example_input=x, name=target.name)
            except Exception as err:  # noqa: BLE001 - returned in its place; the other targets go on
                prof = err
        for w in caught:  # shown as they would have been, and kept with the model they are about
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
        out.append(prof)
        if not isinstance(prof, Exception):
            prof.warnings = sorted({str(w.message) for w in caught})
            timed.append((prof, model, x))
    if latency and timed:
        time_together(timed, runtimes=runtimes, timing=timing or TimingConfig(), calibration_dir=calibration_dir)
    return out
