"""The ``local`` executor: the runs of a plan on this machine, one after the other in this process (one job) or in
a pool of spawned processes (several), each on one intra-op thread. No dependency beyond effbench's own.
"""

from __future__ import annotations

import os
import queue as queue_mod
from pathlib import Path
from typing import Any

from effbench.matrix import worker
from effbench.matrix.driver import Events
from effbench.matrix.plan import PlannedRun
from effbench.matrix.worker import REPORT_EVERY_S

_steps_queue: Any = None  # in a worker process: where its progress goes (set by _init_worker)


def _init_worker(steps_queue: Any) -> None:
    global _steps_queue
    _steps_queue = steps_queue


def _send(key: str, step: int) -> None:
    _steps_queue.put((key, step))


def _train_in_worker(config: dict[str, Any], work_dir: str, threads: int, deadline: float | None) -> dict[str, Any]:
    """One run in a pool process (module level, so that a spawned process can import it)."""
    return worker.train_config(config, work_dir, _send, threads, deadline)


class LocalExecutor:
    """Runs on this machine.

    Args:
        jobs: Runs at a time, each in its own process (None: one per core, at most one per run). With one, the runs
            train in this process (a failure's traceback is this process's; a debugger reaches it).
        threads: Intra-op threads of each run (the ``train`` command's ``--threads``; a suite uses 1).
        checkpoint_dir: Where runs keep their checkpoints (None: the results store).
        run_progress: Show each run's own progress bar (one job only: the ``train`` command's).
    """

    name = "local"

    def __init__(self, jobs: int | None = None, *, threads: int = 1, checkpoint_dir: str | Path | None = None,
                 run_progress: bool = False) -> None:
        self.jobs, self.threads, self.checkpoint_dir, self.run_progress = jobs, threads, checkpoint_dir, run_progress

    def jobs_for(self, runs: int) -> int:
        """Runs at a time for a plan of ``runs`` runs."""
        return self.jobs or max(1, min(os.cpu_count() or 1, runs))

    def describe(self, runs: int) -> str:
        return f"{self.jobs_for(runs)} at a time"

    def run(self, runs: list[PlannedRun], store: Path, events: Events) -> None:
        """Train every run; records go to ``events.finished``."""
        work_dir = Path(self.checkpoint_dir or store)
        if self.jobs_for(len(runs)) == 1:
            self._sequential(runs, work_dir, events)
        else:
            self._parallel(runs, work_dir, events)

    def _sequential(self, runs: list[PlannedRun], work_dir: Path, events: Events) -> None:
        """In this process; the progress advances with every step."""
        import torch

        threads = torch.get_num_threads()
        torch.set_num_threads(self.threads)
        try:
            for run in runs:
                events.bar.stage(f"train {run.tag}")
                events.steps(run.key, 0)
                record = worker.train_or_record(run.config, work_dir, progress=self.run_progress,
                                                on_step=lambda step, key=run.key: events.steps(key, step),
                                                deadline=events.deadline)
                events.finished(run.key, record)
        finally:
            torch.set_num_threads(threads)  # profiling measures latency on all threads too

    def _parallel(self, runs: list[PlannedRun], work_dir: Path, events: Events) -> None:
        """In spawned processes, ``threads`` each; the progress advances with the steps
        the workers report about once a second."""
        import multiprocessing
        from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

        context = multiprocessing.get_context("spawn")
        steps_queue = context.Queue()
        jobs = self.jobs_for(len(runs))
        with ProcessPoolExecutor(jobs, mp_context=context, initializer=_init_worker, initargs=(steps_queue,)) as pool:
            # Submitted longest first (the plan's order): the pool's last runs are then short ones.
            futures = {pool.submit(_train_in_worker, r.config.to_dict(), str(work_dir), self.threads,
                                   events.deadline): r for r in runs}
            pending = set(futures)
            while pending:
                done, pending = wait(pending, timeout=REPORT_EVERY_S, return_when=FIRST_COMPLETED)
                while True:
                    try:
                        events.steps(*steps_queue.get_nowait())
                    except queue_mod.Empty:
                        break
                for future in done:
                    events.finished(futures[future].key, future.result())
