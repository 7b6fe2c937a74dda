"""The learning curve of a run and the decisions read from it: the best point, plateaus, when to stop.

A run evaluates its validation split every ``eval_every`` steps. :class:`Curve` keeps every point (step, mean
training loss since the last point, validation EPE, wall time), the best validation EPE so far and its step, and
how many evaluations have passed without a real improvement (a relative drop of more than ``min_delta``). A
*plateau* is ``patience`` such evaluations in a row. What a plateau does is the schedule's business
(:func:`effbench.train.loop.lr_at`): under ``"plateau"`` it divides the learning rate by 10, and the run stops at
the plateau after the one that took the rate to its floor; under ``"cosine"`` with ``patience > 0`` it stops the
run. Everything here is plain numbers, so it goes into a checkpoint and a run record as it is.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

#: Relative improvement of the best validation EPE between the last two fifths of a curve above which a run is
#: flagged as still improving at its end.
STILL_IMPROVING = 0.02


@dataclass
class Curve:
    """Validation points of one run and the plateau bookkeeping.

    Args:
        patience: Evaluations without an improvement that make a plateau (0: never).
        min_delta: Relative drop of the validation EPE below the best that counts as an improvement.
    """

    patience: int = 0
    min_delta: float = 0.005
    points: list[dict[str, float]] = field(default_factory=list)
    best_epe: float | None = None
    best_step: int = 0
    since_best: int = 0
    plateaus: int = 0

    def add(self, step: int, train_loss: float | None, val_epe: float | None, wall_s: float) -> bool:
        """Record one evaluation; return whether it is the new best (then the caller keeps these weights).

        A validation EPE of None or NaN (a diverged model) is recorded and never the best.
        """
        self.points.append({"step": step, "train_loss": train_loss, "val_epe_px": val_epe, "wall_s": wall_s})
        if val_epe is None or not math.isfinite(val_epe):
            self.since_best += 1
            return False
        if self.best_epe is None or val_epe < self.best_epe:
            improved = self.best_epe is None or val_epe < self.best_epe * (1.0 - self.min_delta)
            self.best_epe, self.best_step = val_epe, step
            if improved:
                self.since_best = 0
                return True
            self.since_best += 1  # a new best, but too small a step to call the curve still falling
            return True
        self.since_best += 1
        return False

    def plateaued(self) -> bool:
        """Whether the last ``patience`` evaluations brought no improvement; resets the count when so."""
        if self.patience <= 0 or self.since_best < self.patience:
            return False
        self.plateaus += 1
        self.since_best = 0
        return True

    def state_dict(self) -> dict[str, Any]:
        """Everything, as plain numbers and lists (for checkpoints)."""
        return asdict(self)

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> Curve:
        """The inverse of :meth:`state_dict`."""
        return cls(**state)


def still_improving(
    points: list[dict[str, Any]], threshold: float = STILL_IMPROVING, stopped_on_plateau: bool = False
) -> bool | None:
    """Whether a curve still falls at its end: the best validation EPE of its last fifth (by step) is more than
    ``threshold`` below the best of the fifth before. None when there are too few points to tell (fewer than one
    point in each of the two fifths).

    A run that ``stopped_on_plateau`` is not still improving, whatever its fifths say: it ended because its last
    ``patience`` validation points at its lowest learning rate brought no relative gain of ``min_delta``. Its
    late learning-rate drops do lower the EPE inside the last two fifths, which is the schedule working, not a run
    cut short; the fifths rule is for runs that end at their step cap.
    """
    if stopped_on_plateau:
        return False
    valid = [(p["step"], p["val_epe_px"]) for p in points if p.get("val_epe_px") is not None]
    if not valid:
        return None
    last = valid[-1][0]
    fourth = [e for s, e in valid if 0.6 * last < s <= 0.8 * last]
    fifth = [e for s, e in valid if s > 0.8 * last]
    if not fourth or not fifth:
        return None
    return min(fifth) < min(fourth) * (1.0 - threshold)
