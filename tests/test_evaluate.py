"""Metrics and thresholds against values computed by hand; scoring a loader."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from dflib.evaluation import (
    accuracy,
    average_precision,
    balanced_accuracy,
    choose_threshold,
    predict_scores,
    roc_auc,
    summarize,
)

# 2 reals (0.1, 0.4) and 2 fakes (0.35, 0.8).
LABELS = [0, 0, 1, 1]
SCORES = [0.1, 0.4, 0.35, 0.8]


def test_roc_auc_by_hand():
    # fake-real pairs ranked right: (0.35>0.1), (0.8>0.1), (0.8>0.4); wrong: (0.35<0.4) -> 3/4
    assert roc_auc(LABELS, SCORES) == pytest.approx(0.75)
    assert roc_auc([0, 1], [0.5, 0.5]) == pytest.approx(0.5)  # a tie counts one half
    assert roc_auc([0, 0, 1], [0.2, 0.1, 0.9]) == pytest.approx(1.0)


def test_average_precision_by_hand():
    # ranked: 0.8 fake (P=1, R=1/2), 0.4 real, 0.35 fake (P=2/3, R=1) -> AP = 1/2*1 + 1/2*2/3
    assert average_precision(LABELS, SCORES) == pytest.approx(0.5 + 1 / 3)


def test_accuracy_and_balanced_accuracy_by_hand():
    assert accuracy(LABELS, SCORES) == pytest.approx(0.75)  # 0.35 fake is missed
    assert accuracy(LABELS, SCORES, threshold=0.35) == pytest.approx(0.75)  # >= : 0.35 is fake, 0.4 too
    assert accuracy(LABELS, SCORES, threshold=0.9) == pytest.approx(0.5)
    # 6 reals, 2 fakes, everything called real: accuracy 0.75 but balanced accuracy 0.5
    y = [0] * 6 + [1] * 2
    s = [0.1] * 8
    assert accuracy(y, s) == pytest.approx(0.75) and balanced_accuracy(y, s) == pytest.approx(0.5)


def test_threshold_maximises_youden_j():
    # At 0.5 every fake is caught and no real is: J = 1 - 0 = 1.
    assert choose_threshold([0, 0, 0, 1, 1, 1], [0.1, 0.2, 0.45, 0.5, 0.7, 0.9]) == pytest.approx(0.5)
    # J = 2/3 at both 0.7 (TPR 2/3, FPR 0) and 0.5 (TPR 1, FPR 1/3): the higher one is kept.
    assert choose_threshold([0, 0, 0, 1, 1, 1], [0.1, 0.2, 0.6, 0.5, 0.7, 0.9]) == pytest.approx(0.7)
    with pytest.raises(ValueError, match="unknown threshold method"):
        choose_threshold(LABELS, SCORES, method="f1")


def test_summarize_reports_everything():
    out = summarize(LABELS, SCORES, threshold=0.35)
    assert out == pytest.approx(
        {
            "n": 4,
            "n_real": 2,
            "n_fake": 2,
            "roc_auc": 0.75,
            "average_precision": 0.5 + 1 / 3,
            "accuracy": 0.75,
            "threshold": 0.35,
            "accuracy_at_threshold": 0.75,
            "balanced_accuracy_at_threshold": 0.75,
        }
    )
    assert "threshold" not in summarize(LABELS, SCORES)


def test_bad_inputs_are_clear():
    with pytest.raises(ValueError, match="needs both real and fake"):
        roc_auc([1, 1], [0.2, 0.3])
    with pytest.raises(ValueError, match="differ in length"):
        accuracy([0, 1], [0.2])
    with pytest.raises(ValueError, match="NaN"):
        roc_auc([0, 1], [0.2, math.nan])
    with pytest.raises(ValueError, match="0 \\(real\\) or 1 \\(fake\\)"):
        accuracy([0, 2], [0.2, 0.3])


class _Fixed(nn.Module):
    """Returns the first pixel as the logit: predictions are known in advance."""

    def forward(self, x):
        return x[:, 0, 0, 0]


def test_predict_scores_are_sigmoid_of_logits_in_loader_order():
    logits = torch.tensor([-2.0, 0.0, 3.0, 1.0])
    x = logits.view(4, 1, 1, 1).expand(4, 3, 2, 2).contiguous()
    y = torch.tensor([0, 1, 1, 0])
    loader = [(x[:3], y[:3]), (x[3:], y[3:])]
    model = _Fixed().train()
    scores, labels = predict_scores(model, loader, "cpu")
    np.testing.assert_allclose(scores, torch.sigmoid(logits).numpy(), rtol=1e-6)
    assert labels.tolist() == [0, 1, 1, 0] and scores.dtype == np.float64
    assert model.training  # the caller's mode is restored


def test_p_fake_scores_a_batch_and_refuses_a_non_binary_model():
    import torch

    from dflib.evaluation import p_fake
    from dflib.models import create_model

    torch.manual_seed(0)
    x = torch.randn(3, 3, 32, 32)
    binary = create_model("resnet18", img_size=32, width=4).eval()
    p = p_fake(binary, x, "tiny")
    with torch.no_grad():
        expected = torch.sigmoid(binary(x)).double().numpy()
    assert p.shape == (3,) and p.dtype.name == "float64" and abs(p - expected).max() < 1e-7
    three = create_model("resnet18", img_size=32, width=4, num_classes=3).eval()
    with pytest.raises(ValueError, match=r"tiny3 gives \(3, 3\) outputs for 3 faces; dflib predict needs a binary"):
        p_fake(three, x, "tiny3", "faces")
