"""``bench.py list``: registered models (with their expected size, and whether they train) and suites."""

from __future__ import annotations

import argparse


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("list", help="list registered models and suites", description=__doc__)
    p.add_argument("pattern", nargs="?", default="*", help="wildcard over model names (default: all)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from tabulate import tabulate

    from effbench import registry

    rows = []
    for name in registry.list_models(args.pattern):
        info = registry.model_info(name)
        kind = "profile-only" if info.profile_only else "trainable"
        rows.append([name, "x".join(map(str, info.input_shape)), info.params, info.macs, kind, info.doc.split("\n")[0]])
    print(tabulate(rows, headers=["model", "input", "params", "MACs", "kind", "description"], intfmt=","))
    print()
    suites = [registry.get_suite(s) for s in registry.list_suites()]
    print(tabulate([[s.name, ", ".join(s.models()), s.doc] for s in suites], headers=["suite", "models", "about"]))
    return 0
