"""ONNX Runtime fp32: the exported file, rewritten by the exact deployment passes
(:mod:`~effbench.profiler.runtimes.onnx_passes`), in an inference session on the CPU, every graph optimisation on,
timed through pre-bound input and output buffers (:class:`BoundRun`).

One session per thread setting (ONNX Runtime fixes its intra-op thread pool when a session is made): 1 thread,
the embedded-like figure, and all threads. Inter-op parallelism is off (sequential execution), as a small device
runs a network. ONNX Runtime writes telemetry and a device id under the home folder when it is imported unless
``ORT_DISABLE_TELEMETRY`` is set; :func:`onnxruntime` sets it before the first import (the runtimes package sets
it when effbench's profiler is imported, so that nothing else imports it first).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import torch
from torch import Tensor

from effbench.profiler.runtimes import onnx_export, onnx_passes
from effbench.profiler.runtimes.base import Prepared, Runtime, RuntimeFailure, Workspace

#: Environment variable that keeps ONNX Runtime from writing telemetry under the home folder.
TELEMETRY_ENV = "ORT_DISABLE_TELEMETRY"


def onnxruntime() -> ModuleType:
    """The ``onnxruntime`` module, imported with its telemetry off (unless the user set ``ORT_DISABLE_TELEMETRY``)."""
    os.environ.setdefault(TELEMETRY_ENV, "1")
    import onnxruntime as ort

    return ort


def session(path: Path, threads: int, *, profile_prefix: str | None = None) -> Any:
    """An inference session of the model at ``path`` on ``threads`` intra-op threads, all graph optimisations on.

    All of them: the extended or basic level (no blocked NCHWc layout) ran ``tiny_hand`` 2x and mobilenet_v2_100
    2.7x slower. Measured and left at their defaults: ``session.intra_op.allow_spinning`` (no thread pool on 1
    thread: no change), the memory pattern (off: 3-4% slower), the CPU arena and denormals as zero (no change).

    Args:
        path: The ONNX file.
        threads: Intra-op threads (1: no thread pool).
        profile_prefix: Turn ONNX Runtime's per-node profiler on, writing its JSON to files with this prefix.
    """
    ort = onnxruntime()
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3  # errors only: a model it cannot optimise fully still runs
    if profile_prefix is not None:
        options.enable_profiling = True
        options.profile_file_prefix = profile_prefix
    try:
        return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as err:  # an exported graph ONNX Runtime refuses: recorded, the suite goes on
        first = next((ln for ln in str(err).splitlines() if ln.strip()), type(err).__name__)
        raise RuntimeFailure(f"ONNX Runtime cannot load the model: {first[:300]}") from err


class BoundRun:
    """One inference of a session on a fixed input through an IOBinding: the input and a pre-allocated buffer for each
    output bound once (the shapes and types of one plain run's outputs: the exported graphs have static shapes).

    It holds the buffers: ONNX Runtime's binding points into their memory without owning it.
    """

    def __init__(self, sess: Any, x: Tensor):
        ort = onnxruntime()
        feed = np.ascontiguousarray(x.detach().cpu().numpy())
        self._sess = sess
        self._values = [ort.OrtValue.ortvalue_from_numpy(feed)]
        self._binding = sess.io_binding()
        self._binding.bind_ortvalue_input(onnx_export.INPUT_NAME, self._values[0])
        for out, value in zip(sess.get_outputs(), sess.run(None, {onnx_export.INPUT_NAME: feed})):
            self._values.append(ort.OrtValue.ortvalue_from_numpy(np.empty_like(np.asarray(value))))
            self._binding.bind_ortvalue_output(out.name, self._values[-1])

    def __call__(self) -> None:
        self._sess.run_with_iobinding(self._binding)

    def outputs(self) -> dict[str, np.ndarray]:
        """The outputs of the last run, by name."""
        return {o.name: v.numpy() for o, v in zip(self._sess.get_outputs(), self._values[1:])}


class OrtModel(Prepared):
    """An ONNX file run by ONNX Runtime, a session per thread setting made on first use."""

    def __init__(self, path: Path, bn_folded: bool):
        self.path = path
        self.file_bytes = path.stat().st_size
        self.bn_folded = bn_folded
        self._sessions: dict[int, Any] = {}

    def session(self, threads: int) -> Any:
        """The session on ``threads`` intra-op threads."""
        if threads not in self._sessions:
            self._sessions[threads] = session(self.path, threads)
        return self._sessions[threads]

    @contextlib.contextmanager
    def runner(self, x: Tensor, threads: int) -> Iterator[Callable[[], Any]]:
        """One inference with the input and every output bound to buffers made once (ONNX Runtime's IOBinding), as
        an application calling its C API with its own buffers runs it: ``session.run`` would convert the input and
        allocate the outputs anew on every call (about 3 us, plus a copy per output), which is no part of the
        model's cost and a few percent of a 0.1 ms one."""
        sess = self.session(threads)
        yield BoundRun(sess, x)

    def run(self, x: Tensor) -> dict[str, Tensor]:
        sess = self.session(1)
        values = sess.run(None, {onnx_export.INPUT_NAME: x.detach().cpu().numpy()})
        return {o.name: torch.from_numpy(np.asarray(v)) for o, v in zip(sess.get_outputs(), values)}


class OrtRuntime(Runtime):
    """ONNX Runtime fp32 on the CPU: the default deployment runtime."""

    name = "ort"
    title = "ONNX Runtime fp32"
    install = "pip install onnxruntime onnx onnxscript"

    def missing(self) -> str | None:
        try:
            onnxruntime()
        except ImportError:
            return f"onnxruntime is not installed ({self.install})"
        return onnx_export.missing()

    def version(self) -> str:
        return f"onnxruntime {onnxruntime().__version__}"

    def prepare(self, workspace: Workspace) -> Prepared:
        return OrtModel(onnx_passes.deployed(workspace), workspace.bn_folded)
