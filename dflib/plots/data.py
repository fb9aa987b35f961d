"""Figures of the data notebook (01): class balance, feature histograms, frequency spectra."""

from __future__ import annotations

from collections.abc import Mapping

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from dflib.data.spectrum import SpectrumStats
from dflib.plots.common import CLASS_COLORS, CLASSES


def class_balance(counts: Mapping[str, Mapping[str, int]], title: str = "Images per split and class") -> plt.Figure:
    """Grouped bars: images per split (``counts`` maps split -> {"real": n, "fake": n}), real vs fake."""
    wide = pd.DataFrame(counts).T[CLASSES]
    tidy = wide.rename_axis("split").reset_index().melt(id_vars="split", var_name="class", value_name="images")
    fig, ax = plt.subplots(figsize=(6, 3.2))
    sns.barplot(
        data=tidy,
        x="split",
        y="images",
        hue="class",
        order=list(wide.index),
        hue_order=CLASSES,
        palette=CLASS_COLORS,
        saturation=1,
        errorbar=None,
        width=0.76,
        ax=ax,
    )
    for bars in ax.containers:
        ax.bar_label(bars, fmt="{:,.0f}", fontsize=8)
    ax.set(xlabel=None, ylabel="images", title=title)
    ax.legend(title=None)
    ax.margins(y=0.15)
    fig.tight_layout()
    return fig


def feature_histograms(stats: pd.DataFrame, columns: Mapping[str, str]) -> plt.Figure:
    """One histogram per column, real vs fake overlaid (columns maps column -> axis label).

    ``stats`` has one row per image and a ``class`` column ("real" / "fake"), as
    :func:`dflib.data.image_statistics` returns. Each class is normalised on its own (density),
    so an imbalanced split still compares the shapes; both share the bins.
    """
    fig, axes = plt.subplots(1, len(columns), figsize=(4.2 * len(columns), 3.2), squeeze=False)
    for ax, (col, label) in zip(axes[0], columns.items()):
        sns.histplot(
            data=stats,
            x=col,
            hue="class",
            hue_order=CLASSES,
            palette=CLASS_COLORS,
            bins=np.histogram_bin_edges(stats[col], bins=30),
            stat="density",
            common_norm=False,
            alpha=0.55,
            ax=ax,
        )
        ax.set(xlabel=label, ylabel="density", title=f"{label}: real vs fake")
        ax.get_legend().set_title(None)
    fig.tight_layout()
    return fig


def spectra(
    groups: Mapping[str, SpectrumStats], reference: str = "real", title: str = "Average frequency spectra"
) -> plt.Figure:
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
        im = a.imshow(
            groups[name].mean2d - ref.mean2d, cmap="RdBu_r", vmin=-lim, vmax=lim, extent=(-0.5, 0.5, 0.5, -0.5)
        )
        a.set_title(f"{name} − {reference}", fontsize=9)
        a.set_xlabel("fx (cycles/px)", fontsize=8)
        a.tick_params(labelsize=7)
        if i == 0:
            a.set_ylabel("fy (cycles/px)", fontsize=8)
    fig.colorbar(im, ax=fig.axes[1:], shrink=0.8, label="Δ log10 power")
    fig.suptitle(title, y=1.04)
    return fig
