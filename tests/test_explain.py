"""Grad-CAM and attention rollout on toy models whose answer is known, and on the real presets."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from dflib.explain import attention_rollout, explain, grad_cam, overlay, rollout
from dflib.models import create_model


class TopRightOnly(nn.Module):
    """Zero every activation outside the top-right quadrant (rows < H/2, cols >= W/2)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mask = torch.zeros_like(x)
        h, w = x.shape[-2:]
        mask[..., : h // 2, w // 2 :] = 1
        return x * mask


class QuadrantNet(nn.Module):
    """A conv net that can only see the top-right quadrant: logit = mean of the masked activations.

    Top-right (not top-left) so that swapping height and width would be caught.
    """

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.features = nn.Sequential(nn.Conv2d(3, 8, 3, stride=4, padding=1), nn.ReLU(inplace=True), TopRightOnly())
        self.head = nn.Linear(8, 1)
        nn.init.constant_(self.head.weight, 1.0)  # more activation anywhere = more "fake"

    @property
    def cam_layer(self) -> nn.Module:
        return self.features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x).mean(dim=(2, 3))).squeeze(-1)


def _quadrant_mass(maps: torch.Tensor) -> torch.Tensor:
    h, w = maps.shape[-2:]
    return maps[:, : h // 2, w // 2 :].sum(dim=(1, 2)) / maps.sum(dim=(1, 2))


def test_grad_cam_finds_the_only_quadrant_the_model_sees():
    model = QuadrantNet().train()
    x = torch.rand(3, 3, 64, 64)
    cam = grad_cam(model, x)
    assert cam.shape == (3, 64, 64) and cam.dtype == torch.float32
    assert float(cam.min()) >= 0 and float(cam.max()) == pytest.approx(1.0)
    assert (_quadrant_mass(cam) > 0.95).all()  # only bilinear upsampling bleeds over the edge
    assert model.training  # the caller's mode is restored
    # there is no evidence for "real" anywhere: an all-zero map, not NaN
    real = grad_cam(model, x, target="real")
    assert torch.equal(real, torch.zeros_like(real))


def test_grad_cam_formula_on_an_identity_layer():
    # cam layer = the input itself (C=2, 2x2), logit = v . mean_hw(A): dlogit/dA_c = v_c / 4 everywhere,
    # so the channel weights are v / 4 and cam = ReLU(v0/4 * A0 + v1/4 * A1).
    class Linear(nn.Module):
        def __init__(self):
            super().__init__()
            self.cam = nn.Identity()
            self.v = torch.tensor([2.0, -1.0])

        @property
        def cam_layer(self):
            return self.cam

        def forward(self, x):
            return (self.cam(x).mean(dim=(2, 3)) * self.v).sum(1)

    a = torch.tensor([[[[1.0, 2.0], [0.0, 4.0]], [[1.0, 0.0], [4.0, 0.0]]]])
    expected = torch.relu(0.5 * a[0, 0] - 0.25 * a[0, 1])  # [[0.25, 1], [0, 2]]
    np.testing.assert_allclose(grad_cam(Linear(), a)[0].numpy(), (expected / expected.max()).numpy(), rtol=1e-6)


def test_rollout_follows_the_residual_and_attention_paths():
    # tokens: 0 = CLS, 1..4 = a 2x2 patch grid. One block in which CLS attends only to patch 3:
    # 0.5 * A + 0.5 * I gives CLS row [0.5, 0, 0, 0.5, 0] -> all patch mass on patch 3.
    a = torch.eye(5)
    a[0] = torch.tensor([0.0, 0, 0, 1, 0])
    out = rollout([a.expand(1, 2, 5, 5)])
    np.testing.assert_allclose(out[0].numpy(), [0, 0, 0.5, 0], atol=1e-7)
    # Two blocks: in block 1 patch 2 (token 2) takes everything from patch 4 (token 4); in block 2 CLS
    # attends only to token 2. CLS row = 0.5 e_cls + 0.5 (0.5 e_2 + 0.5 e_4): patches 2 and 4 get 1/4 each.
    a1, a2 = torch.eye(5), torch.eye(5)
    a1[2] = torch.tensor([0.0, 0, 0, 0, 1])
    a2[0] = torch.tensor([0.0, 0, 1, 0, 0])
    out = rollout([a1[None, None], a2[None, None]])
    np.testing.assert_allclose(out[0].numpy(), [0, 0.25, 0, 0.25], atol=1e-7)
    # heads are averaged: one head on patch 1, one on patch 4 -> equal mass
    h = torch.eye(5).repeat(1, 2, 1, 1)
    h[0, 0, 0], h[0, 1, 0] = torch.tensor([0.0, 1, 0, 0, 0]), torch.tensor([0.0, 0, 0, 0, 1])
    out = rollout([h])
    assert out[0, 0] == pytest.approx(0.25) and out[0, 3] == pytest.approx(0.25)


def test_attention_rollout_peaks_where_the_vit_attends():
    # A real 2-block ViT whose attention is overwritten through the attn_probe hook: the class token
    # attends only to one patch, every patch only to itself.
    model = create_model("vit_face_p8_128", img_size=32, depth=2)  # 4x4 grid of 8 px patches
    target = 6  # patch row 1, column 2

    def force(_m, _inp, attn):
        attn = torch.zeros_like(attn) + torch.eye(attn.shape[-1])
        attn[:, :, 0] = 0
        attn[:, :, 0, 1 + target] = 1
        return attn

    handles = [m.attn_probe.register_forward_hook(force) for m in model.attention_modules()]
    try:
        heat = attention_rollout(model, torch.randn(2, 3, 32, 32))
    finally:
        for hd in handles:
            hd.remove()
    assert heat.shape == (2, 32, 32)
    peak = np.unravel_index(int(heat[0].argmax()), (32, 32))
    assert peak[0] // 8 == 1 and peak[1] // 8 == 2


@pytest.mark.parametrize("name", ["sqnxt23_w1", "resnet18_w16", "vit_face_p8_128"])
def test_explain_runs_on_the_presets(name):
    torch.manual_seed(0)
    model = create_model(name, img_size=64)
    if name.startswith("vit"):  # its head starts at zero (no gradient to explain yet): give it weights
        torch.nn.init.normal_(model.head.weight, std=0.1)
    x = torch.randn(2, 3, 64, 64)
    with torch.inference_mode():  # as a caller scoring images would be
        heat = explain(model, x)
    assert heat.shape == (2, 64, 64) and torch.isfinite(heat).all()
    assert float(heat.min()) >= 0 and float(heat.max()) <= 1
    one = explain(model, x[0])
    assert one.shape == (1, 64, 64)
    if name.startswith("vit"):
        assert torch.allclose(heat, attention_rollout(model, x))
        cam = grad_cam(model, x)  # Grad-CAM also works on tokens (the last block's attention input)
        assert cam.shape == (2, 64, 64) and float(cam.amax(dim=(1, 2)).min()) == pytest.approx(1.0)
        # cam_layer is the hooked module itself, no special case: the last block's norm1, as it always was
        assert model.cam_layer is model.blocks[-1].norm1
        assert torch.equal(cam, grad_cam(model, x, layer=model.blocks[-1].norm1))
    else:
        assert torch.equal(heat, grad_cam(model, x, layer=model.cam_layer))
        with pytest.raises(ValueError, match="grad_cam"):
            attention_rollout(model, x)


def test_overlay_shapes_and_errors():
    img = torch.rand(3, 40, 30)
    heat = torch.zeros(10, 10)
    out = overlay(img, heat)
    assert out.shape == (40, 30, 3) and out.dtype == np.uint8
    u8 = (np.random.default_rng(0).random((20, 20, 3)) * 255).astype(np.uint8)
    assert np.array_equal(overlay(u8, np.ones((20, 20)), alpha=0.0), u8)
    assert len(np.unique(overlay(u8, np.ones((20, 20)), alpha=1.0).reshape(-1, 3), axis=0)) == 1  # one colour
    with pytest.raises(ValueError, match="denormalize"):
        overlay(torch.randn(3, 8, 8) * 3, heat)
    with pytest.raises(ValueError, match="2-D"):
        overlay(u8, np.ones((2, 3, 4)))
    with pytest.raises(ValueError, match="normalised"):
        explain(create_model("resnet18_w16"), torch.rand(8, 8))


def test_rollout_of_a_mean_pooled_vit_averages_the_patch_rows():
    # tokens: 0 = CLS, 1..4 patches. Every patch attends only to token 2, CLS only to token 4.
    # 0.5 A + 0.5 I: each patch row is 0.5 on itself + 0.5 on token 2 (token 2's row: 1.0 on itself).
    # Mean of the 4 patch rows: token 2 gets (0.5 * 3 + 1) / 4 = 0.625, the others 0.5 / 4 = 0.125.
    # The CLS row would say token 4 (0.5).
    a = torch.zeros(5, 5)
    a[1:, 2] = 1
    a[0, 4] = 1
    np.testing.assert_allclose(
        rollout([a[None, None]], query="mean")[0].numpy(), [0.125, 0.625, 0.125, 0.125], atol=1e-7
    )
    np.testing.assert_allclose(rollout([a[None, None]], query="cls")[0].numpy(), [0, 0, 0, 0.5], atol=1e-7)
    model = create_model("vit_face_p8_128", img_size=32, depth=1, pool="mean")
    assert explain(model, torch.randn(1, 3, 32, 32)).shape == (1, 32, 32)
    with pytest.raises(ValueError, match="query"):
        rollout([a[None, None]], query="max")


def test_randomization_test_separates_a_map_that_depends_on_the_weights():
    from dflib.explain import randomization_stages, randomization_test

    model = create_model("resnet18", img_size=32, width=8)
    stages = randomization_stages(model)
    assert stages[0] == "head" and stages[-1] == "stem"
    x = torch.rand(3, 3, 32, 32)
    before = [p.detach().clone() for p in model.parameters()]
    cascade = randomization_test(model, x, seed=0)
    assert list(cascade.columns) == ["step", "randomized", "image", "spearman"]
    assert len(cascade) == 3 * len(stages) and list(cascade["randomized"].unique()) == stages
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))  # the model itself is untouched
    all_at_once = randomization_test(model, x, cascade=False)
    assert set(all_at_once["randomized"]) == {"all layers"} and len(all_at_once) == 3
    with pytest.raises(ValueError, match="no layer"):
        randomization_test(model, x, stages=["nope"])


def test_rollout_ignores_the_head_and_grad_cam_does_not():
    from dflib.explain import randomization_test

    vit = create_model("vit_face_p8_128", img_size=32, depth=2, pool="mean")
    x = torch.randn(2, 3, 32, 32)
    res = randomization_test(vit, x, seed=1)
    assert res["randomized"].iloc[0] == "head" and res["randomized"].iloc[2] == "norm"
    head = res[res["randomized"] == "head"]["spearman"]
    np.testing.assert_allclose(head, 1.0, atol=1e-9)  # attention rollout never looks at the head
    assert res[res["randomized"] == "blocks.1"]["spearman"].max() < 0.999  # the attention itself changed

    cnn = QuadrantNet()
    nn.init.normal_(cnn.head.weight)  # Grad-CAM weighs channels by the head's gradient
    res = randomization_test(cnn, torch.rand(2, 3, 64, 64), seed=0)
    assert list(res["randomized"].unique()) == ["head", "features"]


def test_cross_image_similarity_and_border_mass():
    from dflib.explain import border_mass, cross_image_similarity

    fixed = torch.rand(1, 16, 16).repeat(4, 1, 1)
    assert cross_image_similarity(fixed) == pytest.approx(1.0)
    assert abs(cross_image_similarity(torch.rand(6, 16, 16))) < 0.2
    centre = torch.zeros(2, 16, 16)
    centre[:, 6:10, 6:10] = 1
    np.testing.assert_allclose(border_mass(centre), 0.0)
    np.testing.assert_allclose(border_mass(torch.ones(1, 16, 16)), 1 - (12 * 12) / 256)
    assert np.isnan(border_mass(torch.zeros(1, 16, 16))[0])
    with pytest.raises(ValueError, match="N >= 2"):
        cross_image_similarity(torch.rand(1, 8, 8))
