"""Figures for inference (notebook 07): images next to each detector's verdict and explanation."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np

from dflib.plots.common import as_hwc

RIGHT, WRONG, UNKNOWN = "#1b7f3b", "#c0392b", "#333333"


def _num(v: float) -> str:
    """0.812, 0.043, or 0.0031 / 2.4e-05 for small values (where three decimals would say 0.000)."""
    return f"{v:.3f}" if v >= 0.01 or v == 0 else f"{v:.2g}"


def _verdict(p: float, threshold: float, truth: str | None) -> tuple[str, str]:
    """``("0.812 → fake ✓", colour)`` for one score; NaN (an unreadable file) gives "unreadable"."""
    if p is None or not np.isfinite(p):
        return "unreadable", UNKNOWN
    decision = "fake" if p >= threshold else "real"
    if truth not in ("real", "fake"):
        return f"{_num(p)} → {decision}", UNKNOWN
    ok = decision == truth
    return f"{_num(p)} → {decision} {'✓' if ok else '✗'}", RIGHT if ok else WRONG


def _show(ax: plt.Axes, img) -> None:
    arr = as_hwc(img)
    if arr.dtype != np.uint8:
        arr = np.clip(arr, 0, 1)
    ax.imshow(arr)


def prediction_grid(
    images: Sequence,
    names: Sequence[str],
    scores: Mapping[str, Sequence[float]],
    thresholds: Mapping[str, float],
    overlays: Mapping[str, Sequence] | None = None,
    truth: Sequence[str | None] | None = None,
    images_per_row: int = 2,
    size: float = 1.75,
    title: str = "Predictions and where each detector looked",
) -> plt.Figure:
    """One block per image: the image, then one explanation overlay per detector, each titled with
    its P(fake) and decision at its threshold (green ✓ right, red ✗ wrong when ``truth`` is known).

    ``images``: the originals (PIL, ``H x W x 3`` arrays or ``3 x H x W`` tensors); ``names``: a
    caption each. ``scores``: ``{detector: P(fake) per image}`` (NaN for an unreadable file);
    ``thresholds``: the threshold of every key of ``scores``. Detectors in ``overlays``
    (``{detector: overlay or None per image}``) get a panel of their own; the others (e.g. an
    ensemble, which has no single heatmap) are listed under the image. ``truth``: "real", "fake"
    or None per image. ``images_per_row`` blocks are placed side by side.
    """
    n = len(images)
    overlays = dict(overlays or {})
    if n == 0:
        raise ValueError("prediction_grid needs at least one image")
    for what, seq in [
        ("names", names),
        ("truth", truth),
        *[(f"scores[{k!r}]", v) for k, v in scores.items()],
        *[(f"overlays[{k!r}]", v) for k, v in overlays.items()],
    ]:
        if seq is not None and len(seq) != n:
            raise ValueError(f"{what} has {len(seq)} entries for {n} images; give one per image")
    missing = [k for k in scores if k not in thresholds]
    if missing:
        raise ValueError(f"no threshold for {', '.join(map(str, missing))}; pass thresholds={{name: value}}")
    unscored = [k for k in overlays if k not in scores]
    if unscored:
        raise ValueError(f"overlays for {', '.join(map(str, unscored))} but no scores; pass scores for them too")
    if not isinstance(images_per_row, int) or images_per_row < 1:
        raise ValueError(f"images_per_row={images_per_row!r}: use an integer >= 1")

    panel_models = list(overlays)
    listed = [k for k in scores if k not in overlays]
    per_block = 1 + len(panel_models)
    blocks = min(images_per_row, n)
    rows = math.ceil(n / blocks)
    spacer = 0.18
    widths = []
    for b in range(blocks):
        widths += [1.0] * per_block + ([spacer] if b < blocks - 1 else [])
    title_lines = 2 + len(listed)
    height = rows * (size + 0.17 * title_lines) + 0.5
    fig = plt.figure(figsize=(size * sum(widths), height))
    grid = fig.add_gridspec(
        rows,
        len(widths),
        width_ratios=widths,
        wspace=0.06,
        hspace=0.12 * title_lines + 0.1,
        top=1 - (0.4 + 0.3) / height,
        bottom=(0.05 + 0.14 * len(listed)) / height,
        left=0.02,
        right=0.98,
    )
    for i in range(n):
        r, b = divmod(i, blocks)
        col = b * (per_block + 1)
        t = truth[i] if truth is not None else None
        ax = fig.add_subplot(grid[r, col])
        _show(ax, images[i])
        ax.set_xticks([]), ax.set_yticks([])
        head = f"{names[i]}\ntrue: {t}" if t in ("real", "fake") else f"{names[i]}\ntrue: unknown"
        ax.set_title(head, fontsize=8, loc="center")
        for k, key in enumerate(listed):  # detectors without a panel of their own, below the image
            text, colour = _verdict(float(scores[key][i]), thresholds[key], t)
            ax.text(
                0.5,
                -0.04 - 0.12 * k,
                f"{key} (t {_num(thresholds[key])}): {text}",
                transform=ax.transAxes,
                ha="center",
                va="top",
                fontsize=7.5,
                color=colour,
                fontweight="bold",
            )
        for j, key in enumerate(panel_models):
            ax = fig.add_subplot(grid[r, col + 1 + j])
            ov = overlays[key][i]
            if ov is None:
                ax.text(0.5, 0.5, "no map", ha="center", va="center", fontsize=8, transform=ax.transAxes)
            else:
                _show(ax, ov)
            ax.set_xticks([]), ax.set_yticks([])
            text, colour = _verdict(float(scores[key][i]), thresholds[key], t)
            ax.set_title(f"{key} (t {_num(thresholds[key])})\n{text}", fontsize=8, color=colour)
    fig.suptitle(title, fontsize=11, y=1 - 0.15 / height, va="top")
    return fig


def face_boxes(
    image,
    boxes: Sequence[Sequence[float]],
    scores: Sequence[float] | Mapping[str, Sequence[float]] | None = None,
    threshold: float | Mapping[str, float] = 0.5,
    crops: Sequence | None = None,
    title: str = "Faces found, and what each detector says about them",
    size: float = 4.0,
) -> plt.Figure:
    """The photo with each face's box (``x0, y0, x1, y1`` in its pixels), numbered as in the predictions.

    ``scores``: P(fake) per box, or ``{detector: P(fake) per box}``; each box is labelled with its
    scores and decisions at ``threshold`` (one value, or one per detector), red when the first
    detector says fake. ``crops``: the face crops the detectors saw, drawn to the right of the photo.
    """
    from matplotlib.patches import Rectangle

    arr = as_hwc(image)
    if isinstance(scores, Mapping):
        per = {str(k): list(v) for k, v in scores.items()}
    else:
        per = {"P(fake)": list(scores)} if scores is not None else {}
    for key, seq in per.items():
        if len(seq) != len(boxes):
            raise ValueError(f"scores[{key!r}] has {len(seq)} entries for {len(boxes)} boxes; give one per box")
    if crops is not None and len(crops) != len(boxes):
        raise ValueError(f"{len(crops)} crops for {len(boxes)} boxes; give one crop per box")
    thresholds = threshold if isinstance(threshold, Mapping) else dict.fromkeys(per, float(threshold))
    n_crops = len(crops) if crops is not None else 0
    h, w = arr.shape[:2]
    width = size * w / h
    fig = plt.figure(figsize=(width + size * 0.75 * min(n_crops, 4), size + 0.6))
    grid = fig.add_gridspec(
        max(1, math.ceil(n_crops / 4)) if n_crops else 1,
        1 + min(n_crops, 4),
        width_ratios=[width] + [size * 0.75] * min(n_crops, 4),
        wspace=0.08,
    )
    ax = fig.add_subplot(grid[:, 0])
    _show(ax, arr)
    ax.set_xticks([]), ax.set_yticks([])
    for k, (x0, y0, x1, y1) in enumerate(boxes):
        lines = [f"face {k}"]
        colour = UNKNOWN
        for j, (key, seq) in enumerate(per.items()):
            text, _ = _verdict(float(seq[k]), thresholds[key], None)
            lines.append(f"{key}: {text}")
            if j == 0 and np.isfinite(seq[k]):
                colour = WRONG if seq[k] >= thresholds[key] else RIGHT
        ax.add_patch(Rectangle((x0, y0), x1 - x0, y1 - y0, fill=False, edgecolor=colour, linewidth=2))
        below = y1 + 0.25 * h < h or y0 < 0.25 * h  # the label under the box (not over the face) when it fits
        ax.text(
            x0,
            y1 + 4 if below else y0 - 4,
            "\n".join(lines),
            color="white",
            fontsize=7.5,
            va="top" if below else "bottom",
            bbox={"facecolor": colour, "alpha": 0.85, "pad": 2, "edgecolor": "none"},
        )
    ax.set_title(f"{len(boxes)} face(s)", fontsize=9)
    for k in range(n_crops):
        r, c = divmod(k, 4)
        cax = fig.add_subplot(grid[r, 1 + c])
        _show(cax, crops[k])
        cax.set_xticks([]), cax.set_yticks([])
        cax.set_title(f"face {k}: the crop scored", fontsize=8)
    fig.suptitle(title, fontsize=11)
    return fig


__all__ = ["face_boxes", "prediction_grid"]
