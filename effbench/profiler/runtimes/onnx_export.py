"""Export a deployed model to one ONNX file with torch's dynamo exporter.

The file holds the graph and every weight (no external data file), and none of the exporter's debugging metadata
(a stack trace and scope names per node, which made up a tenth of a MobileNetV2's file), so its size is the measured
weight footprint of the fp32 model as a runtime loads it. The model exported is the workspace's BatchNorm-folded copy, copied once more
first: tracing for export must not leave anything in the model it was given (a cache filled with traced tensors).
"""

from __future__ import annotations

import contextlib
import copy
import io
import logging
import warnings
from pathlib import Path

import torch

from effbench.profiler.runtimes.base import RuntimeFailure, Workspace

#: The ONNX opset exported: 18 is the lowest the dynamo exporter writes well; 20 is what ONNX Runtime 1.17+ runs.
OPSET = 20
#: The name of the model's input in every exported file.
INPUT_NAME = "input"


def missing() -> str | None:
    """None when the exporter's packages import, else what to install."""
    try:
        import onnx  # noqa: F401
        import onnxscript  # noqa: F401
    except ImportError as err:
        return f"the ONNX exporter needs onnx and onnxscript ({err.name} is not installed): pip install onnx onnxscript"
    return None


def export(workspace: Workspace, path: Path) -> Path:
    """Export the workspace's model, on its example input, to ``path``.

    Output names follow :func:`~effbench.profiler.runtimes.base.flat_outputs` (``keypoints``, ``heatmaps``...), so an
    ONNX Runtime output compares with the eager one by name.

    Raises:
        RuntimeFailure: ``export failed: <the exporter's reason>`` when the exporter refuses the model.
    """
    names = list(workspace.reference_outputs())  # also fills the model's caches with real tensors, before tracing
    model = copy.deepcopy(workspace.model)
    # The exporter logs a warning per missing optional package (torchvision), warns about lifted constants, and
    # prints whole graphs when a model fails to trace; none of it helps the user (the reason is recorded), and a suite
    # would print it once per model.
    quiet = logging.getLogger("torch")
    level = quiet.level
    quiet.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()), \
                contextlib.redirect_stderr(io.StringIO()):
            warnings.simplefilter("ignore")
            torch.onnx.export(model, (workspace.example,), str(path), dynamo=True, opset_version=OPSET,
                              input_names=[INPUT_NAME], output_names=names, external_data=False, verbose=False,
                              optimize=True)
    except Exception as err:  # the exporter's errors are long: its first line is the reason
        raise RuntimeFailure(f"export failed: {_reason(err)}") from err
    finally:
        quiet.setLevel(level)
    _strip_metadata(path)
    return path


def _strip_metadata(path: Path) -> None:
    """Remove the per-node and per-value debugging metadata the exporter writes (stack traces, module scopes)."""
    import onnx

    model = onnx.load(str(path))
    for item in (*model.graph.node, *model.graph.value_info, *model.graph.input, *model.graph.output):
        del item.metadata_props[:]
        item.doc_string = ""
    onnx.save(model, str(path))


def exported(workspace: Workspace) -> Path:
    """The workspace's model as an ONNX file, exported once and shared by the runtimes that need it."""
    return workspace.shared("onnx", lambda: export(workspace, workspace.folder / "model.onnx"))


def _reason(err: BaseException) -> str:
    """The exporter's reason in one line: the innermost cause's first line (the wrapper says only "failed")."""
    while err.__cause__ is not None:
        err = err.__cause__
    first = next((line.strip() for line in str(err).splitlines() if line.strip()), "")
    return f"{type(err).__name__}: {first}"[:300]
