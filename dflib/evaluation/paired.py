"""Comparing two detectors scored on the same images: the paired bootstrap of the difference.

Two 95 % intervals that overlap do **not** show that two detectors are alike. When both are
scored on the same Test images their errors are correlated (the hard images are hard for both),
so most of the noise in each number cancels in the difference. The right question is about
the difference itself: resample the images (the same resample for both detectors), compute
``metric(a) - metric(b)`` on each resample, and read off its interval (Efron & Tibshirani 1993,
"An Introduction to the Bootstrap", ch. 16).

    >>> d = paired_bootstrap(y, scores_resnet, scores_vit)       # ROC-AUC(a) - ROC-AUC(b)
    >>> d.difference, (d.low, d.high), d.p_value
    >>> pairwise_differences(y, {"resnet": s1, "vit": s2, "sqnxt": s3})   # one row per pair
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from itertools import combinations
from typing import NamedTuple

import numpy as np
import pandas as pd
from scipy.stats import rankdata

from dflib.evaluation.metrics import check_scores, require_both_classes, roc_auc
from dflib.evaluation.report import stratified_indices

_CHUNK = 256  # resamples ranked at once by the fast ROC-AUC path (bounds memory on large Test sets)


class PairedDiff(NamedTuple):
    """``metric(a) - metric(b)`` on the images, its bootstrap interval and how often its sign flips."""

    difference: float
    low: float
    high: float
    p_value: float  # two-sided bootstrap p-value: 2 * min(share <= 0, share >= 0), at most 1
    sign_flips: float  # share of resamples whose difference does not have the observed sign
    n_boot: int


def _check_level(level: float) -> float:
    if not isinstance(level, (int, float, np.floating)) or isinstance(level, bool) or not 0 < level < 1:
        raise ValueError(f"level must be between 0 and 1 (0.95 for a 95 % interval), got {level!r}")
    return float(level)


def _check_n_boot(n_boot: int) -> int:
    if not isinstance(n_boot, (int, np.integer)) or isinstance(n_boot, bool) or n_boot < 1:
        raise ValueError(f"n_boot must be a positive integer (e.g. 2000 resamples), got {n_boot!r}")
    return int(n_boot)


def _auc_rows(s: np.ndarray, n_real: int) -> np.ndarray:
    """ROC-AUC of every row of ``s`` (reals in the first ``n_real`` columns, fakes after): Mann-Whitney U."""
    n_fake = s.shape[1] - n_real
    ranks = rankdata(s, axis=1)  # ties get the mean rank = counted 1/2
    u = ranks[:, n_real:].sum(axis=1) - n_fake * (n_fake + 1) / 2
    return u / (n_real * n_fake)


def _boot_differences(y: np.ndarray, a: np.ndarray, b: np.ndarray, metric: Callable, idx: np.ndarray) -> np.ndarray:
    if metric is roc_auc:  # the default: vectorised, ~100x faster than one sklearn call per resample
        n_real = int((y == 0).sum())
        out = []
        for start in range(0, len(idx), _CHUNK):
            rows = idx[start : start + _CHUNK]  # stratified_indices puts reals first, then fakes
            out.append(_auc_rows(a[rows], n_real) - _auc_rows(b[rows], n_real))
        return np.concatenate(out)
    diffs = np.full(len(idx), np.nan)
    for k, rows in enumerate(idx):
        try:
            diffs[k] = float(metric(y[rows], a[rows])) - float(metric(y[rows], b[rows]))
        except ValueError:  # undefined on this resample: skipped
            continue
    return diffs


def _summarise(observed: float, diffs: np.ndarray, level: float, n_boot: int) -> PairedDiff:
    d = diffs[np.isfinite(diffs)]
    if d.size == 0:
        return PairedDiff(observed, float("nan"), float("nan"), float("nan"), float("nan"), n_boot)
    lo, hi = np.quantile(d, [(1 - level) / 2, (1 + level) / 2])
    p = min(1.0, 2 * min(float(np.mean(d <= 0)), float(np.mean(d >= 0))))
    flips = float(np.mean(d * np.sign(observed) <= 0)) if observed != 0 else 1.0
    return PairedDiff(float(observed), float(lo), float(hi), p, flips, n_boot)


def paired_bootstrap(
    labels,
    scores_a,
    scores_b,
    metric: Callable[[np.ndarray, np.ndarray], float] = roc_auc,
    n_boot: int = 2000,
    seed: int = 0,
    level: float = 0.95,
) -> PairedDiff:
    """Paired bootstrap of ``metric(labels, scores_a) - metric(labels, scores_b)`` on the same images.

    Each resample draws reals among the reals and fakes among the fakes (stratified, so ROC-AUC
    stays defined) and scores **both** detectors on it, so what the two share (the same hard
    images) cancels. Returns :class:`PairedDiff`: the observed difference, its percentile
    interval at ``level``, a two-sided bootstrap p-value and the share of resamples where the
    sign of the difference flips. An interval that excludes 0 says this Test set tells the two
    apart. ``metric`` is any ``f(labels, scores) -> float`` (e.g. ``lambda y, s: accuracy(y, s, thr)``);
    resamples where it raises ``ValueError`` are skipped. The same seed gives the same answer.
    """
    n_boot, level = _check_n_boot(n_boot), _check_level(level)
    y, a = check_scores(labels, scores_a)
    _, b = check_scores(labels, scores_b)
    if a.shape != b.shape:
        raise ValueError(f"scores_a and scores_b differ in length: {a.size} vs {b.size}; score the same images")
    require_both_classes(y, "a paired bootstrap")
    observed = float(metric(y, a)) - float(metric(y, b))
    idx = stratified_indices(y, n_boot, seed)
    return _summarise(observed, _boot_differences(y, a, b, metric, idx), level, n_boot)


def pairwise_differences(
    labels,
    scores: Mapping[str, object],
    metric: Callable[[np.ndarray, np.ndarray], float] = roc_auc,
    n_boot: int = 2000,
    seed: int = 0,
    level: float = 0.95,
) -> pd.DataFrame:
    """:func:`paired_bootstrap` for every pair of detectors in ``{name: scores}`` (same images, same resamples).

    One row per pair ``(a, b)`` in the given order: ``a, b, metric_a, metric_b, difference,
    low, high, p_value, sign_flips``. ``difference = metric_a - metric_b``.
    """
    if len(scores) < 2:
        raise ValueError(f"pairwise_differences needs at least two detectors, got {len(scores)}")
    rows = []
    for name_a, name_b in combinations(list(scores), 2):
        d = paired_bootstrap(labels, scores[name_a], scores[name_b], metric, n_boot=n_boot, seed=seed, level=level)
        y = np.asarray(labels)
        rows.append(
            {
                "a": name_a,
                "b": name_b,
                "metric_a": float(metric(y, np.asarray(scores[name_a], dtype=np.float64))),
                "metric_b": float(metric(y, np.asarray(scores[name_b], dtype=np.float64))),
                "difference": d.difference,
                "low": d.low,
                "high": d.high,
                "p_value": d.p_value,
                "sign_flips": d.sign_flips,
            }
        )
    return pd.DataFrame(rows)
