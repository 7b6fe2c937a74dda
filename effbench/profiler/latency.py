"""Latency: a timed loop apart from a small Stats object (after pytest-benchmark's ``stats.py``).

The protocol (docs/conventions.md) follows MLPerf Tiny's single-stream rule: batch 1, inference mode, warm-up, then
several timed windows; the latency is the median of the windows' medians (one busy moment moves one window, not
the figure), reported with p90 and the coefficient of variation over all runs; on 1 thread (the embedded-like
figure) and on all threads; Hz = 1 / median. Eager PyTorch runs the model as a runtime deploys it: a copy with
every BatchNorm that follows a convolution folded into it (:func:`deployed_copy`), as the memory figure assumes
too; the other runtimes are in :mod:`effbench.profiler.runtimes`. The defaults keep the cost near one second per
model and runtime, so a whole suite profiles in a minute or two: the median of a few dozen runs is stable to a few
percent on an idle machine, and the CV says when it was not. A slow model (or a busy machine) gets at least 5
timed runs and about a second per thread setting. Several models are timed in interleaved rounds
(:func:`time_interleaved`), so that their ratios cancel the machine's drift.
"""

from __future__ import annotations

import dataclasses
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import numpy as np
import torch
from torch import nn

K = TypeVar("K")


@dataclass(frozen=True)
class Stats:
    """Summary of raw timing samples, in seconds, taken in one or more windows.

    Attributes:
        samples: Every timed run, in order.
        windows: The number of runs in each window, in order (one window: all the samples).
    """

    samples: tuple[float, ...]
    windows: tuple[int, ...] = ()

    @classmethod
    def from_samples(cls, samples: list[float], windows: list[int] | None = None) -> Stats:
        """Stats of ``samples``; ``windows`` gives the runs per window (their sum must be ``len(samples)``)."""
        if not samples:
            raise ValueError("no timing samples")
        sizes = tuple(windows) if windows else (len(samples),)
        if sum(sizes) != len(samples) or min(sizes) < 1:
            raise ValueError(f"window sizes {sizes} do not split {len(samples)} samples")
        return cls(tuple(samples), sizes)

    @property
    def runs(self) -> int:
        return len(self.samples)

    @property
    def window_medians(self) -> tuple[float, ...]:
        """The median of each window."""
        out, start = [], 0
        for size in self.windows or (self.runs,):
            out.append(statistics.median(self.samples[start : start + size]))
            start += size
        return tuple(out)

    @property
    def median(self) -> float:
        """The median of the windows' medians (MLPerf Tiny single-stream); of all samples for one window."""
        return statistics.median(self.window_medians)

    @property
    def spread(self) -> float:
        """How far the windows' medians lie apart: (slowest - fastest) / median; 0 for one window."""
        meds = self.window_medians
        return (max(meds) - min(meds)) / self.median if self.median > 0 else 0.0

    @property
    def mean(self) -> float:
        return statistics.fmean(self.samples)

    @property
    def stdev(self) -> float:
        return statistics.stdev(self.samples) if self.runs > 1 else 0.0

    @property
    def cv(self) -> float:
        """Coefficient of variation: standard deviation over mean."""
        return self.stdev / self.mean if self.mean > 0 else 0.0

    def quantile(self, q: float) -> float:
        """Linear-interpolated quantile, q in [0, 1] (numpy's default method)."""
        return float(np.quantile(self.samples, q))

    @property
    def p90(self) -> float:
        return self.quantile(0.9)

    @property
    def iqr(self) -> float:
        return self.quantile(0.75) - self.quantile(0.25)


@dataclass(frozen=True)
class TimingConfig:
    """How long to time one model on one thread setting; run counts and times are totals over the windows."""

    warmup_s: float = 0.05  # warm up for at least warmup_runs and at least this long...
    warmup_runs: int = 2
    windows: int = 5  # ...then time this many windows (MLPerf Tiny: five), each one share of what follows...
    budget_s: float = 0.35  # ...at least min_runs in all and until budget_s has passed...
    min_runs: int = 10
    max_s: float = 1.0  # ...but stop at max_s once min_runs_slow runs are in (a slow model, a busy machine)
    min_runs_slow: int = 5
    max_runs: int = 500


def time_fn(fn: Callable[[], object], config: TimingConfig = TimingConfig()) -> Stats:
    """Warm up, then time ``fn()`` in ``config.windows`` windows; return the Stats of the timed runs.

    Each window gets an equal share of the run counts (rounded up, so the totals are minimums) and of the times;
    there are never more windows than ``max_runs``.
    """
    result = time_interleaved({0: fn}, config)[0]
    if isinstance(result, Exception):
        raise result
    return result


def time_interleaved(
    fns: dict[K, Callable[[], object]], config: TimingConfig = TimingConfig()
) -> dict[K, Stats | Exception]:
    """Time several functions in rounds: each round times one window of every function, in an order rotated by one
    each round; return each one's Stats (of ``config.windows`` windows, as :func:`time_fn`'s).

    Why: a shared machine's speed drifts over seconds (another process starts, the clock throttles). Timed one
    after the other, two models' ratio carries that drift; timed in the same rounds, each model's windows sample
    the same moments, so the median of its windows' medians and their ratio cancel it. Each function is warmed up
    once, and again for ``warmup_runs`` runs before each of its windows (the others have run since and evicted its
    data from the caches).

    A function that raises is timed no further; its exception is returned in place of its Stats.
    """
    if not fns:
        return {}
    n_windows = max(1, min(config.windows, config.max_runs))
    share = dataclasses.replace(config, windows=1, min_runs=-(-config.min_runs // n_windows),
                                min_runs_slow=-(-config.min_runs_slow // n_windows),
                                max_runs=max(1, config.max_runs // n_windows), budget_s=config.budget_s / n_windows,
                                max_s=config.max_s / n_windows)
    out: dict[K, Stats | Exception] = {}
    samples: dict[K, list[float]] = {k: [] for k in fns}
    sizes: dict[K, list[int]] = {k: [] for k in fns}
    for key, fn in fns.items():
        try:
            _warm_up(fn, config.warmup_runs, config.warmup_s, config.max_runs)
        except Exception as err:  # noqa: BLE001 - returned for the caller to record; the others go on
            out[key] = err
    keys = list(fns)
    for r in range(n_windows):
        for key in keys[r % len(keys):] + keys[: r % len(keys)]:
            if key in out:
                continue
            try:
                _warm_up(fns[key], config.warmup_runs, 0.0, config.max_runs)
                window = _window(fns[key], share)
            except Exception as err:  # noqa: BLE001
                out[key] = err
                continue
            samples[key] += window
            sizes[key].append(len(window))
    for key in keys:
        out.setdefault(key, Stats.from_samples(samples[key], sizes[key]))
    return {key: out[key] for key in keys}


def _warm_up(fn: Callable[[], object], runs: int, seconds: float, max_runs: int) -> None:
    """Run ``fn`` at least ``runs`` times and for at least ``seconds`` (at most ``max_runs`` times past ``runs``)."""
    start = time.perf_counter()
    done = 0
    while done < runs or (time.perf_counter() - start < seconds and done < max_runs):
        fn()
        done += 1


def _window(fn: Callable[[], object], config: TimingConfig) -> list[float]:
    """One timed window: at least ``min_runs`` runs until ``budget_s`` has passed, or ``min_runs_slow`` runs once
    ``max_s`` has, at most ``max_runs``; the seconds of each run."""
    window: list[float] = []
    start = time.perf_counter()
    while len(window) < config.max_runs:
        elapsed = time.perf_counter() - start
        if len(window) >= config.min_runs and elapsed >= config.budget_s:
            break
        if len(window) >= config.min_runs_slow and elapsed >= config.max_s:
            break
        t0 = time.perf_counter()
        fn()
        window.append(time.perf_counter() - t0)
    return window


class _FoldTracer(torch.fx.Tracer):
    """Traces only down to what BatchNorm folding needs: a module with no conv or BatchNorm inside is one call.

    So a head's Python (a cache keyed on the input size, a loop) runs as written rather than being unrolled into the
    graph at trace time, where a cache lookup would turn into recomputing its value on every call.
    """

    def is_leaf_module(self, m: nn.Module, module_qualified_name: str) -> bool:
        foldable = (nn.modules.conv._ConvNd, nn.modules.batchnorm._BatchNorm, nn.Linear)
        return super().is_leaf_module(m, module_qualified_name) or not any(
            isinstance(sub, foldable) for sub in m.modules()
        )


def deployed_copy(model: nn.Module) -> tuple[nn.Module, bool]:
    """A copy of ``model`` in eval mode with each Conv2d -> BatchNorm2d pair folded into one convolution.

    Every embedded runtime folds BatchNorm before it runs a network, so timing the unfolded graph would charge
    each model for work its deployment never does (on a small CPU an eval-mode BatchNorm costs 15-60 us, a real
    share of a 1 ms net). The folding is torch.fx's (``torch.fx.experimental.optimization.fuse``) on a graph traced
    by :class:`_FoldTracer`; a model that torch.fx cannot trace is timed as it is.

    Returns:
        The module to time, and whether the folding was applied. ``model`` itself is never changed.
    """
    import copy

    from torch.fx.experimental.optimization import fuse

    try:
        root = copy.deepcopy(model).eval()
        graph = _FoldTracer().trace(root)
        return fuse(torch.fx.GraphModule(root, graph), inplace=True, no_trace=True), True
    except Exception:  # untraceable Python control flow: time the original, and say so
        return model, False
