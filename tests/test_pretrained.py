"""ImageNet initialisation, offline: random state dicts of the right shapes stand in for the real files.

No test downloads anything: ``TORCH_HOME`` (torchvision's cache) and ``HOME`` (pytorchcv's
``~/.torch/models``) point into a temporary folder, and the download functions are replaced by
ones that raise the network error an offline machine gives.
"""

from __future__ import annotations

import json
import urllib.error
from pathlib import Path

import pytest
import torch
import torchvision.models as tvm

from dflib.cli import main
from dflib.models import create_model
from dflib.models.pretrained import (
    PretrainedWeightsMissing,
    imagenet_init,
    imagenet_source,
    pytorchcv_cache_dir,
    torchvision_cache_dir,
)
from dflib.training import fit
from tests.conftest import make_dataset


def _offline(*args, **kwargs):
    raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")


@pytest.fixture
def caches(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setattr(torch.hub, "download_url_to_file", _offline)
    return tmp_path


def _place_resnet18(seed: int = 1) -> dict[str, torch.Tensor]:
    torch.manual_seed(seed)
    state = tvm.resnet18(weights=None).state_dict()
    folder = torchvision_cache_dir()
    folder.mkdir(parents=True, exist_ok=True)
    torch.save(state, folder / "resnet18-f37072fd.pth")
    return state


def test_sources_cover_the_reference_architectures():
    assert imagenet_source(create_model("resnet50"))["weights"] == "ResNet50_Weights.IMAGENET1K_V1"
    assert imagenet_source(create_model("vit_base_patch16_224", img_size=128))["model"] == "vit_b_16"
    assert imagenet_source(create_model("sqnxt23v5_w2"))["model"] == "sqnxt23v5_w2"
    for name, hint in (
        ("resnet18_w16", "full-width"),
        ("vit_tiny_patch16_224", "ViT-B/16"),
        ("vit_face_conv_128", "patch stem"),
    ):
        with pytest.raises(ValueError, match=hint):
            imagenet_source(create_model(name))


def test_torchvision_weights_from_the_cache_all_but_the_head(caches):
    state = _place_resnet18()
    model = create_model("resnet18")
    head = model.head.weight.clone()
    source = imagenet_init(model)
    assert source == {
        "method": "imagenet",
        "library": "torchvision",
        "model": "resnet18",
        "weights": "ResNet18_Weights.IMAGENET1K_V1",
    }
    assert torch.equal(model.stem.conv.weight, state["conv1.weight"])
    assert torch.equal(model.stage4[1].bn2.running_var, state["layer4.1.bn2.running_var"])
    assert torch.equal(model.head.weight, head)  # the one-logit head keeps its own initialisation


def test_pytorchcv_weights_from_the_cache(caches):
    from pytorchcv.models.common.model_store import get_model_name_suffix_data

    from dflib.models import build_reference

    torch.manual_seed(2)
    state = build_reference("sqnxt23_w1", num_classes=1000, img_size=224).state_dict()
    error, sha1, _ = get_model_name_suffix_data("sqnxt23_w1")
    folder = pytorchcv_cache_dir()
    assert str(folder).startswith(str(caches))
    folder.mkdir(parents=True)
    torch.save(state, folder / f"sqnxt23_w1-{error}-{sha1[:8]}.pth")
    model = create_model("sqnxt23_w1", img_size=64)
    assert imagenet_init(model)["library"] == "pytorchcv"
    assert torch.equal(model.stem.conv.conv.weight, state["features.init_block.conv.conv.weight"])


def test_vit_position_embeddings_are_resampled(caches):
    torch.manual_seed(3)
    ref = tvm.vit_b_16(weights=None)
    folder = torchvision_cache_dir()
    folder.mkdir(parents=True)
    torch.save(ref.state_dict(), folder / "vit_b_16-c867db91.pth")
    model = create_model("vit_base_patch16_224", img_size=64)
    imagenet_init(model)
    assert model.embed.pos_embed.shape[1] == 1 + 16
    assert torch.equal(model.blocks[11].attn.qkv.weight, ref.encoder.layers[11].self_attention.in_proj_weight)


def test_offline_message_names_the_file_and_the_folder(caches):
    with pytest.raises(PretrainedWeightsMissing) as e:
        imagenet_init(create_model("resnet18"))
    text = str(e.value)
    assert "resnet18-f37072fd.pth" in text and str(torchvision_cache_dir()) in text
    assert "https://download.pytorch.org/models/resnet18-f37072fd.pth" in text

    import pytorchcv.models.common.model_store as store

    monkey = pytest.MonkeyPatch()
    monkey.setattr(store, "_download", _offline)
    try:
        with pytest.raises(PretrainedWeightsMissing, match=r"sqnxt23_w1-.*\.pth .*\.torch/models"):
            imagenet_init(create_model("sqnxt23_w1"))
    finally:
        monkey.undo()


def test_fit_records_the_initialisation_in_the_card(caches):
    state = _place_resnet18()
    data = make_dataset(caches / "data", per_class=4)
    r = fit(
        model="resnet18",
        init="imagenet",
        data_dir=str(data),
        img_size=32,
        epochs=1,
        batch_size=4,
        workers=0,
        progress=False,
        out=str(caches / "out"),
        lr=1e-9,
        warmup_epochs=0,
    )
    card = json.loads(Path(f"{r.paths.best}.json").read_text())
    assert card["training"]["init"]["weights"] == "ResNet18_Weights.IMAGENET1K_V1"
    assert card["training"]["config"]["init"] == "imagenet"
    assert torch.allclose(r.model.stem.conv.weight, state["conv1.weight"], atol=1e-6)  # lr ~0: barely moved


def test_cli_init_imagenet_offline_exits_2(caches, capsys):
    data = make_dataset(caches / "data", per_class=2)
    code = main(
        [
            "train",
            "--model",
            "resnet18",
            "--init",
            "imagenet",
            "--data",
            str(data),
            "--epochs",
            "1",
            "--img-size",
            "32",
            "--workers",
            "0",
            "--no-progress",
            "--out",
            str(caches / "out"),
        ]
    )
    err = capsys.readouterr().err
    assert code == 2
    assert "resnet18-f37072fd.pth are not in the cache" in err and "hub/checkpoints" in err
    assert err.count("\n") == 1  # one clear line, no traceback
