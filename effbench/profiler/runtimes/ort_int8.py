"""ONNX Runtime int8: the exported fp32 file quantized statically (QDQ, per-channel weights), head kept in fp32.

The file quantized has the exact input fold of :data:`~effbench.profiler.runtimes.onnx_passes.INT8_PASSES` applied
first: the input's uint8 levels move with the affine (the calibrated range is its image), so int8 computes nearly
the same (a trained ``tiny_hand``: test EPE 8.184 against 8.186 px unfolded, 256 frames) without two elementwise
ops on the full-size input (6% faster).

Static quantization fixes every activation's int8 range from calibration inputs
(:mod:`~effbench.profiler.runtimes.calibration`), so the runtime never measures ranges while it runs; weights are
int8 per output channel, activations uint8 (ONNX Runtime's recommended pairing on x86, and a no-saturation
choice on CPUs without VNNI).

The head stays fp32: every node after the last convolution on the way to each output (a soft-argmax decode, a
classifier's pooling and linear layer). A soft-argmax reads 1,200 probabilities from a softmax whose
input, quantized to 256 levels, flattens the peak: quantizing it moved a trained ``tiny_hand``'s keypoints by
8.8 px on average (its test EPE was 13.3 px), keeping it in fp32 by 0.47 px (256 test frames, 32 calibration
frames).

So does the input's preprocessing and the first convolution: every node from the graph's input up to and including
the first convolution on each path (a clamp, a crop, depth made relative to the hand's distance, the stem).
Quantized, the depth frame in millimetres is 256 levels of ~12 mm before a crop and a subtraction look at it, when
a finger is ~15 mm thick: two converged ``tiny_hand_crop`` runs lost 16-17% EPE in int8 with it quantized, 1.2% and
2.6% without (1,024 test frames). A third lost 57% with only its stems reading int8 levels of the relative depth
(8.03 against 5.13 px, 256 test frames), -0.8% with them in fp32. The stems are one input channel each, a few
percent of the MACs; ``tiny_hand``'s int8 EPE is the same either way (7.32 against 7.31 px fp32).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from effbench.profiler.runtimes import calibration, onnx_export, onnx_passes
from effbench.profiler.runtimes.base import Prepared, Runtime, RuntimeFailure, Workspace
from effbench.profiler.runtimes.ort import OrtModel, OrtRuntime, onnxruntime

#: Ops that end the head's walk back from an output: the last layers with weights, which are quantized.
_WEIGHTED_OPS = frozenset({"Conv", "ConvTranspose", "Gemm"})


def head_nodes(model: Any) -> list[str]:
    """Names of the nodes after the last convolution (or Gemm) on the way to each output of an ONNX model.

    Walks back from every graph output through the nodes that produce it, stopping at a Conv, ConvTranspose or
    Gemm (not included) and at the graph's inputs. A model without such a layer is all head.
    """
    producer = {out: node for node in model.graph.node for out in node.output}
    head: dict[str, None] = {}
    todo = [o.name for o in model.graph.output]
    seen: set[str] = set()
    while todo:
        tensor = todo.pop()
        node = producer.get(tensor)
        if node is None or tensor in seen or node.op_type in _WEIGHTED_OPS:
            continue
        seen.add(tensor)
        head[node.name] = None
        todo += [t for t in node.input if t]
    return list(head)


def input_nodes(model: Any) -> list[str]:
    """Names of the nodes from the graph's inputs up to and including the first convolution (or Gemm) on each path
    of an ONNX model: :func:`head_nodes` walked forward from the inputs, with the layer it stops at."""
    consumers: dict[str, list[Any]] = {}
    for node in model.graph.node:
        for tensor in node.input:
            consumers.setdefault(tensor, []).append(node)
    found: dict[str, None] = {}
    todo = [i.name for i in model.graph.input]
    while todo:
        for node in consumers.get(todo.pop(), []):
            if node.name in found:
                continue
            found[node.name] = None
            if node.op_type not in _WEIGHTED_OPS:
                todo += list(node.output)
    return list(found)


class _Frames:
    """Calibration inputs as ONNX Runtime's quantizer reads them (``CalibrationDataReader``'s protocol)."""

    def __init__(self, frames: list[Any]):
        self._feeds = iter([{onnx_export.INPUT_NAME: f.numpy()} for f in frames])

    def get_next(self) -> dict[str, Any] | None:
        return next(self._feeds, None)

    def __iter__(self):  # the protocol's base class is iterable too
        return iter(self.get_next, None)


def fp32_nodes(model: Any) -> list[str]:
    """The nodes :func:`quantize` leaves in fp32: the input's preprocessing, the first convolutions and the head."""
    return list(dict.fromkeys(input_nodes(model) + head_nodes(model)))


def quantize(fp32: Path, out: Path, frames: list[Any]) -> Path:
    """Quantize the fp32 ONNX file ``fp32`` to ``out``: static QDQ, int8 per-channel weights, uint8 activations,
    calibrated (min-max) on ``frames``, the input's preprocessing and first convolutions (:func:`input_nodes`) and
    the head (:func:`head_nodes`) left in fp32.

    Raises:
        RuntimeFailure: When ONNX Runtime's quantizer fails (its reason, one line).
    """
    import onnx

    onnxruntime()  # the quantizer imports onnxruntime: telemetry off first
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    prepared = out.with_name(out.stem + "-pre.onnx")
    try:
        # Shape inference and ONNX Runtime's basic fusions first, as its quantization guide says: the quantizer
        # needs every tensor's shape, and a fused graph has fewer tensors to quantize.
        quant_pre_process(str(fp32), str(prepared), skip_symbolic_shape=True)
        quantize_static(
            str(prepared), str(out), _Frames(frames), quant_format=QuantFormat.QDQ, per_channel=True,
            weight_type=QuantType.QInt8, activation_type=QuantType.QUInt8,
            nodes_to_exclude=fp32_nodes(onnx.load(str(prepared))), calibrate_method=CalibrationMethod.MinMax,
        )  # fmt: skip
    except Exception as err:
        first = next((ln for ln in str(err).splitlines() if ln.strip()), type(err).__name__)
        raise RuntimeFailure(f"int8 quantization failed: {type(err).__name__}: {first[:300]}") from err
    finally:
        prepared.unlink(missing_ok=True)
    return out


class OrtInt8Runtime(Runtime):
    """ONNX Runtime running the statically quantized int8 model."""

    name = "ort-int8"
    title = "ONNX Runtime int8"
    install = OrtRuntime.install

    def missing(self) -> str | None:
        return OrtRuntime().missing()

    def version(self) -> str:
        return OrtRuntime().version()

    def prepare(self, workspace: Workspace) -> Prepared:
        fp32 = onnx_passes.deployed(workspace, onnx_passes.INT8_PASSES)
        path = quantize(fp32, workspace.folder / "model-int8.onnx", calibration.frames(workspace))
        return OrtModel(path, workspace.bn_folded)
