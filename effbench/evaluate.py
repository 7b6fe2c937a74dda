"""Evaluation on the held-out test split: 2D keypoint error, 2.5D error after lifting, auxiliary-task metrics.

Which keypoints count. "All" keypoints are those of frames with a hand that lie inside the frame (a keypoint
outside the frame has no pixel to predict); "vis" keypoints are the subset labelled visible. Frames without a
hand count only for the mask IoU and the visibility F1.

Areas under PCK curves are exact integrals, not sums over a threshold grid: for one keypoint with error d,
``(1 / (b - a)) * integral_a^b 1[d <= t] dt = clip((b - d) / (b - a), 0, 1)``, so the AUC is the mean of that
over keypoints. A 20-step grid (the common practice) would differ from it by at most half a step.

Every function returns a Python float, or None when nothing counts (no hand in the split, or no visible keypoint).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from effbench.crop import mask_for

#: The metric keys of a run record, in report order.
METRIC_KEYS: tuple[str, ...] = (
    "epe_px",
    "epe_px_vis",
    "epe_px_p95_frame",
    "pck2",
    "pck5",
    "pck10",
    "auc_pck_0_20",
    "err3d_mm",
    "err3d_mm_vis",
    "auc_pck3d_20_50",
    "err25_mm",
    "err25_mm_vis",
    "lift_err3d_mm",
    "mask_iou",
    "vis_f1",
    "keypose_acc",
    "handedness_acc",
)
AUX_METRIC_KEYS: tuple[str, ...] = ("mask_iou", "vis_f1", "keypose_acc", "handedness_acc")


def _mean(values: Tensor, valid: Tensor) -> float | None:
    n = int(valid.sum())
    return float((values * valid).sum() / n) if n else None


def pck(dist: Tensor, valid: Tensor, threshold: float) -> float | None:
    """Fraction of valid points whose error ``dist`` is at most ``threshold``."""
    return _mean((dist <= threshold).to(dist.dtype), valid.to(dist.dtype))


def auc_pck(dist: Tensor, valid: Tensor, low: float, high: float) -> float | None:
    """Area under the PCK curve between thresholds ``low`` and ``high``, normalised to [0, 1] (exact integral)."""
    return _mean(((high - dist) / (high - low)).clamp(0, 1), valid.to(dist.dtype))


def mask_iou(logits: Tensor, mask: Tensor) -> float | None:
    """Intersection over union of the predicted hand mask (logit > 0) and ``mask``, summed over the whole split.

    Summed, not averaged per frame: a frame without a hand has an empty union when predicted right, and
    per-frame IoU is undefined there. ``logits`` at a lower resolution are bilinearly upsampled to the mask's.
    """
    if logits.shape[-2:] != mask.shape[-2:]:
        logits = F.interpolate(logits, size=mask.shape[-2:], mode="bilinear", align_corners=False)
    pred, truth = logits > 0, mask > 0.5
    union = int((pred | truth).sum())
    return int((pred & truth).sum()) / union if union else None


def f1_score(logits: Tensor, target: Tensor) -> float | None:
    """F1 of binary predictions (logit > 0) against 0/1 targets: 2 TP / (2 TP + FP + FN)."""
    pred, truth = logits > 0, target > 0.5
    tp = int((pred & truth).sum())
    denom = 2 * tp + int((pred & ~truth).sum()) + int((~pred & truth).sum())
    return 2 * tp / denom if denom else None


def accuracy(pred: Tensor, target: Tensor, valid: Tensor) -> float | None:
    """Fraction of valid items where ``pred == target``."""
    return _mean((pred == target).float(), valid.float())


def frame_quantile(dist: Tensor, valid: Tensor, q: float) -> float | None:
    """The ``q`` quantile (linear interpolation) over frames of each frame's mean error over its valid keypoints.

    The mean over keypoints hides how often a model fails on a whole frame (a two-stage model whose locator missed
    the hand is wrong on all of that frame's keypoints); the 95th percentile frame shows it.
    """
    n = valid.float().sum(1)
    counted = n > 0
    if not counted.any():
        return None
    per_frame = (dist * valid.float()).sum(1)[counted] / n[counted]
    return float(torch.quantile(per_frame.double(), q))


def keypoint_metrics(
    pred_2d: Tensor,
    target_2d: Tensor,
    pred_3d: Tensor,
    target_3d: Tensor,
    visible: Tensor,
    valid: Tensor,
    lifted_target_3d: Tensor | None = None,
) -> dict[str, float | None]:
    """The 2D and 2.5D metrics from predictions and labels of the K keypoints.

    Two 3D errors, because the lift itself errs: a joint lies inside its finger, ~radius behind the surface the
    camera sees, and an occluded joint reads its occluder's depth. ``err3d_mm`` is end to end (the lifted
    prediction against the true 3D joints); ``err25_mm`` measures the network alone (the lifted prediction against
    the lift of the true 2D keypoints, the best a 2D prediction can reach); ``lift_err3d_mm`` is what the lift of
    the true 2D keypoints misses, the floor under ``err3d_mm``.

    Args:
        pred_2d, target_2d: (N, K, 2) px.
        pred_3d, target_3d: (N, K, 3) mm (prediction lifted with ``lift_to_2p5d``; true joints).
        visible: (N, K) 0/1 visibility labels.
        valid: (N, K) bool, the keypoints that count at all (frame has a hand, keypoint inside the frame).
        lifted_target_3d: (N, K, 3) mm, ``target_2d`` lifted the same way; None leaves the 2.5D keys None.
    """
    valid = valid.bool()
    vis = valid & (visible > 0.5)
    d2 = (pred_2d - target_2d).norm(dim=-1)
    d3 = (pred_3d - target_3d).norm(dim=-1)
    metrics: dict[str, float | None] = {
        "epe_px": _mean(d2, valid.float()),
        "epe_px_vis": _mean(d2, vis.float()),
        "epe_px_p95_frame": frame_quantile(d2, valid, 0.95),
        "pck2": pck(d2, valid, 2),
        "pck5": pck(d2, valid, 5),
        "pck10": pck(d2, valid, 10),
        "auc_pck_0_20": auc_pck(d2, valid, 0, 20),
        "err3d_mm": _mean(d3, valid.float()),
        "err3d_mm_vis": _mean(d3, vis.float()),
        "auc_pck3d_20_50": auc_pck(d3, valid, 20, 50),
        "err25_mm": None,
        "err25_mm_vis": None,
        "lift_err3d_mm": None,
    }
    if lifted_target_3d is not None:
        d25 = (pred_3d - lifted_target_3d).norm(dim=-1)
        metrics["err25_mm"] = _mean(d25, valid.float())
        metrics["err25_mm_vis"] = _mean(d25, vis.float())
        metrics["lift_err3d_mm"] = _mean((lifted_target_3d - target_3d).norm(dim=-1), valid.float())
    return metrics


@torch.no_grad()
def predict(model: nn.Module, depth: Tensor, batch_size: int) -> dict[str, Tensor]:
    """Run ``model`` (in eval mode) over ``depth`` (N, 1, H, W) in batches; outputs concatenated along N.

    ``no_grad`` rather than ``inference_mode``: a model that caches a tensor made here (a soft-argmax grid) must
    still be trainable afterwards, and inference tensors cannot be saved for backward.
    """
    was_training = model.training
    model.eval()
    try:
        parts = [model(depth[i : i + batch_size]) for i in range(0, len(depth), batch_size)]
    finally:
        model.train(was_training)
    return {k: torch.cat([p[k] for p in parts]) for k in parts[0]}


def keypoint_epe(model: nn.Module, split: dict[str, Tensor], batch_size: int = 256) -> float | None:
    """The 2D EPE (px) of ``model``'s keypoints on a split, over the keypoints :func:`evaluate` counts: the cheap
    figure a learning curve is made of."""
    from effbench.train.losses import inside_frame, subset_index

    pred = predict(model, split["depth"], batch_size)["keypoints"].float()
    target = split["keypoints_2d"].index_select(1, subset_index(split["depth"].device))
    valid = split["has_hand"].bool()[:, None] & inside_frame(target, *split["depth"].shape[-2:])
    epe = _mean((pred - target).norm(dim=-1), valid.float())
    return epe if epe is None or math.isfinite(epe) else None


def evaluate(
    model: nn.Module, split: dict[str, Tensor], *, aux: bool, batch_size: int = 256
) -> dict[str, float | None]:
    """All metrics of ``model`` on a data split.

    Args:
        model: The training form when ``aux`` (its output has the auxiliary keys), else any form with ``keypoints``.
        split: ``SyntheticHands.tensors()`` of the split, on the model's device.
        aux: Also compute the auxiliary metrics; otherwise they are None.
        batch_size: Frames per forward pass.

    Returns:
        Every key of :data:`METRIC_KEYS`.
    """
    from effbench.data import lift_to_2p5d
    from effbench.train.losses import inside_frame, subset_index

    out = predict(model, split["depth"], batch_size)
    idx = subset_index(split["depth"].device)
    height, width = split["depth"].shape[-2:]
    pred = out["keypoints"].float()
    target = split["keypoints_2d"].index_select(1, idx)
    has_hand = split["has_hand"].bool()
    valid = has_hand[:, None] & inside_frame(target, height, width)
    visible = split["visibility"].index_select(1, idx)
    with torch.no_grad():
        pred_3d = lift_to_2p5d(pred, split["depth"], split["intrinsics"])
        target_lifted = lift_to_2p5d(target.float(), split["depth"], split["intrinsics"])
    joints = split["joints_3d"].index_select(1, idx)
    metrics = keypoint_metrics(pred, target, pred_3d, joints, visible, valid, target_lifted)
    metrics.update(dict.fromkeys(AUX_METRIC_KEYS))
    if aux:
        metrics["mask_iou"] = mask_iou(out["seg"], mask_for(out, split["mask"]))
        metrics["vis_f1"] = f1_score(out["visibility"], visible)
        metrics["keypose_acc"] = accuracy(out["keypose"].argmax(1), split["keypose"], has_hand)
        metrics["handedness_acc"] = accuracy(
            (out["handedness"].reshape(-1) > 0).long(), split["handedness"], has_hand
        )
    # NaN is not JSON: a NaN metric (a diverged model) is stored as None.
    return {k: (None if v is not None and not math.isfinite(v) else v) for k, v in metrics.items()}
