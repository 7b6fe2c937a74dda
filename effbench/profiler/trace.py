"""Record one forward pass at the aten-op level: each op's count, module scope and tensor storages.

A ``TorchDispatchMode`` sees every op the dispatcher runs (functional calls and ``@`` included, a reused module
once per call). Forward pre/post hooks, removed afterwards, keep the stack of module names so each op is charged
to the module that ran it. For the memory analysis each op also records which storages it read and wrote; every
tensor is kept alive until the trace ends so that a storage address never gets reused by a later tensor.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

from effbench.profiler import counting


@dataclass(frozen=True)
class TensorRef:
    """One tensor an op read or wrote: the storage it lives in and its size."""

    storage: int  # storage address, unique while the trace holds every tensor
    numel: int
    storage_numel: int  # elements of the whole storage (a view may cover only part of it)
    floating: bool
    itemsize: int


@dataclass
class OpEvent:
    """One aten op call."""

    name: str  # handle key, see counting.op_name
    scope: tuple[str, ...]  # module names from the root to the innermost module that ran the op
    count: counting.Count | None  # None: no handle
    inputs: list[TensorRef] = field(default_factory=list)
    outputs: list[TensorRef] = field(default_factory=list)
    inplace: bool = False  # mutates its first argument (relu_, hardtanh_, add_...)


@dataclass
class Trace:
    """The ops of one forward pass, the network input's and outputs' storages, and the module calls."""

    events: list[OpEvent]
    input_refs: list[TensorRef]
    output_refs: list[TensorRef]
    module_types: dict[str, str]  # module name -> class name
    module_calls: dict[str, int]  # module name -> times called


def _ref(t: Tensor) -> TensorRef:
    storage = t.untyped_storage()
    itemsize = t.element_size()
    return TensorRef(storage.data_ptr(), t.numel(), storage.nbytes() // itemsize, t.is_floating_point(), itemsize)


def _tensors(value: Any) -> list[Tensor]:
    return [t for t in tree_flatten(value)[0] if isinstance(t, Tensor)]


class _Recorder(TorchDispatchMode):
    def __init__(self) -> None:
        super().__init__()
        self.scope: list[str] = []
        self.events: list[OpEvent] = []
        self.keep: list[Tensor] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # noqa: ANN001
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        name, cost = counting.count(func, args, kwargs, out)
        ins = [t for t in _tensors((args, kwargs)) if t.numel() > 0]
        outs = [t for t in _tensors(out) if t.numel() > 0]
        self.keep += outs
        schema = getattr(func, "_schema", None)
        inplace = bool(schema is not None and schema.arguments and schema.arguments[0].alias_info is not None
                       and schema.arguments[0].alias_info.is_write)  # fmt: skip
        self.events.append(
            OpEvent(name, tuple(self.scope), cost, [_ref(t) for t in ins], [_ref(t) for t in outs], inplace)
        )
        return out


def record(model: nn.Module, x: Tensor) -> Trace:
    """Run ``model(x)`` once under ``torch.no_grad`` and record every aten op.

    The model is left as it was: the hooks are removed even if the forward raises.
    """
    rec = _Recorder()
    names = {m: n for n, m in model.named_modules(remove_duplicate=False)}
    types = {n: type(m).__name__ for m, n in names.items()}
    calls: dict[str, int] = {}

    def pre(module: nn.Module, _args: Any) -> None:
        name = names.get(module, "?")
        rec.scope.append(name)
        calls[name] = calls.get(name, 0) + 1

    def post(module: nn.Module, _args: Any, _out: Any) -> None:
        rec.scope.pop()

    handles = []
    try:
        for module in names:
            handles.append(module.register_forward_pre_hook(pre))
            handles.append(module.register_forward_hook(post, always_call=True))
        with torch.no_grad(), rec:
            out = model(x)
    finally:
        for h in handles:
            h.remove()
    return Trace(rec.events, [_ref(x)], [_ref(t) for t in _tensors(out) if t.numel() > 0], types, calls)
