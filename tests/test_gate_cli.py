"""``bench.py gate`` end to end on a toy model from ``--module``: real profiler, budgets file, baseline file.

The toy is conv3x3(1 -> W, no bias), ReLU, conv1x1(W -> 2) at a 1x1x8x8 input:
params = 9W + 2W + 2 = 11W + 2, MACs = 64 * (9W + 2W) = 704W, fp32 weight bytes = 4 * params.
W = 8: 90 params, 5,632 MACs, 360 bytes; widened to W = 9: 101 params, 6,336 MACs, 404 bytes.
"""

import json
import sys

import pytest

from effbench.cli import main

TOY = '''
from torch import nn

WIDTH = 8


def toy_net():
    return nn.Sequential(nn.Conv2d(1, WIDTH, 3, padding=1, bias=False), nn.ReLU(), nn.Conv2d(WIDTH, 2, 1))


def broken():
    raise RuntimeError("broken on purpose")
'''

SHAPE = ["--module", "gate_toy:toy_net", "--input-shape", "1,1,8,8"]


@pytest.fixture
def toy(tmp_path, monkeypatch):
    """A project folder holding the toy module, as the current folder; returns a function to widen the toy."""
    (tmp_path / "gate_toy.py").write_text(TOY)
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "gate_toy", raising=False)

    def widen(width: int) -> None:
        monkeypatch.setattr(sys.modules["gate_toy"], "WIDTH", width)

    return widen


def _budgets(tmp_path, text):
    (tmp_path / "effbench.toml").write_text(text)


def test_widened_layer_fails_with_the_right_line(tmp_path, toy, capsys):
    _budgets(tmp_path, "[budgets.toy_net]\nmax_params = 200\nmax_weight_kb_fp32 = 0.4\n")
    assert main(["gate", *SHAPE, "--update-baseline"]) == 0
    baseline = json.loads((tmp_path / "effbench-baseline.json").read_text())
    assert baseline["models"]["toy_net"]["params"] == 90
    assert baseline["runtimes"]["ort"].startswith("onnxruntime ")  # the runtime versions beside the machine
    assert main(["gate", *SHAPE]) == 0  # unchanged model: passes against its own baseline
    capsys.readouterr()

    toy(9)
    assert main(["gate", *SHAPE]) == 1
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert "FAIL toy_net params: 90 -> 101 (+12.2%), budget 200: above baseline" in lines
    assert "FAIL toy_net weight_kb_fp32: 0.360 KB -> 0.404 KB (+12.2%), budget 0.4 KB: over budget, above baseline" \
        in lines
    assert "FAIL toy_net macs: 5,632 -> 6,336 (+12.5%), no budget: above baseline" in lines
    assert "gate FAILED" in lines[-1]


def test_exactly_at_budget_passes_one_over_fails(tmp_path, toy, capsys):
    _budgets(tmp_path, "[budgets.toy_net]\nmax_params = 90\nmax_macs = 5632\nmax_weight_kb_fp32 = 0.36\n")
    assert main(["gate", *SHAPE]) == 0
    out = capsys.readouterr().out
    assert "no baseline at" in out and "gate passed: 1 model within budget (no baseline compared)" in out
    toy(9)
    assert main(["gate", *SHAPE]) == 1
    assert "FAIL toy_net params: (no baseline) -> 101, budget 90: over budget" in capsys.readouterr().out


def test_malformed_budgets_exit_2_with_line(tmp_path, toy, capsys):
    _budgets(tmp_path, "[budgets.toy_net]\nmax_params = 90\nmax_macs 5632\n")
    assert main(["gate", *SHAPE]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "effbench.toml:3: malformed TOML" in err and "line 3" in err


def test_unknown_model_exit_2_with_valid_names(tmp_path, toy, capsys):
    _budgets(tmp_path, "[budgets.toy_nett]\nmax_params = 90\n")
    assert main(["gate", *SHAPE]) == 2
    err = capsys.readouterr().err
    assert "effbench.toml:1: budget model 'toy_nett' is not a known model; closest: toy_net" in err


def test_unknown_key_exit_2(tmp_path, toy, capsys):
    _budgets(tmp_path, "[budgets.toy_net]\nmax_params = 90\nmax_weight_kb = 1\n")
    assert main(["gate", *SHAPE]) == 2
    err = capsys.readouterr().err
    assert "effbench.toml:3: unknown budget key 'max_weight_kb'" in err and "max_weight_kb_fp32" in err


def test_usage_errors_exit_2(tmp_path, toy, capsys):
    _budgets(tmp_path, "[budgets.toy_net]\nmax_params = 90\n")
    assert main(["gate", "--module", "gate_toy:no_such"]) == 2
    assert "has no callable 'no_such'; valid: broken, toy_net" in capsys.readouterr().err
    assert main(["gate", *SHAPE, "--baseline", "missing.json"]) == 2
    assert main(["gate", "--module", "gate_toy:toy_net", "--input-shape", "1,x"]) == 2
    assert main(["gate", "--module", "gate_toy:toy_net", "--input-shape", "1,1"]) == 2  # conv2d rejects 2-D input
    assert main(["gate", "--budgets", "nope.toml"]) == 2


@pytest.mark.parametrize("mode, code", [("warn", 0), ("error", 1)])
def test_latency_warns_unless_error(tmp_path, toy, capsys, mode, code):
    # No CPU runs a toy at 1e9 Hz: the latency budget is always missed.
    _budgets(tmp_path, f"[budgets.toy_net]\nmax_params = 90\nmin_hz_1t = 1e9\nlatency = '{mode}'\n")
    assert main(["gate", *SHAPE]) == code
    out = capsys.readouterr().out
    status = "warn" if mode == "warn" else "FAIL"
    assert f"{status} toy_net hz_1t: (no baseline) -> " in out and "budget >= 1,000,000,000 Hz: under budget" in out


def test_markdown_and_json(tmp_path, toy, capsys):
    _budgets(tmp_path, "[budgets.toy_net]\nmax_params = 89\n")
    assert main(["gate", *SHAPE, "--format", "markdown"]) == 1
    md = capsys.readouterr().out
    assert md.startswith("### effbench gate FAILED")
    table = [line for line in md.splitlines() if line.startswith("|")]
    assert [h.strip() for h in table[0].strip("|").split("|")][:2] == ["model", "metric"]
    assert all(line.count("|") == 8 for line in table)

    assert main(["gate", *SHAPE, "--json"]) == 1
    doc = json.loads(capsys.readouterr().out)
    assert doc["ok"] is False and doc["exit_code"] == 1
    assert doc["violations"][0]["line"] == "FAIL toy_net params: (no baseline) -> 90, budget 89: over budget"
    assert doc["models"]["toy_net"]["macs"] == 5632

    assert main(["gate", *SHAPE, "--json", "gate.json"]) == 1
    assert "FAIL toy_net params" in capsys.readouterr().out  # the report still prints
    assert json.loads((tmp_path / "gate.json").read_text())["violations"][0]["metric"] == "params"


def test_update_baseline_keeps_the_old_one_when_a_model_fails(tmp_path, toy, capsys):
    _budgets(tmp_path, "[budgets.toy_net]\nmax_params = 200\n")
    baseline = tmp_path / "effbench-baseline.json"
    assert main(["gate", *SHAPE, "--update-baseline"]) == 0
    before = baseline.read_bytes()
    capsys.readouterr()
    toy(9)
    assert main(["gate", *SHAPE, "--module", "gate_toy:broken", "--update-baseline"]) == 1
    lines = capsys.readouterr().out.splitlines()
    assert "FAIL broken error: could not profile: RuntimeError: broken on purpose" in lines
    assert "note: baseline NOT written: broken could not be profiled" in lines
    assert baseline.read_bytes() == before  # not half-updated: the widened toy_net is not in it either


def test_latency_ratio_needs_a_reference(tmp_path, toy, capsys):
    _budgets(tmp_path, "[budgets.toy_net]\nmax_latency_ratio = 0.5\n")
    assert main(["gate", *SHAPE]) == 2
    assert "effbench.toml: max_latency_ratio needs `reference = \"MODEL\"`" in capsys.readouterr().err
    assert main(["gate", *SHAPE, "--no-latency"]) == 0  # no latency measured: the ratio is not checked
    assert "toy_net: latency not measured, its latency budgets were not checked" in capsys.readouterr().out


def test_latency_budget_under_onnx_runtime(tmp_path, toy, capsys):
    # No CPU runs a toy at 1e9 Hz under any runtime: the ONNX Runtime budget warns, and names its runtime.
    _budgets(tmp_path, "[budgets.toy_net]\nmax_params = 90\nmin_hz_1t_ort = 1e9\n")
    assert main(["gate", *SHAPE]) == 0
    out = capsys.readouterr().out
    assert "warn toy_net hz_1t_ort: (no baseline) -> " in out and "budget >= 1,000,000,000 Hz: under budget" in out
    assert " hz_1t " not in out  # eager PyTorch was not asked for
