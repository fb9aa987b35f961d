"""Deterministic degradations and the robustness sweep on a toy model whose behaviour is known."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from dflib.evaluation.robustness import (
    DEFAULT_SWEEP,
    SMOKE_SWEEP,
    brightness,
    center_zoom,
    degrade,
    gaussian_blur,
    jpeg,
    resample,
    robustness_sweep,
)

IDENTITY = {"blur": 0.0, "resize": 1.0, "crop": 1.0, "brightness": 1.0}


def _image(seed: int = 0, size: int = 64) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (3, size, size), dtype=torch.uint8, generator=g)


def _mse(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(((a.float() - b.float()) ** 2).mean())


@pytest.mark.parametrize("name,levels", list(DEFAULT_SWEEP.items()))
def test_every_degradation_is_deterministic_and_keeps_type_and_shape(name, levels):
    x = _image()
    for lv in levels:
        out = degrade(x, name, lv)
        assert out.shape == x.shape and out.dtype == torch.uint8
        assert torch.equal(out, degrade(x, name, lv))
        if IDENTITY.get(name) == lv:
            assert out is x  # the identity level is the clean image itself
    pil = degrade(Image.fromarray(x.permute(1, 2, 0).numpy()), name, levels[-1])
    assert isinstance(pil, Image.Image) and pil.size == (64, 64)
    f = degrade(x.float() / 255, name, levels[-1])
    assert f.dtype == torch.float32 and 0 <= float(f.min()) and float(f.max()) <= 1


def test_degradations_get_stronger_with_the_level():
    x = _image(1)
    assert _mse(x, jpeg(x, 30)) > _mse(x, jpeg(x, 90)) > 0
    assert _mse(x, gaussian_blur(x, 3.0)) > _mse(x, gaussian_blur(x, 0.5)) > 0
    assert _mse(x, resample(x, 0.25)) > _mse(x, resample(x, 0.75)) > 0
    assert brightness(x, 1.5).float().mean() > x.float().mean() > brightness(x, 0.5).float().mean()
    # a white 8-pixel frame around a black centre: keeping the central half removes the frame
    framed = torch.full((3, 32, 32), 255, dtype=torch.uint8)
    framed[:, 8:24, 8:24] = 0
    assert int(center_zoom(framed, 0.5).max()) == 0 and center_zoom(framed, 0.5).shape == framed.shape


def test_bad_levels_are_clear():
    x = _image()
    for name, level, hint in [
        ("jpeg", 0, "1 to 100"),
        ("jpeg", 101, "1 to 100"),
        ("jpeg", 50.5, "integer"),
        ("blur", -1, ">= 0"),
        ("resize", 0, "(0, 1]"),
        ("resize", 1.5, "(0, 1]"),
        ("crop", 0, "(0, 1]"),
        ("brightness", -0.1, ">= 0"),
    ]:
        with pytest.raises(ValueError, match="level") as err:
            degrade(x, name, level)
        assert hint in str(err.value)
    with pytest.raises(ValueError, match="unknown degradation"):
        degrade(x, "rotate", 10)
    with pytest.raises(ValueError, match="PIL image or a"):
        degrade(np.zeros((8, 8, 3)), "blur", 1.0)


class MeanBrightness(nn.Module):
    """logit = 10 * mean of the (normalised) input: brighter images score as more fake."""

    def __init__(self) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.tensor(10.0))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.scale * x.mean(dim=(1, 2, 3))


def _toy_data(n: int = 8) -> tuple[torch.Tensor, list[int]]:
    g = torch.Generator().manual_seed(0)
    labels = [0, 1] * (n // 2)
    imgs = torch.stack(
        [torch.randint(0, 100, (3, 40, 40), generator=g, dtype=torch.uint8) + 120 * y for y in labels]
    ).to(torch.uint8)  # fakes are brighter
    return imgs, labels


def test_sweep_returns_a_tidy_table():
    imgs, labels = _toy_data()
    model = MeanBrightness().train()
    df = robustness_sweep(
        {"a": model, "b": MeanBrightness()},
        imgs,
        labels,
        img_size=32,
        levels=SMOKE_SWEEP,
        batch_size=3,
        normalization={"mean": (0.5,) * 3, "std": (0.5,) * 3},
        progress=False,
    )
    assert list(df.columns) == ["model", "degradation", "level", "roc_auc", "accuracy", "n"]
    assert len(df) == 2 * (1 + sum(len(v) for v in SMOKE_SWEEP.values())) and (df["n"] == 8).all()
    assert model.training  # restored
    a = df[df.model == "a"].set_index(["degradation", "level"])
    assert a.loc[("none", 0.0), "roc_auc"] == pytest.approx(1.0)  # brightness separates the toy classes
    assert a.loc[("none", 0.0), "accuracy"] == pytest.approx(1.0)
    for name, lv in IDENTITY.items():  # identity levels reuse the clean scores exactly
        assert a.loc[(name, lv)].tolist() == a.loc[("none", 0.0)].tolist()
    # Halving the brightness keeps the ranking (AUC 1) but pushes the fakes below the fixed
    # threshold 0.5: every image is then called real, accuracy falls to 1/2.
    assert a.loc[("brightness", 0.5), "roc_auc"] == pytest.approx(1.0)
    assert a.loc[("brightness", 0.5), "accuracy"] == pytest.approx(0.5)


def test_sweep_on_paths_and_dataset_with_limit(tiny_dataset):
    from dflib.data import DeepfakeDataset

    ds = DeepfakeDataset(tiny_dataset, "Test")
    levels = {"jpeg": (50,), "blur": (1.0,)}
    from_ds = robustness_sweep(MeanBrightness(), ds, img_size=16, levels=levels, limit=4, progress=False)
    assert (from_ds["n"] == 4).all() and set(from_ds["model"]) == {"model"}
    from_paths = robustness_sweep(MeanBrightness(), ds.paths, ds.targets, img_size=16, levels=levels, progress=False)
    assert (from_paths["n"] == len(ds)).all()


def test_sweep_bad_inputs_are_clear(tiny_dataset):
    imgs, labels = _toy_data()
    with pytest.raises(ValueError, match="needs labels"):
        robustness_sweep(MeanBrightness(), imgs, progress=False)
    with pytest.raises(ValueError, match="unknown degradation"):
        robustness_sweep(MeanBrightness(), imgs, labels, levels={"swirl": (1,)}, progress=False)
    with pytest.raises(ValueError, match="jpeg level"):
        robustness_sweep(MeanBrightness(), imgs, labels, levels={"jpeg": (0,)}, progress=False)
    with pytest.raises(ValueError, match="differ in number"):
        robustness_sweep(MeanBrightness(), imgs, labels[:3], progress=False)
    with pytest.raises(ValueError, match="no entry for model"):
        robustness_sweep({"a": MeanBrightness()}, imgs, labels, img_size={"b": 32}, progress=False)
    with pytest.raises(ValueError, match="limit"):
        robustness_sweep(MeanBrightness(), imgs, labels, limit=1, progress=False)
