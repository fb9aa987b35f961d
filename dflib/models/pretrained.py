"""ImageNet initialisation: start a dflib detector from the reference implementation's pretrained weights.

``imagenet_init(model)`` finds the reference that matches the model's architecture exactly
(torchvision ResNet-18/34/50, torchvision ViT-B/16, B/32, L/16, L/32, pytorchcv SqueezeNeXt), loads
its ImageNet weights through that library's own download cache and copies them in with
:func:`~dflib.models.reference.load_reference_weights` (the structural transfer the tests prove
exact). The detector's one-logit head keeps its own fresh initialisation: ImageNet's 1000-class
head has nothing to say about real vs fake.

Where the weights live (downloaded on first use, reused afterwards):

* torchvision: ``$TORCH_HOME/hub/checkpoints/`` (``TORCH_HOME`` defaults to ``~/.cache/torch``);
* pytorchcv: ``~/.torch/models/`` (pytorchcv's own default).

Offline and not cached, :class:`PretrainedWeightsMissing` names the file, where to get it and
the folder to put it in. Nothing is unpickled: files are read with ``weights_only=True``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .base import Detector
from .reference import build_reference, load_reference_weights
from .registry import PRESETS
from .resnet import ResNet
from .squeezenext import SqueezeNeXt
from .vit import ViT

INIT_CHOICES = ("random", "imagenet")

# (block, layers) -> torchvision builder and weights enum
_RESNETS = {
    ("basic", (2, 2, 2, 2)): ("resnet18", "ResNet18_Weights"),
    ("basic", (3, 4, 6, 3)): ("resnet34", "ResNet34_Weights"),
    ("bottleneck", (3, 4, 6, 3)): ("resnet50", "ResNet50_Weights"),
}
# (patch, dim, depth, heads) -> torchvision builder and weights enum (mlp_ratio 4, class token)
_VITS = {
    (16, 768, 12, 12): ("vit_b_16", "ViT_B_16_Weights"),
    (32, 768, 12, 12): ("vit_b_32", "ViT_B_32_Weights"),
    (16, 1024, 24, 16): ("vit_l_16", "ViT_L_16_Weights"),
    (32, 1024, 24, 16): ("vit_l_32", "ViT_L_32_Weights"),
}
_SQNXT_WIDTH = {1.0: "w1", 1.5: "w3d2", 2.0: "w2"}


class PretrainedWeightsMissing(FileNotFoundError):
    """ImageNet weights are neither cached nor downloadable; the message names the file and the folder."""


def _arch(model: Detector) -> dict[str, Any]:
    config = getattr(model, "config", None) or {}
    name = config.get("name")
    if name not in PRESETS:
        raise ValueError("ImageNet initialisation needs a model built by dflib.models.create_model")
    return {**PRESETS[name].kwargs, **config.get("overrides", {})}


def imagenet_source(model: Detector) -> dict[str, str]:
    """Which ImageNet weights fit ``model``: ``{"library", "model", "weights"}``; ValueError if none do."""
    kw, name = _arch(model), model.config["name"]
    if isinstance(model, ResNet):
        key = (kw.get("block", "basic"), tuple(kw.get("layers", ())))
        if key not in _RESNETS or kw.get("width", 64) != 64:
            raise ValueError(
                f"--init imagenet: no ImageNet weights for {name} (torchvision has them for the "
                f"full-width ResNet-18/34/50 only); use --model resnet18, resnet34 or resnet50"
            )
        builder, enum = _RESNETS[key]
        return {"library": "torchvision", "model": builder, "weights": f"{enum}.IMAGENET1K_V1"}
    if isinstance(model, ViT):
        key = (kw.get("patch_size"), kw.get("embed_dim"), kw.get("depth"), kw.get("num_heads"))
        plain = kw.get("stem", "patch") == "patch" and kw.get("pool", "cls") == "cls"
        if key not in _VITS or not plain or float(kw.get("mlp_ratio", 4.0)) != 4.0:
            raise ValueError(
                f"--init imagenet: no ImageNet weights for {name}: torchvision has them for ViT-B/16, "
                f"B/32, L/16 and L/32 with a patch stem and a class token; use --model "
                f"vit_base_patch16_224 (or its img_size), or train this ViT from random weights"
            )
        builder, enum = _VITS[key]
        return {"library": "torchvision", "model": builder, "weights": f"{enum}.IMAGENET1K_V1"}
    if isinstance(model, SqueezeNeXt):
        width = _SQNXT_WIDTH.get(float(kw.get("width_scale", 1.0)))
        if width is None:
            raise ValueError(
                f"--init imagenet: no ImageNet weights for {name} at width_scale "
                f"{kw.get('width_scale')}; pytorchcv has them for 1.0, 1.5 and 2.0"
            )
        cv = f"sqnxt{kw.get('version', '23')}_{width}"
        return {"library": "pytorchcv", "model": cv, "weights": cv}
    raise ValueError(f"--init imagenet: no reference weights for {type(model).__name__}")


def torchvision_cache_dir() -> Path:
    """torch.hub's checkpoint folder: ``$TORCH_HOME/hub/checkpoints`` (what torchvision downloads into)."""
    return Path(torch.hub.get_dir()) / "checkpoints"


def pytorchcv_cache_dir() -> Path:
    """pytorchcv's default weight folder, ``~/.torch/models``."""
    return Path(os.path.expanduser(os.path.join("~", ".torch", "models")))


def _missing(file: Path, url: str, err: BaseException) -> PretrainedWeightsMissing:
    return PretrainedWeightsMissing(
        f"ImageNet weights {file.name} are not in the cache and could not be downloaded "
        f"({type(err).__name__}: {err}). On a machine with internet access download {url} and put it in "
        f"{file.parent}/ (as {file.name}), then run again; or train without --init imagenet"
    )


def _torchvision_state(source: dict[str, str]) -> dict[str, torch.Tensor]:
    import torchvision.models as tvm

    weights = tvm.get_weight(source["weights"])
    file = torchvision_cache_dir() / os.path.basename(weights.url)
    try:
        return torch.hub.load_state_dict_from_url(
            weights.url, map_location="cpu", weights_only=True, progress=True, check_hash=False
        )
    except (OSError, ConnectionError, RuntimeError) as err:  # URLError is an OSError
        if file.is_file():
            raise
        raise _missing(file, weights.url, err) from err


def _pytorchcv_state(source: dict[str, str]) -> dict[str, torch.Tensor]:
    try:
        from pytorchcv.models.common import model_store
    except ImportError as err:
        raise ImportError(
            "ImageNet weights for SqueezeNeXt come from pytorchcv: pip install pytorchcv "
            "(or pip install 'dflib[notebooks]')"
        ) from err
    name = source["model"]
    error, sha1, tag = model_store.get_model_name_suffix_data(name)
    file = pytorchcv_cache_dir() / f"{name}-{error}-{sha1[:8]}.pth"
    if not file.is_file():  # pytorchcv downloads (and checks the SHA-1 of) what is not there yet
        url = f"{model_store.imgclsmob_repo_url}/releases/download/{tag}/{file.name}.zip"
        try:
            file = Path(model_store.get_model_file(name, str(file.parent)))
        except Exception as err:  # requests' errors, RuntimeError for an HTTP error, OSError
            raise _missing(file, url + " (unzip it)", err) from err
    return torch.load(file, map_location="cpu", weights_only=True)


def _reference_with_weights(source: dict[str, str], model: Detector) -> nn.Module:
    """The 1000-class reference with its ImageNet weights, then with a one-logit head like ``model``'s."""
    state = _torchvision_state(source) if source["library"] == "torchvision" else _pytorchcv_state(source)
    if source["library"] == "pytorchcv":  # dflib's SqueezeNeXt presets carry pytorchcv's names
        ref = build_reference(source["model"], num_classes=1000, img_size=224)
    else:
        import torchvision.models as tvm

        ref = getattr(tvm, source["model"])(weights=None)
    try:
        ref.load_state_dict(state, strict=True)
    except RuntimeError as err:
        raise ValueError(
            f"the cached ImageNet weights for {source['model']} do not fit its architecture "
            f"({str(err).splitlines()[0]}); delete the file and run again to download it"
        ) from err
    head = {"torchvision": ("fc", "heads"), "pytorchcv": ("output",)}[source["library"]]
    for attr in head:  # replace the 1000-class head by a one-logit one (the detector's head is kept anyway)
        if hasattr(ref, attr):
            old = getattr(ref, attr)
            if isinstance(old, nn.Linear):
                setattr(ref, attr, nn.Linear(old.in_features, 1))
            else:  # torchvision ViT: heads.head
                old.head = nn.Linear(old.head.in_features, 1)
    return ref


@torch.no_grad()
def imagenet_init(model: Detector) -> dict[str, str]:
    """Copy ImageNet weights into ``model`` (all but its head); returns the source, for the model card.

    Raises ``ValueError`` when no ImageNet weights fit the architecture (the message says which
    models have them) and :class:`PretrainedWeightsMissing` when they are not cached and cannot
    be downloaded.
    """
    source = imagenet_source(model)
    ref = _reference_with_weights(source, model)
    head = {k: v.clone() for k, v in model.state_dict().items() if k.startswith("head.")}
    load_reference_weights(model, ref)
    model.load_state_dict(head, strict=False)
    return {"method": "imagenet", **source}
