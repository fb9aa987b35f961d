"""Calibration: does P(fake) = 0.8 mean "fake 80 % of the time"? ECE, reliability data, temperature.

A detector can rank images perfectly (high ROC-AUC) and still be badly calibrated. Large modern
networks trained on big datasets tend to be over-confident (Guo et al. 2017), pushing scores to
0 and 1; small detectors trained briefly, as in this course, can as well be under-confident
(fitted T < 1): measure it, do not assume it. Temperature scaling (Guo et al.
2017, "On Calibration of Modern Neural Networks") divides every logit by one scalar T > 0
fitted on **Validation** by minimising the negative log-likelihood, then applies the same T to
Test. It changes no decision at threshold 0.5 and no ranking (ROC-AUC is unchanged), only how
much the probabilities can be trusted.

    >>> T = fit_temperature(val_logits, val_labels)           # on Validation
    >>> test_scores = apply_temperature(test_logits, T)       # applied to Test
    >>> expected_calibration_error(test_labels, test_scores)
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from sklearn import metrics as skm

from dflib.evaluation.metrics import check_scores, require_both_classes


def _check_bins(n_bins: int) -> int:
    if not isinstance(n_bins, (int, np.integer)) or isinstance(n_bins, bool) or n_bins < 1:
        raise ValueError(f"n_bins must be a positive integer (e.g. 15), got {n_bins!r}")
    return int(n_bins)


def _check_probabilities(s: np.ndarray) -> None:
    if s.min() < 0 or s.max() > 1:
        raise ValueError(
            f"scores must be probabilities P(fake) in [0, 1], got values in "
            f"[{s.min():.3g}, {s.max():.3g}]; pass torch.sigmoid(logits), or use the logits "
            "with fit_temperature / apply_temperature"
        )


def reliability_curve(labels, scores, n_bins: int = 15) -> pd.DataFrame:
    """Reliability-diagram data with ``n_bins`` equal-width bins of P(fake) over [0, 1].

    Bins are ``(lower, upper]`` (the first also holds 0). One row per bin: ``bin_lower``,
    ``bin_upper``, ``count``, ``mean_score`` (mean predicted P(fake)) and ``fraction_fake``
    (observed share of fakes; NaN for an empty bin). For a calibrated detector
    ``fraction_fake ≈ mean_score``. The non-empty bins equal
    :func:`sklearn.calibration.calibration_curve` with ``strategy="uniform"``; we also need the
    counts, which sklearn does not return.
    """
    y, s = check_scores(labels, scores)
    _check_probabilities(s)
    n_bins = _check_bins(n_bins)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    # Bin k holds (edge_k, edge_k+1], the first also 0: the binning of sklearn's calibration_curve.
    idx = np.searchsorted(edges[1:-1], s, side="left")
    count = np.bincount(idx, minlength=n_bins)
    sum_s = np.bincount(idx, weights=s, minlength=n_bins)
    sum_y = np.bincount(idx, weights=y, minlength=n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_s = np.where(count > 0, sum_s / count, np.nan)
        frac = np.where(count > 0, sum_y / count, np.nan)
    return pd.DataFrame(
        {"bin_lower": edges[:-1], "bin_upper": edges[1:], "count": count, "mean_score": mean_s, "fraction_fake": frac}
    )


def expected_calibration_error(labels, scores, n_bins: int = 15) -> float:
    """ECE: the count-weighted mean gap between mean P(fake) and the share of fakes per bin.

    ``ECE = sum_b (n_b / N) * |fraction_fake_b - mean_score_b|`` over ``n_bins`` equal-width
    bins (0 = perfectly calibrated; this binary form scores P(fake) directly rather than the
    top-class confidence).
    """
    table = reliability_curve(labels, scores, n_bins)
    full = table[table["count"] > 0]
    gaps = (full["fraction_fake"] - full["mean_score"]).abs()
    return float((full["count"] * gaps).sum() / full["count"].sum())


def _as_logits(logits, labels) -> tuple[torch.Tensor, torch.Tensor]:
    y, z = check_scores(labels, logits)
    require_both_classes(y, "temperature scaling")
    return torch.as_tensor(z, dtype=torch.float64), torch.as_tensor(y, dtype=torch.float64)


def fit_temperature(logits, labels, max_iter: int = 200) -> float:
    """The temperature T > 0 that minimises the NLL of ``sigmoid(logits / T)`` on these labels.

    Fit on **Validation** logits (not probabilities). T > 1 softens an over-confident detector,
    T < 1 sharpens an under-confident one. Optimised with L-BFGS over log T, so T stays positive.
    """
    z, y = _as_logits(logits, labels)
    log_t = torch.zeros((), dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([log_t], lr=0.5, max_iter=max_iter, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = F.binary_cross_entropy_with_logits(z / log_t.exp(), y)
        loss.backward()
        return loss

    with torch.enable_grad():
        opt.step(closure)
    t = float(log_t.detach().exp())
    if not np.isfinite(t) or t <= 0:
        raise ValueError(
            "temperature scaling did not converge; check that the logits are logits "
            "(not probabilities) and that the validation split holds both classes"
        )
    return t


def apply_temperature(logits, temperature: float) -> np.ndarray:
    """Calibrated scores ``sigmoid(logits / T)`` (float64 numpy), e.g. on Test with T from Validation."""
    if not isinstance(temperature, (int, float, np.floating)) or not np.isfinite(temperature) or temperature <= 0:
        raise ValueError(f"temperature must be a positive number (from fit_temperature), got {temperature!r}")
    z = torch.as_tensor(np.asarray(logits, dtype=np.float64))
    return torch.sigmoid(z / float(temperature)).numpy().ravel()


def calibration_summary(labels, scores, n_bins: int = 15) -> dict[str, Any]:
    """ECE, Brier score and negative log-likelihood of P(fake) scores (lower is better for all)."""
    y, s = check_scores(labels, scores)
    _check_probabilities(s)
    return {
        "ece": expected_calibration_error(y, s, n_bins),
        "brier": float(skm.brier_score_loss(y, s)),
        "nll": float(skm.log_loss(y, np.clip(s, 1e-12, 1 - 1e-12), labels=[0, 1])),
        "n_bins": int(n_bins),
    }
