"""The training recipe of each shipped detector: what notebook 05 and ``make run`` use.

A recipe is a set of :func:`dflib.train.fit` settings chosen so that each detector reaches the
course's quality bar on the embedded sample within a few CPU minutes (the numbers behind each
choice are in notebooks 02-05). On the Kaggle data the same recipes are a sound start (see the
README for the commands and the time they take).

    >>> from dflib.training.recipes import recipe
    >>> fit(**recipe("resnet18_w16"), out="models")
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any

import pandas as pd


@dataclass(frozen=True)
class Recipe:
    """``fit`` settings for one detector, and why they were chosen."""

    model: str
    img_size: int
    epochs: int
    lr: float
    batch_size: int = 32
    augment: bool | dict[str, Any] = False  # a dict: AugmentConfig fields that differ from the default
    patience: int | None = None  # early stopping off: short budgets, and the ViT plateaus before it takes off
    model_options: dict[str, Any] = field(default_factory=dict)
    quality_bar: float | None = None  # the Test ROC-AUC the course asks of it on the embedded sample (issue 12)
    why: str = ""

    def fit_kwargs(self) -> dict[str, Any]:
        kw = asdict(self)
        kw.pop("why")
        kw.pop("quality_bar")
        kw["model_options"] = dict(self.model_options)
        if isinstance(self.augment, dict):
            kw["augment"] = dict(self.augment)
        return kw


RECIPES: dict[str, Recipe] = {
    "sqnxt23_w1": Recipe(
        "sqnxt23_w1",
        img_size=128,
        epochs=10,
        lr=2e-3,
        augment=True,
        quality_bar=0.95,
        why="0.6 M parameters; 128 px keeps the up-sampling and blending traces the stem would "
        "otherwise blur away; residual_init 0.2 (the default) learns where 1.0 barely does "
        "(3 seeds, short run: best val ROC-AUC 0.663 +- 0.029 vs 0.569 +- 0.023; img/03_residual_init.md) "
        "(generator v3, 3 seeds: Test ROC-AUC 0.974 +- 0.005, unchanged recipe)",
    ),
    "resnet18_w16": Recipe(
        "resnet18_w16",
        img_size=128,
        epochs=10,
        lr=2e-3,
        augment=True,
        quality_bar=0.95,
        why="quarter-width ResNet-18 (0.7 M parameters, 2.8 MB): the CPU-friendly version of the "
        "strongest reference architecture (generator v3, 3 seeds: Test ROC-AUC 0.989 +- 0.005)",
    ),
    "vit_face_conv_128": Recipe(
        "vit_face_conv_128",
        img_size=128,
        epochs=30,
        lr=3e-4,
        augment={"blur_p": 0.0},
        quality_bar=0.90,
        why="a narrow 4-block ViT whose convolutional stem (Xiao et al. 2021) gives it the locality a "
        "plain patch embedding lacks: at a fixed budget the stem is the change that makes it learn "
        "(img/vit_ablation.md, 3 seeds: plain ViT 0.54, + conv stem 0.81, mean pooling or augmentation "
        "alone ~0.56); augmentation without its blur: on generator v3 the evidence is a face softer than "
        "its surroundings, and blurring reals hid it (seed 0, 30 epochs: Test ROC-AUC 0.55 with blur, "
        "0.80 without). 8 px tokens and lr 3e-4: with 16 px tokens at lr 1e-3 the take-off was "
        "seed-dependent (50 epochs, seeds 0-2: Test 0.58, 0.99, 0.71); 8 px tokens at lr 1e-3 still left "
        "seed 2 on the plateau for 17 epochs (25 epochs: 0.95, 0.97, 0.74) and batch 16 kept all three "
        "there for 10; lr 3e-4 reaches val ROC-AUC 0.7 by epoch 5-10 on every seed (30 epochs: Test 0.91, "
        "0.95, 0.91; img/seed_spread.md)",
    ),
}


def recipe(name: str, /, **overrides: Any) -> dict[str, Any]:
    """``fit`` keyword arguments of the recipe for detector ``name``, updated with ``overrides``
    (which may include ``name=``, the file stem of the checkpoint)."""
    if name not in RECIPES:
        raise ValueError(
            f"no recipe for {name!r}; choose one of {sorted(RECIPES)} (or call dflib.train.fit with your own settings)"
        )
    from dflib.training.config import TrainConfig

    kw = RECIPES[name].fit_kwargs()
    unknown = set(overrides) - {f.name for f in fields(TrainConfig)}
    if unknown:
        raise ValueError(f"unknown setting(s) {sorted(unknown)} for recipe {name!r}")
    kw.update(overrides)
    return kw


def recipes_table(names: list[str] | None = None) -> pd.DataFrame:
    """The recipes as a table (one row per detector) for notebooks and the README."""
    rows = []
    for name in names or list(RECIPES):
        if name not in RECIPES:
            raise ValueError(f"no recipe for {name!r}; choose from {sorted(RECIPES)}")
        r = RECIPES[name]
        opts = ", ".join(f"{k}={v}" for k, v in r.model_options.items()) or "preset"
        rows.append(
            {
                "detector": name,
                "img_size": r.img_size,
                "epochs": r.epochs,
                "lr": r.lr,
                "batch": r.batch_size,
                "augment": r.augment,
                "options": opts,
                "quality bar": r.quality_bar,
                "why": r.why,
            }
        )
    return pd.DataFrame(rows).set_index("detector")


__all__ = ["Recipe", "RECIPES", "recipe", "recipes_table"]
