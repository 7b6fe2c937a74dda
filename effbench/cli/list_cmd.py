"""``bench.py list``: registered models (with their expected size, and whether they train) and suites."""

from __future__ import annotations

import argparse

#: Widths the text columns wrap at, so that both tables fit in 120 columns.
DESCRIPTION_WIDTH = 36
SUITE_MODELS_WIDTH = 56
SUITE_ABOUT_WIDTH = 48


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("list", help="list registered models and suites", description=__doc__)
    p.add_argument("pattern", nargs="?", default="*", help="wildcard over model names (default: all)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from tabulate import tabulate

    from effbench import registry
    from effbench.errors import UsageError, closest

    names = registry.list_models(args.pattern)
    if not names:
        raise UsageError(f"no model matches {args.pattern!r}; {closest(args.pattern, registry.list_models())} "
                         "(a pattern may use * and ?, e.g. 'tiny_hand*')")
    rows = []
    for name in names:
        info = registry.model_info(name)
        kind = "profile-only" if info.profile_only else "trainable"
        rows.append([name, "x".join(map(str, info.input_shape)), info.params, info.macs, kind, info.doc.split("\n")[0]])
    print(tabulate(rows, headers=["model", "input", "params", "MACs", "kind", "description"], intfmt=",",
                   maxcolwidths=[None] * 5 + [DESCRIPTION_WIDTH]))
    print()
    suites = [registry.get_suite(s) for s in registry.list_suites()]
    print(tabulate([[s.name, ", ".join(s.models()), s.doc] for s in suites], headers=["suite", "models", "about"],
                   maxcolwidths=[None, SUITE_MODELS_WIDTH, SUITE_ABOUT_WIDTH]))
    return 0
