"""Exact deployment-time rewrites of an exported ONNX graph, applied the same way to every model before ONNX Runtime
runs it.

Each pass changes how the graph computes, never what: it applies only where the rewrite is exact (up to float
rounding), and leaves the graph alone elsewhere. They are what a device build does offline, measured where a small
net loses time to ONNX Runtime's kernels rather than to its multiply-accumulates:

- :func:`fold_affine_into_conv`: elementwise scalar affines that feed a convolution (a fixed depth normalisation,
  ``(x - c) * k``; a two-stage net's scaling of its cropped depth) folded into its weights and bias, which is exact
  only when that convolution pads nothing (a padded border would read a normalised 0, that is a raw ``c``, where the
  folded conv reads a raw 0).
- :func:`resize_as_matmul`: a bilinear ``Resize`` by a non-integer factor (7 x 10 to 15 x 20, an odd map size
  upsampled to the next level) written as two matrix products with fixed interpolation matrices. ONNX Runtime runs an
  integer-factor resize in its blocked (NCHWc) layout, but a non-integer one in plain NCHW through its generic
  kernel, nearly as slow as ``tiny_hand``'s largest convolution; the products took 5-7% off its whole latency. An
  integer-factor resize is left alone (its blocked kernel beat the products by 7%).

Measured on ``tiny_hand`` (1 thread, ratios within one process): the fold 3.5% faster, the products 5-7%, both with
bound buffers 13-15% against the plain export run by ``session.run``. On ``tiny_hand_crop`` the fold takes three
elementwise ops over the frame or the crop (its locator's normalisation, its keypoint stem's scaling): 3.7-3.9%
faster (the 5th to 50th percentiles of 10,000 single inferences each, interleaved, in two process runs: 144-150
against 149-156 us). Tried and not kept (no gain): dropping the ``heatmaps`` output (under 1%), the resize as one
product with the Kronecker matrix (and the following Add in a Gemm), the stem as a reshape plus a convolution over
rows or as space-to-depth plus a 1x1 (6% and 75% slower).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from effbench.profiler.runtimes import onnx_export
from effbench.profiler.runtimes.base import Workspace

#: Elementwise ops a foldable affine is made of, with a scalar constant on one side.
_AFFINE_OPS = frozenset({"Sub", "Add", "Mul", "Div"})


def constant(model: Any, name: str) -> np.ndarray | None:
    """The value of tensor ``name`` if it is a constant of the graph (an initializer or a ``Constant`` node), else
    None."""
    from onnx import numpy_helper

    for init in model.graph.initializer:
        if init.name == name:
            return numpy_helper.to_array(init)
    for node in model.graph.node:
        if node.op_type == "Constant" and node.output[0] == name and node.attribute[0].name == "value":
            return numpy_helper.to_array(node.attribute[0].t)
    return None


def _consumers(model: Any, tensor: str) -> list[Any]:
    return [n for n in model.graph.node if tensor in n.input]


def _attr(node: Any, name: str, default: Any = None) -> Any:
    from onnx import helper

    return next((helper.get_attribute_value(a) for a in node.attribute if a.name == name), default)


def _scalar_step(model: Any, node: Any, x: str) -> tuple[float, float] | None:
    """``node`` as ``x -> a * x + b`` when it is an affine op of ``x`` and a scalar constant, else None."""
    if node.op_type not in _AFFINE_OPS or len(node.input) != 2 or x not in node.input:
        return None
    other = node.input[1] if node.input[0] == x else node.input[0]
    value = constant(model, other)
    if value is None or value.size != 1 or not np.issubdtype(value.dtype, np.floating):
        return None
    v = float(value.reshape(()))
    x_first = node.input[0] == x
    if node.op_type == "Add":
        return 1.0, v
    if node.op_type == "Sub":
        return (1.0, -v) if x_first else (-1.0, v)
    if node.op_type == "Mul":
        return v, 0.0
    return (1.0 / v, 0.0) if x_first and v != 0 else None  # c / x is not affine


def _set_initializer(model: Any, name: str, value: np.ndarray) -> None:
    from onnx import numpy_helper

    kept = [i for i in model.graph.initializer if i.name != name]
    del model.graph.initializer[:]
    model.graph.initializer.extend([*kept, numpy_helper.from_array(value, name)])


def fold_affine_into_conv(model: Any) -> bool:
    """Fold each chain of scalar affine ops that feeds a convolution into that convolution, in place.

    ``conv(W, a * x + b) + B = conv(a * W, x) + (B + b * sum(W))`` holds only if every output of the convolution
    reads input pixels and no padding, so a chain is folded only into a convolution that pads nothing, and only the
    ops whose output nothing else reads; the arithmetic is in float64. Walking back from the convolution, the chain
    ends at the first other op: the input clamp of a depth normalisation (``(clamp(x) - c) * k``) stays, the affine
    after it goes; so does a two-stage net's scaling of the cropped relative depth before its keypoint stem.

    Returns:
        Whether it folded anything (False: the graph is unchanged).
    """
    graph = model.graph
    outputs = {o.name for o in graph.output}
    made_by = {t: n for n in graph.node for t in n.output}
    folded = False
    for conv in [n for n in graph.node if n.op_type == "Conv"]:
        pads, auto_pad = _attr(conv, "pads", []), _attr(conv, "auto_pad", b"NOTSET")
        if any(pads) or auto_pad not in (b"NOTSET", b"VALID"):  # a padded border: not exact
            continue
        tensor, a, b, chain = conv.input[0], 1.0, 0.0, []
        while (node := made_by.get(tensor)) is not None and tensor not in outputs:
            if len(_consumers(model, tensor)) != 1:
                break
            source = next((t for t in node.input if constant(model, t) is None), None)
            step = _scalar_step(model, node, source) if source is not None else None
            if step is None:
                break
            a, b = a * step[0], a * step[1] + b  # conv input = a * (step_a * source + step_b) + b
            chain.append(node)
            tensor = source
        weight = constant(model, conv.input[1])  # read only for a conv with a chain to fold
        bias = constant(model, conv.input[2]) if len(conv.input) > 2 and conv.input[2] else None
        if not chain or weight is None or (len(conv.input) > 2 and conv.input[2] and bias is None):
            continue
        w64 = weight.astype(np.float64)
        b64 = bias.astype(np.float64) if bias is not None else np.zeros(w64.shape[0])
        b64 = b64 + b * w64.sum(axis=tuple(range(1, w64.ndim)))
        w_name, b_name = conv.input[1] + "_affine_folded", conv.name + "_bias_affine_folded"
        _set_initializer(model, w_name, (a * w64).astype(weight.dtype))
        _set_initializer(model, b_name, b64.astype(weight.dtype))
        del conv.input[:]
        conv.input.extend([tensor, w_name, b_name])
        for node in chain:
            graph.node.remove(node)
        folded = True
    if folded:
        _drop_unused_initializers(model)
    return folded


def interpolation_matrix(n_in: int, n_out: int) -> np.ndarray:
    """The ``(n_out, n_in)`` matrix of 1-D linear interpolation with half-pixel centres (ONNX ``half_pixel``,
    torch's ``align_corners=False``), source positions clamped to the edge samples."""
    out = np.zeros((n_out, n_in))
    for o in range(n_out):
        src = min(max((o + 0.5) * n_in / n_out - 0.5, 0.0), n_in - 1.0)
        i0 = int(np.floor(src))
        i1, frac = min(i0 + 1, n_in - 1), src - i0
        out[o, i0] += 1.0 - frac
        out[o, i1] += frac
    return out


def _static_shapes(model: Any) -> dict[str, list[int]]:
    """Every tensor's static shape that ONNX shape inference finds (dimensions it cannot fix are left out)."""
    import onnx

    inferred = onnx.shape_inference.infer_shapes(model)
    shapes = {}
    for info in (*inferred.graph.input, *inferred.graph.value_info, *inferred.graph.output):
        dims = info.type.tensor_type.shape.dim
        if dims and all(d.HasField("dim_value") for d in dims):
            shapes[info.name] = [d.dim_value for d in dims]
    return shapes


def _bilinear_resize_sizes(model: Any, node: Any, shapes: dict[str, list[int]]) -> tuple[list[int], list[int]] | None:
    """The (input, output) shapes of a 4-D bilinear half-pixel ``Resize`` over H and W only, else None."""
    mode = _attr(node, "mode", b"nearest")
    coords = _attr(node, "coordinate_transformation_mode", b"half_pixel")
    if mode != b"linear" or coords not in (b"half_pixel", b"pytorch_half_pixel") or _attr(node, "antialias", 0):
        return None
    if _attr(node, "axes") is not None or node.input[0] not in shapes or node.output[0] not in shapes:
        return None
    if len(node.input) > 1 and node.input[1] and constant(model, node.input[1]) is None:  # a roi read at run time
        return None
    src, dst = shapes[node.input[0]], shapes[node.output[0]]
    if len(src) != 4 or len(dst) != 4 or src[:2] != dst[:2]:
        return None
    if coords == b"pytorch_half_pixel" and min(dst[2:]) < 2:  # its one-pixel rule differs from half_pixel
        return None
    return src, dst


def resize_as_matmul(model: Any) -> int:
    """Rewrite each bilinear ``Resize`` by a non-integer factor as ``Ah @ (x @ Aw^T)``, in place.

    ``Ah`` and ``Aw`` are the fixed interpolation matrices of :func:`interpolation_matrix` (a few hundred floats);
    the products equal the resize to float rounding. A resize by an integer factor on both axes, one whose shapes
    are not static, or any mode other than half-pixel bilinear without antialiasing is left as it is.

    Returns:
        How many resizes were rewritten.
    """
    from onnx import helper

    shapes = _static_shapes(model)
    graph, done = model.graph, 0
    for node in list(graph.node):
        if node.op_type != "Resize":
            continue
        sizes = _bilinear_resize_sizes(model, node, shapes)
        if sizes is None:
            continue
        (_, _, h, w), (_, _, big_h, big_w) = sizes
        if big_h % h == 0 and big_w % w == 0:
            continue  # ONNX Runtime runs it in its blocked layout, faster than the products
        out = node.output[0]
        ah, awt = f"{out}_interp_h", f"{out}_interp_wt"
        _set_initializer(model, ah, interpolation_matrix(h, big_h).astype(np.float32))
        _set_initializer(model, awt, interpolation_matrix(w, big_w).T.astype(np.float32))
        rows = helper.make_node("MatMul", [node.input[0], awt], [f"{out}_interp_w"], name=f"{node.name}_w")
        cols = helper.make_node("MatMul", [ah, f"{out}_interp_w"], [out], name=f"{node.name}_h")
        at = list(graph.node).index(node)
        graph.node.remove(node)
        graph.node.insert(at, cols)
        graph.node.insert(at, rows)
        done += 1
    if done:
        _drop_unused_initializers(model)
    return done


def _drop_unused_initializers(model: Any) -> None:
    """Remove initializers and ``Constant`` nodes nothing reads any more (the folded weights' originals, a resize's
    size vector), so the file's size stays the weights the runtime loads."""
    graph = model.graph
    while True:
        read = {t for n in graph.node for t in n.input} | {o.name for o in graph.output}
        dead = [n for n in graph.node if n.op_type == "Constant" and n.output[0] not in read]
        for n in dead:
            graph.node.remove(n)
        if not dead:
            break
    read = {t for n in graph.node for t in n.input} | {o.name for o in graph.output}
    kept = [i for i in graph.initializer if i.name in read]
    del graph.initializer[:]
    graph.initializer.extend(kept)


#: The passes the fp32 graph ONNX Runtime runs gets, in order (each exact; each a no-op where it does not apply).
PASSES: tuple[Callable[[Any], Any], ...] = (fold_affine_into_conv, resize_as_matmul)
#: The passes the graph quantized to int8 gets first. Not :func:`resize_as_matmul`: the quantizer makes its products
#: int8 MatMuls, slower than the int8 Resize they replace (``tiny_hand``: 6% slower, EPE 0.2% higher).
INT8_PASSES: tuple[Callable[[Any], Any], ...] = (fold_affine_into_conv,)


def rewrite(source: Path, target: Path, passes: tuple[Callable[[Any], Any], ...] = PASSES) -> Path:
    """The ONNX file ``source`` with ``passes`` applied, saved to ``target``."""
    import onnx

    model = onnx.load(str(source))
    for rewrite_pass in passes:
        rewrite_pass(model)
    onnx.save(model, str(target))
    return target


def deployed(workspace: Workspace, passes: tuple[Callable[[Any], Any], ...] = PASSES) -> Path:
    """The workspace's exported model with ``passes`` applied, made once per set of passes and shared by the runtimes
    that run it."""
    names = "-".join(p.__name__ for p in passes)
    target = workspace.folder / f"model-{names}.onnx"
    return workspace.shared(f"onnx-{names}", lambda: rewrite(onnx_export.exported(workspace), target, passes))
