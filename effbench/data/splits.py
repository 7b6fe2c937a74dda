"""A data split as stacked host tensors for training without a DataLoader, kept in the process between runs.

The runs of a suite all train on the same frames; the most recent data set (every split of one seed and scene)
stays cached in the process, so that the second run does not read or render it again.
"""

from __future__ import annotations

import json
from typing import Any, Protocol

from torch import Tensor


class DataSettings(Protocol):
    """Which data set to load: what a :class:`effbench.train.TrainConfig` says about its data."""

    data_seed: int
    data_cache_dir: str | None
    data_config: dict[str, Any]


# The last data set loaded, on the host: (split, size, seed, cache folder, scene JSON) -> split tensors.
_data_cache: dict[tuple, dict[str, Tensor]] = {}


def load_split(split: str, size: int, settings: DataSettings) -> dict[str, Tensor]:
    """A split of :class:`~effbench.data.SyntheticHands`, every item key stacked (N, ...), the mask as uint8 (a
    quarter of its float32 bytes; the trainer turns each batch back into floats).

    Args:
        split: ``train``, ``val`` or ``test``.
        size: Frames in the split.
        settings: The data seed, cache folder and scene overrides (``data_config``).
    """
    import torch

    from effbench.data.dataset import SyntheticHands

    scene = json.dumps(settings.data_config, sort_keys=True)
    key = (split, size, settings.data_seed, settings.data_cache_dir, scene)
    if key not in _data_cache:
        if not any(k[2:] == key[2:] for k in _data_cache):  # another data set: drop the old one's splits
            _data_cache.clear()
        data = SyntheticHands(split, size, settings.data_seed, cache_dir=settings.data_cache_dir,
                              **settings.data_config)
        tensors = data.tensors()
        tensors["mask"] = (tensors["mask"] > 0.5).to(torch.uint8)
        _data_cache[key] = tensors
    return _data_cache[key]
