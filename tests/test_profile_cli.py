"""``bench.py profile``: table, JSON, CSV, breakdowns, and one-line usage errors with exit 2."""

import csv
import io
import json

import pytest
from torch import nn

from effbench import registry
from effbench.cli import main


class _Trained(nn.Module):
    """A trained form with an auxiliary head; ``deployable()`` drops it."""

    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1, bias=False), nn.ReLU())
        self.aux = nn.Linear(100, 100)

    def forward(self, x):
        return {"y": self.body(x)}

    def deployable(self):
        return self.body


@pytest.fixture
def tiny_model():
    @registry.register_model(input_shape=(1, 1, 6, 6))
    def _test_profile_tiny(**kw):
        return _Trained()

    yield "_test_profile_tiny"
    registry._models.pop("_test_profile_tiny")


def test_table(tiny_model, capsys):
    assert main(["profile", "--model", tiny_model, "--no-latency", "--no-peers", "--by-module", "--by-op"]) == 0
    out = capsys.readouterr().out
    assert tiny_model in out and "MMACs" in out and "MFLOPs" in out
    assert "FLOPs = 2 x MACs" in out  # the counting rule stands under the table
    assert "by module" in out and "by op" in out and "convolution" in out


def test_json_profiles_deployable_form(tiny_model, capsys):
    assert main(["profile", "--model", tiny_model, "--json", "--no-latency", "--no-peers"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert len(rows) == 1 and rows[0]["model"] == tiny_model
    assert rows[0]["params"] == 4 * 9  # the auxiliary Linear is not part of the deployable form
    assert rows[0]["macs"] == 4 * 6 * 6 * 9
    assert rows[0]["latency_ms_1t"] is None


def test_csv_with_input_shape_override(tiny_model, capsys):
    args = ["profile", "--model", tiny_model, "--input-shape", "1,1,4,4", "--csv", "--no-latency", "--no-peers"]
    assert main(args) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert rows[0]["model"] == tiny_model and rows[0]["input_shape"] == "1x1x4x4"
    assert int(rows[0]["macs"]) == 4 * 4 * 4 * 9


def test_module_factory_named_after_it_default_shape(capsys):
    args = ["profile", "--module", "torch.nn:Identity", "--input-shape", "1,3,4,4", "--json", "--no-latency"]
    assert main(args) == 0
    row = json.loads(capsys.readouterr().out)[0]
    assert row["model"] == "Identity" and row["macs"] == 0 and row["params"] == 0
    assert main(["profile", "--module", "torch.nn:Identity", "--json", "--no-latency", "--no-peers"]) == 0
    assert json.loads(capsys.readouterr().out)[0]["input_shape"] == "1x1x120x160"  # the gate's default too


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--model", "mobilenet_v2_100_imagnet"], "closest: mobilenet_v2_100_imagenet"),
        (["--module", "no_such_pkg.mod:make", "--input-shape", "1,3,8,8"], "cannot import 'no_such_pkg.mod'"),
        (["--module", "torch.nn:NoSuchLayer", "--input-shape", "1,3,8,8"], "has no callable 'NoSuchLayer'"),
        (["--module", "torch:__version__", "--input-shape", "1,3,8,8"], "not callable"),
        (["--module", "torch.nn.Identity"], "must look like pkg.mod:factory or path/to/file.py:factory"),
        (["--module", "models/toy:net"], "a file must end in .py"),
        (["--module", "no/such/file.py:net"], "no file 'no/such/file.py'"),
        (["--model", "resnet18_imagenet", "--input-shape", "1,5,32,32"], "rejects input shape 1x5x32x32"),
        (["--model", "resnet18_imagenet", "--input-shape", "1,a,32"], "--input-shape '1,a,32'"),
        ([], "nothing to profile"),
        (["--model", "resnet18_imagenet", "--runtime", "eager,onnxruntime"], "unknown runtime 'onnxruntime'"),
    ],
    ids=["unknown-model", "module-import", "module-attr", "module-not-callable", "module-spec", "module-path-not-py",
         "module-no-file", "rejected-shape", "bad-shape", "nothing", "unknown-runtime"],  # fmt: skip
)
def test_usage_errors_exit_2(args, message, capsys):
    assert main(["profile", "--no-latency", "--no-peers", *args]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err
    assert len(err.splitlines()) == 1


def test_runtimes_table_and_json(tiny_model, capsys):
    assert main(["profile", "--model", tiny_model, "--no-peers", "--runtime", "eager,ort"]) == 0
    out = capsys.readouterr().out
    assert "latency by runtime" in out and "GEMM roofline of this core, this run" in out
    table = out[out.index("latency by runtime"):].splitlines()
    assert [line.split()[1] for line in table if line.startswith(tiny_model)] == ["eager", "ort"]
    assert main(["profile", "--model", tiny_model, "--no-peers", "--json", "--runtime", "ort"]) == 0
    row = json.loads(capsys.readouterr().out)[0]
    assert row["latency_ms_1t_ort"] > 0 and row["file_bytes_ort"] > 4 * 36 and row["runtime_error_ort"] is None
    assert row["latency_ms_1t"] is None and "latency_ms_1t_ort_int8" not in row  # only the runtimes asked for


def test_reference_column_divides_by_the_named_model(tiny_model, capsys):
    args = ["profile", "--model", tiny_model, "--model", "tiny_hand", "--no-peers", "--runtime", "ort"]
    assert main([*args, "--reference", "tiny_hand"]) == 0
    out = capsys.readouterr().out
    assert "x ref: the median over tiny_hand's under the same runtime, same run" in out
    rows = {line.split()[0]: line.split() for line in out[out.index("latency by runtime"):].splitlines()[3:]
            if line.split() and line.split()[1] == "ort"}
    assert rows["tiny_hand"][5] == "1.000"  # ms 1t, CV, Hz, then x ref
    hz = {name: float(row[4].replace(",", "")) for name, row in rows.items()}  # more digits than ms
    assert float(rows[tiny_model][5]) == pytest.approx(hz["tiny_hand"] / hz[tiny_model], rel=0.05, abs=1e-3)
    assert main([*args, "--reference", "tiny_hnd"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == "error: --reference 'tiny_hnd' is not among the profiled models; closest: tiny_hand"


def test_a_missing_runtime_is_skipped_with_a_line(tiny_model, capsys, monkeypatch):
    from effbench.profiler import runtimes

    monkeypatch.setattr(runtimes.get("ort-int8"), "missing", lambda: "onnxruntime is not installed (pip install ...)")
    assert main(["profile", "--model", tiny_model, "--no-peers", "--json", "--runtime", "eager,ort-int8"]) == 0
    captured = capsys.readouterr()
    assert captured.err == "effbench: runtime ort-int8 skipped: onnxruntime is not installed (pip install ...)\n"
    row = json.loads(captured.out)[0]
    assert row["latency_ms_1t"] > 0 and "latency_ms_1t_ort_int8" not in row
