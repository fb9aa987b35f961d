"""Trivial baselines that tell how hard a real-vs-fake dataset is.

If a linear model on tiny grayscale thumbnails, or a single global number such as the file
size or the mean brightness, already separates real from fake, the dataset has a shortcut
and a deep detector's score means little. `difficulty_baselines` measures exactly that; the
synthetic sample is tuned so that all three stay weak while a small CNN succeeds.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from dflib import FAKE, REAL
from dflib.data.layout import discover
from dflib.evaluation.metrics import roc_auc

THUMB = 32


def _list_split(dataset_dir: Path, split: str, max_per_class: int | None) -> list[tuple[Path, int]]:
    """``(path, label)`` of one split, through the same discovery as training (:func:`discover`)."""
    files = discover(dataset_dir, required=[split])[split].files
    items = []
    for label in (REAL, FAKE):
        paths = files[label]
        if max_per_class and len(paths) > max_per_class:  # evenly spaced, deterministic subset
            paths = [paths[i] for i in np.linspace(0, len(paths) - 1, max_per_class).round().astype(int)]
        items += [(p, label) for p in paths]
    return items


def _features(items: list[tuple[Path, int]]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """32x32 gray pixels, file sizes, mean intensities and labels of the listed images."""
    pixels = np.empty((len(items), THUMB * THUMB), np.float32)
    sizes = np.empty(len(items), np.float64)
    means = np.empty(len(items), np.float64)
    for i, (path, _) in enumerate(items):
        try:
            with Image.open(path) as im:
                im.draft("L", (THUMB, THUMB))  # JPEG: decode directly at reduced scale (fast)
                gray = im.convert("L")
                means[i] = np.asarray(gray, np.float64).mean()
                thumb = gray.resize((THUMB, THUMB), Image.BILINEAR)
        except OSError as err:
            raise ValueError(f"cannot read image {path}: {err}") from None
        pixels[i] = np.asarray(thumb, np.float32).ravel() / 255.0
        sizes[i] = path.stat().st_size
    labels = np.array([label for _, label in items])
    return pixels, sizes, means, labels


def difficulty_baselines(dataset_dir, *, train_split: str = "Train", test_split: str = "Test",
                         max_per_class: int | None = None, C: float = 0.1) -> pd.DataFrame:
    """Test ROC-AUC of three shortcut detectors; low values mean the dataset has no easy cue.

    Rows:
      * "logistic regression, 32x32 gray pixels": StandardScaler + LogisticRegression(C) fit on
        `train_split`, scored on `test_split`;
      * "file size only" and "mean intensity only": the raw number used as a score, no fitting
        (n_train = 0); reported as max(auc, 1 - auc), i.e. in its better direction.
    `max_per_class` caps images per class and split (an evenly spaced subset) for big datasets.
    Columns: feature, test_roc_auc, n_train, n_test.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    root = Path(dataset_dir).expanduser()
    if not root.is_dir():
        raise ValueError(f"dataset_dir={str(root)!r} is not a folder; pass the 'Dataset' folder")
    x_tr, _, _, y_tr = _features(_list_split(root, train_split, max_per_class))
    x_te, size_te, mean_te, y_te = _features(_list_split(root, test_split, max_per_class))
    model = make_pipeline(StandardScaler(), LogisticRegression(C=C, max_iter=5000))
    model.fit(x_tr, y_tr)
    lr_auc = roc_auc(y_te, model.predict_proba(x_te)[:, 1])

    def either_way(score: np.ndarray) -> float:
        auc = roc_auc(y_te, score)
        return max(auc, 1 - auc)

    rows = [("logistic regression, 32x32 gray pixels", lr_auc, len(y_tr)),
            ("file size only", either_way(size_te), 0),
            ("mean intensity only", either_way(mean_te), 0)]
    return pd.DataFrame([{"feature": f, "test_roc_auc": float(a), "n_train": n, "n_test": len(y_te)}
                         for f, a, n in rows])
