"""effbench: efficiency benchmarking for tiny neural networks.

The pipeline (DESIGN.md): registry -> profile -> train/evaluate -> report -> gate.
"""

from effbench.errors import UsageError
from effbench.profiler import Profile, profile
from effbench.registry import create_model, get_suite, list_models, list_suites, register_model, register_suite

__version__ = "0.1.0"

__all__ = [
    "Profile",
    "UsageError",
    "create_model",
    "get_suite",
    "list_models",
    "list_suites",
    "profile",
    "register_model",
    "register_suite",
]
