"""One counting handle per aten op (after fvcore's ``jit_handles.py``), and the rules they follow.

The rules (docs/conventions.md), applied to the aten ops torch's dispatcher runs, so functional calls
(``F.interpolate``, ``x @ w``, ``torch.cat``) count like modules and a module called twice counts twice:

* **MAC** = one multiply-accumulate of a convolution (any groups, dilation, stride, transposed), a linear layer,
  ``mm``/``bmm``/``matmul``/``einsum``/``addmm``/``baddbmm``, the two products of scaled dot-product attention and
  the matrix products inside fused attention and recurrent ops.
  Convolution: ``out.numel() * cin/groups * prod(kernel)``; transposed convolution: every *input* element meets
  ``cout/groups * prod(kernel)`` weights, so ``in.numel() * cout/groups * prod(kernel)``; matmul ``(m,k)@(k,n)``:
  ``m * k * n`` per batch.
* **FLOPs** = 2 x MACs + **one per output element** of every other arithmetic op: BatchNorm, LayerNorm, GroupNorm,
  activations, add/mul/div..., comparisons, pooling, interpolation, softmax and reductions such as ``mean`` (one
  per *output* element, whatever the window or reduced size, so a FLOP count stays a function of output shapes).
  The bias add of a convolution or linear layer (``addmm``, ``baddbmm``) is one of these: one per output element.
  A BatchNorm folded into the convolution before it becomes that convolution's bias add, which is also one per
  output element, so folding does not change the count.
* **Fused ops** (attention kernels, the encoder-layer kernel, recurrent layers and cells) count what they compute,
  written out as the separate ops above: :mod:`effbench.profiler.counting_attention`,
  :mod:`effbench.profiler.counting_recurrent`.
* **Data movement** (views, reshapes, ``cat``, ``permute``, slicing, splits, copies, padding, tensor factories)
  counts 0, and says so with a ``None`` handle.
* An op with **no handle** is counted as 0 but reported by name, and the profile's FLOPs are marked a lower bound.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from torch import Tensor

from effbench.profiler import counting_attention, counting_recurrent
from effbench.profiler.cost import Count, Handle
from effbench.profiler.cost import first_tensor as _first_tensor
from effbench.profiler.cost import numel as _numel

__all__ = ["CATEGORIES", "HANDLES", "Count", "Handle", "category", "count", "elementwise", "op_name"]


def elementwise(args: Sequence[Any], kwargs: dict[str, Any], out: Any) -> Count:
    """One FLOP per element of the (first) output."""
    return Count(0, _numel(out))


def _conv_macs(x: Tensor, weight: Tensor, out: Tensor, transposed: bool) -> int:
    # weight is (cout, cin/groups, *k) for a convolution and (cin, cout/groups, *k) for a transposed one, so
    # weight[0, ...].numel() is the fan-in of one output element, or the fan-out of one input element.
    per_element = math.prod(weight.shape[1:])
    return (x.numel() if transposed else out.numel()) * per_element


def _conv_handle(transposed: bool | None) -> Handle:
    """Factory: ``transposed`` None reads the flag from ``aten.convolution``'s 7th argument."""

    def handle(args: Sequence[Any], kwargs: dict[str, Any], out: Any) -> Count:
        x, weight = args[0], args[1]
        bias = args[2] if len(args) > 2 else kwargs.get("bias")
        is_t = bool(args[6]) if transposed is None else transposed
        out_t = _first_tensor(out)
        macs = _conv_macs(x, weight, out_t, is_t)
        return Count(macs, 2 * macs + (out_t.numel() if bias is not None else 0))

    return handle


def _matmul_handle(bias_arg: int | None, a_arg: int, b_arg: int) -> Handle:
    """Factory for mm-like ops: MACs = output elements x the summed-over size; the bias add one per output element."""

    def handle(args: Sequence[Any], kwargs: dict[str, Any], out: Any) -> Count:
        a = args[a_arg]
        out_t = _first_tensor(out)
        macs = out_t.numel() * a.shape[-1]
        has_bias = bias_arg is not None and args[bias_arg] is not None
        return Count(macs, 2 * macs + (out_t.numel() if has_bias else 0))

    return handle


def _linear(args: Sequence[Any], kwargs: dict[str, Any], out: Any) -> Count:
    bias = args[2] if len(args) > 2 else kwargs.get("bias")
    macs = out.numel() * args[1].shape[-1]
    return Count(macs, 2 * macs + (out.numel() if bias is not None else 0))


def _einsum(args: Sequence[Any], kwargs: dict[str, Any], out: Any) -> Count:
    # Exact for one einsum of two operands: every combination of the distinct indices is one MAC.
    equation, operands = args[0], args[1]
    sizes: dict[str, int] = {}
    for term, t in zip(equation.split("->")[0].split(","), operands):
        for letter, n in zip(term.strip(), t.shape):
            sizes[letter] = n
    macs = math.prod(sizes.values())
    return Count(macs, 2 * macs)


_ACTIVATIONS = (
    "relu relu6 hardtanh clamp clamp_min clamp_max sigmoid tanh hardswish hardsigmoid silu gelu elu selu celu "
    "leaky_relu prelu _prelu_kernel softplus mish log_sigmoid threshold glu"
).split()
_ARITHMETIC = (
    "add sub rsub mul div neg abs exp exp2 expm1 log log2 log10 log1p sqrt rsqrt pow reciprocal square maximum "
    "minimum fmax fmin where lerp addcmul addcdiv floor ceil round trunc frac sign remainder fmod clip sin cos "
    "atan2 erf eq ne lt le gt ge logical_and logical_or logical_not logical_xor bitwise_and bitwise_or bitwise_not"
).split()
_NORMS = (
    "native_batch_norm _native_batch_norm_legit _native_batch_norm_legit_no_training batch_norm native_layer_norm "
    "layer_norm native_group_norm group_norm instance_norm"
).split()
_POOLING = (
    "max_pool1d max_pool2d max_pool3d max_pool2d_with_indices max_pool3d_with_indices avg_pool1d avg_pool2d "
    "avg_pool3d adaptive_avg_pool1d adaptive_avg_pool2d adaptive_avg_pool3d _adaptive_avg_pool2d "
    "_adaptive_avg_pool3d adaptive_max_pool1d adaptive_max_pool2d adaptive_max_pool3d"
).split()
_UPSAMPLE = (
    "upsample_nearest1d upsample_nearest2d upsample_nearest3d _upsample_nearest_exact1d _upsample_nearest_exact2d "
    "_upsample_nearest_exact3d upsample_linear1d upsample_bilinear2d _upsample_bilinear2d_aa upsample_bicubic2d "
    "_upsample_bicubic2d_aa upsample_trilinear3d grid_sampler_2d grid_sampler"
).split()
_SOFTMAX = "softmax _softmax log_softmax _log_softmax".split()
_REDUCTIONS = (
    "mean sum prod amax amin max min argmax argmin var std var_mean std_mean norm linalg_vector_norm logsumexp "
    "cumsum cumprod all any"
).split()
_DATA_MOVEMENT = (
    "view _unsafe_view reshape _reshape_alias permute transpose t expand expand_as clone copy copy_ _to_copy to "
    "contiguous cat concat concatenate stack hstack vstack slice select index index_select gather narrow unsqueeze "
    "squeeze flatten unflatten split split_with_sizes chunk unbind detach alias as_strided empty empty_like "
    "empty_strided zeros zeros_like ones ones_like full full_like fill fill_ zero_ new_zeros new_ones new_empty "
    "new_full lift_fresh lift_fresh_copy arange linspace randn rand randn_like rand_like constant_pad_nd pad "
    "reflection_pad1d reflection_pad2d replication_pad2d repeat roll flip scalar_tensor _local_scalar_dense "
    "masked_fill index_put index_put_ scatter pixel_shuffle pixel_unshuffle channel_shuffle native_channel_shuffle "
    "unfold _unsafe_index dropout native_dropout feature_dropout alpha_dropout set_ resize_ is_same_size "
    "sym_size sym_numel sym_stride view_as split_copy unsafe_split unsafe_split_with_sizes unsafe_chunk "
    "tensor_split hsplit vsplit dsplit split_with_sizes_copy unbind_copy movedim moveaxis swapaxes swapdims "
    "diagonal tril triu slice_scatter select_scatter"
).split()

#: op name (aten overload packet, trailing ``_`` of in-place variants removed) -> handle; None for a deliberate 0.
HANDLES: dict[str, Handle | None] = {
    "convolution": _conv_handle(None),
    "_convolution": _conv_handle(None),
    **{f"conv{d}d": _conv_handle(False) for d in (1, 2, 3)},
    **{f"conv_transpose{d}d": _conv_handle(True) for d in (1, 2, 3)},
    "mm": _matmul_handle(None, 0, 1),
    "bmm": _matmul_handle(None, 0, 1),
    "matmul": _matmul_handle(None, 0, 1),
    "addmm": _matmul_handle(0, 1, 2),
    "baddbmm": _matmul_handle(0, 1, 2),
    "linear": _linear,
    "einsum": _einsum,
    **counting_attention.HANDLES,
    **counting_recurrent.HANDLES,
    **{name: elementwise for name in _ACTIVATIONS + _ARITHMETIC + _NORMS + _POOLING + _UPSAMPLE + _SOFTMAX},
    **{name: elementwise for name in _REDUCTIONS},
    **{name: None for name in _DATA_MOVEMENT},
}

#: Op types for the reconciliation with other counters, in the order tables list them.
CATEGORIES: tuple[str, ...] = (
    "conv", "matmul", "attention", "recurrent", "norm", "activation", "elementwise", "pooling", "upsample", "softmax",
    "reduction", "data movement", "unsupported",
)  # fmt: skip


def op_name(func: Any) -> str:
    """The handle key of an aten op: its overload packet name, without the ``_`` of in-place variants."""
    packet = getattr(func, "overloadpacket", func)  # an OpOverload, or already its OpOverloadPacket
    name = getattr(packet, "__name__", str(packet).rsplit(".", 1)[-1])
    if name.endswith("_") and not name.startswith("_") and name[:-1] in HANDLES:
        return name[:-1]
    return name


def category(name: str) -> str:
    """The op type of a handle key (see :data:`CATEGORIES`)."""
    if name in ("convolution", "_convolution") or name.startswith("conv"):
        return "conv"
    if name in ("mm", "bmm", "matmul", "addmm", "baddbmm", "linear", "einsum"):
        return "matmul"
    if name in counting_attention.HANDLES:
        return "attention"
    if name in counting_recurrent.HANDLES:
        return "recurrent"
    for cat, names in (
        ("norm", _NORMS), ("activation", _ACTIVATIONS), ("elementwise", _ARITHMETIC), ("pooling", _POOLING),
        ("upsample", _UPSAMPLE), ("softmax", _SOFTMAX), ("reduction", _REDUCTIONS),
        ("data movement", _DATA_MOVEMENT),
    ):  # fmt: skip
        if name in names:
            return cat
    return "unsupported"


def count(func: Any, args: Sequence[Any], kwargs: dict[str, Any], out: Any) -> tuple[str, Count | None]:
    """Count one op call. Returns its handle key and Count; Count is None when the op has no handle."""
    name = op_name(func)
    if name not in HANDLES:
        return name, None
    handle = HANDLES[name]
    return name, Count() if handle is None else handle(args, kwargs, out)
