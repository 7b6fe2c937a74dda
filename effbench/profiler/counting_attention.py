"""Counting rules for attention: scaled dot-product attention in each backend, and the fused multi-head attention
and transformer encoder-layer kernels that eval-mode PyTorch runs.

The fused ops do all their work inside one aten call, so their rules count what the op computes, written out as
the separate ops an embedded runtime would run (the same conventions as :mod:`effbench.profiler.counting`):

* **Scaled dot-product attention**, ``q (.., L, E)``, ``k (.., S, E)``, ``v (.., S, Ev)`` over ``BH`` batch x
  heads: MACs = ``BH * L * S * (E + Ev)`` (``q k^T`` and the weights times ``v``); FLOPs = 2 x MACs + one per
  score ``BH * L * S`` for the scaling, one for the softmax, and one for the mask when there is one (an
  ``attn_mask``/``attn_bias`` tensor or ``is_causal``). The causal kernels skip masked blocks, but the count is
  the computation's, not a kernel's shortcut. Dropout is off in eval. Grouped-query attention (fewer key heads)
  costs the same per query head. Scratch: the ``BH * L * S`` scores.
* **Multi-head attention** (``_native_multi_head_attention``, ``nn.MultiheadAttention``'s fast path), ``E``
  embedding, ``h`` heads, ``N`` query and ``M`` key tokens (batch x length): the in-projections
  ``(N + 2M) * E * E``, the attention above with ``E/h`` per head, the out-projection ``N * E * E``. FLOPs add the
  bias adds (one per projected element) and, when the op returns head-averaged weights, one per averaged
  weight. Scratch: the projected q, k, v, the scores and the attention output before the out-projection.
* **Encoder layer** (``_transformer_encoder_layer_fwd``, ``nn.TransformerEncoderLayer``'s fast path, taken when no
  module hooks are attached): the self-attention above, plus the feed-forward ``2 * N * E * F`` MACs; FLOPs add
  two residual adds and two LayerNorms (one per element of ``N x E`` each), the two bias adds and the activation.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from torch import Tensor

from effbench.profiler.cost import Count, Handle, arg


def attention(batch_heads: int, length: int, source: int, qk_dim: int, v_dim: int, masked: bool) -> Count:
    """Scaled dot-product attention of ``batch_heads`` (L x qk_dim) queries against (S x qk_dim) keys."""
    scores = batch_heads * length * source
    macs = scores * (qk_dim + v_dim)
    return Count(macs, 2 * macs + scores * (2 + int(masked)), scratch=scores)


def _sdpa_handle(mask_at: int | None, causal_at: int) -> Handle:
    """Factory for one sdpa backend: where its schema puts the mask (None: keyword-only) and ``is_causal``."""

    def handle(args: Sequence[Any], kwargs: dict[str, Any], out: Any) -> Count:
        q, k, v = args[0], args[1], args[2]
        mask = kwargs.get("attn_bias", arg(args, kwargs, mask_at, "attn_mask"))
        causal = bool(arg(args, kwargs, causal_at, "is_causal", False))
        batch_heads = math.prod(q.shape[:-2])
        return attention(batch_heads, q.shape[-2], k.shape[-2], q.shape[-1], v.shape[-1], mask is not None or causal)

    return handle


#: sdpa and its backends -> (position of the mask in the schema, None when keyword-only or absent; of is_causal).
#: The CPU runs ``_scaled_dot_product_flash_attention_for_cpu``; CUDA the flash, efficient or cuDNN kernels;
#: ``_math`` is the reference decomposition; a test checks each position against torch's schema.
SDPA_ARGS: dict[str, tuple[int | None, int]] = {
    "scaled_dot_product_attention": (3, 5),
    "_scaled_dot_product_attention_math": (3, 5),
    "_scaled_dot_product_attention_math_for_mps": (3, 5),
    "_scaled_dot_product_flash_attention_for_cpu": (None, 4),
    "_scaled_dot_product_flash_attention": (None, 4),
    "_scaled_dot_product_efficient_attention": (3, 6),
    "_scaled_dot_product_cudnn_attention": (3, 6),
    "_scaled_dot_product_fused_attention_overrideable": (3, 5),
}


def multi_head(
    query: Tensor, key: Tensor, embed: int, heads: int, *, biases: bool, masked: bool, averaged_weights: bool
) -> Count:
    """Multi-head attention with packed q/k/v in-projections and an out-projection (rules in the module doc)."""
    n, m = query.numel() // embed, key.numel() // embed  # query and key tokens, batch included
    batch = query.shape[0] if query.dim() == 3 else 1
    length, source = query.shape[-2], key.shape[-2]
    projected = (n + 2 * m) * embed  # q, k and v after the in-projection
    proj_macs = projected * embed + n * embed * embed
    attn = attention(batch * heads, length, source, embed // heads, embed // heads, masked)
    flops = 2 * proj_macs + attn.flops
    if biases:
        flops += projected + n * embed
    if averaged_weights:
        flops += batch * length * source  # the mean over heads: one per output element
    return Count(proj_macs + attn.macs, flops, scratch=projected + attn.scratch + n * embed)


def _native_mha(args: Sequence[Any], kwargs: dict[str, Any], out: Any) -> Count:
    # (query, key, value, embed_dim, num_head, qkv_weight, qkv_bias, proj_weight, proj_bias, mask, need_weights,
    #  average_attn_weights, mask_type)
    query, key, embed, heads = args[0], args[1], int(args[3]), int(args[4])
    need = bool(arg(args, kwargs, 10, "need_weights", True))
    average = bool(arg(args, kwargs, 11, "average_attn_weights", True))
    return multi_head(
        query, key, embed, heads, biases=args[6] is not None, masked=arg(args, kwargs, 9, "mask") is not None,
        averaged_weights=need and average,
    )  # fmt: skip


def _encoder_layer(args: Sequence[Any], kwargs: dict[str, Any], out: Any) -> Count:
    # (src, embed_dim, num_heads, qkv_weight, qkv_bias, proj_weight, proj_bias, use_gelu, norm_first, eps,
    #  norm_weight_1, norm_bias_1, norm_weight_2, norm_bias_2, ffn_weight_1, ffn_bias_1, ffn_weight_2, ffn_bias_2,
    #  mask, mask_type)
    src, embed, heads, ffn_weight_1 = args[0], int(args[1]), int(args[2]), args[14]
    attn = multi_head(
        src, src, embed, heads, biases=args[4] is not None, masked=arg(args, kwargs, 18, "mask") is not None,
        averaged_weights=False,
    )  # fmt: skip
    tokens, ffn = src.numel() // embed, ffn_weight_1.shape[0]
    ffn_macs = 2 * tokens * embed * ffn
    # two residual adds and two LayerNorms over tokens x embed; bias + activation over the hidden layer; bias out.
    elementwise = 4 * tokens * embed + 2 * tokens * ffn + tokens * embed
    scratch = max(attn.scratch + tokens * embed, tokens * embed + tokens * ffn)
    return Count(attn.macs + ffn_macs, attn.flops + 2 * ffn_macs + elementwise, scratch=scratch)


#: op name -> handle, merged into :data:`effbench.profiler.counting.HANDLES`.
HANDLES: dict[str, Handle] = {
    **{name: _sdpa_handle(*where) for name, where in SDPA_ARGS.items()},
    "_native_multi_head_attention": _native_mha,
    "_transformer_encoder_layer_fwd": _encoder_layer,
}
