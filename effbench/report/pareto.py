"""Pareto plots: accuracy (an error, lower is better) against one cost per plot, on a log cost axis.

Each model appears twice, trained without and with auxiliary tasks, joined by an arrow (off -> on) drawn above
the markers; an arrow shorter than the markers are wide is drawn beside them, so that its direction still shows.
Models of the same cost (an ablation that changes no layer size), or so close that their markers would overlap,
are drawn a few pixels apart, side by side, and the plot says so. The non-dominated front over all points is drawn
as a line. Labels are placed greedily so that none overlaps another label, a marker or an arrow. Figures have a
fixed size and dpi, so every PNG is ``FIGSIZE * DPI`` pixels (no tight bounding box, which would make the size
depend on the labels).
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
#: Pixels between the markers of models of equal cost, and the shortest arrow drawn between a model's two markers
#: (a shorter one is drawn beside them, this long).
_TIE_GAP_PX = 11.0
_MIN_ARROW_PX = 16.0


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
    subtitle: str = "",
) -> bytes:
    """Draw one Pareto plot and return it as PNG bytes (written by the caller, atomically).

    Args:
        points: One point per (model, aux) that has both a cost and an error.
        xlabel: Cost axis title, with its unit (the axis is logarithmic).
        ylabel: Error axis title, with its unit.
        title: Figure title.
        models: Model order for colours (defaults to first appearance in ``points``).
        subtitle: A smaller line under the title (the training budget and seeds).

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
        fig.suptitle(title, fontsize=11, y=0.985)
        if subtitle:
            fig.text(0.5, 0.935, subtitle, ha="center", va="center", fontsize=8.5, color="0.3")
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


def _tie_offsets(x_px: dict[str, float]) -> dict[str, float]:
    """Pixel offset along x of each model drawn (nearly) on top of another one: models whose costs are less than
    :data:`_TIE_GAP_PX` apart on the axis are put side by side, centred on their mean position, in cost order."""
    groups: list[list[str]] = []
    for name in sorted(x_px, key=lambda n: x_px[n]):
        if groups and x_px[name] - x_px[groups[-1][-1]] < _TIE_GAP_PX:
            groups[-1].append(name)
        else:
            groups.append([name])
    offsets = {}
    for names in (g for g in groups if len(g) > 1):
        centre = sum(x_px[n] for n in names) / len(names)
        for k, name in enumerate(names):
            offsets[name] = centre + (k - (len(names) - 1) / 2) * _TIE_GAP_PX - x_px[name]
    return offsets


def _draw(ax, points: Sequence[Point], models: list[str], color_of: dict) -> None:
    # Margins so labels near the edge still fit: half a decade left and right, 12% of the range up and down.
    xs, ys = [p.cost for p in points], [p.error for p in points]
    ax.set_xlim(min(xs) / 2.2, max(xs) * 2.2)
    span = (max(ys) - min(ys)) or max(abs(max(ys)), 1.0) * 0.2
    ax.set_ylim(min(ys) - 0.15 * span, max(ys) + 0.15 * span)
    # Where each point is drawn, in pixels: at its cost and error, moved aside when another model has its cost.
    to_px = ax.transData.transform
    shift = _tie_offsets({p.model: to_px([(p.cost, p.error)])[0][0] for p in points})
    px = [to_px([(p.cost, p.error)])[0] + (shift.get(p.model, 0.0), 0.0) for p in points]
    drawn = [tuple(ax.transData.inverted().transform([xy])[0]) for xy in px]
    for p, (x, y) in zip(points, drawn):
        color = color_of[p.model]
        face = color if p.aux else "white"
        ax.errorbar([x], [y], yerr=[p.error_std] if p.error_std else None, fmt="o", ms=7,
                    mfc=face, mec=color, ecolor=color, elinewidth=0.8, capsize=2, zorder=3)
    front = pareto_front([p.cost for p in points], [p.error for p in points])
    ax.plot([drawn[i][0] for i in front], [drawn[i][1] for i in front], "--", color="0.35", lw=1.2, zorder=2)
    index = {(p.model, p.aux): i for i, p in enumerate(points)}
    by_model: dict[str, dict[bool, Point]] = {}
    for p in points:
        by_model.setdefault(p.model, {})[p.aux] = p
    arrows = []  # pixel end points of each off -> on arrow, for the label placement
    for name, pair in by_model.items():
        if False in pair and True in pair:
            a, b = px[index[(name, False)]], px[index[(name, True)]]
            if math.dist(a, b) < _MIN_ARROW_PX:  # it would hide under the markers: beside them, long enough to see
                direction = 1.0 if b[1] >= a[1] else -1.0
                mid_y = (a[1] + b[1]) / 2
                x = a[0] + (-9.0 if shift.get(name, 0.0) < 0 else 9.0)  # on the side away from a tied neighbour
                a, b = (x, mid_y - direction * _MIN_ARROW_PX / 2), (x, mid_y + direction * _MIN_ARROW_PX / 2)
                shrink = 0.0
            else:
                shrink = 4.5
            start, end = ax.transData.inverted().transform([a, b])
            ax.annotate("", tuple(end), xytext=tuple(start), zorder=4,
                        arrowprops={"arrowstyle": "-|>", "color": color_of[name], "lw": 1.0,
                                    "shrinkA": shrink, "shrinkB": shrink, "mutation_scale": 9})
            arrows.append((a, b))
    handles = [
        Line2D([], [], marker="o", ls="", mfc="white", mec="0.3", label="aux off"),
        Line2D([], [], marker="o", ls="", mfc="0.3", mec="0.3", label="aux on (arrow: off -> on)"),
        Line2D([], [], ls="--", color="0.35", label="non-dominated front"),
    ]
    if shift:
        handles.append(Line2D([], [], ls="", label="equal-cost models side by side"))
    # Above the axes, not in them: wherever it sat inside, some suite's points would fall under it.
    legend = ax.legend(handles=handles, loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=len(handles), fontsize=8,
                       frameon=False)
    ax.figure.canvas.draw()
    obstacles: list[Bbox] = [legend.get_window_extent(ax.figure.canvas.get_renderer())]
    pad = 6.0
    for x, y in px:
        obstacles.append(Bbox([[x - pad, y - pad], [x + pad, y + pad]]))
    # Lines a label should not cover: the off -> on arrows, the error bars, the front; sampled as small boxes.
    lines = list(arrows) + [(px[a], px[b]) for a, b in zip(front, front[1:])]
    lines += [to_px([(x, y - p.error_std), (x, y + p.error_std)]) for p, (x, y) in zip(points, drawn) if p.error_std]
    for (x0, y0), (x1, y1) in lines:
        steps = max(1, int(math.hypot(x1 - x0, y1 - y0) / 5))
        for k in range(steps + 1):
            cx, cy = x0 + k / steps * (x1 - x0), y0 + k / steps * (y1 - y0)
            obstacles.append(Bbox([[cx - 2, cy - 2], [cx + 2, cy + 2]]))
    names = [m for m in models if m in by_model]
    anchors = [drawn[index[(m, True)]] if True in by_model[m] else drawn[index[(m, False)]] for m in names]
    _place_labels(ax, anchors, names, [color_of[m] for m in names], obstacles)
