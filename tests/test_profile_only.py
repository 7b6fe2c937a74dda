"""Profile-only models: the README's "Adding a model" example, run as written, is registered, listed, profiled
and gated, and refused by training; training suites leave profile-only models out of their runs.

The example: conv 3x3 (3 -> 8, bias) + ReLU, global average pool, linear 8 -> 10 at 3 x 32 x 32.
Parameters: 8*3*9 + 8 = 224, and 8*10 + 10 = 90: 314. MACs: 32*32 outputs x 8 channels x 27 = 221,184, and
8*10 = 80: 221,264.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from effbench import registry
from effbench.cli import main
from effbench.errors import UsageError
from effbench.suite_run import plan_suite

README = Path(__file__).resolve().parents[1] / "README.md"
PARAMS, MACS = 8 * 3 * 9 + 8 + 8 * 10 + 10, 32 * 32 * 8 * 27 + 8 * 10


@pytest.fixture
def readme_model():
    """Runs the README's profile-only example (the first Python block under "Adding a model") as written."""
    section = README.read_text().split("## Adding a model", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    exec(compile(code, str(README), "exec"), {"__name__": "readme_example"})
    yield "tiny_classifier"
    registry._models.pop("tiny_classifier")


def test_example_is_registered_and_listed(readme_model, capsys):
    info = registry.model_info(readme_model)
    assert info.profile_only and (info.params, info.macs) == (PARAMS, MACS) == (314, 221_264)
    assert main(["list", "tiny_classifier"]) == 0
    (line,) = [ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("tiny_classifier")]
    assert "profile-only" in line and "314" in line


def test_example_is_profiled(readme_model, capsys):
    assert main(["profile", "--model", readme_model, "--json", "--no-latency", "--no-peers"]) == 0
    row = json.loads(capsys.readouterr().out)[0]
    assert (row["params"], row["macs"], row["input_shape"]) == (PARAMS, MACS, "1x3x32x32")
    assert row["flops_lower_bound"] is False


def test_example_is_gated(readme_model, tmp_path, capsys):
    budgets, baseline = tmp_path / "effbench.toml", tmp_path / "baseline.json"
    args = ["gate", "--budgets", str(budgets), "--baseline", str(baseline), "--no-latency"]
    budgets.write_text(f"[budgets.{readme_model}]\nmax_macs = {MACS}\n")
    assert main([*args, "--update-baseline"]) == 0  # budgets are inclusive
    assert json.loads(baseline.read_text())["models"][readme_model]["macs"] == MACS
    assert main(args) == 0
    budgets.write_text(f"[budgets.{readme_model}]\nmax_macs = {MACS - 1}\n")
    assert main(args) == 1
    assert f"FAIL {readme_model} macs" in capsys.readouterr().out


def test_training_a_profile_only_model_is_a_usage_error(readme_model, tmp_path, capsys):
    from effbench.train import TrainConfig

    with pytest.raises(UsageError, match="'tiny_classifier' is profile-only"):
        TrainConfig(model=readme_model).validate()
    assert main(["train", "--model", readme_model, "--steps", "1", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "profile-only" in err and "trainable models: mobilenet_v2_035" in err
    assert list(tmp_path.iterdir()) == []


def test_training_suites_leave_profile_only_models_out(readme_model):
    quick = {"train": {"steps": 1, "batch_size": 2, "train_size": 4, "val_size": 0, "test_size": 2}}
    suite = registry.register_suite(registry.Suite(
        name="_test_mixed", patterns=("tiny_hand", readme_model), settings={"budgets": {"quick": quick}}))  # fmt: skip
    try:
        assert suite.trainable_models() == ["tiny_hand"]
        plan = plan_suite("_test_mixed")
        assert plan.models == ["tiny_hand", readme_model]  # profiled and reported
        assert {c.model for c in plan.configs} == {"tiny_hand"} and set(plan.seeds) == {"tiny_hand"}
    finally:
        registry._suites.pop("_test_mixed")
