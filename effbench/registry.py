"""Model and suite registry: plain dicts filled by decorators (after timm's ``_registry.py``).

A model is added by one decorated builder in one file of ``architectures/``::

    @register_model(params=732_376, macs=38_918_400)
    def mobilenet_v2_050(**kwargs) -> HandPoseNet:
        \"\"\"MobileNetV2 0.5 keypoint baseline: head 6.3% of the backbone's MACs.\"\"\"
        return _create_mobilenet_v2(0.5, **kwargs)

The builder's name is exactly what the CLI takes. ``params``/``macs`` are the expected figures of the
*deployable* form at ``input_shape`` (batch included); a test rebuilds every model and compares.
"""

from __future__ import annotations

import fnmatch
import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from torch import nn

from effbench.errors import UsageError, closest

#: Default input of the hand-pose task: batch 1, one depth channel, 120 x 160 (docs/conventions.md).
DEFAULT_INPUT_SHAPE: tuple[int, ...] = (1, 1, 120, 160)


@dataclass(frozen=True)
class ModelInfo:
    """What the registry knows of a model besides its builder."""

    name: str
    builder: Callable[..., nn.Module]
    input_shape: tuple[int, ...] = DEFAULT_INPUT_SHAPE  # batch included
    params: int | None = None  # expected parameters of the deployable form
    macs: int | None = None  # expected MACs of the deployable form at input_shape
    tags: tuple[str, ...] = ()
    doc: str = ""


@dataclass(frozen=True)
class Suite:
    """A named list of model patterns and the settings its runs use.

    Attributes:
        name: What ``--suite`` takes.
        patterns: Model names or wildcards, expanded with :func:`list_models` in order.
        reference: The model that latency and cost ratios are reported against.
        settings: Stage settings (training budgets, seeds...), read by the stages that need them.
    """

    name: str
    patterns: tuple[str, ...]
    reference: str | None = None
    settings: dict[str, Any] = field(default_factory=dict)
    doc: str = ""

    def models(self) -> list[str]:
        """The suite's model names, wildcards expanded, in order, without repeats."""
        names: list[str] = []
        for pattern in self.patterns:
            matched = list_models(pattern)
            if not matched:
                raise UsageError(f"suite {self.name!r}: pattern {pattern!r} matches no registered model")
            names += [n for n in matched if n not in names]
        return names


_models: dict[str, ModelInfo] = {}
_suites: dict[str, Suite] = {}
_loaded = False


def register_model(
    fn: Callable[..., nn.Module] | None = None,
    *,
    input_shape: tuple[int, ...] = DEFAULT_INPUT_SHAPE,
    params: int | None = None,
    macs: int | None = None,
    tags: tuple[str, ...] = (),
) -> Any:
    """Register a model builder under its function name; usable bare or with metadata keywords.

    Raises:
        ValueError: If the name is already registered.
    """

    def decorate(builder: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        name = builder.__name__
        if name in _models:
            raise ValueError(f"model {name!r} is registered twice")
        doc = (builder.__doc__ or "").strip()
        _models[name] = ModelInfo(name, builder, tuple(input_shape), params, macs, tuple(tags), doc)
        return builder

    return decorate(fn) if fn is not None else decorate


def register_suite(suite: Suite) -> Suite:
    """Register a suite. Raises ValueError if its name is taken."""
    if suite.name in _suites:
        raise ValueError(f"suite {suite.name!r} is registered twice")
    _suites[suite.name] = suite
    return suite


def _ensure_loaded() -> None:
    # The architectures package registers its models and suites on import; import it on first use so
    # that `effbench` itself stays importable without it.
    global _loaded
    if not _loaded:
        _loaded = True
        importlib.import_module("architectures")


def list_models(pattern: str = "*") -> list[str]:
    """Registered model names matching a shell-style wildcard, sorted."""
    _ensure_loaded()
    return sorted(n for n in _models if fnmatch.fnmatchcase(n, pattern))


def model_info(name: str) -> ModelInfo:
    """The registry entry of ``name``.

    Raises:
        UsageError: If no model has that name (the message lists the closest names).
    """
    _ensure_loaded()
    if name not in _models:
        raise UsageError(f"unknown model {name!r}; {closest(name, _models)}")
    return _models[name]


def create_model(name: str, **kwargs: Any) -> nn.Module:
    """Build a registered model. Keywords that are None are dropped, so empty CLI flags keep defaults."""
    info = model_info(name)
    return info.builder(**{k: v for k, v in kwargs.items() if v is not None})


def list_suites() -> list[str]:
    """Registered suite names, sorted."""
    _ensure_loaded()
    return sorted(_suites)


def get_suite(name: str) -> Suite:
    """The suite called ``name``.

    Raises:
        UsageError: If no suite has that name.
    """
    _ensure_loaded()
    if name not in _suites:
        raise UsageError(f"unknown suite {name!r}; {closest(name, _suites)}")
    return _suites[name]
