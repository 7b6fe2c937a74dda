"""``bench.py gate``: fail when a model outgrows its budget or the committed baseline.

Exit codes: 0 every budget and the baseline hold (latency warnings allowed), 1 a budget or the baseline is
exceeded (or the baseline the budgets name is missing, unless --allow-missing-baseline), 2 a usage or config error
(unknown model or key in the budgets file, malformed file), 3 a file that cannot be read or written (--json FILE).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from effbench.measure import DEFAULT_LIMIT_GB


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "gate",
        help="check models against their budgets and the committed baseline (for CI)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--budgets", metavar="FILE",
                   help="budgets file (default: ./effbench.toml, else [tool.effbench.budgets] in ./pyproject.toml)")
    p.add_argument("--baseline", metavar="FILE",
                   help="baseline JSON (default: the budgets' `baseline` setting, effbench-baseline.json beside them)")
    p.add_argument("--update-baseline", action="store_true",
                   help="write this run's profiles as the new baseline, then check the budgets")
    p.add_argument("--module", action="append", default=[], metavar="PKG.MOD:FACTORY",
                   help="also gate a custom model built by FACTORY() (repeatable); named after the factory")
    p.add_argument("--input-shape", metavar="1,1,120,160",
                   help="input of the --module models, batch included (default 1,1,120,160)")
    p.add_argument("--max-memory-gb", type=float, default=DEFAULT_LIMIT_GB, metavar="GB",
                   help="refuse a --module model whose forward pass at --input-shape needs more memory, estimated "
                   f"before it runs (default {DEFAULT_LIMIT_GB:g})")
    p.add_argument("--allow-missing-baseline", action="store_true",
                   help="pass when the baseline the budgets name does not exist (checked against budgets only)")
    p.add_argument("--format", choices=("text", "markdown"), default="text",
                   help="text for logs, markdown for a pull-request comment")
    p.add_argument("--json", nargs="?", const="-", metavar="FILE",
                   help="JSON for dashboards: alone, on stdout instead of the report; with FILE, written there too")
    p.add_argument("--no-latency", action="store_true", help="skip latency measurement and latency budgets")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from effbench.gate.format import format_json, format_markdown, format_text
    from effbench.gate.runner import run_gate
    from effbench.measure import parse_shape
    from effbench.results import write_atomic

    shape = parse_shape(args.input_shape) if args.input_shape is not None else None
    gate = run_gate(
        args.budgets,
        args.baseline,
        modules=args.module,
        input_shape=shape,
        update_baseline=args.update_baseline,
        latency=not args.no_latency,
        progress=lambda line: print(line, file=sys.stderr, flush=True),
        max_memory_gb=args.max_memory_gb,
        allow_missing_baseline=args.allow_missing_baseline,
    )
    result = gate.result
    baseline = str(gate.baseline_path) if gate.baseline_path else "none"
    header = f"effbench gate: budgets {gate.budgets_path}, baseline {baseline}"
    if gate.baseline_written:
        header += f" (just written: {len(result.models)} models)"
    if args.json is not None:
        text = format_json(result, budgets=str(gate.budgets_path), baseline=baseline,
                           baseline_written=gate.baseline_written)
        if args.json == "-":
            sys.stdout.write(text)
            return result.exit_code
        write_atomic(Path(args.json), text)
    sys.stdout.write(format_markdown(result, header) if args.format == "markdown" else format_text(result, header))
    return result.exit_code
