"""``bench.py profile``: MACs, FLOPs, parameters, bytes, peak activation memory and latency of models.

Registered models are profiled in their deployable form (``model.deployable()`` when they have one) at their
registry input shape; ``--module pkg.mod:factory`` (or ``path/to/file.py:factory``) profiles a model factory,
named after the factory, at ``--input-shape`` (default 1,1,120,160), exactly as ``bench.py gate --module`` gates it.
A MAC is one multiply-accumulate of conv/linear/matmul; FLOPs = 2 x MACs + one per output element of every other
arithmetic op (docs/conventions.md).

Latency is timed under each ``--runtime`` (default eager,ort,ort-int8), every model in this one process run, in
interleaved rounds (one timed window of every model and runtime per round, so that their ratios cancel the
machine's drift), on 1 thread and on all threads, with the GEMM roofline of this core measured in the same run; a
runtime that is not installed is skipped with a line saying so, one that cannot run a model (an export the exporter
refuses) is recorded with its reason and the other models go on.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import textwrap
from typing import Any

from effbench.measure import DEFAULT_LIMIT_GB

RULE = "MACs: multiply-accumulates of conv/linear/matmul. FLOPs = 2 x MACs + 1 per output element of other ops."


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("profile", help="MACs, FLOPs, params, memory and latency of models", description=__doc__)
    src = p.add_argument_group("what to profile (one or more)")
    src.add_argument("--model", action="append", default=[], metavar="NAME", help="registered model (repeatable)")
    src.add_argument("--suite", metavar="NAME", help="every model of a registered suite")
    src.add_argument("--module", action="append", default=[], metavar="PKG.MOD:FACTORY",
                     help="a callable returning an nn.Module, or path/to/file.py:factory (repeatable); named after "
                     "the factory")
    p.add_argument("--input-shape", metavar="B,C,H,W",
                   help="input shape with batch (default: a registered model's own; 1,1,120,160 for --module)")
    p.add_argument("--max-memory-gb", type=float, default=DEFAULT_LIMIT_GB, metavar="GB",
                   help="refuse an input shape whose forward pass needs more memory, estimated before it runs "
                   f"(default {DEFAULT_LIMIT_GB:g})")
    out = p.add_mutually_exclusive_group()
    out.add_argument("--json", action="store_true", help="print the flat rows as JSON")
    out.add_argument("--csv", action="store_true", help="print the flat rows as CSV")
    p.add_argument("--by-module", action="store_true", help="also print the per-module breakdown")
    p.add_argument("--depth", type=int, default=3, help="deepest module level --by-module shows (default 3)")
    p.add_argument("--by-op", action="store_true", help="also print the per-op breakdown and the peer reconciliation")
    p.add_argument("--no-latency", action="store_true", help="skip the latency measurement")
    p.add_argument("--runtime", metavar="NAMES", default=",".join(_default_runtimes()),
                   help="comma-separated runtimes to time: eager, ort (ONNX Runtime fp32), ort-int8 (static int8), "
                   "executorch, executorch-int8 (XNNPACK; pip install -e '.[executorch]') (default: %(default)s)")
    p.add_argument("--reference", metavar="NAME",
                   help="the profiled model that the runtime table's 'x ref' column divides by (default: the "
                   "suite's reference with --suite)")
    p.add_argument("--no-peers", action="store_true", help="skip fvcore, thop and torch FlopCounterMode")
    p.set_defaults(run=run)


def _default_runtimes() -> tuple[str, ...]:
    # Named here without importing the profiler (and torch), so that `--help` answers at once.
    return ("eager", "ort", "ort-int8")


def runtimes_to_time(text: str) -> list[str]:
    """The runtimes ``--runtime`` names that are installed; each one that is not is skipped with a line on stderr.

    Raises:
        UsageError: An unknown runtime name (with the valid ones).
    """
    from effbench.profiler import runtimes

    usable, skipped = runtimes.available(runtimes.parse(text))
    for line in skipped:
        print(f"effbench: {line}", file=sys.stderr)
    return usable


def _targets(args: argparse.Namespace) -> list[Any]:
    """The :class:`effbench.measure.Target` of everything asked for; the models are built when profiled."""
    from effbench import measure, registry
    from effbench.errors import UsageError

    shape = measure.parse_shape(args.input_shape) if args.input_shape is not None else None
    names = list(args.model)
    if args.suite:
        names += [n for n in registry.get_suite(args.suite).models() if n not in names]
    targets = [measure.registered(name, shape) for name in names]  # raises with the closest names
    targets += [measure.from_spec(spec, shape) for spec in args.module]
    if not targets:
        raise UsageError("nothing to profile: give --model NAME, --suite NAME or --module pkg.mod:factory")
    return targets


def run(args: argparse.Namespace) -> int:
    from effbench.errors import UsageError, error_text
    from effbench.measure import profile_targets

    targets = _targets(args)
    reference = _reference(args, targets)
    names = runtimes_to_time(args.runtime)
    latency = bool(names) and not args.no_latency
    in_suite = bool(args.suite) and len(targets) > 1
    rows: list[dict[str, Any]] = []
    profiles = []
    results = profile_targets(targets, args.max_memory_gb, latency=latency, peers=not args.no_peers,
                              runtimes=tuple(names or ("eager",)))
    for target, prof in zip(targets, results):
        if isinstance(prof, Exception):
            # A model failing inside a suite is recorded and the suite goes on; a single model's bad input is a
            # usage error.
            if not in_suite:
                if isinstance(prof, UsageError):
                    raise prof
                raise UsageError(f"{target.name}: {error_text(prof, 200)}") from prof
            rows.append({"model": target.name, "error": error_text(prof, 200)})
            print(f"error: {target.name}: {rows[-1]['error']}", file=sys.stderr)
            continue
        profiles.append(prof)
        rows.append(prof.as_dict())
    if args.json:
        json.dump(rows, sys.stdout, indent=1)
        print()
    elif args.csv:
        keys = list(dict.fromkeys(k for row in rows for k in row))
        writer = csv.DictWriter(sys.stdout, fieldnames=keys, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    else:
        print(summary_table(rows))
        print(table_notes(rows))
        if latency and any(name != "eager" for name in names):
            print(f"\nlatency by runtime (batch 1, median of windows; x ref: the median over {reference}'s under the "
                  "same runtime, same run)" if reference else "\nlatency by runtime (batch 1, median of windows)")
            print(runtime_table(rows, names, reference))
        for prof in profiles:
            print_breakdowns(prof, args)
    return 1 if len(profiles) < len(targets) else 0


def _reference(args: argparse.Namespace, targets: list[Any]) -> str | None:
    """``--reference``, checked to be one of the profiled models; else the suite's reference with ``--suite``."""
    from effbench import registry
    from effbench.errors import UsageError, closest

    names = [t.name for t in targets]
    if args.reference is not None:
        if args.reference not in names:
            raise UsageError(f"--reference {args.reference!r} is not among the profiled models; "
                             f"{closest(args.reference, names)}")
        return args.reference
    return registry.get_suite(args.suite).reference if args.suite else None


def runtime_table(rows: list[dict[str, Any]], names: list[str], reference: str | None = None) -> str:
    """One line per model and runtime: 1-thread median, CV, Hz, ratio to the reference under the same runtime,
    all-threads median, achieved GMAC/s and share of the GEMM roofline, the deployed file's size, the largest output
    difference from eager, and why a runtime could not run the model; the roofline under the table."""
    from tabulate import tabulate

    from effbench.results import runtime_suffix

    by_model = {r["model"]: r for r in rows if "macs" in r}
    table = []
    for r in by_model.values():
        for name in names:
            s = runtime_suffix(name)
            ms, ref = r.get(f"latency_ms_1t{s}"), (by_model.get(reference) or {}).get(f"latency_ms_1t{s}")
            table.append([
                r["model"], name, _f(ms, 3), _f(r.get(f"latency_cv_1t{s}"), 2), _f(r.get(f"hz_1t{s}"), 0),
                None if not ms or not ref else f"{ms / ref:.3f}", _f(r.get(f"latency_ms_mt{s}"), 3),
                _f(r.get(f"gmacs_1t{s}"), 2), _f(r.get(f"roofline_frac_1t{s}"), 1, 100),
                _f(r.get(f"file_bytes{s}"), 1, 1e-3), _f(r.get(f"max_diff{s}"), 5), r.get(f"runtime_error{s}"),
            ])  # fmt: skip
    headers = ["model", "runtime", "ms 1t", "CV 1t", "Hz 1t", "x ref", "ms mt", "GMAC/s 1t", "% roofline", "file KB",
               "max diff", "error"]  # fmt: skip
    from effbench.provenance import describe_machine, machine

    versions = {r.get(f"runtime_version{runtime_suffix(n)}") for r in by_model.values() for n in names} - {None}
    note = f"\nmachine: {describe_machine(machine())}; runtimes: {', '.join(sorted(versions))}."
    roof = next((r.get("roofline_gmacs_1t") for r in by_model.values() if r.get("roofline_gmacs_1t")), None)
    if roof is not None:
        note += (f" GEMM roofline of this core, this run: {roof:.1f} GMAC/s (the faster fp32 matmul of torch and "
                 "ONNX Runtime, 1 thread). max diff: "
                 "largest |output - eager output| on the timed input.")
    return tabulate(table, headers=headers, disable_numparse=True) + note


def _f(value: float | None, digits: int, scale: float = 1.0) -> str | None:
    return None if value is None else f"{value * scale:,.{digits}f}"


def print_breakdowns(prof: Any, args: argparse.Namespace) -> None:
    """The per-module and per-op tables and the peer reconciliation that ``--by-module`` and ``--by-op`` ask for."""
    if args.by_module:
        print(f"\n{prof.name}: by module (depth <= {args.depth})")
        print(module_table(prof, args.depth))
    if args.by_op:
        print(f"\n{prof.name}: by op")
        print(op_table(prof))
        if prof.peers:
            print(f"\n{prof.name}: reconciliation with other counters (their figure per op type, in MACs)")
            print(reconciliation_table(prof))


def _m(v: float | None, scale: float = 1e6, digits: int = 2) -> str | None:
    return None if v is None else f"{v / scale:,.{digits}f}"


def summary_table(rows: list[dict[str, Any]]) -> str:
    """The readable table: one line per model, the counting rule underneath."""
    from tabulate import tabulate

    headers = ["model", "input", "params", "MMACs", "MFLOPs", "weights KB", "peak act KB", "peak at", "ms 1t",
               "Hz 1t", "ms mt", "fvcore M", "thop M", "torch M", "error"]  # fmt: skip
    table = []
    for r in rows:
        if "error" in r and "macs" not in r:
            table.append([r["model"]] + [None] * (len(headers) - 2) + [r["error"]])
            continue
        table.append([
            r["model"], r["input_shape"], f"{r['params']:,}", _m(r["macs"]),
            _m(r["flops"]) + ("+" if r["flops_lower_bound"] else ""),
            _m(r["weight_bytes_fp32"], 1e3, 1), _m(r["peak_act_bytes_fp32"], 1e3, 1), r["peak_act_op"],
            None if r["latency_ms_1t"] is None else f"{r['latency_ms_1t']:.2f}",
            None if r["hz_1t"] is None else f"{r['hz_1t']:.0f}",
            None if r["latency_ms_mt"] is None else f"{r['latency_ms_mt']:.2f}",
            _m(r["macs_fvcore"]), _m(r["macs_thop"]), _m(r["macs_torch"]), None,
        ])  # fmt: skip
    if not any(row[-1] for row in table):
        headers, table = headers[:-1], [row[:-1] for row in table]
    note = RULE + " '+': lower bound (an op had no counting rule). Peak act: fp32, BN folded, liveness."
    return tabulate(table, headers=headers, disable_numparse=True) + "\n" + note


#: All-threads latency this many times the 1-thread one means the threads waited for cores other processes hold.
BUSY_RATIO = 2.0


def table_notes(rows: list[dict[str, Any]]) -> str:
    """What the summary table's less obvious columns mean, and a warning when the all-threads latency says the machine
    is busy."""
    lines = [
        "ms 1t / Hz 1t: median latency at batch 1 on one thread, and its rate; ms mt: the same on all threads.",
        "fvcore M / thop M / torch M: MACs in millions as fvcore, thop and torch's FlopCounterMode (its FLOPs / 2) "
        "count them; --by-op shows where each differs from ours.",
    ]
    slow = [r for r in rows if r.get("latency_ms_1t") and r.get("latency_ms_mt")
            and r["latency_ms_mt"] > BUSY_RATIO * r["latency_ms_1t"]]
    if slow:
        worst = max(slow, key=lambda r: r["latency_ms_mt"] / r["latency_ms_1t"])
        lines.append(
            f"note: on all threads {worst['model']} took {worst['latency_ms_mt']:.2f} ms against "
            f"{worst['latency_ms_1t']:.2f} ms on one ({worst['latency_ms_mt'] / worst['latency_ms_1t']:.0f}x): the "
            "threads wait for cores that other processes hold (a busy machine); compare the 1-thread figures"
        )
    return "\n".join(textwrap.fill(line, 118, subsequent_indent="  ") for line in lines)


def module_table(prof: Any, depth: int) -> str:
    """Per-module MACs and FLOPs (submodules included), down to ``depth`` levels below the root."""
    from tabulate import tabulate

    rows = [
        [m.name or "<root>", m.type, m.calls, f"{m.macs:,}", f"{m.flops:,}"]
        for m in prof.by_module
        if m.depth <= depth
    ]
    return tabulate(rows, headers=["module", "type", "calls", "MACs", "FLOPs"], disable_numparse=True)


def op_table(prof: Any) -> str:
    """Per-aten-op calls, MACs and FLOPs; ops without a counting rule are flagged."""
    from tabulate import tabulate

    rows = [[r.op, r.op_type, r.calls, f"{r.macs:,}", f"{r.flops:,}", "" if r.supported else "NO RULE (0)"]
            for r in prof.by_op]  # fmt: skip
    return tabulate(rows, headers=["op", "type", "calls", "MACs", "FLOPs", ""], disable_numparse=True)


def reconciliation_table(prof: Any) -> str:
    """Our MACs/FLOPs against each peer's figure by op type, and one line per peer explaining the gap."""
    from tabulate import tabulate

    peers = list(prof.peers)
    rows = [
        [r["op_type"], f"{r['macs']:,}", f"{r['flops']:,}"]
        + [None if r[p] is None else f"{r[p]:,.0f}" for p in peers]
        for r in prof.reconciliation()
    ]
    text = tabulate(rows, headers=["op type", "our MACs", "our FLOPs", *peers], disable_numparse=True)
    notes = "\n".join(f"- {p}: {note}" for p, note in prof.peer_notes().items())
    return text + "\n" + notes
