"""The learning curve: plateau bookkeeping by hand, the still-improving flag, and on real runs (48 x 64 frames):
the curve recorded and resumed with the run, the plateau schedule stopping, the best-validation weights restored."""

import pytest
import torch

from effbench import results
from effbench.train import TrainConfig, run
from effbench.train.curve import Curve, still_improving
from effbench.train.loop import lr_at


def small(cache, **kw) -> TrainConfig:
    values = dict(model="tiny_hand", aux=False, steps=24, batch_size=8, lr=1e-2, warmup_steps=4, train_size=16,
                  val_size=8, test_size=8, data_config={"height": 48, "width": 64}, data_cache_dir=cache,
                  checkpoint_every=8, eval_every=4)
    return TrainConfig(**{**values, **kw})


class Kill(BaseException):
    """Stands for a killed process (not an Exception, so a run does not record it as a failure)."""


def kill_at(step: int):
    """An ``on_step`` callback that kills the run after ``step`` steps."""

    def on_step(done: int) -> None:
        if done == step:
            raise Kill

    return on_step


def test_curve_best_and_plateau_by_hand():
    curve = Curve(patience=2, min_delta=0.1)
    assert curve.add(1, 5.0, 10.0, 0.1)  # first point: the best
    assert curve.add(2, 5.0, 9.5, 0.2)  # a new best, but under 10% better: counts towards the plateau
    assert curve.best_epe == 9.5 and curve.best_step == 2 and curve.since_best == 1
    assert not curve.plateaued()
    assert not curve.add(3, 5.0, None, 0.3)  # a diverged point is never the best
    assert curve.plateaued() and curve.plateaus == 1 and curve.since_best == 0
    assert curve.add(4, 5.0, 8.0, 0.4) and curve.since_best == 0  # 8.0 < 9.5 * 0.9: a real improvement
    assert Curve.from_state(curve.state_dict()) == curve
    assert [p["step"] for p in curve.points] == [1, 2, 3, 4]
    assert not Curve(patience=0).plateaued()


def points(epes):
    return [{"step": 100 * (i + 1), "val_epe_px": e} for i, e in enumerate(epes)]


def test_still_improving_compares_the_last_two_fifths():
    # steps 100..1000: the fourth fifth is steps 700-800, the last fifth 900-1000.
    assert still_improving(points([9, 8, 7, 6, 5, 4.0, 3.0, 3.0, 2.9, 2.8])) is True  # 2.8 < 3.0 * 0.98
    assert still_improving(points([9, 8, 7, 6, 5, 4.0, 3.0, 3.0, 2.95, 2.97])) is False  # 1.7% better
    assert still_improving(points([5.0, 4.0])) is None  # too short to tell
    assert still_improving([]) is None


def test_a_run_stopped_on_its_plateau_is_not_still_improving():
    # The fifths fall by 7% (a late learning-rate drop), but the run ended on its plateau rule: converged.
    falling = points([9, 8, 7, 6, 5, 4.0, 3.0, 3.0, 2.9, 2.8])
    assert still_improving(falling, stopped_on_plateau=True) is False
    assert still_improving(falling, stopped_on_plateau=False) is True


def test_plateau_schedule_divides_the_rate():
    cfg = TrainConfig(lr=1.0, warmup_steps=10, schedule="plateau", patience=3, steps=100)
    assert lr_at(0, cfg) == pytest.approx(0.1)
    assert lr_at(50, cfg) == 1.0 and lr_at(50, cfg, plateaus=2) == pytest.approx(0.01)


def test_curve_is_recorded_and_resumes_with_the_run(cache, tmp_path):
    cfg = small(cache)
    straight = run(cfg, tmp_path / "a", progress=False)
    assert straight["status"] == "ok", straight["error"]
    curve = straight["curve"]
    assert [p["step"] for p in curve] == [4, 8, 12, 16, 20, 24]
    assert all(p["val_epe_px"] > 0 and p["train_loss"] > 0 and p["wall_s"] > 0 for p in curve)
    best = min(curve, key=lambda p: p["val_epe_px"])
    assert straight["metrics"]["val_epe_px"] == best["val_epe_px"]
    assert straight["convergence"]["best_step"] == best["step"]
    assert straight["convergence"]["stop_step"] == 24 and not straight["convergence"]["stopped_on_plateau"]

    with pytest.raises(Kill):
        run(cfg, tmp_path / "b", progress=False, on_step=kill_at(13))
    strip = [{k: v for k, v in p.items() if k != "wall_s"} for p in curve]
    # Part-way: its checkpoint (step 8) says where it stands, its curve so far the straight run's first points.
    state = results.in_training(tmp_path / "b", cfg.hash())
    assert state["step"] == 8 and state["config"] == cfg.to_dict() and state["plateaus"] == 0
    assert [{k: v for k, v in p.items() if k != "wall_s"} for p in state["curve"]] == strip[:2]
    resumed = run(cfg, tmp_path / "b", progress=False)
    assert [{k: v for k, v in p.items() if k != "wall_s"} for p in resumed["curve"]] == strip
    assert resumed["metrics"] == straight["metrics"]
    assert results.in_training(tmp_path / "b", cfg.hash()) is None  # finished: its record says the rest


def test_plateau_stops_the_run_and_restores_the_best_weights(cache, tmp_path):
    # plateau_delta 0.5: after the first point nothing counts as an improvement (halving the EPE), so every two
    # points make a plateau, and the third (lr x1 -> x0.1 -> x0.01 -> below min_lr_ratio) ends the run long before
    # its cap of 400 steps: at point 1 + 3 x 2 = 7, step 28.
    cfg = small(cache, steps=400, warmup_steps=4, lr=5e-2, schedule="plateau", patience=2, min_lr_ratio=0.01,
                plateau_delta=0.5)
    record = run(cfg, tmp_path, progress=False)
    assert record["status"] == "ok", record["error"]
    conv = record["convergence"]
    assert conv["stopped_on_plateau"] and conv["plateaus"] == 3
    assert conv["stop_step"] == 4 * 7 and len(record["curve"]) == 7
    # The weights tested and saved are those of the best validation point, not the last ones.
    from effbench import registry
    from effbench.evaluate import keypoint_epe
    from effbench.data import load_split

    model = registry.create_model("tiny_hand")
    model.load_state_dict(results.load_checkpoint(results.checkpoint_path(tmp_path, cfg.hash()))["model"])
    val = load_split("val", cfg.val_size, cfg)
    best = min(p["val_epe_px"] for p in record["curve"])
    assert keypoint_epe(model.deployable(), {**val, "mask": val["mask"].float()}) == pytest.approx(best, abs=1e-4)
    assert record["metrics"]["val_epe_px"] == best


def test_a_run_capped_under_the_plateau_schedule_goes_on_under_a_higher_cap(cache, tmp_path, capsys):
    # patience 3 with delta 0.5: a plateau every three points, the third ends the run; a 12-step cap stops first.
    cfg = small(cache, steps=48, schedule="plateau", patience=3, plateau_delta=0.5, lr=5e-2)
    straight = run(cfg, tmp_path / "a", progress=False)
    assert straight["convergence"]["stopped_on_plateau"] and straight["convergence"]["stop_step"] > 12
    capped = run(cfg.replace(steps=12), tmp_path / "b", progress=False)
    assert capped["status"] == "ok" and not capped["convergence"]["stopped_on_plateau"]
    assert results.load_checkpoint(results.checkpoint_path(tmp_path / "b", cfg.replace(steps=12).hash()))["extension"]
    capsys.readouterr()
    extended = run(cfg, tmp_path / "b", progress=False)
    assert f"goes on from run {cfg.replace(steps=12).hash()}, which stopped at its cap of 12 steps" in (
        capsys.readouterr().err)
    strip = lambda curve: [{k: v for k, v in p.items() if k != "wall_s"} for p in curve]  # noqa: E731
    assert strip(extended["curve"]) == strip(straight["curve"])
    assert extended["metrics"] == straight["metrics"]
    assert extended["convergence"]["stop_step"] == straight["convergence"]["stop_step"]
    assert extended["wall_s"] > capped["wall_s"]  # the capped run's time counts in the longer one's
    # Interrupted before its cap (a checkpoint at step 8): its steps are the longer run's first ones too.
    with pytest.raises(Kill):
        run(cfg.replace(steps=12), tmp_path / "d", progress=False, on_step=kill_at(10))
    capsys.readouterr()
    taken_up = run(cfg, tmp_path / "d", progress=False)
    assert "interrupted at step 8" in capsys.readouterr().err
    assert strip(taken_up["curve"]) == strip(straight["curve"]) and taken_up["metrics"] == straight["metrics"]
    # The straight run stopped on its plateau rule: under any higher cap it would have too, so that is its result.
    capsys.readouterr()
    again = run(cfg.replace(steps=96), tmp_path / "a", progress=False)
    assert f"is run {cfg.hash()}'s: that stopped on its plateau" in capsys.readouterr().err
    assert strip(again["curve"]) == strip(straight["curve"]) and again["metrics"] == straight["metrics"]
    # A cosine run's rates depend on its cap: it keeps no state to go on from, and a longer one starts afresh.
    cosine = small(cache, steps=12)
    run(cosine, tmp_path / "c", progress=False)
    assert "extension" not in results.load_checkpoint(results.checkpoint_path(tmp_path / "c", cosine.hash()))


def test_auto_eval_interval_keeps_validation_under_five_percent():
    # 512 validation frames cost about 512 / (3 x 32) = 5.3 steps; under 5% needs >= 107 steps: 150.
    assert TrainConfig(val_size=512, batch_size=32).eval_interval() == 150
    assert TrainConfig(val_size=64, batch_size=32).eval_interval() == 50
    assert TrainConfig(val_size=0).eval_interval() == 0
    assert TrainConfig(val_size=512, eval_every=7).eval_interval() == 7


def test_an_aux_ablation_trains_only_its_tasks(cache, tmp_path):
    from effbench.errors import UsageError

    assert TrainConfig(aux_tasks="hand, seg").tasks() == ("keypoints", "seg", "hand")
    assert TrainConfig(aux=False, aux_tasks="hand").tasks() == ("keypoints",)
    for bad in ("hand,hand", "sge", ""):
        with pytest.raises(UsageError, match="aux_tasks"):
            TrainConfig(aux_tasks=bad).validate()
    # Only the handedness head and the shared layers learn: the other heads keep their initial weights.
    cfg = small(cache, aux=True, aux_tasks="hand", steps=4, eval_every=0, val_size=0, checkpoint_every=0)
    assert run(cfg, tmp_path, progress=False)["status"] == "ok"
    from effbench import registry

    torch.manual_seed(cfg.seed)
    init = registry.create_model("tiny_hand").state_dict()
    trained = results.load_checkpoint(results.checkpoint_path(tmp_path, cfg.hash()))["model"]
    assert torch.equal(trained["aux.keypose.weight"], init["aux.keypose.weight"])
    assert torch.equal(trained["aux.seg.weight"], init["aux.seg.weight"])
    assert not torch.equal(trained["aux.handedness.weight"], init["aux.handedness.weight"])


def test_runtime_eval_records_the_int8_model_next_to_fp32(cache, tmp_path):
    pytest.importorskip("onnxruntime")
    cfg = small(cache, steps=8, eval_every=0, val_size=0, checkpoint_every=0, runtime_eval=True)
    record = run(cfg, tmp_path, progress=False)
    assert record["status"] == "ok", record["error"]
    m = record["metrics"]
    # ONNX Runtime fp32 runs the same weights as the eager test: the same EPE to float precision.
    assert m["ort_epe_px"] == pytest.approx(m["epe_px"], rel=1e-4)
    assert m["ort_int8_epe_px"] > 0 and 0 <= m["ort_int8_pck5"] <= 1
