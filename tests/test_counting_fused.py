"""The counting rules for fused attention and recurrent ops, each against figures worked out by hand.

Eval mode, as deployed. Notation: B batch, L query and S key tokens, E embedding, h heads, F feed-forward width;
T steps, I inputs, H hidden units, P projection, G gates (LSTM 4, GRU 3, RNN 1). MAC = one multiply-accumulate of
matmul-like work; FLOPs = 2 x MACs + one per output element of every other arithmetic op.

The backends this CPU cannot run (CUDA's attention and RNN kernels) are checked by calling their rule with the
arguments their schema takes, and each schema position a rule reads is checked against torch's own schema.
"""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode

from effbench.cli import main
from effbench.profiler import counting, counting_attention, profile

# --- the issue's table, from the command line ----------------------------------------------------------------
L, E, HEADS, FF = 10, 32, 4, 64
# MultiheadAttention(32, 4) on 10 tokens: in-projection L*E*3E = 30,720; q k^T h*L*L*(E/h) = 3,200; weights x v
# 3,200; out-projection L*E*E = 10,240.
MHA_MACS = 30_720 + 3_200 + 3_200 + 10_240
# FLOPs: 2 x MACs; bias adds L*3E + L*E = 1,280; scaling and softmax one per score, 2 * h*L*L = 800.
MHA_FLOPS = 2 * MHA_MACS + 1_280 + 800
# TransformerEncoderLayer(32, 4, 64): attention + feed-forward 2*L*E*F = 40,960 MACs; FLOPs add the FFN's bias
# adds L*F + L*E, its ReLU L*F, two residual adds and two LayerNorms 4*L*E.
ENC_MACS = MHA_MACS + 2 * L * E * FF
ENC_FLOPS = MHA_FLOPS + 2 * (2 * L * E * FF) + 2 * L * FF + L * E + 4 * L * E
# LSTM(8, 16), 5 steps: T*G*H*(I + H) = 5*4*16*24; FLOPs add T*(2*G*H bias adds + 13*H cell ops).
LSTM_MACS, LSTM_FLOPS = 5 * 4 * 16 * 24, 2 * 7_680 + 5 * (2 * 64 + 13 * 16)
# GRU(8, 16), 5 steps: T*G*H*(I + H) = 5*3*16*24; FLOPs add T*(2*G*H + 10*H).
GRU_MACS, GRU_FLOPS = 5 * 3 * 16 * 24, 2 * 5_760 + 5 * (2 * 48 + 10 * 16)

ISSUE_TABLE = [
    ("mha_32x4", "1,10,32", MHA_MACS, MHA_FLOPS),
    ("encoder_layer_32x4x64", "1,10,32", ENC_MACS, ENC_FLOPS),
    ("lstm_8x16", "5,1,8", LSTM_MACS, LSTM_FLOPS),
    ("gru_8x16", "5,1,8", GRU_MACS, GRU_FLOPS),
]


def test_issue_figures():
    assert (MHA_MACS, ENC_MACS, LSTM_MACS, GRU_MACS) == (47_360, 88_320, 7_680, 5_760)


@pytest.mark.parametrize(("factory", "shape", "macs", "flops"), ISSUE_TABLE, ids=[r[0] for r in ISSUE_TABLE])
def test_issue_table_from_the_cli(factory, shape, macs, flops, capsys):
    args = ["profile", "--module", f"architectures.blocks:{factory}", "--input-shape", shape, "--json", "--no-latency",
            "--no-peers"]  # fmt: skip
    assert main(args) == 0
    row = json.loads(capsys.readouterr().out)[0]
    assert (row["macs"], row["flops"]) == (macs, flops)
    assert row["flops_lower_bound"] is False and row["unsupported_ops"] == ""


# --- peak activation memory and the per-module breakdown --------------------------------------------------------


def test_attention_peak_counts_the_scores():
    from architectures.blocks import mha_32x4

    prof = profile(mha_32x4(), (1, L, E), latency=False, peers=False)
    assert [r.op for r in prof.by_op] == ["_native_multi_head_attention"]
    # One fused op: its input (L*E = 320) and output (320) are live, and inside it q, k and v (3 * 320), the
    # h*L*L = 400 scores and the attention output before the out-projection (320): 2,320 elements.
    assert prof.peak.bytes_fp32 == 4 * 2_320
    assert prof.peak.bytes_int8 == 2_320
    assert prof.peak.op == "_native_multi_head_attention @ attn"
    assert {r.name: r.macs for r in prof.by_module} == {"": MHA_MACS, "attn": MHA_MACS}


def test_lstm_peak_counts_one_step_of_gates():
    from architectures.blocks import lstm_8x16

    prof = profile(lstm_8x16(), (5, 1, 8), latency=False, peers=False)
    if "mkldnn_rnn_layer" not in {r.op for r in prof.by_op}:
        pytest.skip("this torch build runs the LSTM decomposed, not as oneDNN's fused layer")
    # At the fused layer: input T*I = 40, output T*H = 80, final h and c (16 each, read by the stack that builds
    # the returned states), and one step's gates G*H = 64: 216 elements. The zero initial states are constants.
    assert prof.peak.bytes_fp32 == 4 * 216
    assert prof.peak.op == "mkldnn_rnn_layer @ rnn"
    assert {r.name: r.macs for r in prof.by_module} == {"": LSTM_MACS, "rnn": LSTM_MACS}


# --- scaled dot-product attention in every backend ------------------------------------------------------------


def _schema_names(op_name: str) -> list[str]:
    return [a.name for a in getattr(torch.ops.aten, op_name).default._schema.arguments]


@pytest.mark.parametrize("name", sorted(counting_attention.SDPA_ARGS))
def test_sdpa_backend_rule(name):
    mask_at, causal_at = counting_attention.SDPA_ARGS[name]
    names = _schema_names(name)
    assert names[:3] == ["query", "key", "value"] and names[causal_at] == "is_causal"
    assert mask_at is None or names[mask_at] in ("attn_mask", "attn_bias")
    q, k, v = torch.empty(2, 4, 10, 8), torch.empty(2, 4, 12, 8), torch.empty(2, 4, 12, 6)
    args = [q, k, v] + [None] * (causal_at - 3) + [False]
    handle = counting.HANDLES[name]
    # B*h*L*S = 960 scores; q k^T 960 * 8 and weights x v 960 * 6 MACs; scaling and softmax one per score.
    macs = 960 * (8 + 6)
    assert handle(args, {}, None) == counting.Count(macs, 2 * macs + 2 * 960, scratch=960)
    # A mask, given where the schema takes it or as is_causal, adds one op per score.
    masked = list(args)
    if mask_at is None:
        masked[causal_at] = True
    else:
        masked[mask_at] = torch.empty(10, 12)
    assert handle(masked, {}, None).flops == 2 * macs + 3 * 960
    for keyword in {"attn_mask", "attn_bias"} & set(names):  # or given by name
        assert handle(args, {keyword: torch.empty(10, 12)}, None).flops == 2 * macs + 3 * 960


def test_sdpa_on_this_cpu_with_grouped_query_heads():
    k = torch.randn(1, 2, 12, 8)
    prof = profile(_Fn(lambda q: F.scaled_dot_product_attention(q, k, k, is_causal=True, enable_gqa=True)),
                   (1, 4, 10, 8), latency=False, peers=False)  # fmt: skip
    # 4 query heads share 2 key heads; each query head costs L*S*(E + E) = 10*12*16; causal: 3 ops per score.
    assert (prof.macs, prof.flops) == (4 * 10 * 12 * 16, 2 * 7_680 + 3 * 4 * 10 * 12)
    assert not prof.flops_lower_bound


class _Fn(nn.Module):
    def __init__(self, fn):
        super().__init__()
        self.fn = fn

    def forward(self, x):
        return self.fn(x)


# --- the fused multi-head attention and encoder-layer kernels ----------------------------------------------------


def test_fused_attention_schemas():
    # The positions _native_mha and _encoder_layer read.
    mha = _schema_names("_native_multi_head_attention")
    assert (mha[3], mha[4], mha[6], mha[9], mha[10], mha[11]) == (
        "embed_dim", "num_head", "qkv_bias", "mask", "need_weights", "average_attn_weights")  # fmt: skip
    enc = _schema_names("_transformer_encoder_layer_fwd")
    assert (enc[1], enc[2], enc[4], enc[14], enc[18]) == ("embed_dim", "num_heads", "qkv_bias", "ffn_weight_1", "mask")


class _Ops(TorchDispatchMode):
    """Records each op call, with no module hooks (hooks make the encoder layer leave its fused kernel)."""

    def __init__(self):
        super().__init__()
        self.calls = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        self.calls.append((func, args, kwargs or {}, out))
        return out


def test_encoder_layer_kernel_counts_like_its_parts():
    layer, x = nn.TransformerEncoderLayer(E, HEADS, FF, batch_first=True).eval(), torch.randn(1, L, E)
    ops = _Ops()
    with torch.no_grad(), ops:
        layer(x)
    names = [counting.op_name(func) for func, *_ in ops.calls]
    if names != ["_transformer_encoder_layer_fwd"]:
        pytest.skip(f"this torch build does not take the encoder layer's fast path ({names[:3]}...)")
    _, cost = counting.count(*ops.calls[0])
    # The same figures as the profiler's hooked run through the attention kernel, two linears, adds and norms.
    assert (cost.macs, cost.flops) == (ENC_MACS, ENC_FLOPS)


def test_attention_weights_averaged_over_heads():
    mha, x = nn.MultiheadAttention(E, HEADS, batch_first=True).eval(), torch.randn(2, L, E)
    ops = _Ops()
    with torch.no_grad(), ops:
        mha(x, x, x)  # need_weights=True: the op also returns the head-averaged weights
    assert [counting.op_name(c[0]) for c in ops.calls] == ["_native_multi_head_attention"]
    _, cost = counting.count(*ops.calls[0])
    # Batch 2 doubles everything; the head average is one op per averaged weight, B*L*L = 200.
    assert (cost.macs, cost.flops) == (2 * MHA_MACS, 2 * MHA_FLOPS + 200)


# --- recurrent layers: the composite ops, each backend, the cells ------------------------------------------------


def _rnn_figures(cell, steps_x_batch, inputs, hidden, layers=1, directions=1, proj=0):
    """Per position and layer-direction: G*H*(I + R) + P*H MACs; 2 x MACs + 2*G*H + cell ops*H FLOPs."""
    gates, ops = {"rnn": (1, 2), "lstm": (4, 13), "gru": (3, 10)}[cell]
    out = proj or hidden
    macs = flops = 0
    for layer in range(layers):
        per = gates * hidden * ((inputs if layer == 0 else directions * out) + out) + proj * hidden
        macs += directions * steps_x_batch * per
        flops += directions * steps_x_batch * (2 * per + 2 * gates * hidden + ops * hidden)
    return macs, flops


RNNS = [
    ("lstm", nn.LSTM, {}),
    ("lstm", nn.LSTM, {"num_layers": 2, "bidirectional": True}),
    ("lstm", nn.LSTM, {"num_layers": 3, "proj_size": 4}),
    ("gru", nn.GRU, {"num_layers": 2, "bidirectional": True}),
    ("rnn_tanh", nn.RNN, {"bidirectional": True}),
    ("rnn_relu", nn.RNN, {"nonlinearity": "relu", "num_layers": 2}),
]


@pytest.mark.parametrize(("op", "cls", "kwargs"), RNNS, ids=[f"{r[0]}-{i}" for i, r in enumerate(RNNS)])
def test_composite_recurrent_op_equals_formula_and_cpu_path(op, cls, kwargs):
    torch.manual_seed(0)
    rnn = cls(8, 16, **kwargs).eval()
    x = torch.randn(5, 2, 8)
    layers, directions = kwargs.get("num_layers", 1), 2 if kwargs.get("bidirectional") else 1
    out_size = kwargs.get("proj_size") or 16
    h0 = torch.zeros(layers * directions, 2, out_size)
    hx = [h0, torch.zeros(layers * directions, 2, 16)] if op == "lstm" else h0
    args = (x, hx, rnn._flat_weights, True, layers, 0.0, False, directions == 2, False)
    func = getattr(torch.ops.aten, op).input
    with torch.no_grad():
        out = func(*args)
    _, cost = counting.count(func, args, {}, out)
    cell = "rnn" if op.startswith("rnn") else op
    assert (cost.macs, cost.flops) == _rnn_figures(cell, 5 * 2, 8, 16, layers, directions, kwargs.get("proj_size", 0))
    # The profiler on the module sees what the CPU runs instead (oneDNN's layer, or the decomposition): same count.
    prof = profile(_Fn(lambda t: rnn(t)[0]), (5, 2, 8), latency=False, peers=False, example_input=x)
    assert (prof.macs, prof.flops) == (cost.macs, cost.flops)


def test_packed_sequence_counts_only_real_steps():
    gru = nn.GRU(8, 16).eval()
    # Lengths 5 and 3: 8 real (step, sequence) positions, packed as batch sizes [2, 2, 2, 1, 1].
    data, batch_sizes = torch.randn(8, 8), torch.tensor([2, 2, 2, 1, 1])
    args = (data, batch_sizes, torch.zeros(1, 2, 16), gru._flat_weights, True, 1, 0.0, False, False)
    with torch.no_grad():
        out = torch.ops.aten.gru.data(*args)
    _, cost = counting.count(torch.ops.aten.gru.data, args, {}, out)
    assert (cost.macs, cost.flops) == _rnn_figures("gru", 8, 8, 16)


def test_cudnn_rule_matches_the_composite():
    names = [a.name for a in torch.ops.aten._cudnn_rnn.default._schema.arguments]
    assert (names[1], names[4], names[6], names[9], names[13]) == ("weight", "hx", "mode", "num_layers",
                                                                   "bidirectional")  # fmt: skip
    lstm = nn.LSTM(8, 16, num_layers=2, bidirectional=True)
    x, hx, cx = torch.empty(5, 2, 8), torch.empty(4, 2, 16), torch.empty(4, 2, 16)
    # (input, weight, weight_stride0, weight_buf, hx, cx, mode = 2 (LSTM), hidden_size, proj_size, num_layers,
    #  batch_first, dropout, train, bidirectional, batch_sizes, dropout_state)
    args = (x, lstm._flat_weights, 4, None, hx, cx, 2, 16, 0, 2, False, 0.0, False, True, [], None)
    cost = counting.HANDLES["_cudnn_rnn"](args, {}, None)
    assert (cost.macs, cost.flops) == _rnn_figures("lstm", 10, 8, 16, 2, 2)


def test_mkldnn_schema():
    names = [a.name for a in torch.ops.aten.mkldnn_rnn_layer.default._schema.arguments]
    assert (names[5], names[10], names[12]) == ("hx_", "hidden_size", "has_biases")


@pytest.mark.parametrize("op", ["lstm_cell", "gru_cell", "rnn_tanh_cell", "rnn_relu_cell"])
def test_cells(op):
    cell = {"lstm_cell": nn.LSTMCell, "gru_cell": nn.GRUCell}.get(op, nn.RNNCell)(8, 16)
    x, h = torch.randn(3, 8), torch.zeros(3, 16)
    hx = [h, h] if op == "lstm_cell" else h
    args = (x, hx, cell.weight_ih, cell.weight_hh, cell.bias_ih, cell.bias_hh)
    func = getattr(torch.ops.aten, op).default
    with torch.no_grad():
        out = func(*args)
    _, cost = counting.count(func, args, {}, out)
    assert (cost.macs, cost.flops) == _rnn_figures(op.split("_")[0], 3, 8, 16)


@pytest.mark.parametrize(
    ("op", "gates", "cell_ops"), [("_thnn_fused_lstm_cell", 4, 13), ("_thnn_fused_gru_cell", 3, 10)]
)
def test_fused_cells_complete_two_matmuls(op, gates, cell_ops):
    # CUDA's cell: two bias-free matmuls (counted as mm), then this op: both biases and the cell's elementwise ops.
    batch, hidden = 3, 16
    igates, hgates, state = torch.empty(batch, gates * hidden), torch.empty(batch, gates * hidden), torch.empty(3, 16)
    bias = torch.empty(gates * hidden)
    cost = counting.HANDLES[op]((igates, hgates, state, bias, bias), {}, None)
    assert cost == counting.Count(0, 2 * batch * gates * hidden + cell_ops * batch * hidden)
    assert counting.HANDLES[op]((igates, hgates, state), {}, None).flops == cell_ops * batch * hidden


# --- splits count zero ----------------------------------------------------------------------------------------


def test_splits_are_data_movement():
    def fn(x):
        a, _ = torch.unsafe_split(x, 4, 1)
        b, _ = x.chunk(2, 1)
        c, *_ = torch.tensor_split(x, 3, 1)
        d, _ = x.split_with_sizes([3, 5], 1)
        return torch.cat([a, b, c, d], 1)

    prof = profile(_Fn(fn), (2, 8), latency=False, peers=False)
    assert (prof.macs, prof.flops, prof.unsupported_ops) == (0, 0, [])
