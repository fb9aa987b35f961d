"""Training-loader throughput vs a decode-only baseline, same files, same process.

    python benchmarks/data_throughput.py [--data DIR] [--img-size 128] [--workers 0 1] [--images 512]
                                         [--rounds 7] [--draft-upscale 1.0]

The baseline opens each file with PIL and converts it to RGB (the least any loader must do).
The loader (``two`` stages) is the one the training engine uses on a GPU
(``dflib.data.sampling.make_train_loader(..., batched=True)``): its workers decode, crop + resize to
128 px, flip and JPEG re-compress each image and ship ``uint8`` batches; blur, colour jitter and
normalisation run afterwards, batched, on the device. Goal: loader >= 0.7x the baseline per worker.

For the whole picture the same run also measures
* ``one`` stage: every step in the workers, per image, ``float32`` out (``batched=False``): what
  the engine uses when it trains on the CPU, where the model step, not the loader, sets the pace
  (``benchmarks/train_throughput.py``: under 1 % data wait), and
* ``batch stage``: what the device-side part costs per image when the device is this CPU
  (on a GPU it is a few kernels per batch).

Rounds are interleaved (baseline, loader, baseline, ...); each round's ratio compares two passes
that ran back to back, and the median ratio over the rounds is reported, so a noisy neighbour on a
shared machine hits both sides alike (throughput here drifts by up to 2x within a minute). Each round starts a fresh loader (new worker
processes), because decode speed here differs from one process to the next by up to 1.5x (the
baseline's own process too: compare its column across rows). The ms/img columns show where the
gap is.
``--draft-upscale`` sets ``AugmentConfig.draft_upscale`` (reduced JPEG decoding; 1.25 lets a
256 px image be decoded at 128 px for 128 px crops).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import torch

from dflib.data import AugmentConfig, DeepfakeDataset, resolve_data_dir, train_transform
from dflib.data.io import jpeg_decoder, read_image_tensor
from dflib.data.stats import decode_throughput, loader_throughput
from dflib.data.sampling import make_train_loader


def batch_stage_ms(loader, transform, rounds: int) -> float:
    """Milliseconds per image of ``transform.batch_stage`` on this CPU, over the loader's batches."""
    batches = list(loader)
    times = []
    for _ in range(rounds):
        start, n = time.perf_counter(), 0
        for x8, _, params in batches:
            transform.batch_stage(x8, params)
            n += len(x8)
        times.append((time.perf_counter() - start) / n * 1e3)
    return statistics.median(times)


def tensor_decode_throughput(paths) -> float:
    """Images/s of the loader's own decoding (``read_image_tensor``: file read + JPEG decode)."""
    start = time.perf_counter()
    for p in paths:
        read_image_tensor(p)
    return len(paths) / (time.perf_counter() - start)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default="", help="Dataset folder (default: embedded sample)")
    ap.add_argument("--split", default="Train")
    ap.add_argument("--img-size", type=int, default=128)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--workers", type=int, nargs="+", default=[0, 1])
    ap.add_argument("--images", type=int, default=512, help="images per measurement")
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--draft-upscale", type=float, default=AugmentConfig().draft_upscale,
                    help="AugmentConfig.draft_upscale (default: %(default)s)")
    args = ap.parse_args(argv)

    torch.set_num_threads(1)  # per-worker comparison: one core for the main-process loader too
    root = resolve_data_dir(args.data)
    per_class = max(1, args.images // 2)
    transform = train_transform(args.img_size, AugmentConfig(draft_upscale=args.draft_upscale))
    ds = DeepfakeDataset(root, args.split, None, limit_per_class=per_class)
    paths = ds.paths
    print(f"data: {root} ({args.split}, {len(ds)} images, {args.img_size} px output, "
          f"batch {args.batch_size}); torch {torch.__version__}, {torch.get_num_threads()} thread(s)")
    print(f"loader: {transform!r}")
    decode_throughput(paths[:32])  # warm the page cache and the codecs

    print(f"{'workers':>7} {'stages':>7} {'baseline img/s':>15} {'loader img/s':>13} {'loader/worker':>14} "
          f"{'baseline ms/img':>16} {'worker ms/img':>14} {'ratio/worker':>13}")
    print("(img/s and ms/img: medians over the rounds; ratio/worker: median of the rounds' ratios)")
    worst = float("inf")
    for w in args.workers:
        for batched in (True, False):
            base, load, ratios = [], [], []
            for _ in range(args.rounds):
                loader = make_train_loader(ds, transform, args.batch_size, workers=w, batched=batched)
                for _ in loader:  # start the workers, warm the codecs
                    pass
                base.append(decode_throughput(paths))
                load.append(loader_throughput(loader, warmup=False))
                ratios.append(load[-1] / max(w, 1) / base[-1])
                del loader
            b, l = statistics.median(base), statistics.median(load)
            per_worker = l / max(w, 1)
            ratio = statistics.median(ratios)
            if batched:
                worst = min(worst, ratio)
            print(f"{w:>7} {'two' if batched else 'one':>7} {b:>15.0f} {l:>13.0f} {per_worker:>14.0f} "
                  f"{1e3 / b:>16.3f} {1e3 / per_worker:>14.3f} {ratio:>13.2f}")
            time.sleep(0.2)
    pil, own = [], []
    for _ in range(args.rounds):
        pil.append(decode_throughput(paths))
        own.append(tensor_decode_throughput(paths))
    name = (jpeg_decoder() or ("PIL",))[0]
    print(f"decode only with the loader's own reader ({name}): {1e3 / statistics.median(own):.3f} ms/img, "
          f"{statistics.median(o / b for o, b in zip(own, pil)):.2f}x the baseline's speed "
          f"({1e3 / statistics.median(pil):.3f} ms/img); the rest of a worker's time is crop + resize, flip, "
          f"JPEG and batching")
    stage = batch_stage_ms(make_train_loader(ds, transform, args.batch_size, workers=0, batched=True),
                           transform, args.rounds)
    print(f"batch stage (blur, colour jitter, normalise) on this CPU, 1 thread: {stage:.3f} ms/img "
          f"(runs on the training device, after the loader)")
    print(f"worst ratio per worker (two stages, the engine's loader on a GPU): {worst:.2f} (goal >= 0.70) -> "
          f"{'PASS' if worst >= 0.7 else 'FAIL'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
