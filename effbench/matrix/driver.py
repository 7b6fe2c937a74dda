"""The driver side of a training matrix: hand the plan to an executor, follow its progress, and write each
finished record into the results store as it comes back (through effbench.results' atomic writer).

An executor is anything with ``run(runs, store, events)`` (:class:`Executor`); it reports through
:class:`Events`: ``steps(key, step)`` as a run trains (step 0: it started, on a worker, perhaps again after a
retry) and ``finished(key, record)`` when its record is back.

A time limit (``events.deadline``) pauses the matrix: each worker stops its run at the first step past it, saves a
checkpoint and returns a ``paused`` record, which is not stored; runs not started by then return one at once. The
same plan run again resumes them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from effbench import results
from effbench.matrix.plan import PlannedRun
from effbench.progress import SuiteProgress


class Executor(Protocol):
    """Runs a plan somewhere and reports through :class:`Events`."""

    name: str

    def describe(self, runs: int) -> str:
        """How the runs are spread, for the suite's last line (``2 at a time``, ``on Ray at ADDRESS``)."""
        ...

    def run(self, runs: list[PlannedRun], store: Path, events: Events) -> None:
        """Train every run (in the plan's order, as resources allow) and call ``events.finished`` once for each."""
        ...


@dataclass
class Events:
    """What an executor reports, turned into the progress line and records in the store.

    Attributes:
        deadline: The time limit (``time.time()``) executors hand to their workers; None: none.
        attempts: Per run key, the first step each attempt reported after its start: ``[1]`` for a run trained in
            one go, ``[1, 11]`` for one whose worker died and that resumed from its step-10 checkpoint.
        records: The stored records by run key.
        paused: The runs the time limit stopped or kept from starting, by key (``paused`` records, not stored).
    """

    runs: list[PlannedRun]
    store: Path
    bar: SuiteProgress
    on_record: Callable[[dict[str, Any]], None] | None = None
    deadline: float | None = None
    attempts: dict[str, list[int]] = field(default_factory=dict)
    records: dict[str, dict[str, Any]] = field(default_factory=dict)
    paused: dict[str, dict[str, Any]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._by_key = {run.key: run for run in self.runs}
        # Steps already counted into the progress: a resumed run's earlier sittings are not this sitting's work.
        self._counted = {run.key: run.done_steps for run in self.runs}
        self._running: set[str] = set()
        self._fresh: set[str] = set()  # started, first step not seen yet

    def steps(self, key: str, step: int) -> None:
        """Run ``key`` has finished ``step`` steps (0: it has just started on a worker)."""
        if key in self.records or key not in self._by_key:
            return  # a late report of a finished run
        if step == 0:
            if self.attempts.get(key):
                self.bar.note(f"{self._by_key[key].tag}: started again (attempt {len(self.attempts[key]) + 1})")
            self._fresh.add(key)
            self._running.add(key)
            self.bar.set_running(len(self._running))
            return
        if key in self._fresh:
            self._fresh.discard(key)
            self.attempts.setdefault(key, []).append(step)
        run = self._by_key[key]
        if step > self._counted[key]:  # a retried run resumes at or before where it was counted
            self.bar.advance((step - self._counted[key]) * run.cost_per_step)
            self._counted[key] = step

    def finished(self, key: str, record: dict[str, Any]) -> None:
        """Run ``key`` ended with ``record``: written into the store, counted, reported (a ``paused`` one is only
        noted: its checkpoint holds the run)."""
        run = self._by_key[key]
        self._running.discard(key)
        self._fresh.discard(key)
        self.bar.set_running(len(self._running))
        if record.get("status") == results.PAUSED:
            self.paused[key] = record
            if record.get("step") is not None:
                self.bar.note(f"{run.tag}: paused at step {record['step']:,} of {run.config.steps:,} (time limit)")
            return
        results.write_run(self.store, record)
        self.records[key] = record
        self.bar.advance((run.config.steps - self._counted[key]) * run.cost_per_step)
        self._counted[key] = run.config.steps
        error = None if record.get("status") == "ok" else str(record.get("error"))
        self.bar.run_done(run.tag, error)
        if self.on_record is not None:
            self.on_record(record)


def unfinished(configs: list[Any], store: str | Path) -> list[Any]:
    """The configs without a finished record of the model as it is now in ``store`` (see ``results.reusable``): the
    runs still to train. The driver decides this, so that a worker without the store never trains a finished run."""
    from effbench.train.loop import fingerprint_of

    fingerprints = {name: fingerprint_of(name) for name in {cfg.model for cfg in configs}}
    return [cfg for cfg in configs if not _finished(results.record_path(store, cfg.hash()), fingerprints[cfg.model])]


def resumed_steps(work_dir: str | Path) -> Callable[[Any], int]:
    """For :func:`~effbench.matrix.plan.plan_runs`: the steps a config's run resumes from in ``work_dir``, where its
    checkpoint is (:func:`effbench.results.resumable_step`; 0 for a run that starts afresh)."""
    from effbench.train.loop import fingerprint_of

    fingerprints: dict[str, str | None] = {}

    def steps(cfg: Any) -> int:
        if cfg.model not in fingerprints:
            fingerprints[cfg.model] = fingerprint_of(cfg.model)
        return results.resumable_step(work_dir, cfg.hash(), fingerprints[cfg.model])

    return steps


def _finished(path: Path, fingerprint: str | None) -> bool:
    try:
        return path.exists() and results.reusable(results.read_run(path), fingerprint)
    except results.RecordError:  # unreadable: trained again, and its record replaced
        return False


def execute(
    runs: list[PlannedRun],
    store: str | Path,
    executor: Executor,
    bar: SuiteProgress,
    on_record: Callable[[dict[str, Any]], None] | None = None,
    deadline: float | None = None,
) -> Events:
    """Run the plan on ``executor``; every record lands in ``store`` as it comes back.

    Args:
        runs: The plan (:func:`effbench.matrix.plan.plan_runs`), runs still to train; distilled runs start once every
            other run has ended.
        store: The results store.
        executor: Where the runs train (:func:`effbench.matrix.make_executor`).
        bar: The suite's progress (its training clock started by the caller).
        on_record: Also called with each stored record (the ``train`` command prints a line per run).
        deadline: A time limit (``time.time()``): runs still training then stop at a checkpoint, and runs not
            started do not start (both end up in ``events.paused``). None: no limit.

    Returns:
        The events: the records by key, the paused runs, and each run's attempts.
    """
    events = Events(runs, Path(store), bar, on_record, deadline)
    # Students after teachers: a distilled run reads its teacher's finished weights.
    for phase in ([r for r in runs if not r.config.teacher], [r for r in runs if r.config.teacher]):
        if phase:
            bar.stage(f"train {len(phase)} runs {executor.describe(len(phase))}")
            executor.run(phase, Path(store), events)
    missing = [run for run in runs if run.key not in events.records and run.key not in events.paused]
    if missing:  # an executor must report every run; say so rather than leave a hole in the report
        raise RuntimeError(f"executor {executor.name!r} returned no record for {', '.join(r.tag for r in missing)}")
    return events
