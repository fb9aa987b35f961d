"""Export a detector to ONNX and check that onnxruntime computes what torch computes.

ONNX is how a trained detector leaves Python: onnxruntime runs it on a server, in a browser
(onnxruntime-web) or on a phone, without torch. The exported graph takes a normalised batch
``images`` of shape ``(N, 3, img_size, img_size)`` (any ``N``: the batch axis is dynamic) and
returns ``logits`` of shape ``(N,)``; P(fake) = sigmoid(logit), exactly as in torch. The model
card's input size, normalisation and threshold are stored in the file's metadata, so the
``.onnx`` file alone says how to prepare an image and how to read the answer.

    >>> path = export_onnx("models/resnet18.json", "resnet18.onnx")
    >>> check_onnx("models/resnet18.json", path)          # max |logit difference|, ~1e-6
    >>> onnx_metadata(path)["threshold"]

Two exporters exist in torch 2.x. The default (``dynamo=True``) traces the model with
``torch.export`` and needs the ``onnxscript`` package; it is the one torch maintains. The older
TorchScript exporter (``dynamo=False``) is deprecated but faster to run; it is used as a fallback
when the first one fails. Both handle all three architectures, including the ViT's
``F.scaled_dot_product_attention``; the exporter actually used is recorded in the metadata.

``onnx``, ``onnxruntime`` and ``onnxscript`` are optional: ``pip install 'dflib[onnx]'``.
"""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from dflib.card import DEFAULT_THRESHOLD, ModelCard

DEFAULT_OPSET = 18
INPUT_NAME = "images"
OUTPUT_NAME = "logits"
INSTALL_HINT = "pip install 'dflib[onnx]' (or: pip install onnx onnxruntime onnxscript)"


class OnnxUnavailableError(ImportError):
    """The optional ONNX packages are missing (the message says how to install them)."""


def _require(*modules: str) -> None:
    import importlib

    missing = []
    for name in modules:
        try:
            importlib.import_module(name)
        except ImportError:
            missing.append(name)
    if missing:
        raise OnnxUnavailableError(
            f"ONNX export needs the package(s) {', '.join(missing)}, which are not "
            f"installed; install them with: {INSTALL_HINT}"
        )


def _resolve(
    model_or_checkpoint: nn.Module | str | os.PathLike | tuple[nn.Module, dict],
) -> tuple[nn.Module, ModelCard | None]:
    """``(model, card or None)`` from a model, a ``(model, card)`` pair or a checkpoint path."""
    if isinstance(model_or_checkpoint, nn.Module):
        return model_or_checkpoint, None
    if isinstance(model_or_checkpoint, tuple) and len(model_or_checkpoint) == 2:
        return model_or_checkpoint[0], ModelCard.from_dict(model_or_checkpoint[1])
    if isinstance(model_or_checkpoint, (str, os.PathLike)):
        from dflib.checkpoint import load_detector

        return load_detector(model_or_checkpoint, device="cpu")
    raise TypeError(
        f"expected a model, a (model, card) pair or a checkpoint path, got {type(model_or_checkpoint).__name__}"
    )


def _img_size(model: nn.Module, card: ModelCard | None, img_size: int | None) -> int:
    size = img_size or (card.img_size if card is not None else getattr(model, "config", {}).get("img_size"))
    if not isinstance(size, int) or size < 16:
        raise ValueError(
            f"img_size={size!r}: pass the input size in pixels (an integer >= 16), "
            f"e.g. export_onnx(model, path, img_size=128)"
        )
    return size


def _metadata(model: nn.Module, card: ModelCard | None, img_size: int, exporter: str) -> dict[str, str]:
    import dflib
    from dflib.data.transforms import IMAGENET_MEAN, IMAGENET_STD, REDUCED_DECODING

    if card is not None:
        name, arch, mean, std, threshold = (
            card.name,
            card.architecture,
            card.mean,
            card.std,
            card.threshold_or_default(),
        )
    else:  # a bare model: its own config, ImageNet statistics, no validated threshold
        arch = getattr(model, "config", {})
        name = str(arch.get("name") or type(model).__name__)
        mean, std, threshold = IMAGENET_MEAN, IMAGENET_STD, DEFAULT_THRESHOLD
    return {
        "dflib_version": dflib.__version__,
        "exporter": exporter,
        "name": name,
        "architecture": json.dumps(arch),
        "img_size": str(img_size),
        "mean": json.dumps(list(mean)),
        "std": json.dumps(list(std)),
        "threshold": repr(float(threshold)),
        "input": f"{INPUT_NAME}: float32 (N, 3, {img_size}, {img_size}), RGB scaled to [0, 1], then (x - mean) / std",
        "preprocessing": (
            f"JPEG: decode at the DCT scale (1/2, 1/4 or 1/8, libjpeg) whose output still covers "
            f"{img_size} px (dflib.data.io.jpeg_scale), then antialiased bilinear resize to {img_size}; "
            f"other formats: resize"
            if REDUCED_DECODING
            else f"decode in full, antialiased bilinear resize to {img_size}"
        ),
        "output": f"{OUTPUT_NAME}: float32 (N,); P(fake) = sigmoid(logit); fake when P(fake) >= threshold",
    }


def _export_dynamo(model: nn.Module, example: torch.Tensor, path: Path, opset: int) -> None:
    batch = torch.export.Dim("batch", min=1, max=4096)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model,
            (example,),
            str(path),
            dynamo=True,
            opset_version=opset,
            verbose=False,
            input_names=[INPUT_NAME],
            output_names=[OUTPUT_NAME],
            dynamic_shapes=({0: batch},),
            external_data=False,
            optimize=True,
        )


def _export_legacy(model: nn.Module, example: torch.Tensor, path: Path, opset: int) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # deprecation + tracer notices: the round-trip check is the judge
        torch.onnx.export(
            model,
            (example,),
            str(path),
            dynamo=False,
            opset_version=opset,
            verbose=False,
            input_names=[INPUT_NAME],
            output_names=[OUTPUT_NAME],
            dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}},
            do_constant_folding=True,
        )


def export_onnx(
    model_or_checkpoint: nn.Module | str | os.PathLike | tuple[nn.Module, dict],
    path: str | os.PathLike,
    img_size: int | None = None,
    opset: int = DEFAULT_OPSET,
    *,
    dynamo: bool = True,
    fallback: bool = True,
) -> Path:
    """Write the detector as one self-contained ONNX file with a dynamic batch axis; return its path.

    ``model_or_checkpoint``: a model, a ``(model, card)`` pair or a checkpoint path (either file
    of the pair). ``img_size`` defaults to the card's / model's input size. ``dynamo=True`` uses
    torch's ``torch.export``-based exporter and, when ``fallback`` is true, falls back to the
    TorchScript exporter if that fails; ``dynamo=False`` uses the TorchScript exporter directly.
    The model card (input size, normalisation, threshold) goes into the file's metadata.
    """
    _require("onnx", "onnxruntime", *(["onnxscript"] if dynamo and not fallback else []))
    import onnx

    model, card = _resolve(model_or_checkpoint)
    size = _img_size(model, card, img_size)
    path = Path(path).expanduser()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ValueError(f"cannot create the folder of {path} ({e.strerror}); choose a writable path") from None
    from dflib.checkpoint import unwrap

    model = unwrap(model)
    was_training = model.training
    device = next(model.parameters()).device
    model.cpu().eval()
    example = torch.randn(2, 3, size, size)  # batch 2: a batch of 1 could be specialised away
    try:
        exporter = "torch.export (dynamo)" if dynamo else "torchscript (legacy)"
        if dynamo:
            try:
                _require("onnxscript")
                _export_dynamo(model, example, path, opset)
            except Exception as e:
                if not fallback:
                    raise
                warnings.warn(
                    f"the torch.export ONNX exporter failed ({type(e).__name__}: "
                    f"{str(e).splitlines()[0][:200] if str(e) else ''}); using the TorchScript "
                    f"exporter instead",
                    stacklevel=2,
                )
                exporter = "torchscript (legacy, fallback)"
                _export_legacy(model, example, path, min(opset, 17))
        else:
            _export_legacy(model, example, path, opset)
    finally:
        model.to(device).train(was_training)
    proto = onnx.load(str(path))
    for key, value in _metadata(model, card, size, exporter).items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.checker.check_model(proto)
    from dflib.checkpoint import atomic_write_bytes

    atomic_write_bytes(path, proto.SerializeToString())
    for leftover in path.parent.glob(path.name + ".data"):  # external data, if an exporter wrote it
        leftover.unlink(missing_ok=True)
    return path


def onnx_metadata(path: str | os.PathLike) -> dict[str, Any]:
    """The metadata :func:`export_onnx` stored (img_size, mean, std, threshold, exporter, ...)."""
    _require("onnx")
    import onnx

    proto = onnx.load(str(path), load_external_data=False)
    meta: dict[str, Any] = {p.key: p.value for p in proto.metadata_props}
    for key in ("img_size",):
        if key in meta:
            meta[key] = int(meta[key])
    for key in ("mean", "std", "architecture"):
        if key in meta:
            meta[key] = json.loads(meta[key])
    if "threshold" in meta:
        meta["threshold"] = float(meta["threshold"])
    return meta


def onnx_session(path: str | os.PathLike):
    """An onnxruntime CPU inference session for ``path``."""
    _require("onnxruntime")
    import onnxruntime as ort

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"ONNX file {path} does not exist; write it with dflib.export.export_onnx")
    options = ort.SessionOptions()
    options.log_severity_level = 3
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def run_onnx(path_or_session, images: torch.Tensor | np.ndarray) -> np.ndarray:
    """Logits ``(N,)`` that onnxruntime computes for a normalised batch ``(N, 3, H, W)``."""
    session = onnx_session(path_or_session) if isinstance(path_or_session, (str, os.PathLike)) else path_or_session
    x = images.detach().cpu().numpy() if isinstance(images, torch.Tensor) else np.asarray(images)
    name = session.get_inputs()[0].name
    return session.run(None, {name: x.astype(np.float32, copy=False)})[0]


def check_onnx(
    model: nn.Module | str | os.PathLike | tuple[nn.Module, dict],
    onnx_path: str | os.PathLike,
    batch: int | torch.Tensor = 4,
    seed: int = 0,
) -> float:
    """Max absolute difference between torch's and onnxruntime's logits on the same batch.

    ``batch`` is a batch size (random normalised images of the exported size are drawn with
    ``seed``) or a batch tensor ``(N, 3, H, W)``. Differences around 1e-6 are float rounding;
    anything above 1e-4 means the export changed the computation.
    """
    module, _ = _resolve(model)
    session = onnx_session(onnx_path)
    if isinstance(batch, torch.Tensor):
        x = batch.float().cpu()
    else:
        if not isinstance(batch, int) or batch < 1:
            raise ValueError(f"batch={batch!r}: pass a batch size >= 1 or an image tensor (N, 3, H, W)")
        shape = session.get_inputs()[0].shape
        size = shape[-1] if isinstance(shape[-1], int) else _img_size(module, None, None)
        x = torch.randn(batch, 3, size, size, generator=torch.Generator().manual_seed(seed))
    from dflib.checkpoint import unwrap

    module = unwrap(module)
    was_training = module.training
    device = next(module.parameters()).device
    module.eval()
    try:
        with torch.inference_mode():
            ref = module(x.to(device)).float().cpu().numpy()
    finally:
        module.train(was_training)
    out = run_onnx(session, x)
    if out.shape != ref.shape:
        raise ValueError(f"ONNX output shape {out.shape} differs from torch's {ref.shape}")
    return float(np.abs(out.astype(np.float64) - ref.astype(np.float64)).max())


__all__ = [
    "export_onnx",
    "check_onnx",
    "onnx_metadata",
    "onnx_session",
    "run_onnx",
    "OnnxUnavailableError",
    "DEFAULT_OPSET",
    "INSTALL_HINT",
]
