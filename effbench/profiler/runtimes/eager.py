"""Eager PyTorch: the deployed model run by Python, BatchNorm folded, in inference mode."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch import Tensor, nn

from effbench.profiler.runtimes.base import Prepared, Runtime, Workspace, flat_outputs


class _EagerModel(Prepared):
    def __init__(self, model: nn.Module, bn_folded: bool):
        self.model = model
        self.bn_folded = bn_folded

    @contextlib.contextmanager
    def runner(self, x: Tensor, threads: int) -> Iterator[Callable[[], Any]]:
        before = torch.get_num_threads()
        try:
            torch.set_num_threads(threads)
            with torch.inference_mode():
                yield lambda: self.model(x)
        finally:
            torch.set_num_threads(before)

    def run(self, x: Tensor) -> dict[str, Tensor]:
        with self.runner(x, 1) as call:
            return flat_outputs(call())


class EagerRuntime(Runtime):
    """The model as PyTorch runs it on the host; where Python dispatch, not the model, often sets the time."""

    name = "eager"
    title = "eager PyTorch"
    install = "pip install torch"

    def missing(self) -> str | None:
        return None

    def version(self) -> str:
        return f"torch {torch.__version__}"

    def prepare(self, workspace: Workspace) -> Prepared:
        return _EagerModel(workspace.model, workspace.bn_folded)
