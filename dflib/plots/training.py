"""Figures of the training notebook (05): learning curves of one run and of several side by side."""

from __future__ import annotations

from collections.abc import Mapping

import matplotlib.pyplot as plt
import pandas as pd


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
