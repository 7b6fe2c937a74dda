"""Pareto plots: accuracy (an error, lower is better) against one cost per plot, on a log cost axis.

Each model appears twice, trained without and with auxiliary tasks, joined by an arrow (off -> on); the
non-dominated front over all points is drawn as a line. Labels are placed greedily so that none overlaps
another label, a marker or an arrow. Figures have a fixed size and dpi, so every PNG is
``FIGSIZE * DPI`` pixels (no tight bounding box, which would make the size depend on the labels).
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from dataclasses import dataclass

import matplotlib
import numpy as np

matplotlib.use("Agg")  # headless: no display on CI machines; must precede pyplot's import
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402
from matplotlib.transforms import Bbox  # noqa: E402

#: Figure size in inches and resolution: every PNG is 960 x 640 pixels.
FIGSIZE: tuple[float, float] = (9.6, 6.4)
DPI = 100
PNG_SIZE: tuple[int, int] = (round(FIGSIZE[0] * DPI), round(FIGSIZE[1] * DPI))

# Label offsets tried in turn, in points from the anchor: near first, then further out; right before left
# because the front runs from the upper left to the lower right and labels to the right of it read better.
_DIRECTIONS = ((1, 0), (1, 1), (1, -1), (0, 1), (0, -1), (-1, 0), (-1, 1), (-1, -1))
_RADII = (7, 14, 24, 36, 50)


@dataclass(frozen=True)
class Point:
    """One (model, aux) point: its cost, its error (seed mean) and the error's spread over seeds."""

    model: str
    aux: bool
    cost: float
    error: float
    error_std: float = 0.0


def pareto_front(costs: Sequence[float], errors: Sequence[float]) -> list[int]:
    """Indices of the non-dominated points, ordered by cost, both to be minimised.

    A point is dominated when another is no worse in both and strictly better in one. Identical points do
    not dominate each other, so both stay on the front.

    Args:
        costs: Cost of each point (x).
        errors: Error of each point (y), same length.

    Returns:
        Indices into the inputs, in increasing cost (and decreasing error).
    """
    if len(costs) != len(errors):
        raise ValueError(f"costs and errors differ in length: {len(costs)} != {len(errors)}")
    order = sorted(range(len(costs)), key=lambda i: (costs[i], errors[i], i))
    front: list[int] = []
    best = math.inf
    for i in order:
        last = front[-1] if front else None
        if errors[i] < best:
            front.append(i)
            best = errors[i]
        elif last is not None and costs[i] == costs[last] and errors[i] == errors[last]:
            front.append(i)
    return front


def _overlaps(box: Bbox, others: np.ndarray) -> float:
    """Total overlapping area of ``box`` with ``others``, rows of (x0, y0, x1, y1) (0 when free)."""
    if not len(others):
        return 0.0
    w = np.minimum(box.x1, others[:, 2]) - np.maximum(box.x0, others[:, 0])
    h = np.minimum(box.y1, others[:, 3]) - np.maximum(box.y0, others[:, 1])
    return float(np.sum(np.clip(w, 0, None) * np.clip(h, 0, None)))


def _place_labels(ax, anchors: list[tuple[float, float]], texts: list[str], colors: list, obstacles: list[Bbox]):
    """Greedy label placement: for each label, the first offset whose box overlaps nothing placed so far.

    Candidates go round the anchor at growing radii; a box must also stay inside the axes. When no candidate
    is free, the one with the least overlap wins. Labels further than the first ring get a thin leader line.
    """
    fig = ax.figure
    renderer = fig.canvas.get_renderer()
    inside = ax.get_window_extent(renderer)
    blocked = np.array([b.extents for b in obstacles], dtype=float).reshape(-1, 4)
    pt = fig.dpi / 72.0
    for (x, y), text, color in zip(anchors, texts, colors):
        ann = ax.annotate(text, (x, y), xytext=(0, 0), textcoords="offset points", fontsize=8, color=color)
        best = None
        for radius in _RADII:
            for dx, dy in _DIRECTIONS:
                norm = math.hypot(dx, dy)
                off = (radius * dx / norm, radius * dy / norm)
                ann.set_ha({1: "left", 0: "center", -1: "right"}[dx])
                ann.set_va({1: "bottom", 0: "center", -1: "top"}[dy])
                ann.xyann = off
                box = ann.get_window_extent(renderer).padded(1.5 * pt)
                outside = box.x0 < inside.x0 or box.x1 > inside.x1 or box.y0 < inside.y0 or box.y1 > inside.y1
                cost = _overlaps(box, blocked) + (1e9 if outside else 0.0)
                if best is None or cost < best[0]:
                    best = (cost, off, ann.get_ha(), ann.get_va(), box, radius)
                if cost == 0:
                    break
            if best[0] == 0:
                break
        _, off, ha, va, box, radius = best
        ann.xyann = off
        ann.set_ha(ha)
        ann.set_va(va)
        if radius > _RADII[1]:
            ax.annotate("", (x, y), xytext=off, textcoords="offset points",
                        arrowprops={"arrowstyle": "-", "color": color, "lw": 0.5, "alpha": 0.6})
        blocked = np.vstack([blocked, np.asarray(box.extents, dtype=float)[None]])


def plot_pareto(
    points: Sequence[Point],
    *,
    xlabel: str,
    ylabel: str,
    title: str,
    models: Sequence[str] | None = None,
) -> bytes:
    """Draw one Pareto plot and return it as PNG bytes (written by the caller, atomically).

    Args:
        points: One point per (model, aux) that has both a cost and an error.
        xlabel: Cost axis title, with its unit (the axis is logarithmic).
        ylabel: Error axis title, with its unit.
        title: Figure title.
        models: Model order for colours (defaults to first appearance in ``points``).

    Returns:
        The PNG file's bytes, exactly :data:`PNG_SIZE` pixels.
    """
    models = list(models or dict.fromkeys(p.model for p in points))
    # tab10, then Dark2: strong colours only (tab20's light halves are hard to read as text).
    palette = list(plt.get_cmap("tab10").colors) + list(plt.get_cmap("Dark2").colors)
    color_of = {m: palette[i % len(palette)] for i, m in enumerate(models)}
    fig, ax = plt.subplots(figsize=FIGSIZE, dpi=DPI)
    try:
        ax.set_xscale("log")
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        fig.suptitle(title, fontsize=11, y=0.975)
        ax.grid(True, which="both", alpha=0.25)
        # Layout before drawing: label placement works in display coordinates, which a later layout would move.
        fig.subplots_adjust(left=0.09, right=0.97, top=0.88, bottom=0.1)
        if not points:
            ax.text(0.5, 0.5, "no successful runs to plot", transform=ax.transAxes, ha="center", va="center")
            ax.set_xlim(1, 10)
        else:
            _draw(ax, points, models, color_of)
        buf = io.BytesIO()
        # No metadata: the same inputs give the same bytes (the report is rebuilt byte for byte).
        fig.savefig(buf, format="png", dpi=DPI, metadata={"Software": None})
        return buf.getvalue()
    finally:
        plt.close(fig)


def _draw(ax, points: Sequence[Point], models: list[str], color_of: dict) -> None:
    for p in points:
        color = color_of[p.model]
        face = color if p.aux else "white"
        ax.errorbar([p.cost], [p.error], yerr=[p.error_std] if p.error_std else None, fmt="o", ms=7,
                    mfc=face, mec=color, ecolor=color, elinewidth=0.8, capsize=2, zorder=3)
    front = pareto_front([p.cost for p in points], [p.error for p in points])
    ax.plot([points[i].cost for i in front], [points[i].error for i in front], "--", color="0.35", lw=1.2, zorder=2)
    # Margins so labels near the edge still fit: half a decade left and right, 12% of the range up and down.
    xs, ys = [p.cost for p in points], [p.error for p in points]
    ax.set_xlim(min(xs) / 2.2, max(xs) * 2.2)
    span = (max(ys) - min(ys)) or max(abs(max(ys)), 1.0) * 0.2
    ax.set_ylim(min(ys) - 0.15 * span, max(ys) + 0.15 * span)
    by_model: dict[str, dict[bool, Point]] = {}
    for p in points:
        by_model.setdefault(p.model, {})[p.aux] = p
    for name, pair in by_model.items():
        if False in pair and True in pair:
            a, b = pair[False], pair[True]
            ax.annotate("", (b.cost, b.error), xytext=(a.cost, a.error), zorder=2.5,
                        arrowprops={"arrowstyle": "-|>", "color": color_of[name], "lw": 1.0,
                                    "shrinkA": 4, "shrinkB": 4, "mutation_scale": 9})
    handles = [
        Line2D([], [], marker="o", ls="", mfc="white", mec="0.3", label="aux off"),
        Line2D([], [], marker="o", ls="", mfc="0.3", mec="0.3", label="aux on (arrow: off -> on)"),
        Line2D([], [], ls="--", color="0.35", label="non-dominated front"),
    ]
    # Above the axes, not in them: wherever it sat inside, some suite's points would fall under it.
    legend = ax.legend(handles=handles, loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=3, fontsize=8,
                       frameon=False)
    ax.figure.canvas.draw()
    to_px = ax.transData.transform
    obstacles: list[Bbox] = [legend.get_window_extent(ax.figure.canvas.get_renderer())]
    pad = 6.0
    for p in points:
        (px, py), = to_px([(p.cost, p.error)])
        obstacles.append(Bbox([[px - pad, py - pad], [px + pad, py + pad]]))
    # Lines a label should not cover: the off -> on arrows, the error bars, the front; sampled as small boxes.
    segments = [(pair[False], pair[True]) for pair in by_model.values() if False in pair and True in pair]
    segments += [(points[a], points[b]) for a, b in zip(front, front[1:])]
    lines = [to_px([(a.cost, a.error), (b.cost, b.error)]) for a, b in segments]
    lines += [to_px([(p.cost, p.error - p.error_std), (p.cost, p.error + p.error_std)]) for p in points if p.error_std]
    for (x0, y0), (x1, y1) in lines:
        steps = max(1, int(math.hypot(x1 - x0, y1 - y0) / 5))
        for k in range(steps + 1):
            cx, cy = x0 + k / steps * (x1 - x0), y0 + k / steps * (y1 - y0)
            obstacles.append(Bbox([[cx - 2, cy - 2], [cx + 2, cy + 2]]))
    names = [m for m in models if m in by_model]
    anchors = [(by_model[m].get(True) or by_model[m][False]) for m in names]
    _place_labels(ax, [(p.cost, p.error) for p in anchors], names, [color_of[m] for m in names], obstacles)
