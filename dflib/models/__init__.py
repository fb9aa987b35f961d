"""Three detector architectures written from scratch: SqueezeNeXt, ResNet, Vision Transformer.

    >>> from dflib.models import create_model, list_models, summary
    >>> model = create_model("resnet18")          # one logit per image: P(fake) = sigmoid(logit)
    >>> summary(model, img_size=128)              # per-stage output shapes, parameters, MACs

Every model follows ``dflib.models.base.Detector``: logits ``(N,)`` for ``num_classes=1``,
``named_stages()``, ``cam_layer`` and a ``config`` dict. ``load_reference_weights`` /
``build_reference`` compare them with torchvision and pytorchcv (test/benchmark only);
:mod:`~dflib.models.diagnostics` holds the sanity checks the architecture notebooks run
(overfitting one batch, gradients per stage, the reference check, the ViT probes).
"""

from .analysis import count_macs, count_parameters, summary
from .base import Detector
from .diagnostics import (
    cls_attention,
    gradient_norms,
    overfit_one_batch,
    patchify,
    pos_embed_similarity,
    reference_check,
    separable_savings,
    without_shortcuts,
)
from .reference import build_reference, load_reference_weights
from .registry import PRESETS, allowed_overrides, create_model, create_model_from_config, list_models
from .resnet import BasicBlock, Bottleneck, ResNet
from .squeezenext import SqueezeNeXt, SqueezeNeXtUnit
from .vit import EncoderBlock, MultiHeadSelfAttention, PatchEmbedding, ViT, conv_stem, resize_pos_embed

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
    "EncoderBlock",
    "MultiHeadSelfAttention",
    "PatchEmbedding",
    "conv_stem",
    "cls_attention",
    "gradient_norms",
    "overfit_one_batch",
    "patchify",
    "pos_embed_similarity",
    "reference_check",
    "separable_savings",
    "without_shortcuts",
]
