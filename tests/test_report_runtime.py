"""The report's latency under a deployment runtime: columns, ratios, header and plot from the profiles' runtime keys;
profiles without them (the committed report's) give the report as it was."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from effbench.report import build_report
from report_helpers import FILES, REFERENCE, make_store, read_table

REPO = Path(__file__).resolve().parents[1]


def _add_runtimes(runs: Path, deployment: str | None = None) -> None:
    """ONNX Runtime figures in every profile: fp32 4x faster than eager, int8 5x; 1 KB of graph in the file."""
    for path in (runs / "suite").glob("profile-*.json"):
        record = json.loads(path.read_text())
        p = record.get("profile")
        if p:
            m = p["macs"]
            p.update(latency_ms_1t_ort=m / 4e8, hz_1t_ort=4e11 / m, latency_cv_1t_ort=0.05,
                     file_bytes_ort=p["weight_bytes_fp32"] + 1000, roofline_frac_1t_ort=m / 1e9,
                     roofline_gmacs_1t=50.0, runtime_version_ort="onnxruntime 1.32.0", runtime_version="torch 2.13.0",
                     latency_ms_1t_ort_int8=m / 5e8, runtime_version_ort_int8="onnxruntime 1.32.0")  # fmt: skip
            path.write_text(json.dumps(record))
    if deployment:
        manifest = runs / "suite" / "manifest.json"
        manifest.write_text(json.dumps({**json.loads(manifest.read_text()), "deployment_runtime": deployment}))


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = tmp_path_factory.mktemp("store")
    runs = make_store(root / "runs")
    _add_runtimes(runs)
    build_report(runs, root / "out")
    return root / "out"


def test_cost_table_uses_the_deployment_runtime(built):
    md = (built / "report.md").read_text()
    cost = {r["model"]: r for r in read_table(md, "## Cost of the deployable models")}
    t = cost["tiny_hand"]  # 10 M MACs: eager 0.100 ms, ONNX Runtime 0.025 ms (40,000 Hz), int8 0.020 ms
    assert (t["latency ms 1t"], t["Hz 1t"], t["eager ms 1t"], t["ort-int8 ms 1t"]) == ("0.025", "40,000", "0.100",
                                                                                      "0.020")  # fmt: skip
    assert (t["file KB"], t["CV 1t"], t["% roofline"]) == ("201.0", "0.05", "1.0")
    assert cost["broken_model"]["MACs (M)"].startswith("failed: ")
    ratio = {r["model"]: r for r in read_table(md, f"## Cost relative to `{REFERENCE}` (same run)")}
    assert ratio["tiny_hand"]["Hz 1t"] == "30.0x" and "CV 1t" not in ratio["tiny_hand"]  # same runtime, same run
    assert "- latency runtime: `ort`" in md and "  - `ort`: ONNX Runtime fp32" in md and "(onnxruntime 1.32.0)" in md
    assert "  - `eager`: eager PyTorch, BatchNorm folded (torch 2.13.0)" in md
    assert "- GEMM roofline: 50.0 GMAC/s" in md and "median of five timed windows' medians" in md
    assert "the 1-thread rate under ort" in md


def test_deployment_runtime_from_the_manifest(tmp_path):
    runs = make_store(tmp_path / "runs")
    _add_runtimes(runs, deployment="ort-int8")
    build_report(runs, tmp_path / "out")
    md = (tmp_path / "out" / "report.md").read_text()
    t = {r["model"]: r for r in read_table(md, "## Cost of the deployable models")}["tiny_hand"]
    assert (t["latency ms 1t"], t["ort ms 1t"], t["eager ms 1t"], t["file KB"]) == ("0.020", "0.025", "0.100", "-")
    _add_runtimes(runs, deployment="eager")  # eager as the deployment runtime: the layout before runtimes existed
    build_report(runs, tmp_path / "eager")
    plain = make_store(tmp_path / "plain")
    build_report(plain, tmp_path / "plain-out")
    md_eager = (tmp_path / "eager" / "report.md").read_text()
    assert "latency runtime" not in md_eager and "eager ms 1t" not in md_eager
    assert (tmp_path / "eager" / "pareto_latency.png").read_bytes() == (
        tmp_path / "plain-out" / "pareto_latency.png").read_bytes()


def test_latency_plot_follows_the_runtime(built, tmp_path):
    plain = make_store(tmp_path / "plain")
    build_report(plain, tmp_path / "out")
    assert (built / "pareto_latency.png").read_bytes() != (tmp_path / "out" / "pareto_latency.png").read_bytes()
    assert (built / "pareto_mflops.png").read_bytes() == (tmp_path / "out" / "pareto_mflops.png").read_bytes()


def test_committed_report_rebuilds_byte_for_byte(tmp_path):
    """reports/embedded/ rebuilds from its records alone, to the byte."""
    committed = REPO / "reports" / "embedded"
    build_report(committed / "runs", tmp_path)
    for name in FILES:
        assert (tmp_path / name).read_bytes() == (committed / name).read_bytes(), name
