"""The records of a results store: what a run record and a profile record hold, and how a file is checked.

Every record carries a ``schema`` number. Schema 1 is the layout before the field existed (records without
``schema``): it is read, its missing optional fields filled with None. A record of a newer schema than
:data:`SCHEMA` is refused with a message that says to upgrade effbench, and a record that does not have the
fields and types below is refused with :class:`RecordError` naming the file and the field: checks raise, they
are not ``assert`` statements (which ``python -O`` removes).

Changes by schema:
    1: no ``schema`` field; ``created`` in local time; a run's ``machine`` says ``torch_threads``; the fields added
       over time (``model_fingerprint``, ``curve``, ``convergence``) may be absent.
    2: ``schema``; every field present; ``created`` in UTC; ``machine`` as :func:`effbench.provenance.machine`.
"""

from __future__ import annotations

import hashlib
import types
import typing
from typing import Any, TypedDict

from effbench.errors import UsageError

#: The schema this version writes, and the newest it reads.
SCHEMA = 2
#: Status of a finished run or profile.
STATUSES: tuple[str, ...] = ("ok", "failed")
#: The status of a run that a time limit stopped before it finished: never stored (its checkpoint holds the run).
PAUSED = "paused"


class RecordError(UsageError):
    """A results file that is not a record this version of effbench can read (exit code 2)."""


class NewerSchemaError(RecordError):
    """A record written by a newer effbench: sound, only not readable here (never set aside as corrupt)."""


class RunRecord(TypedDict):
    """One training run: its config, outcome, test-split metrics, and where and when it ran.

    Stored as ``<store>/<config_hash>.json``; the fields are in the order :func:`make_run_record` builds them.
    """

    schema: int
    config: dict[str, Any]  # TrainConfig.to_dict()
    config_hash: str  # TrainConfig.hash(): names the record's file
    status: str  # "ok" or "failed"
    error: str | None  # "ExceptionType: message" of a failed run
    metrics: dict[str, Any]  # test-split metrics (None where a metric does not apply), val_epe_px, final_train_loss
    machine: dict[str, Any] | None  # effbench.provenance.machine()
    torch_version: str | None
    commit: str | None  # effbench's commit
    model_fingerprint: str | None  # model_fingerprint() of the model trained
    wall_s: float | None  # wall time of the run, resumes included
    steps_per_s: float | None  # training throughput (evaluation excluded)
    created: str | None  # when the record was written, ISO 8601
    curve: list[Any] | None  # validation points (step, train loss, val EPE, wall s): effbench.train.curve
    convergence: dict[str, Any] | None  # best step, plateaus, whether it was still improving at its end


class ProfileRecord(TypedDict):
    """The profile of one model's deployable form in a suite, stored as ``<store>/suite/profile-<model>.json``."""

    schema: int
    model: str
    status: str  # "ok" or "failed"
    error: str | None
    traceback: str | None  # of a failed profile
    input_shape: list[int] | None  # batch included
    profile: dict[str, Any] | None  # Profile.as_dict(): one flat row
    reconciliation: list[Any] | None  # our MACs/FLOPs and each peer's by op type
    peer_notes: dict[str, Any] | None  # per peer: why its figure differs
    by_op: list[Any] | None  # per aten op: calls, MACs, FLOPs
    warnings: list[Any] | None  # warnings raised while profiling
    machine: dict[str, Any] | None
    torch_version: str | None
    commit: str | None
    created: str | None


#: Fields a schema-1 record must have (the rest were added later, or are optional).
_SCHEMA1_REQUIRED = {RunRecord: ("config", "config_hash", "status"), ProfileRecord: ("model", "status")}


def runtime_suffix(runtime: str) -> str:
    """The suffix of a runtime's keys in a profile row: none for eager PyTorch (its keys, ``latency_ms_1t``, are
    older than runtimes), ``_ort`` for ``ort``, ``_ort_int8`` for ``ort-int8``."""
    return "" if runtime == "eager" else "_" + runtime.replace("-", "_")


def _accepts(value: Any, hint: Any) -> bool:
    """Whether ``value`` fits a field's type hint (``str | None``, ``dict[str, Any]``, ``float``...)."""
    if hint is Any:
        return True
    if hint is type(None):
        return value is None
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        return any(_accepts(value, arg) for arg in typing.get_args(hint))
    if hint is float:  # JSON writes 2.0 as 2.0 but a hand-written file may say 2
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, typing.get_origin(hint) or hint)


def check_record(data: Any, kind: type, where: str) -> dict[str, Any]:
    """Validate a record read from ``where`` and bring it to the current schema.

    Args:
        data: The parsed JSON.
        kind: :class:`RunRecord` or :class:`ProfileRecord`.
        where: The file, for messages.

    Returns:
        A new dict with every field of ``kind``, in its order, and ``schema`` = :data:`SCHEMA`.

    Raises:
        RecordError: Not an object, a schema newer than this version reads, a missing or unknown field, a field of
            the wrong type, or an unknown status.
    """
    what = "run record" if kind is RunRecord else "profile record"
    if not isinstance(data, dict):
        raise RecordError(f"{where}: not a {what} (a JSON object), found {type(data).__name__}")
    schema = data.get("schema", 1)
    if not _accepts(schema, int) or schema < 1:
        raise RecordError(f"{where}: {what} schema {schema!r} is not a positive integer")
    if schema > SCHEMA:
        raise NewerSchemaError(f"{where}: {what} of schema {schema}, written by a newer effbench; this version reads "
                          f"schemas 1 to {SCHEMA}: upgrade effbench")
    hints = typing.get_type_hints(kind)
    unknown = sorted(set(data) - set(hints))
    if unknown:
        raise RecordError(f"{where}: unknown {what} field {unknown[0]!r}; fields: {', '.join(hints)}")
    required = _SCHEMA1_REQUIRED[kind] if schema == 1 else tuple(k for k in hints if k != "schema")
    missing = [k for k in required if k not in data]
    if missing:
        raise RecordError(f"{where}: {what} (schema {schema}) lacks the field {missing[0]!r}")
    record = {name: data.get(name) for name in hints} | {"schema": SCHEMA}
    for name, hint in hints.items():
        if not _accepts(record[name], hint):
            raise RecordError(f"{where}: {what} field {name!r} is {record[name]!r}, not {_hint_name(hint)}")
    if record["status"] not in STATUSES:
        raise RecordError(f"{where}: {what} status {record['status']!r} is not one of {', '.join(STATUSES)}")
    return record


def _hint_name(hint: Any) -> str:
    return str(hint).replace("typing.", "") if typing.get_origin(hint) else hint.__name__


def make_run_record(
    config: dict[str, Any],
    config_hash: str,
    *,
    status: str,
    error: str | None,
    metrics: dict[str, Any],
    device: str,
    wall_s: float | None,
    steps_per_s: float | None,
    model_fingerprint: str | None = None,
    curve: list[Any] | None = None,
    convergence: dict[str, Any] | None = None,
) -> RunRecord:
    """A run record of the current schema, with this machine's provenance, checked like one read from a file.

    Raises:
        RecordError: If a value does not fit its field (a bug in the caller, reported rather than stored).
    """
    from effbench.provenance import provenance

    record = {"schema": SCHEMA, "config": config, "config_hash": config_hash, "status": status, "error": error,
              "metrics": metrics, "model_fingerprint": model_fingerprint, "wall_s": wall_s,
              "steps_per_s": steps_per_s, **provenance(device), "curve": curve, "convergence": convergence}
    return check_record(record, RunRecord, f"run {config_hash}")  # type: ignore[return-value]


def paused_record(config: dict[str, Any], config_hash: str, step: int | None) -> dict[str, Any]:
    """What stands for a run that a time limit stopped at ``step`` (None: before it started): status
    :data:`PAUSED`, never stored, since the run has no result yet, only its checkpoint."""
    where = f"at step {step:,}" if step is not None else "before it started"
    return {"config": config, "config_hash": config_hash, "status": PAUSED, "step": step, "metrics": {},
            "steps_per_s": None, "error": f"time limit reached {where}; run again to resume"}


def model_fingerprint(model: Any) -> str:
    """A short hash of a model's structure: its module tree (layer types and settings) and parameter shapes.

    A run record keeps it, so that a finished run is not reused once its model's layers have changed (the config
    hash names the model, not what the model is). Changes inside a ``forward`` with the same layers are not seen.
    """
    text = repr(model) + "".join(f"{k}{tuple(v.shape)}" for k, v in model.state_dict().items())
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def reusable(record: dict[str, Any], fingerprint: str | None) -> bool:
    """Whether a stored record stands for a run of the model as it is now: finished ``ok``, same structure.

    Records written before fingerprints were kept (``model_fingerprint`` None) are taken as they are; a model that
    does not build (``fingerprint`` None) has no reusable run.
    """
    return fingerprint is not None and record.get("status") == "ok" and not superseded(record, fingerprint)


def superseded(record: dict[str, Any], fingerprint: str | None) -> bool:
    """Whether ``record`` is of an earlier form of its model than ``fingerprint`` (both known, and different)."""
    kept = record.get("model_fingerprint")
    return fingerprint is not None and kept is not None and kept != fingerprint
