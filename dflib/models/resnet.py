"""ResNet, written from torch.nn building blocks.

He et al. 2016, "Deep Residual Learning for Image Recognition", CVPR (arXiv:1512.03385).

The idea: a block learns a *residual* F(x) and outputs ReLU(F(x) + x). When a block has
nothing useful to add, F can stay near zero and the signal (and its gradient) passes through
the shortcut unchanged, which is what lets 18, 34 or 50 layers train from scratch.

Two block types:
* ``BasicBlock`` (ResNet-18/34): two 3x3 convolutions;
* ``Bottleneck`` (ResNet-50): 1x1 reduce -> 3x3 -> 1x1 expand (x4), cheaper at high width.
  The stride sits on the 3x3 ("ResNet v1.5", as in torchvision).

``width`` is the channel count of the first stage (64 in the paper); the stages use
width, 2*width, 4*width, 8*width. ``width=32`` or ``16`` gives small CPU-friendly variants
(about 1/4 or 1/16 of the parameters and MACs).
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Literal

import torch
from torch import nn

from .base import Detector, global_pool


def conv3x3(in_channels: int, out_channels: int, stride: int = 1) -> nn.Conv2d:
    """3x3 convolution, 'same' padding, no bias (the BatchNorm after it has one)."""
    return nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False)


def conv1x1(in_channels: int, out_channels: int, stride: int = 1) -> nn.Conv2d:
    """1x1 convolution, no bias."""
    return nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False)


def projection(in_channels: int, out_channels: int, stride: int) -> nn.Module:
    """Shortcut of a block: the identity, or for blocks that change shape a strided 1x1 conv + BN
    ("option B" in the paper)."""
    if stride == 1 and in_channels == out_channels:
        return nn.Identity()
    return nn.Sequential(conv1x1(in_channels, out_channels, stride), nn.BatchNorm2d(out_channels))


class BasicBlock(nn.Module):
    """ReLU(F(x) + shortcut(x)) with F = conv3x3 -> BN -> ReLU -> conv3x3 -> BN (ResNet-18/34).

    ``channels`` is the width of both 3x3 convolutions and of the output (``expansion = 1``).
    """

    expansion = 1

    def __init__(self, in_channels: int, channels: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = conv3x3(in_channels, channels, stride)
        self.bn1 = nn.BatchNorm2d(channels)
        self.conv2 = conv3x3(channels, channels)
        self.bn2 = nn.BatchNorm2d(channels)
        self.relu = nn.ReLU(inplace=True)
        self.shortcut = projection(in_channels, channels, stride)

    def residual(self, x: torch.Tensor) -> torch.Tensor:
        """F(x), the residual branch: what the block adds to its shortcut."""
        out = self.relu(self.bn1(self.conv1(x)))
        return self.bn2(self.conv2(out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.residual(x) + self.shortcut(x))


class Bottleneck(nn.Module):
    """ReLU(F(x) + shortcut(x)) with F = 1x1 reduce -> 3x3 (strided) -> 1x1 expand (ResNet-50+).

    ``channels`` is the width of the 1x1 reduction and the 3x3; the output has
    ``expansion * channels = 4 * channels``.
    """

    expansion = 4

    def __init__(self, in_channels: int, channels: int, stride: int = 1) -> None:
        super().__init__()
        out_channels = channels * self.expansion
        self.conv1 = conv1x1(in_channels, channels)
        self.bn1 = nn.BatchNorm2d(channels)
        self.conv2 = conv3x3(channels, channels, stride)
        self.bn2 = nn.BatchNorm2d(channels)
        self.conv3 = conv1x1(channels, out_channels)
        self.bn3 = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU(inplace=True)
        self.shortcut = projection(in_channels, out_channels, stride)

    def residual(self, x: torch.Tensor) -> torch.Tensor:
        """F(x), the residual branch: what the block adds to its shortcut."""
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        return self.bn3(self.conv3(out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.residual(x) + self.shortcut(x))


BLOCKS: dict[str, type[BasicBlock] | type[Bottleneck]] = {"basic": BasicBlock, "bottleneck": Bottleneck}


def make_stage(
    block_cls: type[BasicBlock] | type[Bottleneck], in_channels: int, channels: int, n_blocks: int, stride: int
) -> nn.Sequential:
    """``n_blocks`` blocks of width ``channels``; only the first one strides and changes the channel count."""
    out_channels = channels * block_cls.expansion
    blocks = [block_cls(in_channels, channels, stride)]
    blocks += [block_cls(out_channels, channels) for _ in range(n_blocks - 1)]
    return nn.Sequential(*blocks)


class ResNet(Detector):
    """ResNet classifier / detector.

    Args:
        num_classes: 1 for a real/fake detector (output ``(N,)``), else the number of classes.
        block: ``"basic"`` (ResNet-18/34) or ``"bottleneck"`` (ResNet-50 and deeper).
        layers: blocks per stage, e.g. (2, 2, 2, 2) for ResNet-18.
        width: channels of the first stage (64 in the paper).
        drop_rate: dropout before the classifier.
        zero_init_residual: start every block's last BN at zero, so each block begins as the
            identity (Goyal et al. 2017); often helps training from scratch. Off by default to
            match the reference initialisation.
        in_channels: input channels (3 for RGB).
    """

    def __init__(
        self,
        num_classes: int = 1,
        block: Literal["basic", "bottleneck"] = "basic",
        layers: tuple[int, ...] = (2, 2, 2, 2),
        width: int = 64,
        drop_rate: float = 0.0,
        zero_init_residual: bool = False,
        in_channels: int = 3,
    ) -> None:
        super().__init__(num_classes)
        if block not in BLOCKS:
            raise ValueError(f"block must be one of {sorted(BLOCKS)}, got {block!r}")
        layers = tuple(layers)
        if len(layers) != 4 or any(not isinstance(n, int) or n < 1 for n in layers):
            raise ValueError(f"layers must be 4 positive integers (blocks per stage), got {layers!r}")
        if not isinstance(width, int) or width < 1:
            raise ValueError(f"width must be a positive integer (64 in the paper), got {width!r}")
        block_cls = BLOCKS[block]

        # Shape comments: input (N, in_channels, H, W), w = width, e = block_cls.expansion; each
        # stride 2 rounds up (H/32 is 7 at 224 px, 4 at 128 px).
        # Stem ("conv1" in the paper): 7x7/2 conv + 3x3/2 max pool -> 1/4 resolution (224 px -> 56 x 56).
        self.stem = nn.Sequential(
            OrderedDict(
                conv=nn.Conv2d(in_channels, width, 7, stride=2, padding=3, bias=False),
                bn=nn.BatchNorm2d(width),
                relu=nn.ReLU(inplace=True),
                pool=nn.MaxPool2d(3, stride=2, padding=1),
            )
        )  # (N, w, H/4, W/4)
        # Four stages ("conv2_x" ... "conv5_x" in the paper's Table 1); stages 2-4 halve the
        # resolution in their first block and double the width.
        e = block_cls.expansion
        self.stage1 = make_stage(block_cls, width, width, layers[0], stride=1)  # (N, w*e, H/4, W/4)
        self.stage2 = make_stage(block_cls, width * e, 2 * width, layers[1], stride=2)  # (N, 2w*e, H/8, W/8)
        self.stage3 = make_stage(block_cls, 2 * width * e, 4 * width, layers[2], stride=2)  # (N, 4w*e, H/16, W/16)
        self.stage4 = make_stage(block_cls, 4 * width * e, 8 * width, layers[3], stride=2)  # (N, 8w*e, H/32, W/32)
        self.pool = global_pool(drop_rate)
        self.head = nn.Linear(8 * width * e, num_classes)
        self._init_weights(zero_init_residual)

    def _init_weights(self, zero_init_residual: bool) -> None:
        """He (Kaiming) normal init for convolutions, BN = identity; as in He et al. 2015/2016."""
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        if zero_init_residual:
            for m in self.modules():
                if isinstance(m, BasicBlock):
                    nn.init.zeros_(m.bn2.weight)
                elif isinstance(m, Bottleneck):
                    nn.init.zeros_(m.bn3.weight)

    def named_stages(self) -> list[tuple[str, nn.Module]]:
        return [
            ("stem", self.stem),
            ("stage1", self.stage1),
            ("stage2", self.stage2),
            ("stage3", self.stage3),
            ("stage4", self.stage4),
            ("pool", self.pool),
            ("head", self.head),
        ]

    @property
    def cam_layer(self) -> nn.Module:
        """The last stage: its ``(N, 8w*e, H/32, W/32)`` output is the last spatial feature map."""
        return self.stage4

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # w = width (64 in the paper), e = block expansion (1 basic, 4 bottleneck); ResNet-18: w*e = 64.
        x = self.stem(x)  # (N, w, H/4, W/4)
        x = self.stage1(x)  # (N, w*e, H/4, W/4)
        x = self.stage2(x)  # (N, 2w*e, H/8, W/8)
        x = self.stage3(x)  # (N, 4w*e, H/16, W/16)
        x = self.stage4(x)  # (N, 8w*e, H/32, W/32)
        x = self.pool(x)  # (N, 8w*e)
        return self.format_logits(self.head(x))  # (N,) for one logit, else (N, num_classes)
