"""Robustness: how ROC-AUC falls when test images are re-compressed, blurred, resized, cropped, brightened.

Images in the wild go through messengers and social networks that re-encode, downscale and
crop them; a detector that keys on fine generator artefacts loses them first. Every
degradation here is deterministic (no randomness) and acts on the *decoded* full-resolution image
(the file as read by :func:`dflib.data.read_image_tensor`), before the model's own resize + normalise
(:func:`dflib.data.eval_transform`), as it would happen to a file before it reaches the detector.
The clean reference (``none``) reads each file exactly as ``evaluate`` and ``predict`` do (reduced
JPEG decoding, :data:`dflib.data.transforms.REDUCED_DECODING`); a degraded image is pixels, which
are resized like any non-JPEG input.

    >>> df = robustness_sweep({"resnet": model}, test_dataset, img_size=128, levels=SMOKE_SWEEP)
    >>> df.pivot_table(index=["degradation", "level"], columns="model", values="roc_auc")
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import torch
from PIL import Image
from torch import nn
from torchvision.transforms.v2 import functional as TF

from dflib.data.io import ImageReadError, read_image_tensor
from dflib.data.transforms import IMAGENET_MEAN, IMAGENET_STD, eval_transform
from dflib.evaluation.metrics import accuracy, roc_auc
from dflib.runtime import progress_bar

Img = torch.Tensor | Image.Image


def _to_tensor(img: Img) -> torch.Tensor:
    if isinstance(img, Image.Image):
        return torch.from_numpy(np.asarray(img.convert("RGB")).copy()).permute(2, 0, 1).contiguous()
    if isinstance(img, torch.Tensor) and img.ndim == 3:
        return img
    raise ValueError(
        f"expected a PIL image or a (C, H, W) tensor, got {type(img).__name__}"
        f"{' of shape ' + str(tuple(img.shape)) if isinstance(img, torch.Tensor) else ''}"
    )


def _like(out: torch.Tensor, original: Img) -> Img:
    if isinstance(original, Image.Image):
        return Image.fromarray(out.permute(1, 2, 0).numpy())
    return out


def _level(value: Any, name: str, ok: Callable[[float], bool], rule: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.number)) or not ok(float(value)):
        raise ValueError(f"{name} level {value!r} is invalid; use {rule}")
    return float(value)


def jpeg(img: Img, quality: int) -> Img:
    """Re-encode as JPEG at ``quality`` (1-100). Float tensors in [0, 1] are rounded to 8 bits first."""
    q = int(_level(quality, "jpeg", lambda v: 1 <= v <= 100 and v == int(v), "an integer quality from 1 to 100"))
    x = _to_tensor(img)
    if x.dtype.is_floating_point:
        u8 = (x.clamp(0, 1) * 255).round().to(torch.uint8)
        return TF.jpeg(u8, q).float() / 255
    return _like(TF.jpeg(x, q), img)


def gaussian_blur(img: Img, sigma: float) -> Img:
    """Gaussian blur with standard deviation ``sigma`` pixels (kernel 2*ceil(3 sigma)+1); 0 = unchanged."""
    s = _level(sigma, "blur", lambda v: v >= 0, "a sigma >= 0 in pixels")
    if s == 0:
        return img
    x = _to_tensor(img)
    k = min(2 * math.ceil(3 * s) + 1, 2 * (min(x.shape[-2:]) // 2) - 1)
    return _like(TF.gaussian_blur(x, [k, k], [s, s]), img)


def resample(img: Img, factor: float) -> Img:
    """Downscale by ``factor`` (0 < factor <= 1) and upscale back to the original size; 1 = unchanged."""
    f = _level(factor, "resize", lambda v: 0 < v <= 1, "a factor in (0, 1], e.g. 0.5 = half the pixels per side")
    if f == 1:
        return img
    x = _to_tensor(img)
    h, w = x.shape[-2:]
    small = TF.resize(x, [max(1, round(h * f)), max(1, round(w * f))], antialias=True)
    return _like(TF.resize(small, [h, w], antialias=True), img)


def center_zoom(img: Img, fraction: float) -> Img:
    """Keep the central ``fraction`` of each side and scale it back to the original size; 1 = unchanged."""
    f = _level(fraction, "crop", lambda v: 0 < v <= 1, "a fraction of the side in (0, 1], e.g. 0.8")
    if f == 1:
        return img
    x = _to_tensor(img)
    h, w = x.shape[-2:]
    crop = TF.center_crop(x, [max(1, round(h * f)), max(1, round(w * f))])
    return _like(TF.resize(crop, [h, w], antialias=True), img)


def brightness(img: Img, factor: float) -> Img:
    """Multiply brightness by ``factor`` (0 = black, 1 = unchanged, 1.5 = 50 % brighter, clipped)."""
    f = _level(factor, "brightness", lambda v: v >= 0, "a factor >= 0 (1 = unchanged)")
    if f == 1:
        return img
    return _like(TF.adjust_brightness(_to_tensor(img), f), img)


DEGRADATIONS: dict[str, Callable[[Img, float], Img]] = {
    "jpeg": jpeg,
    "blur": gaussian_blur,
    "resize": resample,
    "crop": center_zoom,
    "brightness": brightness,
}
LEVEL_LABELS = {
    "jpeg": "JPEG quality (lower = stronger compression)",
    "blur": "Gaussian blur sigma (pixels)",
    "resize": "downscale factor per side (then upscaled back)",
    "crop": "central crop, fraction of the side (zoom)",
    "brightness": "brightness factor (1 = unchanged)",
}
DEFAULT_SWEEP: dict[str, tuple[float, ...]] = {
    "jpeg": (100, 90, 70, 50, 30),
    "blur": (0.0, 0.5, 1.0, 2.0, 3.0),
    "resize": (1.0, 0.75, 0.5, 0.35, 0.25),
    "crop": (1.0, 0.9, 0.8, 0.7, 0.6),
    "brightness": (0.5, 0.75, 1.0, 1.25, 1.5),
}
SMOKE_SWEEP: dict[str, tuple[float, ...]] = {
    "jpeg": (90, 50, 30),
    "blur": (0.0, 1.0, 3.0),
    "resize": (1.0, 0.5, 0.25),
    "crop": (1.0, 0.8, 0.6),
    "brightness": (0.5, 1.0, 1.5),
}


def degrade(img: Img, name: str, level: float) -> Img:
    """Apply degradation ``name`` (a key of :data:`DEGRADATIONS`) at ``level``; same type out as in."""
    if name not in DEGRADATIONS:
        raise ValueError(f"unknown degradation {name!r}; choose one of {sorted(DEGRADATIONS)}")
    return DEGRADATIONS[name](img, level)


# --- The sweep ----------------------------------------------------------------------------


def _per_model(value, names: list[str], what: str, is_single: Callable[[Any], bool]) -> dict[str, Any]:
    if is_single(value):
        return {n: value for n in names}
    missing = [n for n in names if n not in value]
    if missing:
        raise ValueError(f"{what} has no entry for model(s) {missing}; give one value or one per model")
    return {n: value[n] for n in names}


def _load_items(data, labels, limit: int | None, seed: int) -> tuple[Callable[..., torch.Tensor], list[int]]:
    """A loader ``(j, min_size=None) -> uint8 image`` and the labels, from a dataset, a list of paths or a
    tensor (``min_size``: reduced JPEG decoding, as :func:`read_image_tensor`; ignored for tensors)."""
    if hasattr(data, "samples") and hasattr(data, "load"):  # DeepfakeDataset: labels come with it
        load, n = data.load, len(data.samples)
        y = [int(t) for _, t in data.samples] if labels is None else [int(v) for v in labels]
    elif labels is None:
        raise ValueError("robustness_sweep on a list of paths or a tensor needs labels (fake = 1, real = 0)")
    elif isinstance(data, torch.Tensor):
        if data.ndim != 4:
            raise ValueError(f"a tensor of images must be (N, 3, H, W), got shape {tuple(data.shape)}")
        load, n, y = (lambda i, min_size=None: data[i]), data.shape[0], [int(v) for v in labels]
    else:
        paths = [os.fspath(p) for p in data]
        load, n, y = (
            (lambda i, min_size=None: read_image_tensor(paths[i], min_size=min_size)),
            len(paths),
            [int(v) for v in labels],
        )
    if len(y) != n:
        raise ValueError(f"labels ({len(y)}) and images ({n}) differ in number")
    if any(v not in (0, 1) for v in y):
        raise ValueError("labels must be 0 (real) or 1 (fake)")
    index = list(range(n))
    if limit is not None:
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 2:
            raise ValueError(f"limit must be an integer >= 2 (images, split between the classes), got {limit!r}")
        rng = np.random.default_rng(seed)
        keep: list[int] = []
        for cls in (0, 1):
            members = np.asarray([i for i in index if y[i] == cls], dtype=np.int64)
            keep += rng.permutation(members)[: limit // 2].tolist()
        index = sorted(keep)
    return (lambda j, min_size=None: load(index[j], min_size)), [y[i] for i in index]


@torch.inference_mode()
def robustness_sweep(
    models: nn.Module | Mapping[str, nn.Module],
    data,
    labels: Sequence[int] | None = None,
    *,
    img_size: int | Mapping[str, int] = 128,
    normalization: Mapping[str, Any] | None = None,
    levels: Mapping[str, Sequence[float]] | None = None,
    device: str | torch.device = "cpu",
    batch_size: int = 32,
    limit: int | None = None,
    thresholds: float | Mapping[str, float] = 0.5,
    seed: int = 0,
    progress: bool = True,
) -> pd.DataFrame:
    """ROC-AUC and accuracy of every model under every degradation level: a tidy DataFrame.

    ``data`` is a :class:`~dflib.data.DeepfakeDataset` (labels from it), a list of image paths
    or a uint8 ``(N, 3, H, W)`` tensor (both with ``labels``). ``img_size`` and ``normalization``
    (``{"mean": ..., "std": ...}``, ImageNet by default) and ``thresholds`` can be one value or a
    mapping per model (as in each model's card). ``levels`` maps degradation -> levels
    (:data:`DEFAULT_SWEEP`; :data:`SMOKE_SWEEP` for quick runs); ``limit`` keeps a seeded,
    class-balanced subset of that many images.

    Columns: ``model, degradation, level, roc_auc, accuracy, n``. The first rows per model have
    ``degradation == "none"``: the clean reference.
    """
    models = {"model": models} if isinstance(models, nn.Module) else dict(models)
    names = list(models)
    sizes = _per_model(img_size, names, "img_size", lambda v: isinstance(v, int))
    norms = _per_model(normalization, names, "normalization", lambda v: v is None or "mean" in v or "std" in v)
    thrs = _per_model(thresholds, names, "thresholds", lambda v: isinstance(v, (int, float)))
    sweep = dict(DEFAULT_SWEEP if levels is None else levels)
    probe = torch.zeros(3, 8, 8, dtype=torch.uint8)
    for name, lvs in sweep.items():  # check every level now, not after minutes of scoring
        for lv in lvs:
            degrade(probe, name, lv)
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size!r}")
    transforms = {
        m: eval_transform(
            int(sizes[m]),
            tuple((norms[m] or {}).get("mean", IMAGENET_MEAN)),
            tuple((norms[m] or {}).get("std", IMAGENET_STD)),
        )
        for m in names
    }
    load, y = _load_items(data, labels, limit, seed)
    decode_sizes = {m: getattr(transforms[m], "decode_size", None) for m in names}
    device = torch.device(device)
    modes = {m: models[m].training for m in names}
    tasks = [("none", 0.0)] + [(d, float(lv)) for d, lvs in sweep.items() for lv in lvs]
    scores: dict[tuple[str, str, float], list[torch.Tensor]] = {(m, d, lv): [] for m in names for d, lv in tasks}
    keep: list[int] = []

    try:
        for m in names:
            models[m].eval()
        for start in progress_bar(
            range(0, len(y), batch_size), desc="robustness sweep", disable=not progress, unit="batch"
        ):
            imgs, ids, clean = [], [], {m: [] for m in names}
            for j in range(start, min(start + batch_size, len(y))):
                try:
                    full = load(j)
                    # the clean reference is read exactly as evaluate / predict read the file (reduced
                    # JPEG decoding where the model's transform allows it); degradations act on the full image
                    reduced = {ds: (full if ds is None else load(j, ds)) for ds in decode_sizes.values()}
                    imgs.append(full)
                    for m in names:
                        clean[m].append(reduced[decode_sizes[m]])
                    ids.append(j)
                except ImageReadError as e:
                    warnings.warn(f"robustness sweep skips {e}", stacklevel=2)
            if not imgs:
                continue
            keep += ids
            for d, lv in tasks:
                out = imgs if d == "none" else [degrade(im, d, lv) for im in imgs]
                same = all(o is i for o, i in zip(out, imgs))
                for m in names:
                    if same and d != "none":
                        scores[(m, d, lv)].append(scores[(m, "none", 0.0)][-1])
                        continue
                    x = torch.stack([transforms[m](o) for o in (clean[m] if d == "none" else out)]).to(device)
                    scores[(m, d, lv)].append(torch.sigmoid(models[m](x).float().reshape(-1)).cpu())
    finally:
        for m in names:
            models[m].train(modes[m])
    if not keep:
        raise ValueError("robustness sweep: no readable images; check the paths or the dataset")
    yy = np.asarray([y[j] for j in keep])
    rows = []
    for (m, d, lv), parts in scores.items():
        s = torch.cat(parts).double().numpy()
        auc = roc_auc(yy, s) if np.unique(yy).size == 2 else float("nan")
        rows.append(
            {
                "model": m,
                "degradation": d,
                "level": lv,
                "roc_auc": auc,
                "accuracy": accuracy(yy, s, thrs[m]),
                "n": int(yy.size),
            }
        )
    return pd.DataFrame(rows)
