"""Training throughput with real data loading vs the model alone, same process, interleaved.

    python benchmarks/train_throughput.py [--models resnet18_w16 sqnxt23_w1 ...] [--img-size 128]
                                          [--batch-size 32] [--steps 12] [--rounds 3] [--workers N]

For each model, both sides run the engine's own training step (``dflib.train.train_one_epoch``:
forward, BCE loss, backward, clipping, AdamW, schedule):

* full: batches come from the engine's training loader for the CPU (``dflib.data.sampling.make_train_loader``
  over ``dflib.data.DeepfakeDataset``) on the embedded sample: JPEG decoding, augmentation,
  normalisation and batching in ``--workers`` loader processes (``--two-stage``: the loader the
  engine uses on a GPU, whose blur, colour jitter and normalisation then run batched in the
  training process);
* model only: the same number of batches, already in memory as finished tensors.

Compute threads follow the engine's CPU policy (the cores the loader workers leave free).

Rounds alternate (model only, full, model only, ...) and the median of each side is reported,
so a noisy neighbour on a shared machine hits both alike. Ratio = full / model only; goal
>= 0.9, i.e. data loading is not the bottleneck. "data wait" is the share of a full round the
training loop spent blocked waiting for a batch: when the ratio is low but the wait is small,
the loader is keeping up and the loss comes from its processes competing with the training
step for the same CPU cores.
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # measure this checkout's dflib, not the installed one

from dflib.data import AugmentConfig, DeepfakeDataset, default_num_workers, resolve_data_dir, train_transform  # noqa: E402
from dflib.data.sampling import finish_batch, make_train_loader  # noqa: E402
from dflib.models import create_model  # noqa: E402
from dflib.runtime import cpu_threads  # noqa: E402
from dflib.training import TrainConfig, build_optimizer, train_one_epoch  # noqa: E402
from dflib.training.run import augment_on_device  # noqa: E402

DEFAULT_MODELS = [
    "resnet18_w16",
    "resnet18_w32",
    "sqnxt23_w1",
    "vit_face_conv_128",
    "vit_face_p8_128",
]  # CPU-sized presets


class Batches:
    """``n`` batches at a time from a loader, continuing across epoch boundaries (persistent workers)."""

    def __init__(self, loader, n: int) -> None:
        self.loader, self.n, self.epoch = loader, n, 0
        self.it = iter(loader)
        self.waited = 0.0  # seconds the training loop spent blocked on the loader

    def _next(self):
        start = time.perf_counter()
        try:
            return next(self.it)
        except StopIteration:
            self.epoch += 1
            self.loader.sampler.set_epoch(self.epoch)
            self.it = iter(self.loader)
            return next(self.it)
        finally:
            self.waited += time.perf_counter() - start

    def __iter__(self):
        return (self._next() for _ in range(self.n))

    def __len__(self) -> int:
        return self.n


def measure(model, batches, steps: int, transform=None) -> float:
    """Images per second of ``steps`` training steps over ``batches`` (finished by ``transform``)."""
    cfg = TrainConfig(lr=1e-4)
    opt = build_optimizer(cfg, model)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: 1.0)
    scaler = torch.amp.GradScaler("cpu", enabled=False)
    crit = torch.nn.BCEWithLogitsLoss()
    stats = train_one_epoch(
        model,
        batches,
        crit,
        opt,
        sched,
        scaler,
        torch.device("cpu"),
        grad_clip=1.0,
        progress=False,
        transform=transform,
    )
    return stats["train_images_per_s"]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", nargs="+", default=DEFAULT_MODELS)
    ap.add_argument("--data", default="", help="Dataset folder (default: embedded sample)")
    ap.add_argument("--img-size", type=int, default=128)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--steps", type=int, default=12, help="training steps per measurement")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--workers", type=int, default=default_num_workers())
    ap.add_argument("--threads", type=int, help="compute threads (default: as dflib.train chooses)")
    ap.add_argument("--hue", type=float, help="override AugmentConfig.hue (hue jitter is the costliest step)")
    ap.add_argument(
        "--two-stage", action="store_true", help="the engine's GPU loader (batched=True) instead of its CPU one"
    )
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads or cpu_threads(args.workers))

    root = resolve_data_dir(args.data)
    ds = DeepfakeDataset(root, "Train", None)
    augment = AugmentConfig() if args.hue is None else AugmentConfig(hue=args.hue)
    transform = train_transform(args.img_size, augment)
    batched = args.two_stage or augment_on_device(torch.device("cpu"))
    loader = make_train_loader(ds, transform, args.batch_size, workers=args.workers, batched=batched)
    print(
        f"data: {root} (Train, {len(ds)} images, {args.img_size} px, batch {args.batch_size}, "
        f"hue jitter {augment.hue}, {args.workers} loader worker(s), {'two stages' if batched else 'one stage'}); "
        f"torch {torch.__version__}, {torch.get_num_threads()} thread(s), "
        f"{args.steps} steps x {args.rounds} rounds"
    )
    batches = Batches(loader, args.steps)
    in_memory = [
        finish_batch(b, transform, "cpu") for b in itertools.islice(iter(Batches(loader, args.steps)), args.steps)
    ]

    print(f"{'model':<18} {'params':>8} {'model-only img/s':>17} {'full img/s':>11} {'ratio':>6} {'data wait':>10}")
    worst = float("inf")
    for name in args.models:
        torch.manual_seed(0)
        model = create_model(name, img_size=args.img_size)
        n_params = sum(p.numel() for p in model.parameters())
        measure(model, in_memory[:2], 2)  # warm-up: allocator, kernels
        measure(model, Batches(loader, 2), 2, transform)
        only, full, waits = [], [], []
        for _ in range(args.rounds):
            only.append(measure(model, in_memory, args.steps))
            batches.waited = 0.0
            full.append(measure(model, batches, args.steps, transform))
            waits.append(batches.waited * full[-1] / (args.steps * args.batch_size))  # fraction of the round
        o, f, w = statistics.median(only), statistics.median(full), statistics.median(waits)
        worst = min(worst, f / o)
        print(f"{name:<18} {n_params / 1e6:>7.2f}M {o:>17.1f} {f:>11.1f} {f / o:>6.2f} {100 * w:>9.1f}%", flush=True)
    print(f"worst ratio full / model-only: {worst:.2f} (goal >= 0.90) -> {'PASS' if worst >= 0.9 else 'FAIL'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
