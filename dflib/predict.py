"""Run saved detectors on your own images: files, folders and globs in, one row per image out.

    >>> df = predict_paths(["example/"], "models/resnet18.json")
    >>> df.columns.tolist()
    ['path', 'p_fake', 'label', 'threshold', 'model', 'error']
    >>> predict_ensemble(["example/"], ["models/resnet18.json", "models/vit.json"])

What ``dflib predict`` does, and what notebook 07 shows. Every image is read with
:func:`dflib.data.io.read_image_tensor` (any size and mode: greyscale, CMYK, 16-bit, alpha, ...
become RGB), resized and normalised as the model card says (:func:`eval_transform` with the
card's ``img_size`` and ``normalization``), and scored: ``p_fake = sigmoid(logit)``, called
``fake`` when ``p_fake >= threshold``. The threshold is the one chosen on Validation when the
detector was trained (in its card), else 0.5, unless you pass one.

A file that cannot be read (corrupt, truncated, zero bytes, a text file named ``.jpg``) gets a
row of its own with ``error`` filled and ``p_fake``/``label`` empty; it never stops the batch.

``faces=True`` (``dflib predict --faces``) finds the faces in each photo first and scores each
one cropped like a training image: one row per face, with the face columns of
:mod:`dflib.predict_faces` (``face``, box ``x0, y0, x1, y1``, ``note``); needs ``dflib[faces]``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn

from dflib.card import DEFAULT_THRESHOLD, ModelCard
from dflib.data.files import find_images
from dflib.evaluation.scoring import p_fake
from dflib.runtime import progress_bar

COLUMNS = ["path", "p_fake", "label", "threshold", "model", "error"]
DISPLAY_MAX_SIDE = 512  # explanation overlays are drawn on the original image, shrunk to this

Detector = tuple[nn.Module, ModelCard]
DetectorLike = str | os.PathLike | Detector


# --------------------------------------------------------------------------- detectors
def load_detectors(
    detectors: DetectorLike | Sequence[DetectorLike], device: str | torch.device = "cpu"
) -> list[Detector]:
    """``[(model, card), ...]`` from checkpoint paths and/or ready ``(model, card)`` pairs."""
    from dflib.checkpoint import CheckpointError, check_format, detector_paths, load_detector

    if isinstance(detectors, (str, os.PathLike)) or (
        isinstance(detectors, tuple) and len(detectors) == 2 and isinstance(detectors[0], nn.Module)
    ):
        detectors = [detectors]
    loaded = []
    for item in detectors:
        if isinstance(item, (str, os.PathLike)):
            check_format(item)
            weights, card = detector_paths(item)
            if Path(item).expanduser().is_dir():
                raise CheckpointError(
                    f"checkpoint {item} is a folder; pass one detector in it ({_available(Path(item).expanduser())})"
                )
            if not weights.exists() and not card.exists():
                raise CheckpointError(
                    f"checkpoint {item} does not exist (looked for {weights.name} and "
                    f"{card.name} in {weights.parent}); {_available(weights.parent)}"
                )
            loaded.append(load_detector(item, device=device))
        elif isinstance(item, tuple) and len(item) == 2 and isinstance(item[0], nn.Module):
            model, card = item
            loaded.append((model.to(device).eval(), ModelCard.from_dict(card)))
        else:
            raise TypeError(f"expected a checkpoint path or a (model, card) pair, got {type(item).__name__}")
    if not loaded:
        raise ValueError("no detector given; pass a checkpoint path (e.g. models/resnet18.json)")
    return loaded


def _available(folder: Path) -> str:
    """A hint listing the detectors saved in ``folder`` (or how to make one)."""
    have = (
        sorted(p.name for p in folder.glob("*.json") if p.with_suffix(".safetensors").is_file())
        if folder.is_dir()
        else []
    )
    if have:
        more = f" and {len(have) - 8} more" if len(have) > 8 else ""
        return f"detectors in {folder}: {', '.join(have[:8])}{more}"
    return "train one with `dflib train` or notebook 05, which save models/<name>.json"


def _check_threshold(threshold: float | None) -> float | None:
    if threshold is None:
        return None
    t = float(threshold)
    if not 0.0 <= t <= 1.0 or np.isnan(t):
        raise ValueError(f"threshold={threshold!r} is not a probability; use a value in [0, 1], e.g. 0.5")
    return t


def _names(detectors: Sequence[Detector]) -> list[str]:
    names, seen = [], {}
    for _, card in detectors:
        name = card.name
        seen[name] = seen.get(name, 0) + 1
        names.append(name if seen[name] == 1 else f"{name}_{seen[name]}")
    return names


# --------------------------------------------------------------------------- explanations
def explain_filenames(paths: Sequence[str | os.PathLike]) -> list[str]:
    """One PNG name per input path, unique even for equal names in different folders.

    The name is the path relative to the inputs' common folder with separators turned into
    ``__`` (``a/x/img.jpg`` and ``a/y/img.jpg`` give ``x__img.jpg.png`` and ``y__img.jpg.png``).
    """
    absolute = [os.path.abspath(p) for p in paths]
    try:
        common = os.path.commonpath([os.path.dirname(p) for p in absolute]) if absolute else ""
    except ValueError:  # different drives (Windows)
        common = ""
    names, used = [], set()
    for p in absolute:
        rel = os.path.relpath(p, common) if common else p.lstrip("\\/")
        base = re.sub(r"[^\w.\-]+", "_", rel.replace(os.sep, "__").replace("/", "__").replace(":", "")) or "image"
        name, k = f"{base}.png", 1
        while name.lower() in used:
            k += 1
            name = f"{base}-{k}.png"
        used.add(name.lower())
        names.append(name)
    return names


def _write_explanations(
    model: nn.Module, x: torch.Tensor, images: Sequence[torch.Tensor], targets: Sequence[Path]
) -> list[str]:
    """Heatmap overlays for one normalised batch ``x``, drawn on ``images`` (uint8, original
    aspect); returns an error text per image ('' when written)."""
    from PIL import Image

    from dflib.explain import explain, overlay

    try:
        with torch.enable_grad():
            heat = explain(model, x).detach().cpu()
    except Exception as e:  # an explanation is a bonus: its failure must not cost the predictions
        return [f"explanation failed ({type(e).__name__}: {e})"] * len(targets)
    errors = []
    for i, target in enumerate(targets):
        try:
            Image.fromarray(overlay(images[i], heat[i])).save(target, format="PNG")
            errors.append("")
        except Exception as e:
            errors.append(f"explanation not written ({type(e).__name__}: {e})")
    return errors


# --------------------------------------------------------------------------- scoring
class _Files(torch.utils.data.Dataset):
    """Reads one file: ``(index, inputs per detector or None, error or None, display image or None)``."""

    def __init__(self, paths: Sequence[Path], transforms: Sequence, display: bool = False) -> None:
        self.paths, self.transforms, self.display = list(paths), list(transforms), display
        # Decode large JPEGs at reduced scale exactly as the evaluation loader does (never below
        # the largest input size of the detectors), so predict and evaluate see the same pixels.
        sizes = [getattr(t, "decode_size", None) for t in self.transforms]
        self.read_options = {"min_size": max(sizes)} if sizes and None not in sizes else {}

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int):
        from dflib.data.io import read_image_tensor

        path = self.paths[i]
        try:
            img = read_image_tensor(path, **self.read_options)
            shown = None
            if self.display:  # explanations are drawn on the full-resolution decode (at most 512 px)
                shown = _display_image(read_image_tensor(path) if self.read_options else img)
            return i, [t(img) for t in self.transforms], None, shown
        except Exception as e:
            return i, None, _read_error(path, e), None


def _display_image(img: torch.Tensor, max_side: int = DISPLAY_MAX_SIDE) -> torch.Tensor:
    """The image an explanation is drawn on: the original, shrunk to at most ``max_side`` pixels."""
    from torchvision.transforms.v2 import functional as F

    h, w = img.shape[-2:]
    if max(h, w) <= max_side:
        return img
    scale = max_side / max(h, w)
    return F.resize(img, [max(1, round(h * scale)), max(1, round(w * scale))], antialias=True)


def _read_error(path: Path, error: Exception) -> str:
    """A short reason why ``path`` cannot be used (no file name: it is in the row already)."""
    from dflib.data.io import quick_check

    reason = quick_check(path) if path.is_file() else None
    if reason:
        return reason
    text = re.sub(r"\s*<_io\.\w+ object at 0x[0-9a-f]+>", "", str(error))
    prefix = f"{path}: "
    return text[len(prefix) :] if text.startswith(prefix) else f"{type(error).__name__}: {text}"


def _collate(items):
    return items


def _score(
    paths: Sequence[Path],
    detectors: Sequence[Detector],
    device: torch.device,
    *,
    batch_size: int,
    workers: int,
    progress: bool,
    explain_dir: Path | None = None,
) -> tuple[np.ndarray, list[str], list[str]]:
    """P(fake) ``(N, n_detectors)`` (NaN for unreadable files), read errors and explanation errors."""

    if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
        raise ValueError(f"batch_size={batch_size!r} is invalid; use an integer >= 1")
    if not isinstance(workers, int) or isinstance(workers, bool) or workers < 0:
        raise ValueError(
            f"--workers {workers!r} is invalid (workers= in Python); use 0 (read in this process) "
            f"or a number of reading processes"
        )
    data = _Files(paths, [card.transform() for _, card in detectors], display=explain_dir is not None)
    loader = torch.utils.data.DataLoader(
        data, batch_size=batch_size, shuffle=False, num_workers=workers, collate_fn=_collate
    )
    probs = np.full((len(paths), len(detectors)), np.nan)
    errors = [""] * len(paths)
    explain_errors = [""] * len(paths)
    targets = [explain_dir / n for n in explain_filenames(paths)] if explain_dir is not None else None
    with progress_bar(total=len(paths), desc="predict", unit="img", disable=not progress) as bar:
        for batch in loader:
            good = [(i, xs) for i, xs, err, _ in batch if err is None]
            shown = {i: img for i, _, _, img in batch}
            for i, _, err, _ in batch:
                if err is not None:
                    errors[i] = err
            if good:
                idx = [i for i, _ in good]
                for k, (model, _) in enumerate(detectors):
                    x = torch.stack([xs[k] for _, xs in good]).to(device)
                    probs[idx, k] = p_fake(model, x, _names(detectors)[k])
                    if targets is not None and k == 0:
                        written = _write_explanations(
                            model, x.clone(), [shown[i] for i in idx], [targets[i] for i in idx]
                        )
                        for i, e in zip(idx, written):
                            explain_errors[i] = e
            bar.update(len(batch))
    return probs, errors, explain_errors


def _prepare_explain_dir(explain_dir: str | os.PathLike) -> Path:
    folder = Path(explain_dir).expanduser()
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ValueError(
            f"cannot create the --explain folder {folder} ({e.strerror or e}); choose a writable folder"
        ) from None
    if not os.access(folder, os.W_OK):
        raise ValueError(f"the --explain folder {folder} is not writable; choose a writable folder")
    return folder


def _frame(
    paths: Sequence[Path], p_fake: np.ndarray, errors: Sequence[str], threshold: float, model: str
) -> pd.DataFrame:
    ok = ~np.isnan(p_fake)
    label = np.where(p_fake >= threshold, "fake", "real").astype(object)
    label[~ok] = None
    return pd.DataFrame(
        {
            "path": [os.fspath(p) for p in paths],
            "p_fake": p_fake,
            "label": label,
            "threshold": float(threshold),
            "model": model,
            "error": [e or None for e in errors],
        },
        columns=COLUMNS,
    )


def predict_paths(
    paths: Iterable[str | os.PathLike] | str | os.PathLike,
    checkpoint: DetectorLike,
    threshold: float | None = None,
    *,
    batch_size: int = 32,
    device: str | torch.device = "auto",
    explain_dir: str | os.PathLike | None = None,
    workers: int = 0,
    progress: bool = True,
    faces: bool = False,
    **face_options: float,
) -> pd.DataFrame:
    """Score every image under ``paths`` with one detector; one row per file, columns ``COLUMNS``.

    ``checkpoint`` is a checkpoint path (either file of the pair) or a ``(model, card)`` pair.
    ``threshold`` defaults to the card's validation-chosen threshold (else 0.5). Unreadable
    files get ``p_fake``/``label`` NaN and ``error`` filled (``error`` is NaN for good rows).
    ``explain_dir`` writes one heatmap overlay PNG per readable image (Grad-CAM for CNNs,
    attention rollout for ViTs, see :mod:`dflib.explain`); ``df.attrs["explanations"]`` maps
    each path to its PNG. ``faces=True`` scores each face found instead (one row per face, see
    :mod:`dflib.predict_faces`; ``face_options``: ``min_face``, ``max_pixels``, ``face_threshold``).
    """
    from dflib.runtime import select_device

    threshold = _check_threshold(threshold)
    files = find_images(paths)
    folder = _prepare_explain_dir(explain_dir) if explain_dir is not None else None
    dev = select_device(device)
    detectors = load_detectors(checkpoint, dev)
    if len(detectors) != 1:
        raise ValueError("predict_paths takes one detector; use predict_ensemble for several")
    t = detectors[0][1].threshold_or_default() if threshold is None else threshold
    if faces:
        return _predict_faces(
            files,
            detectors,
            dev,
            t,
            batch_size=batch_size,
            workers=workers,
            progress=progress,
            explain_dir=folder,
            **face_options,
        )
    probs, errors, explain_errors = _score(
        files, detectors, dev, batch_size=batch_size, workers=workers, progress=progress, explain_dir=folder
    )
    df = _frame(files, probs[:, 0], errors, t, _names(detectors)[0])
    if folder is not None:
        names = explain_filenames(files)
        df.attrs["explanations"] = {
            os.fspath(p): str(folder / n) for p, n, e, x in zip(files, names, errors, explain_errors) if not e and not x
        }
        df.attrs["explain_errors"] = {os.fspath(p): x for p, x in zip(files, explain_errors) if x}
    return df


def predict_ensemble(
    paths: Iterable[str | os.PathLike] | str | os.PathLike,
    checkpoints: Sequence[DetectorLike],
    threshold: float | None = None,
    *,
    batch_size: int = 32,
    device: str | torch.device = "auto",
    workers: int = 0,
    progress: bool = True,
    faces: bool = False,
    **face_options: float,
) -> pd.DataFrame:
    """Score with several detectors and average their P(fake) (a soft-voting ensemble).

    Each image is read once and prepared for each detector as its card says. The result has
    the ``COLUMNS`` of :func:`predict_paths` (``p_fake`` = the mean, ``model`` =
    ``ensemble(a+b+...)``) plus one ``p_fake_<name>`` column per detector. ``threshold``
    defaults to 0.5: the members' validation thresholds do not carry over to their average (pick
    one for the ensemble on validation scores, e.g. with :mod:`dflib.evaluation.scoring`).
    ``faces=True``: one row per face, as in :func:`predict_paths`.
    """
    from dflib.runtime import select_device

    threshold = _check_threshold(threshold)
    files = find_images(paths)
    dev = select_device(device)
    detectors = load_detectors(checkpoints, dev)
    if faces:
        t = DEFAULT_THRESHOLD if threshold is None else threshold
        return _predict_faces(
            files, detectors, dev, t, batch_size=batch_size, workers=workers, progress=progress, **face_options
        )
    probs, errors, _ = _score(files, detectors, dev, batch_size=batch_size, workers=workers, progress=progress)
    names = _names(detectors)
    mean = probs.mean(axis=1)
    t = DEFAULT_THRESHOLD if threshold is None else threshold
    label = names[0] if len(names) == 1 else f"ensemble({'+'.join(names)})"
    df = _frame(files, mean, errors, t, label)
    for k, name in enumerate(names):
        df[f"p_fake_{name}"] = probs[:, k]
    return df


def _predict_faces(
    files: Sequence[Path],
    detectors: Sequence[Detector],
    dev: torch.device,
    threshold: float,
    *,
    batch_size: int,
    workers: int,
    progress: bool,
    explain_dir: Path | None = None,
    **face_options: float,
) -> pd.DataFrame:
    """Face mode of :func:`predict_paths` and :func:`predict_ensemble`: one row per face."""
    from dflib.predict_faces import score_faces

    if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
        raise ValueError(f"batch_size={batch_size!r} is invalid; use an integer >= 1")
    names = _names(detectors)
    targets = [explain_dir / n for n in explain_filenames(files)] if explain_dir is not None else None
    res = score_faces(
        files,
        detectors,
        dev,
        batch_size=batch_size,
        workers=workers,
        progress=progress,
        threshold=threshold,
        read_error=_read_error,
        explain_targets=targets,
        **face_options,
    )
    label = names[0] if len(names) == 1 else f"ensemble({'+'.join(names)})"
    df = pd.concat([_frame(res.paths, res.probs.mean(axis=1), res.errors, threshold, label), res.columns], axis=1)
    if len(names) > 1:
        for k, name in enumerate(names):
            df[f"p_fake_{name}"] = res.probs[:, k]
    if explain_dir is not None:
        df.attrs["explanations"], df.attrs["explain_errors"] = res.explanations, res.explain_errors
    return df


def explanation_overlays(
    paths: Iterable[str | os.PathLike] | str | os.PathLike,
    checkpoint: DetectorLike,
    *,
    batch_size: int = 32,
    device: str | torch.device = "auto",
    max_side: int = DISPLAY_MAX_SIDE,
) -> dict[str, np.ndarray | None]:
    """``{path: heatmap overlay}`` for every image under ``paths``, in memory (notebook 07's gallery).

    The same overlays ``predict_paths(..., explain_dir=...)`` writes as PNGs: Grad-CAM for a CNN,
    attention rollout for a ViT (:func:`dflib.explain.explain`), computed on the input the
    detector sees and drawn on the original image shrunk to at most ``max_side`` pixels
    (``H x W x 3`` uint8). Keys are the paths as in the ``path`` column of the predictions;
    an unreadable file maps to ``None``.
    """
    from dflib.explain import explain, overlay
    from dflib.runtime import select_device

    if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
        raise ValueError(f"batch_size={batch_size!r} is invalid; use an integer >= 1")
    files = find_images(paths)
    dev = select_device(device)
    detectors = load_detectors(checkpoint, dev)
    if len(detectors) != 1:
        raise ValueError("explanation_overlays takes one detector; call it once per detector")
    model, card = detectors[0]
    data = _Files(files, [card.transform()], display=True)
    out: dict[str, np.ndarray | None] = {}
    for start in range(0, len(files), batch_size):
        batch = [data[i] for i in range(start, min(start + batch_size, len(files)))]
        good = [(i, xs[0], shown) for i, xs, err, shown in batch if err is None]
        for i, *_ in batch:
            out[os.fspath(files[i])] = None
        if not good:
            continue
        x = torch.stack([x for _, x, _ in good]).to(dev)
        with torch.enable_grad():
            heat = explain(model, x).detach().cpu()
        for k, (i, _, shown) in enumerate(good):
            out[os.fspath(files[i])] = overlay(_display_image(shown, max_side), heat[k])
    return out


# --------------------------------------------------------------------------- output
def format_table(df: pd.DataFrame) -> str:
    """A readable text table of predictions plus a one-line summary (what the CLI prints)."""
    rows = [
        [
            os.fspath(p),
            "" if np.isnan(v) else (f"{v:.4f}" if v >= 1e-4 else f"{v:.1e}"),
            lab if isinstance(lab, str) else "",
            err if isinstance(err, str) else "",
        ]
        for p, v, lab, err in zip(df["path"], df["p_fake"], df["label"], df["error"])
    ]
    header = ["path", "p_fake", "label", "error"]
    if not any(r[3] for r in rows):
        header, rows = header[:3], [r[:3] for r in rows]
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows)]
    widths[-1] = 0  # the last column is not padded
    lines = ["  ".join(str(x).ljust(w) for x, w in zip(line, widths)).rstrip() for line in [header, *rows]]
    n_fake = int((df["label"] == "fake").sum())
    n_real = int((df["label"] == "real").sum())
    n_bad = int(df["error"].notna().sum())
    lines.append(
        f"{len(df)} image(s), {df['model'].iloc[0]}, threshold {df['threshold'].iloc[0]:.4g}: "
        f"{n_fake} fake, {n_real} real" + (f", {n_bad} unreadable" if n_bad else "")
    )
    return "\n".join(lines)


def check_output_path(out: str | os.PathLike) -> Path:
    """Fail early (before any model runs) when the CSV cannot be written there."""
    from dflib.checkpoint import check_output_file

    if Path(out).expanduser().is_dir():
        raise ValueError(f"--out {out} is a folder; give a file name, e.g. {Path(out) / 'predictions.csv'}")
    return check_output_file(out, "--out")


def write_csv(df: pd.DataFrame, out: str | os.PathLike) -> Path:
    """Write the predictions atomically (columns ``COLUMNS`` and any extra per-model columns)."""
    from dflib.checkpoint import atomic_write_text

    path = check_output_path(out)
    try:
        atomic_write_text(path, df.to_csv(index=False, float_format="%.6f"))
    except OSError as e:
        raise ValueError(f"cannot write --out {path} ({e.strerror or e}); choose a writable location") from None
    return path


__all__ = [
    "predict_paths",
    "predict_ensemble",
    "load_detectors",
    "explain_filenames",
    "explanation_overlays",
    "format_table",
    "write_csv",
    "check_output_path",
    "COLUMNS",
]
