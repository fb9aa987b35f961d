"""Every figure the notebooks show: readable titles, labelled axes, units, optional saving to img/."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch

from dflib.spectrum import SpectrumStats

CLASS_COLORS = {"real": "#2a9d8f", "fake": "#e76f51"}


def save_figure(fig: plt.Figure, path: str | os.PathLike | None, dpi: int = 110) -> None:
    """Save ``fig`` (creating the folder) when ``path`` is given; figures for the README go to img/."""
    if path:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=dpi, bbox_inches="tight")


def _as_hwc(img) -> np.ndarray:
    if isinstance(img, torch.Tensor):
        img = img.detach().cpu()
        if img.dtype.is_floating_point:
            img = img.clamp(0, 1)
        return img.permute(1, 2, 0).numpy()
    return np.asarray(img)


def image_grid(images: Sequence, titles: Sequence[str] | None = None, ncols: int = 6,
               size: float = 1.9, suptitle: str | None = None) -> plt.Figure:
    """Show images (PIL, HxWx3 arrays, or CxHxW tensors) in a grid with small titles."""
    n = len(images)
    nrows = max(1, int(np.ceil(n / ncols)))
    fig, axes = plt.subplots(nrows, ncols, figsize=(size * ncols, size * nrows + 0.4), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for i, img in enumerate(images):
        ax = axes.ravel()[i]
        ax.imshow(_as_hwc(img))
        if titles is not None:
            ax.set_title(titles[i], fontsize=8)
    if suptitle:
        fig.suptitle(suptitle)
    fig.tight_layout()
    return fig


def class_balance(counts: Mapping[str, Mapping[str, int]], title: str = "Images per split and class") -> plt.Figure:
    """Grouped bars: images per split, real vs fake."""
    df = pd.DataFrame(counts).T[["real", "fake"]]
    fig, ax = plt.subplots(figsize=(6, 3.2))
    x = np.arange(len(df))
    for i, cls in enumerate(["real", "fake"]):
        bars = ax.bar(x + (i - 0.5) * 0.38, df[cls], width=0.38, label=cls, color=CLASS_COLORS[cls])
        ax.bar_label(bars, fmt="{:,.0f}", fontsize=8)
    ax.set_xticks(x, df.index)
    ax.set_ylabel("images")
    ax.set_title(title)
    ax.legend()
    ax.margins(y=0.15)
    fig.tight_layout()
    return fig


def feature_histograms(stats: pd.DataFrame, columns: Mapping[str, str]) -> plt.Figure:
    """One histogram per column, real vs fake overlaid (columns maps column -> axis label)."""
    fig, axes = plt.subplots(1, len(columns), figsize=(4.2 * len(columns), 3.2), squeeze=False)
    for ax, (col, label) in zip(axes[0], columns.items()):
        bins = np.histogram_bin_edges(stats[col], bins=30)
        for cls in ("real", "fake"):
            ax.hist(stats.loc[stats["class"] == cls, col], bins=bins, alpha=0.55,
                    color=CLASS_COLORS[cls], label=cls, density=True)
        ax.set_xlabel(label)
        ax.set_ylabel("density")
        ax.set_title(f"{label}: real vs fake")
        ax.legend()
    fig.tight_layout()
    return fig


def spectra(groups: Mapping[str, SpectrumStats], reference: str = "real",
            title: str = "Average frequency spectra") -> plt.Figure:
    """Radial profiles of every group, and each group's 2-D mean log spectrum minus the reference's."""
    ref = groups[reference]
    others = [k for k in groups if k != reference]
    fig = plt.figure(figsize=(4.3 + 2.6 * len(others), 3.6))
    grid = fig.add_gridspec(1, 1 + len(others), width_ratios=[1.6] + [1] * len(others))
    ax = fig.add_subplot(grid[0, 0])
    for name, s in groups.items():
        style = dict(color="black", lw=2.2) if name == reference else dict(lw=1.3)
        ax.plot(s.freqs, s.profile, label=f"{name} (n={s.n})", **style)
    ax.set_xlabel("spatial frequency (cycles / pixel)")
    ax.set_ylabel("mean log10 power")
    ax.set_title("Azimuthally averaged power spectrum")
    ax.legend(fontsize=7)
    lim = max((np.abs(groups[k].mean2d - ref.mean2d).max() for k in others), default=1.0)
    for i, name in enumerate(others):
        a = fig.add_subplot(grid[0, 1 + i])
        im = a.imshow(groups[name].mean2d - ref.mean2d, cmap="RdBu_r", vmin=-lim, vmax=lim,
                      extent=(-0.5, 0.5, 0.5, -0.5))
        a.set_title(f"{name} − {reference}", fontsize=9)
        a.set_xlabel("fx (cycles/px)", fontsize=8)
        a.tick_params(labelsize=7)
        if i == 0:
            a.set_ylabel("fy (cycles/px)", fontsize=8)
    fig.colorbar(im, ax=fig.axes[1:], shrink=0.8, label="Δ log10 power")
    fig.suptitle(title, y=1.04)
    return fig


# --- Architecture notebooks (02-04): sanity checks and probes --------------------------------

def loss_curve(losses: Sequence[float] | Mapping[str, Sequence[float]], title: str = "Overfitting one batch",
               xlabel: str = "optimisation step", ylabel: str = "BCE loss (log scale)") -> plt.Figure:
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


def training_curves(history: pd.DataFrame, title: str = "Training run") -> plt.Figure:
    """Two panels from a ``fit`` history: train/validation loss, and validation ROC-AUC / accuracy."""
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3.4))
    ep = history["epoch"]
    a.plot(ep, history["train_loss"], marker="o", label="train")
    a.plot(ep, history["val_loss"], marker="o", label="validation")
    a.set(title="Loss", xlabel="epoch", ylabel="BCE loss")
    b.plot(ep, history["val_roc_auc"], marker="o", label="val ROC-AUC", color="#e76f51")
    b.plot(ep, history["val_accuracy"], marker="o", label="val accuracy", color="#2a9d8f")
    b.axhline(0.5, color="grey", ls=":", label="chance")
    b.set(title="Validation metrics", xlabel="epoch", ylabel="score (0-1)", ylim=(0.4, 1.02))
    for ax in (a, b):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
        ax.set_xticks(list(ep))
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def gradient_norm_bars(norms: Mapping[str, pd.DataFrame], column: str = "grad_rms",
                       title: str = "Gradient per stage at initialisation") -> plt.Figure:
    """Grouped bars (log scale) of per-stage gradient sizes, one group per variant (e.g. with /
    without shortcuts); ``norms`` maps a label to a :func:`dflib.diagnostics.gradient_norms` table."""
    labels = list(norms)
    stages = list(next(iter(norms.values()))["stage"])
    x = np.arange(len(stages))
    w = 0.8 / len(labels)
    fig, ax = plt.subplots(figsize=(7.5, 3.4))
    for i, lab in enumerate(labels):
        ax.bar(x + (i - (len(labels) - 1) / 2) * w, norms[lab][column], width=w, label=lab)
    ax.set_yscale("log")
    ax.set_xticks(x, stages)
    ax.set(title=title, xlabel="stage (input -> output)",
           ylabel="RMS gradient per weight (log)" if column == "grad_rms" else column)
    ax.grid(alpha=0.3, axis="y", which="both")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def patch_grid(patches: torch.Tensor, grid: tuple[int, int], title: str = "The image as a grid of patches",
               size: float = 5.0) -> plt.Figure:
    """Show ``(gh*gw, C, P, P)`` patches (see :func:`dflib.diagnostics.patchify`) with gaps, row by row."""
    gh, gw = grid
    fig, axes = plt.subplots(gh, gw, figsize=(size, size * gh / gw + 0.4), squeeze=False,
                             gridspec_kw={"wspace": 0.06, "hspace": 0.06})
    for k, ax in enumerate(axes.ravel()):
        ax.imshow(_as_hwc(patches[k]))
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
            mosaic[r:r + gh, c:c + gw] = s[i, j]
    fig, ax = plt.subplots(figsize=(6, 5.4))
    im = ax.imshow(mosaic, cmap="viridis", vmin=-1, vmax=1)
    ticks = np.arange(gh) * (gh + pad) + gh / 2 - 0.5
    ax.set_xticks(np.arange(gw) * (gw + pad) + gw / 2 - 0.5, np.arange(1, gw + 1), fontsize=7)
    ax.set_yticks(ticks, np.arange(1, gh + 1), fontsize=7)
    ax.set(title=title, xlabel="input patch column", ylabel="input patch row")
    fig.colorbar(im, ax=ax, label="cosine similarity", shrink=0.8)
    fig.tight_layout()
    return fig


def attention_overlay(images: Sequence, maps: torch.Tensor, titles: Sequence[str] | None = None,
                      title: str = "Class-token attention", ncols: int = 4, size: float = 2.4) -> plt.Figure:
    """Each image with its ``(gh, gw)`` attention map upsampled (nearest: one block per patch) on top."""
    n = len(images)
    nrows = max(1, int(np.ceil(n / ncols)))
    fig, axes = plt.subplots(nrows, ncols, figsize=(size * ncols, size * nrows + 0.5), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for k in range(n):
        img = _as_hwc(images[k])
        ax = axes.ravel()[k]
        ax.imshow(img)
        m = maps[k].detach().cpu().numpy()
        ax.imshow(m, cmap="inferno", alpha=0.55, extent=(-0.5, img.shape[1] - 0.5, img.shape[0] - 0.5, -0.5),
                  interpolation="nearest")
        if titles is not None:
            ax.set_title(titles[k], fontsize=8)
    fig.suptitle(f"{title} (brighter = more attention)")
    fig.tight_layout()
    return fig


def compare_runs(histories: Mapping[str, pd.DataFrame], title: str = "Learning curves") -> plt.Figure:
    """Three panels, one colour per run: loss (train dashed, validation solid), validation
    ROC-AUC and validation accuracy per epoch; ``histories`` maps a name to a ``fit`` history."""
    fig, axes = plt.subplots(1, 3, figsize=(14, 3.8))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for (name, h), color in zip(histories.items(), colors):
        ep = h["epoch"]
        axes[0].plot(ep, h["train_loss"], ls="--", color=color, alpha=0.8)
        axes[0].plot(ep, h["val_loss"], marker="o", ms=3, color=color, label=name)
        axes[1].plot(ep, h["val_roc_auc"], marker="o", ms=3, color=color, label=name)
        axes[2].plot(ep, h["val_accuracy"], marker="o", ms=3, color=color, label=name)
    axes[0].set(title="Loss (dashed: train, solid: validation)", xlabel="epoch", ylabel="BCE loss")
    axes[1].set(title="Validation ROC-AUC", xlabel="epoch", ylabel="ROC-AUC", ylim=(0.4, 1.01))
    axes[2].set(title="Validation accuracy (threshold 0.5)", xlabel="epoch", ylabel="accuracy", ylim=(0.4, 1.01))
    for ax in axes[1:]:
        ax.axhline(0.5, color="grey", ls=":", lw=1)
    for ax in axes:
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    return fig
