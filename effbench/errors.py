"""Errors that the CLI turns into one clear line and an exit code: 2 for usage and config errors (1 is a failed gate
or a failed model)."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class UsageError(Exception):
    """Bad input from the user: an unknown name, a malformed shape or file. The CLI exits with 2."""

    exit_code = 2


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
