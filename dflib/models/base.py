"""The interface every dflib architecture shares.

SqueezeNeXt, ResNet and ViT look very different inside, but the rest of the course (training,
evaluation, Grad-CAM, summary tables, checkpoint cards) only needs four things from a model:

* ``forward(x)`` returns logits: shape ``(N,)`` for a binary detector (``num_classes == 1``,
  P(fake) = sigmoid(logit), label fake = 1) and ``(N, num_classes)`` otherwise;
* ``named_stages()`` lists the top-level blocks in execution order; feeding the input through
  them one after another gives the head's output (this is what ``summary()`` tabulates);
* ``cam_layer`` is the module whose output Grad-CAM hooks: a ``(N, C, h, w)`` feature map for a CNN,
  the ``(N, T, D)`` tokens for a ViT (``dflib.explain.grad_cam`` uses it as it is);
* ``config`` is a small dict (name, num_classes, img_size, overrides) from which
  ``create_model_from_config(config)`` rebuilds the model.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn


class Detector(nn.Module):
    """Base class: stores ``num_classes`` and ``config``, shapes the logits."""

    def __init__(self, num_classes: int) -> None:
        super().__init__()
        if not isinstance(num_classes, int) or isinstance(num_classes, bool) or num_classes < 1:
            raise ValueError(
                f"num_classes must be a positive integer (1 for a real/fake detector), got {num_classes!r}"
            )
        self.num_classes = num_classes
        # Filled in by dflib.models.create_model; a model built by hand has name None.
        self.config: dict[str, Any] = {
            "name": None,
            "num_classes": num_classes,
            "img_size": None,
            "overrides": {},
        }

    def named_stages(self) -> list[tuple[str, nn.Module]]:
        """Top-level blocks in execution order, e.g. ``[("stem", ...), ("stage1", ...), ...]``."""
        raise NotImplementedError

    @property
    def cam_layer(self) -> nn.Module:
        """The module whose output Grad-CAM hooks and explains (the last spatial feature map)."""
        raise NotImplementedError

    def format_logits(self, logits: torch.Tensor) -> torch.Tensor:
        """``(N, 1) -> (N,)`` for a binary detector, so ``sigmoid(model(x))`` is P(fake) per image."""
        return logits.squeeze(-1) if self.num_classes == 1 else logits


def global_pool(drop_rate: float = 0.0) -> nn.Sequential:
    """Global average pooling + flatten (+ dropout): any input size gives a ``(N, C)`` vector."""
    if not 0.0 <= drop_rate < 1.0:
        raise ValueError(f"drop_rate must be in [0, 1), got {drop_rate!r}")
    layers: list[nn.Module] = [nn.AdaptiveAvgPool2d(1), nn.Flatten(1)]
    if drop_rate > 0:
        layers.append(nn.Dropout(drop_rate))
    return nn.Sequential(*layers)
