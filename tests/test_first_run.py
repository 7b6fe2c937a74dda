"""A newcomer's first run: the quickstart writes outside the committed report and the clone, training takes one
thread per process and a job per core, the suite's progress is right, and the outputs read right (list, profile,
the quick report's header, the Pareto plots, file modes). None of these tests trains."""

from __future__ import annotations

import io
import os
from pathlib import Path

import pandas as pd
import pytest

from effbench import suite_run
from effbench.cli import main
from effbench.cli.profile_cmd import table_notes
from effbench.progress import SuiteProgress, format_duration
from effbench.report.build import QUICK_NOTE, build_report, pixel_scale, seeds_text
from effbench.report.pareto import _TIE_GAP_PX, _tie_offsets
from report_helpers import make_store

REPO = Path(__file__).resolve().parents[1]


def test_suite_writes_to_an_ignored_folder_and_data_to_the_user_cache(monkeypatch):
    """The default report folder is results/<suite>/ (git ignores it), never the committed reports/<suite>/; the
    data splits go to the user cache, not inside the report folder."""
    seen = {}
    monkeypatch.setattr(suite_run, "run_suite", lambda suite, out, **kw: seen.update(out=out, **kw) or _Done())
    assert main(["--suite", "smoke", "--no-latency"]) == 0
    assert seen["out"] == "results/smoke" and seen["jobs"] is None
    assert "/results/" in (REPO / ".gitignore").read_text().split()
    plan = suite_run.plan_suite("smoke")
    assert all(cfg.data_cache_dir is None for cfg in plan.configs)  # None: $EFFBENCH_CACHE or ~/.cache/effbench


class _Done:
    exit_code = 0


def test_training_runs_on_one_thread_and_restores_it(monkeypatch, tmp_path):
    """The suite trains on one intra-op thread (a thread pool fighting other processes for the cores is many times
    slower) and gives profiling its threads back."""
    import torch

    from effbench.matrix import execute, make_executor, plan_runs, worker

    threads = []

    def fake(cfg, work_dir, **kw):
        threads.append(torch.get_num_threads())
        return worker.failed_record(cfg, "fake")

    monkeypatch.setattr(worker, "train_or_record", fake)
    plan = suite_run.plan_suite("smoke")
    bar = SuiteProgress("smoke", 2, len(plan.configs), enabled=False)
    torch.set_num_threads(2)
    try:
        execute(plan_runs(plan.configs, lambda _: 1.0), tmp_path, make_executor(jobs=1), bar)
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(1)
    assert threads == [1] * len(plan.configs) and bar.trained == len(plan.configs)


def test_train_command_defaults_to_one_thread():
    from effbench.cli import build_parser

    assert build_parser().parse_args(["train", "--model", "tiny_hand"]).threads == 1


def test_busy_machine_is_said(monkeypatch):
    cores = os.cpu_count() or 1
    monkeypatch.setattr(os, "getloadavg", lambda: (cores + 2.5, 0.0, 0.0))
    note = suite_run.busy_note()
    assert note.startswith(f"note: the machine is busy (load average {cores + 2.5:.1f} on {cores} cores)")
    monkeypatch.setattr(os, "getloadavg", lambda: (0.1, 0.0, 0.0))
    assert suite_run.busy_note() is None


class _Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def test_progress_counts_stages_and_writes_plain_lines_to_a_log():
    clock, log = _Clock(), io.StringIO()
    bar = SuiteProgress("smoke", 2, 4, stream=log, clock=clock)
    bar.stage("profile tiny_hand")
    bar.profile_done("tiny_hand")
    bar.profile_done("mobilenet_v2_035", "RuntimeError: boom")
    bar.start_training(400.0)
    bar.run_done("tiny_hand aux=off seed=0")
    bar.close()
    text = log.getvalue()
    assert "\r" not in text and "\x1b" not in text
    lines = text.splitlines()
    assert lines[0] == "suite smoke: profiled 0/2, trained 0/4 | profile tiny_hand"
    assert "FAILED mobilenet_v2_035 profile: RuntimeError: boom" in lines
    assert lines[-1] == "suite smoke: profiled 2/2, trained 1/4, 1 failed, ETA after the first steps | finished " \
                        "tiny_hand aux=off seed=0"


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_redraws_one_line_on_a_terminal(monkeypatch):
    monkeypatch.setattr("shutil.get_terminal_size", lambda fallback=None: os.terminal_size((60, 24)))
    clock, screen = _Clock(), _Terminal()
    bar = SuiteProgress("embedded", 10, 28, stream=screen, clock=clock)
    bar.stage("profile mobilenet_v2_100")
    clock.t = 1.0
    bar.profile_done("mobilenet_v2_100", "RuntimeError: boom")
    bar.close()
    frames = screen.getvalue().split("\r\x1b[K")[1:]
    assert all(len(f.rstrip("\n").split("\n")[-1]) <= 59 for f in frames)  # never wider than the terminal
    assert frames[1].startswith("FAILED mobilenet_v2_100 profile: RuntimeError: boom\n")
    assert screen.getvalue().endswith("\n")


def test_eta_moves_only_by_measured_pace():
    """ETA = measured seconds per unit of estimated cost x the cost left: an estimate off by a constant factor (a
    slower or busier machine) cancels out, and the counts never run backwards."""
    clock = _Clock()
    bar = SuiteProgress("s", 1, 2, enabled=False, clock=clock)
    bar.profile_done("m")
    assert bar.eta_s() is None  # nothing measured yet
    bar.start_training(100.0)
    clock.t = 30.0
    bar.advance(25.0)  # 25% of the cost in 30 s: 90 s to go, whatever the estimate's unit
    assert bar.eta_s() == pytest.approx(90.0)
    clock.t = 60.0
    bar.advance(25.0)
    assert bar.eta_s() == pytest.approx(60.0)
    assert [format_duration(s) for s in (42, 7 * 60, 84 * 60)] == ["42 s", "7 min", "1 h 24 min"]


def test_progress_line_keeps_the_stage_whole_at_120_columns():
    names = [n for n in suite_run.plan_suite("embedded").models]
    bar = SuiteProgress("embedded", len(names), 28, enabled=False)
    bar.profiled, bar.trained, bar.failed = 10, 12, ["x"] * 3
    bar.start_training(1.0)
    bar.advance(0.5)
    for name in names:
        bar.stage(f"train {name} aux=keypose seed=2")
        line = bar.line(120)
        assert len(line) <= 120 and line.endswith(f"| train {name} aux=keypose seed=2"), line


def test_list_without_match_exits_2_with_closest(capsys):
    assert main(["list", "tiny_hnd*"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: no model matches 'tiny_hnd*'; closest: tiny_hand") and err.count("\n") == 1


def test_list_fits_120_columns(capsys):
    assert main(["list"]) == 0
    assert max(len(line) for line in capsys.readouterr().out.splitlines()) <= 120


def test_profile_table_has_a_legend_and_says_when_the_machine_is_busy():
    rows = [{"model": "tiny_hand", "latency_ms_1t": 0.79, "latency_ms_mt": 188.02}]
    notes = table_notes(rows)
    assert "fvcore M / thop M / torch M: MACs in millions as fvcore, thop and torch's FlopCounterMode" in notes
    assert "ms mt: the same on all threads" in notes
    assert "note: on all threads tiny_hand took 188.02 ms against 0.79 ms on one (238x)" in notes
    assert "busy machine" in notes.replace("\n  ", " ")
    assert "note:" not in table_notes([{"model": "m", "latency_ms_1t": 1.0, "latency_ms_mt": 0.6}])


def test_quick_report_says_it_is_not_for_conclusions_in_files_of_the_umask(tmp_path):
    store = make_store(tmp_path / "runs")  # its manifest says budget "quick"
    old = os.umask(0o022)
    try:
        built = build_report(store, tmp_path / "out")
    finally:
        os.umask(old)
    md = (tmp_path / "out" / "report.md").read_text()
    assert QUICK_NOTE in md and md.index(QUICK_NOTE) < md.index("## Cost of the deployable models")
    assert {p.stat().st_mode & 0o777 for p in built["files"]} == {0o644}  # the PNGs too


def test_epe_is_scaled_to_the_common_frame_width():
    frame = pd.DataFrame({"model": ["a", "b", "c"], "prof_input_shape": ["1x1x120x160", "1x1x120x160",
                                                                          "1x1x240x320"]})
    scale, width = pixel_scale(frame)
    assert width == 160 and scale == {"a": 1.0, "b": 1.0, "c": 0.5}
    assert pixel_scale(frame.iloc[:2]) == ({}, None)


def test_plot_subtitle_says_the_seeds():
    frame = pd.DataFrame({"model": ["a"] * 6 + ["b"] * 2 + ["c"] * 2, "aux": [False, False, False, True, True, True,
                          False, True, False, True], "seed": [0, 1, 2, 0, 1, 2, 0, 0, 0, 0], "status": "ok"})
    assert seeds_text(frame) == "seeds per point: 3 (a), 1 (the others)"
    assert seeds_text(frame[frame["model"] != "a"]) == "1 seed per point"


def test_equal_cost_models_are_drawn_side_by_side():
    offsets = _tie_offsets({"tiny_hand": 100.0, "tiny_hand_nodil": 100.0, "far": 300.0})
    assert offsets == {"tiny_hand": -_TIE_GAP_PX / 2, "tiny_hand_nodil": _TIE_GAP_PX / 2}


def test_data_cache_folders_take_the_umask(tmp_path):
    from effbench.data import SyntheticHands

    old = os.umask(0o022)
    try:
        data = SyntheticHands("test", 2, seed=3, cache_dir=tmp_path, height=24, width=32)
    finally:
        os.umask(old)
    assert data.cache_path.stat().st_mode & 0o777 == 0o755  # not mkdtemp's 0700
    assert all(p.stat().st_mode & 0o777 == 0o644 for p in data.cache_path.iterdir())
