"""Loss balancing: how the task losses of multi-task training are summed into the one loss that is minimised.

Three choices (``TrainConfig.balancing``):

- ``fixed``: ``L = sum_i w_i L_i`` with hand-set weights.
- ``uncertainty``: Kendall, Gal, Cipolla, "Multi-Task Learning Using Uncertainty to Weigh Losses for Scene Geometry
  and Semantics", CVPR 2018 (arXiv 1705.07115). Each task has a learnable log-variance ``s_i``;
  ``L = sum_i exp(-s_i) L_i + s_i``. The ``+ s_i`` term stops the weights from collapsing to zero; at the optimum
  ``exp(s_i) = L_i``, so every task contributes about the same. (The paper's regression form has factors 1/2,
  which only rescale ``s_i``; this is the common simplified form.)
- ``gradnorm``: Chen, Badrinarayanan, Lee, Rabinovich, "GradNorm: Gradient Normalization for Adaptive Loss
  Balancing in Deep Multitask Networks", ICML 2018 (arXiv 1711.02257), which the seed paper cites. Learnable
  weights ``w_i``; on the last shared layer W the weighted gradient norms ``G_i = ||grad_W w_i L_i||`` are pulled
  towards ``mean(G) * r_i ** alpha``, where ``r_i`` is task i's inverse training rate ``(L_i / L_i(0))`` divided by
  its mean over tasks: tasks that train slower get larger gradients. The targets are constants (the paper's
  Eq. 2); the weights are renormalised to sum to the task count after every step.

Every balancer is an ``nn.Module``: its learnable scalars are parameters that the trainer adds to the optimiser
(without weight decay) and its state travels in the checkpoint's ``state_dict``.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


class Balancer(nn.Module):
    """Sum task losses into one loss. Subclasses learn their weights or keep them fixed."""

    def __init__(self, tasks: tuple[str, ...]):
        super().__init__()
        self.tasks = tuple(tasks)

    def forward(self, losses: dict[str, Tensor]) -> Tensor:
        """The loss to back-propagate (may include the balancer's own objective)."""
        raise NotImplementedError

    def after_step(self) -> None:
        """Called after each optimiser step (GradNorm renormalises its weights here)."""

    def _stack(self, losses: dict[str, Tensor]) -> Tensor:
        return torch.stack([losses[t] for t in self.tasks])


class FixedWeights(Balancer):
    """``L = sum_i w_i L_i`` with constant weights."""

    def __init__(self, tasks: tuple[str, ...], weights: dict[str, float]):
        super().__init__(tasks)
        self.register_buffer("w", torch.tensor([float(weights[t]) for t in self.tasks]))

    def forward(self, losses: dict[str, Tensor]) -> Tensor:
        return (self.w * self._stack(losses)).sum()



class UncertaintyWeighting(Balancer):
    """Kendall et al. 2018: ``L = sum_i exp(-s_i) L_i + s_i`` with learnable ``s_i`` (log variances), starting at 0."""

    def __init__(self, tasks: tuple[str, ...]):
        super().__init__(tasks)
        self.log_var = nn.Parameter(torch.zeros(len(self.tasks)))

    def forward(self, losses: dict[str, Tensor]) -> Tensor:
        return (torch.exp(-self.log_var) * self._stack(losses) + self.log_var).sum()



class GradNorm(Balancer):
    """Chen et al. 2018: learnable task weights that equalise gradient norms on the last shared layer, scaled by
    each task's relative inverse training rate to the power ``alpha``.

    Args:
        tasks: Task names.
        alpha: Asymmetry; 0 pulls every task to the same gradient norm, larger values favour slow tasks more.
        shared: The weight of the last layer that every task's loss flows through (see :func:`last_shared_parameter`).
    """

    def __init__(self, tasks: tuple[str, ...], alpha: float, shared: Tensor | None = None):
        super().__init__(tasks)
        self.alpha = alpha
        self._shared: list[Tensor] = []  # in a list: a Parameter assigned to a Module attribute would become its own
        if shared is not None:
            self.set_shared(shared)
        self.w = nn.Parameter(torch.ones(len(self.tasks)))
        # L_i(0): the losses of the first step, NaN until then (a buffer, so that a resumed run keeps it).
        self.register_buffer("initial", torch.full((len(self.tasks),), float("nan")))

    @property
    def shared(self) -> Tensor | None:
        """The last shared layer's weight (the model's, not a parameter of the balancer); None until set."""
        return self._shared[0] if self._shared else None

    def set_shared(self, weight: Tensor) -> None:
        """Name the model's last shared layer weight (see :func:`last_shared_parameter`)."""
        self._shared[:] = [weight]

    def forward(self, losses: dict[str, Tensor]) -> Tensor:
        if self.shared is None:
            raise RuntimeError("GradNorm.shared is not set")
        stacked = self._stack(losses)
        if torch.isnan(self.initial).any():
            self.initial.copy_(stacked.detach())
        # ||grad_W L_i|| for the unweighted losses; G_i = w_i ||grad_W L_i|| is then exactly ||grad_W w_i L_i||
        # and differentiable in w_i without a second-order graph.
        norms = []
        for loss in stacked:
            (g,) = torch.autograd.grad(loss, self.shared, retain_graph=True, allow_unused=True)
            norms.append(g.norm() if g is not None else loss.new_zeros(()))
        G = self.w * torch.stack(norms)
        ratio = stacked.detach() / self.initial.clamp_min(1e-8)
        r = ratio / ratio.mean()
        target = (G.mean() * r**self.alpha).detach()
        grad_loss = (G - target).abs().sum()
        # The network is trained on the weighted sum with the weights held constant; the weights only see grad_loss.
        return (self.w.detach() * stacked).sum() + grad_loss

    @torch.no_grad()
    def after_step(self) -> None:
        self.w.clamp_(min=1e-3)
        self.w.mul_(len(self.tasks) / self.w.sum())



def last_shared_parameter(model: nn.Module, losses: dict[str, Tensor]) -> Tensor:
    """The last weight (in registration order, dim > 1) that every task's loss has a gradient through.

    A model may name it instead with a ``gradnorm_layer`` attribute (a module with a ``weight``). Costs one
    gradient pass per task, once.
    """
    named = getattr(model, "gradnorm_layer", None)
    if named is not None:
        return named.weight
    params = [p for p in model.parameters() if p.requires_grad and p.dim() > 1]
    shared = [True] * len(params)
    for loss in losses.values():
        grads = torch.autograd.grad(loss, params, retain_graph=True, allow_unused=True)
        shared = [s and g is not None for s, g in zip(shared, grads)]
    candidates = [p for p, s in zip(params, shared) if s]
    if not candidates:
        raise RuntimeError("GradNorm: no weight is shared by every task")
    return candidates[-1]


def make_balancer(kind: str, tasks: tuple[str, ...], weights: dict[str, float], alpha: float = 1.5) -> Balancer:
    """Build the balancer named ``kind``; a single task always gets fixed weight ``weights[task]``."""
    if len(tasks) == 1 or kind == "fixed":
        return FixedWeights(tasks, weights)
    if kind == "uncertainty":
        return UncertaintyWeighting(tasks)
    if kind == "gradnorm":
        return GradNorm(tasks, alpha)
    raise ValueError(f"unknown balancing {kind!r}")
