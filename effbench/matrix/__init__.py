"""A training matrix (models x aux settings x seeds): a plan, then an executor that runs it.

- :mod:`~effbench.matrix.plan`: the runs, each with its config hash, estimated cost and resources, longest first.
- :mod:`~effbench.matrix.driver`: hands the plan to an executor and writes each record that comes back into the
  results store; the progress line counts runs done, running and failed, with an ETA.
- :mod:`~effbench.matrix.local`: the ``local`` executor, this machine's processes (the default, no dependency).
- :mod:`~effbench.matrix.ray_executor`: the ``ray`` executor, a local Ray instance or a cluster (``.[ray]``).
- :mod:`~effbench.matrix.worker`: what runs on a worker, whichever executor.

``bench.py run``, ``bench.py --suite`` and ``bench.py train`` all go through :func:`execute`.
"""

from __future__ import annotations

from pathlib import Path

from effbench.errors import UsageError
from effbench.matrix.driver import Events, Executor, execute, resumed_steps, unfinished
from effbench.matrix.plan import PlannedRun, plan_runs, run_tag

#: The executors ``--executor`` names.
EXECUTORS: tuple[str, ...] = ("local", "ray")


def make_executor(
    name: str = "local",
    *,
    jobs: int | None = None,
    threads: int = 1,
    ray_address: str | None = None,
    checkpoint_dir: str | Path | None = None,
    run_progress: bool = False,
) -> Executor:
    """The executor ``--executor NAME`` asks for.

    Args:
        name: ``local`` or ``ray``.
        jobs: Runs at a time (local: processes, None one per core; ray: at most this many tasks, None the cluster's
            resources).
        threads: Intra-op threads per run (local only; a Ray task takes one CPU and uses one thread).
        ray_address: A running Ray cluster to join (ray only; None starts a local instance).
        checkpoint_dir: Where runs keep their checkpoints (None: the results store, or on a Ray cluster a temporary
            folder on each worker).
        run_progress: Each run's own progress bar (local, one job).

    Raises:
        UsageError: An unknown executor, ``--ray-address`` without ``--executor ray``, or Ray not installed.
    """
    if name not in EXECUTORS:
        raise UsageError(f"--executor {name!r} is not one of {', '.join(EXECUTORS)}")
    if jobs is not None and jobs < 1:
        raise UsageError(f"--jobs must be >= 1, got {jobs}")
    if name == "local":
        if ray_address:
            raise UsageError(f"--ray-address {ray_address!r} needs --executor ray")
        from effbench.matrix.local import LocalExecutor

        return LocalExecutor(jobs, threads=threads, checkpoint_dir=checkpoint_dir, run_progress=run_progress)
    try:
        from effbench.matrix.ray_executor import RayExecutor
    except ImportError as err:
        raise UsageError(f"--executor ray needs Ray, which is not importable ({err}); install it with "
                         "pip install -e \".[ray]\"") from None
    return RayExecutor(ray_address, jobs=jobs, checkpoint_dir=checkpoint_dir)


__all__ = ["EXECUTORS", "Events", "Executor", "PlannedRun", "execute", "make_executor", "plan_runs", "resumed_steps",
           "run_tag", "unfinished"]
