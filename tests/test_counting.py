"""One test per counting rule, each against a formula worked out by hand (docs/conventions.md: MAC and FLOP rules)."""

import warnings

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from effbench.profiler import UnsupportedOpWarning, counting, profile


class Fn(nn.Module):
    """Wraps a function of the input, so functional calls can be profiled like a model."""

    def __init__(self, fn, *params: nn.Module):
        super().__init__()
        self.fn = fn
        self.mods = nn.ModuleList(params)

    def forward(self, x):
        return self.fn(x, *self.mods)


def count(model: nn.Module, shape):
    with warnings.catch_warnings():
        warnings.simplefilter("error", UnsupportedOpWarning)  # every op in these tests has a rule
        return profile(model, shape, latency=False, peers=False)


def test_conv_grouped_dilated_strided_with_bias():
    conv = nn.Conv2d(4, 8, 3, stride=2, padding=1, dilation=2, groups=2, bias=True)
    p = count(conv, (1, 4, 16, 16))
    # Hout = floor((16 + 2*1 - 2*(3-1) - 1) / 2) + 1 = 7; each output element: cin/groups * k*k = 2 * 9 MACs.
    macs = 8 * 7 * 7 * (4 // 2) * 3 * 3
    assert p.macs == macs == 7056
    assert p.flops == 2 * macs + 8 * 7 * 7  # bias add: one per output element


def test_depthwise_conv():
    p = count(nn.Conv2d(8, 8, 3, padding=1, groups=8, bias=False), (1, 8, 10, 10))
    assert p.macs == 8 * 10 * 10 * 1 * 9
    assert p.flops == 2 * p.macs


def test_transposed_conv_counts_per_input_element():
    conv = nn.ConvTranspose2d(4, 6, 3, stride=2, padding=1, output_padding=1, groups=2, bias=False)
    p = count(conv, (1, 4, 5, 5))
    # Every input element (4 * 5 * 5) meets cout/groups * k*k = 3 * 9 weights.
    assert p.macs == 4 * 5 * 5 * (6 // 2) * 9 == 2700
    assert p.flops == 2 * 2700


def test_conv1d():
    p = count(nn.Conv1d(3, 5, 4, bias=False), (2, 3, 20))
    assert p.macs == 2 * 5 * 17 * 3 * 4


def test_linear_with_bias():
    p = count(nn.Linear(10, 5), (3, 10))
    assert p.macs == 3 * 10 * 5
    assert p.flops == 2 * 150 + 3 * 5


@pytest.mark.parametrize(
    "fn",
    [
        lambda x: x @ torch.ones(4, 5),
        lambda x: torch.bmm(x, torch.ones(2, 4, 5)),
        lambda x: torch.einsum("bij,bjk->bik", x, torch.ones(2, 4, 5)),
        lambda x: torch.matmul(x, torch.ones(2, 4, 5)),
    ],
    ids=["at", "bmm", "einsum", "matmul"],
)
def test_matmul_functional(fn):
    p = count(Fn(fn), (2, 3, 4))
    assert p.macs == 2 * 3 * 4 * 5  # batch * m * k * n
    assert p.flops == 2 * p.macs


def test_interpolate_functional_counts_one_per_output_element():
    p = count(Fn(lambda x: F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)), (1, 2, 4, 4))
    assert p.macs == 0
    assert p.flops == 2 * 8 * 8


@pytest.mark.parametrize(
    ("pool", "out_elements"),
    [(nn.MaxPool2d(2), 3 * 4 * 4), (nn.AvgPool2d(3, stride=1), 3 * 6 * 6), (nn.AdaptiveAvgPool2d(1), 3)],
    ids=["max", "avg", "adaptive"],
)
def test_pooling_one_per_output_element(pool, out_elements):
    p = count(pool, (1, 3, 8, 8))
    assert (p.macs, p.flops) == (0, out_elements)


def test_activation_batchnorm_add_softmax_mean():
    model = nn.Sequential(nn.BatchNorm2d(4), nn.ReLU(inplace=True), nn.Hardswish())
    assert count(model, (1, 4, 5, 5)).flops == 3 * 100
    assert count(Fn(lambda x: x + x * 2), (1, 4, 5, 5)).flops == 2 * 100
    assert count(Fn(lambda x: x.softmax(-1)), (2, 7)).flops == 14
    assert count(Fn(lambda x: x.mean((2, 3))), (1, 4, 5, 5)).flops == 4  # one per output element


def test_data_movement_counts_zero_without_warning():
    p = count(Fn(lambda x: torch.cat([x, x], 1).permute(0, 2, 3, 1).reshape(1, -1)[:, :10].contiguous()), (1, 2, 3, 3))
    assert (p.macs, p.flops) == (0, 0)
    assert not p.flops_lower_bound


def test_module_called_twice_counts_twice():
    lin = nn.Linear(4, 4, bias=False)
    p = count(Fn(lambda x, m: m(m(x)), lin), (1, 4))
    assert p.macs == 2 * 4 * 4
    row = next(r for r in p.by_module if r.name == "mods.0")
    assert (row.calls, row.macs) == (2, 32)


def test_attention():
    q = torch.ones(1, 2, 4, 8)
    p = count(Fn(lambda x: F.scaled_dot_product_attention(x, q, q)), (1, 2, 4, 8))
    # q k^T: 2 heads * 4 * 4 * 8; attn v: the same.
    assert p.macs == 2 * 4 * 4 * 8 * 2


def test_unsupported_op_warns_and_marks_lower_bound():
    model = Fn(lambda x: torch.lgamma(x) + 1)
    with pytest.warns(UnsupportedOpWarning, match="lgamma"):
        p = profile(model, (1, 10), latency=False, peers=False)
    assert p.flops_lower_bound
    assert p.unsupported_ops == ["lgamma"]
    assert p.flops == 10  # the add is still counted
    assert p.as_dict()["flops_lower_bound"] is True
    assert next(r for r in p.by_op if r.op == "lgamma").supported is False


def test_handle_keys_and_categories():
    assert counting.op_name(torch.ops.aten.relu_.default) == "relu"
    assert counting.op_name(torch.ops.aten.add_.Tensor) == "add"
    assert counting.HANDLES["view"] is None
    assert counting.category("convolution") == "conv"
    assert counting.category("native_batch_norm") == "norm"
    assert counting.category("not_an_op") == "unsupported"
