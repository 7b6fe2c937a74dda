"""profile(): published reference figures, peak activation memory by hand, peers, latency, no side effects."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from effbench import create_model, profile
from effbench.profiler import Stats, TimingConfig
from effbench.registry import model_info

FAST = TimingConfig(warmup_s=0.0, warmup_runs=1, budget_s=0.0, min_runs=3, min_runs_slow=3, max_runs=3)


@pytest.fixture(scope="module")
def mobilenet_v2():
    # One profile with the peers, shared by the tests below (the most expensive call in this file).
    return profile(create_model("mobilenet_v2_100_imagenet"), (1, 3, 224, 224), latency=False)


@pytest.mark.slow
def test_mobilenet_v2_published_figures(mobilenet_v2):
    p = mobilenet_v2
    assert p.params == 3_504_872  # torchvision's published figure
    assert p.macs == pytest.approx(300.8e6, rel=0.005)
    assert p.macs == model_info("mobilenet_v2_100_imagenet").macs
    assert not p.flops_lower_bound


@pytest.mark.slow
def test_mobilenet_v2_peak_sits_in_second_block(mobilenet_v2):
    # MCUNet: MobileNetV2's peak is in its second block. features.2 expands 16 -> 96 channels at 112 x 112, then
    # its stride-2 depthwise conv reads that (96*112*112) while writing 96*56*56; the block input is dead by then.
    elements = 96 * 112 * 112 + 96 * 56 * 56
    assert mobilenet_v2.peak.bytes_fp32 == 4 * elements == 6_021_120
    assert mobilenet_v2.peak.bytes_int8 == elements
    assert mobilenet_v2.peak.op == "convolution @ backbone.features.2.conv.1.0"


@pytest.mark.slow
def test_mobilenet_v2_peers_and_reconciliation(mobilenet_v2):
    row = mobilenet_v2.as_dict()
    # Each counter on torchvision's MobileNetV2 at 224 x 224: fvcore 314.2 M, thop 327.5 M, torch FlopCounterMode
    # / 2 = 300.8 M (fvcore 0.1.5, thop 0.1.1, torch 2.13).
    assert row["macs_fvcore"] == pytest.approx(314.2e6, rel=0.001)
    assert row["macs_thop"] == pytest.approx(327.5e6, rel=0.001)
    assert row["macs_torch"] == mobilenet_v2.macs
    by_type = {r["op_type"]: r for r in mobilenet_v2.reconciliation()}
    # All the gap is BatchNorm: 6,678,112 BN output elements (one FLOP each for us), fvcore 2 each, thop 4 each.
    norm = by_type["norm"]
    assert (norm["flops"], norm["fvcore"], norm["thop"]) == (6_678_112, 2 * 6_678_112, 4 * 6_678_112)
    assert by_type["conv"]["fvcore"] == by_type["conv"]["macs"] == by_type["conv"]["thop"]
    notes = mobilenet_v2.peer_notes()
    assert "norm +13,356,224" in notes["fvcore"] and "MAC" in notes["fvcore"]
    assert "no difference by op type" in notes["torch"]


def resnet18_macs() -> int:
    """Hand formula: sum over convolutions of Hout * Wout * cout * cin * k * k, plus the classifier."""
    macs = 112 * 112 * 64 * 3 * 7 * 7  # stem
    macs += 4 * 56 * 56 * 64 * 64 * 9  # layer1: four 3x3 convs
    for hw, c in ((28, 128), (14, 256), (7, 512)):
        macs += hw * hw * c * (c // 2) * 9  # first 3x3, stride 2
        macs += 3 * hw * hw * c * c * 9  # the other three 3x3
        macs += hw * hw * c * (c // 2)  # 1x1 projection shortcut
    return macs + 512 * 1000


def test_resnet18_published_figures():
    p = profile(create_model("resnet18_imagenet"), (1, 3, 224, 224), latency=False, peers=False)
    assert p.params == 11_689_512
    assert p.macs == resnet18_macs() == 1_814_073_344 == model_info("resnet18_imagenet").macs
    assert p.macs == pytest.approx(1.814e9, rel=0.001)


class Plain(nn.Module):
    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv2d(1, 4, 3, padding=1)
        self.bn = nn.BatchNorm2d(4)
        self.c2 = nn.Conv2d(4, 8, 3, stride=2, padding=1)
        self.fc = nn.Linear(8 * 4 * 4, 10)

    def forward(self, x):
        return self.fc(F.relu(self.c2(F.relu(self.bn(self.c1(x))))).flatten(1))


def test_peak_activation_plain_chain():
    p = profile(Plain(), (1, 1, 8, 8), latency=False, peers=False)
    # Elements live at each op (BN and ReLU write in place, the input dies after c1):
    #   c1: input 1*8*8 + out 4*8*8 = 64 + 256 = 320;  bn, relu: 256
    #   c2: in 256 + out 8*4*4 = 384;  relu: 128;  fc: 128 + 10 = 138.   Peak: 384 at c2.
    assert p.peak.bytes_fp32 == 384 * 4
    assert p.peak.bytes_int8 == 384
    assert p.peak.op == "convolution @ c2"


class Residual(nn.Module):
    def __init__(self):
        super().__init__()
        self.a = nn.Conv2d(2, 4, 3, padding=1)
        self.b = nn.Conv2d(4, 2, 3, padding=1)

    def forward(self, x):
        return x + self.b(torch.relu(self.a(x)))


def test_peak_activation_keeps_skip_input_live():
    p = profile(Residual(), (1, 2, 8, 8), latency=False, peers=False)
    # The input (2*8*8 = 128) stays live for the add. a: 128 + 4*8*8 = 384; relu in place: 384;
    # b: 128 + 256 + 2*8*8 = 512; add writes over b's output: 256.  Peak: 512 at b.
    assert p.peak.bytes_fp32 == 512 * 4
    assert p.peak.op == "convolution @ b"


class DictNet(nn.Module):
    """Dict output, BatchNorm, a submodule left in eval mode while the root trains."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3, padding=1)
        self.bn = nn.BatchNorm2d(4)
        self.head = nn.Linear(4, 2)

    def forward(self, x):
        f = torch.relu(self.bn(self.conv(x))).mean((2, 3))
        return {"logits": self.head(f), "feat": f}


def test_no_side_effects():
    model = DictNet()
    model.train()
    model.head.eval()
    x = torch.randn(1, 1, 6, 6)
    keys = list(model.state_dict())
    state = {k: v.clone() for k, v in model.state_dict().items()}
    modes = {n: m.training for n, m in model.named_modules()}
    model.eval()
    before = model(x)
    model.train()
    model.head.eval()
    threads = torch.get_num_threads()

    p = profile(model, (1, 1, 6, 6), timing=FAST)

    assert list(model.state_dict()) == keys  # thop's total_ops/total_params never reach the model
    assert all(torch.equal(v, state[k]) for k, v in model.state_dict().items())  # BN running stats untouched
    assert {n: m.training for n, m in model.named_modules()} == modes
    for m in model.modules():
        assert not m._forward_hooks and not m._forward_pre_hooks and not m._backward_hooks
    assert not nn.modules.module._global_forward_hooks and not nn.modules.module._global_forward_pre_hooks
    assert torch.get_num_threads() == threads
    model.eval()
    after = model(x)
    assert all(torch.equal(before[k], after[k]) for k in before)
    # And the peers ran on it despite the dict output.
    assert None not in (p.as_dict()["macs_fvcore"], p.as_dict()["macs_thop"], p.as_dict()["macs_torch"])


def test_latency_keys():
    p = profile(Plain(), (1, 1, 8, 8), peers=False, timing=FAST, threads=2)
    row = p.as_dict()
    assert row["latency_ms_1t"] > 0 and row["latency_p90_ms_1t"] >= row["latency_ms_1t"]
    assert row["hz_1t"] == pytest.approx(1e3 / row["latency_ms_1t"])
    assert row["threads_mt"] == 2 and row["latency_ms_mt"] > 0
    assert p.latency_1t.runs == 3
    off = profile(Plain(), (1, 1, 8, 8), latency=False, peers=False).as_dict()
    assert all(off[k] is None for k in ("latency_ms_1t", "latency_p90_ms_1t", "latency_cv_1t", "hz_1t", "latency_ms_mt",
                                        "hz_mt", "threads_mt", "macs_fvcore", "macs_thop", "macs_torch"))  # fmt: skip


def test_flat_row_keys():
    row = profile(Plain(), (1, 1, 8, 8), latency=False, peers=False).as_dict()
    expected = (
        "macs flops params params_trainable weight_bytes_fp32 weight_bytes_fp16 weight_bytes_int8 "
        "peak_act_bytes_fp32 peak_act_bytes_int8 peak_act_op latency_ms_1t latency_p90_ms_1t latency_cv_1t hz_1t "
        "latency_ms_mt hz_mt threads_mt macs_fvcore macs_thop macs_torch"
    ).split()
    assert set(expected) <= set(row)
    params = 4 * 9 + 4 + 4 + 4 + 8 * 4 * 9 + 8 + 128 * 10 + 10
    assert (row["params"], row["weight_bytes_fp32"], row["weight_bytes_fp16"], row["weight_bytes_int8"]) == (
        params, 4 * params, 2 * params, params)  # fmt: skip


def test_stats():
    s = Stats.from_samples([float(v) for v in range(1, 11)])
    assert s.median == 5.5
    assert s.p90 == pytest.approx(9.1)  # position 0.9 * 9 = 8.1 between 9 and 10
    assert s.cv == pytest.approx(s.stdev / 5.5)
    assert s.iqr == pytest.approx(7.75 - 3.25)


def test_rejected_shape_is_a_usage_error():
    from effbench.errors import UsageError

    with pytest.raises(UsageError, match=r"rejects input shape 1x3x8x8: .*channels"):
        profile(Plain(), (1, 3, 8, 8), latency=False, peers=False)
    with pytest.raises(UsageError, match="positive"):
        profile(Plain(), (1, 0, 8, 8))


def test_timed_loop_stops_for_slow_models():
    import time

    from effbench.profiler.latency import time_fn

    config = TimingConfig(warmup_s=0.0, warmup_runs=1, budget_s=10.0, min_runs=100, max_s=0.05, min_runs_slow=3)
    stats = time_fn(lambda: time.sleep(0.02), config)
    # 100 runs would take 2 s; past max_s (0.05 s) the loop stops once it has min_runs_slow runs.
    assert 3 <= stats.runs <= 5
    assert stats.median >= 0.02


class _SoftmaxHead(nn.Module):
    """No convolution inside: the folding tracer keeps it one call (its Python runs as written)."""

    def forward(self, x):
        return torch.softmax(x.flatten(1), dim=1)


def _random_batchnorm(model: nn.Module, seed: int = 0) -> nn.Module:
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            n = m.num_features
            m.running_mean.copy_(torch.randn(n, generator=g))
            m.running_var.copy_(torch.rand(n, generator=g) * 2 + 0.1)
            m.weight.data.copy_(torch.randn(n, generator=g))
            m.bias.data.copy_(torch.randn(n, generator=g))
    return model


@pytest.mark.parametrize("name", [None, "tiny_hand"])
def test_batchnorm_folding_leaves_no_batchnorm_and_the_same_outputs(name):
    """Every latency figure is timed on this fold: it must remove each BatchNorm and change no output."""
    from effbench.profiler.latency import deployed_copy

    if name is None:
        model = nn.Sequential(nn.Conv2d(3, 8, 3, bias=False), nn.BatchNorm2d(8), nn.ReLU(),
                              nn.Conv2d(8, 8, 3, groups=2), nn.BatchNorm2d(8), _SoftmaxHead())
        shape = (1, 3, 12, 12)
    else:
        model, shape = create_model(name).deployable(), model_info(name).input_shape
    model = _random_batchnorm(model)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    x = torch.randn(shape, generator=torch.Generator().manual_seed(1))
    deployed, folded = deployed_copy(model)
    assert folded and model.training  # the original is untouched: still training, still has its BatchNorms
    assert not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in deployed.modules())
    assert any(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    with torch.no_grad():
        torch.testing.assert_close(deployed(x), model.eval()(x), rtol=1e-4, atol=1e-5)


def test_untraceable_model_is_timed_unfolded():
    from effbench.profiler.latency import deployed_copy

    class Branchy(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv, self.bn = nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2)

        def forward(self, x):
            return self.bn(self.conv(x)) if x.sum() > 0 else x  # data-dependent: torch.fx cannot trace it

    model = Branchy()
    assert deployed_copy(model) == (model, False)
