"""Reports with uncertainty: bootstrap intervals, the full metric report, per-manipulation results.

A test set of a few hundred images gives metrics that move by several points from one sample
to the next; a number without an interval invites over-reading a 0.5 % "improvement".
:func:`bootstrap_ci` resamples reals and fakes separately (stratified: every resample keeps the
class counts, so ROC-AUC stays defined) and reports the percentile interval.

    >>> thr = choose_threshold(val_labels, val_scores)            # chosen on Validation
    >>> rep = full_report(test_labels, test_scores, thr)          # applied to Test
    >>> metrics_table({"resnet": rep})                             # "0.912 [0.890, 0.931]" cells
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pandas as pd

from dflib.evaluation.metrics import (
    METRIC_NAMES,
    TAIL_METRICS,
    check_scores,
    choose_threshold,
    fast_metrics,
    recall,
    require_both_classes,
    roc_auc,
    tail_support,
)

METRIC_LABELS = {
    "roc_auc": "ROC-AUC",
    "average_precision": "average precision",
    "eer": "EER (lower is better)",
    "tpr_at_fpr_1pct": "TPR @ 1 % FPR",
    "tpr_at_fpr_5pct": "TPR @ 5 % FPR",
    "accuracy": "accuracy",
    "balanced_accuracy": "balanced accuracy",
    "precision": "precision (fake)",
    "recall": "recall (fake)",
    "f1": "F1 (fake)",
    "accuracy_real": "accuracy on reals",
    "accuracy_fake": "accuracy on fakes",
}


class CI(NamedTuple):
    """A point estimate with its bootstrap interval ``[low, high]``."""

    estimate: float
    low: float
    high: float


def _check_boot(n_boot: int, alpha: float) -> None:
    if not isinstance(n_boot, (int, np.integer)) or isinstance(n_boot, bool) or n_boot < 1:
        raise ValueError(f"n_boot must be a positive integer (e.g. 1000 resamples), got {n_boot!r}")
    if not isinstance(alpha, (int, float)) or not 0 < alpha < 1:
        raise ValueError(f"alpha must be between 0 and 1 (0.05 for a 95 % interval), got {alpha!r}")


def stratified_indices(labels, n_boot: int = 1000, seed: int = 0) -> np.ndarray:
    """``(n_boot, N)`` resample indices: reals drawn (with replacement) among reals, fakes among fakes."""
    y = np.asarray(labels).ravel()
    rng = np.random.default_rng(seed)
    parts = []
    for cls in (0, 1):
        members = np.flatnonzero(y == cls)
        if members.size:
            parts.append(members[rng.integers(0, members.size, size=(n_boot, members.size))])
    return np.concatenate(parts, axis=1)


def _percentiles(values: list[float], alpha: float, n_boot: int, what: str) -> tuple[float, float]:
    vals = np.asarray(values, dtype=np.float64)
    vals = vals[np.isfinite(vals)]
    if vals.size == 0:
        warnings.warn(f"{what}: no bootstrap resample gave a finite value; the interval is NaN", stacklevel=3)
        return float("nan"), float("nan")
    if vals.size < n_boot / 2:
        warnings.warn(
            f"{what}: only {vals.size} of {n_boot} resamples gave a value; the interval is rough", stacklevel=3
        )
    lo, hi = np.quantile(vals, [alpha / 2, 1 - alpha / 2])
    return float(lo), float(hi)


def bootstrap_ci(
    labels,
    scores,
    metric_fn: Callable[[np.ndarray, np.ndarray], float],
    n_boot: int = 1000,
    seed: int = 0,
    alpha: float = 0.05,
) -> CI:
    """Percentile bootstrap interval of ``metric_fn(labels, scores)``: ``CI(estimate, low, high)``.

    Resampling is stratified by class. A resample on which the metric is undefined (it raises
    ``ValueError`` or returns NaN) is skipped; if none is usable the bounds are NaN. The same
    ``seed`` gives the same interval. For a threshold metric pass e.g.
    ``lambda y, s: accuracy(y, s, thr)``.
    """
    _check_boot(n_boot, alpha)
    y, s = check_scores(labels, scores)
    estimate = float(metric_fn(y, s))  # an undefined point estimate is the caller's error: let it raise
    values = []
    for idx in stratified_indices(y, n_boot, seed):
        try:
            values.append(float(metric_fn(y[idx], s[idx])))
        except ValueError:
            continue
    name = getattr(metric_fn, "__name__", "metric")
    return CI(estimate, *_percentiles(values, alpha, n_boot, name))


def full_report(
    labels, scores, threshold: float = 0.5, *, n_boot: int = 1000, seed: int = 0, alpha: float = 0.05
) -> dict[str, Any]:
    """Every metric of :data:`dflib.evaluation.metrics.METRIC_NAMES` with a bootstrap interval, JSON-friendly.

    ``threshold`` must come from Validation (see :func:`report_on_test`). Returns ``n``,
    ``n_real``, ``n_fake``, ``threshold``, ``alpha``, ``n_boot``, ``metrics`` (name ->
    ``{"value", "low", "high"}``), ``eer_threshold`` (on these scores, for reference only),
    ``confusion_matrix`` (``[[TN, FP], [FN, TP]]`` at ``threshold``) and ``tail_support``
    (metric name -> :func:`~dflib.evaluation.metrics.tail_support`: how many reals each
    TPR-at-fixed-FPR number rests on; print it next to the number, see :func:`tail_notes`).
    """
    _check_boot(n_boot, alpha)
    y, s = check_scores(labels, scores)
    require_both_classes(y, "the metric report")
    if not isinstance(threshold, (int, float, np.floating)) or not np.isfinite(threshold):
        raise ValueError(f"threshold must be a finite number chosen on Validation, got {threshold!r}")
    point = fast_metrics(y, s, float(threshold))
    boots = [fast_metrics(y[idx], s[idx], float(threshold)) for idx in stratified_indices(y, n_boot, seed)]
    metrics = {}
    for name in METRIC_NAMES:
        lo, hi = _percentiles([b[name] for b in boots], alpha, n_boot, name)
        metrics[name] = {"value": float(point[name]), "low": lo, "high": hi}
    return {
        "n": int(y.size),
        "n_real": int((y == 0).sum()),
        "n_fake": int((y == 1).sum()),
        "threshold": float(threshold),
        "alpha": float(alpha),
        "n_boot": int(n_boot),
        "metrics": metrics,
        "eer_threshold": point["eer_threshold"],
        "confusion_matrix": point["confusion_matrix"],
        "tail_support": {name: tail_support(int((y == 0).sum()), fpr) for name, fpr in TAIL_METRICS.items()},
    }


def tail_notes(reports: Mapping[str, Mapping[str, Any]] | Mapping[str, Any], digits: int = 3) -> list[str]:
    """One line per detector and tail metric: the value, its interval and how many reals it rests on.

    ``reports`` is one :func:`full_report` output or ``{model: report}``. A TPR at a fixed FPR is
    only as stable as the handful of real images allowed above the threshold; these lines say so
    wherever the number is shown.
    """
    if "metrics" in reports:
        reports = {"model": reports}
    lines = []
    for model, rep in reports.items():
        support = rep.get("tail_support") or {
            name: tail_support(int(rep["n_real"]), fpr) for name, fpr in TAIL_METRICS.items()
        }
        for name, info in support.items():
            m = rep["metrics"][name]
            lines.append(
                f"{model}: {METRIC_LABELS.get(name, name)} = {m['value']:.{digits}f} "
                f"[{m['low']:.{digits}f}, {m['high']:.{digits}f}]; {info['text']}."
            )
    return lines


def report_on_test(
    val_labels,
    val_scores,
    test_labels,
    test_scores,
    *,
    method: str = "youden",
    target_fpr: float = 0.05,
    n_boot: int = 1000,
    seed: int = 0,
    alpha: float = 0.05,
) -> dict[str, Any]:
    """The honest recipe: choose the threshold on Validation, report Test with intervals.

    Same output as :func:`full_report` plus ``threshold_method`` and ``threshold_source``.
    """
    thr = choose_threshold(val_labels, val_scores, method, target_fpr=target_fpr, split="Validation")
    out = full_report(test_labels, test_scores, thr, n_boot=n_boot, seed=seed, alpha=alpha)
    out.update(threshold_method=method, threshold_source="Validation")
    if method == "fpr":
        out["target_fpr"] = float(target_fpr)
    return out


def metrics_table(
    reports: Mapping[str, Mapping[str, Any]] | Mapping[str, Any],
    *,
    formatted: bool = True,
    digits: int = 3,
    pretty: bool = True,
) -> pd.DataFrame:
    """A metrics x models table from :func:`full_report` outputs (one report or ``{model: report}``).

    ``formatted=True``: cells are strings ``"0.912 [0.890, 0.931]"``. ``formatted=False``:
    numbers, with columns ``(model, value | low | high)``. ``pretty`` uses readable row names.
    """
    if "metrics" in reports:
        reports = {"model": reports}
    if not reports:
        raise ValueError("metrics_table needs at least one report (from full_report)")
    cols = {}
    for model, rep in reports.items():
        if "metrics" not in rep:
            raise ValueError(f"report of {model!r} has no 'metrics'; pass the output of full_report")
        m = rep["metrics"]
        if formatted:
            cols[model] = {
                k: f"{v['value']:.{digits}f} [{v['low']:.{digits}f}, {v['high']:.{digits}f}]" for k, v in m.items()
            }
        else:
            for stat in ("value", "low", "high"):
                cols[(model, stat)] = {k: v[stat] for k, v in m.items()}
    df = pd.DataFrame(cols)
    if not formatted:
        df.columns = pd.MultiIndex.from_tuples(df.columns, names=["model", "stat"])
    if pretty:
        df.index = [METRIC_LABELS.get(k, k) for k in df.index]
    df.index.name = "metric"
    return df


# --- Per manipulation (embedded sample) ---------------------------------------------------


def infer_holdout_method(manifest: pd.DataFrame) -> str | None:
    """The manipulation that the fakes of Validation/Test use but Train's never do, or None."""
    fakes = manifest[manifest["label"] == 1]
    train = set(fakes.loc[fakes["split"] == "Train", "method"])
    if not train:
        return None
    unseen = sorted(set(fakes.loc[fakes["split"] != "Train", "method"]) - train)
    return unseen[0] if unseen else None


def _key(path: str | os.PathLike) -> str:
    return "/".join(Path(str(path).replace("\\", "/")).parts[-3:])  # split/Class/file.jpg


def per_method_metrics(
    manifest: pd.DataFrame | str | os.PathLike,
    paths: Sequence[str | os.PathLike],
    scores,
    threshold: float = 0.5,
    *,
    holdout_method: str | None = "auto",
    n_boot: int = 0,
    seed: int = 0,
    alpha: float = 0.05,
) -> pd.DataFrame:
    """ROC-AUC and recall per manipulation: each method's fakes against *all* the reals.

    ``manifest`` is :func:`dflib.data.synthetic.read_manifest`'s table (or the ``Dataset``
    folder holding ``manifest.csv``); ``paths`` and ``scores`` are the scored images (e.g.
    ``dataset.paths``), matched to the manifest by ``split/Class/file``. ``holdout_method="auto"``
    flags the method missing from Train's fakes (a sample made with ``holdout_method``).
    Returns one row per method plus ``all fakes``: ``method, n, n_real, roc_auc, recall,
    mean_p_fake, held_out``; with ``n_boot > 0`` also ``roc_auc_low, roc_auc_high`` (a stratified
    bootstrap interval of each row's ROC-AUC: a method with a few dozen fakes has a wide one).
    """
    if n_boot:
        _check_boot(n_boot, alpha)
    if not isinstance(manifest, pd.DataFrame):
        from dflib.data.synthetic import read_manifest

        manifest = read_manifest(manifest)
    missing = {"path", "split", "label", "method"} - set(manifest.columns)
    if missing:
        raise ValueError(f"manifest lacks column(s) {sorted(missing)}; pass read_manifest(data_dir)")
    s = np.asarray(scores, dtype=np.float64).ravel()
    if len(paths) != s.size:
        raise ValueError(f"paths and scores differ in length: {len(paths)} vs {s.size}")
    table = manifest.assign(_key=manifest["path"].map(_key)).drop_duplicates("_key").set_index("_key")
    keys = [_key(p) for p in paths]
    unknown = [k for k in keys if k not in table.index]
    if unknown:
        raise ValueError(
            f"{len(unknown)} of {len(keys)} scored images are not in the manifest (e.g. {unknown[0]}); "
            "per-method metrics need the embedded sample and its manifest.csv (the Kaggle data has none)"
        )
    rows = table.loc[keys]
    y = rows["label"].to_numpy(np.int64)
    methods = rows["method"].to_numpy()
    require_both_classes(y, "per-method metrics")
    held = infer_holdout_method(manifest) if holdout_method == "auto" else holdout_method
    reals = y == 0
    out = []
    groups = [(m, (methods == m) & (y == 1)) for m in sorted(set(methods[y == 1]))]
    for name, fake in groups + [("all fakes", y == 1)]:
        sel = fake | reals
        row = {
            "method": name,
            "n": int(fake.sum()),
            "n_real": int(reals.sum()),
            "roc_auc": roc_auc(y[sel], s[sel]),
            "recall": recall(y[fake], s[fake], threshold),
            "mean_p_fake": float(s[fake].mean()),
            "held_out": bool(name == held),
        }
        if n_boot:
            ci = bootstrap_ci(y[sel], s[sel], roc_auc, n_boot=n_boot, seed=seed, alpha=alpha)
            row.update(roc_auc_low=ci.low, roc_auc_high=ci.high)
        out.append(row)
    return pd.DataFrame(out)


def markdown_table(df: pd.DataFrame, *, index: bool = True, floatfmt: str = ".3f") -> str:
    """A GitHub-flavoured Markdown table of ``df`` (for the README), without extra dependencies.

    Float cells use ``floatfmt``; integers get thousands separators; ``|`` in cells is escaped.
    """

    def cell(v: Any) -> str:
        if isinstance(v, (bool, np.bool_)):
            text = str(v)
        elif isinstance(v, (int, np.integer)):
            text = f"{int(v):,}"
        elif isinstance(v, (float, np.floating)):
            text = "" if np.isnan(v) else format(float(v), floatfmt)
        else:
            text = str(v)
        return text.replace("|", "\\|").replace("\n", " ")

    header = ([str(df.index.name or "")] if index else []) + [str(c) for c in df.columns]
    lines = ["| " + " | ".join(cell(h) for h in header) + " |", "|" + "|".join(["---"] * len(header)) + "|"]
    for row in df.itertuples(index=index, name=None):  # itertuples keeps each column's dtype
        lines.append("| " + " | ".join(cell(v) for v in row) + " |")
    return "\n".join(lines) + "\n"


def confident_mistakes(labels, scores, threshold: float = 0.5, k: int = 12, balanced: bool = False) -> np.ndarray:
    """Indices of the ``k`` most confident wrong calls: reals with the highest P(fake), fakes with the lowest.

    ``balanced=True`` takes half of them among the reals flagged as fake and half among the
    missed fakes (the other kind fills in when one kind has too few), so a detector that makes
    mostly one kind of mistake still shows both; reals first, each kind most confident first.
    """
    y, s = check_scores(labels, scores)
    wrong = np.flatnonzero((s >= threshold) != (y == 1))
    confidence = np.where(y[wrong] == 1, threshold - s[wrong], s[wrong] - threshold)
    ranked = wrong[np.argsort(-confidence, kind="stable")]
    if not balanced:
        return ranked[:k]
    reals, fakes = ranked[y[ranked] == 0], ranked[y[ranked] == 1]
    n_real = min(len(reals), max(k - len(fakes), (k + 1) // 2))
    return np.concatenate([reals[:n_real], fakes[: k - n_real]])
