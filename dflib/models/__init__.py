"""Three detector architectures written from scratch: SqueezeNeXt, ResNet, Vision Transformer.

    >>> from dflib.models import create_model, list_models, summary
    >>> model = create_model("resnet18")          # one logit per image: P(fake) = sigmoid(logit)
    >>> summary(model, img_size=128)              # per-stage output shapes, parameters, MACs

Every model follows ``dflib.models.base.Detector``: logits ``(N,)`` for ``num_classes=1``,
``named_stages()``, ``cam_layer`` and a ``config`` dict. ``load_reference_weights`` /
``build_reference`` compare them with torchvision and pytorchcv (test/benchmark only).
"""

from .analysis import count_macs, count_parameters, summary
from .base import Detector
from .reference import build_reference, load_reference_weights
from .registry import PRESETS, allowed_overrides, create_model, create_model_from_config, list_models
from .resnet import BasicBlock, Bottleneck, ResNet
from .squeezenext import SqueezeNeXt, SqueezeNeXtUnit
from .vit import ViT, resize_pos_embed

__all__ = [
    "Detector",
    "PRESETS",
    "create_model",
    "create_model_from_config",
    "list_models",
    "allowed_overrides",
    "count_parameters",
    "count_macs",
    "summary",
    "build_reference",
    "load_reference_weights",
    "SqueezeNeXt",
    "SqueezeNeXtUnit",
    "ResNet",
    "BasicBlock",
    "Bottleneck",
    "ViT",
    "resize_pos_embed",
]
