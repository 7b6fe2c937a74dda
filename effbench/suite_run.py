"""The whole pipeline for one suite: profile every deployable model, train each model without and with auxiliary
tasks over its seeds, evaluate, and build the report (``python bench.py --suite embedded``).

Budgets live in the suite's settings (``architectures/suites.py``)::

    Suite(..., settings={"budgets": {"quick": {"train": {...TrainConfig overrides...},
                                               "seeds": {"default": 1, "tiny_hand": 3},
                                               "models": {"some_model": {...per-model overrides...}},
                                               "cuda": {"batch_size": 128, "lr": 2e-2},
                                               "ablations": {"tiny_hand": 1}}}})

``cuda`` overrides the budget's ``train`` when the suite trains with ``--device cuda``: a GPU is launch-bound on these
small models at a CPU's batch, so a GPU budget takes a larger batch (and a learning rate scaled with it).

The training matrix itself runs through :mod:`effbench.matrix`: a plan (each run's config hash, estimated cost and
resources), then an executor (``local`` processes, or ``ray``) that hands each record back to be written here.

``ablations`` adds, for the first N seeds of a model, one run per auxiliary task trained alone (seg only,
visibility only, keypose only, handedness only) beside the runs with none and all.

``distill: {student: teacher}`` adds, for each seed of the student, its run with every auxiliary task again, now
distilled from the teacher's run of the same seed (``TrainConfig.teacher``). These runs train after all others,
once their teachers have finished.

Everything lands in the results store (``<out>/runs/``): effbench.train's run records, one profile per model and
a manifest of the planned runs (``runs/suite/``), so that ``bench.py report`` rebuilds the report from the store
alone. A model that fails (raises, NaN) is recorded with its error and the suite goes on.

Latency is timed under the runtimes of ``settings["runtimes"]`` (default: eager PyTorch, ONNX Runtime fp32 and
int8, those installed), and the report's latency columns and plot use ``settings["deployment_runtime"]`` (default
``ort``, ONNX Runtime fp32), eager PyTorch kept beside it.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from effbench import results
from effbench.errors import PAUSED_EXIT_CODE, UsageError, closest, error_text
from effbench.matrix import Executor, execute, make_executor, plan_runs, resumed_steps, unfinished
from effbench.matrix.plan import validated
from effbench.progress import SuiteProgress
from effbench.registry import DEFAULT_INPUT_SHAPE, Suite, get_suite, list_suites, model_info
from effbench.results import SCHEMA, ProfileRecord
from effbench.train.config import AUX_TASKS
from effbench.train.loop import fingerprint_of

DEFAULT_BUDGET = "quick"

#: Training one frame costs about this many times the model's 1-thread latency (see :func:`frame_cost_ms`).
TRAIN_FRAME_PER_LATENCY = 4.0


@dataclass
class SuitePlan:
    """What a suite run will do: its models, its budget and every training run's config."""

    suite: Suite
    budget: str
    models: list[str]
    train: dict[str, Any]  # the budget's TrainConfig overrides shared by every model
    seeds: dict[str, int]  # model -> number of seeds (each trained with aux off and on)
    model_train: dict[str, dict[str, Any]] = field(default_factory=dict)  # model -> the budget's overrides for it
    configs: list[Any] = field(default_factory=list)  # TrainConfig per (model, aux, seed), in run order
    device: str = "cpu"
    runtimes: list[str] = field(default_factory=list)  # what the profiles time latency under
    deployment_runtime: str = "ort"  # the runtime the report's latency columns and plot use

    def manifest(self) -> dict[str, Any]:
        """The manifest stored beside the runs (no clock readings: rebuilding the report must not change it)."""
        return {
            "suite": self.suite.name,
            "doc": self.suite.doc,
            "reference": self.suite.reference,
            "models": self.models,
            "budget": self.budget,
            "train": self.train,
            "model_train": self.model_train,
            "seeds": self.seeds,
            "device": self.device,
            "runtimes": self.runtimes,
            "deployment_runtime": self.deployment_runtime,
            # What each model is now: a stored run of an earlier form of it stands as pending in the report.
            "fingerprints": {name: fingerprint_of(name) for name in sorted({c.model for c in self.configs})},
            "runs": [
                {"model": c.model, "aux": c.aux, "seed": c.seed, "config_hash": c.hash()}
                | ({"aux_tasks": c.aux_tasks} if c.aux and c.tasks()[1:] != AUX_TASKS else {})
                | ({"teacher": c.teacher} if c.teacher else {})
                for c in self.configs
            ],
        }


def suite_runtimes(suite: Suite) -> tuple[list[str], str]:
    """The runtimes a suite's profiles time, and its deployment runtime (one of them).

    ``settings["runtimes"]`` (default :data:`effbench.profiler.runtimes.DEFAULT`) and
    ``settings["deployment_runtime"]`` (default :data:`effbench.profiler.runtimes.DEPLOYMENT`).

    Raises:
        UsageError: An unknown runtime, or a deployment runtime the suite does not time.
    """
    from effbench.profiler import runtimes

    names = runtimes.parse(suite.settings.get("runtimes") or runtimes.DEFAULT)
    deployment = suite.settings.get("deployment_runtime", runtimes.DEPLOYMENT)
    if deployment not in names:
        raise UsageError(f"suite {suite.name!r}: deployment_runtime {deployment!r} is not one of its runtimes "
                         f"({', '.join(names)})")
    return names, deployment


def suite_budgets(suite: Suite) -> dict[str, dict[str, Any]]:
    """The training budgets a suite defines (``settings["budgets"]``)."""
    return dict(suite.settings.get("budgets") or {})


def plan_suite(
    suite_name: str,
    *,
    budget: str = DEFAULT_BUDGET,
    seeds: int | None = None,
    device: str = "cpu",
    data_cache_dir: str | None = None,
    check_device: bool = True,
) -> SuitePlan:
    """Resolve a suite and a budget into the list of training configs.

    Config precedence, lowest first: TrainConfig defaults, ``settings["train"]``, the budget's ``train``, the
    budget's ``models[<name>]``, then the arguments here (device, seeds).

    Args:
        suite_name: A registered suite.
        budget: A key of the suite's ``settings["budgets"]``.
        seeds: Seeds per model and aux setting for every model (None: the budget's per-model numbers).
        device: ``cpu`` or ``cuda``.
        data_cache_dir: Where generated data splits are cached (not part of any config hash).
        check_device: Check that this machine has the device (False: a driver that hands the runs to a cluster
            checks the cluster's GPUs instead).

    A suite of profile-only models has no training runs: its plan profiles them only, whatever the budget.

    Raises:
        UsageError: Unknown suite or budget, a trainable suite without budgets, a bad override or seed count.
    """
    from effbench.train import TrainConfig

    suite = get_suite(suite_name)
    budgets = suite_budgets(suite)
    if not suite.trainable_models():  # a suite of profile-only models (tinyml): profiled and reported, not trained
        runtimes, deployment = suite_runtimes(suite)
        return SuitePlan(suite, budget, suite.models(), {}, {}, device=device, runtimes=runtimes,
                         deployment_runtime=deployment)
    if not budgets:
        with_budgets = [s for s in list_suites() if suite_budgets(get_suite(s))]
        raise UsageError(
            f"suite {suite_name!r} defines no training budgets (Suite.settings['budgets']); "
            f"suites that do: {', '.join(with_budgets) or 'none'}"
        )
    if budget not in budgets:
        raise UsageError(f"suite {suite_name!r} has no budget {budget!r}; {closest(budget, budgets)}")
    if seeds is not None and seeds < 1:
        raise UsageError(f"--seeds must be >= 1, got {seeds}")
    spec = budgets[budget]
    on_device = spec.get("cuda", {}) if device == "cuda" else {}
    base = {**suite.settings.get("train", {}), **spec.get("train", {}), **on_device}
    seed_spec = spec.get("seeds", {})
    models = suite.models()
    runtimes, deployment = suite_runtimes(suite)
    plan = SuitePlan(suite, budget, models, base, {}, device=device, runtimes=runtimes, deployment_runtime=deployment)
    for name in suite.trainable_models():  # profile-only models are profiled and reported, not trained
        n = seeds if seeds is not None else int(seed_spec.get(name, seed_spec.get("default", 1)))
        plan.seeds[name] = n
        if overrides := spec.get("models", {}).get(name):
            plan.model_train[name] = overrides
        values = train_values(suite, budget, name, device)
        runs = [{"aux": aux, "seed": seed} for aux in (False, True) for seed in range(n)]
        runs += [{"aux": True, "aux_tasks": task, "seed": seed}
                 for seed in range(int(spec.get("ablations", {}).get(name, 0))) for task in AUX_TASKS]
        for run in runs:
            cfg = TrainConfig.from_dict({**values, "model": name, "device": device, **run})
            if data_cache_dir is not None:
                cfg = cfg.replace(data_cache_dir=data_cache_dir)
            plan.configs.append(validated(cfg, check_device))
    for student, teacher in spec.get("distill", {}).items():
        plan.configs += _distilled(plan.configs, student, teacher, suite_name)
    return plan


def _distilled(configs: list[Any], student: str, teacher: str, suite_name: str) -> list[Any]:
    """A budget's ``distill: {student: teacher}``: for each seed of ``student``, its aux-on run (every auxiliary
    task) again with the teacher's aux-on run of the same seed as its teacher.

    Raises:
        UsageError: When either model has no such runs in the plan.
    """
    def aux_on(model: str) -> dict[int, Any]:
        return {c.seed: c for c in configs if c.model == model and c.aux and len(c.tasks()) == 1 + len(AUX_TASKS)}

    students, teachers = aux_on(student), aux_on(teacher)
    if not students or not teachers:
        raise UsageError(f"suite {suite_name!r} distils {student!r} from {teacher!r}, but its plan trains "
                         f"{(student if not students else teacher)!r} with no auxiliary tasks on")
    missing = sorted(set(students) - set(teachers))
    if missing:
        raise UsageError(f"suite {suite_name!r}: the teacher {teacher!r} has no run for seed {missing[0]} of "
                         f"{student!r}; give it as many seeds")
    return [cfg.replace(teacher=teachers[seed].hash()) for seed, cfg in sorted(students.items())]


def train_values(suite: Suite, budget: str | None, name: str, device: str = "cpu") -> dict[str, Any]:
    """TrainConfig overrides for one model of a suite, lowest first: ``settings["train"]``, the budget's ``train``,
    on a GPU the budget's ``cuda`` (a batch and learning rate that fill a GPU), and ``models[name]``; the data then
    matches the model's registered input size (:func:`_data_config_for`)."""
    spec = suite_budgets(suite).get(budget, {}) if budget else {}
    on_device = spec.get("cuda", {}) if device == "cuda" else {}
    values = {**suite.settings.get("train", {}), **spec.get("train", {}), **on_device,
              **spec.get("models", {}).get(name, {})}
    values["data_config"] = _data_config_for(name, values.get("data_config") or {})
    return values


def _data_config_for(name: str, data_config: dict[str, Any]) -> dict[str, Any]:
    """The data a model trains on matches its registered input size: a model registered at 240 x 320 gets
    240 x 320 frames (the scene scales its focal length with the width, so it is the same view at twice the
    resolution). Explicit ``height``/``width`` in the budget win."""
    shape = model_info(name).input_shape
    out = dict(data_config)
    if len(shape) == 4 and tuple(shape[-2:]) != DEFAULT_INPUT_SHAPE[-2:]:
        out.setdefault("height", int(shape[-2]))
        out.setdefault("width", int(shape[-1]))
    return out


def profile_models(
    names: list[str],
    *,
    latency: bool = True,
    runtimes: tuple[str, ...] = ("eager",),
    calibration_dir: str | None = None,
    on_profiled: Callable[[str], None] | None = None,
) -> dict[str, ProfileRecord]:
    """Profile registered models' deployable forms, timed together (every model under every runtime in the same
    interleaved rounds, so their ratios cancel the machine's drift); a failure becomes a record with its error,
    never a raise.

    Args:
        names: The registered models.
        latency: Time them (and measure the GEMM roofline) under ``runtimes``.
        runtimes: Runtime names; one that cannot run a model records why in the profile's row.
        calibration_dir: Where int8 calibration frames are cached (default: the system temp folder).
        on_profiled: Called with each name before it is counted (for progress).

    Returns:
        Name -> its profile record (:class:`effbench.results.ProfileRecord`): the flat row, the reconciliation with
        the peer counters by op type and why they differ, the per-op breakdown, the warnings, and where it ran.
    """
    from effbench import measure
    from effbench.provenance import provenance

    records: dict[str, dict[str, Any]] = {}
    targets = []
    for name in names:
        record = records[name] = dict.fromkeys(ProfileRecord.__annotations__)  # every field, None until known
        record.update(schema=SCHEMA, model=name, status="ok")
        try:
            targets.append(target := measure.registered(name))
            record["input_shape"] = list(target.input_shape)
        except Exception as err:  # noqa: BLE001 - recorded below
            record.update(status="failed", error=error_text(err), traceback=traceback.format_exc(limit=8))
    profiles = measure.profile_targets(targets, latency=latency, runtimes=runtimes, calibration_dir=calibration_dir,
                                       on_profiled=on_profiled and (lambda t: on_profiled(t.name)))
    for target, prof in zip(targets, profiles):
        record = records[target.name]
        if isinstance(prof, Exception):  # a model that fails is recorded and the suite goes on
            tb = "".join(traceback.format_exception(prof, limit=8))
            record.update(status="failed", error=error_text(prof), traceback=tb)
            continue
        record.update(profile=prof.as_dict(), reconciliation=prof.reconciliation(), peer_notes=prof.peer_notes(),
                      by_op=[dataclasses.asdict(row) for row in prof.by_op], warnings=prof.warnings)
    where = provenance("cpu")
    for record in records.values():
        record.update(where)
    return records  # type: ignore[return-value]


def frame_cost_ms(name: str, profile: dict[str, Any] | None) -> float:
    """Estimated training time per frame of a model, in ms: the unit of cost the progress ETA counts in
    (:mod:`effbench.progress`), and what orders the runs of a parallel suite.

    Training a frame (forward and backward of the training form, AdamW) costs about 4x the deployable model's
    1-thread batch-1 latency: measured over the 28 runs of the committed embedded suite (one thread per run),
    3x to 6.5x, median 4.3 (mobilenet_v2_100: 6.7 ms latency, 29 ms per training frame). The profile measured
    just before gives a per-machine estimate; without one, MACs stand in.
    """
    row = (profile or {}).get("profile") or {}
    if row.get("latency_ms_1t"):
        return TRAIN_FRAME_PER_LATENCY * float(row["latency_ms_1t"])
    macs = row.get("macs") or model_info(name).macs or 0
    return 0.5 + macs / 4e6


@dataclass
class SuiteResult:
    """The outcome of :func:`run_suite`."""

    plan: SuitePlan
    out_dir: Path
    failed: list[str]  # one line per failed stage
    report_files: list[Path]
    wall_s: float
    paused: int = 0  # runs the time limit left to train

    @property
    def exit_code(self) -> int:
        """0 when every model profiled and trained, 1 when any failed, else 75 when the time limit left runs to
        train (:data:`effbench.errors.PAUSED_EXIT_CODE`)."""
        return 1 if self.failed else PAUSED_EXIT_CODE if self.paused else 0


def run_suite(
    suite_name: str,
    out_dir: str | Path,
    *,
    budget: str = DEFAULT_BUDGET,
    seeds: int | None = None,
    device: str = "cpu",
    fresh: bool = False,
    latency: bool = True,
    progress: bool = True,
    jobs: int | None = None,
    data_cache_dir: str | None = None,
    executor: str | Executor = "local",
    ray_address: str | None = None,
    checkpoint_dir: str | Path | None = None,
    deadline: float | None = None,
    log: Callable[[str], None] = print,
) -> SuiteResult:
    """Profile, train, evaluate and report one suite into ``out_dir`` (results store in ``out_dir/runs``).

    Finished runs in the store are reused (see :func:`effbench.results.reusable`); ``fresh`` deletes the planned
    runs' records and checkpoints first so that they run again. Profiles are always measured again, so that every
    latency ratio in the report compares models timed in the same run.

    Every training run uses one intra-op thread: on a CPU, runs in parallel processes use the cores better than
    threads inside one run, and a thread pool fighting other processes for the cores slows a run many times over.

    Args:
        suite_name: A registered suite with budgets.
        out_dir: The report folder.
        budget: Which of the suite's budgets.
        seeds: Seeds per model and aux setting, for every model (None: the budget's).
        device: Training device, ``cpu`` or ``cuda`` (profiling and latency are always on the CPU).
        fresh: Ignore finished runs.
        latency: Measure latency while profiling.
        progress: Show the suite's progress on stderr (:mod:`effbench.progress`).
        jobs: Training runs at a time, each in its own process (None: one per core, at most one per run; a GPU is
            launch-bound on these small models, so several runs share it well); with Ray, at most this many tasks.
        data_cache_dir: Where generated data is cached (None: the user cache, ``$EFFBENCH_CACHE`` or
            ``~/.cache/effbench``).
        executor: ``local`` (this machine's processes), ``ray`` (:mod:`effbench.matrix.ray_executor`), or an
            executor object.
        ray_address: With ``ray``: a running cluster to join (None: a local Ray instance).
        checkpoint_dir: Where runs keep their checkpoints (None: the results store; see the executor).
        deadline: A time limit (``time.time()``): training stops there, each unfinished run at a checkpoint, and
            the report is built from the finished runs (the others stand as pending); run again to resume.
        log: Where one-line messages go.

    Raises:
        UsageError: For a bad suite, budget or override (before anything runs).
    """
    from effbench.data.dataset import default_cache_dir
    from effbench.report import build_report

    t0 = time.perf_counter()
    out = Path(out_dir)
    runs_dir = out / "runs"
    if isinstance(executor, str):
        executor = make_executor(executor, jobs=jobs, ray_address=ray_address, checkpoint_dir=checkpoint_dir)
    # A driver that joins a cluster need not have the GPU its runs train on: the cluster's are checked on joining.
    plan = plan_suite(suite_name, budget=budget, seeds=seeds, device=device, data_cache_dir=data_cache_dir,
                      check_device=not getattr(executor, "address", None))
    work_dir = checkpoint_dir or getattr(executor, "checkpoint_dir", None)
    todo = _start_store(plan, runs_dir, fresh, work_dir)
    busy = busy_note()
    if busy:
        log(busy)
    bar = SuiteProgress(suite_name, len(plan.models), len(todo), enabled=progress)
    try:
        profiles = _profile_models(plan, runs_dir, latency, bar, Path(data_cache_dir or default_cache_dir()))
        runs = plan_runs(todo, lambda name: frame_cost_ms(name, profiles[name]), resumed_steps(work_dir or runs_dir))
        if not getattr(executor, "address", None):  # workers on this machine read the data from its cache
            _prepare_data(todo, bar, deadline)
        bar.start_training(sum(run.cost_ms for run in runs))
        events = execute(runs, runs_dir, executor, bar, deadline=deadline)
        bar.stage("report")
    finally:
        bar.close()
    built = build_report(runs_dir, out)
    wall = time.perf_counter() - t0
    log(f"suite {suite_name} ({budget}): {len(plan.configs)} runs of {len(plan.models)} models in {wall:.0f} s "
        f"({len(events.records)} trained, {executor.describe(len(todo))}); report: {out / 'report.md'}")
    for line in bar.failed:
        log(f"failed: {line}")
    if events.paused:
        log(f"time limit: {len(events.paused)} of {len(plan.configs)} runs still to train (the report shows them as "
            "pending); run the same command again to resume")
    return SuiteResult(plan, out, bar.failed, built["files"], wall, len(events.paused))


def busy_note() -> str | None:
    """A line saying the machine is busy when the 1-minute load average is above the core count (None otherwise, or
    where the load average is unknown): every timing of the run will be slower than on an idle machine."""
    try:
        load = os.getloadavg()[0]
    except (AttributeError, OSError):  # not on every platform
        return None
    cores = os.cpu_count() or 1
    if load <= cores:
        return None
    return (f"note: the machine is busy (load average {load:.1f} on {cores} cores): training and latency will be "
            "slower than on an idle machine")


def _start_store(plan: SuitePlan, runs_dir: Path, fresh: bool, checkpoint_dir: str | Path | None = None) -> list[Any]:
    """Write the plan's manifest (and, with ``fresh``, delete its runs' records and checkpoints, in the store and in
    ``checkpoint_dir``); return the runs still to train: those without a finished record of the model as it is now."""
    results.write_json(results.manifest_path(runs_dir), plan.manifest())
    if fresh:
        for cfg in plan.configs:
            for folder in {runs_dir, Path(checkpoint_dir or runs_dir)}:  # a run's work folder keeps a record too
                results.record_path(folder, cfg.hash()).unlink(missing_ok=True)
                results.checkpoint_path(folder, cfg.hash()).unlink(missing_ok=True)
    return unfinished(plan.configs, runs_dir)


def _profile_models(
    plan: SuitePlan, runs_dir: Path, latency: bool, bar: SuiteProgress, cache: Path
) -> dict[str, ProfileRecord]:
    """Profile every model into the store, in order, under the plan's installed runtimes (each missing one skipped
    with a line); a failure is recorded and the next model goes on."""
    from effbench.profiler import runtimes

    names, skipped = runtimes.available(plan.runtimes)
    for line in skipped:
        bar.note(line)
    profiles = profile_models(list(plan.models), latency=latency, runtimes=tuple(names or ("eager",)),
                              calibration_dir=str(cache), on_profiled=lambda name: bar.stage(f"profile {name}"))
    for name, record in profiles.items():
        results.write_profile(runs_dir, record)
        bar.profile_done(name, record["error"] if record["status"] != "ok" else None)
    return profiles


def _prepare_data(configs: list[Any], bar: SuiteProgress, deadline: float | None = None) -> None:
    """Generate (or read from the cache) every split the runs train and evaluate on, once per data set, before the
    training clock starts (so that the ETA measures training only, and parallel workers read the cache); none past
    the ``deadline``, when no run will start."""
    from effbench.data import load_split

    data_sets = {(c.data_seed, json.dumps(c.data_config, sort_keys=True), c.train_size, c.val_size, c.test_size): c
                 for c in configs}
    for i, cfg in enumerate(data_sets.values(), start=1):
        if deadline is not None and time.time() >= deadline:
            return
        bar.stage(f"data set {i}/{len(data_sets)} ({cfg.train_size} training frames)")
        for split, size in (("train", cfg.train_size), ("val", cfg.val_size), ("test", cfg.test_size)):
            if size > 0:
                load_split(split, size, cfg)
