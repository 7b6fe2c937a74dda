"""The training matrix's plan, driver and executor choice (effbench.matrix), without training: the plan's order and
resources, the progress of a retried run, the records written into the store, and the one-line errors."""

from __future__ import annotations

import io
import sys

import pytest
import torch

from effbench import results
from effbench.cli import main
from effbench.errors import UsageError
from effbench.matrix import Events, make_executor, plan_runs, resumed_steps, run_tag, worker
from effbench.matrix.local import LocalExecutor
from effbench.progress import SuiteProgress
from effbench.registry import get_suite
from effbench.suite_run import plan_suite, train_values
from effbench.train import TrainConfig
from effbench.train.loop import fingerprint_of


def test_plan_is_longest_first_with_hash_cost_and_resources():
    plan = plan_suite("smoke")
    frame_ms = {"tiny_hand": 1.0, "mobilenet_v2_035": 10.0}
    runs = plan_runs(plan.configs + plan.configs[:1], frame_ms.__getitem__)  # a duplicate runs once
    assert [r.key for r in runs] == [c.hash() for c in sorted(plan.configs, key=lambda c: -frame_ms[c.model])]
    assert all(r.resources == {"CPU": 1.0} for r in runs)
    cfg = runs[0].config
    assert runs[0].cost_ms == cfg.steps * cfg.batch_size * 10.0 and runs[0].cost_per_step == cfg.batch_size * 10.0
    assert runs[0].tag == run_tag(cfg) == "mobilenet_v2_035 aux=off seed=0"
    gpu = plan_runs([cfg.replace(device="cuda")], lambda _: 1.0)[0]
    assert gpu.resources == {"CPU": 1.0, "GPU": 1.0}


def _part_way(store, cfg, step, fingerprint):
    """Leave ``cfg``'s run in ``store`` as a sitting stopped at ``step`` leaves it: its progress and a checkpoint."""
    results.write_json(results.progress_path(store, cfg.hash()), {
        "config": cfg.to_dict(), "config_hash": cfg.hash(), "model_fingerprint": fingerprint, "step": step,
        "curve": [], "plateaus": 0, "wall_s": 1.0})
    results.checkpoint_path(store, cfg.hash()).parent.mkdir(parents=True, exist_ok=True)
    results.checkpoint_path(store, cfg.hash()).write_bytes(b"state")


def test_a_run_part_way_resumes_first_and_counts_only_its_steps_left(tmp_path):
    short = TrainConfig(model="tiny_hand", steps=40, batch_size=2).validate()
    long_ = short.replace(steps=100)
    steps = resumed_steps(tmp_path)
    assert steps(short) == 0  # nothing trained yet
    _part_way(tmp_path, short, 30, "an older model")
    assert steps(short) == 0  # its model changed since: it starts afresh
    _part_way(tmp_path, short, 30, fingerprint_of("tiny_hand"))
    results.checkpoint_path(tmp_path, short.hash()).unlink()
    assert steps(short) == 0  # a progress file without its checkpoint (lost): nothing to resume from
    _part_way(tmp_path, short, 30, fingerprint_of("tiny_hand"))
    runs = plan_runs([long_, short], lambda _: 1.0, resumed_steps(tmp_path))
    assert [r.key for r in runs] == [short.hash(), long_.hash()]  # part-way first, though the shorter
    assert (runs[0].done_steps, runs[0].cost_ms, runs[0].cost_per_step) == (30, 10 * 2.0, 2.0)
    assert runs[1].cost_ms == 100 * 2.0
    bar = SuiteProgress("t", 0, 2, stream=io.StringIO())
    bar.start_training(sum(r.cost_ms for r in runs))
    events = Events(runs, tmp_path, bar)
    events.steps(short.hash(), 0)
    events.steps(short.hash(), 31)  # its first step of this sitting: one step of work, not 31
    assert bar.done_cost == 2.0
    events.finished(short.hash(), worker.failed_record(short, "boom"))
    assert bar.done_cost == 20.0


def test_gpu_budget_takes_its_own_batch_and_rate_and_leaves_cpu_configs_alone():
    embedded = get_suite("embedded")
    cpu, gpu = train_values(embedded, "full", "tiny_hand"), train_values(embedded, "full", "tiny_hand", "cuda")
    assert (cpu["batch_size"], cpu.get("lr")) == (32, None)
    assert (gpu["batch_size"], gpu["lr"]) == (128, 2e-2) and gpu["steps"] == cpu["steps"]
    # A driver handing GPU runs to a cluster need not have a GPU itself; every other field is still checked.
    plan = plan_suite("embedded", device="cuda", check_device=False)
    assert {c.device for c in plan.configs} == {"cuda"} and {c.batch_size for c in plan.configs} == {64}
    with pytest.raises(UsageError, match="--seeds must be >= 1"):
        plan_suite("embedded", device="cuda", seeds=0, check_device=False)


def test_events_count_a_retried_run_once_and_write_its_record(tmp_path):
    cfg = TrainConfig(model="tiny_hand", steps=40, batch_size=2).validate()
    [run] = plan_runs([cfg], lambda _: 1.0)
    log = io.StringIO()
    bar = SuiteProgress("t", 0, 1, stream=log)
    bar.start_training(run.cost_ms)
    events = Events([run], tmp_path, bar)
    events.steps(run.key, 0)
    events.steps(run.key, 1)
    events.steps(run.key, 25)
    assert bar.running == 1 and bar.done_cost == 25 * run.cost_per_step
    events.steps(run.key, 0)  # the worker died; the retry resumes from its step-20 checkpoint
    events.steps(run.key, 21)
    assert bar.done_cost == 25 * run.cost_per_step  # nothing counted twice
    record = worker.failed_record(cfg, "boom")
    events.finished(run.key, record)
    assert events.attempts[run.key] == [1, 21] and bar.running == 0 and bar.done_cost == run.cost_ms
    assert results.read_run(results.record_path(tmp_path, run.key))["error"] == "boom"
    assert "started again (attempt 2)" in log.getvalue() and "FAILED tiny_hand aux=on seed=0: boom" in log.getvalue()
    assert "t: trained 0/1, 1 running" in log.getvalue()


def test_executor_choice_and_its_errors(monkeypatch):
    assert isinstance(make_executor(), LocalExecutor)
    assert make_executor(jobs=3).describe(10) == "3 at a time"
    with pytest.raises(UsageError, match="--executor 'dask' is not one of local, ray"):
        make_executor("dask")
    with pytest.raises(UsageError, match="--ray-address 'h:6379' needs --executor ray"):
        make_executor("local", ray_address="h:6379")
    with pytest.raises(UsageError, match="--jobs must be >= 1, got 0"):
        make_executor("ray", jobs=0)
    monkeypatch.setitem(sys.modules, "ray", None)  # as when Ray is not installed
    monkeypatch.delitem(sys.modules, "effbench.matrix.ray_executor", raising=False)
    with pytest.raises(UsageError, match=r"--executor ray needs Ray.*pip install -e \"\.\[ray\]\""):
        make_executor("ray")


def test_suite_without_ray_says_how_to_install_it(monkeypatch, tmp_path, capsys):
    monkeypatch.setitem(sys.modules, "ray", None)
    monkeypatch.delitem(sys.modules, "effbench.matrix.ray_executor", raising=False)
    assert main(["--suite", "smoke", "--executor", "ray", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: --executor ray needs Ray") and "\n" not in err
    assert not (tmp_path / "runs").exists()  # nothing ran


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
@pytest.mark.parametrize("command", [["--suite", "smoke"], ["train", "--suite", "smoke"]])
def test_cuda_without_a_gpu_is_one_line_exit_2(command, tmp_path, capsys):
    assert main([*command, "--device", "cuda", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err == "error: device 'cuda' requested but torch.cuda.is_available() is False; use --device cpu"


def test_default_install_never_imports_ray():
    """``bench.py --suite`` with the local executor needs no Ray: nothing on its path imports it."""
    import subprocess

    code = ("import sys; sys.modules['ray'] = None\n"  # an import of ray would raise
            "from effbench.cli import build_parser\n"
            "from effbench.matrix import make_executor\n"
            "import effbench.suite_run, effbench.matrix.local\n"
            "build_parser(); make_executor('local', jobs=2)\n")
    subprocess.run([sys.executable, "-c", code], check=True)
