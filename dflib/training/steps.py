"""The steps of training: one epoch, validation, the learning-rate schedule, the optimizer and early stopping.

One epoch (:func:`train_one_epoch`) is the classic loop: for each batch, forward pass (in mixed
precision on GPUs), binary cross-entropy on the single logit (fake = 1), backward pass, gradient
clipping, optimizer step, learning-rate schedule step (linear warm-up then cosine decay, per
step). Then :func:`validate` scores the Validation split; :class:`EarlyStopping` watches its
ROC-AUC.
"""

from __future__ import annotations

import math
import time
from contextlib import nullcontext
from dataclasses import asdict, dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from dflib import runtime
from dflib.data.sampling import finish_batch
from dflib.evaluation.metrics import accuracy, average_precision, balanced_accuracy, choose_threshold, roc_auc
from dflib.evaluation.scoring import score_loader
from dflib.runtime import progress_bar
from dflib.training.config import TrainConfig


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


def train_one_epoch(
    model,
    loader,
    criterion,
    optimizer,
    scheduler,
    scaler,
    device: torch.device,
    *,
    amp_dtype: torch.dtype | None = None,
    channels_last: bool = False,
    grad_clip: float | None = None,
    label_smoothing: float = 0.0,
    progress: bool = True,
    desc: str = "train",
    transform=None,
) -> dict[str, float]:
    """One pass over ``loader``; returns mean loss, accuracy, gradient norm, images and seconds.

    ``loader`` yields ``(x, y)``, or ``(uint8 images, y, params)`` when it was made with
    ``make_train_loader(..., batched=True)``; then ``transform`` (its ``TrainTransform``) finishes
    the augmentation on ``device`` (:func:`dflib.data.sampling.finish_batch`).
    """
    model.train()
    # Running sums stay on the device: no GPU->CPU sync per step. [loss*n, correct, grad-norm, finite steps]
    sums = torch.zeros(4, dtype=torch.float64, device=device)
    seen = 0
    start = time.perf_counter()
    bar = progress_bar(loader, desc=desc, disable=not progress, leave=False, unit="batch", dynamic_ncols=True)
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
        scaler.scale(loss).backward()  # the scaler is a no-op unless fp16 on CUDA
        scaler.unscale_(optimizer)  # clip the true gradients, not the scaled ones
        norm = nn.utils.clip_grad_norm_(model.parameters(), grad_clip or math.inf)
        scaler.step(optimizer)  # skipped if fp16 gradients overflowed
        scaler.update()
        scheduler.step()  # the schedule is per step, not per epoch

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
        raise FloatingPointError(
            "the training loss became NaN/inf; lower the learning rate (--lr) or turn mixed precision off (--amp off)"
        )
    return {
        "train_loss": loss_n / n,
        "train_accuracy": correct / n,
        "grad_norm": norm_sum / max(steps, 1),
        "train_images": int(n),
        "train_seconds": seconds,
        "train_images_per_s": n / seconds,
    }


def validate(
    model: nn.Module, loader, device: torch.device, *, amp_dtype=None, channels_last=False, progress: bool = True
) -> dict[str, float]:
    """Score the validation loader (all ranks' shares gathered); loss, accuracy, AUC, AP, threshold.

    Only images that were read are scored (a file that fails to decode now is left out and counted
    in ``val_skipped``); a class left with no image stops the run with a message naming the fix.
    """
    out = score_loader(
        model, loader, device, amp_dtype=amp_dtype, channels_last=channels_last, progress=progress, desc="validate"
    )
    logits, labels = runtime.all_gather_cat(out.logits), runtime.all_gather_cat(out.labels)
    skipped = int(runtime.all_reduce_sum([len(out.skipped)], device)[0])
    present = set(labels.tolist())
    if present != {0, 1}:
        raise ValueError(
            f"validation has no readable {'fake' if 1 not in present else 'real'} image this epoch "
            f"({skipped} unreadable); replace the broken Validation files (`dflib check-data` lists them)"
        )
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
        "val_images": int(y.size),
        "val_skipped": skipped,
    }
