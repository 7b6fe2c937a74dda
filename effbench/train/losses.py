"""The task losses of hand-pose training, each a scalar per batch, with frames and keypoints masked where a label
does not apply.

Keypoints: L1 on the integral-regression (soft-argmax) keypoints, in **pixels** of the input frame. Pixels rather
than coordinates normalised by the frame size, because the L1 gradient is the sign of the error: in pixels its size
is one unit per coordinate whatever the frame size, comparable to the auxiliary losses' gradients at weight 1, and
the loss value reads directly as "mean error per coordinate, px". L1 rather than L2 is what integral regression
trains with (Sun et al. 2018, "Integral Human Pose Regression", arXiv 1711.08229): robust to the large errors of
the first steps. Masked: frames without a hand, and keypoints outside the frame (a soft-argmax cannot leave the
frame, so those labels would only pull the prediction onto the border). Occluded keypoints inside the frame are
trained: the model must place them.

Auxiliary: segmentation BCE (+ soft Dice) against the hand mask area-resized to the seg output's size; visibility
BCE per keypoint; keypose cross-entropy and handedness BCE on frames with a hand only. Frames without a hand train
segmentation (all background) and visibility (all zero), which is what applies to them.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from effbench.crop import clamp_to_frame, mask_for, to_crop
from effbench.data.skeleton import KEYPOINT_SUBSET

_SUBSET_CACHE: dict[torch.device, Tensor] = {}


def subset_index(device: torch.device) -> Tensor:
    """KEYPOINT_SUBSET as a long tensor on ``device`` (cached)."""
    if device not in _SUBSET_CACHE:
        _SUBSET_CACHE[device] = torch.tensor(KEYPOINT_SUBSET, dtype=torch.long, device=device)
    return _SUBSET_CACHE[device]


def inside_frame(keypoints: Tensor, height: int, width: int) -> Tensor:
    """(..., 2) px -> (...) bool: the keypoint lies within the pixel centres' range [0, W-1] x [0, H-1]."""
    x, y = keypoints[..., 0], keypoints[..., 1]
    return (x >= 0) & (x <= width - 1) & (y >= 0) & (y <= height - 1)


def keypoint_l1(pred: Tensor, target: Tensor, valid: Tensor) -> Tensor:
    """Mean absolute error per coordinate (px) over the valid keypoints.

    Args:
        pred: (B, K, 2) predicted keypoints, px.
        target: (B, K, 2) labelled keypoints, px.
        valid: (B, K) bool or 0/1, which keypoints count.

    Returns:
        A scalar; 0 (still connected to ``pred``) when no keypoint is valid.
    """
    w = valid.to(pred.dtype).unsqueeze(-1)
    return ((pred - target).abs() * w).sum() / (2 * w.sum()).clamp_min(1)


def heatmap_kl(logits: Tensor, target: Tensor, valid: Tensor, stride: int, sigma_px: float) -> Tensor:
    """KL divergence from a Gaussian at each labelled keypoint to the softmax of its heatmap, mean over valid ones.

    Why: an L1 loss on the soft-argmax alone only constrains each heatmap's *mean*; its gradient on a logit is
    ``p_i (g_i - mean)``, tiny while the softmax is near-uniform over the ~1200 cells, and a spread-out map whose
    mean happens to be right is as good as a sharp one. That is slow to train and biases keypoints towards the
    centre wherever the map stays flat. This term (``p - t`` on every logit) asks for one sharp peak where the
    keypoint is, which is what makes the soft-argmax precise; the L1 term keeps sub-cell accuracy. Sun et al.
    (arXiv 1711.08229) likewise found heatmap and integral losses better combined than alone.

    The target is a Gaussian of ``sigma_px`` input pixels around the keypoint, evaluated at the cell centres
    (cell ``(i, j)`` is input pixel ``(stride * (j + 0.5) - 0.5, stride * (i + 0.5) - 0.5)``, as in the
    soft-argmax) and normalised over the map; KL rather than cross-entropy so that a perfect map scores 0.

    Args:
        logits: (B, K, h, w) heatmap logits.
        target: (B, K, 2) labelled keypoints, input px.
        valid: (B, K) bool or 0/1, which keypoints count (inside the frame, frame has a hand).
        stride: Input pixels per heatmap cell.
        sigma_px: Width of the target Gaussian, input pixels.

    Returns:
        A scalar; 0 (still connected to ``logits``) when no keypoint is valid.
    """
    h, w = logits.shape[-2:]
    centre = (stride - 1) / 2
    ys = torch.arange(h, dtype=logits.dtype, device=logits.device) * stride + centre
    xs = torch.arange(w, dtype=logits.dtype, device=logits.device) * stride + centre
    dy = (ys[None, None, :] - target[..., 1:2]) ** 2  # (B, K, h)
    dx = (xs[None, None, :] - target[..., 0:1]) ** 2  # (B, K, w)
    log_t = -(dy[..., :, None] + dx[..., None, :]).flatten(2) / (2 * sigma_px**2)
    log_t = log_t.log_softmax(-1)
    log_p = logits.flatten(2).log_softmax(-1)
    kl = (log_t.exp() * (log_t - log_p)).sum(-1)  # (B, K)
    return _masked_mean(kl, valid)


def heatmap_distill(logits: Tensor, teacher: Tensor, valid: Tensor) -> Tensor:
    """KL divergence from the teacher's heatmap softmax to the student's, mean over the valid keypoints.

    Why (knowledge distillation, Hinton et al. 2015, arXiv 1503.02531; for heatmaps, Zhang et al. 2019, "Fast Human
    Pose Estimation", arXiv 1811.05419): a larger net's heatmap says more than the label's Gaussian, namely where
    else a keypoint could be and how sure it is, which a tiny net learns from more easily. Measured on tiny_hand's
    earlier layout (1/4 heatmaps) with aux, seed 0: after 4,000 steps (a tiny_hand_wide teacher of 4,750 steps)
    test EPE 8.96 against 9.34 px without; trained to convergence (the converged tiny_hand_wide, 6.60 px, as
    teacher) 7.70 against 7.83 px, reached in 12,000 instead of 16,000 steps. It speeds training more than it
    lowers where training ends.

    Args:
        logits: (B, K, h, w) the student's heatmap logits.
        teacher: (B, K, h, w) the teacher's, on the same frames.
        valid: (B, K) which keypoints count (inside the frame, frame has a hand).

    Raises:
        ValueError: When the two heatmaps differ in shape (a teacher at another input size).
    """
    if teacher.shape != logits.shape:
        raise ValueError(f"teacher heatmaps {tuple(teacher.shape)} differ from the student's {tuple(logits.shape)}")
    log_t = teacher.flatten(2).log_softmax(-1)
    log_p = logits.flatten(2).log_softmax(-1)
    kl = (log_t.exp() * (log_t - log_p)).sum(-1)
    return _masked_mean(kl, valid)


def locator_loss(out: dict[str, Tensor], batch: dict[str, Tensor], centre_sigma_px: float = 8.0) -> Tensor:
    """The first stage of a two-stage model (:mod:`architectures.hand_crop`), on frames with a hand: L1 of its hand
    centre (px per coordinate) and distance (per 25 mm), and :func:`heatmap_kl` of its centre map.

    The labels: the centre is the mean of the 21 keypoints, held inside the frame (a soft-argmax cannot leave it);
    the distance is the mean depth of the 21 joints. 25 mm per unit: about the distance error that changes the
    crop's side by as much as a one-pixel centre error moves it, at the data's median hand distance.
    """
    height, width = batch["depth"].shape[-2:]
    has_hand = batch["has_hand"].bool()
    centre = clamp_to_frame(batch["keypoints_2d"].mean(1), height, width)
    z = batch["joints_3d"][..., 2].mean(1)
    centre_l1 = _masked_mean((out["hand_centre"] - centre).abs().mean(-1), has_hand)
    z_l1 = _masked_mean((out["hand_z"] - z).abs() / 25.0, has_hand)
    stride = height // out["centre_logits"].shape[-2]
    kl = heatmap_kl(out["centre_logits"], centre[:, None], has_hand[:, None], stride, centre_sigma_px)
    return centre_l1 + z_l1 + kl


def seg_loss(logits: Tensor, mask: Tensor, dice: bool = True) -> Tensor:
    """BCE with logits (+ soft Dice, per frame, smoothed by 1) against ``mask`` area-resized to the logits' size.

    Args:
        logits: (B, 1, h, w) hand-mask logits.
        mask: (B, 1, H, W) 0/1 mask at input resolution.
        dice: Add ``1 - (2 |p t| + 1) / (|p| + |t| + 1)``, averaged over frames.
    """
    if mask.shape[-2:] != logits.shape[-2:]:
        # Area resize keeps the fraction of hand pixels in each output cell: a soft target at the mask's border.
        mask = F.interpolate(mask, size=logits.shape[-2:], mode="area")
    loss = F.binary_cross_entropy_with_logits(logits, mask)
    if dice:
        p = torch.sigmoid(logits).flatten(1)
        t = mask.flatten(1)
        loss = loss + (1 - (2 * (p * t).sum(1) + 1) / (p.sum(1) + t.sum(1) + 1)).mean()
    return loss


def _masked_mean(per_item: Tensor, keep: Tensor) -> Tensor:
    w = keep.to(per_item.dtype)
    return (per_item * w).sum() / w.sum().clamp_min(1)


def task_losses(
    out: dict[str, Tensor],
    batch: dict[str, Tensor],
    *,
    aux: bool,
    seg_dice: bool = True,
    heatmap_weight: float = 0.0,
    heatmap_sigma_px: float = 4.0,
    teacher_heatmaps: Tensor | None = None,
    distill_weight: float = 1.0,
) -> dict[str, Tensor]:
    """The losses of one batch, keypoints first, then (when ``aux``) seg, vis, keypose, hand.

    The keypoint task's loss is the soft-argmax L1 (px) plus ``heatmap_weight`` times :func:`heatmap_kl` on
    ``out["heatmaps"]``: both train the deployed keypoint output from the keypoint labels, so they are one task
    (and the heatmap term applies with the auxiliary tasks off too).

    Args:
        out: The model's training-form output (``keypoints``, and with ``aux`` also ``seg``, ``visibility``,
            ``keypose``, ``handedness``).
        batch: Stacked data items (see :class:`effbench.data.SyntheticHands`): keypoints_2d, visibility, mask, keypose,
            handedness, has_hand, depth.

        heatmap_weight: Weight of the heatmap term inside the keypoint loss (0: L1 only).
        heatmap_sigma_px: Width of its target Gaussian, input pixels.
        teacher_heatmaps: A teacher's heatmap logits on the same frames: adds ``distill_weight`` times
            :func:`heatmap_distill` to the keypoint loss.
        distill_weight: Weight of that term.

    Returns:
        Task name -> scalar loss, in the order of ``("keypoints",) + AUX_TASKS``.
    """
    idx = subset_index(out["keypoints"].device)
    height, width = batch["depth"].shape[-2:]
    has_hand = batch["has_hand"].bool()
    target = batch["keypoints_2d"].index_select(1, idx)
    valid = has_hand[:, None] & inside_frame(target, height, width)
    losses = {"keypoints": keypoint_l1(out["keypoints"], target, valid)}
    crop = out.get("crop")
    if heatmap_weight > 0:
        hm_target, hm_valid, hm_height = target, valid, height
        if crop is not None:  # a two-stage model's heatmaps are in its crop (effbench.crop)
            hm_height = int(crop[0, 3])
            hm_target = to_crop(target, crop)
            hm_valid = valid & inside_frame(hm_target, hm_height, hm_height)
        stride = hm_height // out["heatmaps"].shape[-2]
        kl = heatmap_kl(out["heatmaps"], hm_target, hm_valid, stride, heatmap_sigma_px)
        losses["keypoints"] = losses["keypoints"] + heatmap_weight * kl
    if "hand_centre" in out:
        losses["keypoints"] = losses["keypoints"] + locator_loss(out, batch)
    if teacher_heatmaps is not None:
        losses["keypoints"] = losses["keypoints"] + distill_weight * heatmap_distill(out["heatmaps"], teacher_heatmaps,
                                                                                     valid)
    if not aux:
        return losses
    losses["seg"] = seg_loss(out["seg"], mask_for(out, batch["mask"]), dice=seg_dice)
    losses["vis"] = F.binary_cross_entropy_with_logits(out["visibility"], batch["visibility"].index_select(1, idx))
    keypose = batch["keypose"]
    ce = F.cross_entropy(out["keypose"], keypose.clamp_min(0), reduction="none")
    losses["keypose"] = _masked_mean(ce, keypose >= 0)
    hand = batch["handedness"]
    bce = F.binary_cross_entropy_with_logits(
        out["handedness"].reshape(-1), hand.clamp_min(0).to(out["handedness"].dtype), reduction="none"
    )
    losses["hand"] = _masked_mean(bce, hand >= 0)
    return losses
