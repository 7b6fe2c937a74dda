"""Errors that the CLI turns into one clear line and an exit code: 2 for usage and config errors, 3 for a file that
cannot be read or written (1 is a failed gate or a failed model)."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class UsageError(Exception):
    """Bad input from the user: an unknown name, a malformed shape or file. The CLI exits with 2."""

    exit_code = 2


#: Exit code of a file effbench cannot read or write (permissions, a full disk, a path that is a file).
IO_EXIT_CODE = 3
#: The exit code of a training matrix that its time limit (``--hours``) stopped with runs left to train: a temporary
#: failure (sysexits' EX_TEMPFAIL), meaning "run the same command again"; a failed run still exits 1.
PAUSED_EXIT_CODE = 75


def io_error_text(err: OSError) -> str:
    """One line for a file that could not be read or written: the file, the reason, what to do."""
    where = f"{err.filename}" if err.filename else "a file"
    if getattr(err, "filename2", None):
        where += f" -> {err.filename2}"
    reason = err.strerror or str(err) or type(err).__name__
    return (f"cannot read or write {where}: {reason}; give a path you can write to (e.g. another --out) "
            "and check the disk has space")


def closest(name: str, choices: Iterable[str], n: int = 3) -> str:
    """Return a short "did you mean" phrase listing the closest valid choices, or all of them if few."""
    choices = sorted(choices)
    near = difflib.get_close_matches(name, choices, n=n, cutoff=0.4)
    if near:
        return "closest: " + ", ".join(near)
    shown = ", ".join(choices[:12]) + (", ..." if len(choices) > 12 else "")
    return "valid: " + shown


def error_text(err: BaseException, limit: int = 500) -> str:
    """``ExceptionType: message`` on one line, at most ``limit`` characters: how a record stores a failure."""
    return f"{type(err).__name__}: {' '.join(str(err).split())}"[:limit]
