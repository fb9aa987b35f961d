"""The training engine: ``fit`` trains a real/fake detector and saves it with its model card.

    >>> from dflib.train import fit
    >>> result = fit(model="resnet18_w16", img_size=64, epochs=5)   # embedded sample, CPU is fine
    >>> result.history          # one row per epoch (pandas): losses, accuracy, ROC-AUC, lr, speed
    >>> result.best             # the best epoch's row (highest validation ROC-AUC)
    >>> model, card = dflib.load_detector(result.paths.best)

One epoch (:func:`train_one_epoch`) is the classic loop: for each batch, forward pass (in mixed
precision on GPUs), binary cross-entropy on the single logit (fake = 1), backward pass, gradient
clipping, AdamW step, learning-rate schedule step (linear warm-up then cosine decay, per step).
Then :func:`validate` scores the Validation split; early stopping watches its ROC-AUC.

Output layout (``out`` defaults to ``models``; ``name`` defaults to the model name)::

    <out>/<name>.safetensors + <name>.json     the best epoch: weights + model card
    <out>/runs/<name>/last.safetensors + .json the latest finished epoch
    <out>/runs/<name>/resume.pt                everything needed to continue exactly (resume=True)
    <out>/runs/<name>/history.csv, history.json, train.log

Reliability. Every file is written atomically (see :mod:`dflib.checkpoint`); ``resume.pt`` is
written last each epoch, so it always describes a complete epoch. Each epoch re-seeds every
random generator from ``(seed, epoch, rank)`` (see :mod:`dflib.sampling`), so a run killed at
any moment and resumed ends with the same weights as an uninterrupted one (on the CPU; GPUs
add kernel non-determinism unless ``deterministic=True``).

Distributed. ``torchrun --nproc_per_node N -m dflib train ...`` runs this same code in N
processes: DistributedDataParallel averages gradients, each rank reads its share of every
epoch, validation scores are gathered from all ranks, and only rank 0 writes files.
"""

from __future__ import annotations

import json
import math
import time
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from dflib import checkpoint as ckpt
from dflib import runtime
from dflib.evaluate import accuracy, average_precision, balanced_accuracy, choose_threshold, predict_logits, roc_auc
from dflib.sampling import finish_batch

IMBALANCE_CHOICES = ("pos_weight", "sampler", "none")
# Settings that must not change when a run is resumed (epochs may grow: training goes on).
RESUME_KEYS = ("model", "model_options", "img_size", "batch_size", "lr", "weight_decay", "optimizer",
               "momentum", "warmup_epochs", "min_lr_ratio", "grad_clip", "label_smoothing",
               "imbalance", "augment", "limit_per_class", "seed")


@dataclass
class TrainConfig:
    """Every setting of a run. All values are JSON-friendly; they are saved in the card."""

    model: str = "resnet18"              # a name of dflib.models.list_models()
    model_options: dict[str, Any] = field(default_factory=dict)  # create_model overrides, e.g. width=32
    data_dir: str = ""                   # Dataset folder; empty = the embedded synthetic sample
    img_size: int | None = None          # None = the model preset's size
    epochs: int = 10
    batch_size: int = 64
    lr: float = 1e-3                     # peak learning rate (after warm-up)
    weight_decay: float = 0.05           # AdamW decay on weights (never on norms and biases)
    optimizer: str = "adamw"             # "adamw" or "sgd" (Nesterov momentum)
    momentum: float = 0.9                # SGD only
    warmup_epochs: float = 1.0           # linear warm-up (capped at a fifth of the run)
    min_lr_ratio: float = 0.01           # the cosine ends at lr * min_lr_ratio
    grad_clip: float | None = 1.0        # max gradient L2 norm; None = no clipping
    label_smoothing: float = 0.0         # targets become 0 + eps/2 and 1 - eps/2
    imbalance: str = "pos_weight"        # pos_weight (loss weight = n_real / n_fake), sampler, none
    augment: bool | dict = True          # True = default AugmentConfig, dict = its fields, False = none
    patience: int | None = 5             # early stopping: epochs without a better val ROC-AUC
    limit_per_class: int | None = None   # use at most this many images per class (Train and Validation)
    seed: int = 0
    deterministic: bool = False          # torch.use_deterministic_algorithms (matters on GPUs)
    device: str = "auto"                 # auto = cuda, then mps, then cpu
    amp: str = "auto"                    # auto (bf16/fp16 on CUDA, off elsewhere), off, bf16, fp16
    channels_last: bool = False          # NHWC memory layout (faster convolutions on recent GPUs)
    compile: bool = False                # torch.compile the model
    workers: int | None = None           # loader processes; None = one per spare core
    threads: int | None = None           # CPU compute threads; None = the cores the workers leave free
    out: str = "models"
    name: str | None = None              # file stem; None = the model name
    resume: bool = False                 # continue <out>/runs/<name>/resume.pt if it exists
    overwrite: bool = False              # start again even if a run with this name exists
    progress: bool = True                # tqdm progress bars

    def check(self) -> None:
        """Reject bad values with a message that names the setting."""
        def bad(name: str, fix: str) -> ValueError:
            return ValueError(f"{name}={getattr(self, name)!r} is invalid; {fix}")

        for name in ("epochs", "batch_size"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise bad(name, "use an integer >= 1")
        if not self.lr > 0:
            raise bad("lr", "use a positive learning rate, e.g. 1e-3")
        if self.optimizer not in ("adamw", "sgd"):
            raise bad("optimizer", "use 'adamw' or 'sgd'")
        if self.imbalance not in IMBALANCE_CHOICES:
            raise bad("imbalance", f"use one of {IMBALANCE_CHOICES}")
        if not 0 <= self.label_smoothing < 1:
            raise bad("label_smoothing", "use a value in [0, 1), e.g. 0.1")
        if self.threads is not None and (not isinstance(self.threads, int) or self.threads < 1):
            raise bad("threads", "use an integer >= 1, or None to choose from the free cores")
        if self.patience is not None and self.patience < 1:
            raise bad("patience", "use an integer >= 1, or None for no early stopping")
        if self.grad_clip is not None and not self.grad_clip > 0:
            raise bad("grad_clip", "use a positive max norm, or None")
        if self.warmup_epochs < 0 or not 0 <= self.min_lr_ratio <= 1:
            raise ValueError("warmup_epochs must be >= 0 and min_lr_ratio in [0, 1]")
        if not isinstance(self.model, str):
            raise bad("model", "pass a model name (see dflib.models.list_models()) and model_options")


@dataclass(frozen=True)
class RunPaths:
    """Where a run's files go (see the module docstring)."""

    out: Path
    name: str

    @property
    def best(self) -> Path:            # stem of the best pair: <out>/<name>
        return self.out / self.name

    @property
    def run_dir(self) -> Path:
        return self.out / "runs" / self.name

    @property
    def last(self) -> Path:            # stem of the last pair
        return self.run_dir / "last"

    @property
    def resume(self) -> Path:
        return self.run_dir / "resume.pt"

    @property
    def history_csv(self) -> Path:
        return self.run_dir / "history.csv"

    @property
    def history_json(self) -> Path:
        return self.run_dir / "history.json"

    @property
    def log(self) -> Path:
        return self.run_dir / "train.log"


@dataclass
class TrainResult:
    """What ``fit`` returns: the history, the best epoch, where the files are, and the speed."""

    history: pd.DataFrame
    best: dict[str, float]        # the history row of the best epoch
    threshold: float              # decision threshold chosen on validation for the best epoch
    paths: RunPaths
    epochs_trained: int
    stopped_early: bool
    seconds: float                # wall time of this call
    seconds_per_epoch: float      # mean over the run's epochs (training + validation)
    images_per_second: float      # mean training throughput
    model: nn.Module | None = None  # the best model, eval mode (on every rank)

    def __repr__(self) -> str:
        b = self.best
        return (f"TrainResult({self.epochs_trained} epochs{', stopped early' if self.stopped_early else ''}; "
                f"best epoch {b.get('epoch')}: val ROC-AUC {b.get('val_roc_auc', float('nan')):.4f}, "
                f"accuracy {b.get('val_accuracy', float('nan')):.4f}; {self.seconds_per_epoch:.1f} s/epoch, "
                f"{self.images_per_second:.0f} img/s; best model: {self.paths.best}.safetensors)")


@dataclass
class EarlyStopping:
    """Track the best epoch by validation ROC-AUC (ties broken by lower loss) and count bad epochs."""

    patience: int | None = 5
    best_auc: float = -math.inf
    best_loss: float = math.inf
    best_epoch: int = 0
    bad_epochs: int = 0

    def step(self, auc: float, loss: float, epoch: int) -> bool:
        """Record an epoch; True when it is the new best."""
        if auc > self.best_auc or (auc == self.best_auc and loss < self.best_loss):
            self.best_auc, self.best_loss, self.best_epoch, self.bad_epochs = auc, loss, epoch, 0
            return True
        self.bad_epochs += 1
        return False

    @property
    def should_stop(self) -> bool:
        return self.patience is not None and self.bad_epochs >= self.patience

    def state_dict(self) -> dict[str, Any]:
        return asdict(self)

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for k in ("best_auc", "best_loss", "best_epoch", "bad_epochs"):
            setattr(self, k, state[k])


def warmup_cosine(step: int, warmup_steps: int, total_steps: int, min_ratio: float = 0.01) -> float:
    """Learning-rate multiplier at optimizer step ``step``: linear warm-up, then cosine to ``min_ratio``."""
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
    return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress))


def build_optimizer(cfg: TrainConfig, model: nn.Module) -> torch.optim.Optimizer:
    """AdamW (or SGD) with weight decay on weight matrices/kernels only, not on norms and biases."""
    decay = [p for p in model.parameters() if p.requires_grad and p.ndim > 1]
    no_decay = [p for p in model.parameters() if p.requires_grad and p.ndim <= 1]
    groups = [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum, nesterov=True)
    return torch.optim.AdamW(groups, lr=cfg.lr)


def train_one_epoch(model, loader, criterion, optimizer, scheduler, scaler, device: torch.device, *,
                    amp_dtype: torch.dtype | None = None, channels_last: bool = False,
                    grad_clip: float | None = None, label_smoothing: float = 0.0,
                    progress: bool = True, desc: str = "train", transform=None) -> dict[str, float]:
    """One pass over ``loader``; returns mean loss, accuracy, gradient norm, images and seconds.

    ``loader`` yields ``(x, y)``, or ``(uint8 images, y, params)`` when it was made with
    ``make_train_loader(..., batched=True)``; then ``transform`` (its ``TrainTransform``) finishes
    the augmentation on ``device`` (:func:`dflib.sampling.finish_batch`).
    """
    model.train()
    # Running sums stay on the device: no GPU->CPU sync per step. [loss*n, correct, grad-norm, finite steps]
    sums = torch.zeros(4, dtype=torch.float64, device=device)
    seen = 0
    start = time.perf_counter()
    bar = tqdm(loader, desc=desc, disable=not progress, leave=False, unit="batch", dynamic_ncols=True)
    for step, batch in enumerate(bar, 1):
        x, y = finish_batch(batch, transform, device)
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        y = y.float()
        target = y * (1 - label_smoothing) + 0.5 * label_smoothing

        with torch.autocast(device.type, dtype=amp_dtype) if amp_dtype else nullcontext():
            logits = model(x)
        loss = criterion(logits.float(), target)

        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()          # the scaler is a no-op unless fp16 on CUDA
        scaler.unscale_(optimizer)             # clip the true gradients, not the scaled ones
        norm = nn.utils.clip_grad_norm_(model.parameters(), grad_clip or math.inf)
        scaler.step(optimizer)                 # skipped if fp16 gradients overflowed
        scaler.update()
        scheduler.step()                       # the schedule is per step, not per epoch

        with torch.no_grad():
            finite = torch.isfinite(norm)
            correct = ((logits.detach() >= 0) == (y > 0.5)).sum()
            sums += torch.stack([loss.detach() * len(y), correct, torch.where(finite, norm, 0), finite]).double()
        seen += len(y)
        if progress and (step % 10 == 0 or step == len(loader)):
            bar.set_postfix(loss=f"{sums[0].item() / seen:.4f}", img_s=f"{seen / (time.perf_counter() - start):.0f}")
    loss_n, correct, norm_sum, steps, n = runtime.all_reduce_sum([*sums.tolist(), seen], device)
    seconds = time.perf_counter() - start
    if not math.isfinite(loss_n):
        raise FloatingPointError("the training loss became NaN/inf; lower the learning rate (--lr) "
                                 "or turn mixed precision off (--amp off)")
    return {"train_loss": loss_n / n, "train_accuracy": correct / n, "grad_norm": norm_sum / max(steps, 1),
            "train_images": int(n), "train_seconds": seconds, "train_images_per_s": n / seconds}


def validate(model: nn.Module, loader, device: torch.device, *, amp_dtype=None, channels_last=False,
             progress: bool = True) -> dict[str, float]:
    """Score the validation loader (all ranks' shares gathered); loss, accuracy, AUC, AP, threshold."""
    logits, labels = predict_logits(model, loader, device, amp_dtype=amp_dtype,
                                    channels_last=channels_last, progress=progress, desc="validate")
    logits, labels = runtime.all_gather_cat(logits), runtime.all_gather_cat(labels)
    scores = torch.sigmoid(logits).double().numpy()
    y = labels.numpy()
    threshold = choose_threshold(y, scores)
    return {
        "val_loss": F.binary_cross_entropy_with_logits(logits, labels.float()).item(),
        "val_accuracy": accuracy(y, scores, 0.5),
        "val_roc_auc": roc_auc(y, scores),
        "val_average_precision": average_precision(y, scores),
        "val_threshold": threshold,
        "val_balanced_accuracy": balanced_accuracy(y, scores, threshold),  # optimistic: same data
    }


def fit(config: TrainConfig | None = None, **settings: Any) -> TrainResult:
    """Train a detector; ``settings`` are :class:`TrainConfig` fields (they override ``config``).

    Raises ``ValueError`` (and its subclasses ``LayoutError``, ``CheckpointError``) with a
    message naming the problem and the fix for anything a user can get wrong, before training.
    """
    cfg = replace(config, **settings) if config is not None else TrainConfig(**settings)
    cfg.check()
    owns_group = not (torch.distributed.is_available() and torch.distributed.is_initialized())
    info, device = runtime.init_distributed(cfg.device)
    threads = torch.get_num_threads()
    try:
        with runtime.deterministic_mode(cfg.deterministic):
            result = _fit(cfg, info, device)
    except BaseException:
        if owns_group:
            runtime.cleanup_distributed(wait=False)
        raise
    finally:
        torch.set_num_threads(threads)  # fit may lower it on the CPU (see TrainingRun)
    if owns_group:
        runtime.cleanup_distributed(wait=True)
    return result


def _fit(cfg: TrainConfig, info: runtime.DistInfo, device: torch.device) -> TrainResult:
    """The epoch loop; ``TrainingRun`` does the setup (folders, data, model, resume) and the saving."""
    from dflib.train_run import TrainingRun

    run = TrainingRun(cfg, info, device)
    for epoch in range(run.start_epoch, cfg.epochs):
        # Every random choice of this epoch derives from (seed, epoch): resuming here is exact.
        runtime.seed_everything(runtime.derive_seed(cfg.seed, epoch, info.rank))
        run.sampler.set_epoch(epoch)
        epoch_start = time.perf_counter()
        stats = train_one_epoch(
            run.train_model, run.train_loader, run.criterion, run.optimizer, run.scheduler, run.scaler,
            device, amp_dtype=run.amp_dtype, channels_last=cfg.channels_last, grad_clip=cfg.grad_clip,
            label_smoothing=cfg.label_smoothing, progress=run.progress, desc=f"epoch {epoch + 1}/{cfg.epochs}",
            transform=run.train_transform)
        val = validate(run.model, run.val_loader, device, amp_dtype=run.amp_dtype,
                       channels_last=cfg.channels_last, progress=run.progress)
        row = {"epoch": epoch + 1, "lr": run.scheduler.get_last_lr()[0], **stats, **val,
               "epoch_seconds": time.perf_counter() - epoch_start}
        improved = run.stopper.step(row["val_roc_auc"], row["val_loss"], epoch + 1)
        run.end_epoch(row, improved)  # history, best + last checkpoints, resume.pt (rank 0)
        if run.stopper.should_stop:
            run.log(f"early stopping: no better validation ROC-AUC for {cfg.patience} epoch(s)")
            break
    return run.result()


def make_card(cfg: TrainConfig, model: nn.Module, data: dict[str, Any], row: dict[str, Any],
              *, epochs_trained: int, amp: str, world_size: int, pos_weight: float) -> dict[str, Any]:
    """The JSON model card of one checkpoint (``row`` is that epoch's history row)."""
    import torchvision

    import dflib
    from dflib.data import IMAGENET_MEAN, IMAGENET_STD

    arch = ckpt.unwrap(model).config
    return {
        "format": ckpt.CARD_FORMAT,
        "name": cfg.name or cfg.model,
        "architecture": json.loads(json.dumps(arch)),
        "img_size": arch["img_size"],
        "normalization": {"mean": list(IMAGENET_MEAN), "std": list(IMAGENET_STD),
                          "input": "RGB, resized to img_size x img_size, scaled to [0, 1], then (x - mean) / std"},
        "labels": {"0": "real", "1": "fake", "positive": "fake",
                   "output": "one logit per image; sigmoid(logit) = P(fake)"},
        "threshold": {"value": row["val_threshold"], "rule": "fake when P(fake) >= value",
                      "method": "youden", "chosen_on": "Validation",
                      "note": "maximises Youden's J = TPR - FPR on validation, i.e. balanced accuracy"},
        "metrics": {"split": "Validation", "epoch": row["epoch"],
                    **{k[4:]: row[k] for k in row if k.startswith("val_") and k != "val_threshold"}},
        "data": data,
        "training": {
            "epochs_trained": epochs_trained, "epochs_planned": cfg.epochs,
            "loss": "BCE with logits" + (f", pos_weight {pos_weight:.4g}" if cfg.imbalance == "pos_weight" else ""),
            "imbalance": cfg.imbalance, "pos_weight": pos_weight, "amp": amp, "world_size": world_size,
            "schedule": f"linear warm-up {cfg.warmup_epochs:g} epoch(s) + cosine to {cfg.min_lr_ratio:g} x lr, per step",
            "config": {k: v for k, v in asdict(cfg).items() if k not in ("progress", "resume", "overwrite")},
        },
        "versions": {"dflib": dflib.__version__, "torch": torch.__version__, "torchvision": torchvision.__version__},
        "created_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


__all__ = ["TrainConfig", "TrainResult", "RunPaths", "EarlyStopping", "fit", "train_one_epoch",
           "validate", "warmup_cosine", "build_optimizer", "make_card", "IMBALANCE_CHOICES"]
