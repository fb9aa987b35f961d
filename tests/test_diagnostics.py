"""dflib.models.diagnostics: overfitting, gradient norms, shortcuts, separable pair, ViT probes."""

import matplotlib

matplotlib.use("Agg")

import pytest
import torch

from dflib import plots
from dflib.models import BasicBlock, Bottleneck, ResNet, SqueezeNeXtUnit, ViT, create_model
from dflib.models.diagnostics import (
    cls_attention,
    gradient_norms,
    overfit_one_batch,
    patchify,
    pos_embed_similarity,
    separable_savings,
    without_shortcuts,
)


def tiny_resnet():
    torch.manual_seed(0)
    return ResNet(layers=(1, 1, 1, 1), width=8)


def test_overfit_one_batch_drives_loss_down():
    model = tiny_resnet()
    x, y = torch.randn(8, 3, 32, 32), torch.tensor([0, 1] * 4)
    losses = overfit_one_batch(model, x, y, steps=30, lr=1e-2, progress=False)
    assert len(losses) == 30
    assert losses[-1] < 0.1 * losses[0]
    with pytest.raises(ValueError, match="steps"):
        overfit_one_batch(model, x, y, steps=0)


def test_gradient_norms_per_stage():
    model = tiny_resnet()
    df = gradient_norms(model, torch.randn(4, 3, 32, 32), torch.tensor([0, 1, 0, 1]))
    assert list(df["stage"]) == ["stem", "stage1", "stage2", "stage3", "stage4", "head"]
    assert (df["grad_norm"] > 0).all()
    assert df["params"].sum() == sum(p.numel() for p in model.parameters())
    assert all(p.grad is None for p in model.parameters())


def test_without_shortcuts_changes_output_and_restores():
    model = tiny_resnet().eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        before = model(x)
        with without_shortcuts(model):
            plain = model(x)
        after = model(x)
    assert torch.equal(before, after)
    assert not torch.allclose(before, plain)
    with pytest.raises(TypeError):
        with without_shortcuts(torch.nn.Linear(2, 2)):
            pass


@pytest.mark.parametrize("name", ["resnet18_w16", "resnet50", "sqnxt23_w1"])
def test_without_shortcuts_keeps_only_the_residual_branch(name):
    torch.manual_seed(0)
    model = create_model(name, img_size=32).eval()
    blocks = [m for m in model.modules() if isinstance(m, (BasicBlock, Bottleneck, SqueezeNeXtUnit))]
    block = blocks[1]  # second block of stage 1: an identity shortcut
    seen = []
    handle = block.register_forward_pre_hook(lambda _m, args: seen.append(args[0].clone()))
    with torch.no_grad():
        model(torch.randn(1, 3, 32, 32))
    handle.remove()
    x = seen[0]  # what the block really receives
    with torch.no_grad():
        full = block(x)
        with without_shortcuts(model):
            plain = block(x)
            assert all("forward" in vars(b) for b in blocks)
        assert all("forward" not in vars(b) for b in blocks)
        assert torch.equal(plain, block.relu(block.residual(x)))
        assert torch.equal(full, block.relu(block.residual(x) + block.shortcut(x)))


def test_separable_savings_counts():
    df = separable_savings(64, 64)
    assert df["params"].tolist() == [9 * 64 * 64, 6 * 64 * 64]
    assert df["relative"].iloc[1] == pytest.approx(2 / 3)


def test_patchify_order_and_shape():
    img = torch.arange(3 * 8 * 8, dtype=torch.float32).reshape(3, 8, 8)
    p = patchify(img, 4)
    assert p.shape == (4, 3, 4, 4)
    assert torch.equal(p[1], img[:, :4, 4:])  # second patch = top-right
    assert torch.equal(p[2], img[:, 4:, :4])
    with pytest.raises(ValueError):
        patchify(img[None], 4)


def test_vit_probes():
    torch.manual_seed(0)
    vit = ViT(img_size=32, patch_size=8, embed_dim=16, depth=2, num_heads=2)
    sim = pos_embed_similarity(vit)
    assert sim.shape == (4, 4, 4, 4)
    assert torch.allclose(sim[1, 2, 1, 2], torch.tensor(1.0), atol=1e-5)
    images = torch.randn(3, 3, 32, 32)
    maps = cls_attention(vit, images)
    assert maps.shape == (3, 4, 4)
    assert ((maps > 0) & (maps < 1)).all()
    with torch.no_grad():  # the class token's row of the last block's map, averaged over heads
        expected = vit.attention_maps(images)[-1][:, :, 0, 1:].mean(dim=1).reshape(3, 4, 4)
    assert torch.allclose(maps, expected)
    first = cls_attention(vit, images, block=0)
    assert first.shape == (3, 4, 4) and not torch.allclose(first, maps)
    with pytest.raises(TypeError):
        pos_embed_similarity(tiny_resnet())
    with pytest.raises(TypeError, match="ViT"):
        cls_attention(tiny_resnet(), images)


def test_new_plots_build():
    import pandas as pd

    figs = [
        plots.loss_curve([1.0, 0.5, 0.1]),
        plots.training_curves(
            pd.DataFrame(
                {
                    "epoch": [1, 2],
                    "train_loss": [0.7, 0.6],
                    "val_loss": [0.7, 0.65],
                    "val_roc_auc": [0.6, 0.7],
                    "val_accuracy": [0.55, 0.6],
                }
            )
        ),
        plots.patch_grid(patchify(torch.rand(3, 8, 8), 4), (2, 2)),
        plots.pos_embed_similarity_map(torch.rand(2, 2, 2, 2)),
        plots.attention_overlay([torch.rand(3, 8, 8)], torch.rand(1, 2, 2)),
    ]
    df = gradient_norms(tiny_resnet(), torch.randn(2, 3, 32, 32), torch.tensor([0, 1]))
    figs.append(plots.gradient_norm_bars({"a": df, "b": df.assign(grad_rms=2 * df["grad_rms"])}))
    for f in figs:
        assert f.axes
    bars = figs[-1].axes[0]  # one bar per stage and variant, on a log axis
    assert [[b.get_height() for b in c] for c in bars.containers] == [list(df["grad_rms"]), list(2 * df["grad_rms"])]
    assert bars.get_yscale() == "log" and [t.get_text() for t in bars.get_xticklabels()] == list(df["stage"])


def test_loss_curve_accepts_several_runs():
    fig = plots.loss_curve({"a": [1.0, 0.5], "b": [1.0, 0.9]})
    assert len(fig.axes[0].lines) == 2
