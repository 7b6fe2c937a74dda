"""The gate's logic on plain rows: budgets parsing and merging, checks, baseline file, output formats."""

import json
import os

import pytest

from effbench.errors import UsageError
from effbench.gate.baseline import read_baseline, write_baseline
from effbench.gate.budgets import Budgets, ModelBudget, load_budgets
from effbench.gate.check import add_latency_ratios, check
from effbench.gate.format import format_json, format_markdown, format_text, violation_line
from effbench.gate.metrics import METRICS


def _row(params=1000, **kw):
    row = {"input_shape": [1, 1, 8, 8], "params": params, "macs": 64 * params, "flops": 128 * params + 500,
           "weight_bytes_fp32": 4 * params, "weight_bytes_int8": params, "peak_act_bytes_fp32": 4000,
           "peak_act_bytes_int8": 1000, "latency_ms_1t": None, "hz_1t": None}
    row.update(kw)
    return row


def _write(tmp_path, text, name="effbench.toml"):
    path = tmp_path / name
    path.write_text(text)
    return path


# --- metrics and units ---------------------------------------------------------------------------------------------

def test_kb_is_1000_bytes_and_footprint_is_weights_plus_peak():
    row = _row(params=75_000)  # 300,000 fp32 weight bytes
    assert METRICS["weight_kb_fp32"].get(row) == 300.0
    assert METRICS["weight_kb_int8"].get(row) == 75.0
    # int8 footprint = int8 weights + int8 peak activations: (75,000 + 1,000) bytes / 1000
    assert METRICS["footprint_kb_int8"].get(row) == 76.0
    assert METRICS["footprint_kb_fp32"].get(row) == 304.0
    # MFLOPs are FLOPs / 1e6, never MACs: (128 * 75,000 + 500) / 1e6
    assert METRICS["mflops"].get(row) == pytest.approx(9.6005)


# --- budgets file --------------------------------------------------------------------------------------------------

def test_budgets_merge_wildcard_then_exact(tmp_path):
    path = _write(tmp_path, """\
[budgets]
reference = "b_ref"
tolerance = { hz_1t = 0.3 }

[budgets."a_*"]
max_params = 100
max_macs = 5000
latency = "error"

[budgets.a_one]
max_params = 50
tolerance = { mflops = 0.01 }
""")
    budgets = load_budgets(path)
    resolved = budgets.resolve(["a_one", "a_two", "b_ref"])
    assert [b.model for b in resolved] == ["a_one", "a_two"]
    one, two = resolved
    assert one.limits == {"max_params": 50, "max_macs": 5000}
    assert two.limits == {"max_params": 100, "max_macs": 5000}
    assert one.latency == "error"
    assert one.tolerance == {"hz_1t": 0.3, "mflops": 0.01}
    assert budgets.baseline == tmp_path / "effbench-baseline.json"


def test_budgets_from_pyproject_table(tmp_path):
    path = _write(tmp_path, "[project]\nname = 'x'\n\n[tool.effbench.budgets.m]\nmax_mflops = 35\n", "pyproject.toml")
    assert load_budgets(path).resolve(["m"])[0].limits == {"max_mflops": 35}


def test_malformed_toml_names_line(tmp_path):
    path = _write(tmp_path, "[budgets.m]\nmax_params = 10\nmax_macs = = 3\n")
    with pytest.raises(UsageError, match=r"effbench\.toml:3: malformed TOML"):
        load_budgets(path)


def test_unknown_key_names_valid_keys_and_line(tmp_path):
    path = _write(tmp_path, "[budgets.m]\nmax_params = 10\n\nmax_flops = 3\n")
    with pytest.raises(UsageError, match=r"effbench\.toml:4: unknown budget key 'max_flops' .*max_mflops"):
        load_budgets(path)


def test_footprint_key_must_name_precision(tmp_path):
    path = _write(tmp_path, "[budgets.m]\nmax_footprint_kb = 10\n")
    with pytest.raises(UsageError, match="max_footprint_kb_int8"):
        load_budgets(path)


@pytest.mark.parametrize("text, message", [
    ("[budgets.m]\nmax_params = 'big'\n", "must be a number"),
    ("[budgets.m]\nmax_params = -1\n", "must be a number"),
    ("[budgets.m]\nlatency = 'fail'\n", "must be one of 'warn', 'error'"),
    ("[budgets]\ntolerance = { speed = 0.1 }\n", "unknown metric 'speed'"),
    ("[budgets]\nrefrence = 'x'\n", "unknown budgets setting 'refrence'"),
])
def test_bad_values(tmp_path, text, message):
    with pytest.raises(UsageError, match=message):
        load_budgets(_write(tmp_path, text))


def test_unknown_model_and_empty_wildcard(tmp_path):
    budgets = load_budgets(_write(tmp_path, "[budgets.tiny_hnd]\nmax_params = 1\n"))
    with pytest.raises(UsageError, match=r"effbench\.toml:1: budget model 'tiny_hnd' is not a known model; closest: "
                                         r"tiny_hand"):
        budgets.resolve(["tiny_hand", "other"])
    budgets = load_budgets(_write(tmp_path, "[budgets.'zz_*']\nmax_params = 1\n"))
    with pytest.raises(UsageError, match="pattern 'zz_\\*' matches no known model"):
        budgets.resolve(["tiny_hand"])


# --- checks --------------------------------------------------------------------------------------------------------

def test_value_exactly_at_budget_passes():
    # 299.99 KB is 299,990 bytes; 299.99 * 1000 is not exact in binary, the gate must still call it equal.
    row = _row(params=1000, weight_bytes_fp32=299_990)
    budget = ModelBudget("m", {"max_params": 1000, "max_weight_kb_fp32": 299.99, "max_mflops": 0.1285})
    result = check([budget], {"m": row})
    assert result.exit_code == 0
    assert {c.metric: c.status for c in result.checks} == {"params": "ok", "weight_kb_fp32": "ok", "mflops": "ok"}
    one_more = check([budget], {"m": _row(params=1001, weight_bytes_fp32=299_990)})
    assert one_more.exit_code == 1
    assert [c.metric for c in one_more.failures] == ["params", "mflops"]


def test_baseline_growth_fails_with_size_limit_line():
    budget = ModelBudget("m", {"max_params": 2000})
    result = check([budget], {"m": _row(params=1100)}, {"m": _row(params=1000)})
    assert result.exit_code == 1
    lines = [violation_line(c) for c in result.failures]
    assert "FAIL m params: 1,000 -> 1,100 (+10.0%), budget 2,000: above baseline" in lines
    # Every count and byte metric that grew fails against the baseline; the peak activations did not grow.
    assert {c.metric for c in result.failures} == {"params", "macs", "mflops", "weight_kb_fp32", "weight_kb_int8",
                                                    "footprint_kb_fp32", "footprint_kb_int8"}


def test_tolerance_and_shrinking():
    budget = ModelBudget("m", tolerance={"params": 0.1, "macs": 0.1, "mflops": 0.1, "weight_kb_fp32": 0.1,
                                         "weight_kb_int8": 0.1, "footprint_kb_fp32": 0.1, "footprint_kb_int8": 0.1})
    assert check([budget], {"m": _row(params=1100)}, {"m": _row(params=1000)}).exit_code == 0  # +10% exactly
    assert check([budget], {"m": _row(params=1101)}, {"m": _row(params=1000)}).exit_code == 1
    assert check([ModelBudget("m")], {"m": _row(params=900)}, {"m": _row(params=1000)}).exit_code == 0


def test_latency_warns_unless_error():
    row = _row(latency_ms_1t=25.0, hz_1t=40.0)
    warn = check([ModelBudget("m", {"min_hz_1t": 50})], {"m": row})
    assert warn.exit_code == 0
    assert [violation_line(c) for c in warn.warnings] == ["warn m hz_1t: (no baseline) -> 40.0 Hz, budget >= 50 Hz: "
                                                          "under budget"]
    error = check([ModelBudget("m", {"min_hz_1t": 50}, latency="error")], {"m": row})
    assert error.exit_code == 1 and [c.metric for c in error.failures] == ["hz_1t"]
    assert check([ModelBudget("m", {"min_hz_1t": 40})], {"m": row}).warnings == []  # at the budget: passes


def test_latency_not_measured_is_skipped_but_missing_count_fails():
    result = check([ModelBudget("m", {"min_hz_1t": 50}, latency="error")], {"m": _row()})
    assert result.exit_code == 0 and result.checks[0].status == "skipped"
    assert any("latency not measured" in n for n in result.notes)
    row = _row()
    del row["peak_act_bytes_int8"]
    assert check([ModelBudget("m", {"max_peak_act_kb_int8": 5})], {"m": row}).exit_code == 1


def test_latency_ratio_to_reference_same_run():
    rows = {"m": _row(latency_ms_1t=2.0), "ref": _row(latency_ms_1t=10.0)}
    add_latency_ratios(rows, "ref")
    assert rows["m"]["latency_ratio_1t"] == pytest.approx(0.2)
    budget = ModelBudget("m", {"max_latency_ratio": 0.1}, latency="error")
    result = check([budget], rows)
    assert result.exit_code == 1
    assert violation_line(result.failures[0]) == ("FAIL m latency_ratio_1t: (no baseline) -> 0.200 x, budget 0.1 x: "
                                                  "over budget")


def test_latency_keys_name_their_runtime(tmp_path):
    path = _write(tmp_path, "[budgets.m]\nmin_hz_1t = 50\nmin_hz_1t_ort = 2000\nmax_latency_ratio_ort_int8 = 0.1\n"
                            "tolerance = { hz_1t_ort = 0.3 }\n")  # fmt: skip
    (budget,) = load_budgets(path).resolve(["m", "ref"])
    assert budget.runtimes() == ["eager", "ort", "ort-int8"]  # what the gate must time
    rows = {"m": _row(latency_ms_1t=1.0, hz_1t=1000.0, latency_ms_1t_ort=0.5, hz_1t_ort=2000.0,
                      latency_ms_1t_ort_int8=0.4),
            "ref": _row(latency_ms_1t=10.0, latency_ms_1t_ort=2.0, latency_ms_1t_ort_int8=2.0)}  # fmt: skip
    add_latency_ratios(rows, "ref")  # per runtime: each model against the reference under the same runtime
    assert (rows["m"]["latency_ratio_1t"], rows["m"]["latency_ratio_1t_ort"]) == (0.1, 0.25)
    assert rows["m"]["latency_ratio_1t_ort_int8"] == pytest.approx(0.2)
    result = check([budget], rows, {"m": _row(hz_1t_ort=2500.0)})
    assert [violation_line(c) for c in result.warnings] == [
        "warn m latency_ratio_1t_ort_int8: (no baseline) -> 0.200 x, budget 0.1 x: over budget"]
    assert {c.metric: c.status for c in result.checks if METRICS[c.metric].kind == "latency"} == {
        "hz_1t": "ok", "hz_1t_ort": "ok", "latency_ratio_1t_ort_int8": "warn"}  # 2000 Hz is within 30% of 2500
    with pytest.raises(UsageError, match="unknown budget key 'min_hz_1t_onnx'"):
        load_budgets(_write(tmp_path, "[budgets.m]\nmin_hz_1t_onnx = 5\n"))


def test_failed_model_and_changed_shape_fail():
    result = check([ModelBudget("m"), ModelBudget("n")], {"m": {"error": "RuntimeError: boom"}, "n": _row()},
                   {"n": {**_row(), "input_shape": [1, 1, 16, 16]}})
    assert [(c.model, c.metric) for c in result.failures] == [("m", "error"), ("n", "input_shape")]
    assert "RuntimeError: boom" in violation_line(result.failures[0])


# --- baseline file and outputs -------------------------------------------------------------------------------------

def test_baseline_round_trip_atomic(tmp_path):
    models = {"b": _row(params=7), "a": {"input_shape": [1, 3, 4, 4], "params": 1, "flops": 2}}
    path = tmp_path / "sub" / "baseline.json"
    write_baseline(path, models, {"eager": "torch 2.13.0", "ort": "onnxruntime 1.32.0"})
    doc = read_baseline(path)
    assert doc["models"] == models
    assert doc["runtimes"] == {"eager": "torch 2.13.0", "ort": "onnxruntime 1.32.0"}
    assert list(doc["models"]) == ["a", "b"]  # sorted, so updates diff cleanly
    assert {"created", "commit", "torch_version", "machine"} <= set(doc)
    assert os.listdir(path.parent) == ["baseline.json"]  # no temporary file left behind


def test_baseline_errors(tmp_path):
    with pytest.raises(UsageError, match="does not exist"):
        read_baseline(tmp_path / "nope.json")
    bad = tmp_path / "bad.json"
    bad.write_text('{\n  "models": {\n    "m": ,\n')
    with pytest.raises(UsageError, match=r"bad\.json:3: malformed baseline JSON"):
        read_baseline(bad)
    bad.write_text('{"models": []}')
    with pytest.raises(UsageError, match="not an effbench baseline"):
        read_baseline(bad)


def test_text_markdown_json_outputs():
    result = check([ModelBudget("m", {"max_params": 1050})], {"m": _row(params=1100)}, {"m": _row(params=1000)})
    text = format_text(result, "header")
    assert text.startswith("header\n\nFAIL m params: 1,000 -> 1,100 (+10.0%), budget 1,050: over budget, "
                           "above baseline\n")
    assert "gate FAILED: 7 violations over 1 model" in text

    md = format_markdown(result)
    table = [line for line in md.splitlines() if line.startswith("|")]
    assert [h.strip() for h in table[0].strip("|").split("|")] == ["model", "metric", "baseline", "now", "change",
                                                                   "budget", "status"]
    assert all(line.count("|") == 8 for line in table)
    assert len(table) == 2 + len(result.checks)
    assert md.startswith("### effbench gate FAILED")

    doc = json.loads(format_json(result, budgets="b.toml"))
    assert doc["ok"] is False and doc["exit_code"] == 1 and doc["budgets"] == "b.toml"
    first = doc["violations"][0]
    assert (first["model"], first["metric"], first["baseline"], first["now"], first["budget"]) == (
        "m", "params", 1000, 1100, 1050)
    assert first["change"] == pytest.approx(0.1)
    assert len(doc["checks"]) == len(result.checks)


def test_budgets_where_without_line(tmp_path):
    assert Budgets(tmp_path / "x.toml", {}).where("m") == str(tmp_path / "x.toml")


def test_project_gates_its_own_models():
    from pathlib import Path

    from effbench import registry

    root = Path(__file__).resolve().parents[1]
    budgets = load_budgets(root / "pyproject.toml")
    resolved = {b.model: b for b in budgets.resolve(registry.list_models())}
    # The promise: tiny_hand stays <= 35 MFLOPs and < 300 KB (fp32 weights; KB = 1000 bytes).
    assert resolved["tiny_hand"].limits["max_mflops"] == 35
    assert resolved["tiny_hand"].limits["max_weight_kb_fp32"] < 300
    assert resolved["tiny_hand"].latency == "warn"  # CI runners are noisy
    assert set(resolved) <= set(read_baseline(budgets.baseline)["models"])
