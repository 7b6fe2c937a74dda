"""The training loop: one run from a TrainConfig to a run record, resumable, and a runner for many runs.

The whole training split lives on the device as tensors (``SyntheticHands.tensors()``); each step indexes a batch
with a seeded ``torch.Generator`` on that device and augments it there (``augment_batch``), so a GPU run never
copies data from the host. AdamW, linear warm-up then a cosine or plateau schedule, gradient clipping. A NaN or inf
loss stops the run and records it as failed.

Every ``eval_every`` steps the run evaluates its validation split and adds a point to its learning curve
(:mod:`effbench.train.curve`); it keeps the weights of the best point, is tested with them, and can stop on a
validation plateau before its step cap. Checkpoints every ``checkpoint_every`` steps carry model, optimiser,
balancer, curve, best weights, schedule position and every RNG state, so a resumed run takes exactly the steps and
makes exactly the curve an uninterrupted one would. A run that ends at its step cap under the plateau schedule keeps
that state in its final checkpoint, and the same config under a higher cap goes on from it (:meth:`_Run.resume`).
"""

from __future__ import annotations

import math
import os
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from effbench import results
from effbench.data.splits import load_split
from effbench.errors import error_text
from effbench.evaluate import METRIC_KEYS, evaluate, keypoint_epe
from effbench.train.balancing import GradNorm, last_shared_parameter, make_balancer
from effbench.train.config import TrainConfig, lower_cap
from effbench.train.curve import Curve, still_improving
from effbench.train.losses import task_losses


class NonFiniteLoss(RuntimeError):
    """The training loss became NaN or inf."""


class TimeLimitReached(Exception):
    """A run reached its ``deadline``: its checkpoint is saved at ``step`` and it resumes from there next time."""

    def __init__(self, step: int):
        super().__init__(f"time limit reached at step {step}")
        self.step = step


#: The metrics of a record: the test-split metrics, then the validation EPE and the last training loss.
RECORD_METRIC_KEYS: tuple[str, ...] = METRIC_KEYS + ("val_epe_px", "final_train_loss")
#: With ``runtime_eval``: the deployed model's test EPE and PCK@5 as ONNX Runtime fp32 and int8 run it.
RUNTIME_METRIC_KEYS: tuple[str, ...] = ("ort_epe_px", "ort_int8_epe_px", "ort_int8_pck5")

#: How often (steps) a CUDA run synchronises to read the loss for the progress bar and the NaN check; a CPU run
#: checks every step (reading a CPU tensor costs nothing).
SYNC_EVERY_CUDA = 25

#: The plateau schedule's factor on the learning rate at each validation plateau.
PLATEAU_FACTOR = 0.1


def lr_at(step: int, config: TrainConfig, plateaus: int = 0) -> float:
    """Learning rate of step ``step`` (0-based): linear warm-up to ``lr``, then the config's schedule.

    ``"cosine"``: cosine decay to ``lr * min_lr_ratio`` at ``config.steps``. ``"plateau"``: ``lr / 10**plateaus``
    after ``plateaus`` validation plateaus (:mod:`effbench.train.curve`).
    """
    if step < config.warmup_steps:
        return config.lr * (step + 1) / config.warmup_steps
    if config.schedule == "plateau":
        return config.lr * PLATEAU_FACTOR**plateaus
    span = max(1, config.steps - config.warmup_steps)
    progress = min(1.0, (step - config.warmup_steps) / span)
    low = config.lr * config.min_lr_ratio
    return low + 0.5 * (config.lr - low) * (1 + math.cos(math.pi * progress))


def _plateau_ends_run(config: TrainConfig, plateaus: int) -> bool:
    """Whether the ``plateaus``-th plateau stops the run: always under a cosine schedule (early stopping); under
    the plateau schedule once the rate would fall below ``lr * min_lr_ratio``."""
    if config.schedule != "plateau":
        return True
    return PLATEAU_FACTOR**plateaus < config.min_lr_ratio * (1 - 1e-9)


def _to_device(tensors: dict[str, Tensor], device: torch.device) -> dict[str, Tensor]:
    return {k: v.to(device) for k, v in tensors.items()}


def _as_float_mask(batch: dict[str, Tensor]) -> dict[str, Tensor]:
    return {**batch, "mask": batch["mask"].float()}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _param_groups(net: nn.Module, balancer: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    # Decay conv and linear weights only: decaying BatchNorm scales and biases only fights the normalisation.
    params = [p for p in net.parameters() if p.requires_grad]
    groups = [
        {"params": [p for p in params if p.dim() > 1], "weight_decay": weight_decay},
        {"params": [p for p in params if p.dim() <= 1], "weight_decay": 0.0},
    ]
    balancer_params = list(balancer.parameters())
    if balancer_params:
        groups.append({"params": balancer_params, "weight_decay": 0.0})
    return groups


def _rng_state(generators: dict[str, torch.Generator], device: torch.device) -> dict[str, Tensor]:
    state = {name: g.get_state() for name, g in generators.items()}
    state["torch"] = torch.get_rng_state()
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def _set_rng_state(state: dict[str, Tensor], generators: dict[str, torch.Generator], device: torch.device) -> None:
    for name, g in generators.items():
        g.set_state(state[name])
    torch.set_rng_state(state["torch"])
    if device.type == "cuda":
        torch.cuda.set_rng_state(state["cuda"], device)


def load_teacher(out_dir: Path, key: str, device: torch.device) -> nn.Module:
    """The teacher of a distillation run: finished run ``key`` of ``out_dir`` as deployed (its final checkpoint holds
    the best-validation weights it was tested with), in eval mode and frozen.

    Raises:
        RuntimeError: When ``out_dir`` holds no successful record of ``key`` or not its final checkpoint (the student's
            run then fails, saying so).
    """
    record = _read_record(results.record_path(out_dir, key))
    if record is None or record.get("status") != "ok":
        why = "has no record" if record is None else f"failed ({record.get('error')})"
        raise RuntimeError(f"teacher run {key} {why} in {out_dir}: train the teacher first, into the same folder")
    ckpt_path = results.checkpoint_path(out_dir, key)
    ckpt = results.load_checkpoint(ckpt_path) if ckpt_path.exists() else None
    if ckpt is None or "optimizer" in ckpt:  # a mid-run checkpoint holds the last weights, not the tested ones
        raise RuntimeError(f"teacher run {key} has no final checkpoint ({ckpt_path}): its weights are needed")
    model = build_model(TrainConfig.from_dict(record["config"]))
    model.load_state_dict(ckpt["model"])
    teacher = model.deployable().to(device, memory_format=torch.channels_last).eval()
    for p in teacher.parameters():
        p.requires_grad_(False)
    return teacher


def build_model(config: TrainConfig) -> nn.Module:
    """The training form of ``config``'s model, with any crop stage told the focal length of the data's camera."""
    from effbench.crop import use_camera
    from effbench.data.scene import SceneConfig
    from effbench.registry import create_model

    return use_camera(create_model(config.model), SceneConfig(**config.data_config).intrinsics[0])


class _Run:
    """One run between its config and its metrics: the model and optimiser, the RNGs, the curve and the clocks.

    Each method does one thing: :meth:`resume` from a checkpoint, :meth:`train` until the cap or a final plateau
    (validating and checkpointing on the way), :meth:`test` with the best-validation weights.
    """

    def __init__(self, config: TrainConfig, out_dir: Path, config_hash: str, fingerprint: str | None):
        self.config, self.hash, self.fingerprint = config, config_hash, fingerprint
        self.t_start = time.perf_counter()
        self.device = device = torch.device(config.device)
        self.ckpt_path = results.checkpoint_path(out_dir, config_hash)
        self.progress_path = results.progress_path(out_dir, config_hash)
        torch.manual_seed(config.seed)  # model initialisation
        # Channels-last weights (so activations follow): torch's CPU convolutions run 1.5-1.8x faster in training
        # for these models (measured: tiny_hand and mobilenet_v2_100, batch 32, one thread); same arithmetic.
        self.model = build_model(config).to(device, memory_format=torch.channels_last)
        # Without auxiliary tasks the deployable form is trained: same weights, no auxiliary heads computed.
        self.net = self.model if config.aux else self.model.deployable()
        tasks = config.tasks()
        weights = {"keypoints": config.w_keypoints, "seg": config.w_seg, "vis": config.w_vis,
                   "keypose": config.w_keypose, "hand": config.w_hand}
        self.balancer = make_balancer(config.balancing, tasks, weights, config.gradnorm_alpha).to(device)
        self.teacher = load_teacher(out_dir, config.teacher, device) if config.teacher else None
        self.optimizer = torch.optim.AdamW(
            _param_groups(self.net, self.balancer, config.weight_decay), lr=config.lr, fused=device.type == "cuda"
        )
        self.generators = {
            "batch": torch.Generator(device=device).manual_seed(config.seed),
            "augment": torch.Generator(device=device).manual_seed(config.seed + 7919),
        }
        self.curve = Curve(config.patience, config.plateau_delta)
        self.best: dict[str, Tensor] | None = None  # the weights at the best validation point
        self.step, self.stopped = 0, False
        self.loss_sum, self.loss_n = 0.0, 0  # training loss since the last validation point
        self.final_loss = float("nan")
        self.train_s = self.eval_s = self.wall_s = 0.0  # carried over from before a resume (wall_s: until then)

    # --- checkpoints
    def resume(self) -> None:
        """Take up the state of this run's checkpoint, or else of a shorter run's (:meth:`_shorter_run`), if it is
        of the same model."""
        ckpt = self._load_checkpoint() or self._shorter_run()
        if ckpt is None or ckpt.get("model_fingerprint", self.fingerprint) != self.fingerprint:
            return  # no checkpoint, or the model changed since: start afresh
        self.model.load_state_dict(ckpt["model"])
        self.step, self.train_s, self.wall_s = int(ckpt["step"]), float(ckpt["train_s"]), float(ckpt["wall_s"])
        self.eval_s = float(ckpt.get("eval_s", 0.0))
        self.stopped = bool(ckpt.get("stopped", False))
        self.final_loss = float(ckpt.get("final_loss", float("nan")))
        if "curve" in ckpt:
            self.curve = Curve.from_state(ckpt["curve"])
            self.best = ckpt.get("best")
            self.loss_sum, self.loss_n = float(ckpt["loss_sum"]), int(ckpt["loss_n"])
        if "optimizer" in ckpt:  # a mid-run checkpoint (a final one holds the weights only)
            self.optimizer.load_state_dict(ckpt["optimizer"])
            self.balancer.load_state_dict(ckpt["balancer"])
            _set_rng_state(ckpt["rng"], self.generators, self.device)

    def _shorter_run(self) -> dict[str, Any] | None:
        """This run's past when its config was trained before under a lower step cap with the plateau schedule
        (whose rates do not depend on the cap): a run interrupted before that cap goes on from its checkpoint, one
        that stopped at the cap from its training state (:meth:`extension_state`), and one that stopped on its plateau
        rule before it is this run's result too (its final checkpoint, tested again). The longest cap wins; None when
        there is none."""
        if self.config.schedule != "plateau":
            return None
        shorter = []
        for path in self.ckpt_path.parent.glob("*.config.json"):
            try:
                steps = lower_cap(results.read_json(path), self.config.steps, self.hash)
            except (OSError, ValueError):  # unreadable: not this run's past
                continue
            if steps is not None:
                shorter.append((steps, path.name.removesuffix(".config.json")))
        for steps, key in sorted(shorter, reverse=True):
            try:
                ckpt = results.load_checkpoint(self.ckpt_path.with_name(f"{key}.pt"))
            except (OSError, results.RecordError):
                continue
            if "optimizer" in ckpt:  # interrupted before its cap: its steps so far are this run's too
                print(f"effbench: run {self.hash} goes on from run {key} (cap {steps}), interrupted at step "
                      f"{ckpt['step']}", file=sys.stderr)
                return ckpt
            if "extension" in ckpt:
                print(f"effbench: run {self.hash} goes on from run {key}, which stopped at its cap of {steps} steps",
                      file=sys.stderr)
                return {**ckpt, **ckpt["extension"], "stopped": False}
            if ckpt.get("stopped") and int(ckpt.get("step", steps)) < steps:
                print(f"effbench: run {self.hash} is run {key}'s: that stopped on its plateau at step {ckpt['step']}, "
                      "under both caps", file=sys.stderr)
                return ckpt
        return None

    def _load_checkpoint(self) -> dict[str, Any] | None:
        """This run's checkpoint, or None when it has none; an unreadable one is set aside (renamed, and said so),
        and the run starts afresh rather than failing on every rerun."""
        if not self.ckpt_path.exists():
            return None
        try:
            return results.load_checkpoint(self.ckpt_path)
        except results.RecordError as err:
            moved = results.set_aside(self.ckpt_path)
            print(f"effbench: {err}: set aside as {moved.name}; training run {self.hash} from the start",
                  file=sys.stderr)
            return None

    def checkpoint(self, final: bool, extension: dict[str, Any] | None = None) -> None:
        """Save the run's state atomically; a final checkpoint holds the evaluated weights and the curve, and the
        ``extension`` state (:meth:`extension_state`) when it has one. A mid-run one also writes the run's progress
        beside the records (:func:`effbench.results.in_training`), which a final one removes: the record follows."""
        state: dict[str, Any] = {
            "model": self.model.state_dict(),
            "step": self.step,
            "stopped": self.stopped or final,
            "train_s": self.train_s,
            "eval_s": self.eval_s,
            "wall_s": self.wall_s + time.perf_counter() - self.t_start,
            "config_hash": self.hash,
            "model_fingerprint": self.fingerprint,
            "curve": self.curve.state_dict(),
            "loss_sum": self.loss_sum,
            "loss_n": self.loss_n,
            "final_loss": self.final_loss,  # so that a record rebuilt from a final checkpoint has it too
        }
        if not final:
            state.update(optimizer=self.optimizer.state_dict(), balancer=self.balancer.state_dict(), best=self.best)
            state["rng"] = _rng_state(self.generators, self.device)
        elif extension is not None:
            state["extension"] = extension
        results.save_checkpoint(self.ckpt_path, state)
        if final:
            self.progress_path.unlink(missing_ok=True)
        else:
            results.write_json(self.progress_path, {
                "config": self.config.to_dict(), "config_hash": self.hash, "model_fingerprint": self.fingerprint,
                "step": self.step, "curve": self.curve.points, "plateaus": self.curve.plateaus,
                "wall_s": round(state["wall_s"], 3)})

    def extension_state(self) -> dict[str, Any] | None:
        """What a run of the same config under a higher step cap needs to go on from here: the last weights, the
        optimiser, balancer, best weights and RNGs. Only for a run that ended at its cap under the plateau schedule,
        validated at the cap: its rates do not depend on the cap, so a longer run's first steps are this run's,
        exactly. None otherwise (a cosine schedule is shaped by the cap; a plateau stop ended the run)."""
        every = self.config.eval_interval()
        if self.config.schedule != "plateau" or self.stopped or (every and self.config.steps % every):
            return None
        return {"model": {k: v.detach().clone() for k, v in self.model.state_dict().items()},
                "optimizer": self.optimizer.state_dict(), "balancer": self.balancer.state_dict(), "best": self.best,
                "rng": _rng_state(self.generators, self.device)}

    @property
    def finished(self) -> bool:
        return self.stopped or self.step >= self.config.steps

    # --- training
    def train(self, progress: bool, on_step: Callable[[int], None] | None, deadline: float | None = None) -> None:
        """Train from the current step until the step cap or the plateau that ends the run.

        Raises:
            TimeLimitReached: At the first step that ends after ``deadline`` (``time.time()``), with the run's
                state checkpointed at that step.
        """
        config, device = self.config, self.device
        if self.finished:
            return
        if config.augment:
            from effbench.data import augment_batch

            physical = {"scale": (1.0, 1.0), "move": True} if config.augment_physical else {}
        train = _to_device(load_split("train", config.train_size, config), device)
        val = _to_device(load_split("val", config.val_size, config), device) if config.val_size > 0 else None
        every = config.eval_interval()
        first_bad = torch.full((), -1, dtype=torch.long, device=device)
        bar = _progress_bar(config, self.step, progress)
        self.net.train()
        _sync(device)
        t_loop = time.perf_counter()
        try:
            while not self.finished:
                for group in self.optimizer.param_groups:
                    group["lr"] = lr_at(self.step, config, self.curve.plateaus)
                idx = torch.randint(len(train["depth"]), (config.batch_size,), generator=self.generators["batch"],
                                    device=device)
                batch = _as_float_mask({k: v.index_select(0, idx) for k, v in train.items()})
                if config.augment:
                    batch = augment_batch(batch, self.generators["augment"], **physical)
                loss = self._step(batch)
                first_bad = torch.where((first_bad < 0) & ~torch.isfinite(loss), self.step, first_bad)
                self.step += 1
                self.loss_sum, self.loss_n = self.loss_sum + loss, self.loss_n + 1  # a tensor until read
                due_val = val is not None and (self.step % every == 0 or self.step == config.steps)
                due_ckpt = config.checkpoint_every > 0 and self.step % config.checkpoint_every == 0
                if device.type != "cuda" or self.step % SYNC_EVERY_CUDA == 0 or due_val or due_ckpt:
                    if int(first_bad) >= 0:
                        raise NonFiniteLoss(f"loss became {float(loss):g} at step {int(first_bad) + 1}")
                    self.final_loss = float(loss)
                    bar.set_postfix(loss=f"{self.final_loss:.3f}", refresh=False)
                bar.update(1)
                if due_val or (due_ckpt and not self.finished):
                    _sync(device)
                    self.train_s, t_loop = self.train_s + time.perf_counter() - t_loop, time.perf_counter()
                    if due_val:
                        self._validate(val)
                    if due_ckpt and not self.finished:
                        self.checkpoint(final=False)
                    t_loop = time.perf_counter()
                if on_step is not None:
                    on_step(self.step)
                if deadline is not None and not self.finished and time.time() >= deadline:
                    _sync(device)
                    self.train_s += time.perf_counter() - t_loop
                    self.checkpoint(final=False)
                    raise TimeLimitReached(self.step)
        finally:
            bar.close()
        _sync(device)
        self.train_s += time.perf_counter() - t_loop

    def _step(self, batch: dict[str, Tensor]) -> Tensor:
        """One optimiser step; returns the detached loss (not synchronised)."""
        config = self.config
        out = self.net(batch["depth"])
        teacher = None
        if self.teacher is not None:
            with torch.no_grad():
                teacher = self.teacher(batch["depth"])["heatmaps"]
        losses = task_losses(out, batch, aux=config.aux, seg_dice=config.seg_dice, heatmap_weight=config.w_heatmap,
                             heatmap_sigma_px=config.heatmap_sigma_px, teacher_heatmaps=teacher,
                             distill_weight=config.w_distill)
        losses = {t: losses[t] for t in self.balancer.tasks}  # an ablation trains some auxiliary tasks only
        if isinstance(self.balancer, GradNorm) and self.balancer.shared is None:
            self.balancer.set_shared(last_shared_parameter(self.net, losses))
        loss = self.balancer(losses)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if config.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(self.net.parameters(), config.grad_clip)
        self.optimizer.step()
        self.balancer.after_step()
        return loss.detach()

    def _validate(self, val: dict[str, Tensor]) -> None:
        """Add a point to the learning curve; keep the weights when it is the best; act on a plateau."""
        t0 = time.perf_counter()
        epe = keypoint_epe(self.model.deployable(), val, self.config.eval_batch_size)
        train_loss = float(self.loss_sum) / self.loss_n if self.loss_n else None
        wall = self.wall_s + time.perf_counter() - self.t_start
        if self.curve.add(self.step, train_loss, epe, round(wall, 3)):
            self.best = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
        if self.curve.plateaued() and _plateau_ends_run(self.config, self.curve.plateaus):
            self.stopped = True
        self.loss_sum, self.loss_n = 0.0, 0
        _sync(self.device)
        self.eval_s += time.perf_counter() - t0

    # --- results
    def test(self) -> dict[str, Any]:
        """Restore the best-validation weights (if any) and compute the test metrics and the validation EPE."""
        config = self.config
        if self.best is not None:
            self.model.load_state_dict(self.best)
        eval_net = self.model if config.aux else self.net
        test = _to_device(load_split("test", config.test_size, config), self.device)
        metrics: dict[str, Any] = evaluate(eval_net, test, aux=config.aux, batch_size=config.eval_batch_size)
        metrics["val_epe_px"] = self.curve.best_epe
        if config.val_size > 0 and self.curve.best_epe is None:  # resumed from a record-less final checkpoint
            val = _to_device(load_split("val", config.val_size, config), self.device)
            metrics["val_epe_px"] = keypoint_epe(self.model.deployable(), val, config.eval_batch_size)
        metrics["final_train_loss"] = self.final_loss if math.isfinite(self.final_loss) else None
        if tuple(metrics) != RECORD_METRIC_KEYS:
            raise RuntimeError(f"metrics {tuple(metrics)} differ from the record's {RECORD_METRIC_KEYS}")
        if config.runtime_eval:
            metrics.update(self._runtime_metrics(test))
        return metrics

    def _runtime_metrics(self, test: dict[str, Tensor]) -> dict[str, Any]:
        """The deployed model under ONNX Runtime fp32 and int8 (calibrated on 32 of the run's own training frames,
        never the test split's); None where a runtime could not run it (the run itself still counts)."""
        from effbench.runtime_eval import evaluate_runtimes

        calibration = load_split("train", self.config.train_size, self.config)["depth"][:32]
        cpu = {k: v.cpu() for k, v in test.items()}
        by_runtime = evaluate_runtimes(self.model.cpu(), cpu, ("ort", "ort-int8"), calibration=calibration)
        self.model.to(self.device)
        ort, int8 = by_runtime.get("ort", {}), by_runtime.get("ort-int8", {})
        return {"ort_epe_px": ort.get("epe_px"), "ort_int8_epe_px": int8.get("epe_px"),
                "ort_int8_pck5": int8.get("pck5")}

    def convergence(self) -> dict[str, Any]:
        """How the run ended: validation interval, best and last step, plateaus, whether it was still improving."""
        return {
            "eval_every": self.config.eval_interval(),
            "best_step": self.curve.best_step if self.curve.best_epe is not None else None,
            "stop_step": self.step,
            "stopped_on_plateau": (on_plateau := self.stopped and self.step < self.config.steps),
            "plateaus": self.curve.plateaus,
            "still_improving": still_improving(self.curve.points, stopped_on_plateau=on_plateau),
            "eval_share": self.eval_s / self.train_s if self.train_s > 0 else None,
        }


def _train(
    config: TrainConfig,
    out_dir: Path,
    config_hash: str,
    fingerprint: str | None,
    progress: bool,
    on_step: Callable[[int], None] | None,
    deadline: float | None = None,
) -> dict[str, Any]:
    """Train (or resume, or only evaluate a finished checkpoint) and return the metrics, curve and timings."""
    run_ = _Run(config, out_dir, config_hash, fingerprint)
    results.write_json(run_.ckpt_path.with_suffix(".config.json"), config.to_dict())
    run_.resume()
    run_.train(progress, on_step, deadline)
    extension = run_.extension_state()  # before the test loads the best weights
    metrics = run_.test()
    run_.checkpoint(final=True, extension=extension)
    return {
        "metrics": metrics,
        "curve": run_.curve.points,
        "convergence": run_.convergence(),
        "wall_s": run_.wall_s + time.perf_counter() - run_.t_start,
        "steps_per_s": run_.step / run_.train_s if run_.train_s > 0 else None,
    }


def _progress_bar(config: TrainConfig, initial: int, enabled: bool) -> Any:
    from tqdm.auto import tqdm

    desc = f"{config.model} aux={'on' if config.aux else 'off'} seed={config.seed}"
    return tqdm(total=config.steps, initial=initial, desc=desc, disable=not enabled, dynamic_ncols=True, leave=False)


def fingerprint_of(name: str) -> str | None:
    """The registered model's ``results.model_fingerprint``; None when it does not build (its run fails, saying why)."""
    from effbench.registry import create_model

    try:
        return results.model_fingerprint(create_model(name))
    except Exception:
        return None


def run(
    config: TrainConfig,
    out_dir: str | os.PathLike = "runs",
    *,
    progress: bool | None = None,
    on_step: Callable[[int], None] | None = None,
    deadline: float | None = None,
) -> dict[str, Any]:
    """Train and evaluate one configuration; return its run record, also written to ``out_dir/<config_hash>.json``.

    A run whose record says ``ok`` is not run again (its record is returned) unless the model's layers changed
    since (its ``model_fingerprint``); one with a checkpoint and no record resumes from the checkpoint. An
    exception inside training or evaluation (a NaN loss, a model that fails) produces a record with ``status:
    "failed"`` and the error; ``KeyboardInterrupt`` and other non-``Exception`` errors propagate and leave the
    checkpoint for a later resume.

    Args:
        config: The run's configuration; validated first.
        out_dir: The results folder (created if needed).
        progress: Show a tqdm bar; None shows it when stderr is a terminal.
        on_step: Called with the number of finished steps after every step (and after its checkpoint, if any);
            tests use it to interrupt a run.
        deadline: A ``time.time()`` after which the run stops at the end of its current step, checkpointed there,
            and returns :func:`effbench.results.paused_record` instead of a record (nothing is written; run again,
            it resumes from the checkpoint); a deadline already past returns at once. None: no limit.

    Raises:
        UsageError: If the config is invalid.
    """
    config.validate()
    out = Path(out_dir)
    config_hash = config.hash()
    path = results.record_path(out, config_hash)
    fingerprint = fingerprint_of(config.model)
    record = _read_record(path)
    if record is not None and results.reusable(record, fingerprint):
        return record
    if deadline is not None and time.time() >= deadline:  # before anything is said or deleted
        return results.paused_record(config.to_dict(), config.hash(), None)
    if record is not None and record.get("status") == "ok":  # the model's layers changed: its weights cannot resume
        print(f"effbench: {config.model} changed since run {config_hash} was recorded; training it again",
              file=sys.stderr)
        results.checkpoint_path(out, config_hash).unlink(missing_ok=True)
    if progress is None:
        progress = sys.stderr.isatty()
    t0 = time.perf_counter()
    try:
        result = _train(config, out, config_hash, fingerprint, progress, on_step, deadline)
        status, error = "ok", None
    except TimeLimitReached as stop:
        return results.paused_record(config.to_dict(), config.hash(), stop.step)
    except Exception as err:  # recorded, so that a suite goes on; BaseException (Ctrl-C) is not caught
        status, error = "failed", error_text(err)
        keys = RECORD_METRIC_KEYS + (RUNTIME_METRIC_KEYS if config.runtime_eval else ())
        result = {"metrics": dict.fromkeys(keys), "curve": None, "convergence": None,
                  "wall_s": time.perf_counter() - t0, "steps_per_s": None}
    record = results.make_run_record(
        config.to_dict(),
        config_hash,
        status=status,
        error=error,
        metrics=result["metrics"],
        device=config.device,
        wall_s=result["wall_s"],
        steps_per_s=result["steps_per_s"],
        model_fingerprint=fingerprint,
        curve=result["curve"],
        convergence=result["convergence"],
    )
    results.write_run(out, record)
    return record


def _read_record(path: Path) -> dict[str, Any] | None:
    """The run record at ``path``, or None when there is none; an unreadable one (truncated, not a record) is set
    aside, said so, and the run done again (from its checkpoint when it has a final one). A record of a newer
    schema is not corrupt: it raises."""
    if not path.exists():
        return None
    try:
        return results.read_run(path)
    except results.NewerSchemaError:
        raise
    except results.RecordError as err:
        moved = results.set_aside(path)
        print(f"effbench: {err}: set aside as {moved.name}; running it again", file=sys.stderr)
        return None


def run_many(
    configs: Iterable[TrainConfig],
    out_dir: str | os.PathLike = "runs",
    *,
    progress: bool | None = None,
    on_record: Callable[[dict[str, Any]], None] | None = None,
) -> list[dict[str, Any]]:
    """Run every configuration in order (finished ones are skipped, failed ones recorded and passed over).

    All configs are validated before the first run starts, so a typo fails at once rather than an hour in.

    Args:
        configs: The runs; duplicates (same config hash) run once.
        out_dir: The results folder shared by all runs.
        progress: As for :func:`run`.
        on_record: Called with each record as it is produced (the CLI prints a line per run).

    Returns:
        The records, in the order of ``configs`` (duplicates removed).
    """
    unique: dict[str, TrainConfig] = {}
    for config in configs:
        unique.setdefault(config.validate().hash(), config)
    records = []
    for config in unique.values():
        record = run(config, out_dir, progress=progress)
        records.append(record)
        if on_record is not None:
            on_record(record)
    return records
