"""Every figure of the course, grouped by concept; each function returns a matplotlib Figure.

* :mod:`~dflib.plots.common`: class colours, :func:`save_figure` (README figures go to ``img/``),
  :func:`image_grid`;
* :mod:`~dflib.plots.data`: class balance, feature histograms, frequency spectra (notebook 01);
* :mod:`~dflib.plots.architectures`: one-batch overfitting, gradients per stage, patches,
  position embeddings, attention maps (notebooks 02-04);
* :mod:`~dflib.plots.training`: learning curves (notebook 05);
* :mod:`~dflib.plots.evaluation`: ROC/PR curves, confusion matrices, calibration, robustness,
  per-manipulation bars, mistakes (notebook 06);
* :mod:`~dflib.plots.inference`: the prediction grid, faces found in a photo (notebook 07).

Bars, histograms and confusion matrices are seaborn plots of tidy frames (one row per bar or
image), in the class colours where classes are shown; curves and image panels are plain matplotlib.
Import the figures from here: ``from dflib import plots; plots.roc_curves(...)``.
"""

from dflib.plots.architectures import (
    attention_overlay,
    gradient_norm_bars,
    loss_curve,
    patch_grid,
    pos_embed_similarity_map,
)
from dflib.plots.common import CLASS_COLORS, CLASSES, Table, as_hwc, image_grid, save_figure, table
from dflib.plots.data import class_balance, feature_histograms, spectra
from dflib.plots.evaluation import (
    confusion_matrices,
    degradation_examples,
    mistake_gallery,
    per_method_bars,
    pr_curves,
    reliability_diagrams,
    robustness_curves,
    roc_curves,
)
from dflib.plots.inference import face_boxes, prediction_grid
from dflib.plots.training import compare_runs, training_curves

__all__ = [
    "CLASS_COLORS",
    "CLASSES",
    "as_hwc",
    "image_grid",
    "save_figure",
    "Table",
    "table",
    "class_balance",
    "feature_histograms",
    "spectra",
    "attention_overlay",
    "gradient_norm_bars",
    "loss_curve",
    "patch_grid",
    "pos_embed_similarity_map",
    "compare_runs",
    "training_curves",
    "confusion_matrices",
    "degradation_examples",
    "mistake_gallery",
    "per_method_bars",
    "pr_curves",
    "reliability_diagrams",
    "robustness_curves",
    "roc_curves",
    "face_boxes",
    "prediction_grid",
]
