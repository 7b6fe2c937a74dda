"""Training parts without a training run: losses, balancers, the schedule, the config and its hash."""

import math

import pytest
import torch
from torch import nn

from effbench.data.skeleton import KEYPOINT_SUBSET, NUM_KEYPOSES
from effbench.errors import UsageError
from effbench.train import TrainConfig
from effbench.train.balancing import FixedWeights, GradNorm, UncertaintyWeighting, last_shared_parameter
from effbench.train.config import field_help, lower_cap
from effbench.train.loop import lr_at
from effbench.train.losses import heatmap_distill, heatmap_kl, keypoint_l1, seg_loss, task_losses

K = len(KEYPOINT_SUBSET)


def test_keypoint_l1_masked_by_hand():
    pred = torch.tensor([[[1.0, 2.0], [10.0, 10.0]]])
    target = torch.tensor([[[0.0, 0.0], [0.0, 0.0]]])
    # only the first keypoint counts: (|1| + |2|) / 2 coordinates = 1.5 px
    assert float(keypoint_l1(pred, target, torch.tensor([[True, False]]))) == pytest.approx(1.5)
    assert float(keypoint_l1(pred, target, torch.zeros(1, 2, dtype=torch.bool))) == 0.0


def test_heatmap_kl_by_hand():
    # A 1 x 2 map at stride 4: cell centres at x = 1.5 and 5.5 (y = 1.5). Target at the first centre, sigma^2 chosen
    # so that exp(-16 / (2 sigma^2)) = 1/3: target (3/4, 1/4). Uniform logits, p = (1/2, 1/2):
    # KL = 3/4 ln(3/2) + 1/4 ln(1/2) = 0.130812...
    sigma = math.sqrt(8 / math.log(3))
    target = torch.tensor([[[1.5, 1.5], [5.5, 1.5]]])
    logits = torch.zeros(1, 2, 1, 2)
    expected = 0.75 * math.log(1.5) + 0.25 * math.log(0.5)
    valid_first = torch.tensor([[True, False]])  # the second keypoint (another target) does not count
    assert float(heatmap_kl(logits, target, valid_first, 4, sigma)) == pytest.approx(expected, abs=1e-6)
    # the logits of the target itself score 0; nothing valid scores 0
    exact = torch.log(torch.tensor([0.75, 0.25])).reshape(1, 1, 1, 2).expand(1, 2, 1, 2)
    assert float(heatmap_kl(exact, target, valid_first, 4, sigma)) == pytest.approx(0.0, abs=1e-6)
    assert float(heatmap_kl(logits, target, torch.zeros(1, 2, dtype=torch.bool), 4, sigma)) == 0.0


def test_task_losses_add_the_heatmap_term_to_the_keypoint_loss():
    batch, out = _batch_and_output()
    out["heatmaps"] = torch.zeros(2, K, 4, 5, requires_grad=True)  # 16 x 20 frame at stride 4
    plain = float(task_losses(out, batch, aux=False)["keypoints"].detach())
    target = batch["keypoints_2d"][:, list(KEYPOINT_SUBSET)]
    kl = float(heatmap_kl(out["heatmaps"].detach(), target, torch.tensor([[True] * K, [False] * K]), 4, 3.0))
    with_map = task_losses(out, batch, aux=False, heatmap_weight=0.5, heatmap_sigma_px=3.0)["keypoints"]
    assert kl > 0 and float(with_map.detach()) == pytest.approx(plain + 0.5 * kl)
    with_map.backward()
    assert out["heatmaps"].grad[0].abs().sum() > 0 and out["heatmaps"].grad[1].abs().sum() == 0  # no-hand frame


def test_heatmap_distill_by_hand_and_in_the_keypoint_loss():
    # A 1 x 2 map: teacher softmax (3/4, 1/4), student uniform (1/2, 1/2): KL = 3/4 ln(3/2) + 1/4 ln(1/2).
    teacher = torch.log(torch.tensor([0.75, 0.25])).reshape(1, 1, 1, 2).expand(1, 2, 1, 2)
    student = torch.zeros(1, 2, 1, 2)
    expected = 0.75 * math.log(1.5) + 0.25 * math.log(0.5)
    valid_first = torch.tensor([[True, False]])
    assert float(heatmap_distill(student, teacher, valid_first)) == pytest.approx(expected, abs=1e-6)
    assert float(heatmap_distill(teacher + 3.0, teacher, valid_first)) == pytest.approx(0.0, abs=1e-6)  # shift-free
    with pytest.raises(ValueError, match=r"teacher heatmaps \(1, 2, 1, 3\) differ"):
        heatmap_distill(student, torch.zeros(1, 2, 1, 3), valid_first)

    batch, out = _batch_and_output()
    out["heatmaps"] = torch.zeros(2, K, 4, 5, requires_grad=True)
    taught = torch.randn(2, K, 4, 5)
    plain = float(task_losses(out, batch, aux=False)["keypoints"].detach())
    kd = float(heatmap_distill(out["heatmaps"].detach(), taught, torch.tensor([[True] * K, [False] * K])))
    with_kd = task_losses(out, batch, aux=False, teacher_heatmaps=taught, distill_weight=0.5)["keypoints"]
    assert kd > 0 and float(with_kd.detach()) == pytest.approx(plain + 0.5 * kd)


def test_seg_loss_resizes_the_mask_by_area():
    mask = torch.zeros(1, 1, 4, 4)
    mask[0, 0, :2, :2] = 1  # area-resized to 2x2: [[1, 0], [0, 0]]
    logits = torch.tensor([[[[10.0, -10.0], [-10.0, -10.0]]]])
    assert float(seg_loss(logits, mask, dice=False)) == pytest.approx(math.log1p(math.exp(-10)), abs=1e-6)
    # Dice with sigmoid(10) ~ 1 on the single hand cell: 1 - (2*1 + 1) / (1 + 1 + 1) ~ 0
    assert float(seg_loss(logits, mask, dice=True)) == pytest.approx(math.log1p(math.exp(-10)), abs=1e-3)


def _batch_and_output(b=2, h=16, w=20):
    kp21 = torch.full((b, 21, 2), 5.0)
    batch = {
        "depth": torch.full((b, 1, h, w), 500.0),
        "keypoints_2d": kp21,
        "visibility": torch.ones(b, 21),
        "mask": torch.zeros(b, 1, h, w),
        "keypose": torch.tensor([2] + [-1] * (b - 1)),
        "handedness": torch.tensor([1] + [-1] * (b - 1)),
        "has_hand": torch.tensor([True] + [False] * (b - 1)),
    }
    out = {
        "keypoints": torch.full((b, K, 2), 7.0, requires_grad=True),
        "seg": torch.zeros(b, 1, h // 4, w // 4, requires_grad=True),
        "visibility": torch.zeros(b, K, requires_grad=True),
        "keypose": torch.zeros(b, NUM_KEYPOSES, requires_grad=True),
        "handedness": torch.zeros(b, 1, requires_grad=True),
    }
    return batch, out


def test_task_losses_train_only_what_applies_to_frames_without_a_hand():
    batch, out = _batch_and_output()
    batch["keypoints_2d"][0, KEYPOINT_SUBSET[0]] = torch.tensor([-4.0, 5.0])  # outside the frame: masked
    losses = task_losses(out, batch, aux=True, seg_dice=False)
    assert list(losses) == ["keypoints", "seg", "vis", "keypose", "hand"]
    # keypoints: frame 0 only (frame 1 has no hand), K-1 keypoints inside, each |7-5| = 2 per coordinate
    assert float(losses["keypoints"].detach()) == pytest.approx(2.0)
    assert float(losses["vis"].detach()) == pytest.approx(math.log(2))  # logit 0 vs any label: ln 2
    assert float(losses["keypose"].detach()) == pytest.approx(math.log(NUM_KEYPOSES))  # uniform over 9 classes
    assert float(losses["hand"].detach()) == pytest.approx(math.log(2))
    # gradient of the keypose/handedness losses reaches the hand frame only
    losses["keypose"].backward(retain_graph=True)
    assert out["keypose"].grad[1].abs().sum() == 0 and out["keypose"].grad[0].abs().sum() > 0
    # visibility and seg train the no-hand frame too
    (losses["vis"] + losses["seg"]).backward()
    assert out["visibility"].grad[1].abs().sum() > 0 and out["seg"].grad[1].abs().sum() > 0
    assert list(task_losses(out, batch, aux=False)) == ["keypoints"]


def test_fixed_and_uncertainty_by_hand():
    losses = {"a": torch.tensor(2.0), "b": torch.tensor(3.0)}
    assert float(FixedWeights(("a", "b"), {"a": 1.0, "b": 0.5})(losses)) == pytest.approx(3.5)
    unc = UncertaintyWeighting(("a", "b"))
    assert float(unc(losses).detach()) == pytest.approx(5.0)  # s = 0: plain sum
    with torch.no_grad():
        unc.log_var.copy_(torch.tensor([math.log(2.0), 0.0]))
    # exp(-ln 2) * 2 + ln 2 + 3
    assert float(unc(losses).detach()) == pytest.approx(1 + math.log(2) + 3)
    # d/ds_a [exp(-s) L + s] = 1 - exp(-s) L = 1 - 1 = 0 at the optimum exp(s_a) = L_a
    unc(losses).backward()
    assert unc.log_var.grad[0] == pytest.approx(0.0, abs=1e-6)


class _TwoHeads(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Linear(3, 4)
        self.shared = nn.Linear(4, 4)
        self.head_a = nn.Linear(4, 1)
        self.head_b = nn.Linear(4, 1)

    def forward(self, x):
        f = torch.relu(self.shared(torch.relu(self.stem(x))))
        return self.head_a(f), self.head_b(f)


def test_gradnorm_pulls_weights_towards_balanced_gradients():
    torch.manual_seed(0)
    model = _TwoHeads()
    x = torch.randn(16, 3)
    a, b = model(x)
    losses = {"a": a.pow(2).mean(), "b": 100 * b.pow(2).mean()}  # b's gradients are ~100x larger
    assert last_shared_parameter(model, losses) is model.shared.weight
    gn = GradNorm(("a", "b"), alpha=1.5, shared=model.shared.weight)
    opt = torch.optim.SGD(gn.parameters(), lr=0.01)
    total = gn(losses)
    assert torch.equal(gn.initial, torch.stack([losses["a"], losses["b"]]).detach())
    # the network's part is the weighted sum with weights 1: the returned loss exceeds it by the GradNorm term
    assert float(total.detach()) > float((losses["a"] + losses["b"]).detach())
    total.backward()
    assert gn.w.grad[1] > 0 > gn.w.grad[0]  # shrink the loud task, grow the quiet one
    opt.step()
    gn.after_step()
    assert float(gn.w.detach().sum()) == pytest.approx(2.0)
    assert gn.w[0] > 1 > gn.w[1]


def test_lr_schedule_warmup_then_cosine():
    cfg = TrainConfig(steps=110, lr=1.0, warmup_steps=10, min_lr_ratio=0.1)
    assert lr_at(0, cfg) == pytest.approx(0.1)
    assert lr_at(9, cfg) == pytest.approx(1.0)
    assert lr_at(10, cfg) == pytest.approx(1.0)
    assert lr_at(60, cfg) == pytest.approx(0.1 + 0.9 * 0.5)  # half-way through the cosine
    assert lr_at(110, cfg) == pytest.approx(0.1)
    lrs = [lr_at(s, cfg) for s in range(10, 110)]
    assert all(x >= y for x, y in zip(lrs, lrs[1:]))


def test_config_hash_and_validation():
    cfg = TrainConfig()
    assert cfg.hash() == TrainConfig().hash() and len(cfg.hash()) == 12
    # fields that cannot change results are not hashed; the device is
    assert cfg.replace(checkpoint_every=7, data_cache_dir="/x").hash() == cfg.hash()
    assert cfg.replace(device="cuda").hash() != cfg.hash()
    assert cfg.replace(seed=1).hash() != cfg.hash()
    # fields added after runs were recorded join the hash only when set: every earlier run keeps its name (these two
    # hashes are those of effbench before the distillation fields)
    assert cfg.hash() == "50bc313d7f27"
    assert TrainConfig(model="mobilenet_v2_100", aux=False, seed=2, steps=100).hash() == "03643921a013"
    assert cfg.replace(teacher="0123456789ab").hash() != cfg.hash()
    assert cfg.replace(teacher="0123456789ab", w_distill=2.0).hash() != cfg.replace(teacher="0123456789ab").hash()
    with pytest.raises(UsageError, match="teacher 'mobilenet' is not a run's config hash"):
        TrainConfig(teacher="mobilenet").validate()
    assert cfg.replace(seed=None) == cfg  # None keeps the default (empty CLI flag)
    assert TrainConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(UsageError, match="unknown config field 'stepz'; closest: steps"):
        TrainConfig.from_dict({"stepz": 3})
    with pytest.raises(UsageError, match="steps must be > 0, got 0"):
        TrainConfig(steps=0).validate()
    with pytest.raises(UsageError, match="balancing 'magic'"):
        TrainConfig(balancing="magic").validate()
    with pytest.raises(UsageError, match="unknown model"):
        TrainConfig(model="tiny_hnd").validate()
    assert field_help()["lr"].startswith("peak learning rate")


def test_a_run_under_a_lower_cap_is_recognised_only_for_the_plateau_schedule():
    plan = TrainConfig(schedule="plateau", steps=40_000)
    past = plan.replace(steps=12_000).to_dict()
    assert lower_cap(past, 40_000, plan.hash()) == 12_000
    assert lower_cap(past, 12_000, plan.replace(steps=12_000).hash()) is None  # the same cap: the run itself
    assert lower_cap(plan.to_dict(), 12_000, plan.replace(steps=12_000).hash()) is None  # a higher cap
    assert lower_cap({**past, "lr": 0.02}, 40_000, plan.hash()) is None  # another recipe
    cosine = plan.replace(schedule="cosine")
    assert lower_cap(cosine.replace(steps=12_000).to_dict(), 40_000, cosine.hash()) is None  # rates shaped by the cap
    assert lower_cap({"stepz": 3}, 40_000, plan.hash()) is None  # a config of another version
