"""What runs on a worker, whichever executor: one training run from its config to its record.

A worker needs no shared filesystem: the data is generated from the config's seed (or read from the worker's own
cache, :func:`effbench.data.load_split`), training and its checkpoints go to a work folder, and the record is
returned to the driver, which writes it into the results store.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Callable
from typing import Any

from effbench import results
from effbench.errors import error_text

#: How often (s) a worker reports its finished steps to the driver's progress line.
REPORT_EVERY_S = 1.0


def failed_record(config: Any, err: BaseException | str) -> dict[str, Any]:
    """The record of a run that failed outside effbench.train (which records its own failures): a worker that kept
    dying, an error in the executor."""
    return results.make_run_record(
        config.to_dict(), config.hash(), status="failed", error=err if isinstance(err, str) else error_text(err),
        metrics={}, device=config.device, wall_s=None, steps_per_s=None,
    )  # fmt: skip


def train_or_record(config: Any, work_dir: str | os.PathLike, **options: Any) -> dict[str, Any]:
    """Train one run in ``work_dir`` (its checkpoints, and a copy of its record); an error that escapes
    effbench.train is recorded here, so that the matrix goes on.

    Raises:
        NewerSchemaError, OSError: A newer effbench's record is not to be overwritten, and a folder that cannot be
            written takes no record.
    """
    from effbench.train import run as train_run

    try:
        return train_run(config, work_dir, progress=options.pop("progress", False), **options)
    except (results.NewerSchemaError, OSError):
        raise
    except Exception as err:  # recorded like any failed run; the matrix goes on
        record = failed_record(config, err)
        results.write_run(work_dir, record)
        return record


def step_reporter(key: str, send: Callable[[str, int], None]) -> Callable[[int], None]:
    """An ``on_step`` callback that sends ``(key, step)`` for the first step and then about once a second (a
    resumed run's first report says where it resumed)."""
    last = [-float("inf")]

    def on_step(step: int) -> None:
        now = time.monotonic()
        if now - last[0] >= REPORT_EVERY_S:
            last[0] = now
            send(key, step)

    return on_step


def train_config(
    config: dict[str, Any], work_dir: str | None, send: Callable[[str, int], None], threads: int = 1,
    deadline: float | None = None,
) -> dict[str, Any]:
    """One run on a worker, on ``threads`` intra-op threads: ``(key, 0)`` goes to ``send`` when it starts, its steps
    as it trains; returns the record.

    Args:
        config: ``TrainConfig.to_dict()``.
        work_dir: Where its checkpoints go; a folder every worker reaches lets a retried run resume on any of them.
            None: a temporary folder on this worker, deleted after (a retried run starts afresh).
        send: Where progress goes.
        threads: Intra-op threads (1: these small models gain little from more, and one run per core uses the cores
            best).
        deadline: The matrix's time limit (``time.time()``): the run stops there, checkpointed, and returns a
            ``paused`` record (:func:`effbench.train.loop.run`).
    """
    import torch

    from effbench.train import TrainConfig

    torch.set_num_threads(threads)
    cfg = TrainConfig.from_dict(config)
    key = cfg.hash()
    send(key, 0)
    if work_dir is not None:
        return train_or_record(cfg, work_dir, on_step=step_reporter(key, send), deadline=deadline)
    with tempfile.TemporaryDirectory(prefix="effbench-run-") as tmp:
        return train_or_record(cfg, tmp, on_step=step_reporter(key, send), deadline=deadline)
