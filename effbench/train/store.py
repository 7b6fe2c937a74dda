"""The results store: one JSON record per run, named by its config hash, and resumable checkpoints.

Layout of an output folder::

    <out>/<config_hash>.json                 the run record (contract), written when the run ends (ok or failed)
    <out>/checkpoints/<config_hash>.pt       the latest checkpoint; after a finished run, the final weights only
    <out>/checkpoints/<config_hash>.config.json   the config, written when the run starts

Only records sit at the top level, so ``glob("*.json")`` finds every run and nothing else. Every file is written
to a temporary name in the same folder and renamed (``os.replace`` is atomic on POSIX and Windows): a crash leaves
the old file or the new one, never half of one. Checkpoints hold only tensors, numbers, strings and dicts, so
they load with ``torch.load(weights_only=True)``: a results folder from elsewhere cannot run code.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import platform
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import torch
from torch import nn

#: Top-level keys of a run record, in the order they are written (contract).
RECORD_KEYS: tuple[str, ...] = (
    "config",
    "config_hash",
    "status",
    "error",
    "metrics",
    "machine",
    "torch_version",
    "commit",
    "model_fingerprint",
    "wall_s",
    "steps_per_s",
    "created",
    "curve",
    "convergence",
)


def _atomic(path: Path, write: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json(path: str | os.PathLike, obj: Any) -> None:
    """Write ``obj`` as indented JSON to ``path`` atomically (temporary file in the same folder, then rename)."""
    blob = (json.dumps(obj, indent=2, allow_nan=False) + "\n").encode()
    _atomic(Path(path), lambda f: f.write(blob))


def read_json(path: str | os.PathLike) -> Any:
    """Read a JSON file."""
    return json.loads(Path(path).read_text())


def record_path(out_dir: str | os.PathLike, config_hash: str) -> Path:
    """Where the record of the run ``config_hash`` lives."""
    return Path(out_dir) / f"{config_hash}.json"


def checkpoint_path(out_dir: str | os.PathLike, config_hash: str) -> Path:
    """Where the checkpoint of the run ``config_hash`` lives."""
    return Path(out_dir) / "checkpoints" / f"{config_hash}.pt"


def save_checkpoint(path: str | os.PathLike, state: dict[str, Any]) -> None:
    """``torch.save`` to a temporary file, then rename."""
    _atomic(Path(path), lambda f: torch.save(state, f))


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a checkpoint with ``weights_only=True`` (tensors and plain containers only; no code runs)."""
    return torch.load(path, map_location=map_location, weights_only=True)


def load_records(out_dir: str | os.PathLike) -> list[dict[str, Any]]:
    """Every run record in ``out_dir``, sorted by file name."""
    return [read_json(p) for p in sorted(Path(out_dir).glob("*.json"))]


def cpu_model() -> str:
    """The CPU's model name (from /proc/cpuinfo on Linux, else ``platform.processor()``)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_info(device: str = "cpu") -> dict[str, Any]:
    """Where a run ran: CPU model and cores, threads torch uses, OS, Python, and the GPU when ``device`` is cuda."""
    info: dict[str, Any] = {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "device": device,
        "gpu": None,
    }
    if device == "cuda" and torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name()
        info["cuda"] = torch.version.cuda
    return info


def git_commit(path: str | os.PathLike | None = None) -> str | None:
    """The commit checked out in the repository holding ``path`` (default: this package), or None."""
    where = Path(path) if path is not None else Path(__file__).resolve().parent
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=where, capture_output=True, text=True, timeout=10, check=True
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def now_iso() -> str:
    """The current local time, ISO 8601 with offset, to the second."""
    return _dt.datetime.now().astimezone().isoformat(timespec="seconds")


def model_fingerprint(model: nn.Module) -> str:
    """A short hash of a model's structure: its module tree (layer types and settings) and parameter shapes.

    A run record keeps it, so that a finished run is not reused once its model's layers have changed (the config
    hash names the model, not what the model is). Changes inside a ``forward`` with the same layers are not seen.
    """
    text = repr(model) + "".join(f"{k}{tuple(v.shape)}" for k, v in model.state_dict().items())
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def reusable(record: dict[str, Any], fingerprint: str | None) -> bool:
    """Whether a stored record stands for a run of the model as it is now: finished ``ok``, same structure.

    Records written before fingerprints were kept (no ``model_fingerprint``) are taken as they are; a model that
    does not build (``fingerprint`` None) has no reusable run.
    """
    kept = record.get("model_fingerprint")
    return fingerprint is not None and record.get("status") == "ok" and kept in (None, fingerprint)


def make_record(
    config: dict[str, Any],
    config_hash: str,
    *,
    status: str,
    error: str | None,
    metrics: dict[str, Any],
    device: str,
    wall_s: float,
    steps_per_s: float | None,
    model_fingerprint: str | None = None,
    curve: list[dict[str, Any]] | None = None,
    convergence: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A run record with exactly the contract's keys; ``curve`` and ``convergence`` as :mod:`effbench.train.loop`
    makes them (None for a failed run)."""
    record = {
        "config": config,
        "config_hash": config_hash,
        "status": status,
        "error": error,
        "metrics": metrics,
        "machine": machine_info(device),
        "torch_version": torch.__version__,
        "commit": git_commit(),
        "model_fingerprint": model_fingerprint,
        "wall_s": wall_s,
        "steps_per_s": steps_per_s,
        "created": now_iso(),
        "curve": curve,
        "convergence": convergence,
    }
    assert tuple(record) == RECORD_KEYS
    return record
