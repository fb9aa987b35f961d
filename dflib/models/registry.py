"""Model presets by name: ``create_model("resnet18")`` and ``list_models()``.

A preset is an architecture class plus the arguments that define a published (or course)
configuration. ``create_model`` accepts keyword overrides of those arguments, so
``create_model("resnet18", width=32)`` is a quarter-width ResNet-18, and stores everything in
``model.config`` so a checkpoint card can rebuild the exact model with
``create_model_from_config(config)`` (the dict is JSON-friendly).
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from typing import Any

from dflib import MAX_IMG_SIZE, MIN_IMG_SIZE

from .base import Detector
from .resnet import ResNet
from .squeezenext import SqueezeNeXt
from .vit import ViT


@dataclass(frozen=True)
class Preset:
    """A named configuration: the class, its arguments, the default image size, a description."""

    cls: type[Detector]
    kwargs: dict[str, Any] = field(default_factory=dict)
    img_size: int = 224
    description: str = ""


def _sqnxt(version: str, width_scale: float) -> Preset:
    return Preset(
        SqueezeNeXt,
        {"version": version, "width_scale": width_scale},
        description=f"{width_scale:g}-SqNxt-{version} (Gholami et al. 2018)",
    )


def _vit(dim: int, depth: int, heads: int, patch: int = 16, img_size: int = 224, what: str = "") -> Preset:
    return Preset(
        ViT,
        {"patch_size": patch, "embed_dim": dim, "depth": depth, "num_heads": heads},
        img_size=img_size,
        description=what,
    )


PRESETS: dict[str, Preset] = {
    "sqnxt23_w1": _sqnxt("23", 1.0),
    "sqnxt23_w3d2": _sqnxt("23", 1.5),
    "sqnxt23_w2": _sqnxt("23", 2.0),
    "sqnxt23v5_w1": _sqnxt("23v5", 1.0),
    "sqnxt23v5_w3d2": _sqnxt("23v5", 1.5),
    "sqnxt23v5_w2": _sqnxt("23v5", 2.0),
    "resnet18": Preset(ResNet, {"block": "basic", "layers": (2, 2, 2, 2)}, description="ResNet-18 (He et al. 2016)"),
    "resnet34": Preset(ResNet, {"block": "basic", "layers": (3, 4, 6, 3)}, description="ResNet-34 (He et al. 2016)"),
    "resnet50": Preset(
        ResNet, {"block": "bottleneck", "layers": (3, 4, 6, 3)}, description="ResNet-50 (He et al. 2016)"
    ),
    "resnet18_w32": Preset(
        ResNet,
        {"block": "basic", "layers": (2, 2, 2, 2), "width": 32},
        description="ResNet-18 at half width (CPU-friendly)",
    ),
    "resnet18_w16": Preset(
        ResNet,
        {"block": "basic", "layers": (2, 2, 2, 2), "width": 16},
        description="ResNet-18 at quarter width (CPU-friendly)",
    ),
    "vit_tiny_patch16_224": _vit(192, 12, 3, what="ViT-Ti/16 (Touvron et al. 2021 sizes)"),
    "vit_small_patch16_224": _vit(384, 12, 6, what="ViT-S/16"),
    "vit_base_patch16_224": _vit(768, 12, 12, what="ViT-B/16 (Dosovitskiy et al. 2021)"),
    "vit_face_p8_128": _vit(
        192, 6, 3, patch=8, img_size=128, what="small ViT for 128 px faces: 8 px patches (16x16 grid), 6 blocks"
    ),
    "vit_face_conv_128": Preset(
        ViT,
        {"patch_size": 8, "embed_dim": 96, "depth": 4, "num_heads": 3, "stem": "conv", "pool": "mean"},
        img_size=128,
        description="narrow 4-block ViT for 128 px faces: convolutional stem (16x16 grid "
        "of 8 px tokens) and mean pooling; trains from scratch on small data",
    ),
}


def list_models() -> list[str]:
    """Names accepted by ``create_model``, sorted."""
    return sorted(PRESETS)


def allowed_overrides(name: str) -> list[str]:
    """Constructor arguments of preset ``name`` that ``create_model`` lets you override."""
    preset = _get_preset(name)
    params = inspect.signature(preset.cls.__init__).parameters
    return sorted(p for p in params if p not in {"self", "num_classes", "img_size"})


def _get_preset(name: str) -> Preset:
    if name not in PRESETS:
        raise ValueError(f"unknown model {name!r}; choose one of: {', '.join(list_models())}")
    return PRESETS[name]


def create_model(name: str, num_classes: int = 1, img_size: int | None = None, **overrides: Any) -> Detector:
    """Build a preset by name.

    Args:
        name: one of ``list_models()``.
        num_classes: 1 (default) for a real/fake detector with output ``(N,)``: P(fake) =
            sigmoid(logit); more for a classifier with output ``(N, num_classes)``.
        img_size: training/inference size; ViTs size their position embeddings for it, CNNs pool
            adaptively and only record it. ``None`` = the preset's size.
        **overrides: constructor arguments to change, e.g. ``width=32``, ``depth=4``, ``drop_rate=0.1``.

    Raises:
        ValueError: unknown name, unknown override (the message lists the valid ones), bad value.
    """
    preset = _get_preset(name)
    valid = allowed_overrides(name)
    unknown = sorted(set(overrides) - set(valid))
    if unknown:
        raise ValueError(f"model {name!r} has no option(s) {unknown}; valid overrides: {', '.join(valid)}")
    size = preset.img_size if img_size is None else img_size
    if not isinstance(size, int) or isinstance(size, bool) or not MIN_IMG_SIZE <= size <= MAX_IMG_SIZE:
        raise ValueError(
            f"img_size must be a whole number of pixels from {MIN_IMG_SIZE} to {MAX_IMG_SIZE} "
            f"(--img-size), got {img_size!r}"
        )
    kwargs = {**preset.kwargs, **overrides}
    if "img_size" in inspect.signature(preset.cls.__init__).parameters:
        kwargs["img_size"] = size
    _check_size(name, num_classes, kwargs, overrides)
    try:
        model = preset.cls(num_classes=num_classes, **kwargs)
    except TypeError as err:  # e.g. a string where a number belongs
        raise ValueError(f"bad option for model {name!r} ({err}); valid overrides: {', '.join(valid)}") from err
    model.config = {"name": name, "num_classes": num_classes, "img_size": size, "overrides": dict(overrides)}
    return model


def _check_size(name: str, num_classes: int, kwargs: dict[str, Any], overrides: dict[str, Any]) -> None:
    """Refuse a model above ``MAX_PARAMETERS`` before any memory is allocated (it is built on the meta device)."""
    import torch

    preset = _get_preset(name)
    try:
        with torch.device("meta"):
            probe = preset.cls(num_classes=num_classes, **kwargs)
    except (TypeError, ValueError, RuntimeError):
        return  # the real construction below reports the bad option
    n = sum(p.numel() for p in probe.parameters())
    if n > MAX_PARAMETERS:
        raise ValueError(
            f"model {name!r} with {overrides or 'its preset options'} would have {n:,} parameters, "
            f"more than the {MAX_PARAMETERS:,} dflib builds (it would need {4 * n / 2**30:.0f} GB "
            f"for the weights alone); choose smaller options (e.g. --model-arg width=32)"
        )


# ViT-L/16 has 304 M parameters; a detector beyond this is a typo (width=100000), not a plan.
MAX_PARAMETERS = 400_000_000


def create_model_from_config(config: dict[str, Any]) -> Detector:
    """Rebuild a model from its ``model.config`` dict (e.g. read back from a JSON model card)."""
    missing = {"name", "num_classes", "img_size"} - set(config)
    if missing:
        raise ValueError(f"model config lacks {sorted(missing)}; expected keys name, num_classes, img_size, overrides")
    return create_model(
        config["name"], num_classes=config["num_classes"], img_size=config["img_size"], **config.get("overrides", {})
    )
