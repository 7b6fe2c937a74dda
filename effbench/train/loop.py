"""The training loop: one run from a TrainConfig to a run record, resumable, and a runner for many runs.

The whole training split lives on the device as tensors (``SyntheticHands.tensors()``); each step indexes a batch
with a seeded ``torch.Generator`` on that device and augments it there (``augment_batch``), so a GPU run never
copies data from the host. AdamW, linear warm-up then cosine decay, gradient clipping. A NaN or inf loss stops the
run and records it as failed. Checkpoints every ``checkpoint_every`` steps carry model, optimiser, balancer,
schedule position and every RNG state, so a resumed run takes exactly the steps an uninterrupted one would.
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
from effbench.evaluate import METRIC_KEYS, evaluate
from effbench.train.balancing import GradNorm, last_shared_parameter, make_balancer
from effbench.train.config import AUX_TASKS, TrainConfig
from effbench.train.losses import task_losses


class NonFiniteLoss(RuntimeError):
    """The training loss became NaN or inf."""


#: The metrics of a record: the test-split metrics (effbench.evaluate), then the validation EPE and the last training loss.
RECORD_METRIC_KEYS: tuple[str, ...] = METRIC_KEYS + ("val_epe_px", "final_train_loss")

#: How often (steps) a CUDA run synchronises to read the loss for the progress bar and the NaN check; a CPU run
#: checks every step (reading a CPU tensor costs nothing).
SYNC_EVERY_CUDA = 25

def lr_at(step: int, config: TrainConfig) -> float:
    """Learning rate of step ``step`` (0-based): linear warm-up to ``lr``, then cosine to ``lr * min_lr_ratio``."""
    if step < config.warmup_steps:
        return config.lr * (step + 1) / config.warmup_steps
    span = max(1, config.steps - config.warmup_steps)
    progress = min(1.0, (step - config.warmup_steps) / span)
    low = config.lr * config.min_lr_ratio
    return low + 0.5 * (config.lr - low) * (1 + math.cos(math.pi * progress))


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


def _train(
    config: TrainConfig,
    out_dir: Path,
    config_hash: str,
    fingerprint: str | None,
    progress: bool,
    on_step: Callable[[int], None] | None,
) -> dict[str, Any]:
    """Train (or resume, or only evaluate a finished checkpoint) and return the metrics and timings."""
    from effbench.registry import create_model

    t_start = time.perf_counter()
    device = torch.device(config.device)
    ckpt_path = results.checkpoint_path(out_dir, config_hash)
    results.write_json(ckpt_path.with_suffix(".config.json"), config.to_dict())

    torch.manual_seed(config.seed)  # model initialisation
    model = create_model(config.model).to(device)
    # Without auxiliary tasks the deployable form is trained: same weights, no auxiliary heads computed.
    net = model if config.aux else model.deployable()
    tasks = ("keypoints",) + (AUX_TASKS if config.aux else ())
    weights = {
        "keypoints": config.w_keypoints,
        "seg": config.w_seg,
        "vis": config.w_vis,
        "keypose": config.w_keypose,
        "hand": config.w_hand,
    }
    balancer = make_balancer(config.balancing, tasks, weights, config.gradnorm_alpha).to(device)
    optimizer = torch.optim.AdamW(
        _param_groups(net, balancer, config.weight_decay), lr=config.lr, fused=device.type == "cuda"
    )
    generators = {
        "batch": torch.Generator(device=device).manual_seed(config.seed),
        "augment": torch.Generator(device=device).manual_seed(config.seed + 7919),
    }

    step, train_s, wall_s = 0, 0.0, 0.0  # train_s, wall_s: carried over from before a resume
    ckpt = results.load_checkpoint(ckpt_path) if ckpt_path.exists() else None
    if ckpt is not None and ckpt.get("model_fingerprint", fingerprint) == fingerprint:  # else: the model changed
        model.load_state_dict(ckpt["model"])
        step, train_s, wall_s = int(ckpt["step"]), float(ckpt["train_s"]), float(ckpt["wall_s"])
        if "optimizer" in ckpt:  # a mid-run checkpoint (a final one holds the weights only)
            optimizer.load_state_dict(ckpt["optimizer"])
            balancer.load_state_dict(ckpt["balancer"])
            _set_rng_state(ckpt["rng"], generators, device)

    def checkpoint(done: int, final: bool) -> None:
        state: dict[str, Any] = {
            "model": model.state_dict(),
            "step": done,
            "train_s": train_s,
            "wall_s": wall_s + time.perf_counter() - t_start,
            "config_hash": config_hash,
            "model_fingerprint": fingerprint,
        }
        if not final:
            state.update(optimizer=optimizer.state_dict(), balancer=balancer.state_dict())
            state["rng"] = _rng_state(generators, device)
        results.save_checkpoint(ckpt_path, state)

    final_loss = float("nan")
    if step < config.steps:
        if config.augment:
            from effbench.data import augment_batch
        train = _to_device(load_split("train", config.train_size, config), device)
        n_train = len(train["depth"])
        net.train()
        first_bad = torch.full((), -1, dtype=torch.long, device=device)
        bar = _progress_bar(config, step, progress)
        _sync(device)
        t_loop = time.perf_counter()
        try:
            while step < config.steps:
                lr = lr_at(step, config)
                for group in optimizer.param_groups:
                    group["lr"] = lr
                idx = torch.randint(n_train, (config.batch_size,), generator=generators["batch"], device=device)
                batch = _as_float_mask({k: v.index_select(0, idx) for k, v in train.items()})
                if config.augment:
                    batch = augment_batch(batch, generators["augment"])
                out = net(batch["depth"])
                losses = task_losses(
                    out,
                    batch,
                    aux=config.aux,
                    seg_dice=config.seg_dice,
                    heatmap_weight=config.w_heatmap,
                    heatmap_sigma_px=config.heatmap_sigma_px,
                )
                if isinstance(balancer, GradNorm) and balancer.shared is None:
                    balancer.set_shared(last_shared_parameter(net, losses))
                loss = balancer(losses)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                if config.grad_clip > 0:
                    torch.nn.utils.clip_grad_norm_(net.parameters(), config.grad_clip)
                optimizer.step()
                balancer.after_step()
                first_bad = torch.where((first_bad < 0) & ~torch.isfinite(loss.detach()), step, first_bad)
                step += 1
                due_ckpt = config.checkpoint_every > 0 and step % config.checkpoint_every == 0 and step < config.steps
                if device.type != "cuda" or step % SYNC_EVERY_CUDA == 0 or step == config.steps or due_ckpt:
                    if int(first_bad) >= 0:
                        raise NonFiniteLoss(f"loss became {float(loss.detach()):g} at step {int(first_bad) + 1}")
                    final_loss = float(loss.detach())
                    bar.set_postfix(loss=f"{final_loss:.3f}", lr=f"{lr:.2e}", refresh=False)
                bar.update(1)
                if due_ckpt:
                    _sync(device)
                    train_s, t_loop = train_s + time.perf_counter() - t_loop, time.perf_counter()
                    checkpoint(step, final=False)
                if on_step is not None:
                    on_step(step)
        finally:
            bar.close()
        _sync(device)
        train_s += time.perf_counter() - t_loop
        del train

    test = _to_device(load_split("test", config.test_size, config), device)
    eval_net = model if config.aux else net
    metrics: dict[str, Any] = evaluate(eval_net, test, aux=config.aux, batch_size=config.eval_batch_size)
    assert tuple(metrics) == METRIC_KEYS
    metrics["val_epe_px"] = None
    if config.val_size > 0:
        val = _to_device(load_split("val", config.val_size, config), device)
        metrics["val_epe_px"] = evaluate(eval_net, val, aux=False, batch_size=config.eval_batch_size)["epe_px"]
    metrics["final_train_loss"] = final_loss if math.isfinite(final_loss) else None
    assert tuple(metrics) == RECORD_METRIC_KEYS
    checkpoint(config.steps, final=True)
    return {
        "metrics": metrics,
        "wall_s": wall_s + time.perf_counter() - t_start,
        "steps_per_s": config.steps / train_s if train_s > 0 else None,
    }


def _progress_bar(config: TrainConfig, initial: int, enabled: bool) -> Any:
    from tqdm.auto import tqdm

    desc = f"{config.model} aux={'on' if config.aux else 'off'} seed={config.seed}"
    return tqdm(total=config.steps, initial=initial, desc=desc, disable=not enabled, dynamic_ncols=True, leave=False)


def fingerprint_of(name: str) -> str | None:
    """The registered model's ``results.model_fingerprint``; None when it does not build (its run fails and says why)."""
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

    Raises:
        UsageError: If the config is invalid.
    """
    config.validate()
    out = Path(out_dir)
    config_hash = config.hash()
    path = results.record_path(out, config_hash)
    fingerprint = fingerprint_of(config.model)
    if path.exists():
        record = results.read_run(path)
        if results.reusable(record, fingerprint):
            return record
        if record.get("status") == "ok":  # the model's layers changed since: its weights cannot be resumed either
            print(f"effbench: {config.model} changed since run {config_hash} was recorded; training it again",
                  file=sys.stderr)
            results.checkpoint_path(out, config_hash).unlink(missing_ok=True)
    if progress is None:
        progress = sys.stderr.isatty()
    t0 = time.perf_counter()
    try:
        result = _train(config, out, config_hash, fingerprint, progress, on_step)
        status, error = "ok", None
    except Exception as err:  # recorded, so that a suite goes on; BaseException (Ctrl-C) is not caught
        status, error = "failed", error_text(err)
        result = {"metrics": dict.fromkeys(RECORD_METRIC_KEYS), "wall_s": time.perf_counter() - t0, "steps_per_s": None}
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
    )
    results.write_run(out, record)
    return record


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
