"""The GEMM roofline of this core: the multiply-accumulates per second a large fp32 matrix product reaches.

A model's latency alone does not say whether it is slow because it does much work or because it uses the core
badly. Its achieved rate (MACs / latency) against this roofline does: a network whose convolutions run as large
GEMMs gets near it (MobileNetV2 reaches about half under ONNX Runtime), one dominated by per-op overhead and data
movement stays far below. The roofline is measured in the same process run as the models, on the same thread
setting, with the same timing protocol, so that a busy machine lowers both.

The roofline is the faster of two fp32 GEMMs: torch's and ONNX Runtime's. Neither BLAS is the fastest everywhere: on
a 2-core AMD EPYC with AVX-512, idle, torch's matmul ran 51-52 GMAC/s on one thread and ONNX Runtime's 112-115, so a
roofline from torch alone had mobilenet_v2_100 under ONNX Runtime at 149% of it.
"""

from __future__ import annotations

import functools

import torch

from effbench.profiler.latency import TimingConfig, time_fn

#: Side of the square fp32 matrices multiplied: 512^3 = 134 M MACs, a few ms on one core, large enough for the
#: BLAS kernels to run at their peak, small enough to fit the measurement in well under a second.
GEMM_SIZE = 512

_TIMING = TimingConfig(warmup_s=0.05, warmup_runs=2, windows=5, budget_s=0.25, min_runs=10, max_s=1.0,
                       min_runs_slow=5, max_runs=200)


def gemm_gmacs(threads: int = 1, size: int = GEMM_SIZE, timing: TimingConfig = _TIMING) -> float:
    """GMAC/s of a ``size x size`` by ``size x size`` fp32 matmul on ``threads`` torch threads (the median run).

    torch's thread setting is restored afterwards.
    """
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(size, size, generator=g), torch.randn(size, size, generator=g)
    out = torch.empty(size, size)
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(threads)
        with torch.inference_mode():
            stats = time_fn(lambda: torch.mm(a, b, out=out), timing)
    finally:
        torch.set_num_threads(before)
    return size**3 / stats.median / 1e9


def ort_gemm_gmacs(threads: int = 1, size: int = GEMM_SIZE, timing: TimingConfig = _TIMING) -> float | None:
    """GMAC/s of the same product as one ONNX Runtime MatMul on ``threads`` intra-op threads (the median run); None
    when ``onnxruntime`` or ``onnx`` is not installed."""
    try:
        from onnx import TensorProto, helper

        from effbench.profiler.runtimes.ort import onnxruntime

        ort = onnxruntime()
    except ImportError:
        return None
    inputs = [helper.make_tensor_value_info(name, TensorProto.FLOAT, [size, size]) for name in ("a", "b")]
    output = helper.make_tensor_value_info("c", TensorProto.FLOAT, [size, size])
    graph = helper.make_graph([helper.make_node("MatMul", ["a", "b"], ["c"])], "gemm", inputs, [output])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    options = ort.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
    sess = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    g = torch.Generator().manual_seed(0)
    feeds = {name: torch.randn(size, size, generator=g).numpy() for name in ("a", "b")}
    stats = time_fn(lambda: sess.run(None, feeds), timing)
    return size**3 / stats.median / 1e9


@functools.lru_cache(maxsize=None)
def roofline_gmacs(threads: int = 1) -> float:
    """This process run's roofline on ``threads`` threads: the faster of torch's and ONNX Runtime's fp32 GEMM,
    measured on first use and kept for the run, so that every model profiled in the run is compared with the same
    figure."""
    return max(gemm_gmacs(threads), ort_gemm_gmacs(threads) or 0.0)
