"""The profile stage: MACs, FLOPs, parameters, weight bytes, peak activation memory and latency of any model.

``effbench.profile(model, input_shape)`` returns a :class:`Profile`; ``Profile.as_dict()`` is one flat row.
The counting rules are in :mod:`effbench.profiler.counting`, the memory rules in :mod:`effbench.profiler.memory`,
the latency protocol in :mod:`effbench.profiler.latency`, the runtimes it times in :mod:`effbench.profiler.runtimes`,
the GEMM roofline in :mod:`effbench.profiler.roofline`, the peer counters in :mod:`effbench.profiler.peers`.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from effbench.errors import UsageError
from effbench.profiler import counting, latency as latency_mod, memory, peers as peers_mod, roofline, runtimes as rt_mod
from effbench.profiler import trace as trace_mod
from effbench.profiler.latency import Stats, TimingConfig
from effbench.profiler.runtimes import RuntimeLatency
from effbench.results.records import runtime_suffix

__all__ = ["ModuleRow", "OpRow", "Profile", "RuntimeLatency", "Stats", "TimingConfig", "UnsupportedOpWarning",
           "default_input", "profile", "time_together"]


class UnsupportedOpWarning(UserWarning):
    """An op ran that has no counting rule: it counted 0 and the profile's FLOPs are a lower bound."""


@dataclass(frozen=True)
class OpRow:
    """One op type's share of the count."""

    op: str
    op_type: str
    calls: int
    macs: int
    flops: int
    supported: bool = True


@dataclass(frozen=True)
class ModuleRow:
    """One module's share of the count, its submodules' ops included (a module called twice counts twice)."""

    name: str  # "" for the root
    type: str
    depth: int
    calls: int
    macs: int
    flops: int


@dataclass
class Profile:
    """Everything the profiler measured of one model at one input shape."""

    input_shape: tuple[int, ...]
    macs: int
    flops: int
    params: int
    params_trainable: int
    peak: memory.PeakMemory
    by_op: list[OpRow]
    by_module: list[ModuleRow]
    unsupported_ops: list[str] = field(default_factory=list)
    runtimes: dict[str, RuntimeLatency] = field(default_factory=dict)  # by runtime name, in the order timed
    roofline_gmacs: float | None = None  # this process run's fp32 GEMM rate on 1 thread (effbench.profiler.roofline)
    peers: dict[str, peers_mod.PeerCount] = field(default_factory=dict)
    name: str | None = None
    warnings: list[str] = field(default_factory=list)  # raised while it was counted (measure.profile_targets)

    @property
    def latency_1t(self) -> Stats | None:
        """Eager PyTorch on 1 thread."""
        return self._eager("latency_1t")

    @property
    def latency_mt(self) -> Stats | None:
        """Eager PyTorch on all threads."""
        return self._eager("latency_mt")

    @property
    def threads_mt(self) -> int | None:
        """The "all threads" setting."""
        return self._eager("threads_mt")

    @property
    def latency_bn_folded(self) -> bool | None:
        """Whether eager PyTorch was timed with BatchNorm folded (latency.deployed_copy)."""
        return self._eager("bn_folded")

    def _eager(self, attr: str) -> Any:
        eager = self.runtimes.get("eager")
        return None if eager is None else getattr(eager, attr)

    @property
    def flops_lower_bound(self) -> bool:
        """True when some op had no counting rule, so MACs/FLOPs may be too low."""
        return bool(self.unsupported_ops)

    def by_type(self) -> dict[str, tuple[int, int]]:
        """Op type -> (MACs, FLOPs)."""
        out: dict[str, tuple[int, int]] = {}
        for row in self.by_op:
            m, f = out.get(row.op_type, (0, 0))
            out[row.op_type] = (m + row.macs, f + row.flops)
        return out

    def reconciliation(self) -> list[dict[str, Any]]:
        """Our MACs/FLOPs and each peer's figure by op type, with a total row."""
        return peers_mod.reconcile(self.by_type(), self.peers)

    def peer_notes(self) -> dict[str, str]:
        """Per peer: its gap to our MACs by op type and what it counts."""
        return peers_mod.explain(self.by_type(), self.peers)

    def as_dict(self) -> dict[str, Any]:
        """One flat row, in base units (counts, bytes, ms, Hz); eager's latency keys None when it was not timed.

        Eager PyTorch's latency keys have no suffix (``latency_ms_1t``, ``hz_1t``), as before runtimes existed; every
        other runtime's carry its name (``latency_ms_1t_ort``, ``hz_1t_ort_int8``, ``file_bytes_ort``), and appear
        only for the runtimes timed.
        """

        def peer(name: str) -> float | None:
            p = self.peers.get(name)
            return None if p is None or p.macs is None else p.macs

        eager = self.runtimes.get("eager") or RuntimeLatency("eager")
        row = {
            "model": self.name,
            "input_shape": "x".join(map(str, self.input_shape)),
            "macs": self.macs,
            "flops": self.flops,
            "params": self.params,
            "params_trainable": self.params_trainable,
            "weight_bytes_fp32": 4 * self.params,
            "weight_bytes_fp16": 2 * self.params,
            "weight_bytes_int8": self.params,
            "peak_act_bytes_fp32": self.peak.bytes_fp32,
            "peak_act_bytes_int8": self.peak.bytes_int8,
            "peak_act_op": self.peak.op,
            **_timing_keys(eager, ""),
            "threads_mt": eager.threads_mt if eager.latency_mt is not None else None,
            "latency_bn_folded": eager.bn_folded,
            "macs_fvcore": peer("fvcore"),
            "macs_thop": peer("thop"),
            "macs_torch": peer("torch"),
            "flops_lower_bound": self.flops_lower_bound,
            "unsupported_ops": ",".join(self.unsupported_ops),
        }
        if self.runtimes:
            row["roofline_gmacs_1t"] = self.roofline_gmacs
            for name, result in self.runtimes.items():
                suffix = runtime_suffix(name)
                if suffix:
                    row.update(_timing_keys(result, suffix))
                row.update(self._rate_keys(result, suffix))
        return row

    def _rate_keys(self, result: RuntimeLatency, suffix: str) -> dict[str, Any]:
        """A runtime's achieved GMAC/s on 1 thread and its fraction of the roofline, its file, version and error."""
        l1 = result.latency_1t
        gmacs = None if l1 is None else self.macs / l1.median / 1e9
        frac = None if gmacs is None or not self.roofline_gmacs else gmacs / self.roofline_gmacs
        return {
            f"gmacs_1t{suffix}": gmacs,
            f"roofline_frac_1t{suffix}": frac,
            f"latency_spread_1t{suffix}": None if l1 is None else l1.spread,
            f"file_bytes{suffix}": result.file_bytes,
            f"max_diff{suffix}": result.max_diff,
            f"runtime_version{suffix}": result.version,
            f"runtime_error{suffix}": result.error,
        }


def _timing_keys(result: RuntimeLatency, suffix: str) -> dict[str, Any]:
    """Median, p90, CV, runs and Hz on 1 thread and on all threads, under keys ending in ``suffix``."""
    l1, lm = result.latency_1t, result.latency_mt

    def ms(v: float | None) -> float | None:
        return None if v is None else v * 1e3

    return {
        f"latency_ms_1t{suffix}": ms(l1 and l1.median),
        f"latency_p90_ms_1t{suffix}": ms(l1 and l1.p90),
        f"latency_cv_1t{suffix}": None if l1 is None else l1.cv,
        f"latency_runs_1t{suffix}": None if l1 is None else l1.runs,
        f"hz_1t{suffix}": None if l1 is None else 1.0 / l1.median,
        f"latency_ms_mt{suffix}": ms(lm and lm.median),
        f"latency_p90_ms_mt{suffix}": ms(lm and lm.p90),
        f"latency_cv_mt{suffix}": None if lm is None else lm.cv,
        f"hz_mt{suffix}": None if lm is None else 1.0 / lm.median,
    }


def _input_shape(shape: Sequence[int]) -> tuple[int, ...]:
    try:
        dims = tuple(int(d) for d in shape)
    except (TypeError, ValueError):
        raise UsageError(f"input shape {shape!r} is not a sequence of integers, e.g. (1, 1, 120, 160)") from None
    if not dims or any(d <= 0 for d in dims):
        raise UsageError(f"input shape {dims} must be positive integers with the batch first, e.g. (1, 1, 120, 160)")
    return dims


def _shorten(err: BaseException, limit: int = 200) -> str:
    lines = [ln.strip() for ln in str(err).strip().splitlines() if ln.strip()]
    text = lines[0] if lines else type(err).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _breakdowns(trace: trace_mod.Trace) -> tuple[list[OpRow], list[ModuleRow], list[str]]:
    ops: dict[str, list[int]] = {}  # name -> [calls, macs, flops]
    unsupported: list[str] = []
    mods: dict[str, list[int]] = {}  # name -> [macs, flops]
    for ev in trace.events:
        c = ev.count or counting.Count()
        row = ops.setdefault(ev.name, [0, 0, 0])
        row[0] += 1
        row[1] += c.macs
        row[2] += c.flops
        if ev.count is None and ev.name not in unsupported:
            unsupported.append(ev.name)
        # A module's figures include its submodules': charge the op to every module on the scope stack, once
        # even if the same module sits twice on it (a module that calls itself).
        for name in dict.fromkeys(ev.scope):
            m = mods.setdefault(name, [0, 0])
            m[0] += c.macs
            m[1] += c.flops
    by_op = [
        OpRow(n, "unsupported" if n in unsupported else counting.category(n), *v, supported=n not in unsupported)
        for n, v in sorted(ops.items(), key=lambda kv: (-kv[1][2], kv[0]))
    ]
    by_module = [
        ModuleRow(n, trace.module_types.get(n, "?"), 0 if not n else n.count(".") + 1, calls, *mods.get(n, [0, 0]))
        for n, calls in _ordered_calls(trace)
    ]
    return by_op, by_module, unsupported


def _ordered_calls(trace: trace_mod.Trace) -> list[tuple[str, int]]:
    # Module order as named_modules() lists them (the model's own structure), only those that ran.
    return [(n, trace.module_calls[n]) for n in trace.module_types if n in trace.module_calls]


def profile(
    model: nn.Module,
    input_shape: Sequence[int],
    *,
    latency: bool = True,
    peers: bool = True,
    threads: int | None = None,
    timing: TimingConfig = TimingConfig(),
    example_input: Tensor | None = None,
    name: str | None = None,
    runtimes: Sequence[str] = ("eager",),
    calibration_dir: str | None = None,
) -> Profile:
    """Profile ``model`` on one input of ``input_shape`` (batch included).

    The model runs in eval mode (the deployed form) and is left as it was: the same training flags, parameters,
    buffers and ``state_dict`` keys, no hooks.

    Args:
        model: Any module; a model returning a dict or tuple works.
        input_shape: Batch first, e.g. ``(1, 1, 120, 160)``.
        latency: Measure latency on 1 thread and on ``threads`` threads, under each of ``runtimes``, and this process
            run's GEMM roofline (measured once per run).
        peers: Also run fvcore, thop and torch's FlopCounterMode on the model.
        threads: The "all threads" setting; default: torch's current ``get_num_threads()``.
        timing: Warm-up and timed-loop lengths.
        example_input: The input to run; default a seeded standard-normal tensor of ``input_shape``.
        name: Stored in the profile and its flat row as ``model``.
        runtimes: Runtime names (:data:`effbench.profiler.runtimes.RUNTIMES`); one that cannot run the model (not
            installed, an export the exporter refuses) is recorded with its reason, and the others still run.
        calibration_dir: Where int8 calibration frames are cached (default: the system temp folder).

    Raises:
        UsageError: If the shape is malformed or the model rejects an input of that shape (its error shortened).
    """
    shape = _input_shape(input_shape)
    x = example_input if example_input is not None else default_input(shape)
    modes = {m: m.training for m in model.modules()}
    try:
        model.eval()
        try:
            tr = trace_mod.record(model, x)
        except Exception as err:
            raise UsageError(f"model rejects input shape {'x'.join(map(str, shape))}: {_shorten(err)}") from err
        by_op, by_module, unsupported = _breakdowns(tr)
        if unsupported:
            warnings.warn(
                f"no counting rule for aten op(s) {', '.join(unsupported)}: counted as 0, MACs/FLOPs are a lower bound",
                UnsupportedOpWarning,
                stacklevel=2,
            )
        params = list(model.parameters())
        result = Profile(
            input_shape=shape,
            macs=sum(r.macs for r in by_op),
            flops=sum(r.flops for r in by_op),
            params=sum(p.numel() for p in params),
            params_trainable=sum(p.numel() for p in params if p.requires_grad),
            peak=memory.peak_activation(tr),
            by_op=by_op,
            by_module=by_module,
            unsupported_ops=unsupported,
            name=name,
        )
        del tr  # the trace holds every intermediate tensor
        if peers:
            result.peers = peers_mod.peer_counts(model, x)
        if latency:
            time_together([(result, model, x)], runtimes=runtimes, threads=threads, timing=timing,
                          calibration_dir=calibration_dir)
        return result
    finally:
        for m, training in modes.items():
            m.training = training


def default_input(input_shape: Sequence[int]) -> Tensor:
    """The input :func:`profile` runs when not given one: seeded standard-normal values of ``input_shape``."""
    return torch.randn(_input_shape(input_shape), generator=torch.Generator().manual_seed(0))


def time_together(
    entries: Sequence[tuple[Profile, nn.Module, Tensor]],
    *,
    runtimes: Sequence[str] = ("eager",),
    threads: int | None = None,
    timing: TimingConfig = TimingConfig(),
    calibration_dir: str | None = None,
) -> None:
    """Time several profiled models under ``runtimes`` in the same interleaved rounds
    (:func:`effbench.profiler.runtimes.measure_together`), into each :class:`Profile`'s ``runtimes`` and
    ``roofline_gmacs``: the way to compare models in one run, since their ratios then cancel the machine's drift.

    Args:
        entries: ``(profile, model, input)`` each: a :func:`profile` made with ``latency=False``, the model it
            profiled (left as it was; timed in eval mode with BatchNorm folded) and the input to time it on.
        runtimes: Runtime names (:data:`effbench.profiler.runtimes.RUNTIMES`).
        threads: The "all threads" setting; default: torch's current ``get_num_threads()``.
        timing: Warm-up and timed-loop lengths.
        calibration_dir: Where int8 calibration frames are cached (default: the system temp folder).
    """
    names = rt_mod.parse(runtimes)
    modes = {m: m.training for _, model, _ in entries for m in model.modules()}
    try:
        models = []
        for _, model, x in entries:
            deployed, folded = latency_mod.deployed_copy(model.eval())
            models.append((deployed, x, folded))
        measured = rt_mod.measure_together(models, names, threads=threads or torch.get_num_threads(), timing=timing,
                                           calibration_dir=calibration_dir)
    finally:
        for m, training in modes.items():
            m.training = training
    gmacs = roofline.roofline_gmacs(1)
    for (prof, _, _), result in zip(entries, measured):
        prof.roofline_gmacs, prof.runtimes = gmacs, result
