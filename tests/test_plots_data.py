"""The data notebook's figures show the numbers they are given, in the class colours."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from matplotlib.colors import to_rgb  # noqa: E402

from dflib import plots  # noqa: E402


@pytest.fixture(autouse=True)
def _close():
    yield
    plt.close("all")


def test_class_balance_bars_are_the_counts_in_class_colours():
    counts = {"Train": {"fake": 1200, "real": 1000}, "Test": {"real": 40, "fake": 60}}
    ax = plots.class_balance(counts).axes[0]
    real, fake = ax.containers  # one bar group per class, splits in the given order
    assert [b.get_height() for b in real] == [1000, 40] and [b.get_height() for b in fake] == [1200, 60]
    assert all(to_rgb(b.get_facecolor()) == to_rgb(plots.CLASS_COLORS["real"]) for b in real)
    assert all(to_rgb(b.get_facecolor()) == to_rgb(plots.CLASS_COLORS["fake"]) for b in fake)
    assert [t.get_text() for t in ax.get_xticklabels()] == ["Train", "Test"]
    assert [t.get_text() for t in ax.texts] == ["1,000", "40", "1,200", "60"]  # the bar labels
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["real", "fake"]
    assert ax.get_ylabel() == "images"


def test_feature_histograms_are_per_class_densities_on_shared_bins():
    rng = np.random.default_rng(0)
    stats = pd.DataFrame(
        {
            "class": ["real"] * 300 + ["fake"] * 60,
            "mean_intensity": np.r_[rng.normal(100, 10, 300), rng.normal(140, 10, 60)],
            "file_kb": rng.gamma(3, 4, 360),
        }
    )
    fig = plots.feature_histograms(stats, {"mean_intensity": "mean intensity (0-255)", "file_kb": "file size (KB)"})
    assert len(fig.axes) == 2
    ax = fig.axes[0]
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("mean intensity (0-255)", "density")
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["real", "fake"]
    colour = {cls: to_rgb(c) for cls, c in plots.CLASS_COLORS.items()}
    bars = {cls: [b for b in ax.patches if to_rgb(b.get_facecolor()) == colour[cls]] for cls in colour}
    for cls, own in bars.items():  # each class integrates to 1: imbalance does not flatten the smaller one
        assert sum(b.get_height() * b.get_width() for b in own) == pytest.approx(1.0), cls
    edges = {cls: sorted(round(b.get_x(), 9) for b in own if b.get_width() > 0) for cls, own in bars.items()}
    assert edges["real"] == edges["fake"] and len(edges["real"]) == 30  # the same 30 bins for both
