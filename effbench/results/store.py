"""The results store: where each file of a store lives, writing records into it and reading it back.

Layout of a store folder (``bench.py train --out DIR``, or ``<report folder>/runs`` for a suite)::

    <config_hash>.json                     one run record per trained (model, aux, seed), written when it ends
    checkpoints/<config_hash>.pt           its latest checkpoint; after a finished run, the tested weights (and,
                                           when it stopped at its cap, the state to go on from under a higher one)
    checkpoints/<config_hash>.config.json  its config, written when it starts
    training/<config_hash>.json            while it is part-way: its step and curve at its last checkpoint (small,
                                           kept with the records, unlike checkpoints/, so an interim report rebuilds)
    suite/manifest.json                    a suite's plan: suite, reference, models, budget, seeds, planned runs
    suite/profile-<model>.json             the profile of each model's deployable form

Only run records sit at the top level, so ``glob("*.json")`` finds every run and nothing else. Checkpoints hold
only tensors, numbers, strings and dicts and load with ``torch.load(weights_only=True)``: a store from elsewhere
cannot run code.
"""

from __future__ import annotations

import io
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from effbench.errors import UsageError
from effbench.results.files import read_json, write_atomic, write_json
from effbench.results.records import NewerSchemaError, ProfileRecord, RecordError, RunRecord, check_record, superseded

SUITE_DIR = "suite"
MANIFEST = "manifest.json"
PROFILE_PREFIX = "profile-"
CHECKPOINTS = "checkpoints"
#: Where a run part-way through training says how far it got (:func:`progress_path`); unlike its checkpoint, kept
#: with the records, so that an interim report rebuilds from the store's files alone.
TRAINING = "training"


def record_path(root: str | os.PathLike, config_hash: str) -> Path:
    """Where the record of the run ``config_hash`` lives."""
    return Path(root) / f"{config_hash}.json"


def checkpoint_path(root: str | os.PathLike, config_hash: str) -> Path:
    """Where the checkpoint of the run ``config_hash`` lives (its config beside it, ``.config.json``)."""
    return Path(root) / CHECKPOINTS / f"{config_hash}.pt"


def progress_path(root: str | os.PathLike, config_hash: str) -> Path:
    """Where the run ``config_hash`` keeps its progress while part-way through training (:func:`in_training`)."""
    return Path(root) / TRAINING / f"{config_hash}.json"


def manifest_path(root: str | os.PathLike) -> Path:
    """Where a suite's manifest lives."""
    return Path(root) / SUITE_DIR / MANIFEST


def profile_path(root: str | os.PathLike, model: str) -> Path:
    """Where a suite's profile of ``model`` lives."""
    return Path(root) / SUITE_DIR / f"{PROFILE_PREFIX}{model}.json"


def _read(path: Path) -> Any:
    try:
        return read_json(path)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise RecordError(f"{path}: unreadable ({type(err).__name__}: {err})") from err


def read_run(path: str | os.PathLike) -> RunRecord:
    """Read and check one run record (an older schema is brought up to date).

    Raises:
        RecordError: If the file cannot be read or is not a run record this version reads.
    """
    return check_record(_read(Path(path)), RunRecord, str(path))  # type: ignore[return-value]


def write_run(root: str | os.PathLike, record: RunRecord) -> Path:
    """Write a run record to its place in the store ``root``, atomically."""
    return write_json(record_path(root, record["config_hash"]), record)


def load_records(root: str | os.PathLike) -> list[RunRecord]:
    """Every run record in the store ``root``, sorted by file name."""
    return [read_run(p) for p in sorted(Path(root).glob("*.json"))]


def write_profile(root: str | os.PathLike, record: ProfileRecord) -> Path:
    """Write a suite's profile record, atomically."""
    checked = check_record(record, ProfileRecord, f"profile of {record.get('model')}")
    return write_json(profile_path(root, checked["model"]), checked)


def save_checkpoint(path: str | os.PathLike, state: dict[str, Any]) -> None:
    """``torch.save`` the state, written atomically like every other file of the store."""
    import torch

    buf = io.BytesIO()
    torch.save(state, buf)
    write_atomic(path, buf.getvalue())


def load_checkpoint(path: str | os.PathLike, map_location: Any = "cpu") -> dict[str, Any]:
    """Load a checkpoint with ``weights_only=True`` (tensors and plain containers only; no code runs).

    Raises:
        RecordError: If the file is not a checkpoint this version reads (truncated, garbage, or holding code).
    """
    import torch

    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except OSError:
        raise
    except Exception as err:  # torch says UnpicklingError, RuntimeError or EOFError for a broken file
        raise RecordError(f"{path}: not a readable checkpoint ({type(err).__name__})") from None
    if not isinstance(state, dict):
        raise RecordError(f"{path}: not a checkpoint (a dict), found {type(state).__name__}")
    return state


def set_aside(path: str | os.PathLike) -> Path:
    """Rename a corrupt file to ``<name>.corrupt-<n>`` (the first free n) beside it, so that it is kept for a look but
    no longer read (a store's ``*.json`` glob does not see it); return the new path."""
    path = Path(path)
    n = 1
    while path.with_name(f"{path.name}.corrupt-{n}").exists():
        n += 1
    target = path.with_name(f"{path.name}.corrupt-{n}")
    os.replace(path, target)
    return target


@dataclass
class Store:
    """The parsed contents of a results store.

    Attributes:
        root: The folder it was read from.
        manifest: ``suite/manifest.json`` (empty when the folder has none, e.g. runs from ``bench.py train``).
        profiles: Profile record per model name.
        runs: Run records, in the manifest's planned order when there is a manifest; a planned run without a
            record stands as one with status ``missing``, or as the record of the same config under a lower step
            cap (marked ``planned_steps`` when that run stopped at that cap).
        bad_files: ``(path, why)`` of each record or profile that could not be read and was left out.
        training: The runs without their own record that are part-way through training (:func:`in_training`), in
            the order of ``runs`` (planned order); their curves so far, not results.
    """

    root: Path
    manifest: dict[str, Any] = field(default_factory=dict)
    profiles: dict[str, dict[str, Any]] = field(default_factory=dict)
    runs: list[dict[str, Any]] = field(default_factory=list)
    bad_files: list[tuple[str, str]] = field(default_factory=list)
    training: list[dict[str, Any]] = field(default_factory=list)

    @property
    def suite(self) -> str:
        """The suite's name, or the folder's name when there is no manifest."""
        return self.manifest.get("suite") or self.root.name

    @property
    def reference(self) -> str | None:
        """The model ratios are reported against (the manifest's, else ``mobilenet_v2_100`` if present)."""
        if "reference" in self.manifest:
            return self.manifest["reference"]
        return "mobilenet_v2_100" if "mobilenet_v2_100" in self.models else None

    @property
    def models(self) -> list[str]:
        """Model names in report order: the manifest's order, else first appearance in profiles then runs."""
        if self.manifest.get("models"):
            return list(self.manifest["models"])
        names = list(self.profiles)
        for rec in self.runs:
            name = rec.get("config", {}).get("model")
            if name and name not in names:
                names.append(name)
        return names


#: The status of a planned run that has no record yet: the suite run stopped at its time limit before it (or was
#: interrupted); running the suite again trains it. Never stored: a store shows its gaps with it.
PENDING = "pending"
#: The error of a pending run.
NO_RECORD = "not trained yet"
#: The error of a pending run whose record is of an earlier form of its model.
SUPERSEDED = "the model changed since its record was written; not trained again yet"


def _missing_run(plan: dict[str, Any], error: str | None = None, pending: str = NO_RECORD) -> dict[str, Any]:
    """What stands for a planned run without a readable record of its model as it is now, so a report shows the gap:
    ``pending`` (why: ``pending``) when it has none yet, ``missing`` with ``error`` (naming the file) when its record
    could not be read."""
    return {
        "config": {k: plan[k] for k in ("model", "aux", "seed", "aux_tasks", "teacher") if k in plan},
        "config_hash": plan["config_hash"],
        "status": "missing" if error else PENDING,
        "error": error or pending,
        "metrics": {},
    }


def _capped_stand_in(plan: dict[str, Any], records: Any, manifest: dict[str, Any]) -> dict[str, Any] | None:
    """For a planned run without a record: the record of the same config under a lower step cap with the plateau
    schedule (the longest). One that stopped on its plateau rule is the planned run's result too; one that stopped at
    its cap is marked ``planned_steps`` (the plan's cap), so that a budget whose cap was raised reports it as what it
    is, a run that has not converged yet (training the plan goes on from it, :mod:`effbench.train.loop`), rather than
    as nothing. None when there is none."""
    from effbench.train.config import lower_cap

    model = plan["model"]
    steps = manifest.get("model_train", {}).get(model, {}).get("steps", manifest.get("train", {}).get("steps"))
    if not isinstance(steps, int):
        return None
    best = None
    for record in records:
        cfg, conv = record.get("config", {}), record.get("convergence") or {}
        if (cfg.get("model") != model or record.get("status") != "ok" or conv.get("stopped_on_plateau") is None
                or lower_cap(cfg, steps, plan["config_hash"]) is None):
            continue
        if best is None or cfg["steps"] > best["config"]["steps"]:
            best = record
    if best is None or best["convergence"]["stopped_on_plateau"]:
        return best
    return {**best, "planned_steps": steps}


def in_training(root: str | os.PathLike, config_hash: str) -> dict[str, Any] | None:
    """Where the run ``config_hash`` stands when it is part-way through training, as its trainer wrote it at its last
    checkpoint (:func:`progress_path`): ``config``, ``config_hash``, ``model_fingerprint``, ``step``, ``curve`` (the
    validation points so far), ``plateaus`` and ``wall_s``. None when it has none (not started or finished) or it
    cannot be read (the checkpoint, not this file, is what the run resumes from)."""
    try:
        state = read_json(progress_path(root, config_hash))
    except (OSError, ValueError):
        return None
    keys = {"config", "step", "curve", "plateaus", "wall_s"}
    return state if isinstance(state, dict) and keys <= set(state) else None


def resumable_step(root: str | os.PathLike, config_hash: str, fingerprint: str | None) -> int:
    """The step the run ``config_hash`` resumes from in the work folder ``root``: its progress's step when its
    checkpoint is there too and was trained on the model as it is now (``fingerprint``); 0 otherwise (it starts
    afresh). What a plan counts as done already, so that a sitting's ETA and order see only what is left."""
    state = in_training(root, config_hash)
    resumes = state is not None and state.get("model_fingerprint") == fingerprint
    return int(state["step"]) if resumes and checkpoint_path(root, config_hash).exists() else 0


def _readable(path: Path, kind: type, bad: list[tuple[str, str]]) -> dict[str, Any] | None:
    """The checked record at ``path``, or None with ``(path, why)`` added to ``bad``; a newer schema still raises
    (the fix is to upgrade effbench, not to leave runs out)."""
    try:
        return check_record(_read(path), kind, str(path))
    except NewerSchemaError:
        raise
    except RecordError as err:
        bad.append((str(path), str(err).split(f"{path}: ", 1)[-1]))  # the reason, without the file named twice
        return None


def load_store(root: str | os.PathLike) -> Store:
    """Read a results store folder (or its ``suite`` subfolder).

    A run record or profile that cannot be read is left out and listed in ``Store.bad_files``; a planned run whose
    record was left out stands as ``missing``, its error naming the file, and one without a record as ``pending``,
    as does one whose record is of an earlier form of its model (the manifest's ``fingerprints``). A run without a
    record (planned, or any in a store without a manifest) that is part-way through training is listed in
    ``Store.training`` (:func:`in_training`).

    Raises:
        UsageError: If the folder does not exist or holds nothing readable.
        RecordError: If the manifest cannot be read, or a record is of a newer schema.
    """
    folder = Path(root)
    if folder.name == SUITE_DIR and (folder / MANIFEST).exists():
        folder = folder.parent  # the user pointed at the suite subfolder
    if not folder.is_dir():
        raise UsageError(f"results store {str(folder)!r} is not a folder")
    store = Store(folder)
    if manifest_path(folder).exists():
        store.manifest = _read(manifest_path(folder))
        if not isinstance(store.manifest, dict):
            raise RecordError(f"{manifest_path(folder)}: not a suite manifest (a JSON object)")
    for path in sorted((folder / SUITE_DIR).glob(f"{PROFILE_PREFIX}*.json")):
        record = _readable(path, ProfileRecord, store.bad_files)
        if record is not None:
            store.profiles[record["model"]] = record
    records = {}
    unreadable = {}
    for path in sorted(folder.glob("*.json")):
        record = _readable(path, RunRecord, store.bad_files)
        if record is None:
            unreadable[path.stem] = f"run record {path} unreadable, left out"
        else:
            records[record["config_hash"]] = record
    planned = store.manifest.get("runs")
    fingerprints = store.manifest.get("fingerprints", {})
    if planned is not None:
        for plan in planned:
            key = plan["config_hash"]
            record = records.get(key) or _capped_stand_in(plan, records.values(), store.manifest)
            if record is not None and superseded(record, fingerprints.get(plan["model"])):
                record = _missing_run(plan, pending=SUPERSEDED)  # kept on disk until the run is trained again
            store.runs.append(record or _missing_run(plan, unreadable.get(key)))
        unrecorded = [plan["config_hash"] for plan in planned if plan["config_hash"] not in records]
    else:
        store.runs = sorted(records.values(), key=run_order([]))
        unrecorded = [p.stem for p in sorted((folder / TRAINING).glob("*.json")) if p.stem not in records]
    for key in unrecorded:
        state = in_training(folder, key)
        if state is not None and not superseded(state, fingerprints.get(state["config"].get("model"))):
            store.training.append(state)
    if not store.runs and not store.profiles:
        bad = ", ".join(f"{path} ({why})" for path, why in store.bad_files)
        unreadable = f"; unreadable: {bad}" if bad else ""
        raise UsageError(f"results store {str(folder)!r} holds no readable run records or profiles{unreadable}")
    return store


def run_order(models: list[str]) -> Any:
    """Sort key of run records: the model's place in ``models`` (unknown last, by name), aux off first, seed."""

    def key(rec: dict[str, Any]) -> tuple:
        cfg = rec.get("config", {})
        name = cfg.get("model", "")
        order = models.index(name) if name in models else len(models)
        return (order, name, bool(cfg.get("aux")), int(cfg.get("seed") or 0))

    return key
