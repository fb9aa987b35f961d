"""Training-loader throughput vs a decode-only baseline, same files, same process.

    python benchmarks/data_throughput.py [--data DIR] [--img-size 128] [--workers 0 1 2] [--images 800]
                                         [--draft-upscale 1.25] [--rounds 5]

The baseline opens each file with PIL and converts it to RGB (the least any loader must do).
The loader does that plus the training augmentation (resized crop, flip, JPEG, blur, colour
jitter), normalisation and batching. Goal: loader >= 0.7x the baseline per worker. Rounds are
interleaved (baseline, loader, baseline, ...) and the median is reported, so a noisy neighbour
on a shared machine hits both sides alike; the ms/img columns show where the gap is.
``--draft-upscale`` sets ``AugmentConfig.draft_upscale`` (reduced JPEG decoding; 1.25 lets a
256 px image be decoded at 128 px for 128 px crops).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import torch

from dflib.data import AugmentConfig, DeepfakeDataset, make_loader, resolve_data_dir, train_transform
from dflib.data.stats import decode_throughput, loader_throughput


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default="", help="Dataset folder (default: embedded sample)")
    ap.add_argument("--split", default="Train")
    ap.add_argument("--img-size", type=int, default=128)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--workers", type=int, nargs="+", default=[0, 1])
    ap.add_argument("--images", type=int, default=640, help="images per measurement")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--draft-upscale", type=float, default=AugmentConfig().draft_upscale,
                    help="AugmentConfig.draft_upscale (default: %(default)s)")
    args = ap.parse_args(argv)

    torch.set_num_threads(1)  # per-worker comparison: one core for the main-process loader too
    root = resolve_data_dir(args.data)
    per_class = max(1, args.images // 2)
    transform = train_transform(args.img_size, AugmentConfig(draft_upscale=args.draft_upscale))
    ds = DeepfakeDataset(root, args.split, transform, limit_per_class=per_class)
    paths = ds.paths
    print(f"data: {root} ({args.split}, {len(ds)} images, {args.img_size} px output, "
          f"batch {args.batch_size}); torch {torch.__version__}, {torch.get_num_threads()} thread(s)")
    print(f"loader: {transform!r}")
    decode_throughput(paths[:32])  # warm the page cache and the codecs

    print(f"{'workers':>7} {'baseline img/s':>15} {'loader img/s':>13} {'loader/worker':>14} "
          f"{'baseline ms/img':>16} {'worker ms/img':>14} {'ratio/worker':>13}")
    worst = float("inf")
    for w in args.workers:
        loader = make_loader(ds, args.batch_size, train=True, num_workers=w)
        base, load = [], []
        for _ in range(args.rounds):
            base.append(decode_throughput(paths))
            load.append(loader_throughput(loader, warmup=not load))
        b, l = statistics.median(base), statistics.median(load)
        per_worker = l / max(w, 1)
        ratio = per_worker / b
        worst = min(worst, ratio)
        print(f"{w:>7} {b:>15.0f} {l:>13.0f} {per_worker:>14.0f} {1e3 / b:>16.3f} {1e3 / per_worker:>14.3f} "
              f"{ratio:>13.2f}")
        del loader
        time.sleep(0.2)
    print(f"worst ratio per worker: {worst:.2f} (goal >= 0.70) -> {'PASS' if worst >= 0.7 else 'FAIL'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
