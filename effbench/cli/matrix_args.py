"""The options of where a training matrix runs, shared by ``bench.py run`` and ``bench.py train`` (a helper module,
not a subcommand)."""

from __future__ import annotations

import argparse


def add_executor_args(p: argparse.ArgumentParser, jobs_default: str = "one per core") -> None:
    """``--jobs``, ``--executor``, ``--ray-address``, ``--checkpoint-dir``; ``jobs_default`` says what no ``--jobs``
    means locally."""
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
