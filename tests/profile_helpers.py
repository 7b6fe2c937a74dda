"""One profile per registered model for the whole test session, shared by the tests that need it.

Profiling every model costs seconds each; the model tests, the counter-coverage test and the MLPerf Tiny tests all
read the same figures, so they are computed once (deployable form, registered input shape, no latency, no peers).
"""

from __future__ import annotations

import functools

import torch

from effbench import profile
from effbench.profiler import Profile
from effbench.registry import create_model, model_info


@functools.cache
def deployed_profile(name: str) -> Profile:
    """The profile of a registered model's deployable form at its registered input shape."""
    torch.manual_seed(0)
    model = create_model(name)
    if callable(getattr(model, "deployable", None)):
        model = model.deployable()
    return profile(model, model_info(name).input_shape, latency=False, peers=False, name=name)
