"""Every metric of effbench.evaluate against values worked out by hand on tiny examples."""

import pytest
import torch

from effbench import evaluate as ev


def test_pck_by_hand():
    dist = torch.tensor([[1.0, 2.0, 4.9, 5.0, 12.0]])
    valid = torch.ones(1, 5, dtype=torch.bool)
    assert ev.pck(dist, valid, 2) == pytest.approx(2 / 5)  # 1 and 2 (<= is inclusive)
    assert ev.pck(dist, valid, 5) == pytest.approx(4 / 5)
    assert ev.pck(dist, valid, 10) == pytest.approx(4 / 5)
    valid[0, 4] = False  # drop the 12 px point
    assert ev.pck(dist, valid, 10) == pytest.approx(1.0)


def test_auc_pck_is_the_exact_integral():
    # One point at 5 px: PCK(t) = 1 for t >= 5, so the area over [0, 20] is 15/20 = 0.75.
    # One at 0 px: 1. One at 30 px: 0. Mean = (0.75 + 1 + 0) / 3.
    dist = torch.tensor([5.0, 0.0, 30.0])
    assert ev.auc_pck(dist, torch.ones(3), 0, 20) == pytest.approx(1.75 / 3)
    # 3D, 20-50 mm: 10 mm -> 1 (below the range), 35 mm -> (50 - 35) / 30 = 0.5, 60 mm -> 0.
    assert ev.auc_pck(torch.tensor([10.0, 35.0, 60.0]), torch.ones(3), 20, 50) == pytest.approx(0.5)
    # The closed form agrees with a fine numerical integral of the PCK curve.
    d = torch.tensor([3.3, 7.1, 18.0, 25.0])
    ts = torch.linspace(0, 20, 20001)
    curve = torch.stack([(d <= t).float().mean() for t in ts])
    assert ev.auc_pck(d, torch.ones(4), 0, 20) == pytest.approx(float(torch.trapezoid(curve, ts)) / 20, abs=1e-3)


def test_mask_iou_by_hand_and_upsampling():
    mask = torch.zeros(1, 1, 2, 4)
    mask[0, 0, :, :2] = 1  # 4 hand pixels on the left half
    logits = torch.full((1, 1, 2, 4), -1.0)
    logits[0, 0, :, 1:3] = 1.0  # predicted: columns 1 and 2 -> I = 2 (column 1), U = 6
    assert ev.mask_iou(logits, mask) == pytest.approx(2 / 6)
    # Logits at half resolution are upsampled: a constant map stays constant.
    assert ev.mask_iou(torch.ones(1, 1, 1, 2), mask) == pytest.approx(4 / 8)
    assert ev.mask_iou(-torch.ones(1, 1, 2, 4), torch.zeros(1, 1, 2, 4)) is None  # nothing anywhere


def test_f1_by_hand():
    logits = torch.tensor([[2.0, 2.0, -1.0, -1.0, 3.0]])
    target = torch.tensor([[1.0, 0.0, 1.0, 0.0, 1.0]])
    # TP = 2 (0, 4), FP = 1 (1), FN = 1 (2): F1 = 4 / (4 + 1 + 1)
    assert ev.f1_score(logits, target) == pytest.approx(4 / 6)
    assert ev.f1_score(-torch.ones(3), torch.zeros(3)) is None


def test_accuracy_only_valid_items():
    pred = torch.tensor([1, 2, 3, 4])
    target = torch.tensor([1, 0, 3, -1])
    assert ev.accuracy(pred, target, torch.tensor([True, True, True, False])) == pytest.approx(2 / 3)


def test_p95_frame_is_the_95th_percentile_of_per_frame_means():
    # 20 frames of 3 keypoints; frame i is off by i px on each counted keypoint. Its third keypoint is off by
    # 1000 px but not counted, and frame 0 counts nothing: frames 1..19 remain, whose per-frame means are 1..19.
    # Linear interpolation over 19 sorted values: position 0.95 * 18 = 17.1, so 18 + 0.1 * (19 - 18) = 18.1.
    dist = torch.arange(20.0)[:, None].repeat(1, 3)
    dist[:, 2] = 1000.0
    valid = torch.ones(20, 3, dtype=torch.bool)
    valid[:, 2] = False
    valid[0] = False
    assert ev.frame_quantile(dist, valid, 0.95) == pytest.approx(18.1)
    assert ev.frame_quantile(dist, valid, 0.5) == pytest.approx(10.0)
    assert ev.frame_quantile(dist, torch.zeros(20, 3, dtype=torch.bool), 0.95) is None


def test_keypoint_metrics_vis_and_all():
    # 1 frame, 2 keypoints: the first visible with 2D error 3 px and 3D error 40 mm,
    # the second occluded with 2D error 6 px and 3D error 10 mm.
    pred_2d = torch.tensor([[[3.0, 0.0], [0.0, 6.0]]])
    pred_3d = torch.tensor([[[0.0, 0.0, 40.0], [10.0, 0.0, 0.0]]])
    m = ev.keypoint_metrics(
        pred_2d, torch.zeros(1, 2, 2), pred_3d, torch.zeros(1, 2, 3), torch.tensor([[1.0, 0.0]]), torch.ones(1, 2)
    )
    assert m["epe_px"] == pytest.approx(4.5)
    assert m["epe_px_vis"] == pytest.approx(3.0)
    assert (m["pck2"], m["pck5"], m["pck10"]) == (0.0, 0.5, 1.0)
    assert m["auc_pck_0_20"] == pytest.approx(((20 - 3) / 20 + (20 - 6) / 20) / 2)
    assert m["err3d_mm"] == pytest.approx(25.0)
    assert m["err3d_mm_vis"] == pytest.approx(40.0)
    assert m["auc_pck3d_20_50"] == pytest.approx(((50 - 40) / 30 + 1.0) / 2)
    assert m["err25_mm"] is None and m["lift_err3d_mm"] is None  # no lifted labels given


def test_keypoint_metrics_separate_the_network_from_the_lift():
    # The true joints at the origin; the lift of the true 2D keypoints reads 12 mm (first) and 5 mm (second) off
    # them; the lifted predictions sit 3-4-0 (5 mm) and 0-0-8 (8 mm) from the lifted labels.
    joints = torch.zeros(1, 2, 3)
    lifted_labels = torch.tensor([[[0.0, 0.0, 12.0], [0.0, 5.0, 0.0]]])
    pred_3d = lifted_labels + torch.tensor([[[3.0, 4.0, 0.0], [0.0, 0.0, 8.0]]])
    m = ev.keypoint_metrics(torch.zeros(1, 2, 2), torch.zeros(1, 2, 2), pred_3d, joints, torch.tensor([[1.0, 0.0]]),
                            torch.ones(1, 2), lifted_labels)
    assert m["err25_mm"] == pytest.approx((5.0 + 8.0) / 2)
    assert m["err25_mm_vis"] == pytest.approx(5.0)
    assert m["lift_err3d_mm"] == pytest.approx((12.0 + 5.0) / 2)
    # end to end: |(3, 4, 12)| = 13 and |(0, 5, 8)| = sqrt(89)
    assert m["err3d_mm"] == pytest.approx((13.0 + 89**0.5) / 2)


def test_evaluate_masks_no_hand_frames_and_outside_keypoints():
    """evaluate() on a 2-frame split with a stub model: frame 1 has no hand, one keypoint of frame 0 is outside."""
    from effbench.data.skeleton import KEYPOINT_SUBSET

    h, w, k = 8, 10, len(KEYPOINT_SUBSET)
    kp21 = torch.full((2, 21, 2), 4.0)
    kp21[0, KEYPOINT_SUBSET[1]] = torch.tensor([-3.0, 4.0])  # outside the frame: not counted
    split = {
        "depth": torch.full((2, 1, h, w), 500.0),
        "keypoints_2d": kp21,
        "joints_3d": torch.zeros(2, 21, 3),
        "visibility": torch.ones(2, 21),
        "mask": torch.zeros(2, 1, h, w),
        "keypose": torch.tensor([3, -1]),
        "handedness": torch.tensor([1, -1]),
        "intrinsics": torch.tensor([[100.0, 100.0, 4.5, 3.5]] * 2),
        "has_hand": torch.tensor([True, False]),
    }
    split["mask"][0, 0, 2:4, 2:4] = 1

    class Stub(torch.nn.Module):
        def forward(self, depth):
            b = len(depth)
            kp = torch.full((b, k, 2), 4.0)
            kp[:, :, 0] += 1.0  # every prediction 1 px right of the label
            seg = torch.full((b, 1, h, w), -1.0)
            seg[:, :, 2:4, 2:4] = 1.0
            keypose = torch.zeros(b, 9)
            keypose[:, 3] = 1
            return {"keypoints": kp, "seg": seg, "visibility": torch.ones(b, k), "keypose": keypose,
                    "handedness": torch.ones(b, 1)}

    m = ev.evaluate(Stub(), split, aux=True, batch_size=1)
    assert m["epe_px"] == pytest.approx(1.0) and m["pck2"] == 1.0 and m["epe_px_p95_frame"] == pytest.approx(1.0)
    assert m["mask_iou"] == pytest.approx(4 / 8)  # the no-hand frame predicts 4 false-positive pixels
    # every visibility label and every prediction is 1 -> F1 = 1
    assert m["vis_f1"] == 1.0
    assert m["keypose_acc"] == 1.0 and m["handedness_acc"] == 1.0
    # 3D: lifted at depth 500 mm vs joints at the origin: every point ~500 mm away.
    assert m["err3d_mm"] > 490 and m["auc_pck3d_20_50"] == 0.0
    # 2.5D: prediction and label 1 px apart at 500 mm with fx 100: 5 mm; the lift floor is the same ~500 mm.
    assert m["err25_mm"] == pytest.approx(5.0) and m["lift_err3d_mm"] > 490
    assert tuple(m) == ev.METRIC_KEYS
    no_aux = ev.evaluate(Stub(), split, aux=False)
    assert all(no_aux[key] is None for key in ev.AUX_METRIC_KEYS)
