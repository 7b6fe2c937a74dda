"""Deployment runtimes: ONNX Runtime's outputs equal eager PyTorch's for every registered model, the exact graph
passes (scalar affines folded into convolutions, non-integer bilinear resize as products) change no output and
refuse where they would, the timed loop's bound buffers, int8 keeps the soft-argmax head in fp32, a model the
exporter refuses is recorded with its reason, MLPerf Tiny windows, models timed in interleaved rounds, the roofline,
and nothing written under the home folder."""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from effbench import create_model, profile, registry
from effbench.measure import build_deployable, registered
from effbench.profiler import Stats, TimingConfig, roofline, runtimes as rt
from effbench.profiler.latency import deployed_copy, time_fn
from effbench.profiler.roofline import gemm_gmacs, ort_gemm_gmacs
from effbench.profiler.runtimes import onnx_export, onnx_passes
from effbench.profiler.runtimes.ort import BoundRun, OrtModel
from effbench.profiler.runtimes.ort_int8 import head_nodes, input_nodes

FAST = TimingConfig(warmup_s=0.0, warmup_runs=1, windows=2, budget_s=0.0, min_runs=2, min_runs_slow=2, max_runs=4)
REPO = Path(__file__).resolve().parents[1]


def _trained_like(model: nn.Module, seed: int = 0) -> nn.Module:
    """Random BatchNorm statistics (so that folding matters) and a sharp keypoint head (so that keypoints move with
    the features: a fresh head's near-uniform softmax puts every keypoint at the frame's centre)."""
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            n = m.num_features
            m.running_mean.copy_(0.1 * torch.randn(n, generator=g))
            m.running_var.copy_(0.5 + torch.rand(n, generator=g))
            m.weight.data.copy_(1 + 0.1 * torch.randn(n, generator=g))
    head = getattr(model, "heatmap", None)
    if isinstance(head, nn.Conv2d):
        head.weight.data.normal_(0.0, 1.0, generator=g)
    return model.eval()


def _input(shape: tuple[int, ...]) -> torch.Tensor:
    g = torch.Generator().manual_seed(1)
    if len(shape) == 4 and shape[1] == 1:
        return 300 + 700 * torch.rand(shape, generator=g)  # a depth frame, 0.3 to 1 m
    return torch.randn(shape, generator=g)


@pytest.mark.parametrize(
    "name", [pytest.param(n, marks=() if n == "tiny_hand" else pytest.mark.slow) for n in registry.list_models()]
)
def test_onnx_runtime_outputs_equal_eager(name, tmp_path):
    info = registry.model_info(name)
    torch.manual_seed(0)
    model = _trained_like(build_deployable(registered(name)))
    x = _input(info.input_shape)
    net, folded = deployed_copy(model)
    ws = rt.Workspace(net, x, tmp_path, folded)
    prepared = rt.get("ort").prepare(ws)
    out, ref = prepared.run(x), ws.reference_outputs()
    assert list(out) == list(ref)  # the same names, in the same order
    for k in ref:
        # Keypoints to 1e-3 px; other outputs (heatmap logits, class logits) to the same absolute tolerance.
        torch.testing.assert_close(out[k], ref[k], atol=1e-3, rtol=1e-4, msg=f"{name}: output {k}")
    # The file holds every weight once, at 4 bytes, and a little graph.
    params = sum(p.numel() for p in net.parameters())
    assert 4 * params <= prepared.file_bytes <= 4 * params * 1.02 + 80_000


def test_int8_keeps_the_soft_argmax_head_in_fp32(tmp_path):
    import onnx

    torch.manual_seed(0)
    model = _trained_like(create_model("tiny_hand").deployable())
    x = _input((1, 1, 120, 160))
    ws = rt.Workspace(deployed_copy(model)[0], x, tmp_path)
    fp32 = onnx.load(str(onnx_export.exported(ws)))
    by_name = {n.name: n for n in fp32.graph.node}
    # Everything after the heatmap convolution: the soft-argmax's reshape, softmax and expectation matmul.
    assert sorted(by_name[n].op_type for n in head_nodes(fp32)) == ["MatMul", "Reshape", "Softmax"]
    prepared = rt.get("ort-int8").prepare(ws)
    int8 = onnx.load(str(prepared.path))
    producer = {o: n for n in int8.graph.node for o in n.output}
    softmax = next(n for n in int8.graph.node if n.op_type == "Softmax")
    assert producer[softmax.input[0]].op_type != "DequantizeLinear"  # the softmax reads fp32, not int8 levels
    assert sum(n.op_type == "QuantizeLinear" for n in int8.graph.node) >= 9  # the convolutions' inputs are int8
    assert prepared.file_bytes < 0.7 * onnx_export.exported(ws).stat().st_size  # int8 weights
    assert prepared.run(x)["keypoints"].shape == (1, 8, 2)  # its accuracy: test_runtime_eval.py


def test_int8_keeps_the_inputs_preprocessing_and_first_convolutions_in_fp32(tmp_path):
    """The two-stage net crops the depth frame (mm) and makes it relative to the hand's distance before its stems:
    quantized, those millimetres cost it 16-17% EPE and the stems' int8 inputs up to 57%."""
    import onnx

    torch.manual_seed(0)
    model = _trained_like(create_model("tiny_hand_crop").deployable())
    x = _input((1, 1, 120, 160))
    ws = rt.Workspace(deployed_copy(model)[0], x, tmp_path)
    fp32 = onnx.load(str(onnx_export.exported(ws)))
    ops = {n.name: n.op_type for n in fp32.graph.node}
    found = [ops[n] for n in input_nodes(fp32)]
    assert "GatherElements" in found and "Where" in found  # the crop and the relative depth
    assert found.count("Conv") == 2 and "Relu" not in found  # the two stems, and nothing after them
    int8 = onnx.load(str(rt.get("ort-int8").prepare(ws).path))
    producer = {o: n for n in int8.graph.node for o in n.output}
    gather = next(n for n in int8.graph.node if n.op_type == "GatherElements")
    assert producer[gather.input[0]].op_type != "DequantizeLinear"  # the crop reads the frame's millimetres
    reads_int8 = [producer[c.input[0]].op_type == "DequantizeLinear" for c in int8.graph.node if c.op_type == "Conv"]
    assert reads_int8.count(False) == 2 and reads_int8.count(True) >= 20  # the stems read fp32, the rest int8


class _Affine(nn.Module):
    """A fixed depth normalisation as the hand-pose nets have it: ``(x - center) * (1 / scale)``."""

    def forward(self, x):
        return (x - 500.0) * (1.0 / 250.0)


class _PatchNet(nn.Module):
    """An input affine, a first convolution (a 4x4 stride-4 patch conv, or a padded 3x3 one), then a map upsampled
    bilinearly by a non-integer factor (7 x 10 to 15 x 20) and by an integer one (to 30 x 40)."""

    def __init__(self, padded: bool = False):
        super().__init__()
        self.norm = _Affine()
        self.stem = nn.Conv2d(1, 4, 3, 4, padding=1) if padded else nn.Conv2d(1, 4, 4, 4)
        self.down = nn.Conv2d(4, 4, 4, 4)

    def forward(self, x):
        f = torch.relu(self.stem(self.norm(x)))
        up = nn.functional.interpolate(self.down(f), size=(15, 20), mode="bilinear", align_corners=False)
        return nn.functional.interpolate(up, size=(30, 40), mode="bilinear", align_corners=False)


def _frames(n: int = 4) -> list[torch.Tensor]:
    """Random depth frames with holes (0 mm) in a corner block and scattered pixels, as a depth camera gives them."""
    g = torch.Generator().manual_seed(2)
    frames = []
    for _ in range(n):
        x = 300 + 700 * torch.rand((1, 1, 120, 160), generator=g)
        x[..., :13, :21] = 0
        x[torch.rand(x.shape, generator=g) < 0.1] = 0
        frames.append(x)
    return frames


def _op_types(path) -> list[str]:
    import onnx

    return [n.op_type for n in onnx.load(str(path)).graph.node]


@pytest.mark.parametrize("name, head", [("tiny_hand", ["Clip"]), ("tiny_hand_hm4", [])])
def test_depth_norm_folds_into_tiny_hands_patch_stem(tmp_path, name, head):
    """tiny_hand's stem pads nothing: the folded graph starts at the convolution (after the input clamp, which
    stays) and gives the same outputs as the exported one, holes (0 mm) and depths beyond the clamp included."""
    torch.manual_seed(0)
    net, folded = deployed_copy(_trained_like(create_model(name).deployable()))
    frames = [1.8 * x for x in _frames()]  # 540-1800 mm: some beyond tiny_hand's 1000 mm clamp
    ws = rt.Workspace(net, frames[0], tmp_path, folded)
    plain = OrtModel(onnx_export.exported(ws), folded)
    fused = OrtModel(onnx_passes.deployed(ws, (onnx_passes.fold_affine_into_conv,)), folded)
    assert _op_types(plain.path)[:len(head) + 3] == [*head, "Sub", "Mul", "Conv"]
    assert _op_types(fused.path)[:len(head) + 1] == [*head, "Conv"]
    for x in frames:
        out, ref = fused.run(x), plain.run(x)
        for k in ref:
            torch.testing.assert_close(out[k], ref[k], atol=1e-4, rtol=0, msg=f"output {k}")
    assert fused.file_bytes <= plain.file_bytes + 4 * 16 + 200  # one bias vector more, nothing else


def test_a_two_stage_nets_depth_scalings_fold_into_both_stems(tmp_path):
    """tiny_hand_crop's frame has several readers (the locator's clamp, the nearest-depth pool, the crop), and its
    keypoint stem reads the crop's relative depth scaled to +-1: both affines fold (the locator's Sub and Mul, the
    keypoint stem's Mul), and the keypoints stay where the exported graph puts them."""
    torch.manual_seed(0)
    net, folded = deployed_copy(_trained_like(create_model("tiny_hand_crop").deployable()))
    frames = _frames(3)
    for x in frames:
        x[..., 40:80, 60:100] = 400.0  # a near surface for the locator to find
    ws = rt.Workspace(net, frames[0], tmp_path, folded)
    plain = OrtModel(onnx_export.exported(ws), folded)
    fused = OrtModel(onnx_passes.deployed(ws, (onnx_passes.fold_affine_into_conv,)), folded)
    before, after = _op_types(plain.path), _op_types(fused.path)
    assert (before.count("Sub") - after.count("Sub"), before.count("Mul") - after.count("Mul")) == (1, 2)
    assert len(before) - len(after) == 3
    for x in frames:
        out, ref = fused.run(x), plain.run(x)
        torch.testing.assert_close(out["keypoints"], ref["keypoints"], atol=1e-3, rtol=0)


def test_an_affine_is_not_folded_into_a_padded_conv(tmp_path):
    """A padded border reads a normalised 0 (a raw 500 mm) where a folded convolution would read a raw 0: not exact,
    so the graph is left as it is."""
    import onnx

    ws = rt.Workspace(_PatchNet(padded=True).eval(), _frames(1)[0], tmp_path)
    model = onnx.load(str(onnx_export.exported(ws)))
    before = model.SerializeToString()
    assert onnx_passes.fold_affine_into_conv(model) is False
    assert model.SerializeToString() == before


def test_non_integer_bilinear_resize_as_products(tmp_path):
    """The 7 x 10 -> 15 x 20 resize becomes two MatMuls, the integer 2x one stays a Resize (ONNX Runtime's blocked
    kernel runs it faster); the deployed graph equals eager PyTorch and the exported graph."""
    ws = rt.Workspace(_PatchNet().eval(), _frames(1)[0], tmp_path)
    plain = OrtModel(onnx_export.exported(ws), True)
    deployed = rt.get("ort").prepare(ws)
    assert _op_types(plain.path).count("Resize") == 2 and _op_types(plain.path)[:2] == ["Sub", "Mul"]
    ops = _op_types(deployed.path)
    assert ops.count("Resize") == 1 and ops.count("MatMul") == 2 and "Sub" not in ops and "Mul" not in ops
    for x in _frames():
        with torch.no_grad():
            ref = ws.model(x)
        torch.testing.assert_close(deployed.run(x)["output"], ref, atol=1e-4, rtol=0)
        torch.testing.assert_close(plain.run(x)["output"], ref, atol=1e-4, rtol=0)
    for n_in, n_out in ((7, 15), (10, 20), (15, 30), (5, 3)):
        x = torch.randn(1, 1, 1, n_in, dtype=torch.float64)
        ref = nn.functional.interpolate(x, size=(1, n_out), mode="bilinear", align_corners=False)
        matrix = torch.from_numpy(onnx_passes.interpolation_matrix(n_in, n_out))
        torch.testing.assert_close(matrix @ x[0, 0, 0], ref[0, 0, 0])


def test_timed_loop_runs_on_bound_buffers(tmp_path):
    """The timed call writes into buffers bound once; they hold what a plain ``session.run`` returns."""
    torch.manual_seed(0)
    net, folded = deployed_copy(_trained_like(create_model("tiny_hand").deployable()))
    x = _frames(1)[0]
    prepared = rt.get("ort").prepare(rt.Workspace(net, x, tmp_path, folded))
    with prepared.runner(x, 1) as call:
        assert isinstance(call, BoundRun)
        call()
        bound = call.outputs()
    assert list(bound) == ["keypoints", "heatmaps"]
    for k, v in prepared.run(x).items():
        torch.testing.assert_close(torch.from_numpy(bound[k]), v, atol=0, rtol=0)


class _Branchy(nn.Module):
    """Data-dependent Python control flow: the exporter cannot trace it; eager PyTorch runs it."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 2, 3)

    def forward(self, x):
        y = self.conv(x)
        return y if y.flatten().tolist()[0] > 0 else -y


def test_unexportable_model_is_recorded_with_the_exporters_reason():
    row = profile(_Branchy(), (1, 1, 8, 8), peers=False, timing=FAST, runtimes=("eager", "ort", "ort-int8")).as_dict()
    assert row["latency_ms_1t"] > 0  # eager still timed
    assert row["runtime_error_ort"].startswith("export failed: ") and "data-dependent" in row["runtime_error_ort"]
    assert row["runtime_error_ort_int8"] == row["runtime_error_ort"]  # one export, shared
    assert row["latency_ms_1t_ort"] is None and row["hz_1t_ort"] is None and row["file_bytes_ort"] is None
    assert len(row["runtime_error_ort"]) <= 320 and "\n" not in row["runtime_error_ort"]


def test_profile_row_by_runtime():
    model = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8), nn.ReLU(),
                          nn.Conv2d(8, 4, 3, padding=1))  # fmt: skip
    p = profile(model, (1, 1, 16, 16), peers=False, timing=FAST, threads=2, runtimes=("eager", "ort", "ort-int8"))
    row = p.as_dict()
    assert list(p.runtimes) == ["eager", "ort", "ort-int8"]
    for s in ("", "_ort", "_ort_int8"):
        assert row[f"latency_ms_1t{s}"] > 0 and row[f"hz_1t{s}"] == pytest.approx(1e3 / row[f"latency_ms_1t{s}"])
        assert row[f"latency_ms_mt{s}"] > 0 and row[f"latency_runs_1t{s}"] == 2  # 2 windows x 1 run
        assert row[f"gmacs_1t{s}"] == pytest.approx(p.macs / row[f"latency_ms_1t{s}"] / 1e6)
        assert row[f"roofline_frac_1t{s}"] == pytest.approx(row[f"gmacs_1t{s}"] / row["roofline_gmacs_1t"])
        assert row[f"runtime_error{s}"] is None
    assert row["runtime_version"] == f"torch {torch.__version__}"
    assert row["runtime_version_ort"].startswith("onnxruntime ") and row["file_bytes"] is None
    assert row["max_diff_ort"] < 1e-4 and row["file_bytes_ort"] > 4 * 8 * 9
    assert row["latency_bn_folded"] is True and row["threads_mt"] == 2
    eager_only = profile(model, (1, 1, 16, 16), peers=False, timing=FAST).as_dict()
    assert "latency_ms_1t_ort" not in eager_only and eager_only["latency_ms_1t"] > 0


def test_unknown_runtime_is_a_usage_error():
    from effbench.errors import UsageError

    with pytest.raises(UsageError, match="unknown runtime 'ort_int8'; closest: ort-int8"):
        rt.parse("eager,ort_int8")
    assert rt.parse(" ort , eager,ort") == ["ort", "eager"]


def test_windows_median_of_medians():
    s = Stats.from_samples([1.0, 2.0, 9.0, 4.0, 5.0, 6.0], [3, 3])
    assert s.window_medians == (2.0, 5.0) and s.median == 3.5  # not 4.5, the median of all six
    assert s.spread == pytest.approx(3.0 / 3.5)
    assert Stats.from_samples([1.0, 3.0]).median == 2.0  # one window: the plain median
    with pytest.raises(ValueError):
        Stats.from_samples([1.0, 2.0], [3])
    stats = time_fn(lambda: None, TimingConfig(warmup_s=0, warmup_runs=1, windows=5, budget_s=0, min_runs=10,
                                               max_runs=500))  # fmt: skip
    assert stats.windows == (2, 2, 2, 2, 2)  # min_runs spread over the windows


class _DriftingClock:
    """A machine that slows down as it runs: a call of ``cost`` seconds of work takes ``cost * (1 + 2 t)``."""

    def __init__(self):
        self.t = 0.0

    def perf_counter(self) -> float:
        return self.t

    def work(self, cost: float):
        return lambda: setattr(self, "t", self.t + cost * (1 + 2 * self.t))


def test_interleaved_rounds_cancel_the_machines_drift(monkeypatch):
    from effbench.profiler import latency

    config = TimingConfig(warmup_s=0, warmup_runs=1, windows=5, budget_s=0.05, min_runs=5, max_runs=500)
    clock = _DriftingClock()
    monkeypatch.setattr(latency, "time", clock)  # the timed loop reads this clock
    fast, slow = clock.work(1e-3), clock.work(3e-3)
    # One after the other, the slow model runs on a slower machine: the ratio is off by the drift.
    sequential = time_fn(slow, config).median / time_fn(fast, config).median
    clock.t = 0.0
    stats = latency.time_interleaved({"fast": fast, "slow": slow}, config)
    interleaved = stats["slow"].median / stats["fast"].median
    assert abs(interleaved - 3) < 0.1 < abs(sequential - 3)
    assert len(stats["fast"].windows) == len(stats["slow"].windows) == 5


def test_interleaved_rounds_rotate_and_a_failure_stops_only_its_function():
    calls: list[str] = []

    def fn(name: str):
        return lambda: calls.append(name)

    def broken():
        calls.append("b")
        if calls.count("b") > 3:  # fails as its second window warms up
            raise RuntimeError("lost the device")

    from effbench.profiler.latency import time_interleaved

    config = TimingConfig(warmup_s=0, warmup_runs=1, windows=3, budget_s=0, min_runs=3, max_runs=30)
    stats = time_interleaved({"a": fn("a"), "b": broken, "c": fn("c")}, config)
    assert isinstance(stats["b"], RuntimeError) and list(stats) == ["a", "b", "c"]
    assert stats["a"].windows == stats["c"].windows == (1, 1, 1)
    # After one warm-up run each, every window is one warm-up run and one timed run of the same function.
    windows = [k for k, _ in itertools.groupby(calls[3:])]
    assert windows == ["a", "b", "c", "b", "c", "a", "c", "a"]  # each round starts one later; b stopped in round 2
    assert time_interleaved({}, config) == {}  # nothing left to time (every runtime failed to prepare)


def test_models_timed_together_keep_their_own_results():
    """Two models in one set of rounds: each gets its own latency under each runtime; one the exporter refuses
    records why and the other is timed."""
    conv = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU()).eval()
    x = torch.randn(1, 1, 8, 8)
    out = rt.measure_together([(conv, x, False), (_Branchy().eval(), x, False)], ["eager", "ort"], threads=2,
                              timing=FAST)
    assert out[0]["ort"].latency_1t.runs == 2 and out[0]["ort"].latency_mt.runs == 2 and not out[0]["ort"].error
    assert out[0]["ort"].max_diff < 1e-5 and out[0]["ort"].file_bytes > 4 * 9 * 4
    assert out[1]["eager"].latency_1t.runs == 2 and out[1]["ort"].latency_1t is None
    assert out[1]["ort"].error.startswith("export failed: ")


def test_roofline_is_a_rate():
    small = TimingConfig(warmup_s=0, warmup_runs=1, windows=2, budget_s=0, min_runs=2, max_runs=2)
    assert 0.1 < gemm_gmacs(1, size=128, timing=small) < 10_000  # GMAC/s of one core, any CPU
    assert 0.1 < ort_gemm_gmacs(1, size=128, timing=small) < 10_000


def test_roofline_is_the_faster_gemm(monkeypatch):
    """No BLAS is the fastest on every CPU: a model may not run above the roofline because torch's was the slower."""
    for torch_rate, ort_rate, expected in ((40.0, 100.0, 100.0), (60.0, 50.0, 60.0), (45.0, None, 45.0)):
        monkeypatch.setattr(roofline, "gemm_gmacs", lambda threads, r=torch_rate: r)
        monkeypatch.setattr(roofline, "ort_gemm_gmacs", lambda threads, r=ort_rate: r)
        roofline.roofline_gmacs.cache_clear()
        assert roofline.roofline_gmacs(1) == expected
    roofline.roofline_gmacs.cache_clear()


def test_nothing_written_outside_the_temp_dir(tmp_path):
    """ONNX Runtime writes telemetry and a device id under the home folder unless told not to; the int8 calibration
    frames go to the system temp folder. A profile run under all three runtimes leaves home and cwd empty."""
    home, work, tmp = tmp_path / "home", tmp_path / "work", tmp_path / "tmp"
    for d in (home, work, tmp):
        d.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("ORT_DISABLE_TELEMETRY", "XDG_CACHE_HOME")}
    env.update(HOME=str(home), TMPDIR=str(tmp), PYTHONPATH=str(REPO))
    done = subprocess.run(
        [sys.executable, str(REPO / "bench.py"), "profile", "--model", "tiny_hand_slim", "--no-peers", "--json",
         "--runtime", "eager,ort,ort-int8"],
        cwd=work, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    row = json.loads(done.stdout)[0]
    assert row["hz_1t_ort_int8"] > 0 and row["runtime_error_ort_int8"] is None
    assert not list(home.rglob("*")), f"written under home: {list(home.rglob('*'))}"
    assert not list(work.iterdir())
    assert [p.name for p in tmp.iterdir()] == ["effbench-calibration"]  # the exports' folder is gone too


@pytest.mark.slow
def test_executorch_fp32_and_int8_on_one_thread(tmp_path):
    """The optional ExecuTorch runtimes (``pip install -e ".[executorch]"``): XNNPACK's outputs equal eager's, int8
    halves the program, and its thread pool is timed on 1 thread only."""
    why = rt.get("executorch").missing()
    if why is not None:
        pytest.skip(why)
    torch.manual_seed(0)
    model = _trained_like(create_model("tiny_hand").deployable())
    x = _input((1, 1, 120, 160))
    net, folded = deployed_copy(model)
    results = rt.measure(net, x, ["executorch", "executorch-int8"], threads=2, timing=FAST, bn_folded=folded,
                         calibration_dir=tmp_path)  # fmt: skip
    fp32, int8 = results["executorch"], results["executorch-int8"]
    assert fp32.error is None and int8.error is None, (fp32.error, int8.error)
    assert fp32.max_diff < 1e-3 and fp32.version.startswith("executorch ")
    assert fp32.latency_1t.median > 0 and fp32.latency_mt is None and fp32.threads_mt is None
    assert int8.file_bytes < 0.7 * fp32.file_bytes
