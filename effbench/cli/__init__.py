"""The command line: ``python bench.py SUBCOMMAND ...``; ``python bench.py --suite NAME`` runs a whole suite.

Each subcommand is one module of this package with ``add_parser(subparsers)`` and ``run(args) -> int``;
heavy imports happen inside ``run`` so that ``--help`` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from effbench.errors import UsageError

#: Subcommand modules, in the order ``--help`` lists them.
COMMANDS: tuple[str, ...] = ("list", "profile", "train", "gate", "run", "report", "data")
#: What a bare ``bench.py --suite NAME`` means.
DEFAULT_COMMAND = "run"


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser, one subparser per module in :data:`COMMANDS`."""
    parser = argparse.ArgumentParser(
        prog="bench.py",
        description="effbench: which tiny network gives the best accuracy for the FLOPs, bytes and milliseconds "
        "your device has, and did this change make it worse?",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(f"effbench.cli.{name}_cmd").add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Parse ``argv`` and run the chosen subcommand; return the process exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0].startswith("-") and argv[0] not in ("-h", "--help") and DEFAULT_COMMAND in COMMANDS:
        argv.insert(0, DEFAULT_COMMAND)
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    try:
        return int(args.run(args) or 0)
    except UsageError as err:
        print(f"error: {err}", file=sys.stderr)
        return err.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
