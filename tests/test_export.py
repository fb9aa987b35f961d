"""ONNX export: onnxruntime must compute what torch computes (max |logit difference| <= 1e-4)."""

from __future__ import annotations

import sys

import pytest
import torch

from dflib.models import create_model

TOLERANCE = 1e-4
SIZE = 32  # small inputs keep the exports fast; the graph is the same at any size


def _have(*modules: str) -> bool:
    import importlib.util

    return all(importlib.util.find_spec(m) is not None for m in modules)


needs_onnx = pytest.mark.skipif(
    not _have("onnx", "onnxruntime"), reason="onnx/onnxruntime not installed: pip install 'dflib[onnx]'"
)
needs_onnxscript = pytest.mark.skipif(
    not _have("onnx", "onnxruntime", "onnxscript"),
    reason="onnxscript not installed (torch's dynamo exporter needs it): pip install 'dflib[onnx]'",
)


def trained_like(name: str, **kwargs) -> torch.nn.Module:
    """A freshly initialised preset whose head is rescaled so that logits span about +-4.

    At initialisation SqueezeNeXt's logits are in the thousands (its batch norms are still the
    identity), where float32 rounding alone is ~1e-3 in absolute terms; a trained detector's
    logits are a few units. Rescaling the head gives that range without training. (The ViT's
    head starts at zero, as in torchvision; it gets random weights first.)
    """
    torch.manual_seed(0)
    model = create_model(name, **kwargs).eval()
    with torch.no_grad():
        if not model.head.weight.any():
            torch.nn.init.normal_(model.head.weight, std=0.02)
        scale = model(torch.randn(8, 3, SIZE, SIZE)).abs().max() / 4
        model.head.weight /= scale
        model.head.bias /= scale
    return model


PRESETS = [("sqnxt23_w1", {}), ("resnet18_w16", {}), ("vit_face_p8_128", {"img_size": SIZE})]


@needs_onnx
@pytest.mark.parametrize("name,kwargs", PRESETS, ids=[p[0] for p in PRESETS])
def test_round_trip_torchscript_exporter(name, kwargs, tmp_path):
    from dflib.export import check_onnx, export_onnx, onnx_metadata

    model = trained_like(name, **kwargs)
    path = export_onnx(model, tmp_path / f"{name}.onnx", img_size=SIZE, dynamo=False)
    assert [p.name for p in tmp_path.iterdir()] == [f"{name}.onnx"]  # one self-contained file
    for batch in (1, 3):  # the batch axis is dynamic (the export used a batch of 2)
        assert check_onnx(model, path, batch) <= TOLERANCE
    meta = onnx_metadata(path)
    assert meta["img_size"] == SIZE and meta["exporter"] == "torchscript (legacy)" and meta["threshold"] == 0.5


@needs_onnxscript
def test_round_trip_dynamo_exporter_from_checkpoint(tmp_path):
    from dflib.checkpoint import save_detector
    from dflib.export import check_onnx, export_onnx, onnx_metadata, run_onnx

    model = trained_like("resnet18_w16", img_size=SIZE)
    card = {
        "name": "tiny",
        "architecture": model.config,
        "img_size": SIZE,
        "threshold": {"value": 0.42},
        "normalization": {"mean": [0.5, 0.5, 0.5], "std": [0.25, 0.25, 0.25]},
    }
    _, card_path = save_detector(model, tmp_path / "tiny", card)
    path = export_onnx(card_path, tmp_path / "tiny.onnx")  # size from the card, default exporter
    meta = onnx_metadata(path)
    assert meta["exporter"] == "torch.export (dynamo)"
    assert meta["name"] == "tiny" and meta["threshold"] == 0.42 and meta["mean"] == [0.5, 0.5, 0.5]
    assert check_onnx(card_path, path, 5) <= TOLERANCE
    x = torch.randn(2, 3, SIZE, SIZE)
    with torch.no_grad():
        torch.testing.assert_close(torch.from_numpy(run_onnx(path, x)), model(x), atol=TOLERANCE, rtol=0)


@needs_onnx
def test_bad_inputs(tmp_path):
    from dflib.export import check_onnx, export_onnx

    model = create_model("resnet18_w16", img_size=SIZE)
    model.config["img_size"] = None
    with pytest.raises(ValueError, match="img_size"):
        export_onnx(model, tmp_path / "m.onnx")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        check_onnx(model, tmp_path / "missing.onnx")


def test_missing_packages_give_the_install_command(monkeypatch, tmp_path):
    from dflib.export import OnnxUnavailableError, export_onnx

    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import onnxruntime now raises ImportError
    with pytest.raises(OnnxUnavailableError, match=r"pip install 'dflib\[onnx\]'"):
        export_onnx(create_model("resnet18_w16", img_size=SIZE), tmp_path / "m.onnx")
