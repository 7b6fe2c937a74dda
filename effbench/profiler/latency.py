"""Latency: a timed loop apart from a small Stats object (after pytest-benchmark's ``stats.py``).

The protocol (docs/conventions.md): batch 1, inference mode, after warm-up, on the model as a runtime deploys it:
a copy with every BatchNorm that follows a convolution folded into it (:func:`deployed_copy`), as the memory figure
assumes too; median and p90 over enough runs for a stable median, with the coefficient of variation; on 1 thread
(the embedded-like figure) and on all threads; Hz = 1 / median. The
defaults keep the cost near one second per small model, so a whole suite profiles in seconds: the median of a
few dozen runs is stable to a few percent on an idle machine, and the CV says when it was not. A slow model (or a
busy machine) gets at least 5 timed runs and about a second per thread setting.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor, nn


@dataclass(frozen=True)
class Stats:
    """Summary of raw timing samples, in seconds."""

    samples: tuple[float, ...]

    @classmethod
    def from_samples(cls, samples: list[float]) -> Stats:
        if not samples:
            raise ValueError("no timing samples")
        return cls(tuple(samples))

    @property
    def runs(self) -> int:
        return len(self.samples)

    @property
    def median(self) -> float:
        return statistics.median(self.samples)

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
    """How long to time one model on one thread setting."""

    warmup_s: float = 0.05  # warm up for at least warmup_runs and at least this long...
    warmup_runs: int = 2
    budget_s: float = 0.35  # ...then time at least min_runs and until budget_s has passed...
    min_runs: int = 10
    max_s: float = 1.0  # ...but stop at max_s once min_runs_slow runs are in (a slow model, a busy machine)
    min_runs_slow: int = 5
    max_runs: int = 500


def time_fn(fn: Callable[[], object], config: TimingConfig = TimingConfig()) -> Stats:
    """Warm up, then time ``fn()`` repeatedly; return the Stats of the timed runs."""
    start = time.perf_counter()
    runs = 0
    while runs < config.warmup_runs or (time.perf_counter() - start < config.warmup_s and runs < config.max_runs):
        fn()
        runs += 1
    samples: list[float] = []
    start = time.perf_counter()
    while len(samples) < config.max_runs:
        elapsed = time.perf_counter() - start
        if len(samples) >= config.min_runs and elapsed >= config.budget_s:
            break
        if len(samples) >= config.min_runs_slow and elapsed >= config.max_s:
            break
        t0 = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - t0)
    return Stats.from_samples(samples)


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


def measure(
    model: nn.Module, x: Tensor, threads: int, config: TimingConfig = TimingConfig()
) -> Stats:
    """Time ``model(x)`` in inference mode on ``threads`` threads; torch's thread setting is restored after."""
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(threads)
        with torch.inference_mode():
            return time_fn(lambda: model(x), config)
    finally:
        torch.set_num_threads(before)
