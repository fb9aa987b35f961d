"""Figures of the architecture notebooks (02-04): one-batch overfitting, gradients per stage,
patches, position embeddings and attention maps."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
import torch

from dflib.plots.common import as_hwc


def loss_curve(
    losses: Sequence[float] | Mapping[str, Sequence[float]],
    title: str = "Overfitting one batch",
    xlabel: str = "optimisation step",
    ylabel: str = "BCE loss (log scale)",
) -> plt.Figure:
    """One loss per step on a log axis (so "goes to ~0" is visible as a straight drop); pass a
    mapping ``label -> losses`` to compare several runs in one panel."""
    fig, ax = plt.subplots(figsize=(6, 3.2))
    curves = dict(losses) if isinstance(losses, Mapping) else {"": losses}
    for label, values in curves.items():
        ax.plot(np.arange(1, len(values) + 1), values, marker=".", label=label or None)
    if len(curves) > 1 or "" not in curves:
        ax.legend(fontsize=8)
    ax.set_yscale("log")
    ax.set(title=title, xlabel=xlabel, ylabel=ylabel)
    ax.grid(alpha=0.3, which="both")
    fig.tight_layout()
    return fig


def gradient_norm_bars(
    norms: Mapping[str, pd.DataFrame], column: str = "grad_rms", title: str = "Gradient per stage at initialisation"
) -> plt.Figure:
    """Grouped bars (log scale) of per-stage gradient sizes, one group per variant (e.g. with /
    without shortcuts); ``norms`` maps a label to a :func:`dflib.models.diagnostics.gradient_norms` table."""
    stages = list(next(iter(norms.values()))["stage"])
    tidy = pd.concat([t[["stage", column]].assign(variant=lab) for lab, t in norms.items()], ignore_index=True)
    fig, ax = plt.subplots(figsize=(7.5, 3.4))
    sns.barplot(
        data=tidy,
        x="stage",
        y=column,
        hue="variant",
        order=stages,
        hue_order=list(norms),
        saturation=1,
        errorbar=None,
        ax=ax,
    )  # saturation 1: the colours as given, not muted
    ax.set_yscale("log")
    ax.set(
        title=title,
        xlabel="stage (input -> output)",
        ylabel="RMS gradient per weight (log)" if column == "grad_rms" else column,
    )
    ax.grid(alpha=0.3, axis="y", which="both")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def patch_grid(
    patches: torch.Tensor, grid: tuple[int, int], title: str = "The image as a grid of patches", size: float = 5.0
) -> plt.Figure:
    """Show ``(gh*gw, C, P, P)`` patches (see :func:`dflib.models.diagnostics.patchify`) with gaps, row by row."""
    gh, gw = grid
    fig, axes = plt.subplots(
        gh, gw, figsize=(size, size * gh / gw + 0.4), squeeze=False, gridspec_kw={"wspace": 0.06, "hspace": 0.06}
    )
    for k, ax in enumerate(axes.ravel()):
        ax.imshow(as_hwc(patches[k]))
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle(title)
    return fig


def pos_embed_similarity_map(sim: torch.Tensor, title: str = "Position-embedding similarity") -> plt.Figure:
    """Mosaic of ``(gh, gw, gh, gw)`` cosine similarities: tile (i, j) shows patch (i, j)'s
    similarity to every other patch (the figure of Dosovitskiy et al. 2021, Fig. 7)."""
    gh, gw = sim.shape[:2]
    pad = 1
    mosaic = np.full((gh * (gh + pad), gw * (gw + pad)), np.nan)
    s = sim.detach().cpu().numpy()
    for i in range(gh):
        for j in range(gw):
            r, c = i * (gh + pad), j * (gw + pad)
            mosaic[r : r + gh, c : c + gw] = s[i, j]
    fig, ax = plt.subplots(figsize=(6, 5.4))
    im = ax.imshow(mosaic, cmap="viridis", vmin=-1, vmax=1)
    ticks = np.arange(gh) * (gh + pad) + gh / 2 - 0.5
    ax.set_xticks(np.arange(gw) * (gw + pad) + gw / 2 - 0.5, np.arange(1, gw + 1), fontsize=7)
    ax.set_yticks(ticks, np.arange(1, gh + 1), fontsize=7)
    ax.set(title=title, xlabel="input patch column", ylabel="input patch row")
    fig.colorbar(im, ax=ax, label="cosine similarity", shrink=0.8)
    fig.tight_layout()
    return fig


def attention_overlay(
    images: Sequence,
    maps: torch.Tensor,
    titles: Sequence[str] | None = None,
    title: str = "Class-token attention",
    ncols: int = 4,
    size: float = 2.4,
) -> plt.Figure:
    """Each image with its ``(gh, gw)`` attention map upsampled (nearest: one block per patch) on top."""
    n = len(images)
    nrows = max(1, int(np.ceil(n / ncols)))
    fig, axes = plt.subplots(nrows, ncols, figsize=(size * ncols, size * nrows + 0.5), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for k in range(n):
        img = as_hwc(images[k])
        ax = axes.ravel()[k]
        ax.imshow(img)
        m = maps[k].detach().cpu().numpy()
        ax.imshow(
            m,
            cmap="inferno",
            alpha=0.55,
            extent=(-0.5, img.shape[1] - 0.5, img.shape[0] - 0.5, -0.5),
            interpolation="nearest",
        )
        if titles is not None:
            ax.set_title(titles[k], fontsize=8)
    fig.suptitle(f"{title} (brighter = more attention)")
    fig.tight_layout()
    return fig
