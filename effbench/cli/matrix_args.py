"""The options of where a training matrix runs, shared by ``bench.py run`` and ``bench.py train`` (a helper module,
not a subcommand)."""

from __future__ import annotations

import argparse

from effbench.errors import PAUSED_EXIT_CODE


def add_executor_args(p: argparse.ArgumentParser, jobs_default: str = "one per core") -> None:
    """``--jobs``, ``--executor``, ``--ray-address``, ``--checkpoint-dir``, ``--hours``; ``jobs_default`` says what
    no ``--jobs`` means locally."""
    p.add_argument("--jobs", type=int, default=None,
                   help=f"training runs at a time, each in its own process on one thread (default: {jobs_default}); "
                   "with --executor ray, at most this many tasks (default: as the cluster's resources allow)")
    p.add_argument("--executor", default="local", choices=("local", "ray"),
                   help="where the runs train: local (this machine's processes, the default) or ray (a local Ray "
                   "instance, or the cluster of --ray-address; pip install -e \".[ray]\")")
    p.add_argument("--ray-address", default=None, metavar="ADDRESS",
                   help="with --executor ray: join the running Ray cluster at ADDRESS (HOST:6379, or auto) instead "
                   "of starting a local instance")
    p.add_argument("--checkpoint-dir", default=None, metavar="DIR",
                   help="where runs keep their checkpoints (default: the results store); on a Ray cluster, a folder "
                   "every worker reaches lets a run whose worker died resume on another")
    p.add_argument("--hours", type=float, default=None, metavar="H",
                   help="time limit: after H hours, runs in training stop at a checkpoint and the rest do not start; "
                   f"what finished is recorded (and reported), the exit code is {PAUSED_EXIT_CODE}, and the same "
                   "command resumes where it stopped")


def deadline_from(hours: float | None) -> float | None:
    """The ``time.time()`` at which ``--hours`` from now ends (None: no limit).

    Raises:
        UsageError: For hours that are not a positive finite number.
    """
    import math
    import time

    from effbench.errors import UsageError

    if hours is None:
        return None
    if not (math.isfinite(hours) and hours > 0):
        raise UsageError(f"--hours must be a number of hours > 0, got {hours}")
    return time.time() + hours * 3600
