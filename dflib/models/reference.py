"""Reference implementations and weight conversion, to prove the from-scratch models are right.

``build_reference(name)`` builds the well-known implementation of a dflib preset (torchvision for
ResNet and ViT, pytorchcv for SqueezeNeXt; imported lazily, they are test/benchmark-only
dependencies). ``load_reference_weights(model, reference)`` copies its weights into the dflib
model. The copy goes by *structure*: every dflib tensor name is translated to the reference's
name by explicit rules (``stage2.0.conv1`` -> ``layer2.0.conv1`` ...), then both names and shapes
must match one to one. If they do not, the error names the first tensor that differs.
Same weights + same architecture => same outputs, which the tests check to 1e-5.
"""

from __future__ import annotations

import re
from collections.abc import Callable

import torch
from torch import nn

from .base import Detector
from .registry import PRESETS
from .resnet import ResNet
from .squeezenext import SqueezeNeXt
from .vit import ViT, resize_pos_embed

Rules = list[tuple[str, str | Callable[[re.Match], str]]]

# dflib name -> torchvision name, applied in order with re.sub.
RESNET_RULES: Rules = [
    (r"^stem\.conv\.", "conv1."),
    (r"^stem\.bn\.", "bn1."),
    (r"^stage(\d)\.", r"layer\1."),
    (r"\.shortcut\.", ".downsample."),
    (r"^head\.", "fc."),
]

# dflib name -> pytorchcv name (pytorchcv counts units from 1 and numbers the convs 1-5).
SQNXT_RULES: Rules = [
    (r"^stem\.conv\.", "features.init_block.conv."),
    (r"^stage(\d)\.(\d+)\.", lambda m: f"features.stage{m[1]}.unit{int(m[2]) + 1}."),
    (r"\.squeeze1\.", ".conv1."),
    (r"\.squeeze2\.", ".conv2."),
    (r"\.conv1x3\.", ".conv3."),
    (r"\.conv3x1\.", ".conv4."),
    (r"\.expand\.", ".conv5."),
    (r"\.shortcut\.", ".identity_conv."),
    (r"^final_block\.", "features.final_block."),
    (r"^head\.", "output."),
]

# dflib name -> torchvision VisionTransformer name. The fused qkv Linear has the same layout as
# nn.MultiheadAttention's packed in_proj (q rows, then k, then v).
VIT_RULES: Rules = [
    (r"^embed\.proj\.", "conv_proj."),
    (r"^embed\.cls_token$", "class_token"),
    (r"^embed\.pos_embed$", "encoder.pos_embedding"),
    (r"^blocks\.(\d+)\.", r"encoder.layers.encoder_layer_\1."),
    (r"\.norm1\.", ".ln_1."),
    (r"\.norm2\.", ".ln_2."),
    (r"\.attn\.qkv\.(weight|bias)$", r".self_attention.in_proj_\1"),
    (r"\.attn\.proj\.", ".self_attention.out_proj."),
    (r"\.mlp\.fc1\.", ".mlp.0."),
    (r"\.mlp\.fc2\.", ".mlp.3."),
    (r"^norm\.", "encoder.ln."),
    (r"^head\.", "heads.head."),
]


def _translate(name: str, rules: Rules) -> str:
    for pattern, repl in rules:
        name = re.sub(pattern, repl, name)
    return name


def _shape(t: torch.Tensor) -> list[int]:
    return list(t.shape)


def _check_reference_type(model: Detector, reference: nn.Module) -> Rules:
    """Pick the renaming rules for this pair, and check what the weights alone cannot show."""
    ref_type = type(reference).__name__
    if isinstance(model, ResNet):
        if ref_type != "ResNet":
            raise TypeError(f"a dflib ResNet needs a torchvision ResNet as reference, got {ref_type}")
        return RESNET_RULES
    if isinstance(model, SqueezeNeXt):
        if ref_type != "SqueezeNext":
            raise TypeError(f"a dflib SqueezeNeXt needs a pytorchcv SqueezeNext as reference, got {ref_type}")
        return SQNXT_RULES
    if isinstance(model, ViT):
        if ref_type != "VisionTransformer":
            raise TypeError(f"a dflib ViT needs a torchvision VisionTransformer as reference, got {ref_type}")
        # Head count and patch size change the computation but not the tensor shapes: check them.
        ref_heads = reference.encoder.layers[0].self_attention.num_heads
        ours = model.blocks[0].attn.num_heads
        if ref_heads != ours:
            raise ValueError(f"attention heads differ: dflib {ours}, reference {ref_heads}")
        if reference.patch_size != model.patch_size:
            raise ValueError(f"patch size differs: dflib {model.patch_size}, reference {reference.patch_size}")
        return VIT_RULES
    raise TypeError(f"no reference mapping for {type(model).__name__}; expected a dflib ResNet, SqueezeNeXt or ViT")


@torch.no_grad()
def load_reference_weights(model: Detector, reference: nn.Module) -> Detector:
    """Copy the weights (and BatchNorm statistics) of ``reference`` into ``model``; returns ``model``.

    Position embeddings of a ViT built for another image size are resampled (bicubic); every
    other tensor must match in name (after translation) and shape.

    Raises:
        TypeError: the reference is not the implementation this architecture maps to.
        ValueError: the structures differ; the message names the first mismatching tensor.
    """
    rules = _check_reference_type(model, reference)
    ours, theirs = model.state_dict(), reference.state_dict()
    new_state: dict[str, torch.Tensor] = {}
    for name, tensor in ours.items():
        ref_name = _translate(name, rules)
        if ref_name not in theirs:
            raise ValueError(
                f"dflib tensor {name!r} {_shape(tensor)} maps to reference tensor {ref_name!r}, which the "
                f"reference does not have: the two architectures differ (depth, block type or layout)"
            )
        value = theirs[ref_name]
        if name == "embed.pos_embed" and value.shape != tensor.shape and value.shape[-1] == tensor.shape[-1]:
            value = resize_pos_embed(value, (model.embed.grid, model.embed.grid))
        if value.shape != tensor.shape:
            raise ValueError(
                f"shape mismatch at dflib tensor {name!r} {_shape(tensor)} vs reference {ref_name!r} "
                f"{_shape(value)}: the two models are configured differently (width, classes, patch size)"
            )
        new_state[name] = value
    used = {_translate(name, rules) for name in ours}
    unused = [k for k in theirs if k not in used]
    if unused:
        raise ValueError(
            f"reference tensor {unused[0]!r} {_shape(theirs[unused[0]])} has no counterpart in the dflib model "
            f"({len(unused)} unmatched in total): the reference is deeper or has extra layers"
        )
    model.load_state_dict(new_state, strict=True)
    return model


def build_reference(name: str, num_classes: int = 1000, img_size: int = 224) -> nn.Module:
    """The reference implementation of dflib preset ``name`` (random weights, never downloaded).

    torchvision ``resnet18/34/50`` and ``VisionTransformer``; pytorchcv ``sqnxt23*``. pytorchcv
    ends in a fixed 7x7 average pool that only fits 224 px inputs; for other sizes it is swapped for
    adaptive pooling (identical maths at 224 px), as dflib does.

    Raises:
        ValueError: unknown preset, or one without a reference (e.g. ``resnet18_w32``).
        ImportError: torchvision / pytorchcv missing (``pip install pytorchcv``).
    """
    if name not in PRESETS:
        raise ValueError(f"unknown model {name!r}; choose one of: {', '.join(sorted(PRESETS))}")
    preset = PRESETS[name]
    if preset.cls is SqueezeNeXt:
        try:
            from pytorchcv.models import squeezenext as cv_sqnxt
        except ImportError as err:
            raise ImportError("the SqueezeNeXt reference needs pytorchcv: pip install pytorchcv") from err
        if not hasattr(cv_sqnxt, name):
            raise ValueError(f"pytorchcv has no model {name!r}")
        ref = getattr(cv_sqnxt, name)(num_classes=num_classes, in_size=(img_size, img_size))
        if img_size != 224:
            ref.features.final_pool = nn.AdaptiveAvgPool2d(1)
        return ref
    try:
        import torchvision.models as tvm
    except ImportError as err:
        raise ImportError("the ResNet/ViT references need torchvision: pip install torchvision") from err
    if preset.cls is ResNet:
        if name not in {"resnet18", "resnet34", "resnet50"}:
            raise ValueError(f"no reference for {name!r}: torchvision ResNets have the fixed width 64")
        return getattr(tvm, name)(weights=None, num_classes=num_classes)
    if preset.cls is ViT:
        kw = preset.kwargs
        if kw.get("stem", "patch") != "patch" or kw.get("pool", "cls") != "cls":
            raise ValueError(
                f"{name} (convolutional stem / mean pooling) has no torchvision reference; "
                f"the references cover the plain ViT presets (stem='patch', pool='cls')"
            )
        return tvm.VisionTransformer(
            image_size=img_size,
            patch_size=kw["patch_size"],
            num_layers=kw["depth"],
            num_heads=kw["num_heads"],
            hidden_dim=kw["embed_dim"],
            mlp_dim=int(kw["embed_dim"] * kw.get("mlp_ratio", 4.0)),
            num_classes=num_classes,
        )
    raise ValueError(f"no reference implementation for {name!r}")
