"""The command line: ``python bench.py SUBCOMMAND ...``; ``python bench.py --suite NAME`` runs a whole suite.

Each subcommand is one module of this package with ``add_parser(subparsers)`` and ``run(args) -> int``;
heavy imports happen inside ``run`` so that ``--help`` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from effbench.errors import IO_EXIT_CODE, UsageError, io_error_text

#: Subcommand modules, in the order ``--help`` lists them.
COMMANDS: tuple[str, ...] = ("list", "profile", "train", "gate", "run", "report", "data")
#: What a bare ``bench.py --suite NAME`` means.
DEFAULT_COMMAND = "run"
#: Options whose value may start with a dash: argparse would take ``--input-shape -1,1,120,160`` for two options and
#: say "expected one argument"; the value is attached (``--input-shape=-1,...``) so the command can say what is wrong.
DASH_VALUE_OPTIONS: tuple[str, ...] = ("--input-shape",)


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
    argv = _attach_dash_values(list(sys.argv[1:] if argv is None else argv))
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
    except BrokenPipeError:  # `bench.py list | head`: the reader left; say nothing more (as the Python docs advise)
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except OSError as err:  # a folder that cannot be written, a full disk: the user's to fix, not a traceback
        print(f"error: {io_error_text(err)}", file=sys.stderr)
        return IO_EXIT_CODE
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


def _attach_dash_values(argv: list[str]) -> list[str]:
    """``--input-shape -1,1,120,160`` -> ``--input-shape=-1,1,120,160`` (see :data:`DASH_VALUE_OPTIONS`)."""
    out: list[str] = []
    for arg in argv:
        if out and out[-1] in DASH_VALUE_OPTIONS and arg.startswith("-") and arg[1:2].isdigit():
            out[-1] = f"{out[-1]}={arg}"
        else:
            out.append(arg)
    return out
