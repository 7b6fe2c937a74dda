"""Deployment runtimes: the same deployed model timed as eager PyTorch, ONNX Runtime fp32 and int8, and ExecuTorch.

People who ship to glasses, phones and microcontrollers never run eager PyTorch there; on the host, Python dispatch
rather than the model often sets eager's time. Each runtime (:class:`~effbench.profiler.runtimes.base.Runtime`)
prepares the model its own way and is timed by the same protocol (:mod:`effbench.profiler.latency`), on 1 thread
and on all threads. :func:`measure` times a model under several runtimes and returns a :class:`RuntimeLatency`
each; a runtime that cannot run the model (an export the exporter refuses) records why, and the others go on.

Runtimes by name:

- ``eager``: eager PyTorch, BatchNorm folded.
- ``ort``: ONNX Runtime fp32 (dynamo export, opset 20, every graph optimisation on): the default deployment
  runtime.
- ``ort-int8``: ONNX Runtime on the static int8 (QDQ, per-channel) model, the head in fp32.
- ``executorch``, ``executorch-int8``: ExecuTorch with the XNNPACK backend, fp32 and int8, on 1 thread (an
  optional extra: ``pip install -e ".[executorch]"``).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from torch import Tensor, nn

from effbench.errors import UsageError, closest, error_text
from effbench.profiler.latency import Stats, TimingConfig, time_interleaved
from effbench.profiler.runtimes.base import Prepared, Runtime, RuntimeFailure, Workspace, flat_outputs
from effbench.profiler.runtimes.eager import EagerRuntime
from effbench.profiler.runtimes.executorch import ExecuTorchInt8Runtime, ExecuTorchRuntime
from effbench.profiler.runtimes.ort import TELEMETRY_ENV, OrtRuntime
from effbench.profiler.runtimes.ort_int8 import OrtInt8Runtime

# Set before anything imports onnxruntime (the exporter's packages may): it writes telemetry under the home folder
# at import time otherwise.
os.environ.setdefault(TELEMETRY_ENV, "1")

__all__ = ["DEFAULT", "DEPLOYMENT", "RUNTIMES", "Prepared", "Runtime", "RuntimeFailure", "RuntimeLatency",
           "Workspace", "available", "flat_outputs", "get", "measure", "measure_together", "parse"]  # fmt: skip

#: Every runtime by name, in the order tables show them.
RUNTIMES: dict[str, Runtime] = {
    rt.name: rt
    for rt in (EagerRuntime(), OrtRuntime(), OrtInt8Runtime(), ExecuTorchRuntime(), ExecuTorchInt8Runtime())
}
#: What ``bench.py profile`` times when not told: the runtimes a plain install has.
DEFAULT: tuple[str, ...] = ("eager", "ort", "ort-int8")
#: The runtime the report's latency columns and plot use unless a suite says otherwise.
DEPLOYMENT = "ort"


def get(name: str) -> Runtime:
    """The runtime called ``name``.

    Raises:
        UsageError: If there is none (with the valid names).
    """
    if name not in RUNTIMES:
        raise UsageError(f"unknown runtime {name!r}; {closest(name, RUNTIMES)}")
    return RUNTIMES[name]


def parse(text: str | Sequence[str]) -> list[str]:
    """``"eager,ort"`` (or ``["eager", "ort"]``) -> ``["eager", "ort"]``, each checked, repeats dropped.

    Raises:
        UsageError: An unknown name (with the valid ones), or none at all.
    """
    parts = text.split(",") if isinstance(text, str) else text
    names = [n.strip() for n in parts if n.strip()]
    if not names:
        raise UsageError(f"--runtime {text!r} names no runtime; valid: {', '.join(RUNTIMES)}")
    return [get(n).name for n in dict.fromkeys(names)]


def available(names: Sequence[str]) -> tuple[list[str], list[str]]:
    """The runtimes of ``names`` that can run here, and one line for each that cannot (``runtime executorch
    skipped: executorch is not installed (...)``), for the caller to print or note."""
    usable, skipped = [], []
    for name in names:
        why = get(name).missing()
        if why is None:
            usable.append(name)
        else:
            skipped.append(f"runtime {name} skipped: {why}")
    return usable, skipped


@dataclass
class RuntimeLatency:
    """One model under one runtime.

    Attributes:
        runtime: Its name (``ort``).
        version: The runtime and its version (``onnxruntime 1.32.0``); None when it is not installed.
        latency_1t: Timing on 1 thread; None when it could not run.
        latency_mt: Timing on ``threads_mt`` threads.
        threads_mt: The "all threads" setting.
        file_bytes: Size of the deployed file (an ONNX model), the measured weight footprint; None for eager.
        bn_folded: Whether it ran with BatchNorm folded.
        max_diff: Largest absolute difference of its outputs from eager PyTorch's on the timed input (an int8
            model's shows its quantization error); None for eager itself.
        error: Why it could not run the model (not installed, export failed...), else None.
    """

    runtime: str
    version: str | None = None
    latency_1t: Stats | None = None
    latency_mt: Stats | None = None
    threads_mt: int | None = None
    file_bytes: int | None = None
    bn_folded: bool | None = None
    max_diff: float | None = None
    error: str | None = None


def measure(
    model: nn.Module,
    x: Tensor,
    names: Sequence[str],
    *,
    threads: int,
    timing: TimingConfig = TimingConfig(),
    bn_folded: bool = True,
    calibration_dir: str | os.PathLike | None = None,
) -> dict[str, RuntimeLatency]:
    """Time ``model(x)`` under each runtime in ``names``, on 1 and on ``threads`` threads (:func:`measure_together`
    with one model).

    Args:
        model: The deployed model in eval mode (BatchNorm folded: :func:`~effbench.profiler.latency.deployed_copy`);
            it is not changed.
        x: The input, batch first.
        names: Runtime names (:data:`RUNTIMES`).
        threads: The "all threads" setting.
        timing: The timing protocol, the same for every runtime.
        bn_folded: Whether ``model`` has its BatchNorms folded (recorded).
        calibration_dir: Where calibration frames for int8 are cached (default: the system temp folder).

    Returns:
        Runtime name -> its :class:`RuntimeLatency`; one that could not run says why in ``error``.
    """
    return measure_together([(model, x, bn_folded)], names, threads=threads, timing=timing,
                            calibration_dir=calibration_dir)[0]


def measure_together(
    models: Sequence[tuple[nn.Module, Tensor, bool]],
    names: Sequence[str],
    *,
    threads: int,
    timing: TimingConfig = TimingConfig(),
    calibration_dir: str | os.PathLike | None = None,
) -> list[dict[str, RuntimeLatency]]:
    """Time several deployed models under each runtime in ``names``, all in the same rounds.

    Every model is prepared under every runtime first (exported, quantized, its outputs compared with eager's); then,
    on 1 thread and again on ``threads`` threads, every prepared pair is timed window by window in interleaved rounds
    (:func:`~effbench.profiler.latency.time_interleaved`), so a drift of the machine's speed moves every model's
    figure alike and their ratios cancel it.

    Args:
        models: ``(deployed model in eval mode, its input, whether its BatchNorms are folded)`` each (as
            :func:`measure`'s arguments); they are not changed.
        names: Runtime names (:data:`RUNTIMES`).
        threads: The "all threads" setting.
        timing: The timing protocol, the same for every model and runtime.
        calibration_dir: Where calibration frames for int8 are cached (default: the system temp folder).

    Returns:
        For each model in order, runtime name -> its :class:`RuntimeLatency`; one that could not run says why in
        ``error``.
    """
    out: list[dict[str, RuntimeLatency]] = [{} for _ in models]
    ready: dict[tuple[int, str], tuple[Prepared, Tensor]] = {}
    with tempfile.TemporaryDirectory(prefix="effbench-runtime-") as folder:
        for i, (model, x, folded) in enumerate(models):
            (Path(folder) / str(i)).mkdir()
            ws = Workspace(model, x, Path(folder) / str(i), folded,
                           Path(calibration_dir) if calibration_dir is not None else None)
            for name in names:
                out[i][name], prepared = _prepare_one(get(name), ws)
                if prepared is not None:
                    ready[i, name] = prepared, x
        for n in dict.fromkeys((1, threads)):
            _time_on_threads(ready, n, threads, timing, out)
    return out


def _prepare_one(runtime: Runtime, ws: Workspace) -> tuple[RuntimeLatency, Prepared | None]:
    """The runtime's record of one model so far (version, file size, difference from eager), and the prepared model
    to time (None when it cannot run it: the record says why)."""
    result = RuntimeLatency(runtime.name)
    why = runtime.missing()
    if why is not None:
        result.error = f"not installed: {why}"
        return result, None
    result.version = runtime.version()
    try:
        prepared = runtime.prepare(ws)
        result.file_bytes, result.bn_folded = prepared.file_bytes, prepared.bn_folded
        if runtime.name != "eager":
            result.max_diff = max_difference(prepared.run(ws.example), ws.reference_outputs())
    except Exception as err:  # noqa: BLE001 - a runtime failing on one model is recorded; the others go on
        result.error = _reason(err)
        return result, None
    return result, prepared


def _time_on_threads(ready: dict[tuple[int, str], tuple[Prepared, Tensor]], n: int, threads: int,
                     timing: TimingConfig, out: list[dict[str, RuntimeLatency]]) -> None:
    """Time every prepared model that runs on ``n`` threads, interleaved, into ``out``."""
    with contextlib.ExitStack() as stack:
        calls = {}
        for (i, name), (prepared, x) in ready.items():
            if n not in prepared.thread_counts(threads) or out[i][name].error:
                continue
            try:  # every runner on n threads at once: eager's sets torch's (global) thread count, all to the same n
                calls[i, name] = stack.enter_context(prepared.runner(x, n))
            except Exception as err:  # noqa: BLE001
                out[i][name].error = _reason(err)
        for (i, name), stats in time_interleaved(calls, timing).items():
            result = out[i][name]
            if isinstance(stats, Exception):
                result.error = _reason(stats)
                continue
            if n == 1:
                result.latency_1t = stats
            if n == threads:
                result.latency_mt, result.threads_mt = stats, threads


def _reason(err: Exception) -> str:
    return str(err) if isinstance(err, RuntimeFailure) else error_text(err, 300)


def max_difference(outputs: dict[str, Tensor], reference: dict[str, Tensor]) -> float | None:
    """The largest absolute difference between two sets of named outputs, over the names they share (None: none)."""
    diffs = [float((outputs[k].float() - reference[k].float()).abs().max()) for k in reference if k in outputs]
    return max(diffs) if diffs else None
