"""``bench.py run --suite NAME`` (or just ``bench.py --suite NAME``): profile, train, evaluate and report a suite."""

from __future__ import annotations

import argparse

#: Where a suite's report goes without --out: a folder .gitignore lists, so that a first run leaves the clone clean.
DEFAULT_OUT = "results"


def add_parser(sub: argparse._SubParsersAction) -> None:
    from effbench.cli.matrix_args import add_executor_args

    p = sub.add_parser(
        "run",
        help="the whole pipeline for a suite: profile, train with and without aux tasks, evaluate, report",
        description=__doc__ + " Finished runs in the results store are reused; a model that fails is recorded with "
        "its error, the suite goes on, and the exit code is 1. With --hours, a suite too long for one sitting trains "
        "in steps: each stops at its time limit with a report of what finished, and the next resumes.",
    )
    p.add_argument("--suite", required=True, help="suite name (bench.py list shows them)")
    p.add_argument("--out", default=None,
                   help=f"report folder (default {DEFAULT_OUT}/<suite>/, which git ignores; results store in "
                   "OUT/runs/). The committed reference report is written with an explicit --out reports/<suite>")
    p.add_argument("--budget", default="quick", help="training budget from the suite's settings: quick | full")
    p.add_argument("--seeds", type=int, default=None, help="seeds per model and aux setting (default: the budget's)")
    p.add_argument("--device", default="cpu", choices=("cpu", "cuda"), help="training device (default cpu)")
    add_executor_args(p)
    p.add_argument("--fresh", action="store_true", help="rerun every planned run instead of reusing finished ones")
    p.add_argument("--no-latency", action="store_true", help="skip latency measurement while profiling")
    p.add_argument("--no-progress", action="store_true",
                   help="no progress on stderr (a terminal gets one line redrawn, a log plain lines)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from effbench.cli.matrix_args import deadline_from
    from effbench.suite_run import run_suite

    deadline = deadline_from(args.hours)
    out = args.out or f"{DEFAULT_OUT}/{args.suite}"
    result = run_suite(
        args.suite,
        out,
        budget=args.budget,
        seeds=args.seeds,
        device=args.device,
        fresh=args.fresh,
        latency=not args.no_latency,
        progress=not args.no_progress,
        jobs=args.jobs,
        executor=args.executor,
        ray_address=args.ray_address,
        checkpoint_dir=args.checkpoint_dir,
        deadline=deadline,
    )
    return result.exit_code
