"""SqueezeNeXt, written from torch.nn building blocks.

Gholami et al. 2018, "SqueezeNext: Hardware-Aware Neural Network Design", arXiv:1803.10615.

The idea: make a ResNet-like network tiny by squeezing the channels *before* the expensive
convolutions. Each unit

    1x1 "squeeze" (C -> C/r)  ->  1x1 (C/r -> C/2r)  ->  1x3  ->  3x1  ->  1x1 "expand"  (+ shortcut)

replaces one 3x3 convolution by a 1x3 followed by a 3x1 (a low-rank, separable filter: 6 instead
of 9 weights per channel pair) and runs them on half or a quarter of the channels. Every
convolution is followed by BatchNorm and ReLU.

The layout (stem 7x7 conv with padding 1, max pool with ``ceil_mode``, biased convolutions,
a ReLU on both branches before the addition) follows the pytorchcv port of the official Caffe
model, so the parameter counts match it exactly: sqnxt23_w1 724,056; sqnxt23v5_w1 921,816;
sqnxt23_w2 2,583,752 (1000 classes). The only change is adaptive average pooling at the end
(pytorchcv uses a fixed 7x7 pool), so any input size works; at 224 px both are identical.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn

from .base import Detector, global_pool

# Units per stage. "23" = stem conv + 6+6+8+1 = 21 units + classifier = 23 "layers" in the
# paper's counting. "23v5" moves units to the third stage (better accuracy, same depth).
VERSIONS: dict[str, tuple[int, ...]] = {"23": (6, 6, 8, 1), "23v5": (2, 4, 14, 1)}


class ConvBNReLU(nn.Module):
    """Convolution (with bias, as in the Caffe original) -> BatchNorm -> ReLU."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | tuple[int, int],
        stride: int = 1,
        padding: int | tuple[int, int] = 0,
    ) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding, bias=True)
        self.bn = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.bn(self.conv(x)))


class SqueezeNeXtUnit(nn.Module):
    """One SqueezeNeXt unit: two squeezes, a separable 1x3/3x1 pair, an expansion, a shortcut.

    The squeeze ratio depends on the unit's role:
    * downsampling unit (stride 2): no squeeze in the first 1x1 (it already halves the map);
    * unit that reduces channels (``in > out``, first unit after the stem): squeeze by 4;
    * ordinary unit: squeeze by 2.
    Units that change the shape get a 1x1 projection shortcut, the others an identity.
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1) -> None:
        super().__init__()
        if stride != 1:
            reduction, project = 1, True
        elif in_channels > out_channels:
            reduction, project = 4, True
        else:
            reduction, project = 2, False
        mid = in_channels // reduction
        self.squeeze1 = ConvBNReLU(in_channels, mid, 1, stride=stride)
        self.squeeze2 = ConvBNReLU(mid, mid // 2, 1)
        self.conv1x3 = ConvBNReLU(mid // 2, mid, (1, 3), padding=(0, 1))
        self.conv3x1 = ConvBNReLU(mid, mid, (3, 1), padding=(1, 0))
        self.expand = ConvBNReLU(mid, out_channels, 1)
        self.shortcut: nn.Module = ConvBNReLU(in_channels, out_channels, 1, stride=stride) if project else nn.Identity()
        self.relu = nn.ReLU(inplace=True)

    def residual(self, x: torch.Tensor) -> torch.Tensor:
        """F(x), the residual branch: squeeze, squeeze, 1x3, 3x1, expand (each conv -> BN -> ReLU)."""
        out = self.squeeze2(self.squeeze1(x))
        out = self.conv3x1(self.conv1x3(out))
        return self.expand(out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Out of place: the residual ends in a ReLU whose output autograd keeps for the backward.
        return self.relu(self.residual(x) + self.shortcut(x))


def make_stage(in_channels: int, out_channels: int, n_units: int, stride: int) -> nn.Sequential:
    """``n_units`` units with ``out_channels`` outputs; only the first one strides and changes the channels."""
    units = [SqueezeNeXtUnit(in_channels, out_channels, stride)]
    units += [SqueezeNeXtUnit(out_channels, out_channels) for _ in range(n_units - 1)]
    return nn.Sequential(*units)


class SqueezeNeXt(Detector):
    """SqueezeNeXt classifier / detector.

    Args:
        num_classes: 1 for a real/fake detector (output ``(N,)``), else the number of classes.
        version: ``"23"`` or ``"23v5"`` (sets ``blocks`` unless you pass it yourself).
        width_scale: multiplies every channel count (the "1.0 / 1.5 / 2.0" in 2.0-SqNxt-23).
        blocks: units per stage, overrides ``version``.
        drop_rate: dropout before the classifier.
        in_channels: input channels (3 for RGB).
        residual_init: initial BatchNorm scale of every unit's expand layer (the reference uses 1).
            A small value starts each unit close to the identity, the trick ResNet plays with
            zero-init residuals (exactly 0 would kill the unit: a ReLU follows that BatchNorm and
            ReLU has no gradient at 0). In notebook 03's short run on the embedded sample (96 px,
            6 epochs, 3 seeds; ``benchmarks/residual_init.py``, ``img/03_residual_init.md``) 1.0
            barely left chance (last-epoch training loss about 0.68) while 0.2 learned, ahead on
            every seed by about 0.09 best validation ROC-AUC.
    """

    def __init__(
        self,
        num_classes: int = 1,
        version: str = "23",
        width_scale: float = 1.0,
        blocks: tuple[int, ...] | None = None,
        drop_rate: float = 0.0,
        in_channels: int = 3,
        residual_init: float = 0.2,
    ) -> None:
        super().__init__(num_classes)
        if not residual_init > 0:
            raise ValueError(f"residual_init must be positive, got {residual_init!r}")
        if blocks is None:
            if version not in VERSIONS:
                raise ValueError(f"version must be one of {sorted(VERSIONS)}, got {version!r}")
            blocks = VERSIONS[version]
        blocks = tuple(blocks)
        if len(blocks) != 4 or any(not isinstance(b, int) or b < 1 for b in blocks):
            raise ValueError(f"blocks must be 4 positive integers (units per stage), got {blocks!r}")
        if width_scale <= 0:
            raise ValueError(f"width_scale must be positive, got {width_scale!r}")

        def scaled(channels: int) -> int:
            return channels if width_scale == 1 else int(channels * width_scale)

        stem_channels = scaled(64)
        stage_channels = [scaled(c) for c in (32, 64, 128, 256)]
        final_channels = scaled(128)

        # Shape comments: input (N, in_channels, H, W), channels at width_scale 1; the stem's
        # padding of 1 and the pool's ceil_mode make H/4 = 55 at 224 px (31 at 128), H/32 = 7 (4).
        # Stem: 7x7/2 conv + 3x3/2 max pool -> 1/4 resolution.
        self.stem = nn.Sequential(
            OrderedDict(
                conv=ConvBNReLU(in_channels, stem_channels, 7, stride=2, padding=1),
                pool=nn.MaxPool2d(3, stride=2, ceil_mode=True),
            )
        )  # (N, 64, H/4, W/4)
        # Four stages; every stage but the first starts with a stride-2 unit.
        c1, c2, c3, c4 = stage_channels
        self.stage1 = make_stage(stem_channels, c1, blocks[0], stride=1)  # (N, 32, H/4, W/4)
        self.stage2 = make_stage(c1, c2, blocks[1], stride=2)  # (N, 64, H/8, W/8)
        self.stage3 = make_stage(c2, c3, blocks[2], stride=2)  # (N, 128, H/16, W/16)
        self.stage4 = make_stage(c3, c4, blocks[3], stride=2)  # (N, 256, H/32, W/32)
        # A final 1x1 conv mixes the channels before pooling; Grad-CAM looks at its output.
        self.final_block = ConvBNReLU(c4, final_channels, 1)  # (N, 128, H/32, W/32)
        self.pool = global_pool(drop_rate)
        self.head = nn.Linear(final_channels, num_classes)
        self._init_weights(residual_init)

    def _init_weights(self, residual_init: float) -> None:
        """Kaiming-uniform convolutions, zero biases (as in the reference implementation)."""
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_uniform_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, SqueezeNeXtUnit):
                nn.init.constant_(m.expand.bn.weight, residual_init)

    def named_stages(self) -> list[tuple[str, nn.Module]]:
        return [
            ("stem", self.stem),
            ("stage1", self.stage1),
            ("stage2", self.stage2),
            ("stage3", self.stage3),
            ("stage4", self.stage4),
            ("final_block", self.final_block),
            ("pool", self.pool),
            ("head", self.head),
        ]

    @property
    def cam_layer(self) -> nn.Module:
        """The final 1x1 block: its ``(N, 128, H/32, W/32)`` output is the last spatial feature map."""
        return self.final_block

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Channels at width_scale 1 (they scale with it); H/4 = 55 and H/32 = 7 at 224 px.
        x = self.stem(x)  # (N, 64, H/4, W/4)
        x = self.stage1(x)  # (N, 32, H/4, W/4)
        x = self.stage2(x)  # (N, 64, H/8, W/8)
        x = self.stage3(x)  # (N, 128, H/16, W/16)
        x = self.stage4(x)  # (N, 256, H/32, W/32)
        x = self.final_block(x)  # (N, 128, H/32, W/32)
        x = self.pool(x)  # (N, 128)
        return self.format_logits(self.head(x))  # (N,) for one logit, else (N, num_classes)
