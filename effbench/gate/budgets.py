"""Budgets: what each model may cost, read from ``[tool.effbench.budgets]`` in pyproject.toml or an effbench.toml.

The format (every key optional; in ``effbench.toml`` the table may also be written ``[budgets]``)::

    [tool.effbench.budgets]
    reference = "mobilenet_v2_100"        # max_latency_ratio divides by this model's latency, same run
    latency = "warn"                      # "warn" (default) or "error", for every model below
    baseline = "effbench-baseline.json"   # relative to this file; this is the default
    tolerance = { hz_1t = 0.3 }           # relative slack against the baseline, per metric

    [tool.effbench.budgets.tiny_hand]     # a model name, or a wildcard: [tool.effbench.budgets."mobilenet_v2_*"]
    max_mflops = 35
    max_weight_kb_fp32 = 299.99
    min_hz_1t = 50
    tolerance = { mflops = 0.01 }         # overrides the file-wide tolerance for this model

Budgets are inclusive bounds (a value exactly at its budget passes); units are those of
:mod:`effbench.gate.metrics` (KB = 1000 bytes). When several entries match a model, wildcard entries apply in
file order and an entry with the exact name applies last, each overriding the keys it sets.

Every mistake is a :class:`~effbench.errors.UsageError` (exit 2) naming the file, the line where it can be
found, and the valid choices.
"""

from __future__ import annotations

import fnmatch
import re
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from effbench.errors import UsageError, closest
from effbench.gate.metrics import BUDGET_KEYS, HARD_METRICS, METRICS

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

#: File names looked for, in order, when no ``--budgets`` is given.
DEFAULT_FILES: tuple[str, ...] = ("effbench.toml", "pyproject.toml")
DEFAULT_BASELINE = "effbench-baseline.json"
LATENCY_MODES = ("warn", "error")
#: Keys of the file-wide table that are settings, not model entries.
SETTINGS = ("reference", "latency", "baseline", "tolerance")
#: Keys a model entry may hold besides its budgets.
ENTRY_SETTINGS = ("latency", "tolerance")


@dataclass(frozen=True)
class ModelBudget:
    """The merged budget of one model.

    Attributes:
        model: The model name.
        limits: Budget key (``max_mflops``...) -> bound, in the metric's unit.
        latency: ``warn`` or ``error``: what a latency violation does.
        tolerance: Metric name -> relative slack against the baseline (absent: 0 for counts and bytes,
            no baseline check for latency).
        patterns: The entries that matched, in the order they applied.
    """

    model: str
    limits: dict[str, float] = field(default_factory=dict)
    latency: str = "warn"
    tolerance: dict[str, float] = field(default_factory=dict)
    patterns: tuple[str, ...] = ()

    def needs_latency(self) -> bool:
        """Whether checking this model needs a latency measurement."""
        return any(METRICS[BUDGET_KEYS[k][0]].kind == "latency" for k in self.limits) or any(
            METRICS[m].kind == "latency" for m in self.tolerance
        )

    def latency_metrics(self) -> list[str]:
        """The latency metrics this model's budgets and tolerances name (``hz_1t``, ``latency_ratio_1t_ort``...)."""
        names = [BUDGET_KEYS[k][0] for k in self.limits] + list(self.tolerance)
        return list(dict.fromkeys(m for m in names if METRICS[m].kind == "latency"))

    def runtimes(self) -> list[str]:
        """The runtimes those latency metrics are timed under (``eager``, ``ort``...)."""
        return list(dict.fromkeys(METRICS[m].runtime for m in self.latency_metrics()))

    def baseline_metrics(self) -> tuple[str, ...]:
        """Metrics compared with the baseline: every count and byte metric, and latency ones given a tolerance."""
        return HARD_METRICS + tuple(m for m in METRICS if m not in HARD_METRICS and m in self.tolerance)


@dataclass(frozen=True)
class Budgets:
    """A parsed budgets file.

    Attributes:
        path: The file it came from.
        entries: Model name or wildcard -> its table, in file order.
        reference: Model that ``max_latency_ratio`` is measured against, or None.
        latency: File-wide default for ``latency``.
        tolerance: File-wide tolerances.
        baseline: Where the baseline JSON lives.
        lines: Entry or ``entry.key`` -> line number in the file, for error messages.
        baseline_set: Whether the file names its baseline (then a missing baseline file is an error, not a default
            that was never written).
    """

    path: Path
    entries: dict[str, dict[str, Any]]
    reference: str | None = None
    latency: str = "warn"
    tolerance: dict[str, float] = field(default_factory=dict)
    baseline: Path | None = None
    lines: dict[str, int] = field(default_factory=dict)
    baseline_set: bool = False

    def where(self, key: str) -> str:
        """``file:line`` for an entry or ``entry.key``, or just the file when the line is unknown."""
        line = self.lines.get(key) or self.lines.get(key.rsplit(".", 1)[0])
        return f"{self.path}:{line}" if line else str(self.path)

    def resolve(self, known: Iterable[str]) -> list[ModelBudget]:
        """Check every entry against the known model names and merge the entries of each model.

        Args:
            known: Every model that can be gated (registered and ``--module``), in the order to report them.

        Returns:
            One merged budget per model that some entry matches, in ``known`` order.

        Raises:
            UsageError: An exact name that is not a known model, a wildcard that matches none, or a
                ``reference`` that is not a known model.
        """
        known = list(dict.fromkeys(known))
        matched: dict[str, list[str]] = {}
        for pattern in self.entries:
            names = [n for n in known if fnmatch.fnmatchcase(n, pattern)] if _is_wildcard(pattern) else (
                [pattern] if pattern in known else [])
            if not names:
                what = "pattern" if _is_wildcard(pattern) else "model"
                hint = "matches no known model" if _is_wildcard(pattern) else "is not a known model"
                raise UsageError(f"{self.where(pattern)}: budget {what} {pattern!r} {hint}; {closest(pattern, known)}")
            for name in names:
                matched.setdefault(name, []).append(pattern)
        if self.reference is not None and self.reference not in known:
            raise UsageError(f"{self.where('reference')}: reference model {self.reference!r} is not a known model; "
                             f"{closest(self.reference, known)}")
        return [self._merge(name, matched[name]) for name in known if name in matched]

    def _merge(self, model: str, patterns: list[str]) -> ModelBudget:
        # Wildcards first in file order, then the exact name, so the most specific entry wins.
        order = [p for p in patterns if _is_wildcard(p)] + [p for p in patterns if not _is_wildcard(p)]
        limits: dict[str, float] = {}
        tolerance = dict(self.tolerance)
        latency = self.latency
        for pattern in order:
            entry = self.entries[pattern]
            limits.update({k: v for k, v in entry.items() if k in BUDGET_KEYS})
            tolerance.update(entry.get("tolerance", {}))
            latency = entry.get("latency", latency)
        return ModelBudget(model, limits, latency, tolerance, tuple(order))


def _is_wildcard(pattern: str) -> bool:
    return any(c in pattern for c in "*?[")


def find_budgets_file(explicit: str | Path | None = None, cwd: Path | None = None) -> Path:
    """The budgets file to use: ``explicit``, else effbench.toml, else a pyproject.toml that has budgets.

    Raises:
        UsageError: If ``explicit`` does not exist, or no default file holds budgets.
    """
    if explicit is not None:
        path = Path(explicit)
        if not path.is_file():
            raise UsageError(f"budgets file {str(path)!r} does not exist")
        return path
    for name in DEFAULT_FILES:
        path = cwd / name if cwd is not None else Path(name)  # relative, so messages stay short
        if path.is_file() and (name != "pyproject.toml" or _budgets_table(_parse(path), path) is not None):
            return path
    raise UsageError(f"no budgets found: give --budgets FILE, or add [tool.effbench.budgets] to pyproject.toml "
                     f"or an effbench.toml in {cwd or Path.cwd()}")


def _parse(path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as err:
        # The message carries "(at line N, column M)"; put the line where editors and CI logs link it.
        match = re.search(r"at line (\d+)", str(err))
        where = f"{path}:{match.group(1)}" if match else str(path)
        raise UsageError(f"{where}: malformed TOML: {err}") from None
    except (OSError, UnicodeDecodeError) as err:
        raise UsageError(f"cannot read budgets file {str(path)!r}: {err}") from None


def _budgets_table(doc: Mapping[str, Any], path: Path) -> dict[str, Any] | None:
    table = doc.get("tool", {}).get("effbench", {}).get("budgets")
    if table is None and path.name != "pyproject.toml":
        table = doc.get("budgets")
    return table


def load_budgets(path: str | Path) -> Budgets:
    """Parse and validate a budgets file (model names are checked later, by :meth:`Budgets.resolve`).

    Raises:
        UsageError: Malformed TOML (with its line), no budgets table, an unknown key (with the valid keys),
            or a value of the wrong type.
    """
    path = Path(path)
    doc = _parse(path)
    table = _budgets_table(doc, path)
    where_table = "[tool.effbench.budgets]" if path.name == "pyproject.toml" else "[budgets] or [tool.effbench.budgets]"
    if table is None:
        raise UsageError(f"{path}: no {where_table} table")
    text = path.read_text(encoding="utf-8")
    _check_outer_keys(doc, path, text)
    lines = _line_numbers(text)
    budgets = Budgets(path, {}, lines=lines)

    def fail(key: str, message: str) -> None:
        raise UsageError(f"{budgets.where(key)}: {message}")

    entries: dict[str, dict[str, Any]] = {}
    settings: dict[str, Any] = {}
    for key, value in table.items():
        if isinstance(value, dict) and key != "tolerance":
            entries[key] = value
        elif key in SETTINGS:
            settings[key] = value
        else:
            fail(key, f"unknown budgets setting {key!r}; valid settings: {', '.join(SETTINGS)}, "
                      "or a table per model name or wildcard")

    reference = settings.get("reference")
    if reference is not None and not isinstance(reference, str):
        fail("reference", f"reference must be a model name (a string), got {reference!r}")
    latency = _check_latency(settings.get("latency", "warn"), "latency", fail)
    tolerance = _check_tolerance(settings.get("tolerance", {}), "tolerance", fail)
    baseline_setting = settings.get("baseline", DEFAULT_BASELINE)
    if not isinstance(baseline_setting, str):
        fail("baseline", f"baseline must be a file path (a string), got {baseline_setting!r}")
    baseline = path.parent / baseline_setting

    valid_keys = list(BUDGET_KEYS) + list(ENTRY_SETTINGS)
    for pattern, entry in entries.items():
        for key, value in entry.items():
            here = f"{pattern}.{key}"
            if key == "latency":
                _check_latency(value, here, fail)
            elif key == "tolerance":
                _check_tolerance(value, here, fail)
            elif key not in BUDGET_KEYS:
                fail(here, f"unknown budget key {key!r} for {pattern!r}; {closest(key, valid_keys)}")
            elif isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
                fail(here, f"{pattern}.{key} must be a number >= 0, got {value!r}")
    return Budgets(path, entries, reference, latency, tolerance, baseline, lines, baseline_set="baseline" in settings)


def _check_outer_keys(doc: Mapping[str, Any], path: Path, text: str) -> None:
    """Reject keys outside the budgets table that effbench would otherwise ignore: anything but ``budgets`` in
    ``[tool.effbench]``, and in an effbench.toml anything but ``budgets`` and ``[tool.effbench]`` at the top (a
    ``latncy = "error"`` above ``[budgets]`` belongs to no table effbench reads).

    Raises:
        UsageError: Naming the file, the line and the key.
    """
    ours = doc.get("tool", {}).get("effbench", {})
    unknown = [f"tool.effbench.{k}" for k in ours if k != "budgets"]
    if path.name != "pyproject.toml":
        unknown += [k for k in doc if k not in ("budgets", "tool")]
        unknown += [f"tool.{k}" for k in doc.get("tool", {}) if k != "effbench"]
    if unknown:
        key = unknown[0]
        line = _line_of(text, key.rsplit(".", 1)[-1])
        where = f"{path}:{line}" if line else str(path)
        raise UsageError(f"{where}: unknown key {key!r} outside the budgets table; settings such as latency, "
                         f"reference, baseline and tolerance go inside [budgets] (or [tool.effbench.budgets])")


def _line_of(text: str, key: str) -> int | None:
    """The first line that assigns ``key`` or opens a table named by it (best effort, for messages)."""
    pattern = re.compile(rf"""^\s*(?:\[+[^\]]*?)?["']?{re.escape(key)}["']?\s*(?:=|\]|\.)""")
    for number, line in enumerate(text.splitlines(), start=1):
        if pattern.match(line):
            return number
    return None


def _check_latency(value: Any, key: str, fail: Any) -> str:
    if value not in LATENCY_MODES:
        fail(key, f"{key} must be one of {', '.join(map(repr, LATENCY_MODES))}, got {value!r}")
    return value


def _check_tolerance(value: Any, key: str, fail: Any) -> dict[str, float]:
    if not isinstance(value, dict):
        fail(key, f"{key} must be a table of metric = relative tolerance, got {value!r}")
    for metric, tol in value.items():
        if metric not in METRICS:
            fail(key, f"unknown metric {metric!r} in {key}; {closest(metric, METRICS)}")
        if isinstance(tol, bool) or not isinstance(tol, (int, float)) or tol < 0:
            fail(key, f"{key}.{metric} must be a number >= 0 (0.1 = 10%), got {tol!r}")
    return dict(value)


def _line_numbers(text: str) -> dict[str, int]:
    """Best-effort line numbers of each entry's header and of the keys inside it (TOML parsers keep none)."""
    lines: dict[str, int] = {}
    current: str | None = None
    # [budgets], [tool.effbench.budgets], and either followed by .name, ."pattern*" or .'pattern*'
    header = re.compile(r"^\s*\[\s*(?:tool\s*\.\s*effbench\s*\.\s*)?budgets"
                        r"""(?:\s*\.\s*(?P<name>"[^"]*"|'[^']*'|[^\]\s]+))?\s*\]""")
    any_header = re.compile(r"^\s*\[")
    assignment = re.compile(r'^\s*(?P<key>"[^"]*"|\'[^\']*\'|[A-Za-z0-9_\-]+)\s*=')
    in_budgets = False
    for number, line in enumerate(text.splitlines(), start=1):
        m = header.match(line)
        if m:
            in_budgets = True
            current = m.group("name").strip("\"'") if m.group("name") else None
            if current is not None:
                lines.setdefault(current, number)
            continue
        if any_header.match(line):
            in_budgets = False
            continue
        a = assignment.match(line)
        if in_budgets and a:
            key = a.group("key").strip("\"'")
            if current is None:
                lines.setdefault(key, number)  # a file-wide setting, or an inline-table model entry
            else:
                lines.setdefault(f"{current}.{key}", number)
    return lines
