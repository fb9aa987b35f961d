"""Scoring detectors: logits and P(fake) for a loader, a saved detector on a split, several side by side.

Convention: labels are fake = 1, real = 0; a score is P(fake); an image is called fake when
``score >= threshold``. The model's input size and normalisation always come from its card
(:meth:`dflib.card.ModelCard.transform`).

    >>> scores, labels = predict_scores(model, loader, device="cpu")
    >>> summarize(labels, scores, threshold=0.5)["roc_auc"]
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from dflib.card import ModelCard
from dflib.evaluation.metrics import accuracy, average_precision, balanced_accuracy, check_scores, roc_auc
from dflib.runtime import progress_bar

__all__ = [
    "summarize",
    "score_loader",
    "LoaderScores",
    "skip_report",
    "format_skips",
    "predict_logits",
    "predict_scores",
    "evaluate_checkpoint",
    "load_checkpoints",
    "ScoredSplit",
    "score_split",
    "p_fake",
]


def p_fake(model: torch.nn.Module, x: torch.Tensor, name: str, what: str = "images") -> np.ndarray:
    """P(fake) (float64, on the CPU) of one batch ``x`` already on the model's device.

    Refuses, naming the detector, a model that does not give one logit per image (``num_classes=1``):
    its outputs cannot be read as P(fake). ``what`` names the batch's items in that message.
    """
    with torch.inference_mode():
        logits = model(x).float()
    if logits.numel() != len(x):
        raise ValueError(
            f"{name} gives {tuple(logits.shape)} outputs for {len(x)} {what}; "
            f"dflib predict needs a binary detector (num_classes=1)"
        )
    return torch.sigmoid(logits.reshape(-1)).double().cpu().numpy()


def summarize(labels, scores, threshold: float | None = None) -> dict[str, Any]:
    """All headline numbers of one evaluation as a JSON-friendly dict.

    Always: ``n``, ``n_real``, ``n_fake``, ``roc_auc``, ``average_precision``, ``accuracy`` (at
    0.5). With ``threshold``: also ``threshold``, ``accuracy_at_threshold`` and
    ``balanced_accuracy_at_threshold``.
    """
    y, s = check_scores(labels, scores)
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


@dataclass
class LoaderScores:
    """What :func:`score_loader` returns: one logit and label per image that was read, and the skipped ones."""

    logits: torch.Tensor  # (N,) float32, CPU
    labels: torch.Tensor  # (N,) int64
    index: torch.Tensor | None  # (N,) dataset index of each row (scoring loaders), else None
    skipped: list[tuple[int, int, str]]  # (dataset index, label, reason) of each image that could not be read


@torch.inference_mode()
def score_loader(
    model: torch.nn.Module,
    loader,
    device: str | torch.device = "cpu",
    *,
    amp_dtype: torch.dtype | None = None,
    channels_last: bool = False,
    progress: bool = False,
    desc: str = "predict",
) -> LoaderScores:
    r"""Logits for every image ``loader`` could read; the others are listed, never replaced.

    ``loader`` yields ``(x, y)`` batches or :class:`dflib.data.dataset.ReadBatch`\ es
    (:func:`dflib.data.dataset.make_scoring_loader`), whose unreadable images are left out.
    """

    device = torch.device(device)
    was_training = model.training
    model.eval()
    logits, labels, index, skipped = [], [], [], []
    try:
        for batch in progress_bar(loader, desc=desc, disable=not progress, leave=False, unit="batch"):
            x, y = batch[0], batch[1]
            if len(batch) == 4:  # a ReadBatch
                skipped += batch.skipped
                index.append(batch.index)
                if len(y) == 0:
                    continue
            x = x.to(device, non_blocking=True)
            if channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            with torch.autocast(device.type, dtype=amp_dtype or torch.float32, enabled=amp_dtype is not None):
                out = model(x)
            logits.append(out.float().reshape(-1).cpu())
            labels.append(torch.as_tensor(y).reshape(-1).cpu())
    finally:
        model.train(was_training)

    def cat(parts: list[torch.Tensor], dtype: torch.dtype) -> torch.Tensor:
        return torch.cat(parts) if parts else torch.empty(0, dtype=dtype)

    return LoaderScores(
        cat(logits, torch.float32), cat(labels, torch.int64).long(), cat(index, torch.int64) if index else None, skipped
    )


def predict_logits(
    model: torch.nn.Module, loader, device: str | torch.device = "cpu", **kwargs
) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits ``(N,)`` (float32, on the CPU) and labels ``(N,)`` of the images ``loader`` could read.

    ``kwargs`` go to :func:`score_loader` (``amp_dtype``, ``channels_last``, ``progress``, ``desc``);
    use it directly to know which images were skipped.
    """
    out = score_loader(model, loader, device, **kwargs)
    if out.skipped:
        warnings.warn(
            f"{len(out.skipped)} image(s) could not be read and were left out, e.g. dataset index "
            f"{out.skipped[0][0]}: {out.skipped[0][2]}",
            stacklevel=2,
        )
    return out.logits, out.labels


def skip_report(dataset: Any, skipped: Sequence[tuple[int, int, str]] = ()) -> dict[str, Any]:
    """Every file of ``dataset`` that no number is computed on: left out when it was built
    (``dataset.bad_files``) or unreadable while scoring (``skipped``). JSON-friendly."""
    from dflib import CLASS_NAMES

    files = [
        {"path": str(p), "class": CLASS_NAMES[label], "reason": r, "when": "screening"}
        for (p, r), label in zip(getattr(dataset, "bad_files", []), getattr(dataset, "bad_labels", []))
    ]
    files += [
        {"path": str(dataset.samples[i][0]), "class": CLASS_NAMES[label], "reason": r, "when": "decoding"}
        for i, label, r in skipped
    ]
    by_class = {name: sum(f["class"] == name for f in files) for name in CLASS_NAMES}
    return {"count": len(files), "by_class": by_class, "files": files}


def format_skips(report: dict[str, Any], what: str, max_listed: int = 10) -> str:
    """The lines a command prints about the files of ``report`` (:func:`skip_report`) that were left out."""
    if not report["count"]:
        return f"{what}: every image was read"
    counts = ", ".join(f"{k} {v}" for k, v in report["by_class"].items() if v)
    lines = [f"{what}: {report['count']} unreadable image(s) left out ({counts}); no number includes them"]
    lines += [f"  skipped {f['class']}: {f['path']}: {f['reason']}" for f in report["files"][:max_listed]]
    if report["count"] > max_listed:
        lines.append(f"  ... and {report['count'] - max_listed} more (see 'skipped' in the JSON)")
    return "\n".join(lines)


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
    from dflib.data import DeepfakeDataset, resolve_data_dir
    from dflib.data.dataset import make_scoring_loader
    from dflib.evaluation.metrics import require_both_classes
    from dflib.runtime import select_device

    dev = select_device(device)
    model, card = load_detector(checkpoint, device=dev)
    root = resolve_data_dir(data_dir)
    with warnings.catch_warnings():  # the files left out are in the result's "skipped", with their reasons
        warnings.filterwarnings("ignore", message=".*unreadable file", category=UserWarning)
        ds = DeepfakeDataset(root, split, card.transform(), limit_per_class=limit_per_class)
    loader = make_scoring_loader(ds, batch_size, num_workers=workers, device=dev)
    out = score_loader(model, loader, dev, progress=progress, desc=f"evaluate {ds.split}")
    skipped = skip_report(ds, out.skipped)
    labels = out.labels.numpy()
    if labels.size == 0:
        raise ValueError(
            f"no image of {ds.split} could be read ({skipped['count']} unreadable, e.g. "
            f"{skipped['files'][0]['path']}: {skipped['files'][0]['reason']}); check the folder "
            f"with `dflib check-data {root}`"
        )
    try:
        require_both_classes(labels, f"the readable images of {ds.split}")
    except ValueError as e:
        raise ValueError(
            f"{e}; {skipped['count']} unreadable image(s) were left out "
            f"({skipped['by_class']}): replace them (`dflib check-data` lists them)"
        ) from None
    result = summarize(labels, torch.sigmoid(out.logits).double().numpy(), threshold=card.threshold_or_default())
    return {
        "checkpoint": str(checkpoint),
        "model": card.name,
        "data": str(root),
        "split": ds.split,
        "img_size": card.img_size,
        **result,
        "n_files": len(ds) + len(ds.bad_files),
        "skipped": skipped,
    }


# --- Several trained detectors side by side (notebook 06) --------------------------------


def load_checkpoints(
    models_dir: str | os.PathLike, names: Sequence[str], device: str | torch.device = "cpu"
) -> dict[str, tuple[torch.nn.Module, ModelCard]]:
    """``{name: (model in eval mode, card)}`` from ``<models_dir>/<name>.safetensors`` (+ ``.json``).

    Every name is checked before anything is loaded, so one error lists *all* the missing
    detectors and says how to make them (notebook 05 / ``make run`` / ``dflib train``).
    """
    from dflib.checkpoint import CheckpointError, detector_paths, load_detector

    if isinstance(names, str):
        names = [names]
    names = list(names)
    if not names:
        raise ValueError("no detector names given; pass e.g. ['resnet18_w16'] (files <name>.safetensors + .json)")
    folder = Path(models_dir).expanduser()
    missing = [name for name in names if not detector_paths(folder / name)[0].is_file()]
    if missing:
        have = sorted(p.stem for p in folder.glob("*.safetensors")) if folder.is_dir() else []
        where = (
            f"{folder} holds {', '.join(have)}"
            if have
            else f"{folder} {'holds no .safetensors file' if folder.is_dir() else 'does not exist'}"
        )
        raise CheckpointError(
            f"missing trained detector(s) {', '.join(missing)}: no {', '.join(m + '.safetensors' for m in missing)} "
            f"in {folder.resolve()} ({where}). Run notebooks/05_training.ipynb first (or `make run`, which runs "
            f"the notebooks in order), or train one with `python -m dflib train --model NAME --out {folder}`; "
            f"or point models_dir at the folder that holds them"
        )
    return {name: load_detector(folder / name, device=device) for name in names}


@dataclass
class ScoredSplit:
    """One detector's outputs on one split, in dataset order (``dataset.paths[i]`` is image ``i``)."""

    split: str
    logits: np.ndarray
    labels: np.ndarray
    dataset: Any
    index: np.ndarray | None = None  # dataset index of each row (None: row i is dataset image i)
    skipped: dict[str, Any] | None = None  # :func:`skip_report` of the files no score was computed on

    @property
    def scores(self) -> np.ndarray:
        """P(fake) = sigmoid(logit), float64."""
        return torch.sigmoid(torch.as_tensor(self.logits, dtype=torch.float64)).numpy()

    @property
    def paths(self) -> list[Path]:
        """The file of each row (unreadable files have no row)."""
        paths = list(self.dataset.paths)
        return paths if self.index is None else [paths[i] for i in self.index]


def score_split(
    model: torch.nn.Module,
    card: ModelCard,
    data_dir: str | os.PathLike,
    split: str,
    *,
    batch_size: int = 64,
    device: str | torch.device = "cpu",
    limit_per_class: int | None = None,
    seed: int = 0,
    workers: int | None = 0,
    progress: bool = False,
) -> ScoredSplit:
    """Score every image of ``split`` with the input size and normalisation of the model's card.

    ``limit_per_class`` keeps a seeded subset (the same files for every model with the same
    ``seed``), for smoke runs.
    """
    from dflib.data import DeepfakeDataset
    from dflib.data.dataset import make_scoring_loader

    card = ModelCard.from_dict(card)
    ds = DeepfakeDataset(data_dir, split, card.transform(), limit_per_class=limit_per_class or None, seed=seed)
    loader = make_scoring_loader(ds, batch_size, num_workers=workers, device=device)
    out = score_loader(model, loader, device, progress=progress, desc=f"{card.name} on {ds.split}")
    skipped = skip_report(ds, out.skipped)
    if out.skipped:
        warnings.warn(format_skips(skipped, f"{card.name} on {ds.split}"), stacklevel=2)
        # Keep row i == dataset image i (notebooks index both alike): the unreadable ones leave the dataset.
        gone = {i for i, _, _ in out.skipped}
        ds.bad_files += [(ds.samples[i][0], r) for i, _, r in out.skipped]
        ds.bad_labels += [label for _, label, _ in out.skipped]
        ds.samples = [smp for i, smp in enumerate(ds.samples) if i not in gone]
        ds.targets = [label for _, label in ds.samples]
    return ScoredSplit(ds.split, out.logits.double().numpy(), out.labels.numpy(), ds, None, skipped)
