"""Figures of the evaluation notebook (06): ROC / PR curves, confusion matrices, calibration,
robustness curves, per-manipulation bars and a gallery of confident mistakes.

Each function returns a matplotlib Figure; save it with :func:`dflib.plots.save_figure`.
Curves take ``{model name: (labels, scores)}``, scores being P(fake) with fake = 1.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from sklearn import metrics as skm

from dflib.evaluation.calibration import expected_calibration_error, reliability_curve
from dflib.evaluation.metrics import auc_from_roc, check_scores, require_both_classes, roc_points
from dflib.evaluation.robustness import LEVEL_LABELS
from dflib.plots.common import CLASS_COLORS, CLASSES, as_hwc

Curves = Mapping[str, tuple[Sequence[int], Sequence[float]]]


def _need(curves: Mapping, what: str) -> None:
    if not curves:
        raise ValueError(f"{what} needs at least one model: pass {{name: (labels, scores)}}")


def roc_curves(
    curves: Curves,
    thresholds: Mapping[str, float] | None = None,
    log_fpr: bool = False,
    title: str = "ROC curves on Test",
) -> plt.Figure:
    """Overlaid ROC curves (legend: ROC-AUC); ``thresholds`` marks each model's operating point."""
    _need(curves, "roc_curves")
    fig, ax = plt.subplots(figsize=(5.4, 4.6))
    for name, (labels, scores) in curves.items():
        fpr, tpr, _ = roc_points(labels, scores)
        auc = auc_from_roc(fpr, tpr)
        (line,) = ax.plot(fpr, tpr, lw=1.8, label=f"{name} (AUC {auc:.3f})")
        if thresholds and name in thresholds:
            y, s = check_scores(labels, scores)
            pred = s >= thresholds[name]
            ax.plot(
                pred[y == 0].mean(),
                pred[y == 1].mean(),
                "o",
                color=line.get_color(),
                ms=7,
                markeredgecolor="black",
                label=f"{name} @ threshold {thresholds[name]:.2f}",
            )
    if log_fpr:
        ax.set_xscale("log")
        ax.set_xlim(1e-3, 1)
    else:
        ax.plot([0, 1], [0, 1], ls=":", color="grey", label="chance")
    ax.set(
        title=title,
        xlabel="false-positive rate (reals flagged as fake)",
        ylabel="true-positive rate (fakes caught)",
        ylim=(0, 1.01),
    )
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    return fig


def pr_curves(curves: Curves, title: str = "Precision-recall curves on Test (fake = positive)") -> plt.Figure:
    """Overlaid precision-recall curves (legend: average precision) with the chance level (share of fakes)."""
    _need(curves, "pr_curves")
    fig, ax = plt.subplots(figsize=(5.4, 4.6))
    prevalence = None
    for name, (labels, scores) in curves.items():
        y, s = check_scores(labels, scores)
        require_both_classes(y, "the PR curve")
        prec, rec, _ = skm.precision_recall_curve(y, s)
        ap = skm.average_precision_score(y, s)
        ax.step(rec, prec, where="post", lw=1.8, label=f"{name} (AP {ap:.3f})")
        prevalence = y.mean()
    ax.axhline(prevalence, ls=":", color="grey", label=f"chance ({prevalence:.0%} fakes)")
    ax.set(
        title=title,
        xlabel="recall (share of fakes caught)",
        ylabel="precision (share of flagged that are fake)",
        xlim=(0, 1.01),
        ylim=(0, 1.02),
    )
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower left")
    fig.tight_layout()
    return fig


def confusion_matrices(
    matrices: Mapping[str, Sequence[Sequence[int]]],
    title: str = "Confusion matrices on Test",
    thresholds: Mapping[str, float] | None = None,
) -> plt.Figure:
    """Side-by-side ``[[TN, FP], [FN, TP]]`` matrices; cells show counts and the share of their true class."""
    _need(matrices, "confusion_matrices")
    n = len(matrices)
    fig, axes = plt.subplots(1, n, figsize=(3.3 * n, 3.3), squeeze=False)
    for ax, (name, m) in zip(axes[0], matrices.items()):
        m = np.asarray(m, dtype=np.int64)
        if m.shape != (2, 2):
            raise ValueError(f"confusion matrix of {name!r} must be 2x2 [[TN, FP], [FN, TP]], got shape {m.shape}")
        share = m / np.maximum(m.sum(axis=1, keepdims=True), 1)  # colour: the share of the row's true class
        cells = [[f"{m[i, j]:,}\n{share[i, j]:.1%}" for j in range(2)] for i in range(2)]
        sns.heatmap(
            share,
            annot=np.array(cells),
            fmt="",
            annot_kws={"fontsize": 9},
            cmap="Blues",
            vmin=0,
            vmax=1,
            cbar=False,
            square=True,
            linewidths=1,
            linecolor="white",
            xticklabels=CLASSES,
            yticklabels=CLASSES,
            ax=ax,
        )
        ax.tick_params(axis="y", labelrotation=0)
        ax.set(xlabel="predicted", ylabel="true")
        sub = f"\nthreshold {thresholds[name]:.3f}" if thresholds and name in thresholds else ""
        ax.set_title(f"{name}{sub}", fontsize=10)
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def reliability_diagrams(
    panels: Mapping[str, tuple[Sequence[int], Mapping[str, Sequence[float]]]],
    n_bins: int = 15,
    title: str = "Calibration on Test",
) -> plt.Figure:
    """One panel per model: observed share of fakes vs mean P(fake) per bin, one line per score set.

    ``panels`` maps model -> ``(labels, {"before": scores, "after T=2.1": scores})``; the legend
    gives each line's ECE, the bars at the bottom how many images fall in each bin.
    """
    _need(panels, "reliability_diagrams")
    n = len(panels)
    fig, axes = plt.subplots(
        2, n, figsize=(4.2 * n, 5.0), squeeze=False, sharex=True, gridspec_kw={"height_ratios": [3, 1]}
    )
    for k, (name, (labels, sets)) in enumerate(panels.items()):
        ax, hist = axes[0, k], axes[1, k]
        ax.plot([0, 1], [0, 1], ls=":", color="grey", label="perfect calibration")
        width = 1.0 / n_bins / max(len(sets), 1)
        for i, (label, scores) in enumerate(sets.items()):
            table = reliability_curve(labels, scores, n_bins)
            ece = expected_calibration_error(labels, scores, n_bins)
            full = table[table["count"] > 0]
            ax.plot(full["mean_score"], full["fraction_fake"], marker="o", ms=4, label=f"{label} (ECE {ece:.3f})")
            hist.bar(table["bin_lower"] + (i + 0.5) * width, table["count"], width=width, alpha=0.8)
        ax.set(title=name, ylabel="observed share of fakes", xlim=(0, 1), ylim=(0, 1))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="upper left")
        hist.set(xlabel="predicted P(fake)", ylabel="images")
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def robustness_curves(
    df: pd.DataFrame, metric: str = "roc_auc", title: str = "Robustness: ROC-AUC under degradations"
) -> plt.Figure:
    """One panel per degradation, one line per model (from :func:`dflib.evaluation.robustness.robustness_sweep`).

    The dashed line of each model's colour is its score on clean images. Axes run from mild to
    strong degradation where that has a direction (JPEG quality, downscale, crop: inverted).
    """
    need = {"model", "degradation", "level", metric}
    if not need <= set(df.columns):
        raise ValueError(f"robustness_curves needs columns {sorted(need)}; pass robustness_sweep's output")
    degs = [d for d in dict.fromkeys(df["degradation"]) if d != "none"]
    if not degs:
        raise ValueError("robustness_curves: the table has no degradation rows")
    fig, axes = plt.subplots(1, len(degs), figsize=(3.4 * len(degs), 3.4), squeeze=False, sharey=True)
    colors = {m: f"C{i}" for i, m in enumerate(dict.fromkeys(df["model"]))}
    for ax, deg in zip(axes[0], degs):
        part = df[df["degradation"] == deg]
        for model, rows in part.groupby("model", sort=False):
            rows = rows.sort_values("level")
            ax.plot(rows["level"], rows[metric], marker="o", color=colors[model], label=model)
            clean = df[(df["degradation"] == "none") & (df["model"] == model)][metric]
            if len(clean):
                ax.axhline(float(clean.iloc[0]), ls="--", lw=0.9, color=colors[model], alpha=0.6)
        if deg in ("jpeg", "resize", "crop"):
            ax.invert_xaxis()
        ax.set(title=deg, xlabel=LEVEL_LABELS.get(deg, "level"))
        ax.axhline(0.5, ls=":", color="grey")
        ax.grid(alpha=0.3)
    axes[0, 0].set_ylabel({"roc_auc": "ROC-AUC (0.5 = chance)", "accuracy": "accuracy"}.get(metric, metric))
    axes[0, -1].legend(fontsize=8, title="dashed = clean", title_fontsize=7)
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def per_method_bars(
    tables: Mapping[str, pd.DataFrame] | pd.DataFrame,
    metric: str = "roc_auc",
    title: str = "Per manipulation: each method's fakes vs all reals",
) -> plt.Figure:
    """Grouped bars, one group per manipulation and one bar per model (from ``per_method_metrics``);
    the held-out method (never seen in training) is marked."""
    if isinstance(tables, pd.DataFrame):
        tables = {"model": tables}
    _need(tables, "per_method_bars")
    tidy = pd.concat([t[["method", metric]].assign(model=name) for name, t in tables.items()], ignore_index=True)
    methods = list(dict.fromkeys(tidy["method"]))
    held = {m for t in tables.values() for m, h in zip(t["method"], t.get("held_out", [False] * len(t))) if h}
    fig, ax = plt.subplots(figsize=(1.5 * len(methods) + 2.5, 3.6))
    sns.barplot(
        data=tidy,
        x="method",
        y=metric,
        hue="model",
        order=methods,
        hue_order=list(tables),
        saturation=1,
        errorbar=None,
        ax=ax,
    )  # saturation 1: the colours as given, not muted
    for bars in ax.containers:
        ax.bar_label(bars, fmt="{:.2f}", fontsize=7)
    ax.set_xticks(range(len(methods)), [f"{m}\n(held out)" if m in held else m for m in methods])
    ax.set(
        title=title,
        xlabel=None,
        ylim=(0, 1.25),
        ylabel={"roc_auc": "ROC-AUC", "recall": "recall at threshold"}.get(metric, metric),
    )
    if metric == "roc_auc":
        ax.axhline(0.5, ls=":", color="grey")
    ax.grid(alpha=0.3, axis="y")
    ax.legend(fontsize=8, loc="upper center", ncols=len(tables))
    fig.tight_layout()
    return fig


def mistake_gallery(
    images: Sequence,
    scores: Sequence[float],
    labels: Sequence[int],
    threshold: float = 0.5,
    ncols: int = 6,
    title: str = "Most confident mistakes",
) -> plt.Figure:
    """Images (PIL, H x W x 3 arrays or 3 x H x W tensors in [0, 1]) with their P(fake) and true class."""
    n = len(images)
    if n == 0:
        fig, ax = plt.subplots(figsize=(5, 1))
        ax.axis("off")
        ax.text(0.5, 0.5, "no mistakes at this threshold", ha="center", va="center")
        return fig
    ncols = min(ncols, n)
    nrows = int(np.ceil(n / ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(2.1 * ncols, 2.3 * nrows + 0.5), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for i in range(n):
        ax = axes.ravel()[i]
        ax.imshow(as_hwc(images[i]))
        truth = "fake" if int(labels[i]) == 1 else "real"
        ax.set_title(f"true {truth}\nP(fake) = {float(scores[i]):.3f}", fontsize=8, color=CLASS_COLORS[truth])
    fig.suptitle(f"{title} (threshold {threshold:.3f})")
    fig.tight_layout()
    return fig


def degradation_examples(
    image,
    levels: Mapping[str, Sequence[float]],
    size: float = 1.6,
    title: str = "One test image under each degradation",
) -> plt.Figure:
    """A grid: one row per degradation, one column per level, of ``image`` (uint8 ``(3, H, W)`` or PIL)."""
    from dflib.evaluation.robustness import degrade

    rows = list(levels)
    ncols = max(len(v) for v in levels.values())
    fig, axes = plt.subplots(len(rows), ncols, figsize=(size * ncols, size * len(rows) + 0.4), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for r, name in enumerate(rows):
        for c, lv in enumerate(levels[name]):
            out = degrade(image, name, lv)
            arr = as_hwc(out)
            axes[r, c].imshow(arr if arr.dtype == np.uint8 else np.clip(arr, 0, 1))
            axes[r, c].set_title(f"{name} {lv:g}", fontsize=7)
    fig.suptitle(title)
    fig.tight_layout()
    return fig
