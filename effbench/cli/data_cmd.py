"""``bench.py data``: build the synthetic hand data set's cache, measure the generator, or draw a preview.

Examples: ``bench.py data --preview 16 --out previews/`` (PNG grid of frames with their labels),
``bench.py data --split train --size 20000`` (build the cache), ``bench.py data --fps 512`` (frames/s).
"""

from __future__ import annotations

import argparse


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("data", help="build, time or preview the synthetic depth hand data", description=__doc__)
    p.add_argument("--split", default="val", help="train, val or test (default: val)")
    p.add_argument("--size", type=int, default=None, help="frames in the split (default: the preview count, or 1000)")
    p.add_argument("--seed", type=int, default=0, help="base seed (default: 0)")
    p.add_argument("--preview", type=int, default=None, metavar="N", help="draw the first N frames into a PNG grid")
    p.add_argument("--out", default="data_preview", help="folder for the preview PNG (default: data_preview/)")
    p.add_argument("--fps", type=int, default=None, metavar="N", help="time the generation of N frames, no cache")
    p.add_argument("--cache-dir", default=None, help="cache folder (default: $EFFBENCH_CACHE or ~/.cache/effbench)")
    p.add_argument("--height", type=int, default=None, help="frame height (default: 120)")
    p.add_argument("--width", type=int, default=None, help="frame width (default: 160)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    import time
    from pathlib import Path

    from effbench.data import SyntheticHands
    from effbench.data.dataset import generate_frames, worker_pool
    from effbench.data.preview import save_preview
    from effbench.data.scene import SceneConfig
    from effbench.errors import UsageError

    config = {k: v for k, v in (("height", args.height), ("width", args.width)) if v is not None}
    for name in ("size", "preview", "fps"):
        value = getattr(args, name)
        if value is not None and value < 1:
            raise UsageError(f"--{name} must be a positive number of frames, got {value}")
    if args.fps:
        cfg = SceneConfig(**config)
        pool = worker_pool(args.fps)
        workers = pool._max_workers if pool is not None else 1
        try:
            generate_frames(min(64 * workers, args.fps), 1, cfg, pool)  # warm-up (and worker start-up)
            start, cpu = time.perf_counter(), time.process_time()
            generate_frames(args.fps, 2, cfg, pool)
            dt, cpu = time.perf_counter() - start, time.process_time() - cpu
        finally:
            if pool is not None:
                pool.shutdown()
        print(f"generated {args.fps} frames of {cfg.height}x{cfg.width} in {dt:.2f} s with {workers} process(es): "
              f"{args.fps / dt:.0f} frames/s" + ("" if pool else f" ({args.fps / cpu:.0f} per CPU-second)"))
    if args.preview or not args.fps:
        size = args.size or args.preview or 1000
        ds = SyntheticHands(args.split, size, args.seed, cache_dir=args.cache_dir, **config)
        print(f"{ds}: cached at {ds.cache_path}")
        if args.preview:
            n = min(args.preview, len(ds))
            path = Path(args.out) / f"synthetic_{args.split}_s{args.seed}_{n}.png"
            save_preview([ds[i] for i in range(n)], path)
            print(f"preview of {n} frames: {path}")
    return 0
