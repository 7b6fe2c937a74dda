"""Where a number came from: the machine, the torch version, the commit and the time, in one shape everywhere.

Run records, profile records and the gate baseline all carry :func:`provenance`'s four fields, so a report
built from them (which never reads the clock or the machine itself, to rebuild byte for byte) can say where
each figure was measured.
"""

from __future__ import annotations

import datetime as _dt
import os
import platform
import subprocess
from pathlib import Path
from typing import Any

#: The fields :func:`provenance` returns, as every record stores them.
PROVENANCE_KEYS: tuple[str, ...] = ("machine", "torch_version", "commit", "created")


def cpu_model() -> str:
    """The CPU's model name: ``model name`` of /proc/cpuinfo on Linux, else ``platform.processor()``.

    ``platform.processor()`` alone says only ``x86_64`` on Linux, which tells two machines apart no better than
    nothing; latency figures need the CPU's name.
    """
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine(device: str = "cpu") -> dict[str, Any]:
    """This machine: CPU model, cores, the threads torch uses, OS, Python, and the GPU when ``device`` is cuda."""
    import torch

    info: dict[str, Any] = {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "threads": torch.get_num_threads(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "device": device,
        "gpu": None,
    }
    if device == "cuda" and torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name()
        info["cuda"] = torch.version.cuda
    return info


def describe_machine(info: dict[str, Any]) -> str:
    """One line for a report header: ``CPU model, N cores``."""
    return f"{info.get('cpu', 'unknown CPU')}, {info.get('cores', '?')} cores"


def git_commit(where: str | os.PathLike | None = None) -> str | None:
    """The commit checked out in the repository holding ``where`` (default: this package), or None outside one."""
    folder = Path(where) if where is not None else Path(__file__).resolve().parent
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=folder, capture_output=True, text=True, timeout=10, check=True
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def utc_now() -> str:
    """The current time in UTC, ISO 8601 to the second (``2026-01-31T12:00:00+00:00``)."""
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def provenance(device: str = "cpu", where: str | os.PathLike | None = None) -> dict[str, Any]:
    """The fields of :data:`PROVENANCE_KEYS` for a record made now.

    Args:
        device: Where the work ran (``cpu`` or ``cuda``).
        where: A path inside the repository whose commit counts (default: effbench's own).
    """
    import torch

    return {"machine": machine(device), "torch_version": torch.__version__, "commit": git_commit(where),
            "created": utc_now()}
