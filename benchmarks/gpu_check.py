"""Is dflib ready for a GPU? One command, one table, at most about 8 minutes on one GPU.

    python benchmarks/gpu_check.py [--data DIR] [--batch-size 128] [--budget-s 420]
    python benchmarks/gpu_check.py --dry-run      # the same code paths on the CPU, tiny (the test suite runs it)

Rows of the table:

* ``train``: for each shipped recipe's model at its size and the full-width ResNet-18 at 128 and 224 px,
  training images/s of the engine's step (:func:`dflib.training.train_one_epoch`) on batches already
  on the device ("model only"), with AMP auto (bf16, or fp16 + loss scaling) and fp32, channels-last
  on and off, ``torch.compile`` on and off; peak GPU memory of each.
* ``full``: the same step fed by the engine's training loader (GPU JPEG decoding on CUDA,
  :mod:`dflib.data.device_decode`), and its ratio to model only; "data wait" is the share of the time
  the step waited for a batch. For ``resnet18_w16`` at 128 px also with the loader decoding on the
  CPU. Goal: full / model only >= 0.9 for ``resnet18_w16`` at 128 px.
* ``evaluate`` / ``predict``: P(fake) on the device against the CPU's, max |dP|, in fp32 and AMP.
* ``resume``: a deterministic run interrupted after epoch 1 and resumed against an uninterrupted
  one: max |d weight| of the final checkpoints.
* ``torchrun``: ``torchrun --nproc_per_node 1 -m dflib train`` (NCCL on CUDA, Gloo on the CPU).

``--dry-run`` runs every row on the CPU with tiny images, a few steps and small batches (the
GPU-only parts are forced: JPEG decoding "on the device", bf16 autocast, ``torch.compile`` with
its ``eager`` backend), so the numbers mean nothing but every code path runs. The rows left for
the end (``torch.compile``) are skipped once ``--budget-s`` is spent, and say so.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import nullcontext
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from dflib import runtime  # noqa: E402
from dflib.checkpoint import load_detector  # noqa: E402
from dflib.data import AugmentConfig, DeepfakeDataset, discover, make_loader, resolve_data_dir, train_transform  # noqa: E402
from dflib.data.device_decode import make_device_decode_loader  # noqa: E402
from dflib.data.sampling import finish_batch, make_train_loader  # noqa: E402
from dflib.evaluation.scoring import predict_scores  # noqa: E402
from dflib.models import create_model  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from train_throughput import Batches  # noqa: E402  (the same loader-feeding helper)

from dflib.predict import predict_paths  # noqa: E402
from dflib.training import RECIPES, TrainConfig, build_optimizer, fit, train_one_epoch  # noqa: E402
from dflib.training.run import TrainingRun  # noqa: E402

COLUMNS = (
    "check",
    "model",
    "px",
    "setting",
    "model img/s",
    "full img/s",
    "full/model",
    "data wait",
    "peak MiB",
    "result",
)


def _encoded_share(loader, steps: int) -> float:
    """Share of the images in the first ``steps`` batches that travel encoded (decoded on the device)."""
    encoded = total = 0
    for batch in Batches(loader, steps):
        encoded += sum(t.ndim == 1 for t in batch.images)
        total += len(batch.images)
    return encoded / max(total, 1)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _peak_reset(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def _peak(device: torch.device) -> str:
    return f"{torch.cuda.max_memory_allocated(device) / 2**20:.0f}" if device.type == "cuda" else "-"


def train_rate(model, batches, device, amp_dtype, steps: int, transform=None, channels_last=False) -> float:
    """Images/s of ``steps`` engine training steps over ``batches``."""
    opt = build_optimizer(TrainConfig(lr=1e-4), model)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: 1.0)
    scaler = torch.amp.GradScaler(device.type, enabled=amp_dtype == torch.float16)
    crit = torch.nn.BCEWithLogitsLoss()
    _sync(device)
    start = time.perf_counter()
    stats = train_one_epoch(
        model,
        batches,
        crit,
        opt,
        sched,
        scaler,
        device,
        amp_dtype=amp_dtype,
        channels_last=channels_last,
        grad_clip=1.0,
        progress=False,
        transform=transform,
    )
    _sync(device)
    return stats["train_images"] / (time.perf_counter() - start)


class Check:
    """The plan (sizes depend on ``--dry-run``) and the rows measured so far."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args, self.dry = args, args.dry_run
        if not self.dry and not torch.cuda.is_available():
            raise SystemExit(
                "error: no CUDA device here; gpu_check measures a GPU (use --dry-run to check the code "
                "paths on the CPU)"
            )
        self.device = torch.device("cpu") if self.dry else torch.device("cuda")
        self.amp = torch.bfloat16 if self.dry else runtime.amp_dtype("auto", self.device)
        self.amp_name = str(self.amp).replace("torch.", "")
        self.deadline = time.perf_counter() + args.budget_s
        self.tmp = Path(tempfile.mkdtemp(prefix="dflib_gpu_check_"))
        self.rows: list[dict[str, str]] = []
        self.steps = 2 if self.dry else args.steps
        self.batch = 4 if self.dry else args.batch_size
        self.workers = 0 if self.dry else args.workers
        # (model, px, options): each shipped recipe's model at its size, then the full-width ResNet-18; the dry run
        # keeps the names but shrinks everything (images of 32/48 px, ResNet-18 at width 8).
        self.models = (
            (
                [(name, 32, {}) for name in ("sqnxt23_w1", "resnet18_w16", "vit_face_conv_128")]
                + [("resnet18", 32, {"width": 8}), ("resnet18", 48, {"width": 8})]
            )
            if self.dry
            else (
                [(r.model, r.img_size, dict(r.model_options)) for r in RECIPES.values()]
                + [("resnet18", 128, {}), ("resnet18", 224, {})]
            )
        )
        self.root = self._data()

    def _data(self) -> Path:
        if self.args.data or not self.dry:
            return resolve_data_dir(self.args.data)  # the embedded sample by default (generated on first use)
        import numpy as np
        from PIL import Image

        rng = np.random.default_rng(0)
        for split, n in (("Train", 8), ("Validation", 4)):
            for cls in ("Real", "Fake"):
                folder = self.tmp / "data" / "Dataset" / split / cls
                folder.mkdir(parents=True)
                for i in range(n):
                    arr = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
                    Image.fromarray(arr).save(folder / f"{i}.jpg", quality=90)
        return self.tmp / "data" / "Dataset"

    def add(self, check: str, model: str = "", px: object = "", setting: str = "", **cols: str) -> None:
        row = {"check": check, "model": model, "px": str(px), "setting": setting, **cols}
        self.rows.append(row)
        print("  " + " | ".join(f"{k}={v}" for k, v in row.items() if v), file=sys.stderr, flush=True)

    def out_of_time(self) -> bool:
        return time.perf_counter() > self.deadline

    # ------------------------------------------------------------------ training speed
    def _loader(self, px: int, decode: str):
        ds = DeepfakeDataset(discover(self.root), "Train", None)
        t = train_transform(px, AugmentConfig())
        common = dict(seed=0, workers=self.workers, pin_memory=self.device.type == "cuda")
        if decode == "device":
            return make_device_decode_loader(ds, t, self.batch, **common), t
        return make_train_loader(ds, t, self.batch, batched=True, **common), t

    def train_rows(self, compile_pass: bool = False) -> None:
        for name, px, options in self.models:
            if compile_pass and self.dry and name != "resnet18_w16":
                continue  # the dry run compiles one model: the code path, not a measurement
            loader, t = self._loader(px, "device")
            feed = Batches(loader, self.steps)
            in_memory = [finish_batch(b, t, self.device) for b in Batches(loader, self.steps)]
            settings = (
                [("compile", self.amp, False, True)]
                if compile_pass
                else [
                    ("amp", self.amp, False, False),
                    ("fp32", None, False, False),
                    ("channels-last", self.amp, True, False),
                ]
            )
            for label, amp, cl, comp in settings:
                if compile_pass and self.out_of_time():
                    self.add("train", name, px, f"{self.amp_name}, torch.compile", result="skipped: time budget spent")
                    continue
                torch.manual_seed(0)
                model = create_model(name, img_size=px, **options).to(self.device)
                if cl:
                    model = model.to(memory_format=torch.channels_last)
                if comp:
                    model = torch.compile(model, backend="eager" if self.dry else "inductor")
                amp_text = str(amp).replace("torch.", "") if amp else "fp32"
                setting = f"{amp_text}, {'channels-last' if cl else 'NCHW'}{', torch.compile' if comp else ''}"
                train_rate(model, in_memory[:2], self.device, amp, 2, channels_last=cl)  # warm-up / compile
                _peak_reset(self.device)
                only = statistics.median(
                    train_rate(model, in_memory, self.device, amp, self.steps, channels_last=cl)
                    for _ in range(self.args.rounds)
                )
                cols = {"model img/s": f"{only:.0f}", "peak MiB": _peak(self.device)}
                if label == "amp":  # the engine's default setting: also fed by its loader
                    train_rate(model, Batches(loader, 2), self.device, amp, 2, t)
                    feed.waited = 0.0
                    start = time.perf_counter()
                    full = train_rate(model, feed, self.device, amp, self.steps, t)
                    wait = feed.waited / (time.perf_counter() - start)
                    cols.update(
                        {
                            "full img/s": f"{full:.0f}",
                            "full/model": f"{full / only:.2f}",
                            "data wait": f"{100 * wait:.0f} %",
                        }
                    )
                    if name == "resnet18_w16" and px == 128 or self.dry and name == "resnet18_w16":
                        verdict = "not judged in a dry run" if self.dry else ("PASS" if full / only >= 0.9 else "FAIL")
                        share = _encoded_share(loader, self.steps)
                        cols["result"] = (
                            f"goal >= 0.90: {verdict} ({100 * share:.0f} % of the images decoded on the device; "
                            f"the loader decodes the others, e.g. at reduced scale as evaluation does)"
                        )
                        self.add("full", name, px, setting, **cols)
                        self._cpu_decode_row(model, name, px, amp, only, setting)
                        continue
                self.add("full" if label == "amp" else "train", name, px, setting, **cols)

    def _cpu_decode_row(self, model, name, px, amp, only, setting) -> None:
        loader, t = self._loader(px, "cpu")
        feed = Batches(loader, self.steps)
        train_rate(model, Batches(loader, 2), self.device, amp, 2, t)
        start = time.perf_counter()
        full = train_rate(model, feed, self.device, amp, self.steps, t)
        wait = feed.waited / (time.perf_counter() - start)
        self.add(
            "full",
            name,
            px,
            setting + ", JPEGs decoded by the CPU loader",
            **{
                "model img/s": f"{only:.0f}",
                "full img/s": f"{full:.0f}",
                "full/model": f"{full / only:.2f}",
                "data wait": f"{100 * wait:.0f} %",
            },
        )

    # ------------------------------------------------------------------ correctness on the device
    def _tiny_run(self, out: Path, **extra):
        px = 32 if self.dry else 64
        return fit(
            model="resnet18_w16",
            data_dir=str(self.root),
            img_size=px,
            epochs=2,
            batch_size=self.batch,
            limit_per_class=None if self.dry else 64,
            workers=self.workers,
            deterministic=True,
            progress=False,
            device=str(self.device),
            decode="device",
            seed=1,
            out=str(out),
            **extra,
        )

    def resume_row(self) -> Path:
        uninterrupted = self._tiny_run(self.tmp / "a")
        original = TrainingRun.end_epoch

        def crash_after_epoch_1(run, row, improved):
            original(run, row, improved)
            if row["epoch"] == 1:
                raise KeyboardInterrupt("simulated interruption")

        TrainingRun.end_epoch = crash_after_epoch_1
        try:
            self._tiny_run(self.tmp / "b")
        except KeyboardInterrupt:
            pass
        finally:
            TrainingRun.end_epoch = original
        resumed = self._tiny_run(self.tmp / "b", resume=True)
        a, b = uninterrupted.model.state_dict(), resumed.model.state_dict()
        diff = max((a[k].double() - b[k].double()).abs().max().item() for k in a)
        same = uninterrupted.history.drop(columns=["train_seconds", "train_images_per_s", "epoch_seconds"]).equals(
            resumed.history.drop(columns=["train_seconds", "train_images_per_s", "epoch_seconds"])
        )
        self.add(
            "resume",
            "resnet18_w16",
            32 if self.dry else 64,
            "deterministic, interrupted after epoch 1",
            result=f"max |d weight| {diff:.3g}; history {'identical' if same else 'differs'}",
        )
        return uninterrupted.paths.best

    def scoring_rows(self, checkpoint: Path) -> None:
        shipped = ROOT / "models" / "resnet18_w16.json"
        if not self.dry and shipped.is_file():
            checkpoint = shipped.with_suffix("")
        cpu_model, card = load_detector(checkpoint, device="cpu")
        dev_model, _ = load_detector(checkpoint, device=self.device)
        limit = 4 if self.dry else 256
        ds = DeepfakeDataset(discover(self.root), "Validation", card.transform(), limit_per_class=limit)
        loader = make_loader(ds, self.batch * 2, train=False, num_workers=self.workers, device=self.device)
        ref, _ = predict_scores(cpu_model, loader, "cpu")
        for label, amp in (("fp32", None), (self.amp_name, self.amp)):
            got, _ = predict_scores(dev_model, loader, self.device, amp_dtype=amp)
            self.add(
                "evaluate",
                card.name,
                card.img_size,
                f"{self.device} {label} vs cpu fp32",
                result=f"max |dP(fake)| {abs(got - ref).max():.2e} over {len(ref)} images",
            )
        example = ROOT / "example"
        cpu = predict_paths(example, (cpu_model, card), device="cpu", progress=False)
        for label, amp in (("fp32", None), (self.amp_name, self.amp)):
            with torch.autocast(self.device.type, dtype=amp) if amp else nullcontext():
                got = predict_paths(example, (dev_model, card), device=self.device, progress=False)
            d = (got["p_fake"] - cpu["p_fake"]).abs().max()
            self.add(
                "predict",
                card.name,
                card.img_size,
                f"{self.device} {label} vs cpu fp32",
                result=f"max |dP(fake)| {d:.2e} over {len(cpu)} files of example/",
            )

    def torchrun_row(self) -> None:
        out = self.tmp / "torchrun"
        cmd = [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc_per_node",
            "1",
            "-m",
            "dflib",
            "train",
            "--model",
            "resnet18_w16",
            "--data",
            str(self.root),
            "--img-size",
            "32" if self.dry else "64",
            "--epochs",
            "1",
            "--batch-size",
            str(self.batch),
            "--workers",
            str(self.workers),
            "--no-progress",
            "--device",
            str(self.device),
            "--out",
            str(out),
        ]
        if not self.dry:
            cmd += ["--limit-per-class", "64"]
        env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
        start = time.perf_counter()
        done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
        seconds = time.perf_counter() - start
        card = out / "resnet18_w16.json"
        if done.returncode != 0 or not card.is_file():
            self.add(
                "torchrun",
                "resnet18_w16",
                "",
                "--nproc_per_node 1",
                result="FAILED: " + (done.stderr.strip().splitlines() or ["no output"])[-1][:120],
            )
            return
        training = json.loads(card.read_text())["training"]
        self.add(
            "torchrun",
            "resnet18_w16",
            "",
            "--nproc_per_node 1",
            result=(
                f"ok in {seconds:.0f} s: backend {training['distributed_backend']}, "
                f"world size {training['world_size']}, "
                f"device {training['device']}"
            ),
        )

    def table(self) -> str:
        widths = {c: max(len(c), *(len(r.get(c, "")) for r in self.rows)) for c in COLUMNS}
        lines = [" | ".join(c.ljust(widths[c]) for c in COLUMNS), "-|-".join("-" * widths[c] for c in COLUMNS)]
        lines += [" | ".join(r.get(c, "").ljust(widths[c]) for c in COLUMNS) for r in self.rows]
        return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dry-run", action="store_true", help="the same code paths on the CPU, tiny and fast")
    ap.add_argument("--data", default="", help="Dataset folder (default: the embedded sample)")
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--steps", type=int, default=15, help="training steps per measurement")
    ap.add_argument("--rounds", type=int, default=1, help="measurements per setting (the median is shown)")
    ap.add_argument("--workers", type=int, default=min(8, max(1, (os.cpu_count() or 2) - 1)))
    ap.add_argument(
        "--budget-s",
        type=float,
        default=420.0,
        help="seconds after which the torch.compile rows (measured last) are skipped",
    )
    args = ap.parse_args(argv)
    start = time.perf_counter()
    check = Check(args)
    if not check.dry:
        torch.backends.cudnn.benchmark = True
    name = torch.cuda.get_device_name(0) if check.device.type == "cuda" else "CPU (dry run: numbers mean nothing)"
    print(
        f"gpu_check on {name}; torch {torch.__version__}; data {check.root}; batch {check.batch}, {check.steps} "
        f"steps per measurement, {check.workers} loader worker(s), {os.cpu_count()} CPU cores",
        flush=True,
    )
    check.train_rows()
    best = check.resume_row()
    check.scoring_rows(best)
    check.torchrun_row()
    check.train_rows(compile_pass=True)
    print(check.table())
    print(f"total {time.perf_counter() - start:.0f} s")
    failed = [r for r in check.rows if r.get("result", "").startswith("FAILED")]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
