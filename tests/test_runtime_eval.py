"""Accuracy under each runtime: a briefly trained tiny net's EPE and PCK as ONNX Runtime fp32 and int8 run it."""

from __future__ import annotations

import pytest
import torch

from effbench import create_model, results
from effbench.data import SyntheticHands
from effbench.profiler import runtimes as rt
from effbench.runtime_eval import INT8_EPE_TOLERANCE, evaluate_runtimes, int8_epe_change
from effbench.train import TrainConfig, run

#: Small frames keep training and evaluation to seconds.
SCENE = {"height": 60, "width": 80}


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """tiny_hand trained for 150 steps on 60 x 80 frames, its test split, and frames of its training split."""
    out = tmp_path_factory.mktemp("runs")
    config = TrainConfig(model="tiny_hand", aux=False, steps=150, batch_size=16, warmup_steps=10, train_size=256,
                         val_size=0, test_size=64, data_config=SCENE, data_cache_dir=str(out / "data"))  # fmt: skip
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a tiny net trains faster on one thread, several times so on a shared machine
    try:
        record = run(config, out, progress=False)
    finally:
        torch.set_num_threads(threads)
    assert record["status"] == "ok", record["error"]
    model = create_model("tiny_hand")
    model.load_state_dict(results.load_checkpoint(results.checkpoint_path(out, config.hash()))["model"])
    data = {split: SyntheticHands(split, n, 0, cache_dir=out / "data", **SCENE).tensors()
            for split, n in (("train", 256), ("test", 64))}  # fmt: skip
    return model, data["test"], data["train"]["depth"][:32], record["metrics"]


def test_int8_next_to_fp32(trained):
    model, test, calibration, fp32_metrics = trained
    metrics = evaluate_runtimes(model, test, calibration=calibration)
    assert list(metrics) == ["eager", "ort", "ort-int8"]
    # The same metrics as the training run's own evaluation, for eager PyTorch (BatchNorm folded) and ONNX Runtime.
    assert metrics["eager"]["epe_px"] == pytest.approx(fp32_metrics["epe_px"], abs=1e-3)
    assert metrics["ort"]["epe_px"] == pytest.approx(fp32_metrics["epe_px"], abs=1e-3)
    assert metrics["ort"]["pck5"] == pytest.approx(fp32_metrics["pck5"], abs=1e-6)
    # Static int8, head in fp32, calibrated on the run's training frames: within the 2% design target here too.
    change = int8_epe_change(metrics)
    assert change is not None and abs(change) < INT8_EPE_TOLERANCE, f"int8 EPE {change:+.2%} against fp32"
    assert metrics["ort-int8"]["mask_iou"] is None  # keypoints only: the deployed net has no auxiliary heads


def test_a_runtime_that_cannot_run_is_reported(trained, monkeypatch):
    model, test, _, _ = trained
    monkeypatch.setattr(rt.get("ort-int8"), "missing", lambda: "not here")
    metrics = evaluate_runtimes(model, test, runtimes=("ort-int8",))
    assert metrics == {"ort-int8": {"error": "not installed: not here"}}
    assert int8_epe_change(metrics) is None


def test_generated_calibration_frames_at_the_models_input_size(trained, tmp_path):
    model, test, _, _ = trained
    metrics = evaluate_runtimes(model, test, runtimes=("ort-int8",), calibration_dir=tmp_path)
    assert metrics["ort-int8"]["epe_px"] > 0
    (cache,) = tmp_path.iterdir()
    assert cache.name.startswith("synthetic-train-n32-")  # 32 training-split frames, generated at 60 x 80
    assert torch.load(next(cache.glob("shard-*.pt")), weights_only=True)["depth"].shape[-2:] == (60, 80)
