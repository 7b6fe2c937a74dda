"""The committed baseline: each gated model's profile as of the last ``bench.py gate --update-baseline``.

One JSON file, written to a temporary name and renamed so that an interrupted update never leaves half a file.
It holds the flat profile rows (base units: counts, bytes) of every gated model and says where they came from
(date, commit, torch version, machine), like a pytest-benchmark result file::

    {"effbench_baseline": 1, "created": "...", "commit": "...", "torch_version": "...", "machine": {...},
     "models": {"tiny_hand": {"input_shape": [1, 1, 120, 160], "params": 24000, "flops": 33000000, ...}}}
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import subprocess
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from effbench.errors import UsageError

FORMAT_VERSION = 1


def machine_info() -> dict[str, Any]:
    """CPU, cores, OS and Python of this machine, for the record."""
    return {
        "processor": platform.processor() or platform.machine(),
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        "system": platform.system(),
        "python": platform.python_version(),
    }


def git_commit(cwd: str | Path | None = None) -> str | None:
    """The current commit hash, or None outside a git checkout."""
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def write_baseline(path: str | Path, models: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """Write the baseline atomically (temporary file in the same folder, then rename).

    Args:
        path: The baseline JSON file.
        models: Model name -> flat profile row (only JSON-serialisable values).

    Returns:
        The document written.
    """
    import torch

    path = Path(path)
    doc = {
        "effbench_baseline": FORMAT_VERSION,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "commit": git_commit(path.parent if path.parent.exists() else None),
        "torch_version": torch.__version__,
        "machine": machine_info(),
        "models": {name: dict(row) for name, row in sorted(models.items())},
    }
    write_text_atomic(path, json.dumps(doc, indent=2) + "\n")
    return doc


def write_text_atomic(path: str | Path, text: str) -> None:
    """Write ``text`` to a temporary file beside ``path``, then rename it over ``path`` (never half a file)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


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
