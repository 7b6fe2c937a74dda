"""The report stage on a hand-made results store: tables against results.json, plots, rebuild, failures."""

from __future__ import annotations

import json

import pytest
from PIL import Image

from effbench.cli import main
from effbench.report import build_report, pareto_front
from effbench.report.pareto import PNG_SIZE
from report_helpers import FILES, MODELS, PNGS, REFERENCE, check_tables_against_results, make_store, read_table


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = tmp_path_factory.mktemp("store")
    runs = make_store(root / "runs")
    out = root / "out"
    result = build_report(runs, out)
    return runs, out, result


def test_pareto_front_hand_made():
    # (cost, error): (2, 4) loses to (2, 3) at the same cost; (3, 3.5) to (2, 3); (5, 1) to (4, 1).
    costs = [1, 2, 2, 3, 4, 5]
    errors = [5, 4, 3, 3.5, 1, 1]
    assert pareto_front(costs, errors) == [0, 2, 4]
    assert pareto_front([3, 1, 2], [1, 3, 2]) == [1, 2, 0]  # all non-dominated, returned by cost
    assert pareto_front([1, 1], [2, 2]) == [0, 1]  # identical points do not dominate each other
    assert pareto_front([], []) == []
    with pytest.raises(ValueError):
        pareto_front([1], [])


def test_every_file_and_png_size(built):
    _, out, result = built
    for name in FILES:
        assert (out / name).is_file(), name
    for name in PNGS:
        with Image.open(out / name) as im:
            im.verify()
        with Image.open(out / name) as im:
            assert im.format == "PNG" and im.size == PNG_SIZE == (960, 640)
    assert not list(out.glob(".*.tmp")), "temporary files left behind"
    assert result["failed"] == 1 + 2 * 2  # broken_model's profile and its four runs


def test_results_rows(built):
    _, out, _ = built
    rows = json.loads((out / "results.json").read_text())
    assert len(rows) == len(MODELS) * 2 * 2
    assert [(r["model"], r["aux"], r["seed"]) for r in rows[:4]] == [
        ("tiny_hand", False, 0), ("tiny_hand", False, 1), ("tiny_hand", True, 0), ("tiny_hand", True, 1)
    ]  # fmt: skip
    first = rows[0]
    assert first["prof_macs"] == 10_000_000 and first["train_steps"] == 100 and first["run_steps_per_s"] == 100.0
    assert first["test_epe_px"] == pytest.approx(2.0 + 10 * 1 / 2)
    assert first["prof_footprint_bytes_int8"] == 50_000 + 10_000  # weights + peak activations, int8
    csv_lines = (out / "results.csv").read_text().splitlines()
    assert len(csv_lines) == 1 + len(rows) and csv_lines[0].startswith("model,aux,seed,status,error,")


def test_cost_table_hand_numbers(built):
    _, out, _ = built
    md = (out / "report.md").read_text()
    cost = {r["model"]: r for r in read_table(md, "## Cost of the deployable models")}
    assert list(cost) == list(MODELS)
    t = cost["tiny_hand"]
    # 10 M MACs; FLOPs = 2 x 10 M + 1 M other = 21 M; 50,000 params -> 200 KB fp32, 50 KB int8; peak 10,000 B int8.
    assert (t["MACs (M)"], t["MFLOPs"], t["params"]) == ("10.00", "21.00", "50,000")
    assert (t["weights KB fp32"], t["weights KB int8"], t["peak act KB int8"]) == ("200.0", "50.0", "10.0")
    assert (t["footprint KB int8"], t["latency ms 1t"], t["Hz 1t"]) == ("60.0", "0.100", "10,000")
    assert cost["broken_model"]["MACs (M)"].startswith("failed: RuntimeError: broken on purpose | pipe")
    ratio = {r["model"]: r for r in read_table(md, f"## Cost relative to `{REFERENCE}` (same run)")}
    # 21 / 630 MFLOPs = 3.3%; Hz 10,000 / 333.3 = 30x.
    assert (ratio["tiny_hand"]["MFLOPs"], ratio["tiny_hand"]["Hz 1t"]) == ("3.3%", "30.0x")
    assert ratio[REFERENCE]["params"] == "100.0%"


def test_tables_match_results_json(built):
    _, out, _ = built
    check_tables_against_results(out)
    md = (out / "report.md").read_text()
    acc = {r["model"]: r for r in read_table(md, "## Accuracy without and with auxiliary tasks")}
    # tiny_hand: aux lowers every EPE by 0.5 px from 7.05 px: -0.50 (-7.1%).
    assert acc["tiny_hand"]["Δ EPE px"] == "-0.50 (-7.1%)"
    failures = read_table(md, "## Failures")
    assert {f["stage"] for f in failures} == {"profile", "train aux=off seed=0", "train aux=off seed=1",
                                              "train aux=on seed=0", "train aux=on seed=1"}  # fmt: skip


def test_header_from_records_not_clock(built):
    _, out, _ = built
    md = (out / "report.md").read_text()
    assert "- date: 2026-01-03T12:00:00" in md  # the latest 'created' of the records
    assert "- commit: 0123456789ab" in md and "- machine: Test CPU 9000, 2 cores" in md
    assert "FLOPs = 2 x MACs" in md and "- training budget: `quick`" in md
    # The budget's overrides for some models, grouped by what they set.
    assert "- per model: `tiny_hand`, `mobilenet_v2_035`: `lr=0.02`" in md
    for name in PNGS:
        assert f"({name})" in md


def test_rebuild_is_byte_identical(built, tmp_path):
    runs, out, _ = built
    assert main(["report", "--runs", str(runs), "--out", str(tmp_path)]) == 0
    for name in FILES:
        assert (tmp_path / name).read_bytes() == (out / name).read_bytes(), name


def test_report_bad_store_exits_2(tmp_path, capsys):
    assert main(["report", "--runs", str(tmp_path / "nope"), "--out", str(tmp_path / "o")]) == 2
    assert "is not a folder" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert main(["report", "--runs", str(tmp_path / "empty"), "--out", str(tmp_path / "o")]) == 2
