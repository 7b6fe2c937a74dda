"""Depth hand-pose data: the procedural egocentric renderer (``SyntheticHands``), its splits as stacked tensors
for training (``load_split``, cached in the process), the 2.5D lift, training augmentations and a loader for the
NYU Hand Pose layout. The skeleton (joint order, keypoint subset, keyposes)
is in :mod:`effbench.data.skeleton`.
"""

from effbench.data.augment import augment_batch
from effbench.data.dataset import SyntheticHands, default_cache_dir
from effbench.data.lift import lift_to_2p5d
from effbench.data.nyu import NYUHands
from effbench.data.splits import load_split

__all__ = ["NYUHands", "SyntheticHands", "augment_batch", "default_cache_dir", "lift_to_2p5d", "load_split"]
