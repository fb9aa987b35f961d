"""Evaluating real/fake detectors: scoring, metrics, reports with intervals, calibration,
robustness and efficiency. Import everything from here: ``from dflib.evaluation import roc_auc``.

* :mod:`~dflib.evaluation.metrics`: accuracy, balanced accuracy, precision, recall, F1, ROC-AUC,
  AP, EER, TPR at a fixed FPR, per-class accuracy, confusion matrix, :func:`choose_threshold`;
* :mod:`~dflib.evaluation.scoring`: logits and P(fake) for a loader, a saved detector on a split
  (what ``dflib evaluate`` prints), several detectors side by side;
* :mod:`~dflib.evaluation.report`: bootstrap confidence intervals, the full report with 95 %
  intervals, per-manipulation metrics, :func:`report_on_test` (threshold from Validation,
  applied to Test), the most confident mistakes, how many reals a tail metric rests on;
* :mod:`~dflib.evaluation.paired`: the paired bootstrap of the difference between two detectors
  scored on the same images (the right test, not overlapping intervals);
* :mod:`~dflib.evaluation.calibration`: ECE, reliability diagram data, temperature scaling;
* :mod:`~dflib.evaluation.robustness`: degradations (JPEG, blur, resampling, cropping,
  brightness) and the sweep that scores every model under each;
* :mod:`~dflib.evaluation.baselines`: trivial detectors that tell how hard a dataset is;
* :mod:`~dflib.evaluation.efficiency`: parameters, MACs, weight bytes, peak activation memory
  and latency, one table.

Convention: labels are fake = 1, real = 0; a score is P(fake); an image is called fake when
``score >= threshold``. The rule the course teaches: **choose the threshold (and the
temperature) on Validation, apply it to Test, never tune on Test.**
"""

from dflib.evaluation.baselines import difficulty_baselines
from dflib.evaluation.calibration import (
    apply_temperature,
    calibration_summary,
    expected_calibration_error,
    fit_temperature,
    reliability_curve,
)
from dflib.evaluation.efficiency import (
    MEMORY_METHOD,
    TensorMemoryTracker,
    efficiency_table,
    forward_peak_bytes,
    time_forward,
    weights_bytes,
)
from dflib.evaluation.metrics import (
    METRIC_NAMES,
    TAIL_METRICS,
    THRESHOLD_METHODS,
    accuracy,
    all_metrics,
    auc_from_roc,
    average_precision,
    balanced_accuracy,
    check_scores,
    choose_threshold,
    confusion_matrix,
    eer,
    equal_error_rate,
    f1,
    fast_metrics,
    oracle_accuracy,
    per_class_accuracy,
    precision,
    recall,
    require_both_classes,
    roc_auc,
    roc_points,
    tail_support,
    tpr_at_fpr,
)
from dflib.evaluation.paired import PairedDiff, paired_bootstrap, pairwise_differences
from dflib.evaluation.report import (
    CI,
    METRIC_LABELS,
    bootstrap_ci,
    confident_mistakes,
    full_report,
    infer_holdout_method,
    markdown_table,
    metrics_table,
    per_method_metrics,
    report_on_test,
    stratified_indices,
    tail_notes,
)
from dflib.evaluation.robustness import DEFAULT_SWEEP, LEVEL_LABELS, SMOKE_SWEEP, degrade, robustness_sweep
from dflib.evaluation.scoring import (
    ScoredSplit,
    evaluate_checkpoint,
    load_checkpoints,
    p_fake,
    predict_logits,
    predict_scores,
    score_split,
    summarize,
)

__all__ = [
    "difficulty_baselines",
    "auc_from_roc",
    "apply_temperature",
    "calibration_summary",
    "expected_calibration_error",
    "fit_temperature",
    "reliability_curve",
    "MEMORY_METHOD",
    "TensorMemoryTracker",
    "efficiency_table",
    "forward_peak_bytes",
    "time_forward",
    "weights_bytes",
    "METRIC_NAMES",
    "THRESHOLD_METHODS",
    "accuracy",
    "all_metrics",
    "average_precision",
    "balanced_accuracy",
    "check_scores",
    "choose_threshold",
    "confusion_matrix",
    "eer",
    "equal_error_rate",
    "f1",
    "fast_metrics",
    "oracle_accuracy",
    "per_class_accuracy",
    "precision",
    "recall",
    "require_both_classes",
    "roc_auc",
    "roc_points",
    "tpr_at_fpr",
    "TAIL_METRICS",
    "tail_support",
    "tail_notes",
    "PairedDiff",
    "paired_bootstrap",
    "pairwise_differences",
    "CI",
    "METRIC_LABELS",
    "bootstrap_ci",
    "confident_mistakes",
    "full_report",
    "infer_holdout_method",
    "markdown_table",
    "metrics_table",
    "per_method_metrics",
    "report_on_test",
    "stratified_indices",
    "DEFAULT_SWEEP",
    "LEVEL_LABELS",
    "SMOKE_SWEEP",
    "degrade",
    "robustness_sweep",
    "ScoredSplit",
    "evaluate_checkpoint",
    "load_checkpoints",
    "p_fake",
    "predict_logits",
    "predict_scores",
    "score_split",
    "summarize",
]
