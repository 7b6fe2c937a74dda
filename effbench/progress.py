"""Progress of a whole suite run: per-stage counts, what runs now, and an ETA from measured time only.

One line such as::

    suite embedded: profiled 10/10, trained 12/28, 2 running, 1 failed, ETA 43 min | finished tiny_hand aux=on seed=2

On a terminal the line is redrawn in place (at most a few times a second, never wider than the terminal); anywhere
else (a log file, CI) it is printed as a plain new line when a count changes, and at most once a minute otherwise,
so that logs hold no carriage returns.

The ETA is the time still to go at the pace measured so far: training seconds spent per unit of estimated cost
done, times the estimated cost left (units: the per-run estimates of :mod:`effbench.suite_run`, which weigh a
MobileNet step more than a tiny net's). Nothing else moves it: until some training has been measured there is no
ETA, and an estimate that is off by a constant factor (a slower machine, a busy one) cancels out.
"""

from __future__ import annotations

import shutil
import sys
import time
from collections.abc import Callable
from typing import TextIO

#: Seconds between redraws on a terminal, and between plain lines when nothing was counted in between.
REDRAW_S = 0.25
PLAIN_EVERY_S = 60.0
#: The width a line is fitted to when the stream is not a terminal.
PLAIN_WIDTH = 120


def format_duration(seconds: float) -> str:
    """``42 s``, ``7 min``, ``1 h 24 min``: whole units, as an ETA should read."""
    if seconds < 60:
        return f"{max(0, round(seconds))} s"
    minutes = round(seconds / 60)
    return f"{minutes} min" if minutes < 60 else f"{minutes // 60} h {minutes % 60:02d} min"


class SuiteProgress:
    """Counts, the current stage and the measured ETA of a suite run, written to ``stream`` (stderr).

    Args:
        suite: The suite's name.
        models: Models to profile.
        runs: Training runs to do.
        enabled: False writes nothing (``--no-progress``).
        stream: Where lines go; whether it is a terminal decides redrawn or plain lines.
        clock: Seconds, monotonic (tests pass a fake one).
    """

    def __init__(self, suite: str, models: int, runs: int, *, enabled: bool = True, stream: TextIO | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.suite, self.models, self.runs = suite, models, runs
        self.enabled = enabled
        self.stream = stream if stream is not None else sys.stderr
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.clock = clock
        self.profiled = self.trained = self.running = 0
        self.failed: list[str] = []
        self.now = "starting"
        self.total_cost = self.done_cost = 0.0
        self._train_start: float | None = None
        self._last_draw = -float("inf")
        self._drawn = ""  # the line on screen (terminal) or last printed (plain)

    # --- what happened
    def stage(self, text: str) -> None:
        """Say what the suite is doing now."""
        self.now = text
        self._show(force=not self.tty)

    def profile_done(self, name: str, error: str | None = None) -> None:
        """One more model profiled; ``error`` when it failed."""
        self.profiled += 1
        self.now = f"profiled {name}"
        if error:
            self.fail(f"{name} profile: {error}")
        self._show(force=True)

    def start_training(self, total_cost: float) -> None:
        """Training starts now; ``total_cost`` is the estimated cost of every run still to train."""
        self.total_cost, self.done_cost = float(total_cost), 0.0
        self._train_start = self.clock()

    def advance(self, cost: float) -> None:
        """``cost`` more of the estimate done (a few steps, or the rest of a finished run)."""
        self.done_cost = min(self.total_cost, self.done_cost + cost)
        self._show()

    def set_running(self, n: int) -> None:
        """``n`` runs are training now (on workers that said so)."""
        if n != self.running:
            self.running = n
            self._show(force=True)

    def run_done(self, tag: str, error: str | None = None) -> None:
        """One more training run finished (``tag`` names it); ``error`` when it failed."""
        self.trained += 1
        self.now = f"finished {tag}"
        if error:
            self.fail(f"{tag}: {error}")
        self._show(force=True)

    def note(self, line: str) -> None:
        """Print a line that is not a failure (a runtime that is not installed) on its own line."""
        self._write_above(line)

    def fail(self, line: str) -> None:
        """Record a failure and print it on its own line."""
        self.failed.append(line)
        self._write_above(f"FAILED {line}")

    def close(self) -> None:
        """Leave the last line on screen (terminal) and stop."""
        if self.enabled and self.tty and self._drawn:
            self.stream.write("\n")
            self.stream.flush()
        self.enabled = False

    # --- what is shown
    def eta_s(self) -> float | None:
        """Seconds still to go at the measured pace, or None before any training was measured."""
        if self._train_start is None or self.done_cost <= 0:
            return None
        pace = (self.clock() - self._train_start) / self.done_cost
        return pace * (self.total_cost - self.done_cost)

    def line(self, width: int = PLAIN_WIDTH) -> str:
        """The progress line, at most ``width`` characters: counts and ETA first, then what runs now (cut last)."""
        # Without models to profile (``bench.py train``), ``suite`` names the runs: ``train smoke: trained 1/4 ...``.
        head = f"suite {self.suite}: profiled {self.profiled}/{self.models}, " if self.models else f"{self.suite}: "
        parts = [f"{head}trained {self.trained}/{self.runs}"]
        if self.running:
            parts.append(f"{self.running} running")
        if self.failed:
            parts.append(f"{len(self.failed)} failed")
        eta = self.eta_s()
        if self._train_start is not None and self.trained < self.runs:
            parts.append(f"ETA {format_duration(eta)}" if eta is not None else "ETA after the first steps")
        text = ", ".join(parts) + f" | {self.now}"
        return text if len(text) <= width else text[: width - 3] + "..."

    def _show(self, force: bool = False) -> None:
        if not self.enabled:
            return
        t = self.clock()
        wait = REDRAW_S if self.tty else PLAIN_EVERY_S
        if not force and t - self._last_draw < wait:
            return
        self._last_draw = t
        if self.tty:
            text = self.line(max(20, shutil.get_terminal_size((PLAIN_WIDTH, 24)).columns - 1))
            self.stream.write("\r\x1b[K" + text)
            self._drawn = text
        else:
            text = self.line()
            if text == self._drawn:
                return
            self.stream.write(text + "\n")
            self._drawn = text
        self.stream.flush()

    def _write_above(self, text: str) -> None:
        if not self.enabled:
            return
        if self.tty:
            self.stream.write("\r\x1b[K" + text + "\n" + self._drawn)
        else:
            self.stream.write(text + "\n")
        self.stream.flush()
