"""Accuracy of a trained model as each runtime runs it: the int8 model's EPE and PCK next to the fp32 model's.

MLPerf Tiny allows post-training quantization with a given calibration set, provided the quantized model still
meets the accuracy target, and measures accuracy and latency through the same code path. Here the deployed model
is prepared by each runtime exactly as the profiler times it (:mod:`effbench.profiler.runtimes`: BatchNorm folded,
exported, quantized with the head in fp32), wrapped as a module that runs every frame at batch 1, and evaluated by
:func:`effbench.evaluate.evaluate`, the function that scores the fp32 training runs.

For a trained run (model built with ``create_model``, its checkpoint's ``model`` state loaded)::

    metrics = evaluate_runtimes(model, test_split, calibration=train_split["depth"][:32])
    loss = int8_epe_change(metrics)   # relative EPE change of ort-int8 against ort; > INT8_EPE_TOLERANCE: flag it
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from effbench.evaluate import evaluate
from effbench.profiler import runtimes as rt
from effbench.profiler.latency import deployed_copy

#: A quantized model that loses more than this relative EPE against its fp32 source is flagged (DESIGN: int8
#: EPE within 2% of fp32).
INT8_EPE_TOLERANCE = 0.02


class RuntimeModel(nn.Module):
    """A model prepared by a runtime, as a module: ``forward`` runs each frame of a batch on its own (batch 1, as
    deployed and as timed) and stacks the named outputs."""

    def __init__(self, prepared: rt.Prepared):
        super().__init__()
        self.prepared = prepared

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        outs = [self.prepared.run(x[i : i + 1]) for i in range(len(x))]
        return {k: torch.cat([o[k] for o in outs]) for k in outs[0]}


def evaluate_runtimes(
    model: nn.Module,
    split: dict[str, Tensor],
    runtimes: Sequence[str] = ("eager", "ort", "ort-int8"),
    *,
    calibration: Tensor | Sequence[Tensor] | None = None,
    calibration_dir: str | os.PathLike | None = None,
) -> dict[str, dict[str, Any]]:
    """The keypoint metrics of ``model``'s deployable form on ``split`` under each runtime.

    Args:
        model: A hand-pose model, trained form or deployable (its ``deployable()`` is used when it has one); it is
            not changed.
        split: A data split as :func:`effbench.data.load_split` gives it (on the CPU).
        runtimes: Runtime names (:data:`effbench.profiler.runtimes.RUNTIMES`).
        calibration: Int8 calibration frames, ``(N, 1, H, W)`` or a list of ``(1, 1, H, W)`` (default: generated
            training-split frames, :mod:`effbench.profiler.runtimes.calibration`). Give a run's own training
            frames: the test split must never calibrate.
        calibration_dir: Where generated calibration frames are cached (default: the system temp folder).

    Returns:
        Runtime name -> the metrics of :func:`effbench.evaluate.evaluate` (keypoints only: the auxiliary ones are
        None), or ``{"error": why}`` for a runtime that could not run the model.
    """
    # The deployable form (a hand-pose model without its auxiliary heads), as ``measure.build_deployable`` takes it.
    net, _ = deployed_copy((model.deployable() if callable(getattr(model, "deployable", None)) else model).eval())
    frames = None
    if calibration is not None:
        frames = [f.reshape(1, *f.shape[-3:]) for f in (calibration if not isinstance(calibration, Tensor)
                                                         else calibration.unbind(0))]  # fmt: skip
    out: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="effbench-eval-") as folder:
        ws = rt.Workspace(net, split["depth"][:1], Path(folder), calibration=frames,
                          calibration_dir=Path(calibration_dir) if calibration_dir is not None else None)
        for name in rt.parse(runtimes):
            runtime = rt.get(name)
            why = runtime.missing()
            if why is not None:
                out[name] = {"error": f"not installed: {why}"}
                continue
            try:
                prepared = runtime.prepare(ws)
            except rt.RuntimeFailure as err:
                out[name] = {"error": str(err)}
                continue
            out[name] = evaluate(RuntimeModel(prepared), split, aux=False)
    return out


def int8_epe_change(metrics: dict[str, dict[str, Any]], fp32: str = "ort", int8: str = "ort-int8") -> float | None:
    """Relative EPE change of the int8 model against its fp32 source (0.01 = 1% worse), or None without both."""
    a, b = (metrics.get(fp32) or {}).get("epe_px"), (metrics.get(int8) or {}).get("epe_px")
    return None if a is None or b is None or not a else (b - a) / a
