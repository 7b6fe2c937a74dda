"""The results package: the atomic writer and the JSON rule, the records and their schema, the store's checkpoints,
and provenance."""

import json
import os

import pytest
import torch
from torch import nn

from effbench import provenance, results
from effbench.errors import UsageError


def _run(**changes):
    record = {"config": {"model": "m", "aux": False, "seed": 0}, "config_hash": "abc", "status": "ok", "error": None,
              "metrics": {"epe_px": 1.5}, "machine": {"cpu": "X", "cores": 2}, "torch_version": "2.13.0",
              "commit": None, "wall_s": 1.0, "steps_per_s": 2, "created": "2026-01-01T00:00:00+01:00"}
    record.update(changes)
    return record


def test_write_atomic_whole_file_user_mode_no_temporary(tmp_path):
    old = os.umask(0o022)
    try:
        path = results.write_atomic(tmp_path / "sub" / "f.txt", "old")
        results.write_atomic(path, b"new")
    finally:
        os.umask(old)
    assert path.read_text() == "new"
    assert [p.name for p in path.parent.iterdir()] == ["f.txt"]
    assert path.stat().st_mode & 0o777 == 0o644  # the umask's mode, not mkstemp's 0600


def test_json_rule_sorted_keys_and_no_nan(tmp_path):
    path = tmp_path / "r.json"
    results.write_json(path, {"b": 1, "a": [1.5, None]})
    assert path.read_text() == '{\n  "a": [\n    1.5,\n    null\n  ],\n  "b": 1\n}\n'
    with pytest.raises(ValueError):
        results.write_json(path, {"a": float("nan")})  # not JSON: refused, the old file kept
    assert results.read_json(path) == {"a": [1.5, None], "b": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["r.json"]


def test_new_run_record_has_every_field_and_provenance():
    rec = results.make_run_record({"model": "m"}, "h", status="ok", error=None, metrics={}, device="cpu",
                                  wall_s=1.0, steps_per_s=2.0)
    assert tuple(rec) == tuple(results.RunRecord.__annotations__) and rec["schema"] == results.SCHEMA
    assert rec["machine"]["cores"] >= 1 and rec["machine"]["cpu"] and rec["machine"]["threads"] >= 1
    assert rec["torch_version"] == torch.__version__
    assert rec["created"].endswith("+00:00")  # UTC
    with pytest.raises(results.RecordError, match="field 'wall_s' is 'slow', not"):
        results.make_run_record({}, "h", status="ok", error=None, metrics={}, device="cpu", wall_s="slow",
                                steps_per_s=None)


def test_schema_1_record_is_read_and_filled_in(tmp_path):
    (tmp_path / "abc.json").write_text(json.dumps(_run()))  # written before `schema` and `model_fingerprint`
    rec = results.read_run(tmp_path / "abc.json")
    assert rec["schema"] == results.SCHEMA and rec["model_fingerprint"] is None
    assert rec["metrics"] == {"epe_px": 1.5} and rec["created"] == "2026-01-01T00:00:00+01:00"
    assert results.load_records(tmp_path) == [rec]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (_run(schema=99), "schema 99, written by a newer effbench; this version reads schemas 1 to 2: upgrade"),
        ({**_run(), "schema": 2}, "(schema 2) lacks the field 'model_fingerprint'"),
        (_run(status="done"), "status 'done' is not one of ok, failed"),
        (_run(config="m"), "field 'config' is 'm', not dict"),
        (_run(wall_s=True), "field 'wall_s' is True"),
        (_run(extra=1), "unknown run record field 'extra'"),
        ({"config": {}}, "(schema 1) lacks the field 'config_hash'"),
        ([1, 2], "not a run record (a JSON object), found list"),
    ],
    ids=["newer", "missing", "status", "type", "bool-is-no-number", "unknown", "schema-1-missing", "not-object"],
)
def test_bad_records_are_refused_by_name(tmp_path, data, message):
    path = tmp_path / "abc.json"
    path.write_text(json.dumps(data))
    with pytest.raises(results.RecordError) as err:
        results.read_run(path)
    assert message in str(err.value) and str(path) in str(err.value)
    assert isinstance(err.value, UsageError)  # the command line exits 2 with the message


def test_store_leaves_a_broken_file_out_by_name(tmp_path):
    (tmp_path / "abc.json").write_text("{")
    with pytest.raises(UsageError, match=r"holds no readable .*; unreadable: .*abc\.json \(unreadable \(JSONDecode"):
        results.load_store(tmp_path)
    (tmp_path / "good.json").write_text(json.dumps(_run(config_hash="good")))
    store = results.load_store(tmp_path)
    assert len(store.runs) == 1 and store.bad_files[0][0] == str(tmp_path / "abc.json")


def test_a_planned_run_without_a_record_stands_as_its_run_under_a_lower_cap(tmp_path):
    from effbench.train import TrainConfig

    planned = TrainConfig(model="tiny_hand", schedule="plateau", steps=400)
    capped, plateaued = planned.replace(steps=100), planned.replace(steps=200, seed=1)
    for cfg, on_plateau in ((capped, False), (plateaued, True), (planned.replace(steps=300, lr=0.5), False)):
        conv = {"stopped_on_plateau": on_plateau, "stop_step": cfg.steps}
        results.write_run(tmp_path, results.make_run_record(
            cfg.to_dict(), cfg.hash(), status="ok", error=None, metrics={"epe_px": 2.0}, device="cpu", wall_s=1.0,
            steps_per_s=1.0, convergence=conv))
    plan = [{"model": "tiny_hand", "aux": True, "seed": s, "config_hash": planned.replace(seed=s).hash()}
            for s in (0, 1)]
    results.write_json(results.manifest_path(tmp_path), {"runs": plan, "train": {"steps": 400}})
    runs = results.load_store(tmp_path).runs
    # Seed 0 stopped at its cap of 100: it stands in, marked; the lr 0.5 run is another config, whatever its cap.
    assert runs[0]["config_hash"] == capped.hash() and runs[0]["planned_steps"] == 400
    # Seed 1 stopped on its plateau rule before its cap of 200: under 400 it would have too, so it is the result.
    assert runs[1]["config_hash"] == plateaued.hash() and "planned_steps" not in runs[1]
    results.write_json(results.manifest_path(tmp_path), {"runs": plan[:1], "train": {"steps": 50}})
    assert results.load_store(tmp_path).runs[0]["status"] == "pending"  # a run of a higher cap is not a lower one's


class _Payload(nn.Module):
    pass


def test_checkpoint_is_atomic_and_loads_weights_only(tmp_path):
    path = tmp_path / "checkpoints" / "h.pt"
    results.save_checkpoint(path, {"w": torch.ones(2), "step": 3})
    assert results.load_checkpoint(path)["step"] == 3
    # A checkpoint holding an arbitrary object does not load: weights_only refuses to run its code.
    results.save_checkpoint(path, {"x": _Payload()})
    with pytest.raises(results.RecordError, match=f"{path}: not a readable checkpoint"):
        results.load_checkpoint(path)


def test_provenance_fields(tmp_path):
    prov = provenance.provenance("cpu", where=tmp_path)
    assert tuple(prov) == provenance.PROVENANCE_KEYS
    assert prov["commit"] is None  # not a repository
    assert provenance.git_commit() is not None  # effbench's own checkout
    assert provenance.describe_machine(prov["machine"]).endswith(f"{os.cpu_count()} cores")
