"""The results store flattened into one row per (model, aux, seed), for the report's tables and results files.

Flat rows use prefixed keys (after timm's ``benchmark.py``), so one DataFrame holds every source without
clashes: ``train_*`` the training config, ``test_*`` the test-split metrics, ``run_*`` the run's bookkeeping,
``prof_*`` the profile of the model's deployable form (the same for every run of a model).
"""

from __future__ import annotations

import json
from typing import Any

import pandas as pd

from effbench.results.store import Store, run_order

#: Identity columns of a results row, first in every row.
ID_COLUMNS = ("model", "aux", "seed", "status", "error")
#: Run-record fields copied into ``run_*`` columns.
RUN_FIELDS = ("config_hash", "wall_s", "steps_per_s", "created", "commit", "torch_version")


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

    Deployed footprint = weight bytes + peak activation bytes, at fp32 and at int8.
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
    for rec in sorted(store.runs, key=run_order(models)):
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
        row.update(flatten("conv_", rec.get("convergence")))
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
