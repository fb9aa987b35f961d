"""The training engine: ``fit`` trains a real/fake detector and saves it with its model card.

    >>> from dflib.training import fit
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
random generator from ``(seed, epoch, rank)`` (see :mod:`dflib.data.sampling`), so a run killed at
any moment and resumed ends with the same weights as an uninterrupted one (on the CPU; GPUs
add kernel non-determinism unless ``deterministic=True``).

Distributed. ``torchrun --nproc_per_node N -m dflib train ...`` runs this same code in N
processes: DistributedDataParallel averages gradients, each rank reads its share of every
epoch, validation scores are gathered from all ranks, and only rank 0 writes files.
"""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Any

import torch

from dflib import runtime
from dflib.training.config import TrainConfig, TrainResult
from dflib.training.run import TrainingRun
from dflib.training.steps import train_one_epoch, validate


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


def fit_and_score(split: str = "Test", **settings: Any) -> tuple[TrainResult, dict[str, Any]]:
    """:func:`fit` with ``settings``, then score the best checkpoint on ``split`` with its own card
    (:func:`dflib.evaluation.evaluate_checkpoint`, the same ``data_dir`` and ``limit_per_class``):
    one run of a seed sweep or an ablation (``benchmarks/seed_spread.py``, ``vit_ablation.py``)."""
    from dflib.evaluation.scoring import evaluate_checkpoint

    result = fit(**settings)
    scores = evaluate_checkpoint(
        result.paths.best.with_suffix(".json"),
        settings.get("data_dir", ""),
        split,
        progress=False,
        limit_per_class=settings.get("limit_per_class"),
    )
    return result, scores


def _fit(cfg: TrainConfig, info: runtime.DistInfo, device: torch.device) -> TrainResult:
    """The epoch loop; ``TrainingRun`` does the setup (folders, data, model, resume) and the saving."""
    run = TrainingRun(cfg, info, device)
    try:
        result = _epochs(run, cfg, info, device)
    except BaseException:
        run.close(failed=True)  # releases the lock; a run folder left empty is removed
        raise
    run.close()
    return result


def _epochs(run: TrainingRun, cfg: TrainConfig, info: runtime.DistInfo, device: torch.device) -> TrainResult:
    for epoch in range(run.start_epoch, cfg.epochs):
        # Every random choice of this epoch derives from (seed, epoch): resuming here is exact.
        runtime.seed_everything(runtime.derive_seed(cfg.seed, epoch, info.rank))
        run.sampler.set_epoch(epoch)
        epoch_start = time.perf_counter()
        stats = train_one_epoch(
            run.train_model,
            run.train_loader,
            run.criterion,
            run.optimizer,
            run.scheduler,
            run.scaler,
            device,
            amp_dtype=run.amp_dtype,
            channels_last=cfg.channels_last,
            grad_clip=cfg.grad_clip,
            label_smoothing=cfg.label_smoothing,
            progress=run.progress,
            desc=f"epoch {epoch + 1}/{cfg.epochs}",
            transform=run.train_transform,
        )
        val = validate(
            run.model,
            run.val_loader,
            device,
            amp_dtype=run.amp_dtype,
            channels_last=cfg.channels_last,
            progress=run.progress,
        )
        row = {
            "epoch": epoch + 1,
            "lr": run.scheduler.get_last_lr()[0],
            **stats,
            **val,
            "epoch_seconds": time.perf_counter() - epoch_start,
        }
        improved = run.stopper.step(row["val_roc_auc"], row["val_loss"], epoch + 1)
        run.end_epoch(row, improved)  # history, best + last checkpoints, resume.pt (rank 0)
        if run.stopper.should_stop:
            run.log(f"early stopping: no better validation ROC-AUC for {cfg.patience} epoch(s)")
            break
    return run.result()
