"""Metrics of a real/fake detector from labels and scores, and choosing a decision threshold.

Convention: labels are fake = 1, real = 0; a score is P(fake); an image is called fake when
``score >= threshold``. The numbers come from scikit-learn; this module fixes the convention,
adds the operating points detection papers report (EER, TPR at a fixed FPR) and turns misuse
(one class only, NaN scores, mismatched lengths) into clear errors.

**Thresholds are chosen on Validation and applied to Test, never chosen on Test.** A threshold
tuned on the split you report is an optimistic, leaked number. :func:`choose_threshold` refuses
``split="Test"``; :func:`dflib.evaluation.report.report_on_test` does the whole honest recipe.

Everything is re-exported by :mod:`dflib.evaluation.scoring`.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn import metrics as skm

THRESHOLD_METHODS = ("youden", "eer", "fpr")


def check_scores(labels, scores) -> tuple[np.ndarray, np.ndarray]:
    """Labels (int64, 0 = real, 1 = fake) and scores (float64) as flat arrays, or a clear ``ValueError``.

    Every metric starts here, so misuse (lengths that differ, no samples, labels other than 0/1,
    NaN scores from a diverged model) is reported the same way everywhere.
    """
    y = np.asarray(labels).astype(np.int64).ravel()
    s = np.asarray(scores, dtype=np.float64).ravel()
    if y.shape != s.shape:
        raise ValueError(f"labels and scores differ in length: {y.size} vs {s.size}")
    if y.size == 0:
        raise ValueError("no samples to evaluate (empty labels/scores)")
    if not np.isin(y, (0, 1)).all():
        raise ValueError("labels must be 0 (real) or 1 (fake)")
    if not np.isfinite(s).all():
        raise ValueError("scores contain NaN or infinity; the model diverged (lower the learning rate)")
    return y, s


def require_both_classes(y: np.ndarray, what: str) -> None:
    """Raise a ``ValueError`` naming ``what`` when ``y`` holds one class only (ROC-AUC and the like are undefined)."""
    if np.unique(y).size < 2:
        only = "fake" if y[0] == 1 else "real"
        raise ValueError(
            f"{what} needs both real and fake images, but all {y.size} are {only}; "
            f"evaluate on a split that holds both classes"
        )


def _check_rate(value: float, name: str) -> float:
    if not isinstance(value, (int, float, np.floating)) or isinstance(value, bool) or not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} must be a rate between 0 and 1 (e.g. 0.05 for 5 %), got {value!r}")
    return float(value)


def _predict(s: np.ndarray, threshold: float) -> np.ndarray:
    return (s >= threshold).astype(np.int64)


# --- Ranking metrics (no threshold) ------------------------------------------------------


def roc_auc(labels, scores) -> float:
    """Area under the ROC curve: P(a random fake scores higher than a random real)."""
    y, s = check_scores(labels, scores)
    require_both_classes(y, "ROC-AUC")
    return float(skm.roc_auc_score(y, s))


def average_precision(labels, scores) -> float:
    """Area under the precision-recall curve with fake as the positive class."""
    y, s = check_scores(labels, scores)
    require_both_classes(y, "average precision")
    return float(skm.average_precision_score(y, s))


def roc_points(labels, scores) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every point of the ROC curve: ``fpr, tpr, thresholds`` (thresholds descending, the
    first is +inf = nothing called fake), from :func:`sklearn.metrics.roc_curve`."""
    y, s = check_scores(labels, scores)
    require_both_classes(y, "the ROC curve")
    return skm.roc_curve(y, s, drop_intermediate=False)


def auc_from_roc(fpr: np.ndarray, tpr: np.ndarray) -> float:
    """Area under an ROC curve given by its points (trapezoid rule), e.g. from :func:`roc_points`.

    The same number as :func:`roc_auc` on the scores the curve came from; for code that already
    has the curve (the bootstrap, the ROC figure).
    """
    fpr, tpr = np.asarray(fpr, np.float64), np.asarray(tpr, np.float64)
    return float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2))


def _eer_from_roc(fpr: np.ndarray, tpr: np.ndarray, thresholds: np.ndarray) -> tuple[float, float]:
    fnr = 1.0 - tpr
    d = fnr - fpr  # 1 at +inf, decreasing to -1
    i = int(np.flatnonzero(d <= 0)[0])
    if d[i] == 0 or i == 0:
        rate = float(fpr[i])
    else:  # the curves cross between ROC points i-1 and i: interpolate linearly
        t = d[i - 1] / (d[i - 1] - d[i])
        rate = float(fpr[i - 1] + t * (fpr[i] - fpr[i - 1]))
    finite = np.isfinite(thresholds)
    gap = np.where(finite, np.abs(d), np.inf)
    best = int(np.flatnonzero(gap <= gap.min() + 1e-12)[0])  # ties -> the higher threshold
    return rate, float(thresholds[best])


def equal_error_rate(labels, scores) -> tuple[float, float]:
    """Equal error rate and its threshold: ``(eer, threshold)``.

    The EER is the error rate where the false-positive rate (reals called fake) equals the
    false-negative rate (fakes missed), read off the ROC curve with linear interpolation
    between the two ROC points around the crossing. The threshold is the score of the ROC
    point closest to that crossing (``min |FNR - FPR|``, the higher one on a tie).
    """
    return _eer_from_roc(*roc_points(labels, scores))


def eer(labels, scores) -> float:
    """Equal error rate alone (see :func:`equal_error_rate`)."""
    return equal_error_rate(labels, scores)[0]


def _tpr_at_fpr(fpr: np.ndarray, tpr: np.ndarray, thresholds: np.ndarray, max_fpr: float) -> tuple[float, float]:
    ok = (fpr <= max_fpr + 1e-12) & np.isfinite(thresholds)
    if not ok.any():
        return 0.0, float("inf")
    idx = np.flatnonzero(ok)
    best = idx[int(np.argmax(tpr[idx]))]  # argmax takes the first = highest threshold on ties
    return float(tpr[best]), float(thresholds[best])


def tpr_at_fpr(labels, scores, max_fpr: float = 0.01) -> float:
    """Share of fakes caught while at most ``max_fpr`` of the reals are flagged.

    The best ROC point with FPR <= ``max_fpr`` (no interpolation: an operating point you could
    actually deploy). With few reals the achievable FPRs are coarse (multiples of 1 / n_real).
    """
    max_fpr = _check_rate(max_fpr, "max_fpr")
    return _tpr_at_fpr(*roc_points(labels, scores), max_fpr)[0]


def tail_support(n_real: int, max_fpr: float) -> dict[str, Any]:
    """How many real images a "TPR at ``max_fpr`` FPR" rests on: ``{max_fpr, n_real, allowed, text, few}``.

    At most ``floor(max_fpr * n_real)`` reals may score above the threshold, so the operating
    point is set by the top few real scores. On 100 reals, TPR at 1 % FPR rests on **one** real
    image: move that one image and the number jumps (its bootstrap interval is huge). ``few`` is
    True below 10 allowed reals; ``text`` is the sentence to print next to the number.
    """
    if not isinstance(n_real, (int, np.integer)) or isinstance(n_real, bool) or n_real < 1:
        raise ValueError(f"n_real must be a positive number of real images, got {n_real!r}")
    max_fpr = _check_rate(max_fpr, "max_fpr")
    allowed = int(np.floor(max_fpr * n_real + 1e-9))
    pct = f"{100 * max_fpr:g} %"
    if allowed == 0:
        text = (
            f"TPR at {pct} FPR allows no real image of {n_real:,} to be flagged: it is the share of fakes "
            f"scoring above every real, set by the single highest real score"
        )
    else:
        text = (
            f"TPR at {pct} FPR rests on {allowed:,} real image{'s' if allowed != 1 else ''} of {n_real:,} "
            f"allowed to be flagged"
        )
    if allowed < 10:
        text += f" (too few for a stable number: at least {int(np.ceil(10 / max_fpr)):,} reals give 10)"
    return {"max_fpr": max_fpr, "n_real": int(n_real), "allowed": allowed, "text": text, "few": allowed < 10}


TAIL_METRICS = {"tpr_at_fpr_1pct": 0.01, "tpr_at_fpr_5pct": 0.05}
"""The metrics of :data:`METRIC_NAMES` read at a fixed FPR, and that FPR (see :func:`tail_support`)."""


# --- Metrics at a threshold --------------------------------------------------------------


def accuracy(labels, scores, threshold: float = 0.5) -> float:
    """Fraction of images classified right when fake means ``score >= threshold``."""
    y, s = check_scores(labels, scores)
    return float(skm.accuracy_score(y, _predict(s, threshold)))


def balanced_accuracy(labels, scores, threshold: float = 0.5) -> float:
    """Mean of the accuracy on reals and on fakes (insensitive to class imbalance)."""
    y, s = check_scores(labels, scores)
    return float(skm.balanced_accuracy_score(y, _predict(s, threshold)))


def precision(labels, scores, threshold: float = 0.5) -> float:
    """Of the images called fake, the share that are fake (0 when nothing is called fake)."""
    y, s = check_scores(labels, scores)
    return float(skm.precision_score(y, _predict(s, threshold), zero_division=0.0))


def recall(labels, scores, threshold: float = 0.5) -> float:
    """Of the fakes, the share called fake (= TPR, sensitivity; 0 when there are no fakes)."""
    y, s = check_scores(labels, scores)
    return float(skm.recall_score(y, _predict(s, threshold), zero_division=0.0))


def f1(labels, scores, threshold: float = 0.5) -> float:
    """Harmonic mean of precision and recall for the fake class."""
    y, s = check_scores(labels, scores)
    return float(skm.f1_score(y, _predict(s, threshold), zero_division=0.0))


def confusion_matrix(labels, scores, threshold: float = 0.5) -> np.ndarray:
    """``[[TN, FP], [FN, TP]]``: rows = true class (real, fake), columns = predicted class."""
    y, s = check_scores(labels, scores)
    return skm.confusion_matrix(y, _predict(s, threshold), labels=[0, 1])


def per_class_accuracy(labels, scores, threshold: float = 0.5) -> dict[str, float]:
    """Accuracy on each class: ``{"real": TN / n_real, "fake": TP / n_fake}`` (NaN for an absent class)."""
    (tn, fp), (fn, tp) = confusion_matrix(labels, scores, threshold)
    return {
        "real": float(tn / (tn + fp)) if tn + fp else float("nan"),
        "fake": float(tp / (tp + fn)) if tp + fn else float("nan"),
    }


# --- Choosing the threshold (on Validation) ----------------------------------------------


def choose_threshold(
    labels, scores, method: str = "youden", *, target_fpr: float = 0.05, split: str | None = None
) -> float:
    """A decision threshold chosen on these **validation** scores, to be applied to Test.

    Methods:

    * ``"youden"`` (default): maximise Youden's J = TPR - FPR, which is the same as maximising
      balanced accuracy ((TPR + TNR) / 2 = (J + 1) / 2); among equally good thresholds the
      highest is taken.
    * ``"eer"``: the equal-error-rate threshold (FPR = FNR), see :func:`equal_error_rate`.
    * ``"fpr"``: the threshold that catches the most fakes while flagging at most
      ``target_fpr`` of the reals (e.g. 0.05). If no score achieves it, a threshold just above
      every score is returned (nothing called fake).

    The result is one of the scores (fake when ``score >= threshold``). Pass ``split`` (the
    name of the split the scores come from) to have a choice on Test refused.
    """
    if method not in THRESHOLD_METHODS:
        raise ValueError(f"unknown threshold method {method!r}; choose one of {THRESHOLD_METHODS}")
    if split is not None and str(split).strip().lower() == "test":
        raise ValueError(
            "refusing to choose a threshold on the Test split: choose it on Validation "
            "scores and apply it to Test (see dflib.evaluation.report.report_on_test)"
        )
    y, s = check_scores(labels, scores)
    require_both_classes(y, "choosing a threshold")
    fpr, tpr, thresholds = skm.roc_curve(y, s, drop_intermediate=False)
    if method == "eer":
        return _eer_from_roc(fpr, tpr, thresholds)[1]
    if method == "fpr":
        target = _check_rate(target_fpr, "target_fpr")
        thr = _tpr_at_fpr(fpr, tpr, thresholds, target)[1]
        return thr if np.isfinite(thr) else float(np.nextafter(s.max(), np.inf))
    finite = np.isfinite(thresholds)  # the first threshold is +inf (nothing called fake)
    j = np.where(finite, tpr - fpr, -np.inf)
    best = int(np.flatnonzero(j >= j.max() - 1e-12)[0])  # thresholds descend: first = highest
    return float(thresholds[best])


def oracle_accuracy(labels, scores) -> tuple[float, float]:
    """``(accuracy, threshold)``: the best accuracy any threshold reaches on *these* scores.

    This is what tuning the threshold on the split you report would claim. It exists to show
    how optimistic that is (compare it with the accuracy at a threshold chosen on Validation);
    never report it as a result. The threshold is one of the scores, or +inf (nothing fake).
    """
    y, s = check_scores(labels, scores)
    require_both_classes(y, "the oracle accuracy")
    fpr, tpr, thresholds = skm.roc_curve(y, s, drop_intermediate=False)
    n_fake = float(y.sum())
    acc = (tpr * n_fake + (1 - fpr) * (y.size - n_fake)) / y.size
    best = int(np.argmax(acc))
    return float(acc[best]), float(thresholds[best])


# --- Everything at once (used by the report and the bootstrap) ---------------------------

METRIC_NAMES = (
    "roc_auc",
    "average_precision",
    "eer",
    "tpr_at_fpr_1pct",
    "tpr_at_fpr_5pct",
    "accuracy",
    "balanced_accuracy",
    "precision",
    "recall",
    "f1",
    "accuracy_real",
    "accuracy_fake",
)


def all_metrics(labels, scores, threshold: float = 0.5) -> dict[str, Any]:
    """Every metric of :data:`METRIC_NAMES` in one pass (one ROC curve, one confusion matrix).

    Gives the same numbers as the single-metric functions, only faster, which matters for the
    bootstrap. Also returns ``eer_threshold`` and the ``confusion_matrix`` as nested lists.
    """
    y, s = check_scores(labels, scores)
    require_both_classes(y, "the metric report")
    return fast_metrics(y, s, threshold)


def fast_metrics(y: np.ndarray, s: np.ndarray, threshold: float) -> dict[str, Any]:
    """:func:`all_metrics` without its input checks, from one ROC curve: for arrays already checked by
    :func:`check_scores` (the bootstrap calls it a thousand times per report)."""
    fpr, tpr, thr = skm.roc_curve(y, s, drop_intermediate=False)
    rate, eer_thr = _eer_from_roc(fpr, tpr, thr)
    pred = s >= threshold
    tp = int(np.sum(pred & (y == 1)))
    fp = int(np.sum(pred & (y == 0)))
    fn = int(np.sum(~pred & (y == 1)))
    tn = int(np.sum(~pred & (y == 0)))
    prec = tp / (tp + fp) if tp + fp else 0.0
    rec = tp / (tp + fn) if tp + fn else 0.0
    spec = tn / (tn + fp) if tn + fp else 0.0
    # AUC and AP from the one ROC curve (the same sums sklearn's auc / average_precision_score do,
    # without their input checks: this runs a thousand times per bootstrap).
    n_pos = float(y.sum())
    tps, fps = tpr * n_pos, fpr * (y.size - n_pos)
    with np.errstate(invalid="ignore", divide="ignore"):
        prec_curve = np.where(tps + fps > 0, tps / (tps + fps), 1.0)
    return {
        "roc_auc": auc_from_roc(fpr, tpr),
        "average_precision": float(np.sum(np.diff(tpr) * prec_curve[1:])),
        "eer": rate,
        "tpr_at_fpr_1pct": _tpr_at_fpr(fpr, tpr, thr, 0.01)[0],
        "tpr_at_fpr_5pct": _tpr_at_fpr(fpr, tpr, thr, 0.05)[0],
        "accuracy": (tp + tn) / y.size,
        "balanced_accuracy": (rec + spec) / 2,
        "precision": prec,
        "recall": rec,
        "f1": 2 * prec * rec / (prec + rec) if prec + rec else 0.0,
        "accuracy_real": spec,
        "accuracy_fake": rec,
        "eer_threshold": eer_thr,
        "confusion_matrix": [[tn, fp], [fn, tp]],
    }
