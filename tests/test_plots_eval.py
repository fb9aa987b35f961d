"""Every evaluation figure builds from small inputs and returns a Figure."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from dflib import plots as pe  # noqa: E402
from dflib.evaluation import confident_mistakes  # noqa: E402

rng = np.random.default_rng(0)
Y = np.r_[np.zeros(30, int), np.ones(30, int)]
S1 = np.clip(0.4 * Y + 0.6 * rng.random(60), 0, 1)
S2 = rng.random(60)


@pytest.fixture(autouse=True)
def _close():
    yield
    plt.close("all")


def test_curves_and_matrices():
    curves = {"good": (Y, S1), "chance": (Y, S2)}
    assert isinstance(pe.roc_curves(curves, thresholds={"good": 0.5}), plt.Figure)
    assert isinstance(pe.roc_curves(curves, log_fpr=True), plt.Figure)
    assert isinstance(pe.pr_curves(curves), plt.Figure)
    assert isinstance(
        pe.confusion_matrices({"good": [[20, 10], [5, 25]], "chance": [[15, 15], [15, 15]]}, thresholds={"good": 0.5}),
        plt.Figure,
    )
    assert isinstance(pe.reliability_diagrams({"good": (Y, {"before": S1, "after T=2": S1**2})}), plt.Figure)
    with pytest.raises(ValueError, match="2x2"):
        pe.confusion_matrices({"bad": [[1, 2, 3]]})
    with pytest.raises(ValueError, match="at least one model"):
        pe.roc_curves({})


def test_confusion_matrix_cells_show_counts_and_row_shares():
    fig = pe.confusion_matrices({"good": [[20, 10], [5, 25]], "empty row": [[0, 0], [3, 1]]})
    assert len(fig.axes) == 2  # one heatmap per model, no colour bars
    ax = fig.axes[0]
    cells = [t.get_text().split("\n") for t in ax.texts]  # row by row: TN, FP, FN, TP
    assert [int(c[0].replace(",", "")) for c in cells] == [20, 10, 5, 25]
    assert [c[1] for c in cells] == ["66.7%", "33.3%", "16.7%", "83.3%"]  # share of the true class (row)
    assert [t.get_text() for t in ax.get_xticklabels()] == ["real", "fake"]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["real", "fake"]
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("predicted", "true")
    assert [t.get_text().split("\n")[1] for t in fig.axes[1].texts][:2] == ["0.0%", "0.0%"]  # no reals: no 0/0


def test_per_method_bars_heights_and_held_out_label():
    a = pd.DataFrame({"method": ["face_swap", "upsampling"], "roc_auc": [0.9, 0.6], "held_out": [False, True]})
    b = a.assign(roc_auc=[0.8, 0.7])
    ax = pe.per_method_bars({"a": a, "b": b}).axes[0]
    assert [[bar.get_height() for bar in c] for c in ax.containers] == [[0.9, 0.6], [0.8, 0.7]]  # per model
    assert [t.get_text() for t in ax.get_xticklabels()] == ["face_swap", "upsampling\n(held out)"]
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["a", "b"]
    assert ax.get_ylabel() == "ROC-AUC"


def test_robustness_method_and_gallery_figures():
    rows = [
        {"model": m, "degradation": "none", "level": 0.0, "roc_auc": 0.9, "accuracy": 0.8, "n": 10} for m in ("a", "b")
    ]
    rows += [
        {"model": m, "degradation": d, "level": lv, "roc_auc": 0.9 - 0.001 * lv, "accuracy": 0.7, "n": 10}
        for m in ("a", "b")
        for d in ("jpeg", "blur")
        for lv in (1.0, 2.0, 3.0)
    ]
    assert isinstance(pe.robustness_curves(pd.DataFrame(rows)), plt.Figure)
    with pytest.raises(ValueError, match="robustness_sweep"):
        pe.robustness_curves(pd.DataFrame({"x": [1]}))
    table = pd.DataFrame(
        {
            "method": ["face_swap", "upsampling", "all fakes"],
            "roc_auc": [0.9, 0.6, 0.8],
            "recall": [0.8, 0.3, 0.6],
            "held_out": [False, True, False],
        }
    )
    assert isinstance(pe.per_method_bars({"a": table, "b": table}), plt.Figure)
    idx = confident_mistakes([0, 0, 1, 1], [0.9, 0.6, 0.05, 0.8], threshold=0.5, k=5)
    assert idx.tolist() == [2, 0, 1]  # fake at 0.05 (0.45 under), real at 0.9 (0.4 over), real at 0.6 (0.1)
    imgs = [torch.rand(3, 16, 16) for _ in idx]
    assert isinstance(pe.mistake_gallery(imgs, [0.05, 0.9, 0.6], [1, 0, 0], 0.5), plt.Figure)
    assert isinstance(pe.mistake_gallery([], [], []), plt.Figure)
    img = torch.randint(0, 256, (3, 32, 32), dtype=torch.uint8)
    assert isinstance(pe.degradation_examples(img, {"jpeg": (90, 30), "blur": (0.0, 2.0)}), plt.Figure)


def test_confident_mistakes_balanced_shows_both_kinds():
    # reals 0..3 all flagged (0.9, 0.8, 0.7, 0.6), fakes 4..5 missed (0.05, 0.35), fake 6 caught
    labels = [0, 0, 0, 0, 1, 1, 1]
    scores = [0.9, 0.8, 0.7, 0.6, 0.05, 0.35, 0.95]
    assert confident_mistakes(labels, scores, 0.5, k=4).tolist() == [4, 0, 1, 2]
    assert confident_mistakes(labels, scores, 0.5, k=4, balanced=True).tolist() == [0, 1, 4, 5]
    assert confident_mistakes(labels, scores, 0.5, k=5, balanced=True).tolist() == [0, 1, 2, 4, 5]
    # Too few missed fakes: the reals fill in.
    assert confident_mistakes(labels, scores, 0.5, k=6, balanced=True).tolist() == [0, 1, 2, 3, 4, 5]
    assert confident_mistakes(labels, scores, 0.2, k=4, balanced=True).tolist() == [0, 1, 2, 4]
