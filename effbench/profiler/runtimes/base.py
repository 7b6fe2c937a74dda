"""The runtime seam: what a runtime is (:class:`Runtime`), what it makes of a model (:class:`Prepared`), and what it
prepares the model from (:class:`Workspace`).

A runtime turns the deployed model into something it runs (eager PyTorch: a BatchNorm-folded copy; ONNX Runtime:
an exported file and an inference session), runs it on one input, and says what it is (name, title, version).
The timing protocol is the same for every runtime (:mod:`effbench.profiler.latency`), so their figures compare.
"""

from __future__ import annotations

import abc
import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn


class RuntimeFailure(Exception):
    """A runtime could not prepare or run a model; the message says why in one line (recorded, the suite goes on)."""


def flat_outputs(out: Any) -> dict[str, Tensor]:
    """A model's output as named tensors, in order: a dict's keys (nested ones joined by ``.``), ``output_<i>`` for a
    tuple or list, ``output`` for one tensor. The ONNX export names its outputs the same way."""
    if isinstance(out, Tensor):
        return {"output": out}
    items = out.items() if isinstance(out, dict) else ((f"output_{i}", v) for i, v in enumerate(out))
    flat: dict[str, Tensor] = {}
    for key, value in items:
        if isinstance(value, Tensor):
            flat[str(key)] = value
        else:
            flat.update({f"{key}.{k}": v for k, v in flat_outputs(value).items()})
    return flat


@dataclass
class Workspace:
    """What every runtime prepares one model from, and what they share (the ONNX export, the calibration frames).

    Attributes:
        model: The deployed model in eval mode, BatchNorm folded where possible (:func:`~effbench.profiler.latency.
            deployed_copy`); runtimes must not change it.
        example: The input the model is timed on (batch first).
        folder: A folder for the runtime's files (an exported model), removed after the profile.
        bn_folded: Whether ``model`` has its BatchNorms folded.
        calibration_dir: Where generated calibration frames are cached (None: the system temp folder).
        calibration: Calibration inputs to use instead of generated ones (each of the example's shape), e.g. frames
            of the training split a model was trained on.
        cache: What runtimes share, by key (the exported ONNX file, the calibration frames).
    """

    model: nn.Module
    example: Tensor
    folder: Path
    bn_folded: bool = True
    calibration_dir: Path | None = None
    calibration: list[Tensor] | None = None
    cache: dict[str, Any] = field(default_factory=dict)

    def reference_outputs(self) -> dict[str, Tensor]:
        """The model's outputs on the example in eager PyTorch (computed once)."""
        if "outputs" not in self.cache:
            with torch.no_grad():  # not inference_mode: a cache made here (a soft-argmax grid) must stay usable
                self.cache["outputs"] = {k: v.detach().clone() for k, v in flat_outputs(self.model(self.example)).items()}
        return self.cache["outputs"]

    def shared(self, key: str, make: Callable[[], Any]) -> Any:
        """``make()``, computed once per workspace: an exception is kept and raised again for every runtime that asks."""
        if key not in self.cache:
            try:
                self.cache[key] = make()
            except Exception as err:  # noqa: BLE001 - kept for the other runtimes that depend on it
                self.cache[key] = err
        value = self.cache[key]
        if isinstance(value, Exception):
            raise value
        return value


class Prepared(abc.ABC):
    """A model made ready by a runtime.

    Attributes:
        file_bytes: Size of the file the runtime deploys (an ONNX model), the measured weight footprint; None when
            the runtime runs no file (eager PyTorch).
        bn_folded: Whether the model runs with BatchNorm folded.
    """

    file_bytes: int | None = None
    bn_folded: bool | None = None

    def thread_counts(self, threads: int) -> tuple[int, ...]:
        """The thread settings it is timed on, given the "all threads" setting: 1 and ``threads``."""
        return tuple(dict.fromkeys((1, threads)))

    @abc.abstractmethod
    def runner(self, x: Tensor, threads: int) -> contextlib.AbstractContextManager[Callable[[], Any]]:
        """A context giving a function that runs one inference on ``x`` with ``threads`` threads, for the timed loop
        (the context sets and restores any thread setting)."""

    @abc.abstractmethod
    def run(self, x: Tensor) -> dict[str, Tensor]:
        """The named outputs (:func:`flat_outputs` names) of one inference on ``x``, on one thread."""


class Runtime(abc.ABC):
    """One way to run a deployed model.

    Attributes:
        name: What ``--runtime`` and the flat row's keys say (``ort``, ``ort-int8``).
        title: What tables and plots say (``ONNX Runtime fp32``).
        install: How to install what it needs, for the message when it is missing.
    """

    name: str = ""
    title: str = ""
    install: str = ""

    @abc.abstractmethod
    def missing(self) -> str | None:
        """None when the runtime can run here, else one line saying what is missing."""

    @abc.abstractmethod
    def version(self) -> str:
        """The runtime and its version, e.g. ``onnxruntime 1.32.0`` (only called when nothing is missing)."""

    @abc.abstractmethod
    def prepare(self, workspace: Workspace) -> Prepared:
        """Make the workspace's model ready to run.

        Raises:
            RuntimeFailure: With a one-line reason (an export the exporter refuses, a quantization that fails).
        """
