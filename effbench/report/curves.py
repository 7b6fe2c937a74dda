"""Learning curves: validation EPE against training steps and against training compute, and the convergence table.

Training compute of a run up to step ``s`` is ``s x batch x 3 x FLOPs per frame`` of the deployable model: one
training frame costs about three forward passes (forward, backward for activations and for weights). The
auxiliary heads are left out of the FLOPs (they are a few percent of a model); the axis compares models, and every
model is charged the same way.
"""

from __future__ import annotations

import io
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from effbench.train.config import AUX_TASKS  # noqa: E402
from effbench.train.curve import still_improving  # noqa: E402

#: Forward-pass equivalents of one training frame (forward + backward through activations and weights).
TRAIN_FLOPS_PER_FORWARD = 3.0


def aux_label(config: dict[str, Any]) -> str:
    """``off``, ``on`` (every auxiliary task) or the trained tasks of an ablation (``on: seg``); ``+ distilled``
    after it for a run with a teacher."""
    distilled = " + distilled" if config.get("teacher") else ""
    if not config.get("aux"):
        return "off" + distilled
    tasks = config.get("aux_tasks")
    if tasks is None or {t.strip() for t in tasks.split(",")} == set(AUX_TASKS):
        return "on" + distilled
    return "on: " + tasks + distilled


def convergence_rows(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per run with a learning curve: model, aux, seed, best and stop step, plateau stop, still improving."""
    rows = []
    for rec in runs:
        curve = rec.get("curve")
        if not curve:
            continue
        cfg, conv = rec["config"], rec.get("convergence") or {}
        rows.append({
            "model": cfg["model"],
            "aux": aux_label(cfg),
            "seed": cfg["seed"],
            "best val EPE px": rec["metrics"].get("val_epe_px"),
            "best step": conv.get("best_step"),
            "stop step": conv.get("stop_step"),
            "cap": cfg["steps"],
            "planned cap": rec.get("planned_steps"),  # a run trained under a lower cap than its budget's now
            "stopped on plateau": conv.get("stopped_on_plateau"),
            "still improving": still_improving(curve, stopped_on_plateau=bool(conv.get("stopped_on_plateau"))),
            "wall s": rec.get("wall_s"),
        })
    return rows


def plot_curves(runs: list[dict[str, Any]], flops_per_frame: dict[str, float], title: str,
                training: list[dict[str, Any]] = ()) -> dict[str, bytes]:
    """``curves_steps.png`` and ``curves_compute.png`` as PNG bytes, by file name (empty without curves; no compute
    plot when no model with a curve has its FLOPs in ``flops_per_frame``): every run with a curve, one colour per
    model, aux off dashed, on solid, each seed its own thin line; the runs part-way through ``training``
    (:func:`effbench.results.store.in_training`) dotted."""
    with_curves = [r for r in runs if r.get("curve")] + [{**t, "training": True} for t in training if t["curve"]]
    if not with_curves:
        return {}
    models = list(dict.fromkeys(r["config"]["model"] for r in with_curves))
    colors = plt.get_cmap("tab10")
    written: dict[str, bytes] = {}
    for stem, xlabel in (("steps", "training steps"),
                         ("compute", "training compute, FLOPs (steps x batch x 3 x FLOPs per frame; log)")):
        fig, ax = plt.subplots(figsize=(9, 5.5))
        labelled = set()
        for rec in with_curves:
            cfg = rec["config"]
            model, aux = cfg["model"], aux_label(cfg)
            scale = 1.0
            if stem == "compute":
                if not flops_per_frame.get(model) or not cfg.get("batch_size"):
                    continue
                scale = cfg["batch_size"] * TRAIN_FLOPS_PER_FORWARD * flops_per_frame[model]
            pts = [(p["step"] * scale, p["val_epe_px"]) for p in rec["curve"] if p.get("val_epe_px") is not None]
            if not pts:
                continue
            key = (model, aux, rec.get("training", False))
            style = ":" if key[2] else "-" if aux != "off" else "--"
            label = f"{model} aux {aux}" + (" (training)" if key[2] else "")
            ax.plot(*zip(*pts), color=colors(models.index(model) % 10), lw=1.0, alpha=0.8, ls=style,
                    label=label if key not in labelled else None)
            labelled.add(key)
        if not labelled:  # the compute plot of models without a profile: nothing to draw
            plt.close(fig)
            continue
        if stem == "compute":
            ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel(xlabel)
        ax.set_ylabel("validation EPE, px (log)")
        ax.set_title(title, fontsize=10)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7, ncol=2, loc="upper right")
        fig.tight_layout()
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=110, metadata={"Software": None})
        plt.close(fig)
        written[f"curves_{stem}.png"] = buf.getvalue()
    return written
