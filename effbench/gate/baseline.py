"""The committed baseline: each gated model's profile as of the last ``bench.py gate --update-baseline``.

One JSON file, written atomically (:func:`effbench.results.write_json`) so that an interrupted update never leaves
half a file. It holds the flat profile rows (base units: counts, bytes) of every gated model and says where they
came from (:func:`effbench.provenance.provenance`: UTC date, commit, torch version, machine), like a
pytest-benchmark result file::

    {"commit": "...", "created": "...", "effbench_baseline": 1, "machine": {...},
     "models": {"tiny_hand": {"flops": 33000000, "input_shape": [1, 1, 120, 160], "params": 24000, ...}},
     "runtimes": {"eager": "torch 2.13.0+cpu", "ort": "onnxruntime 1.32.0", ...}, "torch_version": "..."}
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from effbench.errors import UsageError
from effbench.provenance import provenance
from effbench.results import write_json

FORMAT_VERSION = 1


def write_baseline(
    path: str | Path, models: Mapping[str, Mapping[str, Any]], runtimes: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """Write the baseline atomically, by effbench's JSON rule (sorted keys, so that updates diff cleanly).

    Args:
        path: The baseline JSON file.
        models: Model name -> flat profile row (only JSON-serialisable values).
        runtimes: Runtime name -> its version (``{"ort": "onnxruntime 1.32.0"}``), stored as ``runtimes``.

    Returns:
        The document written.
    """
    path = Path(path)
    # The commit is the one of the project that holds the baseline (a user's repository, not effbench's).
    project = path.parent if path.parent.exists() else Path.cwd()
    doc = {
        "effbench_baseline": FORMAT_VERSION,
        **provenance("cpu", where=project),
        "runtimes": dict(runtimes or {}),
        "models": {name: dict(row) for name, row in sorted(models.items())},
    }
    write_json(path, doc)
    return doc


def read_baseline(path: str | Path) -> dict[str, Any]:
    """Read and check a baseline file.

    Returns:
        The whole document; ``doc["models"]`` maps model name -> flat profile row.

    Raises:
        UsageError: If the file is missing, is not JSON (with its line), or is not a baseline.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UsageError(f"baseline file {str(path)!r} does not exist; write one with "
                         "`python bench.py gate --update-baseline`") from None
    except (OSError, UnicodeDecodeError) as err:
        raise UsageError(f"cannot read baseline {str(path)!r}: {err}") from None
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as err:
        raise UsageError(f"{path}:{err.lineno}: malformed baseline JSON: {err.msg} (column {err.colno})") from None
    if not isinstance(doc, dict) or doc.get("effbench_baseline") != FORMAT_VERSION or not isinstance(
        doc.get("models"), dict
    ):
        raise UsageError(f"{path}: not an effbench baseline (version {FORMAT_VERSION}); regenerate it with "
                         "`python bench.py gate --update-baseline`")
    return doc
