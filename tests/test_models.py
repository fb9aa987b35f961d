"""dflib.models: parameter counts, equivalence with torchvision/pytorchcv, MACs, shapes, registry.

pytorchcv (SqueezeNeXt reference) is a test-only dependency: those tests skip without it.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from torch import nn

from dflib.models import (
    BasicBlock,
    Bottleneck,
    EncoderBlock,
    MultiHeadSelfAttention,
    ResNet,
    SqueezeNeXt,
    SqueezeNeXtUnit,
    ViT,
    allowed_overrides,
    build_reference,
    count_macs,
    count_parameters,
    create_model,
    create_model_from_config,
    list_models,
    load_reference_weights,
    resize_pos_embed,
    summary,
)

# Published parameter counts, 1000 classes, 224 px (torchvision, pytorchcv, ViT papers).
PARAM_COUNTS = {
    "sqnxt23_w1": 724_056,
    "sqnxt23v5_w1": 921_816,
    "sqnxt23_w2": 2_583_752,
    "resnet18": 11_689_512,
    "resnet34": 21_797_672,
    "resnet50": 25_557_032,
    "vit_tiny_patch16_224": 5_717_416,
    "vit_small_patch16_224": 22_050_664,
    "vit_base_patch16_224": 86_567_656,
}
BIG = {"vit_small_patch16_224", "vit_base_patch16_224", "resnet50"}


pytestmark = pytest.mark.usefixtures("one_thread")


def needs_reference(name: str) -> None:
    if name.startswith("sqnxt"):
        pytest.importorskip("pytorchcv", reason="SqueezeNeXt reference needs pytorchcv (pip install pytorchcv)")


@torch.no_grad()
def make_nontrivial_(model: nn.Module, img_size: int, seed: int = 0) -> nn.Module:
    """Give a randomly initialised reference weights that really test every layer.

    BatchNorm: random affine parameters, running statistics calibrated on random data (so the
    activations stay O(1); pytorchcv's init alone reaches 1e5) and then perturbed, so eval-mode
    BN is far from the identity. LayerNorm: random affine. torchvision's ViT starts with a zero
    class token and a zero head, which would make any two ViTs agree: randomise them too.
    """
    g = torch.Generator().manual_seed(seed)

    def rand_like(t: torch.Tensor, low: float, high: float) -> torch.Tensor:
        return torch.rand(t.shape, generator=g) * (high - low) + low

    bns = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    for m in model.modules():
        if isinstance(m, (nn.BatchNorm2d, nn.LayerNorm)):
            m.weight.copy_(rand_like(m.weight, 0.5, 1.5))
            m.bias.copy_(rand_like(m.bias, -0.2, 0.2))
    if bns:
        for bn in bns:
            bn.reset_running_stats()
            bn.momentum = None  # cumulative average: running stats = this batch's stats
        model.train()
        model(torch.randn(4, 3, img_size, img_size, generator=g))
        for bn in bns:
            bn.momentum = 0.1
            bn.running_var.mul_(rand_like(bn.running_var, 0.7, 1.4))
            bn.running_mean.add_(rand_like(bn.running_mean, -0.2, 0.2) * bn.running_var.sqrt())
    for name, p in model.named_parameters():
        if name in {"class_token", "heads.head.weight"}:
            p.copy_(torch.randn(p.shape, generator=g) * 0.2)
    return model.eval()


def test_list_models_has_every_preset() -> None:
    names = list_models()
    assert names == sorted(names)
    extra = ["sqnxt23_w3d2", "sqnxt23v5_w3d2", "sqnxt23v5_w2", "vit_face_p8_128", "vit_face_conv_128", "resnet18_w32"]
    for n in [*PARAM_COUNTS, *extra]:
        assert n in names


@pytest.mark.parametrize("name", list(PARAM_COUNTS))
def test_parameter_count_matches_published(name: str) -> None:
    assert count_parameters(create_model(name, num_classes=1000)) == PARAM_COUNTS[name]


@pytest.mark.parametrize(
    ("name", "img_size", "tol"),
    [
        ("sqnxt23_w1", 224, 1e-5),
        ("sqnxt23v5_w1", 224, 1e-5),
        ("sqnxt23_w3d2", 128, 1e-5),  # pytorchcv's fixed 7x7 pool swapped for adaptive pooling
        ("resnet18", 224, 1e-5),
        ("resnet34", 160, 1e-5),
        ("resnet50", 224, 1e-5),
        ("vit_tiny_patch16_224", 224, 1e-4),
        ("vit_tiny_patch16_224", 128, 1e-4),
        ("vit_small_patch16_224", 224, 1e-4),
        ("vit_base_patch16_224", 224, 1e-4),
        ("vit_face_p8_128", 128, 1e-4),
    ],
)
def test_outputs_match_reference(name: str, img_size: int, tol: float) -> None:
    needs_reference(name)
    torch.manual_seed(0)
    ref = make_nontrivial_(build_reference(name, num_classes=1, img_size=img_size), img_size)
    ours = load_reference_weights(create_model(name, img_size=img_size), ref).eval()
    x = torch.randn(2, 3, img_size, img_size)
    with torch.no_grad():
        expected, got = ref(x).squeeze(1), ours(x)
    assert got.shape == (2,)
    assert expected.abs().max() > 0.05  # the comparison is not between two zeros
    assert (got - expected).abs().max().item() <= tol


# (name, published MACs at 224 px, tolerance vs published). FlopCounterMode counts convolutions
# and matrix multiplies only; sqnxt23_w1's ~287 M (pytorchcv's table) also counts bias/BN/ReLU
# element-wise work (~13 M here), so it gets 5 %; the others are published as conv/matmul MACs.
PUBLISHED_MACS = [
    ("resnet18", 1.82e9, 0.02),
    ("sqnxt23_w1", 287e6, 0.05),
    ("vit_base_patch16_224", 17.56e9, 0.02),
]


@pytest.mark.parametrize(("name", "published", "rel"), PUBLISHED_MACS)
def test_macs_match_reference_and_published(name: str, published: float, rel: float) -> None:
    needs_reference(name)
    ours = count_macs(create_model(name, num_classes=1000), 224)
    theirs = count_macs(build_reference(name, num_classes=1000), 224)
    assert ours == pytest.approx(theirs, rel=0.02)
    assert ours == pytest.approx(published, rel=rel)


@pytest.mark.parametrize("name", list_models())
def test_forward_backward_every_preset(name: str) -> None:
    """Any input size works and gives one logit per image; every parameter gets a gradient."""
    torch.manual_seed(0)
    model = create_model(name).train()
    batch = 1 if name in BIG else 2
    for size in (64, 128, 256):
        model.zero_grad(set_to_none=True)
        out = model(torch.randn(batch, 3, size, size))
        assert out.shape == (batch,)
        out.sum().backward()
        missing = [n for n, p in model.named_parameters() if p.grad is None]
        assert not missing, f"no gradient at {size}px for {missing[:3]}"
        assert all(torch.isfinite(p.grad).all() for p in model.parameters())


def test_multiclass_output_shape() -> None:
    assert create_model("resnet18_w16", num_classes=2)(torch.randn(3, 3, 64, 64)).shape == (3, 2)


@pytest.mark.parametrize("name", ["sqnxt23_w1", "resnet18_w16", "vit_face_p8_128"])
def test_named_stages_and_summary(name: str) -> None:
    model = create_model(name).eval()
    x = torch.randn(2, 3, 96, 96)
    y = x
    with torch.no_grad():
        for _, stage in model.named_stages():
            y = stage(y)
        assert torch.allclose(y.squeeze(-1), model(x), atol=1e-6)  # stages reproduce forward
    table = summary(model, 96)
    assert list(table.columns) == ["name", "output_shape", "params", "macs"]
    body, total = table.iloc[:-1], table.iloc[-1]
    assert list(body["name"]) == [n for n, _ in model.named_stages()]
    assert body["params"].sum() == total["params"] == count_parameters(model)
    assert body["macs"].sum() == total["macs"] == count_macs(model, 96)
    assert total["output_shape"] == (1,)


@pytest.mark.parametrize(
    ("name", "shape"),
    [
        ("sqnxt23_w1", (128, 4, 4)),  # final_block: (N, C, H/32, W/32) at 128 px
        ("resnet18_w16", (128, 4, 4)),  # stage4
        ("vit_face_p8_128", (1 + 16 * 16, 192)),  # blocks[-1].norm1: class token + a 16 x 16 grid of tokens
    ],
)
def test_cam_layer_is_last_feature_map(name: str, shape: tuple[int, ...]) -> None:
    """``cam_layer`` is the very module Grad-CAM hooks: its output is the spatial map (or token grid)."""
    model = create_model(name).eval()
    seen = []
    handle = model.cam_layer.register_forward_hook(lambda m, i, o: seen.append(o.shape))
    model(torch.randn(1, 3, 128, 128))
    handle.remove()
    assert len(seen) == 1 and tuple(seen[0]) == (1, *shape)


def test_registry_errors_name_the_valid_choices() -> None:
    with pytest.raises(ValueError, match="resnet18"):
        create_model("resnet19")
    with pytest.raises(ValueError, match="width"):
        create_model("resnet18", widht=32)
    with pytest.raises(ValueError, match="width"):
        create_model("resnet18", width=-1)
    with pytest.raises(ValueError, match="num_classes"):
        create_model("resnet18", num_classes=0)
    with pytest.raises(ValueError, match="img_size"):
        create_model("vit_face_p8_128", img_size="big")
    with pytest.raises(ValueError, match="divisible"):
        create_model("vit_tiny_patch16_224", num_heads=5)
    assert "depth" in allowed_overrides("vit_face_p8_128")


def test_overrides_and_config_round_trip() -> None:
    model = create_model("resnet18", width=32, img_size=128)
    assert isinstance(model, ResNet)
    assert count_parameters(model) == count_parameters(create_model("resnet18_w32"))
    config = json.loads(json.dumps(model.config))  # survives a JSON model card
    assert config == {"name": "resnet18", "num_classes": 1, "img_size": 128, "overrides": {"width": 32}}
    rebuilt = create_model_from_config(config)
    assert {k: v.shape for k, v in rebuilt.state_dict().items()} == {k: v.shape for k, v in model.state_dict().items()}
    vit = create_model("vit_face_p8_128", depth=4, img_size=96)
    assert isinstance(vit, ViT) and len(vit.blocks) == 4 and vit.embed.pos_embed.shape == (1, 1 + 12 * 12, 192)
    assert isinstance(create_model("sqnxt23v5_w1", blocks=(1, 1, 1, 1)), SqueezeNeXt)


def test_position_embedding_interpolation() -> None:
    torch.manual_seed(0)
    pos = torch.randn(1, 1 + 14 * 14, 8)
    assert resize_pos_embed(pos, (14, 14)) is pos
    small = resize_pos_embed(pos, (8, 8))
    assert small.shape == (1, 65, 8) and torch.equal(small[:, 0], pos[:, 0])  # class token untouched
    # Resampling is spatial: a left-to-right ramp stays a left-to-right ramp (same in every row,
    # increasing along it, within the original range up to bicubic overshoot at the borders).
    ramp = torch.linspace(0, 1, 14).repeat(14, 1).reshape(1, 196, 1)
    resized = resize_pos_embed(torch.cat([torch.zeros(1, 1, 1), ramp], 1), (28, 28))[0, 1:, 0].reshape(28, 28)
    assert torch.allclose(resized, resized[:1].expand(28, -1), atol=1e-6)
    assert (resized[0, 1:] > resized[0, :-1]).all() and resized.min() > -0.02 and resized.max() < 1.02

    # Loading 224-px weights into a 128-px model resamples them, and the result equals the
    # 224-px model run on 128-px input (which resamples on the fly).
    big = create_model("vit_tiny_patch16_224", depth=2).eval()
    small_model = create_model("vit_tiny_patch16_224", depth=2, img_size=128)
    small_model.load_state_dict(big.state_dict())
    assert torch.equal(small_model.embed.pos_embed, resize_pos_embed(big.embed.pos_embed, (8, 8)))
    x = torch.randn(2, 3, 128, 128)
    with torch.no_grad():
        assert torch.allclose(small_model.eval()(x), big(x), atol=1e-6)

    # Converting reference weights built for another size resamples the same way.
    ref = build_reference("vit_face_p8_128", num_classes=1, img_size=128)
    ours = load_reference_weights(create_model("vit_face_p8_128", img_size=64), ref)
    assert torch.equal(ours.embed.pos_embed, resize_pos_embed(ref.encoder.pos_embedding, (8, 8)))


def test_attention_maps_path_equals_sdpa_path() -> None:
    torch.manual_seed(0)
    model = create_model("vit_face_p8_128", depth=3).eval()
    with torch.no_grad():
        model.head.weight.normal_()
    x = torch.randn(2, 3, 64, 64)
    probed = []
    handle = model.blocks[0].attn.attn_probe.register_forward_hook(lambda m, i, o: probed.append(o))
    with torch.no_grad():
        fast = model(x)
        fast_tokens = model.forward_features(x)
        assert not probed  # the SDPA path computes no maps
        slow_tokens, maps = model.forward_features(x, need_weights=True)
        assert len(probed) == 1
        maps_again = model.attention_maps(x)
    handle.remove()
    assert fast_tokens.shape == (2, 65, 192)  # (N, T, D), T = 1 + 8*8
    assert torch.allclose(fast_tokens, slow_tokens, atol=1e-5)
    assert torch.allclose(fast, model.format_logits(model.head(model.pool(slow_tokens))), atol=1e-5)
    assert len(maps) == 3 and maps[0].shape == (2, 3, 65, 65)  # (N, heads, 1 + 8*8, 1 + 8*8)
    assert torch.allclose(maps[0].sum(-1), torch.ones(2, 3, 65), atol=1e-5)
    assert torch.equal(probed[0], maps[0])
    assert len(maps_again) == 3 and all(torch.equal(a, b) for a, b in zip(maps, maps_again))
    assert not any(hasattr(a, "keep_attention") or hasattr(a, "last_attention") for a in model.attention_modules())


def test_need_weights_gives_the_softmax_the_sdpa_path_applies() -> None:
    torch.manual_seed(0)
    n, length, dim, heads = 2, 7, 24, 4
    attn = MultiHeadSelfAttention(dim, heads).eval()
    x = torch.randn(n, length, dim)
    with torch.no_grad():
        fast = attn(x)
        out, weights = attn(x, need_weights=True)
        assert isinstance(fast, torch.Tensor) and fast.shape == (n, length, dim)
        assert weights.shape == (n, heads, length, length)
        assert (weights >= 0).all() and torch.allclose(weights.sum(-1), torch.ones(n, heads, length), atol=1e-6)
        assert torch.allclose(out, fast, atol=1e-6)
        # They are softmax(q k^T / sqrt(d)), and recombining the values with them gives the SDPA output.
        q, k, v = attn.qkv(x).reshape(n, length, 3, heads, dim // heads).permute(2, 0, 3, 1, 4)
        expected = (q @ k.transpose(-2, -1) / math.sqrt(dim // heads)).softmax(dim=-1)
        assert torch.allclose(weights, expected, atol=1e-6)
        recombined = attn.proj((weights @ v).transpose(1, 2).reshape(n, length, dim))
        assert torch.allclose(recombined, fast, atol=1e-6)
        # The same weights as torch's own attention with the same parameters (per head, not averaged).
        mha = nn.MultiheadAttention(dim, heads, batch_first=True).eval()
        mha.in_proj_weight.copy_(attn.qkv.weight)
        mha.in_proj_bias.copy_(attn.qkv.bias)
        mha.out_proj.load_state_dict(attn.proj.state_dict())
        theirs, their_weights = mha(x, x, x, need_weights=True, average_attn_weights=False)
        assert torch.allclose(their_weights, weights, atol=1e-6) and torch.allclose(theirs, fast, atol=1e-5)

        block = EncoderBlock(dim, heads).eval()
        y_fast = block(x)
        y, block_weights = block(x, need_weights=True)
        assert isinstance(y_fast, torch.Tensor) and torch.allclose(y, y_fast, atol=1e-6)
        assert torch.equal(block_weights, block.attn(block.norm1(x), need_weights=True)[1])


@pytest.mark.parametrize("name", ["sqnxt23_w1", "resnet18_w16", "vit_face_p8_128"])
def test_forward_sets_no_module_attributes(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Attention maps are returned, not stashed: no ``nn.Module`` attribute is set during a forward pass."""
    model = create_model(name, img_size=32).eval()
    x = torch.randn(1, 3, 32, 32)
    calls: list[str] = []
    original = nn.Module.__setattr__

    def spy(self: nn.Module, key: str, value: object) -> None:
        calls.append(f"{type(self).__name__}.{key}")
        original(self, key, value)

    monkeypatch.setattr(nn.Module, "__setattr__", spy)
    model.probe_flag = True  # the spy sees attribute assignments
    assert calls == [f"{type(model).__name__}.probe_flag"]
    calls.clear()
    with torch.no_grad():
        model(x)
        if isinstance(model, ViT):
            model.forward_features(x, need_weights=True)
            model.attention_maps(x)
    monkeypatch.undo()
    assert calls == []


def _randomise_batchnorm_(module: nn.Module, seed: int = 0) -> None:
    """Random BN affine parameters and running statistics, so eval-mode BN is far from the identity."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for bn in module.modules():
            if isinstance(bn, nn.BatchNorm2d):
                for t, low, high in [
                    (bn.weight, 0.5, 1.5),
                    (bn.bias, -0.5, 0.5),
                    (bn.running_mean, -0.5, 0.5),
                    (bn.running_var, 0.5, 2.0),
                ]:
                    t.copy_(torch.rand(t.shape, generator=g) * (high - low) + low)


@pytest.mark.parametrize(
    ("block_cls", "in_channels", "channels", "stride", "identity"),
    [
        (BasicBlock, 8, 8, 1, True),
        (BasicBlock, 8, 16, 2, False),
        (Bottleneck, 32, 8, 1, True),  # 8 * expansion 4 = 32 output channels
        (Bottleneck, 16, 8, 2, False),
        (SqueezeNeXtUnit, 16, 16, 1, True),
        (SqueezeNeXtUnit, 32, 16, 1, False),  # fewer channels out than in: squeeze by 4, projection shortcut
        (SqueezeNeXtUnit, 16, 32, 2, False),
    ],
)
def test_residual_plus_shortcut_reproduces_forward(
    block_cls: type[nn.Module], in_channels: int, channels: int, stride: int, identity: bool
) -> None:
    torch.manual_seed(0)
    block = block_cls(in_channels, channels, stride)
    _randomise_batchnorm_(block)
    block.eval()
    x = torch.randn(2, in_channels, 8, 8)
    with torch.no_grad():
        expected = block(x)
        got = block.relu(block.residual(x) + block.shortcut(x))
    assert torch.equal(got, expected)
    assert isinstance(block.shortcut, nn.Identity) == identity
    assert expected.shape[-1] == 8 // stride


def test_forward_features_are_the_tokens_before_pooling() -> None:
    torch.manual_seed(0)
    model = create_model("vit_face_conv_128", img_size=64).eval()
    with torch.no_grad():
        model.head.weight.normal_()
        x = torch.randn(2, 3, 64, 64)
        tokens = model.forward_features(x)
        grid = 64 // model.patch_size
        assert tokens.shape == (2, 1 + grid * grid, 96)
        assert torch.equal(model.format_logits(model.head(model.pool(tokens))), model(x))


SHIPPED_CARDS = sorted((Path(__file__).resolve().parents[1] / "models").glob("*.json"))


@pytest.mark.skipif(not SHIPPED_CARDS, reason="no committed detectors in models/")
@pytest.mark.parametrize("card", SHIPPED_CARDS, ids=[c.stem for c in SHIPPED_CARDS])
def test_committed_detectors_still_load(card: Path) -> None:
    """The weights in models/*.safetensors load strictly: renaming code must not rename state_dict keys."""
    from dflib.checkpoint import load_detector

    model, loaded = load_detector(card)
    size = loaded.img_size
    with torch.no_grad():
        out = model(torch.randn(2, 3, size, size))
    assert out.shape == (2,) and torch.isfinite(out).all()


def test_input_channels_option_is_in_channels_everywhere() -> None:
    """One name for the input channels in every architecture; the old one is refused, naming the allowed ones."""
    assert create_model("vit_face_p8_128", in_channels=1).embed.proj.in_channels == 1
    assert create_model("resnet18_w16", in_channels=1).stem.conv.in_channels == 1
    for name in ("sqnxt23_w1", "resnet18_w16", "vit_face_conv_128"):
        assert "in_channels" in allowed_overrides(name) and "in_chans" not in allowed_overrides(name)
    with pytest.raises(ValueError, match="in_channels"):
        create_model("resnet18_w16", in_chans=1)


def test_load_reference_weights_reports_first_mismatch() -> None:
    r18, r34 = build_reference("resnet18", num_classes=1), build_reference("resnet34", num_classes=1)
    with pytest.raises(ValueError, match=r"stage1\.2\.conv1\.weight.*layer1\.2\.conv1\.weight"):
        load_reference_weights(create_model("resnet34"), r18)
    with pytest.raises(ValueError, match=r"layer1\.2\.conv1\.weight"):
        load_reference_weights(create_model("resnet18"), r34)
    with pytest.raises(ValueError, match=r"head\.weight.*\[1, 512\].*fc\.weight.*\[1000, 512\]"):
        load_reference_weights(create_model("resnet18"), build_reference("resnet18"))
    with pytest.raises(TypeError, match="VisionTransformer"):
        load_reference_weights(create_model("vit_face_p8_128"), r18)
    vit_ref = build_reference("vit_face_p8_128", num_classes=1, img_size=128)
    with pytest.raises(ValueError, match="heads"):
        load_reference_weights(create_model("vit_face_p8_128", num_heads=6), vit_ref)
    with pytest.raises(ValueError, match="no reference"):
        build_reference("resnet18_w32")
    with pytest.raises(ValueError, match="unknown model"):
        build_reference("resnet19")


def test_trainable_parameter_count() -> None:
    model = create_model("resnet18_w16")
    total = count_parameters(model)
    model.stem.requires_grad_(False)
    assert count_parameters(model, trainable_only=True) == total - count_parameters(model.stem)


def test_squeezenext_residual_init_starts_units_near_identity() -> None:
    from dflib.models.squeezenext import SqueezeNeXtUnit

    model = create_model("sqnxt23_w1", residual_init=0.2)
    gammas = [m.expand.bn.weight for m in model.modules() if isinstance(m, SqueezeNeXtUnit)]
    assert len(gammas) == 21 and all(torch.allclose(g, torch.full_like(g, 0.2)) for g in gammas)
    reference_like = create_model("sqnxt23_w1", residual_init=1.0)
    assert all(torch.all(m.expand.bn.weight == 1) for m in reference_like.modules() if isinstance(m, SqueezeNeXtUnit))
    with pytest.raises(ValueError, match="residual_init must be positive"):
        create_model("sqnxt23_w1", residual_init=0.0)


def test_vit_conv_stem_and_mean_pool_options() -> None:
    model = create_model("vit_face_p8_128", img_size=64, depth=2, embed_dim=48, num_heads=3, stem="conv", pool="mean")
    assert model.embed.grid == 8 and isinstance(model.embed.proj, torch.nn.Sequential)
    strides = [m.stride[0] for m in model.embed.proj.modules() if isinstance(m, torch.nn.Conv2d)]
    assert strides == [2, 2, 2, 1]  # three stride-2 3x3 convs = one 8 px patch per token, then 1x1
    x = torch.randn(2, 3, 64, 64, requires_grad=True)
    out = model(x)
    assert out.shape == (2,)
    out.sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()
    # mean pooling ignores the class token: changing it leaves the output unchanged
    model.eval()
    with torch.no_grad():
        before = model(x)
        model.embed.cls_token.add_(1.0)
        model.blocks = model.blocks[:0]  # with no blocks the class token cannot reach the patch tokens
        a = model(x)
        model.embed.cls_token.sub_(5.0)
        assert torch.allclose(a, model(x))
    assert before.shape == (2,)
    with pytest.raises(ValueError, match="power-of-two"):
        create_model("vit_face_p8_128", patch_size=6, stem="conv")
    with pytest.raises(ValueError, match="pool must be"):
        create_model("vit_face_p8_128", pool="max")
    with pytest.raises(ValueError, match="no torchvision reference"):
        build_reference("vit_face_conv_128")
    assert create_model("vit_face_conv_128").pool_type == "mean"
