"""Sanity checks and probes for the architecture notebooks (02-04) and the tests.

    >>> from dflib.models.diagnostics import overfit_one_batch, gradient_norms, reference_check
    >>> losses = overfit_one_batch(model, images, labels, steps=40)   # should go to ~0
    >>> gradient_norms(model, images, labels)                         # one row per stage
    >>> reference_check("resnet18", img_size=64)                      # params + max |diff| vs torchvision

ViT probes: :func:`patchify` (an image cut into patches), :func:`pos_embed_similarity`
(cosine similarity of the learned position embeddings) and :func:`cls_attention` (what the
class token attends to, on the patch grid). :func:`without_shortcuts` removes the residual
connections of a ResNet / SqueezeNeXt temporarily, to show what they are for.
"""

from __future__ import annotations

import types
from collections.abc import Iterator
from contextlib import contextmanager

import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from dflib.runtime import progress_bar

from .analysis import count_parameters
from .reference import build_reference, load_reference_weights
from .registry import create_model
from .resnet import BasicBlock, Bottleneck
from .squeezenext import SqueezeNeXtUnit


def _bce(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    return F.binary_cross_entropy_with_logits(logits.reshape(-1), labels.float().reshape(-1))


def overfit_one_batch(
    model: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    steps: int = 50,
    lr: float = 1e-3,
    progress: bool = True,
) -> list[float]:
    """Train ``model`` on one fixed batch with Adam and return the loss of every step.

    A correct model and loss drive this to ~0 within a few dozen steps; if they cannot, something
    is wired wrongly (labels, loss, a frozen layer, a broken forward). The model is modified.
    """
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps!r}")
    model.train()
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    losses: list[float] = []
    for _ in progress_bar(range(steps), desc="overfit one batch", disable=not progress, leave=False):
        opt.zero_grad(set_to_none=True)
        loss = _bce(model(images), labels)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses


def gradient_norms(model: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> pd.DataFrame:
    """One backward pass; the L2 norm of the loss gradient of each stage's parameters.

    Returns a DataFrame (stage, params, grad_norm, grad_norm_per_param): the last column is the
    RMS gradient per weight, comparable between stages of different size. Stages without
    parameters (pooling) are skipped. Gradients are cleared afterwards.
    """
    if not hasattr(model, "named_stages"):
        raise TypeError(f"{type(model).__name__} has no named_stages(); use a dflib model")
    model.train()
    model.zero_grad(set_to_none=True)
    _bce(model(images), labels).backward()
    rows = []
    for name, stage in model.named_stages():
        grads = [p.grad.detach().flatten() for p in stage.parameters() if p.grad is not None]
        if not grads:
            continue
        g = torch.cat(grads)
        rows.append(
            {
                "stage": name,
                "params": g.numel(),
                "grad_norm": g.norm().item(),
                "grad_rms": (g.norm() / g.numel() ** 0.5).item(),
            }
        )
    model.zero_grad(set_to_none=True)
    return pd.DataFrame(rows, columns=["stage", "params", "grad_norm", "grad_rms"])


@contextmanager
def without_shortcuts(model: nn.Module) -> Iterator[nn.Module]:
    """Temporarily turn a ResNet / SqueezeNeXt into a "plain" network: every residual block
    computes ``relu(block.residual(x))`` instead of ``relu(block.residual(x) + block.shortcut(x))``.

    Same weights, same depth: the difference in behaviour is the shortcut's doing.
    """
    blocks = [m for m in model.modules() if isinstance(m, (BasicBlock, Bottleneck, SqueezeNeXtUnit))]
    if not blocks:
        raise TypeError(f"{type(model).__name__} has no residual blocks (BasicBlock, Bottleneck, SqueezeNeXtUnit)")
    for b in blocks:
        b.forward = types.MethodType(_residual_only, b)  # an instance attribute hides the class's forward
    try:
        yield model
    finally:
        for b in blocks:
            del b.forward  # back to the class's forward


def _residual_only(block: BasicBlock | Bottleneck | SqueezeNeXtUnit, x: torch.Tensor) -> torch.Tensor:
    return block.relu(block.residual(x))


def separable_savings(in_channels: int, out_channels: int, bias: bool = False) -> pd.DataFrame:
    """Parameters of a 3x3 convolution vs a 1x3 followed by a 3x1 at the same channels, counted
    on real ``nn.Conv2d`` modules (the 1x3 maps in -> out, the 3x1 out -> out)."""
    full = nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=bias)
    pair = nn.Sequential(
        nn.Conv2d(in_channels, out_channels, (1, 3), padding=(0, 1), bias=bias),
        nn.Conv2d(out_channels, out_channels, (3, 1), padding=(1, 0), bias=bias),
    )
    rows = [
        {"layer": "3x3", "params": count_parameters(full)},
        {"layer": "1x3 + 3x1", "params": count_parameters(pair)},
    ]
    df = pd.DataFrame(rows)
    df["relative"] = df["params"] / df["params"].iloc[0]
    return df


def reference_check(name: str, img_size: int = 64, batch: int = 2, seed: int = 0) -> dict[str, float]:
    """Build preset ``name`` with 1000 classes and its reference implementation (torchvision or
    pytorchcv), copy the reference's weights over and compare outputs on random inputs.

    Returns ``params`` (dflib), ``reference_params`` and ``max_abs_diff`` of the logits (eval mode).
    """
    torch.manual_seed(seed)
    ref = build_reference(name, num_classes=1000, img_size=img_size).eval()
    model = create_model(name, num_classes=1000, img_size=img_size).eval()
    load_reference_weights(model, ref)
    x = torch.randn(batch, 3, img_size, img_size, generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        diff = (model(x) - ref(x)).abs().max().item()
    return {"params": count_parameters(model), "reference_params": count_parameters(ref), "max_abs_diff": diff}


def patchify(image: torch.Tensor, patch_size: int) -> torch.Tensor:
    """Cut a ``(C, H, W)`` image into non-overlapping patches, row by row: ``(gh*gw, C, P, P)``.

    This is what a ViT's patch embedding sees (a conv with kernel = stride = P); leftover
    border pixels (H or W not divisible by P) are dropped, as the conv does.
    """
    if image.dim() != 3:
        raise ValueError(f"expected one (C, H, W) image, got shape {tuple(image.shape)}")
    c, h, w = image.shape
    if h < patch_size or w < patch_size:
        raise ValueError(f"image {h}x{w} is smaller than patch_size {patch_size}")
    gh, gw = h // patch_size, w // patch_size
    x = image[:, : gh * patch_size, : gw * patch_size]
    x = x.reshape(c, gh, patch_size, gw, patch_size).permute(1, 3, 0, 2, 4)
    return x.reshape(gh * gw, c, patch_size, patch_size)


def pos_embed_similarity(model: nn.Module) -> torch.Tensor:
    """Cosine similarity between the position embeddings of every pair of patches of a dflib ViT.

    Returns ``(gh, gw, gh, gw)``: ``sim[i, j]`` is the map of patch (i, j)'s similarity to every
    patch. Random at initialisation; after training, nearby patches have similar embeddings.
    """
    embed = getattr(model, "embed", None)
    if embed is None or not hasattr(embed, "pos_embed"):
        raise TypeError(f"{type(model).__name__} has no position embeddings; pass a dflib ViT")
    g = embed.grid
    pos = embed.pos_embed.detach()[0, model.num_prefix_tokens :]  # (g*g, D), class token dropped
    pos = F.normalize(pos, dim=-1)
    return (pos @ pos.T).reshape(g, g, g, g)


@torch.no_grad()
def cls_attention(model: nn.Module, images: torch.Tensor, block: int = -1) -> torch.Tensor:
    """Attention of the class token to every patch in one block, averaged over heads: ``(N, gh, gw)``.

    Rows of attention sum to 1 over all tokens (class token included), so the map shows the
    share of the class token's attention that each patch receives.
    """
    if not callable(getattr(model, "attention_maps", None)):
        raise TypeError(f"{type(model).__name__} has no attention_maps(); pass a dflib ViT")
    model.eval()
    attn = model.attention_maps(images)[block]  # (N, heads, T, T)
    cls_row = attn[:, :, 0, model.num_prefix_tokens :].mean(dim=1)  # (N, gh*gw)
    n, length = cls_row.shape
    gh = images.shape[-2] // model.patch_size
    gw = length // gh
    return cls_row.reshape(n, gh, gw)
