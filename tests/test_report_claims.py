"""The report's accuracy conclusions on a hand-made store: the claim, the paired aux effect with its t-interval,
the per-task ablation table and the convergence table with the still-improving flag."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from effbench.report import claims
from effbench.report.build import build_report
from tests.report_helpers import make_store, read_table


def test_paired_effect_by_hand():
    # Three seeds: aux on - off = -1.0, -0.5, 0.0 -> mean -0.5, sample sd 0.5, t(0.975, 2 dof) = 4.3027:
    # half-width 4.3027 x 0.5 / sqrt(3) = 1.2421. Relative to the aux-off mean (10): -5%.
    frame = pd.DataFrame({
        "model": ["m"] * 6, "aux": [False] * 3 + [True] * 3, "seed": [0, 1, 2] * 2, "status": ["ok"] * 6,
        "test_epe_px": [10.0, 10.0, 10.0, 9.0, 9.5, 10.0],
    })
    e = claims.paired_effect(frame, "m")
    assert e["n"] == 3 and e["mean"] == pytest.approx(-0.5) and e["rel"] == pytest.approx(-0.05)
    assert e["high"] - e["mean"] == pytest.approx(4.302653 * 0.5 / 3**0.5, rel=1e-5)
    assert claims.fmt_effect(e) == "-0.50 px (-5.0%), 95% CI [-1.74, +0.74], 3 seed(s)"
    # a seed trained one way only is left out of the pairs
    one = claims.paired_effect(frame[frame["seed"] != 2].iloc[:-1], "m")
    assert one["n"] == 1 and "CI needs 2 seeds" in claims.fmt_effect(one)
    assert claims.paired_effect(frame[frame["aux"]], "m") is None


def test_the_lift_table_gives_each_model_its_share_of_the_lift_floor():
    # One model, two seeds aux on: 3D errors 80 and 100 mm over a floor of 40 mm on the split: shares 50% and 40%,
    # mean 45%; an aux-off run without the lift measured (an older record) makes no row; an ablation is left out.
    frame = pd.DataFrame({
        "model": ["m"] * 4, "aux": [True, True, False, True], "seed": [0, 1, 0, 0], "status": ["ok"] * 4,
        "train_aux_tasks": ["seg,vis,keypose,hand"] * 3 + ["hand"],
        "test_err3d_mm": [80.0, 100.0, 90.0, 70.0], "test_lift_err3d_mm": [40.0, 40.0, None, 40.0],
        "test_err25_mm": [50.0, 60.0, 55.0, 45.0], "test_err25_mm_vis": [55.0, 65.0, 60.0, 50.0],
    })
    table = claims.lift_table(frame)
    assert table.to_dict("records") == [{
        "model": "m", "aux": "on", "seeds": "2", "3D err mm": "90.0 ± 14.1", "lift floor / 3D err": "45%",
        "2.5D err mm": "55.0 ± 7.1", "2.5D err mm visible": "60.0 ± 7.1"}]
    lines = claims.lift_lines(frame)
    assert lines[0] == "### The 3D error and the lift"
    assert "misses the true joints by 40.0 mm on the test split" in lines[2] and ": 45% of it here" in lines[2]
    assert claims.lift_lines(frame.drop(columns="test_lift_err3d_mm")) == []  # records from before the lift metric


def test_a_run_part_way_through_training_is_shown_with_its_curve_so_far(tmp_path):
    from effbench.results import progress_path, write_json

    root = make_store(tmp_path / "runs", seeds=2)
    key = "000010000001"  # tiny_hand, aux on, seed 1 (make_store's hash scheme): no record, part-way through training
    (root / f"{key}.json").unlink()
    curve = [{"step": s, "train_loss": 1.0, "val_epe_px": e, "wall_s": s / 10} for s, e in ((20, 9.0), (40, 8.0),
                                                                                              (60, 8.5))]
    config = {"model": "tiny_hand", "aux": True, "seed": 1, "steps": 100, "batch_size": 8}
    write_json(progress_path(root, key), {"config": config, "config_hash": key, "model_fingerprint": None,
                                          "step": 60, "curve": curve, "plateaus": 1, "wall_s": 120.0})
    # a run with a record is not part-way, whatever a stale progress file says
    write_json(progress_path(root, "000010000000"), {"config": config, "step": 50, "curve": [], "plateaus": 0,
                                                      "wall_s": 1.0})

    build_report(root, tmp_path / "out")
    md = (tmp_path / "out" / "report.md").read_text()
    assert "**Interim report: 15 of 16 planned runs trained, 1 pending; 1 part-way through training.**" in md
    assert read_table(md, "## Learning curves and convergence") == [{
        "model": "tiny_hand", "aux": "on", "seed": "1", "step": "60", "cap": "100", "best val EPE px so far": "8.00",
        "at step": "40", "plateaus": "1", "wall min": "2.0"}]
    assert (tmp_path / "out" / "curves_steps.png").exists()  # its curve so far, though no record has one


def test_report_states_the_claim_ablation_and_convergence(tmp_path):
    root = make_store(tmp_path / "runs", seeds=3)
    # An ablation run (handedness alone) and a learning curve that still falls at its end.
    (root / "0000h0000000.json").write_text(json.dumps({
        "config": {"model": "tiny_hand", "aux": True, "aux_tasks": "hand", "seed": 0, "steps": 100, "device": "cpu"},
        "config_hash": "0000h0000000", "status": "ok", "error": None,
        "metrics": {"epe_px": 6.0, "handedness_acc": 0.9, "ort_epe_px": 6.0, "ort_int8_epe_px": 6.3},
        "wall_s": 1.0, "steps_per_s": 100.0,
    }))
    manifest = json.loads((root / "suite" / "manifest.json").read_text())
    manifest["runs"].append({"model": "tiny_hand", "aux": True, "seed": 0, "config_hash": "0000h0000000",
                             "aux_tasks": "hand"})
    (root / "suite" / "manifest.json").write_text(json.dumps(manifest))
    path = root / "000010000000.json"  # tiny_hand, aux on, seed 0 (make_store's hash scheme)
    rec = json.loads(path.read_text())
    rec["curve"] = [{"step": s, "train_loss": 1.0, "val_epe_px": e, "wall_s": s / 10}
                    for s, e in ((20, 9.0), (40, 8.0), (60, 7.0), (80, 6.9), (100, 6.0))]
    rec["convergence"] = {"best_step": 100, "stop_step": 100, "stopped_on_plateau": False}
    rec["config"]["batch_size"] = 8  # the compute axis: steps x batch x 3 x the profile's FLOPs per frame
    path.write_text(json.dumps(rec))

    build_report(root, tmp_path / "out")
    md = (tmp_path / "out" / "report.md").read_text()
    # tiny_hand (aux on: 7 - 0.5 + 0.1 x seed) 6.6 against mobilenet_v2_100 9.1: 0.73x; every pair differs by -0.5.
    assert ("`tiny_hand` 6.60 px EPE against `mobilenet_v2_100` 9.10 px, **0.73x** its error. Not converged: "
            "`tiny_hand`'s (1 of 1) aux-on runs stopped at their step cap still improving, so this ratio is an upper "
            "bound on the converged one.") in md
    assert "- `tiny_hand`: -0.50 px (-7.0%), 95% CI [-0.50, -0.50], 3 seed(s)" in md
    ablation = read_table(md, "### Which auxiliary task buys what (ablation)")
    assert [(r["aux"], r["EPE px"], r["handedness acc %"]) for r in ablation] == [
        ("off", "7.10 ± 0.10", "-"), ("on: hand", "6.00", "90.0"), ("on", "6.60 ± 0.10", "-")]
    # The ablation run does not enter the aux-on column of the main accuracy table.
    acc = {r["model"]: r for r in read_table(md, "## Accuracy without and with auxiliary tasks")}
    assert acc["tiny_hand"]["EPE px on"] == "6.60 ± 0.10"
    conv = read_table(md, "## Learning curves and convergence")
    # last fifth (step 100): 6.0 against the fourth (step 80): 6.9 -> 13% better: still improving.
    assert [(r["model"], r["best val EPE px"], r["still improving"]) for r in conv] == [("tiny_hand", "-", "**yes**")]
    assert "1 of 1 run(s) here" in md
    assert (tmp_path / "out" / "curves_steps.png").stat().st_size > 1000
    assert "![curves_compute.png](curves_compute.png)" in md  # tiny_hand has a profile with its FLOPs
    # int8: 6.3 against 6.0 px is 5% worse, over the 2% tolerance.
    int8 = read_table(md, "### The deployed model in int8")
    assert [(r["model"], r["change"], r["loses > 2%"]) for r in int8] == [("tiny_hand", "+5.0%", "**yes**")]


def _run(model: str, aux: bool, epes: tuple[float, ...], status: str = "ok") -> dict:
    """A record whose curve has one validation point per 20 steps."""
    return {"config": {"model": model, "aux": aux, "seed": 0, "steps": 20 * len(epes)}, "status": status,
            "metrics": {}, "curve": [{"step": 20 * (i + 1), "val_epe_px": e} for i, e in enumerate(epes)]}


def test_the_ratio_says_which_way_an_unconverged_run_moves_it():
    falling, flat = (9.0, 8.0, 7.0, 6.9, 6.0), (9.0, 8.0, 7.0, 6.0, 6.0)  # last fifth 13% below the fourth; 0%
    ref_falls = [_run("tiny", True, flat), _run("ref", True, falling), _run("ref", True, flat)]
    assert claims.ratio_caveat(ref_falls, "tiny", "ref") == (
        "Not converged: `ref`'s (1 of 2) aux-on runs stopped at their step cap still improving, so this ratio is a "
        "lower bound on the converged one.")
    both = ref_falls + [_run("tiny", True, falling)]
    assert claims.ratio_caveat(both, "tiny", "ref").endswith("so the converged ratio may lie either side of this one.")
    # aux-off runs, failed runs and converged ones do not qualify the ratio
    others = [_run("tiny", False, falling), _run("ref", True, falling, status="failed"), _run("ref", True, flat)]
    assert claims.ratio_caveat(others, "tiny", "ref") == ""


def test_distilled_runs_have_their_own_row_and_claim_line(tmp_path):
    """A run with a teacher is its own setting: the ablation table lists it, the plain aux-on figures leave it out,
    and the claim gives its ratio to the reference and its paired effect against aux on."""
    root = make_store(tmp_path / "runs", seeds=2)
    manifest = json.loads((root / "suite" / "manifest.json").read_text())
    for seed, epe in ((0, 6.0), (1, 6.3)):  # aux on alone: 6.5 and 6.6 (make_store): -0.5 and -0.3
        key = f"00d{seed}00000000"
        (root / f"{key}.json").write_text(json.dumps({
            "config": {"model": "tiny_hand", "aux": True, "seed": seed, "teacher": "000011000000", "device": "cpu"},
            "config_hash": key, "status": "ok", "error": None, "metrics": {"epe_px": epe},
            "wall_s": 1.0, "steps_per_s": 100.0,
        }))
        manifest["runs"].append({"model": "tiny_hand", "aux": True, "seed": seed, "config_hash": key,
                                 "teacher": "000011000000"})
    manifest["runs"].append({"model": "tiny_hand", "aux": True, "seed": 2, "config_hash": "00d200000000",
                             "teacher": "000011000000"})  # planned, not trained yet
    (root / "suite" / "manifest.json").write_text(json.dumps(manifest))

    build_report(root, tmp_path / "out")
    md = (tmp_path / "out" / "report.md").read_text()
    acc = {r["model"]: r for r in read_table(md, "## Accuracy without and with auxiliary tasks")}
    assert acc["tiny_hand"]["EPE px on"] == "6.55 ± 0.07"
    ablation = read_table(md, "### Which auxiliary task buys what (ablation)")
    assert [(r["aux"], r["seeds"], r["EPE px"]) for r in ablation] == [
        ("off", "2", "7.05 ± 0.07"), ("on", "2", "6.55 ± 0.07"), ("on + distilled", "2/3", "6.15 ± 0.21")]
    # 6.15 against mobilenet_v2_100's 9.05 (make_store: 9 + 0.1 x seed with aux): 0.68x; pairs -0.5, -0.3.
    assert ("`tiny_hand` with aux 6.15 px, **0.68x** `mobilenet_v2_100`'s error. Distillation effect (paired, "
            "distilled - aux on): -0.40 px (-6.1%), 95% CI [-1.67, +0.87], 2 seed(s).") in md
