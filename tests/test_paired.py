"""The paired bootstrap of a difference between two detectors on the same images, and tail-metric support."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from dflib.evaluation import (
    accuracy,
    full_report,
    paired_bootstrap,
    pairwise_differences,
    tail_notes,
    tail_support,
)


def _data(n: int = 60, seed: int = 0):
    rng = np.random.default_rng(seed)
    y = np.r_[np.zeros(n, int), np.ones(n, int)]
    good = np.clip(0.5 + (y - 0.5) * 0.6 + rng.normal(0, 0.15, y.size), 0, 1)  # separates well
    poor = np.clip(0.5 + (y - 0.5) * 0.1 + rng.normal(0, 0.25, y.size), 0, 1)  # barely
    return y, good, poor


def test_identical_scores_differ_by_exactly_zero():
    y, good, _ = _data()
    d = paired_bootstrap(y, good, good.copy(), n_boot=200)
    assert d.difference == 0 and d.low == 0 and d.high == 0
    assert d.p_value == 1.0 and d.n_boot == 200


def test_a_clearly_better_detector_has_an_interval_above_zero():
    y, good, poor = _data()
    d = paired_bootstrap(y, good, poor, n_boot=500)
    assert d.difference > 0.2 and d.low > 0 and d.high > d.low
    assert d.p_value < 0.01 and d.sign_flips == 0.0
    flipped = paired_bootstrap(y, poor, good, n_boot=500)
    assert flipped.difference == pytest.approx(-d.difference) and flipped.high < 0


def test_deterministic_with_a_seed():
    y, good, poor = _data()
    assert paired_bootstrap(y, good, poor, seed=3, n_boot=300) == paired_bootstrap(y, good, poor, seed=3, n_boot=300)
    assert paired_bootstrap(y, good, poor, seed=3, n_boot=300) != paired_bootstrap(y, good, poor, seed=4, n_boot=300)


def test_agrees_with_a_brute_force_numpy_bootstrap():
    y, good, poor = _data(n=15, seed=1)
    good = np.round(good, 1)  # ties: counted 1/2 by both
    n_boot, seed = 300, 7
    # brute force: the same stratified draws (reals then fakes, one generator), sklearn per resample
    rng = np.random.default_rng(seed)
    reals, fakes = np.flatnonzero(y == 0), np.flatnonzero(y == 1)
    idx = np.concatenate(
        [
            reals[rng.integers(0, reals.size, (n_boot, reals.size))],
            fakes[rng.integers(0, fakes.size, (n_boot, fakes.size))],
        ],
        axis=1,
    )
    diffs = np.array([roc_auc_score(y[i], good[i]) - roc_auc_score(y[i], poor[i]) for i in idx])
    d = paired_bootstrap(y, good, poor, n_boot=n_boot, seed=seed, level=0.9)
    lo, hi = np.quantile(diffs, [0.05, 0.95])
    assert d.difference == pytest.approx(roc_auc_score(y, good) - roc_auc_score(y, poor), abs=1e-12)
    assert (d.low, d.high) == pytest.approx((lo, hi), abs=1e-12)
    assert d.p_value == pytest.approx(min(1, 2 * min((diffs <= 0).mean(), (diffs >= 0).mean())))
    # a metric other than ROC-AUC goes through the general path
    acc = paired_bootstrap(y, good, poor, metric=lambda a, s: accuracy(a, s, 0.5), n_boot=n_boot, seed=seed)
    brute = np.array([accuracy(y[i], good[i]) - accuracy(y[i], poor[i]) for i in idx])
    assert (acc.low, acc.high) == pytest.approx(tuple(np.quantile(brute, [0.025, 0.975])), abs=1e-12)


def test_clear_errors():
    y, good, poor = _data()
    with pytest.raises(ValueError, match="differ in length"):
        paired_bootstrap(y, good, poor[:-1])
    with pytest.raises(ValueError, match="both real and fake"):
        paired_bootstrap(np.ones(5), good[:5], poor[:5])
    with pytest.raises(ValueError, match="n_boot"):
        paired_bootstrap(y, good, poor, n_boot=0)
    with pytest.raises(ValueError, match="level"):
        paired_bootstrap(y, good, poor, level=95)
    with pytest.raises(ValueError, match="at least two"):
        pairwise_differences(y, {"a": good})


def test_pairwise_table():
    y, good, poor = _data()
    t = pairwise_differences(y, {"good": good, "poor": poor, "same": good}, n_boot=200)
    assert list(zip(t["a"], t["b"])) == [("good", "poor"), ("good", "same"), ("poor", "same")]
    row = t.iloc[0]
    assert row["difference"] == pytest.approx(row["metric_a"] - row["metric_b"]) and row["low"] > 0
    assert t.iloc[1]["difference"] == 0


def test_tail_support_counts_the_reals_the_number_rests_on():
    s = tail_support(100, 0.01)
    assert s["allowed"] == 1 and s["few"]
    assert "rests on 1 real image of 100 allowed to be flagged" in s["text"]
    assert tail_support(5000, 0.01)["allowed"] == 50 and not tail_support(5000, 0.01)["few"]
    assert "no real image" in tail_support(50, 0.01)["text"]
    with pytest.raises(ValueError, match="n_real"):
        tail_support(0, 0.01)
    with pytest.raises(ValueError, match="max_fpr"):
        tail_support(100, 1.5)
    y, good, _ = _data(n=100)
    rep = full_report(y, good, 0.5, n_boot=50)
    assert rep["tail_support"]["tpr_at_fpr_1pct"]["allowed"] == 1
    assert rep["tail_support"]["tpr_at_fpr_5pct"]["allowed"] == 5
    lines = tail_notes({"m": rep})
    assert len(lines) == 2 and lines[0].startswith("m: TPR @ 1 % FPR") and "1 real image of 100" in lines[0]
