"""The whole pipeline for one suite: profile every deployable model, train each model without and with auxiliary
tasks over its seeds, evaluate, and build the report (``python bench.py --suite embedded``).

Budgets live in the suite's settings (``architectures/suites.py``)::

    Suite(..., settings={"budgets": {"quick": {"train": {...TrainConfig overrides...},
                                               "seeds": {"default": 1, "tiny_hand": 3},
                                               "models": {"some_model": {...per-model overrides...}}}}})

Everything lands in the results store (``<out>/runs/``): effbench.train's run records, one profile per model and
a manifest of the planned runs (``runs/suite/``), so that ``bench.py report`` rebuilds the report from the store
alone. A model that fails (raises, NaN) is recorded with its error and the suite goes on.
"""

from __future__ import annotations

import dataclasses
import time
import traceback
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from effbench.errors import UsageError, closest
from effbench.registry import DEFAULT_INPUT_SHAPE, Suite, create_model, get_suite, list_suites, model_info
from effbench.report.io import write_json_atomic
from effbench.report.store import MANIFEST, PROFILE_PREFIX, SUITE_DIR

DEFAULT_BUDGET = "quick"

#: Progress-bar estimate of profiling one model (counters, peers, latency on 1 and all threads), in ms.
PROFILE_MS = 3000.0


@dataclass
class SuitePlan:
    """What a suite run will do: its models, its budget and every training run's config."""

    suite: Suite
    budget: str
    models: list[str]
    train: dict[str, Any]  # the budget's TrainConfig overrides shared by every model
    seeds: dict[str, int]  # model -> number of seeds (each trained with aux off and on)
    configs: list[Any] = field(default_factory=list)  # TrainConfig per (model, aux, seed), in run order
    device: str = "cpu"

    def manifest(self) -> dict[str, Any]:
        """The manifest stored beside the runs (no clock readings: rebuilding the report must not change it)."""
        return {
            "suite": self.suite.name,
            "doc": self.suite.doc,
            "reference": self.suite.reference,
            "models": self.models,
            "budget": self.budget,
            "train": self.train,
            "seeds": self.seeds,
            "device": self.device,
            "runs": [
                {"model": c.model, "aux": c.aux, "seed": c.seed, "config_hash": c.hash()} for c in self.configs
            ],
        }


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

    Raises:
        UsageError: Unknown suite or budget, a suite without budgets, a bad override or seed count.
    """
    from effbench.train import TrainConfig

    suite = get_suite(suite_name)
    budgets = suite_budgets(suite)
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
    base = {**suite.settings.get("train", {}), **spec.get("train", {})}
    seed_spec = spec.get("seeds", {})
    models = suite.models()
    plan = SuitePlan(suite, budget, models, base, {}, device=device)
    for name in suite.trainable_models():  # profile-only models are profiled and reported, not trained
        n = seeds if seeds is not None else int(seed_spec.get(name, seed_spec.get("default", 1)))
        plan.seeds[name] = n
        values = train_values(suite, budget, name)
        for aux in (False, True):
            for seed in range(n):
                cfg = TrainConfig.from_dict({**values, "model": name, "aux": aux, "seed": seed, "device": device})
                if data_cache_dir is not None:
                    cfg = cfg.replace(data_cache_dir=data_cache_dir)
                plan.configs.append(cfg.validate())
    return plan


def train_values(suite: Suite, budget: str | None, name: str) -> dict[str, Any]:
    """TrainConfig overrides for one model of a suite, lowest first: ``settings["train"]``, the budget's ``train``
    and ``models[name]``; the data then matches the model's registered input size (:func:`_data_config_for`)."""
    spec = suite_budgets(suite).get(budget, {}) if budget else {}
    values = {**suite.settings.get("train", {}), **spec.get("train", {}), **spec.get("models", {}).get(name, {})}
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


def _error_text(err: BaseException) -> str:
    return f"{type(err).__name__}: {' '.join(str(err).split())}"[:500]


def profile_model(name: str, *, latency: bool = True) -> dict[str, Any]:
    """Profile a registered model's deployable form; a failure becomes a record with its error, never a raise.

    Returns:
        The profile record: ``model, status, error, input_shape, profile`` (the flat row), ``reconciliation``
        (by op type, ours and the peers'), ``peer_notes``, ``by_op``, ``warnings``, and where it ran.
    """
    import torch

    import effbench
    from effbench.train.store import git_commit, machine_info, now_iso

    record: dict[str, Any] = {"model": name, "status": "ok", "error": None}
    try:
        info = model_info(name)
        record["input_shape"] = list(info.input_shape)
        net = create_model(name)
        deployable = net.deployable() if hasattr(net, "deployable") else net
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            prof = effbench.profile(deployable, info.input_shape, latency=latency, name=name)
        record["profile"] = prof.as_dict()
        record["reconciliation"] = prof.reconciliation()
        record["peer_notes"] = prof.peer_notes()
        record["by_op"] = [dataclasses.asdict(row) for row in prof.by_op]
        record["warnings"] = sorted({str(w.message) for w in caught})
    except Exception as err:  # a model that fails is recorded and the suite goes on
        record.update(status="failed", error=_error_text(err), traceback=traceback.format_exc(limit=8))
    record.update(machine=machine_info("cpu"), torch_version=torch.__version__, commit=git_commit(), created=now_iso())
    return record


def frame_cost_ms(name: str, profile: dict[str, Any] | None) -> float:
    """Estimated training time per frame of a model, in ms, for the progress bar's ETA.

    Training a frame (forward, backward, optimiser) costs about twice the deployable model's 1-thread batch-1
    latency on the development machine (e.g. mobilenet_v2_100: ~15 ms latency, ~30 ms per training frame), so
    the profile measured just before gives a per-machine estimate; without one, MACs stand in.
    """
    row = (profile or {}).get("profile") or {}
    if row.get("latency_ms_1t"):
        return 2.0 * float(row["latency_ms_1t"])
    macs = row.get("macs") or model_info(name).macs or 0
    return 0.5 + macs / 4e6


def _fail_record(config: Any, err: BaseException) -> dict[str, Any]:
    from effbench.train.store import make_record

    return make_record(
        config.to_dict(), config.hash(), status="failed", error=_error_text(err), metrics={},
        device=config.device, wall_s=None, steps_per_s=None,
    )  # fmt: skip


@dataclass
class SuiteResult:
    """The outcome of :func:`run_suite`."""

    plan: SuitePlan
    out_dir: Path
    failed: list[str]  # one line per failed stage
    report_files: list[Path]
    wall_s: float

    @property
    def exit_code(self) -> int:
        """0 when every model profiled and trained, 1 when any failed."""
        return 1 if self.failed else 0


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
    jobs: int = 1,
    log: Callable[[str], None] = print,
) -> SuiteResult:
    """Profile, train, evaluate and report one suite into ``out_dir`` (results store in ``out_dir/runs``).

    Finished runs in the store are reused (effbench.train skips them); ``fresh`` deletes the planned runs'
    records and checkpoints first so that they run again. Profiles are always measured again, so that every
    latency ratio in the report compares models timed in the same run.

    Args:
        suite_name: A registered suite with budgets.
        out_dir: The report folder.
        budget: Which of the suite's budgets.
        seeds: Seeds per model and aux setting, for every model (None: the budget's).
        device: Training device, ``cpu`` or ``cuda`` (profiling and latency are always on the CPU).
        fresh: Ignore finished runs.
        latency: Measure latency while profiling.
        progress: Show one tqdm bar over the whole suite.
        jobs: Training runs at a time, each in its own process (a GPU is launch-bound on these small models, so
            several runs share it well; on a CPU keep jobs x threads <= cores).
        log: Where one-line messages go.

    Raises:
        UsageError: For a bad suite, budget or override (before anything runs).
    """
    from tqdm.auto import tqdm

    from effbench.report import build_report
    from effbench.train import run as train_run
    from effbench.train.loop import fingerprint_of
    from effbench.train.store import checkpoint_path, record_path

    t0 = time.perf_counter()
    out = Path(out_dir)
    runs_dir = out / "runs"
    plan = plan_suite(suite_name, budget=budget, seeds=seeds, device=device, data_cache_dir=str(out / ".cache"))
    write_json_atomic(runs_dir / SUITE_DIR / MANIFEST, plan.manifest())
    if fresh:
        for cfg in plan.configs:
            record_path(runs_dir, cfg.hash()).unlink(missing_ok=True)
            checkpoint_path(runs_dir, cfg.hash()).unlink(missing_ok=True)

    # The bar counts estimated milliseconds, so that its ETA weighs a MobileNet step more than a tiny net's:
    # profiling first (a fixed estimate per model), then each training run's steps x batch x frame_cost_ms (from
    # the profile just measured). Reused runs are left out, so the ETA covers only what is left.
    fingerprints = {name: fingerprint_of(name) for name in plan.models}
    done_before = {
        cfg.hash() for cfg in plan.configs if _finished(record_path(runs_dir, cfg.hash()), fingerprints[cfg.model])
    }
    failed: list[str] = []
    bar = tqdm(total=round(PROFILE_MS * len(plan.models)), disable=not progress, dynamic_ncols=True, smoothing=0.05,
               bar_format="{percentage:3.0f}%|{bar}| [{elapsed}<{remaining}] {desc}")

    def stage(text: str) -> None:
        bar.set_description_str(f"suite {suite_name}: {text}" + (f" ({len(failed)} failed)" if failed else ""))

    try:
        profiles: dict[str, dict[str, Any]] = {}
        for name in plan.models:
            stage(f"profile {name}")
            record = profile_model(name, latency=latency)
            profiles[name] = record
            write_json_atomic(runs_dir / SUITE_DIR / f"{PROFILE_PREFIX}{name}.json", record)
            if record["status"] != "ok":
                failed.append(f"{name} profile: {record['error']}")
                bar.write(f"FAILED profile {name}: {record['error']}")
            bar.update(round(PROFILE_MS))
        cost = {name: frame_cost_ms(name, profiles.get(name)) for name in plan.models}
        bar.total = bar.n + round(
            sum(c.steps * c.batch_size * cost[c.model] for c in plan.configs if c.hash() not in done_before)
        )
        bar.refresh()
        if jobs > 1:
            _train_parallel(plan, runs_dir, jobs, done_before, cost, bar, stage, failed)
        for cfg in plan.configs if jobs <= 1 else ():
            tag = _tag(cfg)
            stage(f"train {tag}")
            per_step = 0.0 if cfg.hash() in done_before else cfg.batch_size * cost[cfg.model]
            credit = [0.0]

            def on_step(_steps: int, w: float = per_step, credit: list[float] = credit) -> None:
                credit[0] += w
                if credit[0] >= 1:
                    bar.update(int(credit[0]))
                    credit[0] -= int(credit[0])

            try:
                record = train_run(cfg, runs_dir, progress=False, on_step=on_step)
            except Exception as err:  # effbench.train records failures itself; this catches what escapes it
                record = _fail_record(cfg, err)
                write_json_atomic(record_path(runs_dir, cfg.hash()), record)
            if record.get("status") != "ok":
                failed.append(f"{tag}: {record.get('error')}")
                bar.write(f"FAILED {tag}: {record.get('error')}")
        stage("report")
        bar.update(max(0, bar.total - bar.n))
    finally:
        bar.close()
    built = build_report(runs_dir, out)
    wall = time.perf_counter() - t0
    log(f"suite {suite_name} ({budget}): {len(plan.configs)} runs of {len(plan.models)} models in {wall:.0f} s; "
        f"report: {out / 'report.md'}")
    for line in failed:
        log(f"failed: {line}")
    return SuiteResult(plan, out, failed, built["files"], wall)


def _tag(cfg: Any) -> str:
    return f"{cfg.model} aux={'on' if cfg.aux else 'off'} seed={cfg.seed}"


def _train_in_worker(config: dict[str, Any], runs_dir: str, threads: int) -> dict[str, Any]:
    """One training run in a worker process (module level, so that a spawned process can import it)."""
    import torch

    from effbench.train import TrainConfig
    from effbench.train import run as train_run
    from effbench.train.store import record_path

    torch.set_num_threads(threads)
    cfg = TrainConfig.from_dict(config)
    try:
        return train_run(cfg, runs_dir, progress=False)
    except Exception as err:  # recorded like any failed run; the suite goes on
        record = _fail_record(cfg, err)
        write_json_atomic(record_path(runs_dir, cfg.hash()), record)
        return record


def _train_parallel(
    plan: SuitePlan,
    runs_dir: Path,
    jobs: int,
    done_before: set[str],
    cost: dict[str, float],
    bar: Any,
    stage: Callable[[str], None],
    failed: list[str],
) -> None:
    """Train the plan's runs ``jobs`` at a time in spawned processes; the bar advances as each run finishes.

    The data splits are generated once here first, so that the workers read them from the cache instead of
    each rendering the same frames.
    """
    import multiprocessing
    import os
    from concurrent.futures import ProcessPoolExecutor, as_completed

    from effbench.train.loop import load_split

    # Longest first: the pool's last runs are then short ones, so both workers finish at about the same time.
    todo = sorted((cfg for cfg in plan.configs if cfg.hash() not in done_before),
                  key=lambda c: -c.steps * c.batch_size * cost[c.model])
    for cfg in {(c.data_seed, repr(sorted(c.data_config.items())), c.train_size, c.val_size, c.test_size): c
                for c in todo}.values():
        stage(f"data for {cfg.model}")
        for split, size in (("train", cfg.train_size), ("val", cfg.val_size), ("test", cfg.test_size)):
            if size > 0:
                load_split(split, size, cfg)
    threads = max(1, (os.cpu_count() or 1) // jobs)
    stage(f"train {len(todo)} runs, {jobs} at a time")
    with ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = {pool.submit(_train_in_worker, cfg.to_dict(), str(runs_dir), threads): cfg for cfg in todo}
        for future in as_completed(futures):
            cfg = futures[future]
            record = future.result()
            bar.update(round(cfg.steps * cfg.batch_size * cost[cfg.model]))
            if record.get("status") != "ok":
                failed.append(f"{_tag(cfg)}: {record.get('error')}")
                bar.write(f"FAILED {_tag(cfg)}: {record.get('error')}")


def _finished(path: Path, fingerprint: str | None) -> bool:
    """Whether the record at ``path`` is a finished run of the model as it is now (see ``store.reusable``)."""
    from effbench.train.store import read_json, reusable

    try:
        return reusable(read_json(path), fingerprint)
    except (OSError, ValueError):
        return False
