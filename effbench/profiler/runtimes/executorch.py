"""ExecuTorch with the XNNPACK backend, fp32 and int8: the runtime PyTorch itself ships to phones and embedded Linux.

An optional extra (``pip install -e ".[executorch]"``, about 0.5 GB); without it both runtimes say so and are
skipped. The model is exported with ``torch.export``, lowered to XNNPACK and saved as a ``.pte`` program, whose size
is the measured weight footprint. The int8 model is quantized with XNNPACK's pt2e quantizer (symmetric, per-channel
weights), calibrated like ONNX Runtime's (:mod:`~effbench.profiler.runtimes.calibration`); that quantizer cannot
leave a layer in fp32, so the heatmap logits are int8 too: use ``ort-int8`` for int8 accuracy.

ExecuTorch's thread pool belongs to the process and cannot be resized once a program has run on it (resizing then
aborts the process), so it is set to 1 thread before the first program runs and ExecuTorch is timed on 1 thread
only; its all-threads figures are left empty.
"""

from __future__ import annotations

import contextlib
import copy
import io
import logging
import os
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from torch import Tensor

from effbench.profiler.runtimes import calibration
from effbench.profiler.runtimes.base import Prepared, Runtime, RuntimeFailure, Workspace

_INSTALL = 'pip install -e ".[executorch]"'
#: Whether this process has fixed ExecuTorch's thread pool (it must happen before the first program runs).
_pool_fixed = False


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Silence what ExecuTorch, torchao and the exporter print, from Python and from C++ (file descriptors 1 and 2):
    CPU-probe messages and optional kernels that do not load, once per model in a suite."""
    saved = [os.dup(1), os.dup(2)]
    devnull = os.open(os.devnull, os.O_WRONLY)
    level = logging.getLogger("torch").level
    try:
        os.dup2(devnull, 1)
        os.dup2(devnull, 2)
        logging.getLogger("torch").setLevel(logging.ERROR)
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()), \
                contextlib.redirect_stderr(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        logging.getLogger("torch").setLevel(level)
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        for fd in (*saved, devnull):
            os.close(fd)


def _missing() -> str | None:
    try:
        with _quiet():
            import executorch.runtime  # noqa: F401
            from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner  # noqa: F401
    except ImportError as err:
        return f"executorch is not installed ({_INSTALL}): {err.name or err}"
    return None


def _one_thread() -> None:
    """Fix ExecuTorch's process-wide thread pool at 1 thread, once, before any program runs on it."""
    global _pool_fixed
    if not _pool_fixed:
        from executorch.extension.pybindings import portable_lib

        if portable_lib._threadpool_get_thread_count() != 1:
            portable_lib._unsafe_reset_threadpool(1)
        _pool_fixed = True


def lower(workspace: Workspace, path: Path, *, int8: bool) -> Path:
    """Export the workspace's model, quantize it (``int8``), lower it to XNNPACK and save the program at ``path``.

    Raises:
        RuntimeFailure: ``export failed: <reason>`` when torch.export, the quantizer or the lowering refuses it.
    """
    import torch
    from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
    from executorch.exir import to_edge_transform_and_lower

    workspace.reference_outputs()  # fills the model's caches with real tensors before tracing
    x = workspace.example
    try:
        with _quiet():
            model = copy.deepcopy(workspace.model)
            if int8:
                model = _quantized(model, x, calibration.frames(workspace))
            program = to_edge_transform_and_lower(torch.export.export(model, (x,)),
                                                  partitioner=[XnnpackPartitioner()]).to_executorch()
    except Exception as err:  # the exporter's and quantizer's errors are long: the innermost first line
        while err.__cause__ is not None:
            err = err.__cause__
        first = next((ln.strip() for ln in str(err).splitlines() if ln.strip()), "")
        raise RuntimeFailure(f"export failed: {type(err).__name__}: {first}"[:320]) from err
    path.write_bytes(program.buffer)
    return path


def _quantized(model: Any, x: Tensor, frames: list[Tensor]) -> Any:
    """``model`` quantized by XNNPACK's pt2e quantizer (symmetric, per-channel weights), calibrated on ``frames``."""
    import torch
    from executorch.backends.xnnpack.quantizer.xnnpack_quantizer import (
        XNNPACKQuantizer,
        get_symmetric_quantization_config,
    )
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

    quantizer = XNNPACKQuantizer().set_global(get_symmetric_quantization_config(is_per_channel=True))
    prepared = prepare_pt2e(torch.export.export(model, (x,)).module(), quantizer)
    with torch.no_grad():
        for frame in frames:
            prepared(frame)
    return convert_pt2e(prepared)


class _Program(Prepared):
    """A ``.pte`` program run by ExecuTorch's runtime, on 1 thread."""

    def __init__(self, path: Path, names: list[str], bn_folded: bool):
        from executorch.runtime import Runtime as EtRuntime

        self.file_bytes = path.stat().st_size
        self.bn_folded = bn_folded
        self.names = names
        with _quiet():
            _one_thread()
            self.method = EtRuntime.get().load_program(str(path)).load_method("forward")

    def thread_counts(self, threads: int) -> tuple[int, ...]:
        return (1,)  # the process-wide pool is fixed at 1 thread (module docstring)

    @contextlib.contextmanager
    def runner(self, x: Tensor, threads: int) -> Iterator[Callable[[], Any]]:
        if threads != 1:
            raise RuntimeFailure("ExecuTorch runs on 1 thread here (its thread pool cannot be resized after use)")
        yield lambda: self.method.execute([x])

    def run(self, x: Tensor) -> dict[str, Tensor]:
        return dict(zip(self.names, self.method.execute([x])))


class ExecuTorchRuntime(Runtime):
    """ExecuTorch, XNNPACK backend, fp32."""

    name = "executorch"
    title = "ExecuTorch XNNPACK fp32"
    install = _INSTALL
    int8 = False

    def missing(self) -> str | None:
        return _missing()

    def version(self) -> str:
        from importlib.metadata import version

        return f"executorch {version('executorch')}"

    def prepare(self, workspace: Workspace) -> Prepared:
        path = workspace.folder / f"{self.name}.pte"
        lower(workspace, path, int8=self.int8)
        return _Program(path, list(workspace.reference_outputs()), workspace.bn_folded)


class ExecuTorchInt8Runtime(ExecuTorchRuntime):
    """ExecuTorch, XNNPACK backend, int8 (every layer, the head included)."""

    name = "executorch-int8"
    title = "ExecuTorch XNNPACK int8"
    int8 = True
