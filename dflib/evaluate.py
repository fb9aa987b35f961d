"""Metrics of a real/fake detector, a validation-chosen threshold, and scoring a whole loader.

Convention: labels are fake = 1, real = 0; a score is P(fake); an image is called fake when
``score >= threshold``. The metrics come from scikit-learn; this module only fixes the
convention and turns the one-class case (where ROC-AUC is undefined) into a clear error.

    >>> scores, labels = predict_scores(model, loader, device="cpu")
    >>> summarize(labels, scores, threshold=0.5)["roc_auc"]
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import torch
from sklearn import metrics as skm

THRESHOLD_METHODS = ("youden",)


def _as_arrays(labels, scores) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(labels).astype(np.int64).ravel()
    s = np.asarray(scores, dtype=np.float64).ravel()
    if y.shape != s.shape:
        raise ValueError(f"labels and scores differ in length: {y.size} vs {s.size}")
    if y.size == 0:
        raise ValueError("no samples to evaluate (empty labels/scores)")
    if not np.isin(y, (0, 1)).all():
        raise ValueError("labels must be 0 (real) or 1 (fake)")
    if not np.isfinite(s).all():
        raise ValueError("scores contain NaN or infinity; the model diverged (lower the learning rate)")
    return y, s


def _need_both_classes(y: np.ndarray, what: str) -> None:
    if np.unique(y).size < 2:
        only = "fake" if y[0] == 1 else "real"
        raise ValueError(f"{what} needs both real and fake images, but all {y.size} are {only}; "
                         f"evaluate on a split that holds both classes")


def roc_auc(labels, scores) -> float:
    """Area under the ROC curve: P(a random fake scores higher than a random real)."""
    y, s = _as_arrays(labels, scores)
    _need_both_classes(y, "ROC-AUC")
    return float(skm.roc_auc_score(y, s))


def average_precision(labels, scores) -> float:
    """Area under the precision-recall curve with fake as the positive class."""
    y, s = _as_arrays(labels, scores)
    _need_both_classes(y, "average precision")
    return float(skm.average_precision_score(y, s))


def accuracy(labels, scores, threshold: float = 0.5) -> float:
    """Fraction of images classified right when fake means ``score >= threshold``."""
    y, s = _as_arrays(labels, scores)
    return float(skm.accuracy_score(y, (s >= threshold).astype(np.int64)))


def balanced_accuracy(labels, scores, threshold: float = 0.5) -> float:
    """Mean of the accuracy on reals and on fakes (insensitive to class imbalance)."""
    y, s = _as_arrays(labels, scores)
    return float(skm.balanced_accuracy_score(y, (s >= threshold).astype(np.int64)))


def choose_threshold(labels, scores, method: str = "youden") -> float:
    """The decision threshold that maximises Youden's J = TPR - FPR on these (validation) scores.

    Maximising J is the same as maximising balanced accuracy ((TPR + TNR) / 2 = (J + 1) / 2).
    The result is one of the scores (fake when ``score >= threshold``); among equally good
    thresholds the highest is taken.
    """
    if method not in THRESHOLD_METHODS:
        raise ValueError(f"unknown threshold method {method!r}; choose one of {THRESHOLD_METHODS}")
    y, s = _as_arrays(labels, scores)
    _need_both_classes(y, "choosing a threshold")
    fpr, tpr, thresholds = skm.roc_curve(y, s, drop_intermediate=False)
    finite = np.isfinite(thresholds)  # the first threshold is +inf (nothing called fake)
    j = np.where(finite, tpr - fpr, -np.inf)
    best = int(np.flatnonzero(j >= j.max() - 1e-12)[0])  # thresholds descend: first = highest
    return float(thresholds[best])


def summarize(labels, scores, threshold: float | None = None) -> dict[str, Any]:
    """All headline numbers of one evaluation as a JSON-friendly dict.

    Always: ``n``, ``n_real``, ``n_fake``, ``roc_auc``, ``average_precision``, ``accuracy`` (at
    0.5). With ``threshold``: also ``threshold``, ``accuracy_at_threshold`` and
    ``balanced_accuracy_at_threshold``.
    """
    y, s = _as_arrays(labels, scores)
    out: dict[str, Any] = {
        "n": int(y.size),
        "n_real": int((y == 0).sum()),
        "n_fake": int((y == 1).sum()),
        "roc_auc": roc_auc(y, s),
        "average_precision": average_precision(y, s),
        "accuracy": accuracy(y, s, 0.5),
    }
    if threshold is not None:
        out["threshold"] = float(threshold)
        out["accuracy_at_threshold"] = accuracy(y, s, threshold)
        out["balanced_accuracy_at_threshold"] = balanced_accuracy(y, s, threshold)
    return out


@torch.inference_mode()
def predict_logits(
    model: torch.nn.Module,
    loader,
    device: str | torch.device = "cpu",
    *,
    amp_dtype: torch.dtype | None = None,
    channels_last: bool = False,
    progress: bool = False,
    desc: str = "predict",
) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits ``(N,)`` (float32, on the CPU) and labels ``(N,)`` for every batch of ``loader``."""
    from tqdm.auto import tqdm

    device = torch.device(device)
    was_training = model.training
    model.eval()
    logits, labels = [], []
    try:
        for x, y in tqdm(loader, desc=desc, disable=not progress, leave=False, unit="batch"):
            x = x.to(device, non_blocking=True)
            if channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            with torch.autocast(device.type, dtype=amp_dtype or torch.float32, enabled=amp_dtype is not None):
                out = model(x)
            logits.append(out.float().reshape(-1).cpu())
            labels.append(torch.as_tensor(y).reshape(-1).cpu())
    finally:
        model.train(was_training)
    if not logits:
        return torch.empty(0), torch.empty(0, dtype=torch.int64)
    return torch.cat(logits), torch.cat(labels).long()


def predict_scores(
    model: torch.nn.Module,
    loader,
    device: str | torch.device = "cpu",
    **kwargs,
) -> tuple[np.ndarray, np.ndarray]:
    """Scores P(fake) and labels (numpy arrays) for every image of ``loader``, in loader order.

    ``kwargs`` go to :func:`predict_logits` (``amp_dtype``, ``channels_last``, ``progress``).
    """
    logits, labels = predict_logits(model, loader, device, **kwargs)
    return torch.sigmoid(logits).double().numpy(), labels.numpy()


def evaluate_checkpoint(
    checkpoint: str | os.PathLike,
    data_dir: str | os.PathLike = "",
    split: str = "Test",
    *,
    batch_size: int = 64,
    device: str = "auto",
    workers: int | None = None,
    limit_per_class: int | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Score a saved detector on one split; what ``dflib evaluate`` prints.

    The model, input size and normalisation come from the checkpoint's card; the threshold is
    the one chosen on validation when it was trained (``accuracy_at_threshold`` uses it).
    """
    from dflib.checkpoint import load_detector
    from dflib.data import DeepfakeDataset, eval_transform, make_loader, resolve_data_dir
    from dflib.runtime import select_device

    dev = select_device(device)
    model, card = load_detector(checkpoint, device=dev)
    norm = card.get("normalization", {})
    transform_args = {k: tuple(norm[k]) for k in ("mean", "std") if k in norm}
    root = resolve_data_dir(data_dir)
    ds = DeepfakeDataset(root, split, eval_transform(int(card["img_size"]), **transform_args),
                         limit_per_class=limit_per_class)
    loader = make_loader(ds, batch_size, train=False, num_workers=workers, device=dev)
    scores, labels = predict_scores(model, loader, dev, progress=progress, desc=f"evaluate {ds.split}")
    threshold = card.get("threshold", {}).get("value", 0.5)
    result = summarize(labels, scores, threshold=threshold)
    return {"checkpoint": str(checkpoint), "model": card.get("name"), "data": str(root),
            "split": ds.split, "img_size": int(card["img_size"]), **result}
