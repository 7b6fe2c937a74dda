"""``bench.py --suite smoke`` end to end into a temporary folder, the rebuilt report, a failing model, and a model
registered at another input size. All but the usage errors train, so they are marked slow."""

from __future__ import annotations

import json
import shutil
import time

import pytest
from PIL import Image

from effbench import registry
from effbench.cli import main
from effbench.errors import UsageError
from effbench.report.pareto import PNG_SIZE
from effbench.suite_run import plan_suite, run_suite
from report_helpers import FILES, PNGS, check_tables_against_results, read_table


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    out = tmp_path_factory.mktemp("smoke")
    t0 = time.perf_counter()
    code = main(["--suite", "smoke", "--out", str(out), "--jobs", "1", "--no-progress"])
    return out, code, time.perf_counter() - t0


@pytest.mark.slow
def test_smoke_suite_end_to_end(smoke):
    out, code, wall = smoke
    assert code == 0
    for name in FILES:
        assert (out / name).is_file(), name
    for name in PNGS:
        with Image.open(out / name) as im:
            assert im.format == "PNG" and im.size == PNG_SIZE
    plan = plan_suite("smoke")
    manifest = json.loads((out / "runs" / "suite" / "manifest.json").read_text())
    assert [r["config_hash"] for r in manifest["runs"]] == [c.hash() for c in plan.configs]
    for cfg in plan.configs:
        record = json.loads((out / "runs" / f"{cfg.hash()}.json").read_text())
        assert record["status"] == "ok", record["error"]
    for model in plan.models:
        assert json.loads((out / "runs" / "suite" / f"profile-{model}.json").read_text())["status"] == "ok"
    rows = json.loads((out / "results.json").read_text())
    assert len(rows) == len(plan.configs)
    # The runs trained one after the other inside the suite: their recorded wall times fit in the suite's. (The
    # suite itself takes <= 60 s on an idle 2-core machine; a shared CI runner can take several times that.)
    run_walls = [row["run_wall_s"] for row in rows]
    assert all(w > 0 for w in run_walls) and sum(run_walls) < wall


@pytest.mark.slow
def test_smoke_tables_match_results(smoke):
    out, _, _ = smoke
    check_tables_against_results(out)
    md = (out / "report.md").read_text()
    assert "## Failures" in md and "_(none)_" in md.split("## Failures")[1]


@pytest.mark.slow
def test_rebuilt_report_is_identical(smoke, tmp_path):
    out, _, _ = smoke
    assert main(["report", "--runs", str(out / "runs"), "--out", str(tmp_path)]) == 0
    for name in FILES:
        assert (tmp_path / name).read_bytes() == (out / name).read_bytes(), name


@pytest.mark.slow
def test_failing_model_is_reported_and_suite_goes_on(smoke, tmp_path):
    """A model that raises is recorded as failed with its error; the rest is complete; exit code 1.

    The suite reuses the smoke run's tiny_hand records (copied), so it also checks that finished runs are reused.
    """
    out, _, _ = smoke
    smoke_suite = registry.get_suite("smoke")

    @registry.register_model
    def _test_broken_model(**kwargs):
        raise RuntimeError("broken on purpose")

    registry.register_suite(
        registry.Suite("_test_failing", ("tiny_hand", "_test_broken_model"), "tiny_hand", smoke_suite.settings)
    )
    try:
        shutil.copytree(out / "runs", tmp_path / "runs", ignore=shutil.ignore_patterns("suite"))
        before = {p.name: p.read_bytes() for p in (tmp_path / "runs").glob("*.json")}
        result = run_suite("_test_failing", tmp_path, latency=False, progress=False, jobs=1, log=lambda _: None)
        assert result.exit_code == 1
        assert len(result.failed) == 1 + 2 * result.plan.seeds["_test_broken_model"]
        assert all("broken on purpose" in line for line in result.failed)
        tiny = [c.hash() for c in result.plan.configs if c.model == "tiny_hand"]
        for h in tiny:  # reused: the very same record bytes
            assert (tmp_path / "runs" / f"{h}.json").read_bytes() == before[f"{h}.json"]
        md = (tmp_path / "report.md").read_text()
        cost = {r["model"]: r for r in read_table(md, "## Cost of the deployable models")}
        assert cost["_test_broken_model"]["MACs (M)"] == "failed: RuntimeError: broken on purpose"
        assert cost["tiny_hand"]["MFLOPs"] != "-"
        acc = {r["model"]: r for r in read_table(md, "## Accuracy without and with auxiliary tasks")}
        assert acc["_test_broken_model"]["EPE px on"].startswith("failed: RuntimeError: broken on purpose")
        assert acc["tiny_hand"]["EPE px on"][0].isdigit()
        failures = read_table(md, "## Failures")
        assert {f["model"] for f in failures} == {"_test_broken_model"} and len(failures) == len(result.failed)
        check_tables_against_results(tmp_path)
        for name in FILES:
            assert (tmp_path / name).is_file()
    finally:
        registry._models.pop("_test_broken_model", None)
        registry._suites.pop("_test_failing", None)


def test_bad_budget_and_suite_exit_2(capsys):
    assert main(["--suite", "smoke", "--budget", "quik", "--out", "/nonexistent/x"]) == 2
    assert "has no budget 'quik'; closest: quick" in capsys.readouterr().err
    assert main(["--suite", "smok"]) == 2
    with pytest.raises(UsageError, match="--seeds must be >= 1"):
        plan_suite("smoke", seeds=0)


@pytest.mark.slow
def test_fresh_ignores_finished_runs(smoke, tmp_path, monkeypatch):
    """``--fresh``: every planned run's record and checkpoint are gone before effbench.train.run sees the config."""
    import effbench.train
    from effbench.results import checkpoint_path, make_run_record, record_path

    out, _, _ = smoke
    shutil.copytree(out / "runs", tmp_path / "runs")
    seen = []

    def fake_run(cfg, runs_dir, **kwargs):
        seen.append(record_path(runs_dir, cfg.hash()).exists() or checkpoint_path(runs_dir, cfg.hash()).exists())
        return make_run_record(cfg.to_dict(), cfg.hash(), status="failed", error="fake", metrics={}, device="cpu",
                               wall_s=0.0, steps_per_s=None)  # fmt: skip

    monkeypatch.setattr(effbench.train, "run", fake_run)
    result = run_suite("smoke", tmp_path, fresh=True, latency=False, progress=False, jobs=1, log=lambda _: None)
    assert seen == [False] * len(result.plan.configs)
    assert result.exit_code == 1 and all(line.endswith("fake") for line in result.failed)


@pytest.mark.slow
def test_time_limit_reports_what_finished_and_the_next_run_resumes(smoke, tmp_path, monkeypatch):
    """``--hours``: past the limit no run starts (here two, in a pool of two workers); the report is built from the
    finished runs, says it is an interim one and shows the rest as pending (no failure), the exit code is 75, and
    the same command then trains the rest."""
    import os

    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    out, _, _ = smoke
    shutil.copytree(out / "runs", tmp_path / "runs")
    plan = plan_suite("smoke")
    left = plan.configs[-2:]
    for cfg in left:
        (tmp_path / "runs" / f"{cfg.hash()}.json").unlink()
    argv = ["--suite", "smoke", "--out", str(tmp_path), "--no-latency", "--no-progress"]
    with monkeypatch.context() as m:  # past the limit, no data is generated for runs that will not start
        m.setattr("effbench.data.load_split", lambda *a, **k: pytest.fail("data prepared past the time limit"))
        assert main([*argv, "--hours", "1e-9"]) == 75  # 3.6 microseconds: over before training begins
    assert not any((tmp_path / "runs" / f"{cfg.hash()}.json").exists() for cfg in left)
    md = (tmp_path / "report.md").read_text()
    total = len(plan.configs)
    assert f"**Interim report: {total - 2} of {total} planned runs trained, 2 pending.**" in md
    assert "_(none)_" in md.split("## Failures")[1]
    rows = json.loads((tmp_path / "results.json").read_text())
    assert sorted(row["status"] for row in rows) == ["ok"] * (total - 2) + ["pending"] * 2
    assert main(argv) == 0
    for cfg in left:
        assert json.loads((tmp_path / "runs" / f"{cfg.hash()}.json").read_text())["status"] == "ok"
    assert "Interim report" not in (tmp_path / "report.md").read_text()


@pytest.mark.slow
def test_a_run_of_an_earlier_form_of_its_model_stands_as_pending(smoke, tmp_path):
    """The manifest names what each model is now; a stored run of the model before a change to its layers is not
    reported as the model's (it stands as pending, and its record stays until the run is trained again)."""
    from effbench.report import build_report
    from effbench.results import load_store
    from effbench.results.store import SUPERSEDED

    out, _, _ = smoke
    shutil.copytree(out / "runs", tmp_path / "runs")
    manifest = json.loads((tmp_path / "runs" / "suite" / "manifest.json").read_text())
    assert set(manifest["fingerprints"]) == {"tiny_hand", "mobilenet_v2_035"}
    stale = plan_suite("smoke").configs[0]
    path = tmp_path / "runs" / f"{stale.hash()}.json"
    record = json.loads(path.read_text())
    assert record["model_fingerprint"] == manifest["fingerprints"][stale.model]
    record["model_fingerprint"] = "0" * 12
    path.write_text(json.dumps(record))
    runs = {r["config_hash"]: r for r in load_store(tmp_path / "runs").runs}
    assert runs[stale.hash()]["status"] == "pending" and runs[stale.hash()]["error"] == SUPERSEDED
    assert [r["status"] for k, r in runs.items() if k != stale.hash()] == ["ok"] * (len(runs) - 1)
    build_report(tmp_path / "runs", tmp_path)
    total = len(runs)
    assert f"**Interim report: {total - 1} of {total} planned runs trained, 1 pending.**" in (
        tmp_path / "report.md").read_text()
    assert path.exists()


@pytest.mark.slow
def test_parallel_jobs_train_the_same_runs(smoke, tmp_path, monkeypatch):
    """``--jobs 2`` trains every planned run in worker processes; each ends where the sequential run did, both on
    one thread per run (a suite trains on one thread, in this process or in each worker). On 1 and 2 threads a
    12-step run at lr 1e-2 can end a few percent apart (float summation order)."""
    import os

    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    out, _, _ = smoke
    assert main(["--suite", "smoke", "--out", str(tmp_path), "--jobs", "2", "--no-latency", "--no-progress"]) == 0
    for cfg in plan_suite("smoke").configs:
        parallel = json.loads((tmp_path / "runs" / f"{cfg.hash()}.json").read_text())
        sequential = json.loads((out / "runs" / f"{cfg.hash()}.json").read_text())
        assert parallel["status"] == "ok", parallel["error"]
        assert parallel["metrics"]["epe_px"] == pytest.approx(sequential["metrics"]["epe_px"], rel=1e-3)
    assert main(["--suite", "smoke", "--out", str(tmp_path), "--jobs", "0"]) == 2


@pytest.mark.slow
def test_model_registered_at_another_input_size_trains_on_frames_of_that_size(tmp_path):
    """The suite gives each model data at its registered input size (the budget names no size): a model registered
    at 1x1x60x80 is profiled at 60 x 80 and trains and evaluates on 60 x 80 frames."""
    from architectures.tiny_hand import _create_tiny_hand
    from effbench.data import load_split

    @registry.register_model(input_shape=(1, 1, 60, 80))
    def _test_hand_60x80(**kwargs):
        return _create_tiny_hand(**kwargs)

    budget = {"train": {"steps": 2, "batch_size": 4, "warmup_steps": 1, "train_size": 8, "val_size": 0,
                        "test_size": 4, "eval_batch_size": 4}, "seeds": {"default": 1}}
    registry.register_suite(registry.Suite("_test_sizes", ("_test_hand_60x80",), settings={"budgets": {"b": budget}}))
    try:
        result = run_suite("_test_sizes", tmp_path, budget="b", latency=False, progress=False, jobs=1,
                           log=lambda _: None)
        assert result.exit_code == 0, result.failed
        profile = json.loads((tmp_path / "runs" / "suite" / "profile-_test_hand_60x80.json").read_text())
        assert profile["input_shape"] == [1, 1, 60, 80] and profile["profile"]["input_shape"] == "1x1x60x80"
        for cfg in result.plan.configs:
            assert cfg.data_config == {"height": 60, "width": 80}
            record = json.loads((tmp_path / "runs" / f"{cfg.hash()}.json").read_text())
            assert record["status"] == "ok" and record["metrics"]["epe_px"] is not None
            assert load_split("test", cfg.test_size, cfg)["depth"].shape[-2:] == (60, 80)
    finally:
        registry._models.pop("_test_hand_60x80", None)
        registry._suites.pop("_test_sizes", None)


@pytest.mark.slow
def test_distilled_runs_train_after_their_teachers(tmp_path, monkeypatch):
    """A budget's ``distill: {student: teacher}`` adds the student's aux-on runs again with the teacher's aux-on run
    of the same seed as teacher; they train in a second wave, once the teachers' weights are in the store (here in
    a pool of two workers, which would otherwise start them together)."""
    import os

    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    budget = {"train": {"steps": 4, "batch_size": 4, "warmup_steps": 1, "train_size": 8, "val_size": 0,
                        "test_size": 4, "eval_batch_size": 4, "data_config": {"height": 48, "width": 64}},
              "seeds": {"default": 1}, "distill": {"tiny_hand": "tiny_hand_slim"}}
    registry.register_suite(registry.Suite("_test_distil", ("tiny_hand", "tiny_hand_slim"),
                                           settings={"budgets": {"b": budget}}))
    try:
        result = run_suite("_test_distil", tmp_path, budget="b", latency=False, progress=False, log=lambda _: None)
        assert result.exit_code == 0, result.failed
        *plain, student = result.plan.configs
        teacher = next(c for c in plain if c.model == "tiny_hand_slim" and c.aux)
        assert (student.model, student.aux, student.teacher) == ("tiny_hand", True, teacher.hash())
        record = json.loads((tmp_path / "runs" / f"{student.hash()}.json").read_text())
        assert record["status"] == "ok", record["error"]
        assert "on + distilled" in (tmp_path / "report.md").read_text()
        # `train --suite --budget` trains the same runs, students after teachers too.
        argv = ["train", "--suite", "_test_distil", "--budget", "b", "--jobs", "2", "--no-progress"]
        assert main([*argv, "--out", str(tmp_path / "train")]) == 0
        record = json.loads((tmp_path / "train" / f"{student.hash()}.json").read_text())
        assert record["status"] == "ok", record["error"]
    finally:
        registry._suites.pop("_test_distil", None)


def test_a_distillation_needs_the_teachers_runs():
    budget = {"train": {"steps": 4}, "seeds": {"default": 1, "tiny_hand": 2}, "distill": {"tiny_hand": "tiny_hand_slim"}}
    registry.register_suite(registry.Suite("_test_distil_bad", ("tiny_hand", "tiny_hand_slim"),
                                           settings={"budgets": {"b": budget}}))
    try:
        with pytest.raises(UsageError, match="the teacher 'tiny_hand_slim' has no run for seed 1 of 'tiny_hand'"):
            plan_suite("_test_distil_bad", budget="b")
    finally:
        registry._suites.pop("_test_distil_bad", None)


def test_the_two_stage_net_has_its_own_recipe():
    # Its crop's side comes from the hand's distance: a zoom or a depth shift that keeps the image would show it a
    # hand whose size does not match its distance; its noisy first plateau wants a longer patience, and so a higher
    # cap. The other models keep the suite's recipe (and the hashes of their stored runs).
    plan = plan_suite("embedded", budget="full")
    physical = {c.model for c in plan.configs if c.augment_physical}
    assert physical == {"tiny_hand_crop"}
    assert {c.patience for c in plan.configs if c.model != "tiny_hand_crop"} == {6}
    assert plan.manifest()["model_train"]["tiny_hand_crop"] == {"augment_physical": True, "patience": 24,
                                                                "steps": 100_000}
    assert "mobilenet_v2_100" not in plan.manifest()["model_train"]
    # One cap for the other models, high enough that each may train until it converges.
    assert {c.steps for c in plan.configs if c.model != "tiny_hand_crop"} == {40000}
    quick = plan_suite("embedded", budget="quick")
    assert {c.steps for c in quick.configs} == {150}
