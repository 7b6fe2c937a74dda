"""What one op call costs (:class:`Count`), the signature of a counting handle, and the helpers handles share.

Kept apart from :mod:`effbench.profiler.counting` so that the rule modules for fused ops
(:mod:`~effbench.profiler.counting_attention`, :mod:`~effbench.profiler.counting_recurrent`) and the generic
table can all import it without importing each other.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from torch import Tensor


@dataclass(frozen=True)
class Count:
    """What one op call costs.

    Attributes:
        macs: Multiply-accumulates.
        flops: FLOPs, 2 x MACs included.
        scratch: Elements a fused op holds at once besides its inputs and outputs (attention scores, one step's
            gates), which an embedded runtime running the op as separate kernels would keep in live buffers;
            the peak-memory model adds them while the op runs.
    """

    macs: int = 0
    flops: int = 0
    scratch: int = 0


#: A handle gets the op's positional args, keyword args and output, and returns its Count.
Handle = Callable[[Sequence[Any], dict[str, Any], Any], Count]


def first_tensor(value: Any) -> Tensor | None:
    """The first tensor in a value, a list or a tuple (depth first), else None."""
    if isinstance(value, Tensor):
        return value
    if isinstance(value, (list, tuple)):
        for v in value:
            t = first_tensor(v)
            if t is not None:
                return t
    return None


def numel(value: Any) -> int:
    """Elements of the first tensor in ``value`` (0 when there is none)."""
    t = first_tensor(value)
    return 0 if t is None else t.numel()


def arg(args: Sequence[Any], kwargs: dict[str, Any], index: int | None, name: str, default: Any = None) -> Any:
    """An op argument given by keyword or at ``index`` (None: keyword-only), else ``default``."""
    if name in kwargs:
        return kwargs[name]
    if index is not None and index < len(args):
        return args[index]
    return default
