"""Model and suite registry: plain dicts filled by decorators (after timm's ``_registry.py``).

A model is added by one decorated builder in one file of ``architectures/``::

    @register_model(params=732_376, macs=38_918_400)
    def mobilenet_v2_050(**kwargs) -> HandPoseNet:
        \"\"\"MobileNetV2 0.5 keypoint baseline: head 6.3% of the backbone's MACs.\"\"\"
        return _create_mobilenet_v2(0.5, **kwargs)

The builder's name is exactly what the CLI takes. ``params``/``macs`` are the expected figures of the
*deployable* form at ``input_shape`` (batch included); a test rebuilds every model and compares.

Two kinds of model:

* **Trainable** (the default): a hand-pose network that the train stage and the suites train. It has this
  interface (``architectures.hand_pose.HandPoseNet`` is one way to provide it):

  - ``forward(depth)`` takes a depth frame ``(B, 1, H, W)`` in millimetres and, in training mode, returns a dict
    with ``"keypoints"`` ``(B, K, 2)`` (x, y in input pixels), ``"heatmaps"`` ``(B, K, H/4, W/4)`` logits, and the
    auxiliary outputs ``"seg"`` ``(B, 1, h, w)`` hand-mask logits, ``"visibility"`` ``(B, K)`` logits,
    ``"keypose"`` ``(B, NUM_KEYPOSES)`` logits and ``"handedness"`` ``(B, 1)`` logit
    (K and NUM_KEYPOSES from ``effbench.data.skeleton``);
  - ``deployable()`` returns the deployed network: a module that shares the model's weights (not a copy), holds
    no auxiliary parameter, and returns only ``"keypoints"`` and ``"heatmaps"``. It is what is profiled, gated,
    and trained when auxiliary tasks are off; the auxiliary heads' parameters sit in the model's ``aux``.

* **Profile-only** (``profile_only=True``): any ``nn.Module`` that takes one tensor of ``input_shape``: reference
  networks of other tasks (ImageNet classifiers, MLPerf Tiny's models). ``bench.py list`` marks them; they are
  profiled, reported and gated like any model (in their ``deployable()`` form if they have one), and never
  trained: training one is a usage error, and training suites leave them out of their runs.
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
    profile_only: bool = False  # not a trainable hand-pose model: profiled and gated, never trained


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

    def trainable_models(self) -> list[str]:
        """The suite's models that its training runs cover: all but the profile-only ones."""
        return [n for n in self.models() if not model_info(n).profile_only]


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
    profile_only: bool = False,
) -> Any:
    """Register a model builder under its function name; usable bare or with metadata keywords.

    Args:
        fn: The builder, when used bare (``@register_model``).
        input_shape: The input the model is profiled at, batch included.
        params: Expected parameters of the deployable form (checked by a test).
        macs: Expected MACs of the deployable form at ``input_shape`` (checked by a test).
        tags: Free labels, e.g. ``("reference",)``.
        profile_only: The model is not a trainable hand-pose network (module docstring): profile and gate it,
            never train it.

    Raises:
        ValueError: If the name is already registered.
    """

    def decorate(builder: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        name = builder.__name__
        if name in _models:
            raise ValueError(f"model {name!r} is registered twice")
        doc = (builder.__doc__ or "").strip()
        _models[name] = ModelInfo(name, builder, tuple(input_shape), params, macs, tuple(tags), doc, profile_only)
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


def trainable_info(name: str) -> ModelInfo:
    """The registry entry of ``name``, which must be a trainable model.

    Raises:
        UsageError: If no model has that name, or it is registered profile-only.
    """
    info = model_info(name)
    if info.profile_only:
        trainable = [n for n in list_models() if not _models[n].profile_only]
        raise UsageError(
            f"model {name!r} is profile-only (not a hand-pose network): it can be profiled and gated, not trained; "
            f"trainable models: {', '.join(trainable)}"
        )
    return info


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
