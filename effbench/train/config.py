"""The training configuration: defaults in one dataclass (after nanoGPT's ``GPTConfig``), a help text on each field.

Each field's metadata holds its help text (the ``bench.py train`` flag's) and whether it is hashed. Every field
that can change a run's numbers is part of the config hash that names the run's results file; a field whose
metadata says ``hash=False`` (where the data cache lives, how often to checkpoint) cannot change them and is left
out, so that changing it neither reruns finished work nor orphans a checkpoint. A field added after runs were
recorded is hashed only when set (``hash="if set"``: when it differs from its default), so that adding it keeps
the name of every earlier run.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import re
from dataclasses import dataclass, field
from typing import Any

from effbench.errors import UsageError

BALANCING: tuple[str, ...] = ("fixed", "uncertainty", "gradnorm")
#: The auxiliary tasks, in the order losses, weights and balancers list them (the keypoint task comes first).
AUX_TASKS: tuple[str, ...] = ("seg", "vis", "keypose", "hand")
DEVICES: tuple[str, ...] = ("cpu", "cuda")
SCHEDULES: tuple[str, ...] = ("cosine", "plateau")
#: The largest share of a run's compute that its validation points may take when ``eval_every`` is automatic.
EVAL_SHARE = 0.05


#: A field's ``hashed`` setting for a field that joins the hash only when it differs from its default.
IF_SET = "if set"


def _field(default: Any, help: str, *, hashed: bool | str = True) -> Any:
    """A config field with its ``--help`` text; ``hashed=False`` leaves it out of the config hash, ``hashed=IF_SET``
    leaves it out while it holds its default."""
    metadata = {"help": help, "hash": hashed}
    if isinstance(default, dict):
        return field(default_factory=lambda: dict(default), metadata=metadata)
    return field(default=default, metadata=metadata)


@dataclass
class TrainConfig:
    """One training run: the model, the data, the optimisation and the loss balancing.

    The defaults are the budget of a run on a small CPU; suites override them through ``Suite.settings["train"]``
    and the command line overrides both. Each field's help text is the ``bench.py train`` flag's.
    """

    # --- what is trained
    model: str = _field("tiny_hand", "registered model name (bench.py list)")
    aux: bool = _field(True, "train the auxiliary heads too (seg, visibility, keypose, handedness); False: keypoints "
                             "only")
    aux_tasks: str = _field("seg,vis,keypose,hand", "the auxiliary tasks trained when aux is on, comma-separated "
                                                    "(ablations)")
    seed: int = _field(0, "model initialisation, batch order and augmentation")

    # --- optimisation: AdamW, linear warm-up, then a cosine or a plateau schedule
    steps: int = _field(4000, "optimiser steps (each one batch); the cap under the plateau schedule")
    batch_size: int = _field(32, "frames per step")
    lr: float = _field(1e-2, "peak learning rate, reached after warmup_steps")
    schedule: str = _field("cosine", '"cosine" to lr * min_lr_ratio at `steps`, or "plateau": lr / 10 per plateau')
    min_lr_ratio: float = _field(0.01, "the lowest learning rate as a fraction of lr")
    weight_decay: float = _field(1e-4, "AdamW decoupled weight decay on conv/linear weights (not on norms, biases, "
                                       "balancer)")
    warmup_steps: int = _field(100, "linear warm-up from 0 to lr")
    grad_clip: float = _field(5.0, "clip the global gradient norm to this (0: off); guards the first steps of a tiny "
                                   "net")

    # --- validation: the learning curve, plateaus and the best weights (see effbench.train.curve)
    eval_every: int = _field(0, "steps between validation points (0: auto, under 5% of the compute)")
    patience: int = _field(0, "validation points without improvement that make a plateau (0: none)")
    plateau_delta: float = _field(0.005, "relative drop of the best validation EPE that counts as an improvement")

    # --- knowledge distillation (fields added after the first recorded runs: hashed only when set)
    teacher: str = _field("", "distil from a finished run in the same results folder, named by its config hash: the "
                              "keypoint heatmaps also learn the teacher's (empty: no teacher)", hashed=IF_SET)
    w_distill: float = _field(1.0, "weight of the distillation term (KL from the teacher's heatmap softmax to the "
                                   "student's) inside the keypoint loss", hashed=IF_SET)

    # --- loss balancing (see effbench.train.balancing)
    balancing: str = _field("fixed", '"fixed" | "uncertainty" (Kendall et al. 2018) | "gradnorm" (Chen et al. 2018)')
    w_keypoints: float = _field(1.0, 'keypoint L1 weight (px units) under "fixed"; the other balancers learn the '
                                     'weights')
    w_heatmap: float = _field(1.0, "heatmap KL term inside the keypoint loss (sharp peak at the label; 0: soft-argmax "
                                   "L1 only)")
    heatmap_sigma_px: float = _field(4.0, "width of the heatmap term's target Gaussian, input pixels")
    w_seg: float = _field(1.0, 'segmentation (BCE + Dice) weight under "fixed"')
    w_vis: float = _field(1.0, 'visibility BCE weight under "fixed"')
    w_keypose: float = _field(0.5, 'keypose cross-entropy weight under "fixed"')
    w_hand: float = _field(0.5, 'handedness BCE weight under "fixed"')
    seg_dice: bool = _field(True, "add a soft Dice term to the segmentation BCE (hands cover a small part of the "
                                  "frame)")
    gradnorm_alpha: float = _field(1.5, "GradNorm's asymmetry: how strongly slow tasks are pulled up (paper: 0.12-3)")

    # --- data (effbench.data.SyntheticHands)
    augment: bool = _field(True, "in-plane rotation, scale, translation and depth shift on every training batch")
    augment_physical: bool = _field(False, "augment only into frames the camera could see: the depth shift moves the "
                                           "hand (the image scales with it) and no zoom (the data already varies "
                                           "hand size); off: a zoom of 0.85-1.15x and a shift of the depth alone",
                                    hashed=IF_SET)
    train_size: int = _field(4096, "frames in the training split")
    val_size: int = _field(256, "frames in the validation split (EPE reported as val_epe_px; 0: skip)")
    test_size: int = _field(512, "frames in the held-out test split that the metrics come from")
    data_seed: int = _field(0, "seed of the generated data set (the same for every model, so all see the same frames)")
    data_config: dict[str, Any] = _field({}, 'SceneConfig overrides, e.g. {"height": 48, "width": 64}')

    # --- where and how
    device: str = _field("cpu", '"cpu" | "cuda"; kept in the hash: the same seed gives different numbers on a GPU')
    eval_batch_size: int = _field(256, "frames per forward pass at evaluation")
    runtime_eval: bool = _field(False, "also test the deployed model under ONNX Runtime fp32 and int8")
    checkpoint_every: int = _field(500, "save a resumable checkpoint every this many steps (0: only at the end)",
                                   hashed=False)
    data_cache_dir: str | None = _field(None, "where SyntheticHands caches generated splits (None: $EFFBENCH_CACHE or "
                                              "~/.cache/effbench)", hashed=False)

    def validate(self) -> TrainConfig:
        """Check every field; return self.

        Raises:
            UsageError: Naming the bad field, its value and what would be valid.
        """
        from effbench.registry import trainable_info

        trainable_info(self.model)  # raises with the closest names, or for a profile-only model
        if self.schedule not in SCHEDULES:
            raise UsageError(f"schedule {self.schedule!r} is not one of {', '.join(SCHEDULES)}")
        if self.schedule == "plateau" and (self.patience <= 0 or self.val_size <= 0):
            raise UsageError(
                f"schedule 'plateau' needs patience > 0 and val_size > 0, got patience {self.patience} and val_size "
                f"{self.val_size}"
            )
        tasks = [t.strip() for t in self.aux_tasks.split(",")]
        unknown = [t for t in tasks if t not in AUX_TASKS]
        if unknown or not tasks or len(set(tasks)) != len(tasks):
            raise UsageError(
                f"aux_tasks {self.aux_tasks!r} must name distinct tasks among {', '.join(AUX_TASKS)}, comma-separated"
            )
        if self.balancing not in BALANCING:
            raise UsageError(f"balancing {self.balancing!r} is not one of {', '.join(BALANCING)}")
        if self.device not in DEVICES:
            raise UsageError(f"device {self.device!r} is not one of {', '.join(DEVICES)}")
        if self.device == "cuda":
            import torch

            if not torch.cuda.is_available():
                raise UsageError("device 'cuda' requested but torch.cuda.is_available() is False; use --device cpu")
        for f in dataclasses.fields(self):  # inf and nan pass every comparison below that a number could fail
            value = getattr(self, f.name)
            if isinstance(value, float) and not math.isfinite(value):
                raise UsageError(f"{f.name} must be a finite number, got {value}")
        for name in ("steps", "batch_size", "train_size", "test_size", "eval_batch_size"):
            if getattr(self, name) <= 0:
                raise UsageError(f"{name} must be > 0, got {getattr(self, name)}")
        for name in ("lr", "gradnorm_alpha", "heatmap_sigma_px"):
            if not getattr(self, name) > 0:
                raise UsageError(f"{name} must be > 0, got {getattr(self, name)}")
        for name in ("warmup_steps", "val_size", "checkpoint_every", "weight_decay", "grad_clip", "min_lr_ratio",
                     "eval_every", "patience", "plateau_delta"):
            if getattr(self, name) < 0:
                raise UsageError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.teacher and not re.fullmatch(r"[0-9a-f]{12}", self.teacher):
            raise UsageError(f"teacher {self.teacher!r} is not a run's config hash (12 hex digits, the name of its "
                             "record in the results folder)")
        for name in ("w_keypoints", "w_heatmap", "w_seg", "w_vis", "w_keypose", "w_hand", "w_distill"):
            if getattr(self, name) < 0:
                raise UsageError(f"{name} must be >= 0, got {getattr(self, name)}")
        return self

    def tasks(self) -> tuple[str, ...]:
        """The trained tasks: ``keypoints``, then the auxiliary ones when ``aux`` is on, in :data:`AUX_TASKS` order."""
        if not self.aux:
            return ("keypoints",)
        chosen = {t.strip() for t in self.aux_tasks.split(",")}
        return ("keypoints",) + tuple(t for t in AUX_TASKS if t in chosen)

    def eval_interval(self) -> int:
        """Steps between validation points: ``eval_every``, or when 0 the smallest multiple of 50 steps at which
        evaluating ``val_size`` frames costs under 5% of training (a training frame costs about three forward
        passes: forward, backward, update), and at least 50. 0 when there is no validation split."""
        if self.val_size <= 0:
            return 0
        if self.eval_every > 0:
            return self.eval_every
        steps = self.val_size / (3 * self.batch_size * EVAL_SHARE)
        return max(50, 50 * math.ceil(steps / 50))

    def to_dict(self) -> dict[str, Any]:
        """All fields as a JSON-ready dict."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainConfig:
        """Build from a dict (a saved record's config, a suite's settings); unknown keys are a UsageError."""
        unknown = sorted(set(values) - set(field_names()))
        if unknown:
            from effbench.errors import closest

            raise UsageError(f"unknown config field {unknown[0]!r}; {closest(unknown[0], field_names())}")
        return cls(**values)

    def replace(self, **changes: Any) -> TrainConfig:
        """A copy with some fields changed; None values are ignored (empty CLI flags keep the default)."""
        return dataclasses.replace(self, **{k: v for k, v in changes.items() if v is not None})

    def hash(self) -> str:
        """12 hex digits of SHA-256 over the stable JSON (sorted keys) of the fields that change results (those added
        later only when set)."""
        hashed = {}
        for f in dataclasses.fields(self):
            mode, value = f.metadata.get("hash", True), getattr(self, f.name)
            if mode is True or (mode == IF_SET and value != f.default):
                hashed[f.name] = value
        blob = json.dumps(hashed, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(blob.encode()).hexdigest()[:12]


def lower_cap(values: dict[str, Any], steps: int, config_hash: str) -> int | None:
    """The step cap of ``values`` (a saved run's config) when it is the run hashed ``config_hash`` under the plateau
    schedule (whose rates do not depend on the cap) but for a cap lower than ``steps``: that run's training is this
    one's too, up to its cap. None otherwise, and for a config this version cannot read (not this run's past)."""
    try:
        other = TrainConfig.from_dict(values)
    except Exception:
        return None
    if other.schedule != "plateau" or other.steps >= steps:
        return None
    return other.steps if other.replace(steps=steps).hash() == config_hash else None


def field_names() -> tuple[str, ...]:
    """The names of TrainConfig's fields, in declaration order."""
    return tuple(f.name for f in dataclasses.fields(TrainConfig))


def field_help() -> dict[str, str]:
    """Each field's help text (the CLI's), by field name."""
    return {f.name: f.metadata["help"] for f in dataclasses.fields(TrainConfig)}
