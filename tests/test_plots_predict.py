"""prediction_grid: one block per image (image + one overlay per detector), verdicts in the titles."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from dflib.plots import prediction_grid  # noqa: E402


def _inputs(n=3):
    rng = np.random.default_rng(0)
    images = [torch.rand(3, 20, 20), rng.integers(0, 255, (24, 24, 3), dtype=np.uint8), torch.rand(3, 16, 16)][:n]
    overlays = {"cnn": [rng.integers(0, 255, (20, 20, 3), dtype=np.uint8), None, np.zeros((8, 8, 3), np.uint8)][:n]}
    scores = {"cnn": [0.9, 0.2, float("nan")][:n], "ensemble": [0.7, 0.6, float("nan")][:n]}
    return images, overlays, scores


def test_layout_titles_and_colours():
    images, overlays, scores = _inputs()
    fig = prediction_grid(
        images,
        ["a.jpg", "b.jpg", "c.jpg"],
        scores,
        {"cnn": 0.5, "ensemble": 0.5},
        overlays=overlays,
        truth=["fake", "fake", None],
        images_per_row=2,
    )
    assert len(fig.axes) == 3 * 2  # image + one overlay per image
    titles = [ax.get_title() for ax in fig.axes]
    assert titles[0] == "a.jpg\ntrue: fake"
    assert titles[1].startswith("cnn (t 0.500)\n0.900 → fake ✓")
    assert titles[3].endswith("0.200 → real ✗") and titles[5].endswith("unreadable")
    assert fig.axes[1].title.get_color() != fig.axes[3].title.get_color()  # right vs wrong
    texts = [t.get_text() for t in fig.axes[2].texts]  # the ensemble sits under the image
    assert texts == ["ensemble (t 0.500): 0.600 → fake ✓"]
    assert [t.get_text() for t in fig.axes[3].texts] == ["no map"]
    plt.close(fig)


def test_small_numbers_stay_readable():
    fig = prediction_grid([torch.rand(3, 8, 8)], ["x"], {"m": [2e-7]}, {"m": 0.0028}, overlays={"m": [None]})
    assert fig.axes[1].get_title() == "m (t 0.0028)\n2e-07 → real"  # no truth: no tick, no colour
    plt.close(fig)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"names": ["only one"]}, "names has 1 entries"),
        ({"thresholds": {"cnn": 0.5}}, "no threshold for ensemble"),
        ({"overlays": {"vit": [None] * 3}}, "no scores"),
        ({"images_per_row": 0}, "images_per_row"),
    ],
)
def test_bad_arguments_say_what_to_fix(kwargs, match):
    images, overlays, scores = _inputs()
    args = {
        "names": ["a", "b", "c"],
        "scores": scores,
        "thresholds": {"cnn": 0.5, "ensemble": 0.5},
        "overlays": overlays,
        **kwargs,
    }
    with pytest.raises(ValueError, match=match):
        prediction_grid(images, **args)
