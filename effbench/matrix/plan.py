"""The plan of a training matrix: one :class:`PlannedRun` per training config, with its hash, its estimated cost and
the resources one run takes, runs part-way through first, then longest first (:func:`plan_runs`).

Executors (:mod:`effbench.matrix.local`, :mod:`effbench.matrix.ray_executor`) take the plan as it is: the order
is the order runs start in, so the last runs to start are short ones and the workers finish at about the same time.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from effbench.train.config import AUX_TASKS

#: A GPU run takes a whole GPU: these small models are launch-bound, so several runs could share one, but a whole
#: GPU per run is what every scheduler can give and what keeps two runs' memory apart.
GPUS_PER_RUN = 1.0


@dataclass(frozen=True)
class PlannedRun:
    """One training run of the matrix.

    Attributes:
        config: Its ``TrainConfig``.
        key: The config hash: its record's and checkpoint's name in a results store.
        cost_ms: Estimated training time still to go (steps left x batch x ms per frame): what orders the plan and
            the ETA counts in.
        resources: What one run takes, in Ray's names (``{"CPU": 1}``, or ``{"CPU": 1, "GPU": 1}`` on a GPU).
        tag: ``model aux=... seed=...``, how progress lines and failures name it.
        done_steps: The steps trained in an earlier sitting, which the run resumes after (its checkpoint's).
    """

    config: Any
    key: str
    cost_ms: float
    resources: dict[str, float] = field(default_factory=dict)
    tag: str = ""
    done_steps: int = 0

    @property
    def cost_per_step(self) -> float:
        """Estimated ms of one training step."""
        return self.cost_ms / max(1, self.config.steps - self.done_steps)


def validated(config: Any, check_device: bool = True) -> Any:
    """``config.validate()``; with ``check_device`` False, a ``cuda`` config is checked in every field but the
    device's presence on this machine (a driver that hands its runs to a cluster checks the cluster's GPUs)."""
    if check_device or config.device != "cuda":
        return config.validate()
    config.replace(device="cpu").validate()
    return config


def run_tag(config: Any) -> str:
    """``tiny_hand aux=on seed=0`` (``aux=seg`` for an ablation that trains one auxiliary task alone)."""
    aux = config.aux_tasks if config.aux and config.tasks()[1:] != AUX_TASKS else "on" if config.aux else "off"
    return f"{config.model} aux={aux} seed={config.seed}"


def resources_for(device: str) -> dict[str, float]:
    """What one run takes: one CPU (one intra-op thread), and a GPU for ``cuda``."""
    return {"CPU": 1.0, "GPU": GPUS_PER_RUN} if device == "cuda" else {"CPU": 1.0}


def plan_runs(
    configs: Iterable[Any], frame_cost_ms: Callable[[str], float], done_steps: Callable[[Any], int] | None = None
) -> list[PlannedRun]:
    """The runs of ``configs``, duplicates (same hash) once: those part-way through first, then the longest first
    (ties keep their order). Resuming first means a sitting cut short leaves no more runs half-trained than it found.

    Args:
        configs: Validated ``TrainConfig``\\ s.
        frame_cost_ms: Estimated training ms per frame of a model (:func:`effbench.suite_run.frame_cost_ms`).
        done_steps: The steps a config already has in its checkpoint (:func:`effbench.matrix.driver.resumed_steps`);
            None: every run starts afresh.
    """
    runs: dict[str, PlannedRun] = {}
    for cfg in configs:
        key = cfg.hash()
        if key not in runs:
            done = min(cfg.steps, done_steps(cfg)) if done_steps else 0
            runs[key] = PlannedRun(cfg, key, (cfg.steps - done) * cfg.batch_size * frame_cost_ms(cfg.model),
                                   resources_for(cfg.device), run_tag(cfg), done)
    return sorted(runs.values(), key=lambda r: (r.done_steps == 0, -r.cost_ms))
