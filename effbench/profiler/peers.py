"""The figures other counters give for the same model, and why each differs from ours (docs/conventions.md gives
the figures for MobileNetV2).

Each peer runs without side effects on the profiled model: thop adds ``total_ops``/``total_params`` buffers and
hooks and leaves submodules in eval mode, so it runs on a deep copy; fvcore's JIT tracer wants tensor outputs, so
it sees the model through a wrapper returning a tuple of tensors; FlopCounterMode removes its own hooks. A peer
that fails gives None and its error, never a failed profile.

Each peer's total is split by op type (:data:`effbench.profiler.counting.CATEGORIES`) so that the reconciliation
can say where the difference sits: which op types a peer counts that we count only as FLOPs (or not at all),
and whether its unit is a MAC or a FLOP.
"""

from __future__ import annotations

import copy
import contextlib
import io
import warnings
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn
from torch.utils._pytree import tree_flatten

from effbench.profiler import counting

#: What each peer counts and in what unit; the reconciliation prints these beside the numbers.
PEER_NOTES: dict[str, str] = {
    "fvcore": "its 'flop' is one fused multiply-add, a MAC (fvcore #69), for conv/linear/matmul/einsum; it adds "
    "BatchNorm at 2 per element (affine), LayerNorm/GroupNorm at 5, upsampling, and adaptive average pooling at 1 "
    "per input element; activations, add, mul, max/avg pooling and softmax count 0 (fvcore #143, #148), and so do "
    "the ops it has no handle for: fused attention (aten::_native_multi_head_attention, the encoder-layer kernel, "
    "sdpa) and recurrent layers (aten::lstm/gru/rnn_tanh/rnn_relu)",
    "thop": "module hooks: MACs of conv/linear, plus BatchNorm/LayerNorm at 4 per element (affine), average "
    "pooling, upsampling and softmax modules; ReLU/ReLU6 and max pooling count 0; functional calls "
    "(F.interpolate, x @ w, +) are invisible to it (thop #36); LSTM/GRU/RNN modules by its own per-step formula, "
    "which adds bias and gate ops to the MACs and ignores proj_size; MultiheadAttention has no hook and counts 0",
    "torch": "torch.utils.flop_counter.FlopCounterMode, shown divided by 2 (its FLOPs are 2 x MACs): counts only "
    "conv/mm/bmm/addmm and CUDA's attention kernels; every other op counts 0, among them the CPU attention "
    "kernel, the fused multi-head attention and encoder-layer kernels and mkldnn_rnn_layer (the CPU's LSTM), "
    "and no bias adds",
}

#: thop's module types -> our op types.
_THOP_TYPES: dict[str, str] = {
    "Conv": "conv", "Linear": "matmul", "Bilinear": "matmul", "BatchNorm": "norm", "LayerNorm": "norm",
    "GroupNorm": "norm", "InstanceNorm": "norm", "ReLU": "activation", "ReLU6": "activation",
    "LeakyReLU": "activation", "PReLU": "activation", "ELU": "activation", "Sigmoid": "activation",
    "Hardswish": "activation", "SiLU": "activation", "GELU": "activation", "Softmax": "softmax",
    "Pool": "pooling", "Upsample": "upsample", "RNN": "recurrent", "LSTM": "recurrent", "GRU": "recurrent",
    "MultiheadAttention": "attention",
}  # fmt: skip

#: fvcore's op names -> our op types.
_FVCORE_TYPES: dict[str, str] = {
    "conv": "conv", "linear": "matmul", "matmul": "matmul", "addmm": "matmul", "bmm": "matmul", "mm": "matmul",
    "einsum": "matmul", "batch_norm": "norm", "group_norm": "norm", "layer_norm": "norm", "instance_norm": "norm",
    "upsample_nearest2d": "upsample", "upsample_bilinear2d": "upsample", "grid_sampler": "upsample",
    "adaptive_avg_pool2d": "pooling",
}  # fmt: skip


@dataclass
class PeerCount:
    """One peer's total in MACs (its own unit converted where it is FLOPs) and its split by op type."""

    name: str
    macs: float | None
    by_type: dict[str, float] = field(default_factory=dict)
    error: str | None = None


class _TupleOutput(nn.Module):
    """Presents a model returning a dict (or nested outputs) as one returning a tuple of tensors."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x: Tensor) -> tuple[Tensor, ...]:
        return tuple(t for t in tree_flatten(self.model(x))[0] if isinstance(t, Tensor))


def _short(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0][:160] if text else ''}"


def fvcore_count(model: nn.Module, x: Tensor) -> PeerCount:
    """fvcore's FlopCountAnalysis total (its 'flops' are MACs) and split by op type."""
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")  # fvcore's import and tracer warn about deprecated torch APIs
            from fvcore.nn import FlopCountAnalysis

            analysis = FlopCountAnalysis(_TupleOutput(model), (x,))
            analysis.unsupported_ops_warnings(False).uncalled_modules_warnings(False).tracer_warnings("none")
            by_op = analysis.by_operator()
        by_type: dict[str, float] = {}
        for op, n in by_op.items():
            cat = _FVCORE_TYPES.get(op, "unsupported")
            by_type[cat] = by_type.get(cat, 0) + n
        return PeerCount("fvcore", float(sum(by_op.values())), by_type)
    except Exception as err:  # a peer failing must not fail the profile
        return PeerCount("fvcore", None, error=_short(err))


def thop_count(model: nn.Module, x: Tensor) -> PeerCount:
    """thop's total MACs on a deep copy of the model, split by module type."""
    try:
        clone = copy.deepcopy(model)
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            import thop

            total, _params, _layers = thop.profile(clone, inputs=(x,), verbose=False, ret_layer_info=True)
        # The layer tree holds (ops, params, children) per module; a module's own ops are its total less its
        # children's.
        by_type: dict[str, float] = {}

        def walk(module: nn.Module, info: dict[str, Any]) -> None:
            for child_name, (ops, _p, sub) in info.items():
                child = module.get_submodule(child_name)
                if sub:
                    walk(child, sub)
                    own = ops - _sum(sub)
                    if own:
                        _add(by_type, _thop_type(child), own)
                else:
                    _add(by_type, _thop_type(child), ops)

        walk(clone, _layers)
        return PeerCount("thop", float(total), by_type)
    except Exception as err:
        return PeerCount("thop", None, error=_short(err))


def _sum(info: dict[str, Any]) -> float:
    return sum(ops for ops, _p, _s in info.values())


def _add(d: dict[str, float], key: str, n: float) -> None:
    if n:
        d[key] = d.get(key, 0) + n


def _thop_type(module: nn.Module) -> str:
    name = type(module).__name__
    for key, cat in _THOP_TYPES.items():
        if key in name:
            return cat
    return "unsupported"


def torch_count(model: nn.Module, x: Tensor) -> PeerCount:
    """torch FlopCounterMode's total FLOPs / 2 (its FLOPs are 2 x MACs), split by op type."""
    try:
        from torch.utils.flop_counter import FlopCounterMode

        counter = FlopCounterMode(display=False)
        with torch.no_grad(), counter:
            model(x)
        by_type: dict[str, float] = {}
        for op, n in counter.get_flop_counts().get("Global", {}).items():
            _add(by_type, counting.category(counting.op_name(op)), n / 2)
        return PeerCount("torch", counter.get_total_flops() / 2, by_type)
    except Exception as err:
        return PeerCount("torch", None, error=_short(err))


def peer_counts(model: nn.Module, x: Tensor) -> dict[str, PeerCount]:
    """fvcore, thop and torch FlopCounterMode figures of ``model(x)``; the model is left unchanged."""
    return {p.name: p for p in (fvcore_count(model, x), thop_count(model, x), torch_count(model, x))}


def reconcile(our_by_type: dict[str, tuple[int, int]], peers: dict[str, PeerCount]) -> list[dict[str, Any]]:
    """One row per op type: our MACs and FLOPs beside each peer's figure, so the differences show where they sit.

    Args:
        our_by_type: op type -> (MACs, FLOPs) of our count.
        peers: The peer counts.

    Returns:
        Rows with keys ``op_type``, ``macs``, ``flops`` and one key per peer, then a ``total`` row.
    """
    types = [c for c in counting.CATEGORIES if c in our_by_type or any(c in p.by_type for p in peers.values())]
    rows = []
    for cat in types:
        macs, flops = our_by_type.get(cat, (0, 0))
        row: dict[str, Any] = {"op_type": cat, "macs": macs, "flops": flops}
        for name, peer in peers.items():
            row[name] = peer.by_type.get(cat, 0) if peer.macs is not None else None
        rows.append(row)
    total: dict[str, Any] = {
        "op_type": "total",
        "macs": sum(v[0] for v in our_by_type.values()),
        "flops": sum(v[1] for v in our_by_type.values()),
    }
    for name, peer in peers.items():
        total[name] = peer.macs
    return rows + [total]


def explain(our_by_type: dict[str, tuple[int, int]], peers: dict[str, PeerCount]) -> dict[str, str]:
    """One sentence per peer: how far its total is from our MACs, which op types make the gap, and why."""
    ours = sum(v[0] for v in our_by_type.values())
    notes = {}
    for name, peer in peers.items():
        if peer.macs is None:
            notes[name] = f"failed ({peer.error})"
            continue
        gaps = []
        for cat in counting.CATEGORIES:
            diff = peer.by_type.get(cat, 0) - our_by_type.get(cat, (0, 0))[0]
            if abs(diff) >= 1:
                gaps.append(f"{cat} {diff:+,.0f}")
        rel = (peer.macs - ours) / ours * 100 if ours else 0.0
        where = "; ".join(gaps) if gaps else "no difference by op type"
        notes[name] = f"{peer.macs:,.0f} ({rel:+.1f}% vs our MACs): {where}. {PEER_NOTES[name]}"
    return notes
