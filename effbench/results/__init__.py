"""The results store, read and write: run and profile records (versioned), the folder layout, and the one
atomic writer and JSON rule that every file effbench writes goes through (run records, suite files, reports,
the gate baseline).

- :mod:`~effbench.results.files`: ``write_atomic``, ``write_json`` (sorted keys, no NaN), ``read_json``.
- :mod:`~effbench.results.records`: ``RunRecord``, ``ProfileRecord``, their ``schema`` and checks.
- :mod:`~effbench.results.store`: where each file lives, reading a store back (``load_store``), checkpoints.
"""

from effbench.results.files import json_text, read_json, write_atomic, write_json
from effbench.results.records import (
    PAUSED,
    SCHEMA,
    NewerSchemaError,
    ProfileRecord,
    RecordError,
    RunRecord,
    check_record,
    make_run_record,
    model_fingerprint,
    paused_record,
    reusable,
    runtime_suffix,
)
from effbench.results.store import (
    Store,
    checkpoint_path,
    in_training,
    load_checkpoint,
    load_records,
    load_store,
    manifest_path,
    profile_path,
    progress_path,
    read_run,
    record_path,
    resumable_step,
    save_checkpoint,
    set_aside,
    write_profile,
    write_run,
)

__all__ = [
    "PAUSED",
    "SCHEMA",
    "NewerSchemaError",
    "ProfileRecord",
    "RecordError",
    "RunRecord",
    "Store",
    "check_record",
    "checkpoint_path",
    "json_text",
    "load_checkpoint",
    "load_records",
    "load_store",
    "make_run_record",
    "manifest_path",
    "model_fingerprint",
    "paused_record",
    "profile_path",
    "read_json",
    "read_run",
    "record_path",
    "resumable_step",
    "reusable",
    "runtime_suffix",
    "save_checkpoint",
    "set_aside",
    "write_atomic",
    "write_json",
    "write_profile",
    "write_run",
]
