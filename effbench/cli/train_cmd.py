"""``bench.py train``: train and evaluate one model, or every model of a suite with and without auxiliary tasks.

    python bench.py train --model tiny_hand --aux on --seed 0 --steps 2000 --out runs
    python bench.py train --suite smoke --seeds 3 --out runs            # every model x aux off/on x seeds 0..2
    python bench.py train --model mobilenet_v2_100 --device cuda --batch-size 128 --lr 2e-3
    python bench.py train --suite embedded --budget full --jobs 2 --hours 8 --out runs  # the runs `run` trains

Every TrainConfig field has a flag (``--batch-size``, ``--balancing``, ``--augment off`` ...); precedence, lowest
first: TrainConfig defaults, the suite's ``settings["train"]`` (and ``--budget``'s), the flags. One JSON record per
run lands in ``--out``, named by the config hash, with the final config inside; finished runs are skipped,
interrupted ones resume. Exit code 1 when a run failed (the others still run), 2 for bad input.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from typing import Any

#: Fields with their own flags (or set per run by the suite loop) rather than the generic override flags.
_SPECIAL = ("model", "aux", "seed")


def _on_off(value: str) -> bool:
    if value not in ("on", "off"):
        raise argparse.ArgumentTypeError(f"expected on or off, got {value!r}")
    return value == "on"


def _json_dict(value: str) -> dict:
    import json

    try:
        parsed = json.loads(value)
    except json.JSONDecodeError as err:
        raise argparse.ArgumentTypeError(f"expected a JSON object like '{{\"height\": 48}}', got {value!r}") from err
    if not isinstance(parsed, dict):
        raise argparse.ArgumentTypeError(f"expected a JSON object, got {value!r}")
    return parsed


def add_parser(sub: argparse._SubParsersAction) -> None:
    from effbench.cli.matrix_args import add_executor_args
    from effbench.train.config import TrainConfig, field_help

    p = sub.add_parser(
        "train",
        help="train and evaluate a model (or a suite) with and without auxiliary tasks",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    what = p.add_mutually_exclusive_group()
    what.add_argument("--model", help="a registered model (bench.py list)")
    what.add_argument("--suite", help="every model of a suite, aux off and on, --seeds seeds each")
    p.add_argument("--aux", default=None, help="on | off | both (default: on for --model, both for --suite)")
    p.add_argument("--seed", type=int, default=0, help="first seed (default 0)")
    p.add_argument("--seeds", type=int, default=None,
                   help="number of seeds, seed .. seed+N-1 (default 1; with --budget, the budget's seeds per model, "
                        "and its ablations and distilled runs: the runs `bench.py run` trains)")
    p.add_argument("--budget", default=None, help="with --suite: a training budget of the suite's settings")
    p.add_argument("--out", default="runs", help="results folder (default: runs)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar (it is off anyway when not a terminal)")
    add_executor_args(p, jobs_default="1, in this process")
    p.add_argument(
        "--threads",
        type=int,
        default=1,
        help="CPU threads for torch (default 1: these small models gain little from more, and a thread pool fighting "
        "other processes for the cores is many times slower)",
    )
    p.add_argument(
        "--data-cache", dest="data_cache_dir", default=None, help="where generated data is cached (default: the data's)"
    )
    overrides = p.add_argument_group("config overrides (TrainConfig fields; default: the config's value)")
    helps = field_help()
    defaults = TrainConfig()
    for f in dataclasses.fields(TrainConfig):
        if f.name in _SPECIAL or f.name == "data_cache_dir":
            continue
        default = getattr(defaults, f.name)
        kind: Any = _on_off if isinstance(default, bool) else _json_dict if isinstance(default, dict) else type(default)
        shown = ("on" if default else "off") if isinstance(default, bool) else default
        overrides.add_argument(
            "--" + f.name.replace("_", "-"),
            dest=f.name,
            type=kind,
            default=None,
            metavar="on|off" if isinstance(default, bool) else "JSON" if isinstance(default, dict) else f.name.upper(),
            # argparse %-formats help text: a literal "%" in a field's help must reach it as "%%".
            help=f"{helps.get(f.name, '')} (default: {shown})".replace("%", "%%"),
        )
    p.set_defaults(run=run)


def _aux_values(value: str | None, suite: bool) -> tuple[bool, ...]:
    from effbench.errors import UsageError

    value = value if value is not None else ("both" if suite else "on")
    choices = {"on": (True,), "off": (False,), "both": (False, True)}
    if value not in choices:
        raise UsageError(f"--aux {value!r} is not one of on, off, both")
    return choices[value]


def build_configs(args: argparse.Namespace, check_device: bool = True) -> list[Any]:
    """The TrainConfigs the arguments ask for, validated (``check_device`` False: a GPU run handed to a cluster need
    not find a GPU on this machine).

    Raises:
        UsageError: Neither or both of --model/--suite, a bad --aux, --seeds < 1, an unknown suite or budget, or
            an invalid config value.
    """
    from effbench.errors import UsageError
    from effbench.matrix.plan import validated
    from effbench.registry import get_suite
    from effbench.suite_run import train_values
    from effbench.train import TrainConfig
    from effbench.train.config import field_names

    if not args.model and not args.suite:
        raise UsageError("give --model NAME or --suite NAME")
    if args.seeds is not None and args.seeds < 1:
        raise UsageError(f"--seeds must be >= 1, got {args.seeds}")
    if args.budget and not args.suite:
        raise UsageError("--budget needs --suite")
    aux_values = _aux_values(args.aux, bool(args.suite))
    flags = {n: getattr(args, n) for n in field_names() if n not in _SPECIAL and getattr(args, n, None) is not None}
    seeds = range(args.seed, args.seed + (args.seeds or 1))
    suite = get_suite(args.suite) if args.suite else None
    if suite is not None and args.budget:
        from effbench.errors import closest
        from effbench.suite_run import plan_suite, suite_budgets

        budgets = suite_budgets(suite)
        if args.budget not in budgets:
            raise UsageError(f"suite {args.suite!r} has no budget {args.budget!r}; {closest(args.budget, budgets)}")
        if args.seeds is None and args.seed:
            raise UsageError(f"--seed {args.seed} with --budget needs --seeds N (the budget sets its own seeds)")
        if args.seeds is None:  # the budget's runs, as `bench.py run` plans them, with the flags on top
            plan = plan_suite(args.suite, budget=args.budget, device=flags.get("device", "cpu"),
                              check_device=check_device)
            return [validated(TrainConfig.from_dict({**cfg.to_dict(), **flags}), check_device)
                    for cfg in plan.configs if cfg.aux in aux_values]
    configs = []
    for name in suite.trainable_models() if suite is not None else [args.model]:
        # The same per-model resolution as `bench.py run` (budget, per-model overrides, data at the model's input
        # size), so that `train --suite` and `run --suite` name the same runs.
        base = train_values(suite, args.budget, name, flags.get("device", "cpu")) if suite is not None else {}
        for aux in aux_values:
            for seed in seeds:
                values = {**base, **flags, "model": name, "aux": aux, "seed": seed}
                configs.append(validated(TrainConfig.from_dict(values), check_device))
    return configs


def _summary_row(record: dict[str, Any]) -> list[Any]:
    cfg, m = record["config"], record["metrics"] or {}
    return [
        cfg["model"],
        "on" if cfg["aux"] else "off",
        cfg["seed"],
        record["status"],
        m.get("epe_px"),
        m.get("pck5"),
        m.get("err3d_mm"),
        record["steps_per_s"],
        record["config_hash"],
        (record["error"] or "")[:60],
    ]


def run(args: argparse.Namespace) -> int:
    from tabulate import tabulate

    from effbench.cli.matrix_args import deadline_from
    from effbench.errors import PAUSED_EXIT_CODE
    from effbench.matrix import execute, make_executor, plan_runs, resumed_steps, run_tag, unfinished
    from effbench.progress import SuiteProgress
    from effbench.results import read_run, record_path
    from effbench.suite_run import frame_cost_ms

    if args.threads < 1:
        from effbench.errors import UsageError

        raise UsageError(f"--threads must be >= 1, got {args.threads}")
    deadline = deadline_from(args.hours)
    # Locally, one run at a time in this process unless --jobs says otherwise (--threads is for that one run).
    jobs = args.jobs if args.jobs is not None or args.executor != "local" else 1
    executor = make_executor(args.executor, jobs=jobs, threads=args.threads, ray_address=args.ray_address,
                             checkpoint_dir=args.checkpoint_dir,
                             run_progress=not args.no_progress and sys.stderr.isatty())
    configs = build_configs(args, check_device=not args.ray_address)
    unique = list({cfg.hash(): cfg for cfg in configs}.values())

    def report(record: dict[str, Any]) -> None:
        cfg = record["config"]
        epe = (record["metrics"] or {}).get("epe_px")
        line = f"{cfg['model']} aux={'on' if cfg['aux'] else 'off'} seed={cfg['seed']}: {record['status']}"
        line += f", epe {epe:.2f} px" if epe is not None else ""
        line += f" ({record['error']})" if record["error"] else ""
        print(line, flush=True)

    runs = plan_runs(unfinished(unique, args.out), lambda name: frame_cost_ms(name, None),
                     resumed_steps(args.checkpoint_dir or args.out))
    pending = {run.key for run in runs}
    for cfg in unique:  # say so, rather than leave the user wondering why a run took no time
        if (key := cfg.hash()) not in pending:
            print(f"{run_tag(cfg)}: finished earlier, reused ({record_path(args.out, key)})", flush=True)
    bar = SuiteProgress(f"train {args.suite or args.model}", 0, len(runs),
                        enabled=len(unique) > 1 and not args.no_progress)
    bar.start_training(sum(run.cost_ms for run in runs))
    try:
        events = execute(runs, args.out, executor, bar, on_record=report if len(unique) > 1 else None,
                         deadline=deadline)
    finally:
        bar.close()
    done = {**events.records, **events.paused}
    records = [done.get(cfg.hash()) or read_run(record_path(args.out, cfg.hash())) for cfg in unique]
    headers = ["model", "aux", "seed", "status", "epe_px", "pck5", "err3d_mm", "steps/s", "config hash", "error"]
    print(tabulate([_summary_row(r) for r in records], headers=headers, floatfmt=".3f"))
    print(f"records in {args.out}/")
    if events.paused:
        print(f"time limit: {len(events.paused)} run(s) still to train; run the same command again to resume")
    return 1 if any(r["status"] == "failed" for r in records) else PAUSED_EXIT_CODE if events.paused else 0
