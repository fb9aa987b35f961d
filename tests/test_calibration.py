"""Calibration: ECE and reliability bins by hand, temperature scaling recovers a known temperature."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.calibration import calibration_curve

from dflib.evaluation import (
    apply_temperature,
    calibration_summary,
    expected_calibration_error,
    fit_temperature,
    reliability_curve,
    roc_auc,
)


def test_ece_by_hand():
    # 2 bins: (0, 0.5] holds 0.2, 0.2 (1 fake of 2 -> 0.5 observed vs 0.2 predicted: gap 0.3),
    #         (0.5, 1] holds 0.9, 0.9 (1 fake of 2 -> 0.5 vs 0.9: gap 0.4); ECE = 1/2 * 0.3 + 1/2 * 0.4
    assert expected_calibration_error([0, 1, 0, 1], [0.2, 0.2, 0.9, 0.9], n_bins=2) == pytest.approx(0.35)
    # 0.5 belongs to the first bin, 1.0 to the last; a perfectly calibrated pair of bins has ECE 0
    t = reliability_curve([0, 1, 1, 1], [0.5, 0.5, 1.0, 1.0], n_bins=2)
    assert t["count"].tolist() == [2, 2] and t["fraction_fake"].tolist() == [0.5, 1.0]
    assert expected_calibration_error([0, 1, 1, 1], [0.5, 0.5, 1.0, 1.0], n_bins=2) == pytest.approx(0.0)


def test_reliability_curve_matches_sklearn():
    rng = np.random.default_rng(0)
    s = rng.random(500)
    y = (rng.random(500) < s**2).astype(int)
    t = reliability_curve(y, s, n_bins=10)
    prob_true, prob_pred = calibration_curve(y, s, n_bins=10, strategy="uniform")
    full = t[t["count"] > 0]
    np.testing.assert_allclose(full["fraction_fake"], prob_true)
    np.testing.assert_allclose(full["mean_score"], prob_pred)
    assert t["count"].sum() == 500 and len(t) == 10


def test_temperature_scaling_recovers_an_overconfident_model():
    rng = np.random.default_rng(0)
    z = rng.normal(0, 2, 20000)  # true log-odds
    y = (rng.random(z.size) < 1 / (1 + np.exp(-z))).astype(int)
    logits = 3 * z  # over-confident by a factor of 3
    val, test = slice(0, 10000), slice(10000, None)
    t = fit_temperature(logits[val], y[val])  # fitted on "Validation"
    assert t == pytest.approx(3.0, rel=0.08)
    before = 1 / (1 + np.exp(-logits[test]))
    after = apply_temperature(logits[test], t)  # applied to "Test"
    assert expected_calibration_error(y[test], after) < 0.5 * expected_calibration_error(y[test], before)
    assert roc_auc(y[test], after) == pytest.approx(roc_auc(y[test], before))  # ranking untouched
    assert calibration_summary(y[test], after)["nll"] < calibration_summary(y[test], before)["nll"]
    # an already calibrated model keeps T close to 1
    assert fit_temperature(z[val], y[val]) == pytest.approx(1.0, rel=0.08)


def test_calibration_bad_inputs():
    with pytest.raises(ValueError, match="probabilities"):
        expected_calibration_error([0, 1], [-2.0, 3.0])
    with pytest.raises(ValueError, match="n_bins"):
        reliability_curve([0, 1], [0.2, 0.8], n_bins=0)
    with pytest.raises(ValueError, match="needs both real and fake"):
        fit_temperature([1.0, 2.0], [1, 1])
    with pytest.raises(ValueError, match="temperature must be a positive number"):
        apply_temperature([0.0, 1.0], -1.0)
