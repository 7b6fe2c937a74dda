"""The ``ray`` executor: the runs of a plan as Ray tasks, on a local Ray instance or on a running cluster
(``pip install -e ".[ray]"``).

Why Ray core tasks and not Ray Tune: a run is a fixed config with no search, no trial scheduler and no early
stopping across runs (effbench's own loop stops a run on its plateau), its result is one record that the driver
writes into the results store, and effbench already checkpoints and resumes a run exactly from its own atomic
checkpoint files. A task with ``max_retries`` is all of that; Tune would add a second experiment folder, its own
checkpoint syncing and trial logs that duplicate the store.

- Each run is one task holding its resources (1 CPU; 1 CPU and 1 GPU with ``--device cuda``), submitted longest
  first, so the longest runs start first.
- A worker needs no shared filesystem: the data is generated (or read from the worker's cache) from the config,
  and the record comes back as the task's return value. With a checkpoint folder every worker can reach
  (``--checkpoint-dir``), a run whose worker died resumes from its last checkpoint on whichever worker retries it;
  without one, on a local instance, the results store (on this machine) holds the checkpoints; on a cluster
  without one, each attempt trains in a temporary folder on its worker and a retried run starts afresh.
- A worker that dies mid-run (killed, out of memory, its machine gone) is retried :data:`MAX_RETRIES` times; a run
  that still fails is recorded as failed with Ray's reason and the suite goes on. An exception inside training is
  not retried: effbench.train records it as a failed run, as the local executor does.
- Progress: each task sends its finished steps (about once a second) to a small actor that the driver reads.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import ray

from effbench import results
from effbench.errors import UsageError, error_text
from effbench.matrix import worker
from effbench.matrix.driver import Events
from effbench.matrix.plan import PlannedRun
from effbench.matrix.worker import REPORT_EVERY_S

#: Times a run is started again after its worker died (Ray's ``max_retries``: system failures only).
MAX_RETRIES = 2


@ray.remote(num_cpus=0)
class _Progress:
    """Collects ``(key, step)`` from the tasks until the driver takes them."""

    def __init__(self) -> None:
        self.items: list[tuple[str, int]] = []

    def put(self, key: str, step: int) -> None:
        self.items.append((key, step))

    def take(self) -> list[tuple[str, int]]:
        items, self.items = self.items, []
        return items


def train_run_task(config: dict[str, Any], work_dir: str | None, progress: Any,
                   deadline: float | None = None) -> dict[str, Any]:
    """One run in a Ray worker (submitted with the name ``effbench <tag>``, which Ray gives the worker process as its
    title while it runs: ``ray::effbench tiny_hand aux=on seed=0``)."""
    sent: list[Any] = [0, None]  # how many reports this attempt sent, and the last one

    def send(key: str, step: int) -> None:
        sent[0] += 1
        sent[1] = progress.put.remote(key, step)
        if sent[0] <= 2:
            # The start and the first step are waited for (once per attempt): a worker killed a few milliseconds
            # later would otherwise take them with it unsent, and the driver would not see where this attempt began.
            # Later reports are not waited for: training does not stop for the progress.
            ray.get(sent[1])

    try:
        return worker.train_config(config, work_dir, send, deadline=deadline)
    finally:
        # Calls from one caller to an actor run in order, so once the last has run every report of this attempt is
        # in: the driver, which reads them after it sees the task end, then has them all (a resumed run's first one).
        if sent[1] is not None:
            ray.get(sent[1])


def init_local(num_cpus: int, temp_dir: str | None = None, **options: Any) -> None:
    """Start a local Ray instance for this process: listening on 127.0.0.1 only, no dashboard, no usage statistics,
    worker logs kept in its session folder (not mixed into the progress line). Token authentication stays as Ray
    sets it (on by default for a local instance since Ray 2.59; its token in ``~/.ray/auth_token``).

    Args:
        num_cpus: The CPUs it offers (runs at a time).
        temp_dir: Its session, log and socket folder (None: Ray's, ``/tmp/ray``).
        options: More ``ray.init`` arguments (tests give a small object store).
    """
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    # Ray gives a node the address of its network interface, even for ``_node_ip_address="127.0.0.1"``; its servers
    # bind to that address. Its one switch to the loopback address is this variable (despite its name, it applies
    # on Linux too): set here for the processes the instance starts, and in this process, which read it at import.
    # Both are put back once the instance runs (its processes have their own copy), so that this process can still
    # join a cluster later.
    from ray._private import ray_constants

    name, before = ray_constants.ENABLE_RAY_CLUSTERS_ENV_VAR, os.environ.get(ray_constants.ENABLE_RAY_CLUSTERS_ENV_VAR)
    enabled = ray_constants.ENABLE_RAY_CLUSTER
    os.environ[name] = before if before is not None else "0"
    ray_constants.ENABLE_RAY_CLUSTER = os.environ[name].lower() in ("1", "true")
    try:
        ray.init(num_cpus=num_cpus, include_dashboard=False, log_to_driver=False, _node_ip_address="127.0.0.1",
                 _temp_dir=temp_dir, **options)
    finally:
        ray_constants.ENABLE_RAY_CLUSTER = enabled
        if before is None:
            os.environ.pop(name, None)


class RayExecutor:
    """Runs as Ray tasks.

    Args:
        address: A running cluster's address (``HOST:6379``, or ``auto`` for the cluster this machine belongs to);
            None starts a local Ray instance on this machine, listening on 127.0.0.1 only, shut down at the end
            (or uses the one this process already started with ``ray.init``).
        jobs: At most this many runs at a time (None: as many as the cluster's resources allow); a local instance
            gets this many CPUs (None: every core).
        checkpoint_dir: Where runs keep their checkpoints: a folder every worker reaches for a run to resume on
            another worker (None: the results store on a local instance, a temporary folder on each worker of a
            cluster).
        temp_dir: A local instance's session, log and socket folder (None: Ray's, ``/tmp/ray``).
    """

    name = "ray"

    def __init__(self, address: str | None = None, *, jobs: int | None = None,
                 checkpoint_dir: str | Path | None = None, temp_dir: str | None = None) -> None:
        self.address, self.jobs, self.checkpoint_dir, self.temp_dir = address, jobs, checkpoint_dir, temp_dir

    def describe(self, runs: int) -> str:
        where = f"the Ray cluster at {self.address}" if self.address else "a local Ray instance"
        return f"on {where}" + (f", at most {self.jobs} at a time" if self.jobs else "")

    def run(self, runs: list[PlannedRun], store: Path, events: Events) -> None:
        """Train every run as a Ray task; records go to ``events.finished`` as they come back."""
        started = self._connect()
        try:
            self._check_resources(runs)
            work_dir = self.checkpoint_dir or (store if self.address is None else None)
            self._run(runs, None if work_dir is None else str(Path(work_dir).resolve()), events)
        finally:
            if started:
                ray.shutdown()

    def _connect(self) -> bool:
        """Join the cluster or start a local instance; True when this call started Ray (and so shuts it down)."""
        if ray.is_initialized():
            return False
        # effbench sends nothing anywhere: no usage statistics unless the user asked for them.
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
        if self.address:
            try:
                ray.init(address=self.address, log_to_driver=False)
            except (ConnectionError, RuntimeError, ValueError) as err:
                raise UsageError(f"--ray-address {self.address!r}: cannot join a Ray cluster there ({error_text(err)});"
                                 " start one with `ray start --head`, or leave --ray-address out for a local "
                                 "instance") from None
            return True
        init_local(self.jobs or os.cpu_count() or 1, self.temp_dir)
        return True

    @staticmethod
    def _check_resources(runs: list[PlannedRun]) -> None:
        """Fail at once, rather than wait forever, when no node of the cluster has what a run needs."""
        have = ray.cluster_resources()
        for name in sorted({name for run in runs for name in run.resources}):
            need = max(run.resources.get(name, 0) for run in runs)
            if have.get(name, 0) < need:
                hint = " (--device cuda needs a GPU on some node)" if name == "GPU" else ""
                raise UsageError(f"the Ray cluster has {have.get(name, 0):g} {name}, a run needs {need:g}{hint}")

    def _run(self, runs: list[PlannedRun], work_dir: str | None, events: Events) -> None:
        progress = _Progress.remote()
        try:
            self._submit_and_collect(runs, work_dir, events, progress)
        finally:
            ray.kill(progress)

    def _submit_and_collect(self, runs: list[PlannedRun], work_dir: str | None, events: Events, progress: Any) -> None:
        task = ray.remote(train_run_task)
        waiting = list(runs)  # the plan's order: longest first
        refs: dict[Any, PlannedRun] = {}
        limit = self.jobs or len(runs)
        while waiting or refs:
            if waiting and events.deadline is not None and time.time() >= events.deadline:
                for run in waiting:  # past the time limit: not started, to be trained by the next run of the plan
                    events.finished(run.key, results.paused_record(run.config.to_dict(), run.key, None))
                waiting = []
            while waiting and len(refs) < limit:
                run = waiting.pop(0)
                options = {"num_cpus": run.resources.get("CPU", 1), "num_gpus": run.resources.get("GPU", 0),
                           "max_retries": MAX_RETRIES, "retry_exceptions": False, "name": f"effbench {run.tag}"}
                refs[task.options(**options).remote(run.config.to_dict(), work_dir, progress, events.deadline)] = run
            done, _ = ray.wait(list(refs), num_returns=1, timeout=REPORT_EVERY_S)
            for key, step in ray.get(progress.take.remote()):
                events.steps(key, step)
            for ref in done:
                run = refs.pop(ref)
                try:
                    record = ray.get(ref)
                except ray.exceptions.RayError as err:  # the worker kept dying, or Ray itself failed the task
                    record = worker.failed_record(run.config, f"failed on Ray after {MAX_RETRIES} retries: "
                                                              f"{error_text(err)}")
                events.finished(run.key, record)
