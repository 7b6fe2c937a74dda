"""Small sequence blocks as zero-argument factories, to profile one block on its own with ``--module``::

    python bench.py profile --module architectures.blocks:mha_32x4 --input-shape 1,10,32 --by-op
    python bench.py profile --module architectures.blocks:lstm_8x16 --input-shape 5,1,8 --by-op

The profiler calls a model with one tensor; :class:`SelfAttention` and :class:`SequenceOutput` adapt attention
(query = key = value) and recurrent layers (which return a tuple) to that. The attention blocks are batch-first,
so that eval-mode PyTorch runs its fused fast-path kernels (``_native_multi_head_attention``,
``_transformer_encoder_layer_fwd``), the ones an exported model runs. Nothing here is registered: these are
building blocks, not models.
"""

from __future__ import annotations

from torch import Tensor, nn


class SelfAttention(nn.Module):
    """``attn(x, x, x)`` without the attention weights, as a transformer block calls it."""

    def __init__(self, attn: nn.MultiheadAttention):
        super().__init__()
        self.attn = attn

    def forward(self, x: Tensor) -> Tensor:
        return self.attn(x, x, x, need_weights=False)[0]


class SequenceOutput(nn.Module):
    """A recurrent layer's output sequence (its final states dropped), from a zero initial state."""

    def __init__(self, rnn: nn.RNNBase):
        super().__init__()
        self.rnn = rnn

    def forward(self, x: Tensor) -> Tensor:
        return self.rnn(x)[0]


def mha_32x4() -> SelfAttention:
    """``nn.MultiheadAttention(32, 4)`` self-attention, batch first: input (batch, tokens, 32)."""
    return SelfAttention(nn.MultiheadAttention(32, 4, batch_first=True))


def encoder_layer_32x4x64() -> nn.TransformerEncoderLayer:
    """``nn.TransformerEncoderLayer(32, 4, 64)``, batch first: input (batch, tokens, 32)."""
    return nn.TransformerEncoderLayer(32, 4, 64, batch_first=True)


def lstm_8x16() -> SequenceOutput:
    """``nn.LSTM(8, 16)``: input (steps, batch, 8)."""
    return SequenceOutput(nn.LSTM(8, 16))


def gru_8x16() -> SequenceOutput:
    """``nn.GRU(8, 16)``: input (steps, batch, 8)."""
    return SequenceOutput(nn.GRU(8, 16))
