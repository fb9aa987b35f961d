"""Every trivial baseline finds the one shortcut it is built for, on tiny hand-made datasets."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageFilter

from dflib.evaluation.baselines import (
    FEATURES,
    auc_interval,
    baselines_table,
    difficulty_baselines,
    image_features,
    strongest_baseline,
)
from dflib.evaluation.metrics import roc_auc
from dflib.evaluation.report import bootstrap_ci

SIDE = 64


def _texture(rng: np.random.Generator) -> np.ndarray:
    """A random textured RGB image (smooth blobs + fine noise), uint8."""
    low = rng.uniform(40, 210, (8, 8, 3)).astype(np.uint8)
    img = np.asarray(Image.fromarray(low).resize((SIDE, SIDE), Image.BICUBIC), np.float32)
    return np.clip(img + rng.normal(0, 12, img.shape), 0, 255).astype(np.uint8)


def _make(root, fake_fn, n: int = 16, quality=(90, 90), fmt: str = "JPEG"):
    """Kaggle layout with n images per class and split; fakes = fake_fn(PIL image) of fresh textures."""
    rng = np.random.default_rng(0)
    for split in ("Train", "Validation", "Test"):
        for cls in ("Real", "Fake"):
            (root / split / cls).mkdir(parents=True)
            for i in range(n):
                im = Image.fromarray(_texture(rng))
                q = quality[0] if cls == "Real" else quality[1]
                if cls == "Fake":
                    im = fake_fn(im)
                ext = "jpg" if fmt == "JPEG" else "png"
                im.save(root / split / cls / f"{i:03d}.{ext}", fmt, **({"quality": q} if fmt == "JPEG" else {}))
    return root


def _auc(res, feature: str) -> float:
    return float(res.query("subset == 'all'").set_index("feature").loc[feature, "test_roc_auc"])


def test_features_of_one_image(tmp_path):
    arr = _texture(np.random.default_rng(1))
    Image.fromarray(arr).save(tmp_path / "a.png")
    Image.fromarray(arr).save(tmp_path / "a.jpg", quality=75)
    png, jpg = image_features(tmp_path / "a.png"), image_features(tmp_path / "a.jpg")
    assert png["pixels"].shape == (32 * 32,) and png["spectrum"].shape == (128,)
    assert np.allclose(png["colour"][:3], arr.reshape(-1, 3).mean(0), atol=1e-6)
    assert np.allclose(png["colour"][3:], arr.reshape(-1, 3).std(0), atol=1e-3)
    assert png["size"] == (tmp_path / "a.png").stat().st_size
    assert not png["quant"].any() and jpg["quant"].shape == (128,) and jpg["quant"].min() >= 1
    assert 0 < png["hf"] < 1 and png["laplacian"] > 0


@pytest.mark.parametrize(
    "feature, fake_fn, quality",
    [
        ("mean intensity only", lambda im: im.point(lambda v: min(255, v + 30)), (90, 90)),
        (
            "logistic regression, colour statistics",
            lambda im: Image.merge("RGB", [im.getchannel(0).point(lambda v: min(255, v + 25)), *im.split()[1:]]),
            (90, 90),
        ),
        ("Laplacian variance only", lambda im: im.filter(ImageFilter.GaussianBlur(1.2)), (90, 90)),
        ("high-frequency energy only", lambda im: im.filter(ImageFilter.GaussianBlur(1.2)), (90, 90)),
        (
            "logistic regression, log power spectrum",
            lambda im: im.resize((SIDE // 2, SIDE // 2), Image.BOX).resize((SIDE, SIDE), Image.NEAREST),
            (90, 90),
        ),
        ("logistic regression, JPEG quantisation tables", lambda im: im, (95, 60)),
        ("file size only", lambda im: im, (95, 60)),
    ],
)
def test_each_baseline_finds_its_shortcut(tmp_path, feature, fake_fn, quality):
    res = difficulty_baselines(_make(tmp_path, fake_fn, quality=quality), n_boot=200)
    assert _auc(res, feature) >= 0.9, res
    row = res.query("subset == 'all'").set_index("feature").loc[feature]
    assert row.low <= row.test_roc_auc <= row.high


def test_no_shortcut_no_signal(tmp_path):
    res = difficulty_baselines(_make(tmp_path, lambda im: im, n=24), n_boot=200)
    assert set(res["feature"]) == set(FEATURES) and set(res["subset"]) == {"all"}  # no manifest: overall only
    assert res["test_roc_auc"].max() < 0.8, res
    assert _auc(res, "logistic regression, JPEG quantisation tables") == pytest.approx(0.5)
    table = baselines_table(res)
    assert list(table.columns) == ["all"] and table.shape[0] == len(FEATURES)
    assert strongest_baseline(res)["test_roc_auc"] == res["test_roc_auc"].max()


def test_auc_interval_agrees_with_bootstrap_ci():
    rng = np.random.default_rng(3)
    y = np.r_[np.zeros(60, int), np.ones(60, int)]
    s = rng.normal(size=120) + 0.8 * y
    lo, hi = auc_interval(y, s, n_boot=400, seed=0)
    ref = bootstrap_ci(y, s, roc_auc, n_boot=400, seed=0)
    assert lo < ref.estimate < hi
    assert abs(lo - ref.low) < 0.03 and abs(hi - ref.high) < 0.03


def test_without_validation_split_c_is_fixed(tmp_path):
    import shutil

    root = _make(tmp_path, lambda im: im.point(lambda v: min(255, v + 30)), n=12)
    shutil.rmtree(root / "Validation")
    res = difficulty_baselines(root, n_boot=100)
    assert _auc(res, "mean intensity only") >= 0.9
    with pytest.raises(ValueError, match="not a folder"):
        difficulty_baselines(tmp_path / "missing")
