"""No op left without a counting rule: every registered model, and the small modules tiny networks are built from.

Parametrized over the registry, so a model added later is covered without anyone adding it here: its deployed
graph must run no op without a rule, and its profile must give the parameters and MACs registered beside its
builder (each derived by hand: tests/test_tinyml.py, tests/test_profile.py, the builders' docstrings).

Then a list of modules, each with MACs and FLOPs worked out by hand (eval mode; B batch, L tokens, E embedding,
h heads, F feed-forward width, T steps, I inputs, H hidden units, G gates). Rules: MAC = one multiply-accumulate
of conv/linear/matmul work; FLOPs = 2 x MACs + one per output element of every other arithmetic op.
"""

from __future__ import annotations

import math
import warnings

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from architectures.blocks import SelfAttention, SequenceOutput
from effbench.profiler import UnsupportedOpWarning, counting, profile
from effbench.registry import list_models, model_info
from profile_helpers import deployed_profile


@pytest.mark.parametrize("name", list_models())
def test_registered_model_fully_counted(name: str):
    prof = deployed_profile(name)
    info = model_info(name)
    assert prof.unsupported_ops == [], f"{name}: ops without a counting rule"
    assert (prof.params, prof.macs) == (info.params, info.macs)


def test_every_handle_has_an_op_type():
    # A rule added later must say what kind of op it counts, or the reconciliation with the peers cannot place it.
    assert [n for n in counting.HANDLES if counting.category(n) == "unsupported"] == []


class Decoder(nn.Module):
    """A decoder layer attending to its own input as the memory (the profiler passes one tensor)."""

    def __init__(self, layer: nn.TransformerDecoderLayer):
        super().__init__()
        self.layer = layer

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layer(x, x)


class Interpolate(nn.Module):
    def __init__(self, **kwargs):
        super().__init__()
        self.kwargs = kwargs

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.interpolate(x, **self.kwargs)


# --- hand figures -----------------------------------------------------------------------------------------------
L, E, HEADS, FF = 10, 32, 4, 64
# Self-attention: in-projection L*E*3E, q k^T and weights x v h*L*L*(E/h) each, out-projection L*E*E.
MHA_MACS = L * E * 3 * E + 2 * HEADS * L * L * (E // HEADS) + L * E * E  # 47,360
# + bias adds of the projections (L*3E + L*E) + scaling and softmax, one per score each (2 * h*L*L).
MHA_FLOPS = 2 * MHA_MACS + L * 4 * E + 2 * HEADS * L * L  # 96,800
# Feed-forward: two linears L*E*F; bias adds L*F + L*E, activation L*F.
FFN_MACS, FFN_FLOPS = 2 * L * E * FF, 2 * (2 * L * E * FF) + 2 * L * FF + L * E
# Residual adds and LayerNorms: one per element of L x E each.
NORM_ADD = L * E


def rnn_figures(cell: str, steps: int, batch: int, inputs: int, hidden: int, layers: int = 1, directions: int = 1,
                proj: int = 0, bias: bool = True) -> tuple[int, int]:  # fmt: skip
    """MACs and FLOPs of a recurrent module, per step and batch element of every layer and direction:
    G*H*(I + R) + P*H MACs (R = P or H); FLOPs 2 x MACs + 2*G*H bias adds + the cell's elementwise ops per hidden
    unit (RNN: sum, activation = 2; LSTM: 4 sums, 3 sigmoids, 2 tanh, f*c + i*g = 3, o*tanh(c) = 13;
    GRU: r and z sums and sigmoids = 4, r*(W_hn h + b_hn), add, tanh = 3, n + z*(h - n) = 3, so 10)."""
    gates = {"rnn": 1, "lstm": 4, "gru": 3}[cell]
    elementwise = {"rnn": 2, "lstm": 13, "gru": 10}[cell]
    out = proj or hidden
    macs = flops = 0
    for layer in range(layers):
        layer_in = inputs if layer == 0 else directions * out
        per_step = gates * hidden * (layer_in + out) + proj * hidden
        macs += directions * steps * batch * per_step
        flops += directions * steps * batch * (2 * per_step + 2 * gates * hidden * bias + elementwise * hidden)
    return macs, flops


def conv_figures(out_elements: int, fan_in: int, bias_elements: int = 0) -> tuple[int, int]:
    return out_elements * fan_in, 2 * out_elements * fan_in + bias_elements


#: (id, module factory, input shape, MACs, FLOPs)
MODULES = [
    ("mha_fast_path", lambda: SelfAttention(nn.MultiheadAttention(E, HEADS, batch_first=True)), (1, L, E),
     MHA_MACS, MHA_FLOPS),
    # Sequence-first: not the fused kernel but linear + scaled_dot_product_attention + linear, the same figures.
    ("mha_decomposed", lambda: SelfAttention(nn.MultiheadAttention(E, HEADS)), (L, 1, E), MHA_MACS, MHA_FLOPS),
    ("encoder_layer", lambda: nn.TransformerEncoderLayer(E, HEADS, FF, batch_first=True), (1, L, E),
     MHA_MACS + FFN_MACS, MHA_FLOPS + FFN_FLOPS + 4 * NORM_ADD),
    ("encoder_layer_norm_first_gelu", lambda: nn.TransformerEncoderLayer(E, HEADS, FF, activation="gelu",
                                                                         norm_first=True), (L, 1, E),
     MHA_MACS + FFN_MACS, MHA_FLOPS + FFN_FLOPS + 4 * NORM_ADD),
    # Self-attention, then cross-attention to the memory (the same projections and products), then the FFN;
    # three residual adds and three LayerNorms.
    ("decoder_layer", lambda: Decoder(nn.TransformerDecoderLayer(E, HEADS, FF, batch_first=True)), (1, L, E),
     2 * MHA_MACS + FFN_MACS, 2 * MHA_FLOPS + FFN_FLOPS + 6 * NORM_ADD),
    ("lstm", lambda: SequenceOutput(nn.LSTM(8, 16)), (5, 1, 8), *rnn_figures("lstm", 5, 1, 8, 16)),
    ("lstm_no_bias_batch_first", lambda: SequenceOutput(nn.LSTM(8, 16, bias=False, batch_first=True)), (3, 5, 8),
     *rnn_figures("lstm", 5, 3, 8, 16, bias=False)),
    ("lstm_bidir_2_layers", lambda: SequenceOutput(nn.LSTM(8, 16, num_layers=2, bidirectional=True)), (5, 2, 8),
     *rnn_figures("lstm", 5, 2, 8, 16, layers=2, directions=2)),
    ("lstm_proj_bidir_2_layers", lambda: SequenceOutput(nn.LSTM(8, 16, 2, bidirectional=True, proj_size=4)),
     (5, 2, 8), *rnn_figures("lstm", 5, 2, 8, 16, layers=2, directions=2, proj=4)),
    ("gru", lambda: SequenceOutput(nn.GRU(8, 16)), (5, 1, 8), *rnn_figures("gru", 5, 1, 8, 16)),
    ("gru_bidir_2_layers", lambda: SequenceOutput(nn.GRU(8, 16, num_layers=2, bidirectional=True)), (5, 2, 8),
     *rnn_figures("gru", 5, 2, 8, 16, layers=2, directions=2)),
    ("rnn_tanh", lambda: SequenceOutput(nn.RNN(8, 16)), (5, 1, 8), *rnn_figures("rnn", 5, 1, 8, 16)),
    ("rnn_relu_bidir", lambda: SequenceOutput(nn.RNN(8, 16, nonlinearity="relu", bidirectional=True)), (5, 1, 8),
     *rnn_figures("rnn", 5, 1, 8, 16, directions=2)),
    # Convolutions: out elements x fan-in (cin/groups x kernel); transposed: in elements x cout/groups x kernel.
    ("depthwise_conv", lambda: nn.Conv2d(8, 8, 3, padding=1, groups=8), (1, 8, 10, 10),
     *conv_figures(8 * 10 * 10, 9, 8 * 10 * 10)),
    ("grouped_dilated_conv", lambda: nn.Conv2d(8, 12, 3, padding=2, dilation=2, groups=4, bias=False),
     (1, 8, 10, 10), *conv_figures(12 * 10 * 10, 2 * 9)),
    ("transposed_conv", lambda: nn.ConvTranspose2d(4, 6, 4, stride=2, padding=1, bias=False), (1, 4, 5, 5),
     *conv_figures(4 * 5 * 5, 6 * 16)),
    ("grouped_transposed_conv1d", lambda: nn.ConvTranspose1d(4, 6, 3, stride=2, groups=2), (1, 4, 7),
     4 * 7 * 3 * 3, 2 * 4 * 7 * 3 * 3 + 6 * 15),  # out length (7 - 1) * 2 + 3 = 15; bias one per output
    # Upsampling and pooling: one FLOP per output element, no MACs.
    ("upsample_nearest", lambda: nn.Upsample(scale_factor=2), (1, 3, 4, 4), 0, 3 * 8 * 8),
    ("upsample_bilinear", lambda: nn.Upsample(scale_factor=2, mode="bilinear"), (1, 3, 4, 4), 0, 3 * 8 * 8),
    ("interpolate_bicubic", lambda: Interpolate(size=(6, 10), mode="bicubic"), (1, 3, 4, 4), 0, 3 * 6 * 10),
    ("max_pool", lambda: nn.MaxPool2d(3, 2, 1), (1, 4, 9, 9), 0, 4 * 5 * 5),
    ("avg_pool1d", lambda: nn.AvgPool1d(4), (1, 4, 16), 0, 4 * 4),
    ("adaptive_avg_pool", lambda: nn.AdaptiveAvgPool2d((2, 3)), (1, 4, 8, 9), 0, 4 * 2 * 3),
    ("adaptive_max_pool", lambda: nn.AdaptiveMaxPool2d(1), (1, 4, 8, 9), 0, 4),
]  # fmt: skip


@pytest.mark.parametrize(("factory", "shape", "macs", "flops"), [m[1:] for m in MODULES], ids=[m[0] for m in MODULES])
def test_module_fully_counted(factory, shape, macs, flops):
    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # torch's notes on RNN backends and nested tensors
        warnings.simplefilter("error", UnsupportedOpWarning)
        prof = profile(factory(), shape, latency=False, peers=False)
    assert prof.unsupported_ops == []
    assert (prof.macs, prof.flops) == (macs, flops)
    assert prof.peak.bytes_fp32 >= 4 * math.prod(shape)  # the input is live at least at the first op


def test_hand_figures_of_the_issue():
    # The figures the rules must reproduce, spelled out once more: MHA(32, 4) on 10 tokens, the encoder layer
    # (32, 4, 64), LSTM(8, 16) and GRU(8, 16) over 5 steps.
    assert MHA_MACS == 30_720 + 3_200 + 3_200 + 10_240 == 47_360
    assert MHA_MACS + FFN_MACS == 47_360 + 40_960 == 88_320
    assert rnn_figures("lstm", 5, 1, 8, 16)[0] == 5 * 4 * 16 * (8 + 16) == 7_680
    assert rnn_figures("gru", 5, 1, 8, 16)[0] == 5 * 3 * 16 * (8 + 16) == 5_760
