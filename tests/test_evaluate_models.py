"""The helpers notebook 06 uses: loading several detectors, scoring a split, the oracle accuracy, Markdown tables."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from dflib.checkpoint import CheckpointError, save_detector
from dflib.data.transforms import IMAGENET_MEAN, IMAGENET_STD
from dflib.evaluation import (
    ScoredSplit,
    accuracy,
    choose_threshold,
    load_checkpoints,
    markdown_table,
    oracle_accuracy,
    score_split,
)
from dflib.models import create_model


def _save(folder, name, model_name="resnet18_w16", img_size=32):
    torch.manual_seed(0)
    model = create_model(model_name, img_size=img_size)
    card = {
        "format": "dflib-detector/1",
        "name": name,
        "architecture": model.config,
        "img_size": img_size,
        "normalization": {"mean": list(IMAGENET_MEAN), "std": list(IMAGENET_STD)},
        "threshold": {"value": 0.5, "chosen_on": "Validation"},
    }
    save_detector(model, folder / name, card)
    return model


def test_load_checkpoints_in_order(tmp_path):
    _save(tmp_path, "b", "sqnxt23_w1")
    _save(tmp_path, "a")
    loaded = load_checkpoints(tmp_path, ["b", "a"])
    assert list(loaded) == ["b", "a"]
    model, card = loaded["a"]
    assert card["name"] == "a" and not model.training
    assert list(load_checkpoints(str(tmp_path), "a")) == ["a"]  # one name as a string


def test_load_checkpoints_lists_every_missing_detector_and_the_fix(tmp_path):
    _save(tmp_path, "a")
    with pytest.raises(CheckpointError) as err:
        load_checkpoints(tmp_path, ["a", "b", "c"])
    msg = str(err.value)
    assert "b, c" in msg and "b.safetensors" in msg and "c.safetensors" in msg
    assert "05_training" in msg and "make run" in msg and "holds a" in msg
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoints(tmp_path / "nowhere", ["a"])
    with pytest.raises(ValueError, match="no detector names"):
        load_checkpoints(tmp_path, [])


def test_load_checkpoints_needs_only_the_weights(tmp_path):
    _save(tmp_path, "a")
    (tmp_path / "a.json").unlink()  # the card embedded in the .safetensors file is enough
    assert load_checkpoints(tmp_path, ["a"])["a"][1]["name"] == "a"


def test_score_split_uses_the_card_and_keeps_dataset_order(tmp_path, tiny_dataset):
    model = _save(tmp_path, "a", img_size=32)
    _, card = load_checkpoints(tmp_path, ["a"])["a"]
    s = score_split(model, card, tiny_dataset, "test", batch_size=3)
    assert isinstance(s, ScoredSplit) and s.split == "Test"
    assert s.logits.shape == s.labels.shape == (8,) and s.labels.tolist() == s.dataset.targets
    assert np.allclose(s.scores, 1 / (1 + np.exp(-s.logits)))
    # The same images through the model by hand, in dataset order.
    x = torch.stack([s.dataset[i][0] for i in range(len(s.dataset))])
    assert x.shape[-1] == 32
    with torch.no_grad():
        assert np.allclose(model.eval()(x).numpy(), s.logits, atol=1e-5)
    assert [p.name for p in s.paths] == [p.name for p in s.dataset.paths]
    half = score_split(model, card, tiny_dataset, "Validation", limit_per_class=2, seed=1)
    assert len(half.labels) == 4 and sorted(half.labels.tolist()) == [0, 0, 1, 1]


def test_oracle_accuracy_by_hand():
    # reals 0.1, 0.4; fakes 0.35, 0.8. Thresholds: 0.8 -> 3/4, 0.4 -> 2/4 ... 0.35 -> 3/4, 0.1 -> 2/4.
    acc, thr = oracle_accuracy([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8])
    assert acc == pytest.approx(0.75) and thr == pytest.approx(0.8)
    # Perfectly separable: the oracle reaches 1.0, a threshold chosen elsewhere may not.
    y, s = np.array([0, 0, 1, 1]), np.array([0.2, 0.3, 0.6, 0.7])
    acc, thr = oracle_accuracy(y, s)
    assert acc == 1.0 and accuracy(y, s, thr) == 1.0
    # It is never below the accuracy at any threshold, in particular one chosen on other data.
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 200)
    s = np.clip(rng.normal(0.4 + 0.2 * y, 0.2), 0, 1)
    other = choose_threshold(rng.integers(0, 2, 50), rng.random(50))
    assert oracle_accuracy(y, s)[0] >= max(accuracy(y, s, other), accuracy(y, s, 0.5))
    with pytest.raises(ValueError, match="both real and fake"):
        oracle_accuracy([1, 1], [0.2, 0.9])


def test_markdown_table():
    df = pd.DataFrame(
        {"auc": [0.91234, float("nan")], "note": ["a|b", "two\nlines"], "n": [1200, 3]},
        index=pd.Index(["x", "y"], name="model"),
    )
    text = markdown_table(df)
    assert text.splitlines() == [
        "| model | auc | note | n |",
        "|---|---|---|---|",
        "| x | 0.912 | a\\|b | 1,200 |",
        "| y |  | two lines | 3 |",
    ]
    assert markdown_table(df, index=False, floatfmt=".1f").splitlines()[2] == "| 0.9 | a\\|b | 1,200 |"
    numbers = pd.DataFrame({"parameters": [702225], "latency_ms": [8.0]}, index=["resnet"])
    assert markdown_table(numbers, floatfmt=".2f").splitlines()[2] == "| resnet | 702,225 | 8.00 |"
