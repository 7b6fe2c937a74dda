"""A guard against runaway memory: what a model's forward pass at an input shape would allocate, found before it runs.

The model runs once on the meta device (tensors with shapes and no data: no memory, no arithmetic), and every tensor
the pass creates is added up. That total is what profiling holds, because the profiler's trace keeps every tensor of
the pass alive until it ends (:mod:`effbench.profiler.trace`); a shape whose total is over the limit is refused with
the estimate, before a real pass can exhaust the machine's memory (``--input-shape 1,1,16000,16000``).
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

from effbench.errors import UsageError


class _Allocations(TorchDispatchMode):
    """Adds up the bytes of every new tensor an op returns (a view or an in-place result allocates nothing)."""

    def __init__(self) -> None:
        super().__init__()
        self.bytes = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        inputs = {id(t) for t in tree_flatten((args, kwargs))[0] if isinstance(t, torch.Tensor)}
        for t in tree_flatten(out)[0]:
            if isinstance(t, torch.Tensor) and id(t) not in inputs and not t._is_view():
                self.bytes += t.numel() * t.element_size()
        return out


def forward_bytes(model: nn.Module, input_shape: Sequence[int]) -> int | None:
    """Bytes of every tensor one forward pass of ``model`` creates at ``input_shape``, its input included, found on
    the meta device (the model itself is left as it was); None when the model does not run there (an op without a
    meta kernel, a shape it rejects, data-dependent control flow)."""
    try:
        meta = copy.deepcopy(model).to("meta").eval()
        x = torch.empty(tuple(input_shape), device="meta")
        counter = _Allocations()
        with torch.no_grad(), counter:
            meta(x)
    except Exception:  # the real pass will report what is wrong with the model, in the model's own words
        return None
    return counter.bytes + x.numel() * x.element_size()


def check_memory(model: nn.Module, input_shape: Sequence[int], limit_gb: float | None, name: str) -> int | None:
    """Refuse to run ``model`` at ``input_shape`` when its forward pass would create more than ``limit_gb``.

    Args:
        model: The model (its deployable form).
        input_shape: Batch included.
        limit_gb: The limit in GB (1e9 bytes); None checks nothing.
        name: The model's name, for the message.

    Returns:
        The estimate in bytes (None when unknown or not checked).

    Raises:
        UsageError: Over the limit, with the estimate and how to go on.
    """
    if limit_gb is None:
        return None
    estimate = forward_bytes(model, input_shape)
    if estimate is not None and estimate > limit_gb * 1e9:
        shape = "x".join(map(str, input_shape))
        raise UsageError(
            f"{name} at input {shape}: one forward pass creates about {estimate / 1e9:,.1f} GB of tensors (estimated "
            f"on the meta device; profiling holds them all), over the {limit_gb:g} GB limit; give a smaller "
            f"--input-shape, or raise the limit with --max-memory-gb {int(estimate / 1e9) + 1} if the machine has "
            "that memory"
        )
    return estimate

