"""Helpers shared by the report tests: a hand-made results store and a markdown table reader."""

from __future__ import annotations

import json
import re
from pathlib import Path

MODELS = ("tiny_hand", "mobilenet_v2_035", "mobilenet_v2_100", "broken_model")
REFERENCE = "mobilenet_v2_100"


def make_store(root: Path, seeds: int = 2) -> Path:
    """A results store of three working models (two seeds each, aux off/on) and one whose profile and runs failed.

    Numbers are chosen so the expected table cells can be worked out by hand.
    """
    suite_dir = root / "suite"
    suite_dir.mkdir(parents=True)
    machine = {"cpu": "Test CPU 9000", "cores": 2, "device": "cpu", "gpu": None}
    macs = {"tiny_hand": 10_000_000, "mobilenet_v2_035": 60_000_000, "mobilenet_v2_100": 300_000_000}
    planned = []
    for i, name in enumerate(MODELS):
        if name in macs:
            m = macs[name]
            profile = {
                "model": name, "macs": m, "flops": 2 * m + m // 10, "params": m // 200,
                "weight_bytes_fp32": 4 * (m // 200), "weight_bytes_int8": m // 200,
                "peak_act_bytes_fp32": 4 * (m // 1000), "peak_act_bytes_int8": m // 1000,
                "latency_ms_1t": m / 1e8, "hz_1t": 1e11 / m,
                "macs_fvcore": m * 1.05, "macs_thop": m * 1.1, "macs_torch": float(m),
            }  # fmt: skip
            record = {"model": name, "status": "ok", "error": None, "profile": profile,
                      "reconciliation": [{"op_type": "conv", "macs": m, "flops": 2 * m, "fvcore": m, "thop": m,
                                          "torch": m}],
                      "peer_notes": {"fvcore": "counts BatchNorm"}}  # fmt: skip
        else:
            record = {"model": name, "status": "failed", "error": "RuntimeError: broken on purpose | pipe"}
        record.update(machine=machine, torch_version="2.13.0", commit="0123456789abcdef", created="2026-01-01T10:00:00")
        (suite_dir / f"profile-{name}.json").write_text(json.dumps(record))
        for aux in (False, True):
            for seed in range(seeds):
                h = f"{i:04d}{int(aux)}{seed:07d}"
                planned.append({"model": name, "aux": aux, "seed": seed, "config_hash": h})
                ok = name in macs
                epe = 2.0 + 10 * (i + 1) / (i + 2) - (0.5 if aux else 0.0) + 0.1 * seed
                metrics = {"epe_px": epe, "pck5": 0.5 + 0.1 * i + 0.01 * seed, "err3d_mm": 10 * epe,
                           "mask_iou": 0.7 if aux else None} if ok else {}  # fmt: skip
                run = {
                    "config": {"model": name, "aux": aux, "seed": seed, "steps": 100, "device": "cpu"},
                    "config_hash": h, "status": "ok" if ok else "failed",
                    "error": None if ok else "RuntimeError: broken on purpose", "metrics": metrics,
                    "machine": machine, "torch_version": "2.13.0", "commit": "0123456789abcdef",
                    "wall_s": 1.0, "steps_per_s": 100.0, "created": f"2026-01-0{2 + seed}T12:00:00",
                }  # fmt: skip
                (root / f"{h}.json").write_text(json.dumps(run))
    manifest = {"suite": "unit", "reference": REFERENCE, "models": list(MODELS), "budget": "quick",
                "train": {"steps": 100}, "model_train": {"tiny_hand": {"lr": 0.02}, "mobilenet_v2_035": {"lr": 0.02}},
                "seeds": dict.fromkeys(MODELS, seeds), "device": "cpu", "runs": planned}
    (suite_dir / "manifest.json").write_text(json.dumps(manifest))
    return root


def split_row(line: str) -> list[str]:
    """Cells of one markdown table row (``\\|`` is a literal bar)."""
    cells = re.split(r"(?<!\\)\|", line.strip())[1:-1]
    return [c.strip().replace("\\|", "|") for c in cells]


def read_table(markdown: str, heading: str) -> list[dict[str, str]]:
    """The first table after the line ``heading``, as dicts keyed by its header."""
    lines = markdown.splitlines()
    start = lines.index(heading)
    rows: list[list[str]] = []
    for line in lines[start + 1 :]:
        if line.startswith("|"):
            rows.append(split_row(line))
        elif rows:
            break
        elif line.startswith("#"):
            raise AssertionError(f"no table under {heading!r}")
    header, body = rows[0], rows[2:]  # rows[1] is the |---| separator
    return [dict(zip(header, r)) for r in body]


PNGS = ("pareto_mflops.png", "pareto_params.png", "pareto_latency.png", "pareto_footprint.png")
FILES = ("report.md", "results.csv", "results.json") + PNGS


def _mean_std(values: list[float], digits: int) -> str:
    import statistics

    if len(values) == 1:
        return f"{values[0]:,.{digits}f}"
    return f"{statistics.mean(values):,.{digits}f} ± {statistics.stdev(values):,.{digits}f}"


def check_tables_against_results(out: Path) -> None:
    """Every row of the cost, accuracy and counter tables of ``out/report.md`` agrees with ``out/results.json``.

    The expected cells are computed here from the JSON rows, independently of effbench.report.tables.
    """
    md = (out / "report.md").read_text()
    rows = json.loads((out / "results.json").read_text())
    cost = {r["model"]: r for r in read_table(md, "## Cost of the deployable models")}
    acc = {r["model"]: r for r in read_table(md, "## Accuracy without and with auxiliary tasks")}
    counters = {r["model"]: r for r in read_table(md, "## Counter cross-check")}
    models = list(dict.fromkeys(r["model"] for r in rows))
    assert list(cost) == models and list(counters) == models
    for model in models:
        mine = [r for r in rows if r["model"] == model]
        p = mine[0]
        if p["prof_status"] == "ok":
            assert cost[model]["MACs (M)"] == f"{p['prof_macs'] / 1e6:,.2f}"
            assert cost[model]["MFLOPs"] == f"{p['prof_flops'] / 1e6:,.2f}"
            assert cost[model]["params"] == f"{p['prof_params']:,}"
            assert cost[model]["weights KB fp32"] == f"{4 * p['prof_params'] / 1e3:,.1f}"
            assert cost[model]["peak act KB int8"] == f"{p['prof_peak_act_bytes_int8'] / 1e3:,.1f}"
            footprint = p["prof_weight_bytes_int8"] + p["prof_peak_act_bytes_int8"]
            assert cost[model]["footprint KB int8"] == f"{footprint / 1e3:,.1f}"
            # The latency columns are ONNX Runtime's (the default deployment runtime) when the profile has it, with
            # eager PyTorch's beside them; eager PyTorch's alone otherwise.
            deployed = "prof_latency_ms_1t_ort" if p.get("prof_latency_ms_1t_ort") is not None else "prof_latency_ms_1t"
            if p.get(deployed) is not None:
                assert cost[model]["latency ms 1t"] == f"{p[deployed]:,.3f}"
                assert cost[model]["Hz 1t"] == f"{1e3 / p[deployed]:,.0f}"
            if deployed != "prof_latency_ms_1t" and p.get("prof_latency_ms_1t") is not None:
                assert cost[model]["eager ms 1t"] == f"{p['prof_latency_ms_1t']:,.3f}"
            if p.get("prof_macs_thop") is not None:
                assert counters[model]["thop vs ours"] == f"{(p['prof_macs_thop'] / p['prof_macs'] - 1) * 100:+.1f}%"
        else:
            assert cost[model]["MACs (M)"].startswith("failed")
        for aux, tag in ((False, "off"), (True, "on")):
            planned = [r for r in mine if r["aux"] is aux]
            runs = [r for r in planned if r["status"] == "ok"]
            if not planned:
                continue
            if not runs:
                assert acc[model][f"EPE px {tag}"].startswith("failed")
                continue
            seeds = str(len(runs)) if len(runs) == len(planned) else f"{len(runs)}/{len(planned)}"
            assert acc[model][f"seeds {tag}"] == seeds
            assert acc[model][f"EPE px {tag}"] == _mean_std([r["test_epe_px"] for r in runs], 2)
            assert acc[model][f"PCK@5 % {tag}"] == _mean_std([100 * r["test_pck5"] for r in runs], 1)
            assert acc[model][f"3D err mm {tag}"] == _mean_std([r["test_err3d_mm"] for r in runs], 1)
