"""The setup and the bookkeeping around the epoch loop of :func:`dflib.training.loop`, for one training run.

:class:`TrainingRun` checks the output folder (before anything slow), builds the model, the data
loaders and the optimisation objects, restores a resume state (refusing one made with other
settings or other data), and at the end of each epoch writes, on rank 0 only and in this
order: the best checkpoint (if the epoch improved), the last checkpoint, the history, and
``resume.pt``. ``resume.pt`` is the commit point: a run killed before it is written repeats
that epoch when resumed, and repeats it identically.
"""

from __future__ import annotations

import json
import os
import time
import warnings
from functools import partial
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from torch import nn
from torch.utils.data import Subset
from tqdm.auto import tqdm

from dflib import checkpoint as ckpt
from dflib import runtime
from dflib.card import ModelCard
from dflib.data import (
    AugmentConfig,
    DeepfakeDataset,
    LayoutError,
    TrainTransform,
    default_num_workers,
    discover,
    eval_transform,
    resolve_data_dir,
    train_transform,
)
from dflib.data.dataset import make_scoring_loader
from dflib.data.device_decode import check_device_decoding, make_device_decode_loader
from dflib.data.sampling import make_train_loader
from dflib.data.transforms import IMAGENET_MEAN, IMAGENET_STD
from dflib.evaluation.scoring import format_skips, skip_report
from dflib.models import create_model
from dflib.models.pretrained import imagenet_init
from dflib.training.config import RESUME_KEYS, RunPaths, TrainConfig, TrainResult
from dflib.training.steps import EarlyStopping, build_optimizer, warmup_cosine

RESUME_FORMAT = "dflib-resume/1"


def _json(value: Any) -> Any:
    return json.loads(json.dumps(value))


def augment_on_device(device: torch.device) -> bool:
    """Whether the training augmentation runs in two stages, its second one on ``device``.

    On an accelerator: the loader workers crop, flip and JPEG each image and ship ``uint8``;
    blur, colour jitter and normalisation run batched on the device, where they are nearly
    free, so the workers keep up with a fast GPU. On the CPU the training process is busy
    with the model and the workers have time to spare (``benchmarks/train_throughput.py``
    measures under 1 % data wait), so they do all of it, per image.
    """
    return torch.device(device).type != "cpu"


def decode_on_device(decode: str, device: torch.device) -> bool:
    """Whether the training JPEGs are decoded on ``device`` (see :mod:`dflib.data.device_decode`).

    ``auto``: on CUDA only, where nvJPEG decodes a batch faster than the CPU workers can, and
    only if this torchvision can (checked once); ``device``: always (tests, dry runs); ``cpu``: never.
    """
    if decode == "device":
        return True
    if decode != "auto" or torch.device(device).type != "cuda":
        return False
    try:
        check_device_decoding(device)
    except RuntimeError as e:
        tqdm.write(f"{e}; decoding on the CPU instead")
        return False
    return True


class TrainingRun:
    """Everything one call of ``fit`` needs between epochs (see the module docstring)."""

    def __init__(self, cfg: TrainConfig, info: runtime.DistInfo, device: torch.device) -> None:
        self.cfg, self.info, self.device = cfg, info, device
        self.started = time.perf_counter()
        self.elapsed_before = 0.0
        self.progress = cfg.progress and info.is_main
        self.amp_dtype = runtime.amp_dtype(cfg.amp, device)  # checked first: a bad choice fails fast
        self.paths = RunPaths(Path(cfg.out).expanduser(), cfg.name or cfg.model)
        self.lock: Path | None = None
        self.created_out = self.created_run_dir = False
        self._prepare_folders()
        try:
            self._setup()
        except BaseException:
            self.close(failed=True)
            raise

    def _setup(self) -> None:
        """Everything between taking the run folder and the first epoch (undone by ``close`` on failure)."""
        cfg, info, device = self.cfg, self.info, self.device
        state = ckpt.load_resume_state(self.paths.resume) if self.resuming else None

        runtime.seed_everything(cfg.seed)  # the initial weights depend on the seed only
        self.model = create_model(cfg.model, img_size=cfg.img_size, **cfg.model_options)
        self.init = self._initialise() if state is None else self._resumed_init(state)
        self.model = self.model.to(device)
        if cfg.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        self.img_size: int = self.model.config["img_size"]
        self._build_data()
        self._clear_old_run()  # only now: the new run has its model and validated data
        if device.type == "cpu":
            local = int(os.environ.get("LOCAL_WORLD_SIZE", info.world_size))
            torch.set_num_threads(cfg.threads or runtime.cpu_threads(self.workers, local))
        self.threads = torch.get_num_threads()

        if device.type == "cuda" and not cfg.deterministic:
            torch.backends.cudnn.benchmark = True  # fixed input size: let cuDNN pick the fastest kernels
        self.criterion = nn.BCEWithLogitsLoss(pos_weight=torch.tensor(self.pos_weight, device=device))
        self.optimizer = build_optimizer(cfg, self.model)
        steps = len(self.train_loader)
        total = steps * cfg.epochs
        warmup = min(round(cfg.warmup_epochs * steps), total // 5)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, partial(warmup_cosine, warmup_steps=warmup, total_steps=total, min_ratio=cfg.min_lr_ratio)
        )
        # Loss scaling is only needed for float16 (bfloat16 has float32's range).
        self.scaler = torch.amp.GradScaler(device.type, enabled=self.amp_dtype == torch.float16)
        self.stopper = EarlyStopping(cfg.patience)
        self.history: list[dict[str, Any]] = []
        self.start_epoch = 0
        self._announce(steps, warmup)
        if state is not None:
            self._restore(state)
        elif cfg.resume:
            self.log(f"nothing to resume in {self.paths.run_dir}; starting a new run")

        self.train_model: nn.Module = self.model
        if info.enabled:
            self.train_model = nn.parallel.DistributedDataParallel(
                self.model, device_ids=[device.index] if device.type == "cuda" else None
            )
        if cfg.compile:
            self.train_model = torch.compile(self.train_model)

    # ------------------------------------------------------------------ setup
    def _prepare_folders(self) -> None:
        """Check the output folders and take the run's lock; nothing of an old run is deleted here."""
        p = self.paths
        self.created_out = not p.out.exists()
        ckpt.check_writable(p.out)
        self.created_run_dir = not p.run_dir.exists()
        ckpt.check_writable(p.run_dir)
        if self.info.is_main:
            try:
                self.lock = runtime.acquire_run_lock(p.run_dir, log=tqdm.write)
            except BaseException:
                self._remove_empty_run_dir()
                raise
        try:
            self._check_existing()
        except BaseException:
            self.close(failed=True)
            raise
        runtime.barrier()

    def _check_existing(self) -> None:
        cfg, p = self.cfg, self.paths
        best = ckpt.detector_paths(p.best)[0]
        self.resuming = cfg.resume and p.resume.is_file()
        if not self.resuming and not cfg.overwrite and (p.resume.exists() or best.exists()):
            found = p.resume if p.resume.exists() else best
            if cfg.resume:
                raise ckpt.CheckpointError(
                    f"nothing to resume in {p.run_dir} (no resume.pt), but {found} exists; pass "
                    f"--overwrite to start again, or choose another --name or --out"
                )
            raise ckpt.CheckpointError(
                f"a run named {p.name!r} already exists ({found}); pass --resume to continue it, "
                f"--overwrite to start again, or choose another --name or --out"
            )
        if self.info.is_main:
            ckpt.clean_temp_files(p.out)
            ckpt.clean_temp_files(p.run_dir)

    def _clear_old_run(self) -> None:
        """A new run (``--overwrite`` or a first run): nothing of an old one may be mistaken for ours.

        Called once the data are validated and the model is built, so a run that cannot start
        leaves the old one intact (the old best pair stays until this run's first epoch replaces it).
        """
        p = self.paths
        if self.info.is_main and not self.resuming:
            for f in (p.resume, *ckpt.detector_paths(p.last), p.history_csv, p.history_json, p.log):
                f.unlink(missing_ok=True)
        runtime.barrier()

    def _initialise(self) -> dict[str, str]:
        """Random weights (from the seed), or ImageNet's (rank 0 fetches them into the cache first)."""
        if self.cfg.init != "imagenet":
            return {"method": "random", "seed": str(self.cfg.seed)}
        if self.info.enabled and not self.info.is_main:
            runtime.barrier()
        try:
            return imagenet_init(self.model)
        finally:
            if self.info.enabled and self.info.is_main:
                runtime.barrier()

    def _resumed_init(self, state: dict[str, Any]) -> dict[str, str]:
        """How the resumed run was initialised (its weights come from resume.pt)."""
        return dict(state.get("init") or {"method": self.cfg.init})

    def _remove_empty_run_dir(self) -> None:
        if self.created_run_dir and self.info.is_main:
            try:
                self.paths.run_dir.rmdir()  # only when empty; runs/ itself may hold other runs
                self.paths.run_dir.parent.rmdir()
                if self.created_out:
                    self.paths.out.rmdir()
            except OSError:
                pass

    def close(self, failed: bool = False) -> None:
        """Release the run folder's lock; after a failure before any epoch, remove the folder if it is empty."""
        runtime.release_run_lock(self.lock)
        self.lock = None
        if failed:
            self._remove_empty_run_dir()

    def _build_data(self) -> None:
        cfg, info = self.cfg, self.info
        if info.enabled and not info.is_main:
            runtime.barrier()  # rank 0 generates the embedded sample first (if needed)
        root = resolve_data_dir(cfg.data_dir)
        if info.enabled and info.is_main:
            runtime.barrier()
        layout = discover(root)
        missing = [s for s in ("Train", "Validation") if s not in layout]
        if missing:
            raise LayoutError(
                f"{root} has no {' and no '.join(missing)} split, but training needs Train and Validation "
                f"(validation drives early stopping and the threshold); create {root}/"
                f"{missing[-1]}/{{Real,Fake}} (e.g. move ~10% of Train there) or pass another --data"
            )
        workers = default_num_workers() if cfg.workers is None else int(cfg.workers)
        self.workers = workers
        # Both splits are checked once, here, before epoch 1: a class without a readable image stops the
        # run, and every file left out is counted in the card. Validation is always decoded in full (the
        # best epoch and the threshold rest on it); Train too unless data_check="quick" (headers only).
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            train_base = DeepfakeDataset(
                layout,
                "Train",
                None,
                limit_per_class=cfg.limit_per_class,
                seed=cfg.seed,
                check=cfg.data_check,
                check_workers=workers,
                progress=self.progress,
            )
            val = DeepfakeDataset(
                layout,
                "Validation",
                eval_transform(self.img_size),
                limit_per_class=cfg.limit_per_class,
                seed=cfg.seed,
                check="full",
                check_workers=workers,
                progress=self.progress,
            )
        for w in caught:
            if not issubclass(w.category, UserWarning) or "unreadable" not in str(w.message):
                warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
        self.skipped = {ds.split: skip_report(ds) for ds in (train_base, val)}
        if cfg.augment is False:
            transform = eval_transform(self.img_size)
        else:
            try:
                augment = AugmentConfig(**cfg.augment) if isinstance(cfg.augment, dict) else AugmentConfig()
            except TypeError as e:
                raise ValueError(f"augment: {e}; valid keys: {sorted(AugmentConfig().to_dict())}") from e
            transform = train_transform(self.img_size, augment)

        counts = train_base.class_counts()
        self.pos_weight = counts["real"] / counts["fake"] if cfg.imbalance == "pos_weight" else 1.0
        self.decode_on_device = isinstance(transform, TrainTransform) and decode_on_device(cfg.decode, self.device)
        batched = isinstance(transform, TrainTransform) and (augment_on_device(self.device) or self.decode_on_device)
        self.train_transform = transform if batched else None
        loader_args = dict(
            seed=cfg.seed,
            workers=workers,
            balanced=cfg.imbalance == "sampler",
            rank=info.rank,
            world_size=info.world_size,
            pin_memory=self.device.type == "cuda",
        )
        if self.decode_on_device:
            self.train_loader = make_device_decode_loader(train_base, transform, cfg.batch_size, **loader_args)
        else:
            self.train_loader = make_train_loader(train_base, transform, cfg.batch_size, batched=batched, **loader_args)
        self.sampler = self.train_loader.sampler
        self.loader_generator = self.train_loader.generator
        if len(self.train_loader) == 0:
            raise ValueError(
                f"Train has {len(train_base)} images ({len(self.sampler)} per process), fewer "
                f"than one batch of {cfg.batch_size}; lower --batch-size"
            )
        # Each rank scores every world_size-th validation image; the scores are gathered afterwards.
        val_part = Subset(val, range(info.rank, len(val), info.world_size)) if info.enabled else val
        self.val_loader = make_scoring_loader(val_part, cfg.batch_size * 2, num_workers=workers, device=self.device)
        self.data_card = {
            "source": "folder" if str(cfg.data_dir).strip() else "embedded synthetic sample (dflib.data.synthetic)",
            "root": str(root),
            "counts": layout.counts(),
            "used": {"Train": counts, "Validation": val.class_counts()},
            "skipped": self.skipped,
            "limit_per_class": cfg.limit_per_class,
            "fingerprint": ckpt.data_fingerprint(train_base.paths, root),
            "validation_fingerprint": ckpt.data_fingerprint(val.paths, root),
            "fingerprint_method": "sha256 of the sorted 'relative path<TAB>size' lines of the files used",
        }

    def _config_dict(self) -> dict[str, Any]:
        from dataclasses import asdict

        return {**asdict(self.cfg), "img_size": self.img_size}

    def _restore(self, state: dict[str, Any]) -> None:
        saved, now = state["config"], self._config_dict()
        diffs = [
            f"{k} {saved.get(k)!r} -> {now.get(k)!r}" for k in RESUME_KEYS if _json(saved.get(k)) != _json(now.get(k))
        ]
        if state["world_size"] != self.info.world_size:
            diffs.append(f"processes {state['world_size']} -> {self.info.world_size}")
        for key, split in (("fingerprint", "Train"), ("validation_fingerprint", "Validation")):
            if state["data"][key] != self.data_card[key]:
                diffs.append(f"the {split} files changed")
        if diffs:
            raise ckpt.CheckpointError(
                f"cannot resume {self.paths.resume}: it was started with other settings or data "
                f"({'; '.join(diffs)}); rerun with the original settings, or pass --overwrite to start again"
            )
        before = state.get("threads")
        if self.device.type == "cpu" and before is not None and int(before) != self.threads:
            self.log(
                f"warning: resuming with {self.threads} compute thread(s), the run used {before}: the result "
                f"will be close to, but not bit-exact with, an uninterrupted run (pass --threads {before} "
                f"for an exact resume)"
            )
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        if state["scaler"]:
            self.scaler.load_state_dict(state["scaler"])
        self.stopper.load_state_dict(state["early_stopping"])
        self.history = list(state["history"])
        self.loader_generator.set_state(state["loader_generator"])
        # Not needed for exactness (each epoch re-seeds), but code between epochs sees the same state.
        runtime.set_rng_state(state["rng"])
        self.elapsed_before = float(state["elapsed_seconds"])
        self.start_epoch = self.cfg.epochs if state["stopped_early"] else int(state["epoch"])
        done = "it had stopped early" if state["stopped_early"] else f"{state['epoch']} epoch(s) done"
        self.log(f"resuming {self.paths.resume}: {done}")

    def _announce(self, steps: int, warmup: int) -> None:
        cfg, d = self.cfg, self.data_card
        n = sum(p.numel() for p in self.model.parameters())
        amp = str(self.amp_dtype).replace("torch.", "") if self.amp_dtype else "off"
        tr, va = d["used"]["Train"], d["used"]["Validation"]
        balance = {
            "pos_weight": f"pos_weight {self.pos_weight:.3f} (= n_real / n_fake) in the loss",
            "sampler": "class-balanced sampler",
            "none": "not corrected",
        }[cfg.imbalance]
        self.log(
            f"training {cfg.model} ({n / 1e6:.2f} M parameters) at {self.img_size} px on {self.device}"
            f" ({self.info.world_size} process(es)), mixed precision {amp}; initial weights: "
            + " ".join(str(v) for k, v in self.init.items() if k != "library")
        )
        self.log(
            f"data {d['root']}: Train real {tr['real']} fake {tr['fake']}, Validation real "
            f"{va['real']} fake {va['fake']}; class imbalance: {balance}"
        )
        for split, report in d["skipped"].items():
            if report["count"]:
                self.log(format_skips(report, split))
        threads = f"{torch.get_num_threads()} compute thread(s) + " if self.device.type == "cpu" else ""
        where = "JPEGs decoded on " + str(self.device) if self.decode_on_device else "decoded by the loader"
        self.log(
            f"{steps} batches of {cfg.batch_size} per epoch, {threads}{self.workers} loader worker(s), {where}; "
            f"{cfg.optimizer} lr {cfg.lr:g}, warm-up {warmup} steps then cosine"
        )

    # ------------------------------------------------------------------ bookkeeping
    def log(self, message: str) -> None:
        """Print (rank 0 only) and append to train.log."""
        if not self.info.is_main:
            return
        tqdm.write(message)
        with open(self.paths.log, "a", encoding="utf-8") as f:
            f.write(message + "\n")

    def end_epoch(self, row: dict[str, Any], improved: bool) -> None:
        """Record the epoch and write best / last / history / resume.pt (rank 0, in that order)."""
        cfg, p = self.cfg, self.paths
        self.history.append(row)
        if self.info.is_main:
            args = {
                "epochs_trained": row["epoch"],
                "world_size": self.info.world_size,
                "pos_weight": self.pos_weight,
                "amp": str(self.amp_dtype).replace("torch.", "") if self.amp_dtype else "off",
            }
            card = self.card(row, **args)
            if improved:
                ckpt.save_detector(self.model, p.best, card)
            ckpt.save_detector(self.model, p.last, card)
            ckpt.atomic_write_text(p.history_csv, pd.DataFrame(self.history).to_csv(index=False))
            ckpt.atomic_write_text(p.history_json, json.dumps(self.history, indent=1) + "\n")
            ckpt.save_resume_state(p.resume, self._state(row["epoch"]))
        self.log(
            f"epoch {row['epoch']}/{cfg.epochs} | train loss {row['train_loss']:.4f} acc "
            f"{row['train_accuracy']:.3f} | val loss {row['val_loss']:.4f} acc {row['val_accuracy']:.3f} "
            f"AUC {row['val_roc_auc']:.4f} AP {row['val_average_precision']:.4f} | "
            f"{row['epoch_seconds']:.1f} s, {row['train_images_per_s']:.0f} img/s" + (" | best" if improved else "")
        )

    def card(
        self, row: dict[str, Any], *, epochs_trained: int, amp: str, world_size: int, pos_weight: float
    ) -> ModelCard:
        """The model card of this epoch's checkpoint (``row`` is its history row)."""
        from dataclasses import asdict

        cfg = self.cfg
        training = {
            "epochs_trained": epochs_trained,
            "epochs_planned": cfg.epochs,
            "loss": "BCE with logits" + (f", pos_weight {pos_weight:.4g}" if cfg.imbalance == "pos_weight" else ""),
            "imbalance": cfg.imbalance,
            "pos_weight": pos_weight,
            "amp": amp,
            "world_size": world_size,
            "distributed_backend": runtime.backend(),
            "device": str(self.device),
            "schedule": (
                f"linear warm-up {cfg.warmup_epochs:g} epoch(s) + cosine to {cfg.min_lr_ratio:g} x lr, per step"
            ),
            "config": {k: v for k, v in asdict(cfg).items() if k not in ("progress", "resume", "overwrite")},
            "init": dict(self.init),
        }
        metrics = {
            "split": "Validation",
            "epoch": row["epoch"],
            **{k[4:]: row[k] for k in row if k.startswith("val_") and k != "val_threshold"},
        }
        return ModelCard.make(
            name=cfg.name or cfg.model,
            architecture=ckpt.unwrap(self.model).config,
            mean=IMAGENET_MEAN,
            std=IMAGENET_STD,
            threshold=row["val_threshold"],
            threshold_method="youden",
            threshold_note="maximises Youden's J = TPR - FPR on validation, i.e. balanced accuracy",
            metrics=metrics,
            data=self.data_card,
            training=training,
        )

    def _state(self, epoch: int) -> dict[str, Any]:
        """Everything needed to continue after ``epoch`` (plain containers and tensors only)."""
        return {
            "format": RESUME_FORMAT,
            "epoch": epoch,
            "stopped_early": self.stopper.should_stop,
            "config": self._config_dict(),
            "world_size": self.info.world_size,
            "threads": self.threads,
            "data": {k: self.data_card[k] for k in ("fingerprint", "validation_fingerprint")},
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),
            "early_stopping": self.stopper.state_dict(),
            "history": self.history,
            "init": dict(self.init),
            "rng": runtime.rng_state(),
            "loader_generator": self.loader_generator.get_state(),
            "elapsed_seconds": self.elapsed_before + time.perf_counter() - self.started,
        }

    def result(self) -> TrainResult:
        """Load the best weights into the model and summarise the run."""
        runtime.barrier()  # rank 0's files are complete before anyone reads them
        history = pd.DataFrame(self.history)
        best = next((r for r in self.history if r["epoch"] == self.stopper.best_epoch), {})
        if ckpt.detector_paths(self.paths.best)[0].is_file():
            ckpt.load_weights(self.model, self.paths.best)
        self.model.eval()
        if best:
            self.log(
                f"best epoch {best['epoch']}: val ROC-AUC {best['val_roc_auc']:.4f}, accuracy "
                f"{best['val_accuracy']:.4f}, threshold {best['val_threshold']:.4f} -> {self.paths.best}.safetensors"
            )
        return TrainResult(
            history=history,
            best=best,
            threshold=float(best.get("val_threshold", 0.5)),
            paths=self.paths,
            epochs_trained=len(self.history),
            stopped_early=self.stopper.should_stop,
            seconds=time.perf_counter() - self.started,
            seconds_per_epoch=float(history["epoch_seconds"].mean()) if len(history) else float("nan"),
            images_per_second=float(history["train_images_per_s"].mean()) if len(history) else float("nan"),
            model=self.model,
        )
