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
                "latency_ms_1t": m / 1e8, "hz_1t": 1e8 / m,
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
                "train": {"steps": 100}, "seeds": dict.fromkeys(MODELS, seeds), "device": "cpu", "runs": planned}
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
