"""The bad day: every bad input and fault a newcomer met ends in one line naming the file or value and what to do,
with exit 2 for bad input, 3 for a file that cannot be read or written and 1 for a failed gate; a corrupt record or
checkpoint is set aside and the run done again, and a report leaves unreadable files out by name."""

from __future__ import annotations

import json
import math
import re
import sys

import pytest

from effbench import results
from effbench.cli import main
from effbench.train import TrainConfig, run
from report_helpers import make_store


def _one_line(text: str) -> str:
    """The text, asserted to be a single line."""
    assert text.count("\n") == 1 and text.endswith("\n"), text
    return text


@pytest.mark.parametrize("flag, value, message", [
    ("--lr", "inf", "error: lr must be a finite number, got inf"),
    ("--weight-decay", "nan", "error: weight_decay must be a finite number, got nan"),
])
def test_train_non_finite_number_exits_2(flag, value, message, tmp_path, capsys):
    assert main(["train", "--model", "tiny_hand", flag, value, "--out", str(tmp_path)]) == 2
    assert _one_line(capsys.readouterr().err).startswith(message)
    assert not any(tmp_path.iterdir())


@pytest.fixture
def not_a_folder(tmp_path):
    """A path under a regular file: no one can write there, root included."""
    blocker = tmp_path / "file.txt"
    blocker.write_text("x")
    return blocker / "out"


def test_report_into_an_unwritable_folder_exits_3(tmp_path, not_a_folder, capsys):
    store = make_store(tmp_path / "runs")
    assert main(["report", "--runs", str(store), "--out", str(not_a_folder)]) == 3
    err = _one_line(capsys.readouterr().err)
    assert err.startswith(f"error: cannot read or write {not_a_folder}") and "another --out" in err


def test_train_into_an_unwritable_folder_exits_3(cache, not_a_folder, capsys):
    argv = ["train", "--model", "tiny_hand", "--aux", "off", "--steps", "1", "--batch-size", "2", "--train-size", "2",
            "--val-size", "0", "--test-size", "2", "--data-config", '{"height": 24, "width": 32}', "--data-cache",
            cache, "--out", str(not_a_folder)]
    assert main(argv) == 3
    err = capsys.readouterr().err
    assert err.startswith(f"error: cannot read or write {not_a_folder}") and err.count("\n") == 1


def _small(cache: str, **kw) -> TrainConfig:
    values = dict(model="tiny_hand", aux=False, steps=6, batch_size=4, lr=1e-2, warmup_steps=2, train_size=8,
                  val_size=4, test_size=4, eval_every=3, data_config={"height": 24, "width": 32}, data_cache_dir=cache,
                  checkpoint_every=3)
    return TrainConfig(**{**values, **kw})


def test_truncated_record_is_set_aside_and_rebuilt_with_every_field(cache, tmp_path, capsys):
    cfg = _small(cache)
    first = run(cfg, tmp_path, progress=False)
    assert first["status"] == "ok", first["error"]
    path = results.record_path(tmp_path, cfg.hash())
    path.write_text(path.read_text()[:40])  # a run killed while another tool copied the store, a full disk...
    steps = []
    again = run(cfg, tmp_path, progress=False, on_step=steps.append)
    err = _one_line(capsys.readouterr().err)
    assert err.startswith(f"effbench: {path}: unreadable (JSONDecodeError") and err.rstrip().endswith(
        f"set aside as {path.name}.corrupt-1; running it again")
    assert (tmp_path / f"{path.name}.corrupt-1").is_file() and steps == []  # rebuilt from the final checkpoint
    for key in results.RunRecord.__annotations__:
        if key not in ("created", "wall_s"):
            assert again[key] == first[key], key
    assert again["metrics"]["final_train_loss"] is not None and again["curve"] and again["convergence"]


def test_garbage_checkpoint_is_set_aside_and_the_run_trains_afresh(cache, tmp_path, capsys):
    cfg = _small(cache)
    ckpt = results.checkpoint_path(tmp_path, cfg.hash())
    ckpt.parent.mkdir(parents=True)
    ckpt.write_bytes(b"not a checkpoint at all")
    steps = []
    record = run(cfg, tmp_path, progress=False, on_step=steps.append)
    assert record["status"] == "ok", record["error"]
    assert steps == list(range(1, cfg.steps + 1))
    err = _one_line(capsys.readouterr().err)
    assert err == (f"effbench: {ckpt}: not a readable checkpoint (UnpicklingError): set aside as {ckpt.name}.corrupt-1;"
                   f" training run {cfg.hash()} from the start\n")
    assert (ckpt.parent / f"{ckpt.name}.corrupt-1").read_bytes() == b"not a checkpoint at all"


def test_report_leaves_a_bad_record_out_by_name(tmp_path, capsys):
    store = make_store(tmp_path / "runs")
    bad = store / "000000000000.json"  # tiny_hand aux=off seed=0
    bad.write_text('{"config": ')
    assert main(["report", "--runs", str(store), "--out", str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err.splitlines()
    assert err[0].startswith(f"warning: left out {bad}: unreadable (JSONDecodeError") and "delete it" in err[0]
    assert err[1] == "warning: the report leaves out 1 run(s): tiny_hand aux=off seed=0"
    md = (tmp_path / "out" / "report.md").read_text()
    assert f"run record {bad} unreadable, left out" in md  # in the failures table
    assert "mobilenet_v2_100" in md.split("## Cost of the deployable models")[1]  # the good runs are all there


TOY = '''
from torch import nn


def toy_net():
    return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU())
'''


@pytest.fixture
def project(tmp_path, monkeypatch):
    """A project folder with a toy model module, as the current folder."""
    (tmp_path / "gate_toy2.py").write_text(TOY)
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "gate_toy2", raising=False)
    return tmp_path


GATE = ["gate", "--budgets", "effbench.toml", "--module", "gate_toy2:toy_net", "--input-shape", "1,1,8,8",
        "--no-latency"]


def test_gate_fails_when_its_named_baseline_is_missing(project, capsys):
    (project / "effbench.toml").write_text('[budgets]\nbaseline = "nope.json"\n\n[budgets.toy_net]\nmax_params = 100\n')
    assert main(GATE) == 1
    out = capsys.readouterr().out
    assert ("FAIL gate baseline: the baseline nope.json named at effbench.toml:2 does not exist; write it with "
            "--update-baseline, fix the path, or pass --allow-missing-baseline") in out
    assert out.rstrip().endswith("gate FAILED: 1 violation over 1 model")
    assert main(GATE + ["--allow-missing-baseline"]) == 0
    assert capsys.readouterr().out.rstrip().endswith("gate passed: 1 model within budget (no baseline compared)")


@pytest.mark.parametrize("text, line, key", [
    ('latncy = "error"\n\n[budgets.toy_net]\nmax_params = 100\n', 1, "latncy"),
    ('[budgets.toy_net]\nmax_params = 100\n\n[tool.effbench]\nlatncy = "error"\n', 5, "tool.effbench.latncy"),
])
def test_gate_rejects_unknown_keys_outside_the_budgets_table(project, capsys, text, line, key):
    (project / "effbench.toml").write_text(text)
    assert main(GATE) == 2
    err = _one_line(capsys.readouterr().err)
    assert err.startswith(f"error: effbench.toml:{line}: unknown key {key!r} outside the budgets table")


def test_gate_json_into_an_unwritable_file_exits_3(project, not_a_folder, capsys):
    (project / "effbench.toml").write_text("[budgets.toy_net]\nmax_params = 100\n")
    assert main(GATE + ["--json", str(not_a_folder / "gate.json")]) == 3  # not 1, which says a budget failed
    err = capsys.readouterr().err.splitlines()
    assert err[0] == "profiling toy_net" and err[1].startswith(f"error: cannot read or write {not_a_folder}")
    assert len(err) == 2


@pytest.mark.parametrize("argv, message", [
    (["--input-shape", ""], "error: --input-shape is empty; give positive integers like 1,1,120,160"),
    (["--input-shape", "-1,1,120,160"], "error: --input-shape '-1,1,120,160': dimension -1 is not positive"),
    (["--input-shape=-1,1,120,160"], "error: --input-shape '-1,1,120,160': dimension -1 is not positive"),
    (["--input-shape", "1,0,120,160"], "error: --input-shape '1,0,120,160': dimension 0 is not positive"),
    (["--input-shape", "1,1,120,16O"], "error: --input-shape '1,1,120,16O': '16O' is not an integer"),
])
def test_bad_input_shape_exits_2_in_one_line(argv, message, capsys):
    assert main(["profile", "--model", "tiny_hand", "--no-latency", "--no-peers", *argv]) == 2
    assert _one_line(capsys.readouterr().err).startswith(message)


def test_runaway_input_shape_is_refused_with_the_estimate(capsys):
    """16000 x 16000 would take tens of GB (the first try grew past 6 GB in 43 s): refused before it runs."""
    assert main(["profile", "--model", "tiny_hand", "--no-latency", "--input-shape", "1,1,16000,16000"]) == 2
    err = _one_line(capsys.readouterr().err)
    match = re.match(r"error: tiny_hand at input 1x1x16000x16000: one forward pass creates about ([\d.]+) GB of "
                     r"tensors", err)
    assert match, err
    # At least the input itself (16000^2 fp32 = 1.02 GB) and the 1/4-resolution maps that follow it.
    estimate = float(match.group(1))
    assert 1.02 * 4 < estimate < 100
    assert "over the 2 GB limit" in err and f"--max-memory-gb {math.ceil(estimate)} " in err


@pytest.mark.parametrize("spec, message", [
    ("path/to/mynet:build", "a file must end in .py (pkg.mod:factory or path/to/file.py:factory); did you mean "
                            "path/to/mynet.py:build?"),
    ("path/to/mynet.py", "must look like pkg.mod:factory or path/to/file.py:factory: the module or file, a colon, "
                         "then the function that builds the model (e.g. path/to/mynet.py:build)"),
    ("path.to.mynet.build", "(e.g. path.to.mynet:build)"),
    ("mynet:build", "cannot import 'mynet' (ModuleNotFoundError: No module named 'mynet'); pkg.mod:factory must be "
                    "importable from the current folder"),
])
def test_module_spec_says_how_to_write_it(spec, message, tmp_path, monkeypatch, capsys):
    (tmp_path / "path" / "to").mkdir(parents=True)
    (tmp_path / "path" / "to" / "mynet.py").write_text(TOY.replace("toy_net", "build"))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))  # importing a file puts its folder there
    monkeypatch.delitem(sys.modules, "mynet", raising=False)
    assert main(["profile", "--module", spec, "--no-latency", "--no-peers"]) == 2
    assert message in _one_line(capsys.readouterr().err)
    assert main(["profile", "--module", "path/to/mynet.py:build", "--no-latency", "--no-peers"]) == 0


def test_train_says_when_it_reuses_a_finished_run(cache, tmp_path, capsys):
    argv = ["train", "--model", "tiny_hand", "--aux", "off", "--steps", "1", "--batch-size", "2", "--train-size", "2",
            "--val-size", "0", "--test-size", "2", "--data-config", '{"height": 24, "width": 32}', "--data-cache",
            cache, "--out", str(tmp_path)]
    assert main(argv) == 0
    assert "reused" not in capsys.readouterr().out
    assert main(argv) == 0
    assert "tiny_hand aux=off seed=0: finished earlier, reused" in capsys.readouterr().out
