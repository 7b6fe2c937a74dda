"""``bench.py report --runs DIR --out DIR``: rebuild the report (tables, Pareto plots, results files) from a
results store alone, byte for byte what the suite run wrote from the same store.

A record or profile that cannot be read is left out: the report is built from the others, the unreadable files and
the runs they held are named, and the exit code is 1."""

from __future__ import annotations

import argparse


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("report", help="rebuild a suite's report from its results store", description=__doc__)
    p.add_argument("--runs", required=True, help="results store folder (e.g. reports/embedded/runs)")
    p.add_argument("--out", required=True, help="where report.md, results.csv/json and pareto_*.png go")
    p.add_argument("--metric", default="epe_px", choices=("epe_px", "err3d_mm"), help="accuracy in the Pareto plots")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    import sys

    from effbench.report import build_report

    built = build_report(args.runs, args.out, metric=args.metric)
    for path, why in built["bad_files"]:
        print(f"warning: left out {path}: {why}; delete it, or rerun its suite to write it again", file=sys.stderr)
    if built["left_out"]:
        print(f"warning: the report leaves out {len(built['left_out'])} run(s): {', '.join(built['left_out'])}",
              file=sys.stderr)
    print(f"report: {args.out}/report.md ({len(built['files'])} files; {built['failed']} failed stage(s))")
    return 1 if built["bad_files"] else 0
