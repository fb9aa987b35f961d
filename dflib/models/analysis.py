"""How big and how expensive is a model? Parameters, MACs and a per-stage summary table.

MACs (multiply-accumulates) are counted with ``torch.utils.flop_counter.FlopCounterMode``, which
sees every convolution and matrix multiply actually executed (MACs = FLOPs / 2). Like the
published numbers, it ignores the cheap element-wise work (BatchNorm, ReLU, additions, pooling).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import TYPE_CHECKING

import torch
from torch import nn
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

if TYPE_CHECKING:
    import pandas as pd


def count_parameters(model: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameters (all of them, or only those with ``requires_grad``)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def _as_hw(img_size: int | tuple[int, int]) -> tuple[int, int]:
    if isinstance(img_size, int):
        return img_size, img_size
    h, w = img_size
    return int(h), int(w)


@contextlib.contextmanager
def _counting_mode(model: nn.Module) -> Iterator[None]:
    """Eval mode (no BatchNorm statistics updates), restored afterwards.

    Autograd stays on and the attention kernels are forced to the plain "math" backend because
    the flop counter cannot look inside fused kernels: the CPU flash-attention op and
    ``nn.MultiheadAttention``'s inference fast path (used by torchvision's ViT under no_grad)
    would otherwise be counted as zero.
    """
    was_training = model.training
    model.eval()
    try:
        with sdpa_kernel(SDPBackend.MATH), torch.enable_grad():
            yield
    finally:
        model.train(was_training)


def _dummy_input(model: nn.Module, img_size: int | tuple[int, int], batch: int, in_channels: int) -> torch.Tensor:
    param = next(model.parameters())
    return torch.randn(batch, in_channels, *_as_hw(img_size), device=param.device, dtype=param.dtype)


def count_macs(model: nn.Module, img_size: int | tuple[int, int], batch: int = 1, in_channels: int = 3) -> int:
    """Multiply-accumulates of one forward pass on a ``batch x in_channels x H x W`` input."""
    x = _dummy_input(model, img_size, batch, in_channels)
    with _counting_mode(model), FlopCounterMode(display=False) as counter:
        model(x)
    return counter.get_total_flops() // 2


def _shape_of(out: object) -> tuple[int, ...]:
    if isinstance(out, torch.Tensor):
        return tuple(out.shape[1:])  # drop the batch dimension
    if isinstance(out, (tuple, list)) and out and isinstance(out[0], torch.Tensor):
        return tuple(out[0].shape[1:])
    return ()


def summary(
    model: nn.Module, img_size: int | tuple[int, int], in_channels: int = 3, total: bool = True
) -> pd.DataFrame:
    """One row per stage (``model.named_stages()``): name, output shape (without batch), params, MACs.

    Needs pandas. ``total=True`` appends a row with the whole model's parameters and MACs.
    """
    import pandas as pd

    if not hasattr(model, "named_stages"):
        raise TypeError(f"{type(model).__name__} has no named_stages(); summary() works on dflib models")
    stages = model.named_stages()
    qualname = {id(m): n for n, m in model.named_modules()}
    shapes: dict[str, tuple[int, ...]] = {}
    hooks = []
    for name, module in stages:

        def hook(_m: nn.Module, _inp: object, out: object, name: str = name) -> None:
            shapes[name] = _shape_of(out)

        hooks.append(module.register_forward_hook(hook))
    x = _dummy_input(model, img_size, 1, in_channels)
    try:
        with _counting_mode(model), FlopCounterMode(display=False) as counter:
            model(x)
    finally:
        for h in hooks:
            h.remove()
    flops = counter.get_flop_counts()  # keys like "ResNet.stage1": class name + module path
    prefix = type(model).__name__
    rows = []
    for name, module in stages:
        per_op = flops.get(f"{prefix}.{qualname[id(module)]}", {})
        rows.append(
            {
                "name": name,
                "output_shape": shapes.get(name, ()),
                "params": count_parameters(module),
                "macs": sum(per_op.values()) // 2,
            }
        )
    if total:
        rows.append(
            {
                "name": "total",
                "output_shape": shapes.get(stages[-1][0], ()),
                "params": count_parameters(model),
                "macs": counter.get_total_flops() // 2,
            }
        )
    return pd.DataFrame(rows, columns=["name", "output_shape", "params", "macs"])
