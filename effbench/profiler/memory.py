"""Peak activation memory as an embedded runtime sees it (MCUNet / TinyEngine; docs/conventions.md).

From a :class:`~effbench.profiler.trace.Trace` of one batch-1 forward pass:

* An activation is a storage that depends on the network input; weights, buffers and constants built inside the
  forward (``torch.arange`` grids...) are not activations, they ship with the weights.
* A view shares its base's storage and costs nothing; an in-place op (``relu_``) writes into its input.
* An elementwise op (activation, BatchNorm, add, mul...) whose input dies at that op and has the output's size
  writes into that input's buffer. This is also how a BatchNorm folded into the convolution before it behaves:
  the convolution writes the normalised result, and no second buffer exists.
* Each buffer lives from the op that creates it to its last use (graph liveness, not Python references); the
  network input is live from the start until its last use, the network outputs until the end. An op output that
  nothing reads (max-pool indices) is not counted.
* A fused op (attention, a recurrent layer) also holds buffers it never returns: its ``Count.scratch`` elements
  (the attention scores, one step's gates; :mod:`effbench.profiler.counting_attention`,
  :mod:`effbench.profiler.counting_recurrent`) are live while it runs, as they would be between the separate
  kernels an embedded runtime runs it as.
* The live bytes at an op are the buffers live across it (its inputs and outputs included) and its scratch; the
  peak is their maximum, reported with the op and module where it sits. Floating-point elements cost 4 bytes at
  fp32 and 1 at int8; other dtypes (indices) their own size in both.
"""

from __future__ import annotations

from dataclasses import dataclass

from effbench.profiler import counting
from effbench.profiler.trace import Trace

#: Ops that may write their output into an input that dies with them.
INPLACE_OK = frozenset(
    counting._ACTIVATIONS + counting._NORMS + [n for n in counting._ARITHMETIC if n not in ("where",)]
)


@dataclass(frozen=True)
class PeakMemory:
    """The peak of live activation bytes and where it sits."""

    bytes_fp32: int
    bytes_int8: int
    op: str  # "aten op @ module name"
    index: int  # position of that op in the trace


def peak_activation(trace: Trace) -> PeakMemory:
    """Compute the peak activation memory of a trace (rules in the module docstring)."""
    events = trace.events
    end = len(events)
    # Buffers are storages; `parent` merges a storage into the buffer an elementwise op wrote it over.
    size: dict[int, tuple[int, int]] = {}  # storage -> (fp32 bytes, int8 bytes)
    born: dict[int, int] = {}
    last: dict[int, int] = {}
    active: set[int] = set()  # storages that depend on the network input
    parent: dict[int, int] = {}

    def root(s: int) -> int:
        while s in parent:
            s = parent[s]
        return s

    def add(ref, at: int) -> None:  # noqa: ANN001
        if ref.storage not in size:
            fp32, int8 = (4, 1) if ref.floating else (ref.itemsize, ref.itemsize)
            size[ref.storage] = (ref.storage_numel * fp32, ref.storage_numel * int8)
            born[ref.storage] = at
        last[ref.storage] = max(last.get(ref.storage, at), at)

    for ref in trace.input_refs:
        add(ref, -1)
        active.add(ref.storage)
    # First pass: raw liveness of every storage.
    for i, ev in enumerate(events):
        for ref in ev.inputs + ev.outputs:
            add(ref, i)
        if any(ref.storage in active for ref in ev.inputs):
            active.update(ref.storage for ref in ev.outputs)
    for ref in trace.output_refs:
        last[ref.storage] = end

    # Second pass, in op order: write an elementwise op's new output over an input buffer that dies here.
    group_last = dict(last)
    for i, ev in enumerate(events):
        if ev.name not in INPLACE_OK or ev.inplace:
            continue
        for out in ev.outputs:
            if out.storage not in active or born[out.storage] != i or out.storage in parent:
                continue
            for inp in ev.inputs:
                r = root(inp.storage)
                if (r in active and r != out.storage and group_last[r] == i and inp.numel == out.numel
                        and size[r] >= size[out.storage] and born[r] < i):  # fmt: skip
                    parent[out.storage] = r
                    group_last[r] = max(group_last[r], last[out.storage])
                    break

    # An output nothing reads (max-pool indices, a statistic BatchNorm returns beside its result) is never
    # materialised by a runtime that knows the graph.
    outputs = {ref.storage for ref in trace.output_refs}
    dead = {s for s in size if born[s] >= 0 and born[s] == last[s] and s not in outputs}
    roots = [s for s in size if s in active and s not in parent and s not in dead]
    timeline = [0] * end
    timeline8 = [0] * end
    for s in roots:
        for i in range(max(born[s], 0), min(group_last[s], end - 1) + 1):
            timeline[i] += size[s][0]
            timeline8[i] += size[s][1]
    for i, ev in enumerate(events):
        if ev.count is not None and ev.count.scratch and any(ref.storage in active for ref in ev.inputs):
            timeline[i] += 4 * ev.count.scratch
            timeline8[i] += ev.count.scratch
    if not timeline:
        return PeakMemory(0, 0, "", -1)
    peak = max(range(end), key=lambda i: timeline[i])
    ev = events[peak]
    where = ev.scope[-1] if ev.scope and ev.scope[-1] else "<root>"
    return PeakMemory(timeline[peak], timeline8[peak], f"{ev.name} @ {where}", peak)
