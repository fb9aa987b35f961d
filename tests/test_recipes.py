"""The shipped detectors' recipes are valid fit settings for existing models."""

from __future__ import annotations

import pytest

from dflib.models import create_model, list_models
from dflib.training import TrainConfig
from dflib.training.recipes import RECIPES, recipe, recipes_table


@pytest.mark.parametrize("name", list(RECIPES))
def test_every_recipe_is_a_valid_train_config(name):
    kw = recipe(name, out="/tmp/x", name=name, seed=3)
    assert kw["model"] in list_models() and kw["name"] == name and kw["seed"] == 3
    TrainConfig(**kw).check()  # raises on a bad value
    model = create_model(kw["model"], img_size=kw["img_size"], **kw["model_options"])
    assert model.config["img_size"] == kw["img_size"]


def test_recipe_errors_and_table():
    with pytest.raises(ValueError, match="no recipe for 'resnet50'"):
        recipe("resnet50")
    with pytest.raises(ValueError, match="unknown setting"):
        recipe("resnet18_w16", learning_rate=1)
    kw = recipe("resnet18_w16", epochs=2)
    assert kw["epochs"] == 2 and RECIPES["resnet18_w16"].epochs != 2  # overrides do not leak
    kw["model_options"]["width"] = 8
    assert "width" not in RECIPES["resnet18_w16"].model_options
    table = recipes_table()
    assert list(table.index) == list(RECIPES) and {"img_size", "epochs", "lr", "why"} <= set(table.columns)
