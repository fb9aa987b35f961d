"""Trivial baselines that tell how hard a real-vs-fake dataset is.

If a linear model on tiny grayscale thumbnails, a single global number (file size, brightness,
sharpness) or the power spectrum already separates real from fake, the dataset has a shortcut
and a deep detector's score means little. :func:`difficulty_baselines` measures all of them,
overall and per manipulation, with bootstrap intervals; the synthetic sample is built so that
every one stays weak while a small CNN succeeds (``tests/test_synthetic.py``).

The features, one pass over each image (:func:`image_features`):

* ``pixels``: 32x32 grey thumbnail (1,024 numbers), logistic regression;
* ``file size``, ``mean intensity``: one number each, used as the score directly;
* ``spectrum``: azimuthally averaged log power spectrum (Durall et al. 2020), 128 rings at
  256 px, standardised, logistic regression: catches up-sampling and resolution differences;
* ``high-frequency energy`` (share of the power above 1/4 cycle per pixel) and ``Laplacian
  variance`` (the classic focus measure): one number each;
* ``colour statistics``: mean and std of R, G, B (6 numbers), logistic regression;
* ``JPEG quantisation tables``: the 2 x 64 numbers of the file's tables, logistic regression
  (reveals fakes saved at another quality than reals).

Single numbers are reported in their better direction, max(AUC, 1 - AUC): the strictest
reading for the benchmark. Logistic regressions are fit on Train; their ``C`` is chosen on
Validation when the dataset has one. Nothing is ever fit on Test.
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.fft
from PIL import Image, ImageStat
from scipy import ndimage

from dflib import FAKE, REAL
from dflib.data.layout import discover
from dflib.evaluation.metrics import roc_auc

THUMB = 32
SPECTRUM_SIZE = 256  # spectra are taken at this side (a no-op for 256 px face crops): 128 rings
HF_CUTOFF = 0.25  # cycles per pixel: "high frequency" is the upper half of the band
C_GRID = (0.01, 0.1, 1.0)

# feature name -> (kind, columns of the feature matrix); "lr" = logistic regression, "scalar" = raw score
FEATURES: dict[str, str] = {
    "logistic regression, 32x32 gray pixels": "lr",
    "file size only": "scalar",
    "mean intensity only": "scalar",
    "logistic regression, log power spectrum": "lr",
    "high-frequency energy only": "scalar",
    "Laplacian variance only": "scalar",
    "logistic regression, colour statistics": "lr",
    "logistic regression, JPEG quantisation tables": "lr",
}
_KEYS = dict(zip(FEATURES, ("pixels", "size", "mean", "spectrum", "hf", "laplacian", "colour", "quant")))


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


@functools.lru_cache(maxsize=4)
def _rings(side: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Ring index (``side // 2`` rings up to Nyquist, -1 beyond) of each bin of a ``side``-point
    ``rfft2``, ring counts, the high-frequency mask and the non-DC mask (cached: built once)."""
    fy = np.fft.fftfreq(side)[:, None]
    fx = np.fft.rfftfreq(side)[None, :]
    radius = np.hypot(fy, fx)
    n = side // 2
    idx = np.floor(radius / 0.5 * n).astype(np.int64)
    idx[idx >= n] = -1
    counts = np.bincount(idx[idx >= 0], minlength=n)
    return idx, np.maximum(counts, 1), radius > HF_CUTOFF, radius > 0


def _spectral(gray: np.ndarray) -> tuple[np.ndarray, float]:
    """(ring-averaged log10 power, share of power above ``HF_CUTOFF``) of a grey image.

    The same quantities as :func:`dflib.data.spectrum.log_power_spectrum` + ``radial_profile``
    (mean removed, Hann window), on the half-plane ``rfft2`` (the spectrum of a real image is
    symmetric), in float32: a few times faster, which keeps the baselines interactive."""
    if gray.shape != (SPECTRUM_SIZE, SPECTRUM_SIZE):
        gray = np.asarray(Image.fromarray(gray).resize((SPECTRUM_SIZE,) * 2, Image.BICUBIC), np.float32)
    win = _hann(SPECTRUM_SIZE)
    x = (gray - gray.mean()) * win
    power = np.abs(scipy.fft.rfft2(x)) ** 2
    idx, counts, hf, ac = _rings(SPECTRUM_SIZE)
    logp = np.log10(power + 1e-12)
    valid = idx >= 0
    profile = np.bincount(idx[valid], weights=logp[valid], minlength=counts.size) / counts
    return profile, float(power[hf].sum() / power[ac].sum())


@functools.lru_cache(maxsize=4)
def _hann(side: int) -> np.ndarray:
    w = np.hanning(side).astype(np.float32)
    return np.outer(w, w)


def image_features(path: Path) -> dict[str, np.ndarray | float]:
    """Every trivial feature of one image file (see the module docstring), from one decode."""
    try:
        with Image.open(path) as im:
            quant = getattr(im, "quantization", None) or {}
            rgb = im.convert("RGB")
    except OSError as err:
        raise ValueError(f"cannot read image {path}: {err}") from None
    tables = [np.asarray(quant.get(i, np.zeros(64)), np.float64)[:64] for i in (0, 1)]
    tables = [np.pad(t, (0, 64 - t.size)) for t in tables]
    stat = ImageStat.Stat(rgb)  # per-channel mean and std, in C
    gray_im = rgb.convert("L")  # ITU-R 601 luma
    gray = np.asarray(gray_im, np.float32)
    thumb = gray_im.resize((THUMB, THUMB), Image.BILINEAR)
    profile, hf = _spectral(gray / 255.0)
    return {
        "pixels": np.asarray(thumb, np.float64).ravel() / 255.0,
        "size": float(path.stat().st_size),
        "mean": float(gray.mean()),
        "spectrum": profile,
        "hf": hf,
        "laplacian": float(ndimage.laplace(gray).var()),
        "colour": np.array(stat.mean + stat.stddev),
        "quant": np.concatenate(tables),
    }


def _matrices(items: list[tuple[Path, int]]) -> tuple[dict[str, np.ndarray], np.ndarray]:
    rows = [image_features(p) for p, _ in items]
    feats = {k: np.stack([np.atleast_1d(r[k]) for r in rows]).astype(np.float64) for k in rows[0]}
    return feats, np.array([label for _, label in items])


def auc_interval(
    labels: np.ndarray, scores: np.ndarray, n_boot: int = 1000, seed: int = 0, alpha: float = 0.05
) -> tuple[float, float]:
    """Stratified percentile-bootstrap interval of ROC-AUC, exact and vectorised.

    ROC-AUC is the mean over (fake, real) pairs of [fake scores higher] (+1/2 for ties); a
    resample only changes how often each image counts, so its AUC is ``w^T K v / (n_f n_r)``
    with ``K`` the pairwise comparison matrix and ``w``, ``v`` the multiplicities. Same
    resampling scheme as :func:`dflib.evaluation.report.bootstrap_ci`, thousands of times faster.
    """
    y, s = np.asarray(labels), np.asarray(scores, np.float64)
    pos, neg = s[y == FAKE], s[y == REAL]
    k = (pos[:, None] > neg[None, :]) + 0.5 * (pos[:, None] == neg[None, :])
    rng = np.random.default_rng(seed)
    w = np.stack([np.bincount(r, minlength=pos.size) for r in rng.integers(0, pos.size, (n_boot, pos.size))])
    v = np.stack([np.bincount(r, minlength=neg.size) for r in rng.integers(0, neg.size, (n_boot, neg.size))])
    aucs = ((w @ k) * v).sum(1) / (pos.size * neg.size)
    lo, hi = np.quantile(aucs, [alpha / 2, 1 - alpha / 2])
    return float(lo), float(hi)


def _fit_lr(x_tr, y_tr, x_va, y_va, C: float | None):
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    def fit(c: float):
        # tol 1e-3: the ranking (all ROC-AUC needs) is settled long before the default 1e-4; 4x faster
        return make_pipeline(StandardScaler(), LogisticRegression(C=c, tol=1e-3, max_iter=2000)).fit(x_tr, y_tr)

    from threadpoolctl import threadpool_limits

    with threadpool_limits(1):  # small problems: a multi-threaded BLAS only adds overhead (3x slower here)
        if C is not None or x_va is None:
            return fit(C or 0.1)
        fits = [fit(c) for c in C_GRID]
    return max(fits, key=lambda m: roc_auc(y_va, m.decision_function(x_va)))


def _methods(root: Path, items: list[tuple[Path, int]]) -> list[str] | None:
    """The manipulation of each listed image from the synthetic sample's manifest, or None."""
    manifest = root / "manifest.csv"
    if not manifest.is_file():
        return None
    df = pd.read_csv(manifest, usecols=["path", "method"], keep_default_na=False)
    lookup = dict(zip(df["path"], df["method"]))
    methods = [lookup.get(p.relative_to(root).as_posix()) for p, _ in items]
    return None if any(m is None for m in methods) else methods


def difficulty_baselines(
    dataset_dir,
    *,
    train_split: str = "Train",
    test_split: str = "Test",
    val_split: str | None = "Validation",
    max_per_class: int | None = None,
    C: float | None = None,
    per_method: bool = True,
    n_boot: int = 1000,
    seed: int = 0,
) -> pd.DataFrame:
    """Test ROC-AUC (with a 95 % bootstrap interval) of every trivial detector; low is good.

    One row per feature (see :data:`FEATURES`) and subset: ``"all"`` (every Test image), then,
    for the synthetic sample (which has a manifest), each manipulation (its fakes against all
    Test reals). Logistic regressions are fit on `train_split` (``C`` chosen on `val_split`
    from ``C_GRID`` unless given); single numbers are scored as they are, in their better
    direction. `max_per_class` caps images per class and split (an evenly spaced subset).
    Columns: feature, subset, test_roc_auc, low, high, n_train, n_test.
    """
    root = Path(dataset_dir).expanduser()
    if not root.is_dir():
        raise ValueError(f"dataset_dir={str(root)!r} is not a folder; pass the 'Dataset' folder")
    tr_items, te_items = _list_split(root, train_split, max_per_class), _list_split(root, test_split, max_per_class)
    f_tr, y_tr = _matrices(tr_items)
    f_te, y_te = _matrices(te_items)
    f_va = y_va = None
    if val_split and C is None and val_split in discover(root):
        f_va, y_va = _matrices(_list_split(root, val_split, max_per_class))
    methods = _methods(root, te_items) if per_method else None
    subsets = {"all": np.ones(len(y_te), bool)}
    if methods is not None:
        m = np.array(methods)
        for name in dict.fromkeys(mm for mm in methods if mm != "real"):
            subsets[name] = (y_te == REAL) | (m == name)
    rows = []
    for feature, kind in FEATURES.items():
        key = _KEYS[feature]
        if kind == "lr":
            model = _fit_lr(f_tr[key], y_tr, None if f_va is None else f_va[key], y_va, C)
            score, n_train = model.decision_function(f_te[key]), len(y_tr)
        else:
            score, n_train = f_te[key][:, 0], 0
        for subset, sel in subsets.items():
            y, s = y_te[sel], score[sel]
            auc = roc_auc(y, s)
            if kind == "scalar" and auc < 0.5:  # its better direction
                auc, s = 1 - auc, -s
            lo, hi = auc_interval(y, s, n_boot, seed)
            rows.append(
                {
                    "feature": feature,
                    "subset": subset,
                    "test_roc_auc": float(auc),
                    "low": lo,
                    "high": hi,
                    "n_train": n_train,
                    "n_test": int(sel.sum()),
                }
            )
    return pd.DataFrame(rows)


def baselines_table(results: pd.DataFrame, digits: int = 2) -> pd.DataFrame:
    """Features x subsets table of ``"0.62 [0.54, 0.70]"`` cells from :func:`difficulty_baselines`."""
    cell = results.apply(lambda r: f"{r.test_roc_auc:.{digits}f} [{r.low:.{digits}f}, {r.high:.{digits}f}]", axis=1)
    table = results.assign(cell=cell).pivot(index="feature", columns="subset", values="cell")
    cols = ["all"] + [c for c in dict.fromkeys(results["subset"]) if c != "all"]
    return table.loc[list(dict.fromkeys(results["feature"])), cols]


def strongest_baseline(results: pd.DataFrame, subset: str = "all") -> pd.Series:
    """The row of the best trivial detector on `subset` (the bar a real detector must clear)."""
    part = results[results["subset"] == subset]
    return part.loc[part["test_roc_auc"].idxmax()]
