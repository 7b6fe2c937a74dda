"""``SyntheticHands``: the procedural depth hand data set, generated once per (split, size, seed, config) and
cached on disk in shards with a manifest.

Cache layout: ``<cache_dir>/synthetic-<split>-n<size>-s<seed>-<key>/`` holding ``manifest.json`` (generator
version, split, seed, size, shard size, full scene config, and the SHA-256 and frame count of every shard) and
``shard-00000.pt`` ... (``torch.save`` of a dict of tensors). A cache whose manifest does not match what is
asked for (a stale generator version or config) or whose shards fail their checksum or do not load (corrupt or
truncated) is rebuilt, never silently used. A cache is written to a temporary folder and renamed into place, so an
interrupted build leaves nothing half-written.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from effbench.data.scene import GENERATOR_VERSION, SceneConfig, generate
from effbench.errors import UsageError, closest

log = logging.getLogger(__name__)

SPLITS: tuple[str, ...] = ("train", "val", "test")
#: Frames per shard file, and per rendering batch inside a shard (bounds the renderer's memory).
SHARD_SIZE = 1024
RENDER_BATCH = 128
#: Keys of an item, in the contract's order; ``mask`` and ``visibility`` are stored as uint8 on disk.
ITEM_KEYS: tuple[str, ...] = (
    "depth", "joints_3d", "keypoints_2d", "visibility", "mask", "keypose", "handedness", "intrinsics", "has_hand",
)
_STORED_AS_UINT8 = ("mask", "visibility")


def default_cache_dir() -> Path:
    """``$EFFBENCH_CACHE`` or ``~/.cache/effbench``."""
    return Path(os.environ.get("EFFBENCH_CACHE") or Path.home() / ".cache" / "effbench")


def shard_seed(seed: int, split: str, shard: int) -> int:
    """The torch seed of one shard: split and shard mixed into the user's seed, so splits never share a stream."""
    state = np.random.SeedSequence([int(seed), SPLITS.index(split), int(shard), 0x4A4E44]).generate_state(2)
    return int(state[0]) << 32 | int(state[1])


def generate_frames(n: int, seed: int, config: SceneConfig) -> dict[str, torch.Tensor]:
    """``n`` frames from one seed, rendered in batches; the item keys stacked (N, ...)."""
    g = torch.Generator().manual_seed(seed)
    parts = []
    # One intra-op thread: the renderer runs many mid-sized ops, for which thread hand-offs cost more than they
    # gain, badly so when the cores are shared (measured ~3x faster on 1 thread than 2 on a busy 2-core machine).
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        for start in range(0, n, RENDER_BATCH):
            out = generate(min(RENDER_BATCH, n - start), g, config)
            out.pop("clean_depth")
            parts.append(out)
    finally:
        torch.set_num_threads(threads)
    return {k: torch.cat([p[k] for p in parts]) for k in ITEM_KEYS}


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            h.update(block)
    return h.hexdigest()


class SyntheticHands(Dataset):
    """Seeded, deterministic synthetic egocentric depth frames of hands with 2D/3D and auxiliary labels.

    Items are dicts (see DESIGN/contract): ``depth`` (1, H, W) float32 mm, ``joints_3d`` (21, 3) mm camera frame,
    ``keypoints_2d`` (21, 2) px, ``visibility`` (21,) 0/1, ``mask`` (1, H, W) 0/1, ``keypose`` int64 0..8 (-1 no
    hand), ``handedness`` int64 0 left / 1 right (-1 no hand), ``intrinsics`` (4,) fx, fy, cx, cy,
    ``has_hand`` bool.

    Args:
        split: "train", "val" or "test"; each split draws from its own seeds, so splits are disjoint.
        size: number of frames.
        seed: base seed; the same (split, size, seed, config) gives the same bytes.
        cache_dir: where shards are cached (default: :func:`default_cache_dir`).
        rebuild: regenerate even if a valid cache exists.
        **config: :class:`effbench.data.scene.SceneConfig` fields (height, width, background, noise, ...).
    """

    def __init__(
        self,
        split: str = "train",
        size: int = 1000,
        seed: int = 0,
        cache_dir: str | os.PathLike | None = None,
        rebuild: bool = False,
        **config,
    ) -> None:
        if split not in SPLITS:
            raise UsageError(f"unknown split {split!r}; {closest(split, SPLITS)}")
        if int(size) < 1:
            raise UsageError(f"size must be a positive number of frames, got {size!r}")
        fields = SceneConfig.__dataclass_fields__
        for key in config:
            if key not in fields:
                raise UsageError(f"unknown SyntheticHands option {key!r}; {closest(key, fields)}")
        self.split, self.size, self.seed = split, int(size), int(seed)
        self.config = SceneConfig(**config)
        self.intrinsics = self.config.intrinsics
        self.manifest = {
            "generator_version": GENERATOR_VERSION,
            "split": split,
            "seed": self.seed,
            "size": self.size,
            "shard_size": SHARD_SIZE,
            "config": self.config.as_dict(),
        }
        key = hashlib.sha256(json.dumps(self.manifest, sort_keys=True).encode()).hexdigest()[:12]
        root = Path(cache_dir) if cache_dir is not None else default_cache_dir()
        self.cache_path = root / f"synthetic-{split}-n{self.size}-s{self.seed}-{key}"
        data = None if rebuild else self._load()
        #: Whether this construction (re)generated the frames rather than reading a valid cache.
        self.rebuilt = data is None
        if data is None:
            self._build()
            data = self._load()
            if data is None:  # pragma: no cover - only if the disk corrupts what was just written
                raise RuntimeError(f"cache at {self.cache_path} is unreadable right after building it")
        self._data = data

    # --- cache -----------------------------------------------------------------------------------------------
    def _load(self) -> dict[str, torch.Tensor] | None:
        """The cached split, or None (with the reason logged) if it is missing, stale or corrupt."""
        path = self.cache_path / "manifest.json"
        if not path.exists():
            return None
        try:
            manifest = json.loads(path.read_text())
            stale = [k for k, v in self.manifest.items() if manifest.get(k) != v]
            if stale:
                log.warning("cache %s is stale (%s differ); rebuilding", self.cache_path, ", ".join(stale))
                return None
            parts = []
            for shard in manifest["shards"]:
                file = self.cache_path / shard["file"]
                if _sha256(file) != shard["sha256"]:
                    log.warning("cache shard %s fails its checksum; rebuilding", file)
                    return None
                part = torch.load(file, weights_only=True)
                if len(part["depth"]) != shard["frames"]:
                    return None
                parts.append(part)
            data = {k: torch.cat([p[k] for p in parts]) for k in ITEM_KEYS}
        except (OSError, ValueError, KeyError, RuntimeError, TypeError) as err:
            log.warning("cache %s is unreadable (%s); rebuilding", self.cache_path, err)
            return None
        if len(data["depth"]) != self.size:
            return None
        for k in _STORED_AS_UINT8:
            data[k] = data[k].float()
        return data

    def _build(self) -> None:
        self.cache_path.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=".building-", dir=self.cache_path.parent))
        try:
            shards = []
            for i, start in enumerate(range(0, self.size, SHARD_SIZE)):
                n = min(SHARD_SIZE, self.size - start)
                frames = generate_frames(n, shard_seed(self.seed, self.split, i), self.config)
                for k in _STORED_AS_UINT8:
                    frames[k] = frames[k].to(torch.uint8)
                name = f"shard-{i:05d}.pt"
                buf = io.BytesIO()
                torch.save(frames, buf)
                (tmp / name).write_bytes(buf.getvalue())
                shards.append({"file": name, "frames": n, "sha256": hashlib.sha256(buf.getvalue()).hexdigest()})
            manifest = dict(self.manifest, shards=shards)
            (tmp / "manifest.json").write_text(json.dumps(manifest, indent=1, sort_keys=True))
            if self.cache_path.exists():
                shutil.rmtree(self.cache_path)
            os.replace(tmp, self.cache_path)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)

    # --- Dataset ---------------------------------------------------------------------------------------------
    def __len__(self) -> int:
        return self.size

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        if not -self.size <= index < self.size:
            raise IndexError(f"index {index} out of range for {self.size} frames")
        return {k: v[index] for k, v in self._data.items()}

    def tensors(self) -> dict[str, torch.Tensor]:
        """Every item key stacked over the split, (N, ...), for training without a DataLoader."""
        return dict(self._data)

    def __repr__(self) -> str:
        c = self.config
        return f"SyntheticHands(split={self.split!r}, size={self.size}, seed={self.seed}, {c.height}x{c.width})"
