"""Training runs end to end on the real SyntheticHands and the registered tiny_hand, at 48 x 64 to stay quick:
overfitting, determinism, resume after a kill, skipping finished runs, NaN failures, the CLI."""

import json

import pytest
import torch

from effbench import registry
from effbench.cli import main
from effbench.errors import UsageError
from effbench.evaluate import evaluate
from effbench import results
from effbench.data import load_split
from effbench.train import TrainConfig, run, run_many

SMALL = {"height": 48, "width": 64}


def small(cache, **kw) -> TrainConfig:
    values = dict(
        model="tiny_hand", steps=20, batch_size=8, lr=1e-2, warmup_steps=5, train_size=16, val_size=8, test_size=8,
        data_config=SMALL, data_cache_dir=cache, checkpoint_every=10,
    )
    return TrainConfig(**{**values, **kw})


def test_overfits_a_handful_of_frames(cache, tmp_path):
    cfg = small(cache, aux=False, augment=False, train_size=4, batch_size=4, steps=200, warmup_steps=10,
                weight_decay=0.0, val_size=0, checkpoint_every=0)
    record = run(cfg, tmp_path, progress=False)
    assert record["status"] == "ok", record["error"]
    model = registry.create_model("tiny_hand")
    model.load_state_dict(results.load_checkpoint(results.checkpoint_path(tmp_path, cfg.hash()))["model"])
    train = load_split("train", cfg.train_size, cfg)
    metrics = evaluate(model.deployable(), {**train, "mask": train["mask"].float()}, aux=False)
    assert metrics["epe_px"] < 1.0


class _Kill(BaseException):
    """Stands for the process being killed: not an Exception, so the run does not record it as a failure."""


def test_resume_after_kill_equals_uninterrupted_and_same_seed_same_metrics(cache, tmp_path, monkeypatch):
    # GradNorm, aux tasks and augmentation: every piece of state a checkpoint must carry is in play.
    cfg = small(cache, aux=True, balancing="gradnorm", augment=True)
    straight = run(cfg, tmp_path / "a", progress=False)
    again = run(cfg, tmp_path / "b", progress=False)
    assert straight["status"] == again["status"] == "ok"
    assert again["metrics"] == straight["metrics"]  # determinism: same seed, same machine, same numbers

    def kill_at_13(step):
        if step == 13:
            raise _Kill

    with pytest.raises(_Kill):
        run(cfg, tmp_path / "c", progress=False, on_step=kill_at_13)
    assert not results.record_path(tmp_path / "c", cfg.hash()).exists()
    assert results.load_checkpoint(results.checkpoint_path(tmp_path / "c", cfg.hash()))["step"] == 10

    loads = []
    real_load = torch.load
    monkeypatch.setattr(torch, "load", lambda *a, **kw: loads.append(kw.get("weights_only")) or real_load(*a, **kw))
    resumed = run(cfg, tmp_path / "c", progress=False)
    assert loads == [True]
    assert resumed["status"] == "ok"
    assert resumed["metrics"] == straight["metrics"]
    assert set(resumed["metrics"]) >= {"epe_px", "mask_iou", "vis_f1", "keypose_acc", "handedness_acc"}
    assert resumed["metrics"]["mask_iou"] is not None


def test_run_paused_at_its_deadline_resumes_to_the_uninterrupted_result(cache, tmp_path, monkeypatch):
    """A deadline stops the run at the end of the step that passes it, checkpointed there (step 13, between the
    step-10 and step-20 checkpoints), with nothing recorded; run again, it takes the same steps as one run straight
    through. A deadline already past returns before any work."""
    import time

    cfg = small(cache, aux=True, augment=True, eval_every=4)
    straight = run(cfg, tmp_path / "a", progress=False)
    clock = {"now": 1000.0}
    monkeypatch.setattr(time, "time", lambda: clock["now"])

    def pass_the_deadline_at_13(step):
        if step == 13:
            clock["now"] = 2000.0

    paused = run(cfg, tmp_path / "b", progress=False, on_step=pass_the_deadline_at_13, deadline=1500.0)
    assert paused["status"] == results.PAUSED and paused["step"] == 13
    assert "time limit reached at step 13" in paused["error"]
    assert not results.record_path(tmp_path / "b", cfg.hash()).exists()
    assert results.load_checkpoint(results.checkpoint_path(tmp_path / "b", cfg.hash()))["step"] == 13

    clock["now"] = 3000.0
    late = run(cfg, tmp_path / "b", progress=False, deadline=2500.0)
    assert late["status"] == results.PAUSED and late["step"] is None
    assert results.load_checkpoint(results.checkpoint_path(tmp_path / "b", cfg.hash()))["step"] == 13

    resumed = run(cfg, tmp_path / "b", progress=False)
    assert resumed["status"] == "ok"
    assert resumed["metrics"] == straight["metrics"]
    assert [(p["step"], p["val_epe_px"]) for p in resumed["curve"]] == [
        (p["step"], p["val_epe_px"]) for p in straight["curve"]]

    # A finished run of an earlier form of the model, past the deadline: nothing is deleted (it trains again later).
    stale = {**straight, "model_fingerprint": "0" * 12}
    results.write_json(results.record_path(tmp_path / "a", cfg.hash()), stale)
    assert run(cfg, tmp_path / "a", progress=False, deadline=2500.0)["status"] == results.PAUSED
    assert results.checkpoint_path(tmp_path / "a", cfg.hash()).exists()


def test_distillation_from_a_finished_run_of_the_same_folder(cache, tmp_path):
    """A student names its teacher by config hash: the teacher's tested weights shape its heatmaps (so it ends
    elsewhere than without a teacher), and a teacher that is not there fails the student's run, saying so."""
    teacher = small(cache, aux=False, steps=10, checkpoint_every=0, seed=3)
    student = small(cache, aux=False, steps=6, checkpoint_every=0, teacher=teacher.hash(), w_distill=5.0)
    lonely = run(student, tmp_path / "empty", progress=False)
    assert lonely["status"] == "failed" and f"teacher run {teacher.hash()} has no record" in lonely["error"]
    assert run(teacher, tmp_path, progress=False)["status"] == "ok"
    taught = run(student, tmp_path, progress=False)
    plain = run(student.replace(teacher=""), tmp_path, progress=False)
    assert taught["status"] == plain["status"] == "ok"
    assert taught["metrics"]["final_train_loss"] != plain["metrics"]["final_train_loss"]
    assert taught["metrics"]["epe_px"] != plain["metrics"]["epe_px"]


def test_finished_run_is_skipped(cache, tmp_path):
    cfg = small(cache, aux=False, steps=4, checkpoint_every=0, val_size=0)
    first = run(cfg, tmp_path, progress=False)
    assert first["status"] == "ok"
    assert tuple(first) == tuple(results.RunRecord.__annotations__) and first["schema"] == results.SCHEMA
    assert first["config"] == cfg.to_dict() and first["config_hash"] == cfg.hash()
    assert first["steps_per_s"] > 0 and first["wall_s"] > 0 and first["commit"]
    assert first["metrics"]["mask_iou"] is None  # no aux: no aux metrics

    def must_not_train(step):
        raise AssertionError("a finished run trained again")

    assert run(cfg, tmp_path, progress=False, on_step=must_not_train) == first
    assert sorted(p.name for p in tmp_path.glob("*.json")) == [f"{cfg.hash()}.json"]


def test_run_of_a_changed_model_trains_again(cache, tmp_path):
    """A record names its model, not what the model was: once the layers change, the run is not reused, and the
    old checkpoint is not loaded into the new layers."""
    from architectures.tiny_hand import TinyHandConfig, _create_tiny_hand

    widths = {"factor": 1.0}

    @registry.register_model
    def _test_changing_hand(**kwargs):
        return _create_tiny_hand(TinyHandConfig().scaled(widths["factor"]), **kwargs)

    try:
        cfg = small(cache, model="_test_changing_hand", aux=False, steps=4, checkpoint_every=2, val_size=0)
        first = run(cfg, tmp_path, progress=False)
        assert first["status"] == "ok" and len(first["model_fingerprint"]) == 12
        steps = []
        assert run(cfg, tmp_path, progress=False, on_step=steps.append) == first and steps == []  # unchanged: reused

        widths["factor"] = 0.5
        second = run(cfg, tmp_path, progress=False, on_step=steps.append)
        assert second["status"] == "ok", second["error"]
        assert steps == [1, 2, 3, 4]  # trained from the start, not resumed from the old weights
        assert second["model_fingerprint"] != first["model_fingerprint"]
        assert results.read_run(results.record_path(tmp_path, cfg.hash())) == second
    finally:
        registry._models.pop("_test_changing_hand")


def test_model_fingerprint_follows_layers_not_weights():
    a, b = registry.create_model("tiny_hand"), registry.create_model("tiny_hand")
    torch.nn.init.zeros_(b.net.heatmap.weight)
    assert results.model_fingerprint(a) == results.model_fingerprint(b)
    assert results.model_fingerprint(a) != results.model_fingerprint(registry.create_model("tiny_hand_dil"))
    assert results.model_fingerprint(a) != results.model_fingerprint(registry.create_model("tiny_hand_slim"))


@pytest.fixture
def nan_model():
    """A registered model whose keypoints are NaN: its loss is NaN at the first step."""

    @registry.register_model
    def _test_nan_hand(**kwargs):
        model = registry.create_model("tiny_hand")
        model.net.softargmax.register_forward_hook(lambda mod, inp, out: out * float("nan"))
        return model

    yield "_test_nan_hand"
    registry._models.pop("_test_nan_hand")


def test_nan_loss_fails_the_run_and_the_suite_goes_on(cache, tmp_path, nan_model):
    bad = small(cache, model=nan_model, aux=False, steps=3, val_size=0)
    good = small(cache, aux=False, steps=3, val_size=0)
    records = run_many([bad, good], tmp_path, progress=False)
    assert [r["status"] for r in records] == ["failed", "ok"]
    assert records[0]["error"] == "NonFiniteLoss: loss became nan at step 1"
    assert all(v is None for v in records[0]["metrics"].values())
    assert results.read_run(results.record_path(tmp_path, bad.hash()))["status"] == "failed"


def test_run_many_validates_every_config_before_running(tmp_path):
    with pytest.raises(UsageError, match="steps must be > 0"):
        run_many([TrainConfig(steps=5), TrainConfig(steps=0)], tmp_path)
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--model", "tiny_hand", "--aux", "maybe"], "--aux 'maybe' is not one of on, off, both"),
        (["--model", "tiny_hand", "--steps", "0"], "steps must be > 0, got 0"),
        (["--model", "tiny_hnd"], "unknown model 'tiny_hnd'; closest: tiny_hand"),
        (["--steps", "5"], "give --model NAME or --suite NAME"),
        (["--suite", "nope"], "unknown suite 'nope'"),
        (["--model", "tiny_hand", "--balancing", "magic"], "balancing 'magic' is not one of"),
        (["--model", "tiny_hand", "--hours", "0"], "--hours must be a number of hours > 0, got 0.0"),
        (["--suite", "embedded", "--budget", "full", "--seed", "3"], "--seed 3 with --budget needs --seeds N"),
    ],
)
def test_cli_bad_input_is_one_line_exit_2(argv, message, capsys, tmp_path):
    assert main(["train", "--out", str(tmp_path), *argv]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cli_cuda_unavailable_exit_2(capsys, tmp_path):
    assert main(["train", "--model", "tiny_hand", "--device", "cuda", "--out", str(tmp_path)]) == 2
    assert "torch.cuda.is_available() is False" in capsys.readouterr().err


def test_cli_suite_runs_every_model_and_aux_and_exits_1_on_failure(cache, tmp_path, nan_model, capsys):
    registry.register_suite(registry.Suite("_test_suite", ("tiny_hand", nan_model), settings={"train": {"steps": 2}}))
    try:
        argv = ["train", "--suite", "_test_suite", "--seeds", "1", "--out", str(tmp_path), "--no-progress",
                "--batch-size", "4", "--train-size", "8", "--val-size", "0", "--test-size", "4",
                "--data-config", json.dumps(SMALL), "--data-cache", cache]
        assert main(argv) == 1
    finally:
        registry._suites.pop("_test_suite")
    records = results.load_records(tmp_path)
    runs = sorted((r["config"]["model"], r["config"]["aux"], r["status"]) for r in records)
    assert runs == [(nan_model, False, "failed"), (nan_model, True, "failed"), ("tiny_hand", False, "ok"),
                    ("tiny_hand", True, "ok")]
    assert all(r["config"]["steps"] == 2 and r["config"]["batch_size"] == 4 for r in records)  # suite, then flags
    out = capsys.readouterr().out
    assert "tiny_hand aux=on seed=0: ok" in out and "NonFiniteLoss" in out


def test_cli_suite_with_a_budget_trains_the_budgets_runs():
    """``train --suite --budget`` names the runs ``bench.py run`` trains (seeds per model, ablations); ``--seeds``
    and the flags still override."""
    from effbench.cli import build_parser
    from effbench.cli.train_cmd import build_configs
    from effbench.suite_run import plan_suite

    def configs(*extra):
        return build_configs(build_parser().parse_args(["train", "--suite", "embedded", "--budget", "full", *extra]))

    planned = plan_suite("embedded", budget="full").configs
    assert [c.hash() for c in configs()] == [c.hash() for c in planned]
    assert {c.seed for c in configs() if c.model == "mobilenet_v2_100"} == {0, 1, 2}
    assert {c.aux_tasks for c in configs() if c.model == "tiny_hand_crop" and c.aux} > {"seg", "hand"}
    off = configs("--aux", "off", "--eval-every", "500")
    assert {c.hash() for c in off} == {c.replace(eval_every=500).hash() for c in planned if not c.aux}
    one = configs("--seeds", "1")
    assert {c.seed for c in one} == {0} and len(one) == 2 * len({c.model for c in planned})


@pytest.mark.parametrize("model", registry.get_suite("embedded").models())
def test_every_hand_pose_model_takes_a_training_step(model, cache, tmp_path):
    """Each model of the embedded suite: two steps with every auxiliary loss and GradNorm, then evaluation."""
    cfg = small(cache, model=model, aux=True, balancing="gradnorm", steps=2, batch_size=2, train_size=4,
                val_size=0, test_size=2, checkpoint_every=0)
    record = run(cfg, tmp_path, progress=False)
    assert record["status"] == "ok", record["error"]
    assert record["metrics"]["epe_px"] is not None and record["metrics"]["mask_iou"] is not None
