"""MLPerf Tiny's reference models: parameters and MACs derived by hand from the reference layer lists, the tinyml
suite on the command line, and the peer counters' figures on ResNet-8 explained.

Each derivation walks the layer list of the mlcommons/tiny definition (quoted in each model's docstring), with
PyTorch's parameter convention: a convolution or dense layer has weights and a bias (Keras' default), a
BatchNorm 2 parameters per channel (Keras counts 2 more, non-trainable). MACs: output elements x fan-in.
"""

from __future__ import annotations

import json

import pytest

from effbench import profile
from effbench.cli import main
from effbench.registry import create_model, get_suite, model_info
from profile_helpers import deployed_profile
from report_helpers import read_table


def conv(
    cin: int, cout: int, kernel: tuple[int, int], out_hw: int, groups: int = 1, bn: bool = True
) -> tuple[int, int]:
    """(params, MACs) of a convolution with a bias, followed by its BatchNorm if ``bn``."""
    fan_in = cin // groups * kernel[0] * kernel[1]
    return cout * fan_in + cout + (2 * cout if bn else 0), out_hw * cout * fan_in


def dense(cin: int, cout: int, bn: bool = False) -> tuple[int, int]:
    """(params, MACs) of a dense layer, with its BatchNorm if ``bn``."""
    return cin * cout + cout + (2 * cout if bn else 0), cin * cout


def total(layers: list[tuple[int, int]]) -> tuple[int, int]:
    return sum(p for p, _ in layers), sum(m for _, m in layers)


def resnet8() -> tuple[int, int]:
    # stem; stack 1 at 32x32; stacks 2 and 3 halve the size and double the width, with a 1x1 projection
    # shortcut (a bias, no BatchNorm); then the classifier.
    layers = [conv(3, 16, (3, 3), 32 * 32), conv(16, 16, (3, 3), 32 * 32), conv(16, 16, (3, 3), 32 * 32),
              conv(16, 32, (3, 3), 16 * 16), conv(32, 32, (3, 3), 16 * 16), conv(16, 32, (1, 1), 16 * 16, bn=False),
              conv(32, 64, (3, 3), 8 * 8), conv(64, 64, (3, 3), 8 * 8), conv(32, 64, (1, 1), 8 * 8, bn=False),
              dense(64, 10)]  # fmt: skip
    return total(layers)


def ds_cnn() -> tuple[int, int]:
    # conv 10x4 stride 2 on 49x10 -> 25x5 ('same'); 4 x (depthwise 3x3, pointwise 1x1) at 64 channels; dense.
    hw = 25 * 5
    blocks = [conv(64, 64, (3, 3), hw, groups=64), conv(64, 64, (1, 1), hw)] * 4
    return total([conv(1, 64, (10, 4), hw), *blocks, dense(64, 12)])


def mobilenet_v1_025() -> tuple[int, int]:
    # The reference's layers 2 to 14: the pointwise width doubles at layers 2, 3, 5, 7 and 13; the depthwise
    # stride is 2 at layers 3, 5, 7 and 13. The first conv (stride 2) leaves 48x48 at width 8.
    layers, width, side = [conv(3, 8, (3, 3), 48 * 48)], 8, 48
    for layer in range(2, 15):
        side = side // 2 if layer in (3, 5, 7, 13) else side
        out = 2 * width if layer in (2, 3, 5, 7, 13) else width
        layers += [conv(width, width, (3, 3), side * side, groups=width), conv(width, out, (1, 1), side * side)]
        width = out
    assert (width, side) == (256, 3)
    return total(layers + [dense(256, 2)])


def fc_autoencoder() -> tuple[int, int]:
    # 640 -> 128 -> 128 -> 128 -> 128 -> 8 -> 128 -> 128 -> 128 -> 128 (each with BN), then -> 640.
    sizes = [640, 128, 128, 128, 128, 8, 128, 128, 128, 128]
    return total([dense(a, b, bn=True) for a, b in zip(sizes, sizes[1:])] + [dense(128, 640)])


HAND = {
    "resnet8_cifar10": resnet8,
    "ds_cnn_kws": ds_cnn,
    "mobilenet_v1_025_vww": mobilenet_v1_025,
    "fc_autoencoder_ad": fc_autoencoder,
}


def test_resnet8_matches_the_published_pytorch_figures():
    # MLPerf Tiny's PyTorch ResNet-8: 78,186 parameters and 12,501,632 MACs at 32x32.
    assert resnet8() == (78_186, 12_501_632)


@pytest.mark.parametrize("name", sorted(HAND))
def test_hand_derivation_registry_and_profile_agree(name):
    prof = deployed_profile(name)
    info = model_info(name)
    assert HAND[name]() == (info.params, info.macs) == (prof.params, prof.macs)
    assert info.profile_only and not prof.flops_lower_bound


def test_tinyml_suite_from_the_cli(capsys):
    suite = get_suite("tinyml")
    assert suite.models() == ["resnet8_cifar10", "ds_cnn_kws", "mobilenet_v1_025_vww", "fc_autoencoder_ad"]
    assert suite.trainable_models() == []
    assert main(["profile", "--suite", "tinyml", "--no-latency", "--no-peers", "--json"]) == 0
    rows = {r["model"]: r for r in json.loads(capsys.readouterr().out)}
    assert {n: (r["params"], r["macs"], r["input_shape"]) for n, r in rows.items()} == {
        n: (model_info(n).params, model_info(n).macs, "x".join(map(str, model_info(n).input_shape))) for n in HAND
    }


def test_resnet8_peer_counters_differ_where_explained():
    prof = profile(create_model("resnet8_cifar10"), (1, 3, 32, 32), latency=False)
    # BatchNorm outputs: 16x32x32 (stem) + 2 x 16x32x32 + 2 x 32x16x16 + 2 x 64x8x8.
    bn = 3 * 16 * 32 * 32 + 2 * 32 * 16 * 16 + 2 * 64 * 8 * 8
    peers = {name: p.macs for name, p in prof.peers.items()}
    assert peers["torch"] == prof.macs  # convolutions and the linear layer only, as ours
    assert peers["fvcore"] == prof.macs + 2 * bn + 64 * 8 * 8  # BatchNorm 2 per element; pool 1 per input element
    assert peers["thop"] == prof.macs + 4 * bn + (64 + 1) * 64  # BatchNorm 4 per element; pool (64 adds + 1) x 64
    notes = prof.peer_notes()
    assert f"norm +{2 * bn:,}" in notes["fvcore"] and f"norm +{4 * bn:,}" in notes["thop"]
    assert "no difference by op type" in notes["torch"]


@pytest.mark.slow
def test_the_tinyml_suite_profiles_and_reports_without_training(tmp_path):
    """A suite of profile-only models: `bench.py --suite tinyml` profiles the four models and writes a report of
    their costs and the counter cross-check, with no accuracy sections, no training and no budget needed."""
    from effbench.suite_run import run_suite

    result = run_suite("tinyml", tmp_path, latency=False, progress=False, log=lambda line: None)
    md = (tmp_path / "report.md").read_text()
    assert result.exit_code == 0
    assert "- profile-only suite: no training runs" in md and "## Accuracy" not in md
    costs = read_table(md, "## Cost of the deployable models")
    assert [(r["model"], r["params"]) for r in costs] == [
        ("resnet8_cifar10", "78,186"), ("ds_cnn_kws", "23,756"), ("mobilenet_v1_025_vww", "216,322"),
        ("fc_autoencoder_ad", "267,928")]
    assert "## Counter cross-check" in md and not list(tmp_path.glob("pareto_*.png"))
