"""Reading the results store and flattening it into one row per (model, aux, seed).

Store layout (written by :mod:`effbench.suite_run` and :func:`effbench.train.run`)::

    runs/
      <config_hash>.json             one run record per trained (model, aux, seed) (effbench.train's store)
      checkpoints/                   effbench.train's checkpoints (not read here)
      suite/manifest.json            suite, reference, models, budget, seeds, planned runs (config hashes)
      suite/profile-<model>.json     the deployable model's profile: flat row, per-op breakdown, peer counters

The suite's files sit in a subfolder because effbench.train keeps only run records at the top level.

Flat rows use prefixed keys (after timm's ``benchmark.py``), so one DataFrame holds every source without
clashes: ``train_*`` the training config, ``test_*`` the test-split metrics, ``run_*`` the run's bookkeeping,
``prof_*`` the profile of the model's deployable form (the same for every run of a model).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from effbench.errors import UsageError

SUITE_DIR = "suite"
MANIFEST = "manifest.json"
PROFILE_PREFIX = "profile-"

#: Identity columns of a results row, first in every row.
ID_COLUMNS = ("model", "aux", "seed", "status", "error")
#: Run-record fields copied into ``run_*`` columns.
RUN_FIELDS = ("config_hash", "wall_s", "steps_per_s", "created", "commit", "torch_version")


@dataclass
class Store:
    """The parsed contents of a results store.

    Attributes:
        root: The folder it was read from.
        manifest: ``suite/manifest.json`` (empty when the folder has none, e.g. runs from ``bench.py train``).
        profiles: Profile record per model name.
        runs: Run records, in the manifest's planned order when there is a manifest.
    """

    root: Path
    manifest: dict[str, Any] = field(default_factory=dict)
    profiles: dict[str, dict[str, Any]] = field(default_factory=dict)
    runs: list[dict[str, Any]] = field(default_factory=list)

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


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise UsageError(f"results store: cannot read {path}: {err}") from err


def load_store(runs_dir: str | Path) -> Store:
    """Read a results store folder.

    Planned runs that have no record (a suite interrupted before them) become records with status ``missing``,
    so the report shows the gap instead of silently dropping it.

    Raises:
        UsageError: If the folder does not exist, holds nothing, or a file is not valid JSON.
    """
    root = Path(runs_dir)
    if root.name == SUITE_DIR and (root / MANIFEST).exists():
        root = root.parent  # the user pointed at the suite subfolder
    if not root.is_dir():
        raise UsageError(f"results store {str(root)!r} is not a folder")
    store = Store(root)
    suite_dir = root / SUITE_DIR
    if (suite_dir / MANIFEST).exists():
        store.manifest = _read_json(suite_dir / MANIFEST)
    for path in sorted(suite_dir.glob(f"{PROFILE_PREFIX}*.json")):
        data = _read_json(path)
        store.profiles[data.get("model") or path.stem[len(PROFILE_PREFIX) :]] = data
    records: dict[str, dict[str, Any]] = {}
    for path in sorted(root.glob("*.json")):
        data = _read_json(path)
        if isinstance(data, dict) and "config_hash" in data:
            records[data["config_hash"]] = data
    planned = store.manifest.get("runs")
    if planned is not None:
        for plan in planned:
            rec = records.get(plan["config_hash"])
            if rec is None:
                rec = {
                    "config": {"model": plan["model"], "aux": plan["aux"], "seed": plan["seed"]},
                    "config_hash": plan["config_hash"],
                    "status": "missing",
                    "error": "no run record (suite interrupted?)",
                    "metrics": {},
                }
            store.runs.append(rec)
    else:
        store.runs = sorted(records.values(), key=lambda r: _run_key(r, []))
    if not store.runs and not store.profiles:
        raise UsageError(f"results store {str(root)!r} holds no run records or profiles")
    return store


def _run_key(rec: dict[str, Any], models: list[str]) -> tuple:
    cfg = rec.get("config", {})
    name = cfg.get("model", "")
    order = models.index(name) if name in models else len(models)
    return (order, name, bool(cfg.get("aux")), int(cfg.get("seed") or 0))


def _scalar(value: Any) -> Any:
    """A value fit for one CSV cell: scalars as they are, containers as compact JSON."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return json.dumps(value, sort_keys=True, default=str)


def flatten(prefix: str, data: dict[str, Any] | None) -> dict[str, Any]:
    """``{"a": 1, "b": {"c": 2}}`` -> ``{prefix + "a": 1, prefix + "b_c": 2}`` (one level of nesting unrolled)."""
    out: dict[str, Any] = {}
    for key, value in (data or {}).items():
        if isinstance(value, dict) and all(not isinstance(v, (dict, list)) for v in value.values()):
            for sub, v in value.items():
                out[f"{prefix}{key}_{sub}"] = _scalar(v)
        else:
            out[f"{prefix}{key}"] = _scalar(value)
    return out


def profile_columns(profile: dict[str, Any] | None) -> dict[str, Any]:
    """The ``prof_*`` columns of a model: its profile's flat row, plus the deployed footprint if not given.

    Deployed footprint = weight bytes + peak activation bytes (DESIGN.md), at fp32 and at int8.
    """
    if profile is None:
        return {"prof_status": "missing", "prof_error": "no profile in the store"}
    row = dict(profile.get("profile") or {})
    for prec in ("fp32", "int8"):
        w, a = row.get(f"weight_bytes_{prec}"), row.get(f"peak_act_bytes_{prec}")
        if f"footprint_bytes_{prec}" not in row and w is not None and a is not None:
            row[f"footprint_bytes_{prec}"] = w + a
    cols = {"prof_status": profile.get("status", "ok"), "prof_error": profile.get("error")}
    cols.update(flatten("prof_", {k: v for k, v in row.items() if k not in ("model",)}))
    return cols


def results_frame(store: Store) -> pd.DataFrame:
    """One flat row per (model, aux, seed) with prefixed keys, profile columns joined by model.

    Models that have a profile but no run (e.g. a model whose profile failed before it could train) get one
    row with aux and seed empty, so every model of the suite appears in the results files.
    """
    rows: list[dict[str, Any]] = []
    models = store.models
    seen: set[str] = set()
    for rec in sorted(store.runs, key=lambda r: _run_key(r, models)):
        cfg = dict(rec.get("config") or {})
        name = cfg.pop("model", None)
        seen.add(name)
        row: dict[str, Any] = {
            "model": name,
            "aux": bool(cfg.pop("aux", False)),
            "seed": cfg.pop("seed", None),
            "status": rec.get("status", "ok"),
            "error": rec.get("error"),
        }
        row.update(flatten("train_", cfg))
        row.update(flatten("test_", rec.get("metrics")))
        row.update({f"run_{k}": _scalar(rec.get(k)) for k in RUN_FIELDS})
        row.update(profile_columns(store.profiles.get(name)))
        rows.append(row)
    for name in models:
        if name not in seen:
            prof = store.profiles.get(name)
            rows.append(
                {"model": name, "aux": None, "seed": None, "status": "not run", "error": None}
                | profile_columns(prof)
            )
    order_of = {name: i for i, name in enumerate(models)}
    rows.sort(
        key=lambda r: (order_of.get(r["model"], len(models)), r["aux"] is not None, bool(r["aux"]), r["seed"] or 0)
    )
    frame = pd.DataFrame(rows)
    # Integer columns with gaps (a failed model has no MACs) would turn into floats (50000.0); pandas' nullable
    # Int64 keeps them integers in the CSV and JSON.
    for col in frame.columns:
        values = [r[col] for r in rows if r.get(col) is not None]
        if values and all(isinstance(v, int) and not isinstance(v, bool) for v in values):
            frame[col] = frame[col].astype("Int64")
    order = list(ID_COLUMNS) + sorted(c for c in frame.columns if c not in ID_COLUMNS)
    return frame.reindex(columns=order)
