"""Vision Transformer (ViT), written from torch.nn building blocks.

Dosovitskiy et al. 2021, "An Image is Worth 16x16 Words: Transformers for Image Recognition at
Scale", ICLR (arXiv:2010.11929).

The idea: cut the image into P x P patches, embed each patch linearly as a token, prepend a
learned class token, add learned position embeddings, and run a standard (pre-norm) Transformer
encoder. The class token's final state feeds the classifier. There is no convolution
hierarchy and hardly any image prior, which is why ViTs need a lot of data (or augmentation) to
beat CNNs, a lesson the course's small-data ``vit_face_p8_128`` makes visible.

Shapes: N images, T = 1 + gh * gw tokens (class token + one per patch), D = embed_dim.

Attention uses ``torch.nn.functional.scaled_dot_product_attention`` (fused kernels, no T x T
matrix kept in memory). Those kernels do not return the attention weights, so when they are asked
for (``need_weights=True``, as in ``torch.nn.MultiheadAttention``; ``ViT.attention_maps(x)`` for
every block) the attention takes an explicit, slower path that computes ``softmax(q k^T / sqrt(d))``
and passes it through ``attn.attn_probe`` (an ``nn.Identity`` you can hook to read or edit the maps).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .base import Detector


def resize_pos_embed(pos_embed: torch.Tensor, grid: tuple[int, int], num_prefix: int = 1) -> torch.Tensor:
    """Bicubically resample position embeddings ``(1, prefix + g*g, D)`` to a new patch grid.

    The class token's embedding is kept as is; the patch embeddings are treated as a D-channel
    g x g image and resized, so a model trained at one resolution can run at another.
    """
    prefix, patches = pos_embed[:, :num_prefix], pos_embed[:, num_prefix:]
    old = math.isqrt(patches.shape[1])
    if old * old != patches.shape[1]:
        raise ValueError(f"position embedding has {patches.shape[1]} patch tokens, not a square grid")
    if (old, old) == tuple(grid):
        return pos_embed
    dim = patches.shape[-1]
    patches = patches.reshape(1, old, old, dim).permute(0, 3, 1, 2)  # (1, D, g, g) "image"
    patches = F.interpolate(patches.float(), size=tuple(grid), mode="bicubic", align_corners=False)
    patches = patches.permute(0, 2, 3, 1).reshape(1, grid[0] * grid[1], dim).to(pos_embed.dtype)
    return torch.cat([prefix, patches], dim=1)


def conv_stem(in_channels: int, embed_dim: int, patch_size: int) -> nn.Sequential:
    """The "early convolutions" patchifier of Xiao et al. 2021 (arXiv:2106.14881).

    log2(P) stride-2 3x3 convolutions (BatchNorm + ReLU, channels doubling up to D), then a 1x1
    convolution to D: the same (N, D, H/P, W/P) token grid as the one-conv patchifier, but each
    token now sees overlapping, locally filtered pixels. It gives the transformer the locality a
    CNN has built in, and makes ViTs train far more easily on small data.
    """
    steps = patch_size.bit_length() - 1
    if patch_size < 2 or 2**steps != patch_size:
        raise ValueError(f"stem='conv' needs a power-of-two patch_size >= 2, got {patch_size}")
    layers: list[nn.Module] = []
    widths = [max(16, embed_dim // 2 ** (steps - 1 - i)) for i in range(steps)]  # ..., D/4, D/2, D
    for out_channels in widths:  # the i-th stride-2 conv gives (N, out_channels, H/2^i, W/2^i)
        layers += [
            nn.Conv2d(in_channels, out_channels, 3, stride=2, padding=1, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
        ]
        in_channels = out_channels
    layers.append(nn.Conv2d(in_channels, embed_dim, 1))  # (N, D, H/P, W/P)
    return nn.Sequential(*layers)


class PatchEmbedding(nn.Module):
    """Image -> tokens: P x P patches through one strided conv, class token, position embeddings.

    A conv with kernel = stride = P is exactly "flatten each patch and apply one Linear layer".
    With ``stem="conv"`` a small stack of strided 3x3 convolutions makes the same token grid
    (:func:`conv_stem`).
    """

    def __init__(
        self,
        img_size: int,
        patch_size: int,
        in_channels: int,
        embed_dim: int,
        drop_rate: float = 0.0,
        stem: str = "patch",
    ) -> None:
        super().__init__()
        if img_size < patch_size:
            raise ValueError(f"img_size ({img_size}) must be at least patch_size ({patch_size})")
        if stem not in ("patch", "conv"):
            raise ValueError(
                f"stem must be 'patch' (one linear map per patch) or 'conv' (early convolutions), got {stem!r}"
            )
        self.patch_size = patch_size
        self.grid = img_size // patch_size
        self.proj: nn.Module = (
            nn.Conv2d(in_channels, embed_dim, kernel_size=patch_size, stride=patch_size)
            if stem == "patch"
            else conv_stem(in_channels, embed_dim, patch_size)
        )
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, 1 + self.grid * self.grid, embed_dim))
        self.drop = nn.Dropout(drop_rate)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.proj(x)  # (N, D, H/P, W/P)
        n, _, gh, gw = x.shape
        x = x.flatten(2).transpose(1, 2)  # (N, gh*gw, D): one token per patch
        x = torch.cat([self.cls_token.expand(n, -1, -1), x], dim=1)  # (N, T, D), T = 1 + gh*gw
        # Another input size than the one built for -> resample the position embeddings on the fly.
        pos = self.pos_embed if (gh, gw) == (self.grid, self.grid) else resize_pos_embed(self.pos_embed, (gh, gw))
        return self.drop(x + pos)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):  # type: ignore[override]
        """Loading weights trained at another resolution: resample their position embeddings."""
        key = prefix + "pos_embed"
        if key in state_dict and state_dict[key].shape != self.pos_embed.shape:
            state_dict[key] = resize_pos_embed(state_dict[key], (self.grid, self.grid))
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)


class MultiHeadSelfAttention(nn.Module):
    """Multi-head self-attention with one fused q/k/v projection.

    ``qkv`` is a single Linear(D, 3D) (one matrix multiply instead of three); its output is split
    into ``num_heads`` heads of size D / num_heads. ``forward(x, need_weights=True)`` also returns
    the attention weights, per head (``torch.nn.MultiheadAttention`` averages them by default).
    """

    def __init__(self, embed_dim: int, num_heads: int, attn_drop: float = 0.0, proj_drop: float = 0.0) -> None:
        super().__init__()
        if embed_dim % num_heads != 0:
            raise ValueError(f"embed_dim ({embed_dim}) must be divisible by num_heads ({num_heads})")
        self.num_heads = num_heads
        self.head_dim = embed_dim // num_heads
        self.scale = self.head_dim**-0.5
        self.attn_drop = attn_drop
        self.qkv = nn.Linear(embed_dim, 3 * embed_dim)
        self.proj = nn.Linear(embed_dim, embed_dim)
        self.proj_drop = nn.Dropout(proj_drop)
        self.attn_probe = nn.Identity()  # hook point: sees the (N, heads, T, T) weights when they are asked for

    def forward(self, x: torch.Tensor, need_weights: bool = False) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """``(N, T, D) -> (N, T, D)``; with ``need_weights=True`` also the ``(N, heads, T, T)`` softmax
        weights (row i: how query token i spreads its attention over the keys; rows sum to 1)."""
        n, length, dim = x.shape
        qkv = self.qkv(x).reshape(n, length, 3, self.num_heads, self.head_dim)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)  # each (N, heads, T, head_dim)
        dropout_p = self.attn_drop if self.training else 0.0
        if need_weights:
            # Explicit, slower path: the same maths as the fused kernel, but the T x T matrix is kept.
            weights = self.attn_probe(((q * self.scale) @ k.transpose(-2, -1)).softmax(dim=-1))
            out = F.dropout(weights, dropout_p, self.training) @ v
        else:
            out = F.scaled_dot_product_attention(q, k, v, dropout_p=dropout_p)
        out = out.transpose(1, 2).reshape(n, length, dim)  # concatenate the heads
        out = self.proj_drop(self.proj(out))
        return (out, weights) if need_weights else out


class MLP(nn.Module):
    """Position-wise feed-forward network: Linear -> GELU -> Linear (hidden = mlp_ratio * D)."""

    def __init__(self, embed_dim: int, hidden_dim: int, drop: float = 0.0) -> None:
        super().__init__()
        self.fc1 = nn.Linear(embed_dim, hidden_dim)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden_dim, embed_dim)
        self.drop = nn.Dropout(drop)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.drop(self.fc2(self.drop(self.act(self.fc1(x)))))


class EncoderBlock(nn.Module):
    """Pre-norm Transformer block (eqs. 2-3 of the paper): x + MSA(LN(x)), then x + MLP(LN(x))."""

    def __init__(
        self, embed_dim: int, num_heads: int, mlp_ratio: float = 4.0, drop: float = 0.0, attn_drop: float = 0.0
    ) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(embed_dim, eps=1e-6)
        self.attn = MultiHeadSelfAttention(embed_dim, num_heads, attn_drop, drop)
        self.norm2 = nn.LayerNorm(embed_dim, eps=1e-6)
        self.mlp = MLP(embed_dim, int(embed_dim * mlp_ratio), drop)

    def forward(self, x: torch.Tensor, need_weights: bool = False) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """``(N, T, D) -> (N, T, D)``; with ``need_weights=True`` also the ``(N, heads, T, T)`` attention."""
        if need_weights:
            attended, weights = self.attn(self.norm1(x), need_weights=True)
        else:
            attended = self.attn(self.norm1(x))
        x = x + attended
        x = x + self.mlp(self.norm2(x))
        return (x, weights) if need_weights else x


class ClassTokenPool(nn.Module):
    """Keep the class token, the image's summary: ``(N, T, D) -> (N, D)``."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x[:, 0]


class TokenMeanPool(nn.Module):
    """Average the patch tokens (not the class token): ``(N, T, D) -> (N, D)``.

    Global average pooling as in a CNN: evidence found in any patch counts equally, which suits
    detectors of local traces and small training sets (Beyer, Zhai & Kolesnikov 2022, "Better plain
    ViT baselines for ImageNet-1k").
    """

    def __init__(self, num_prefix_tokens: int = 1) -> None:
        super().__init__()
        self.num_prefix_tokens = num_prefix_tokens

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x[:, self.num_prefix_tokens :].mean(dim=1)


class ViT(Detector):
    """Vision Transformer classifier / detector.

    Args:
        num_classes: 1 for a real/fake detector (output ``(N,)``), else the number of classes.
        img_size: input size the position embeddings are built for (other sizes are resampled).
        patch_size: side of the square patches (16 in ViT-B/16).
        embed_dim, depth, num_heads, mlp_ratio: width, number of blocks, heads, MLP expansion.
        drop_rate: dropout after the embeddings, in attention/MLP outputs and before the head.
        attn_drop_rate: dropout on the attention weights.
        in_channels: input channels (3 for RGB).
        stem: "patch" (the paper's linear patch embedding) or "conv" (strided 3x3 convolutions,
            Xiao et al. 2021; see :func:`conv_stem`).
        pool: "cls" (the paper: classify from the class token) or "mean" (average of the patch
            tokens, see :class:`TokenMeanPool`).
    """

    def __init__(
        self,
        num_classes: int = 1,
        img_size: int = 224,
        patch_size: int = 16,
        embed_dim: int = 192,
        depth: int = 12,
        num_heads: int = 3,
        mlp_ratio: float = 4.0,
        drop_rate: float = 0.0,
        attn_drop_rate: float = 0.0,
        in_channels: int = 3,
        stem: str = "patch",
        pool: str = "cls",
    ) -> None:
        super().__init__(num_classes)
        for name, value in {
            "img_size": img_size,
            "patch_size": patch_size,
            "embed_dim": embed_dim,
            "depth": depth,
            "num_heads": num_heads,
        }.items():
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        self.patch_size = patch_size
        self.num_prefix_tokens = 1  # the class token
        self.embed = PatchEmbedding(img_size, patch_size, in_channels, embed_dim, drop_rate, stem)
        self.blocks = nn.Sequential(
            *[EncoderBlock(embed_dim, num_heads, mlp_ratio, drop_rate, attn_drop_rate) for _ in range(depth)]
        )
        self.norm = nn.LayerNorm(embed_dim, eps=1e-6)
        if pool not in ("cls", "mean"):
            raise ValueError(f"pool must be 'cls' (class token) or 'mean' (average of patch tokens), got {pool!r}")
        self.pool_type = pool
        self.pool = nn.Sequential(
            ClassTokenPool() if pool == "cls" else TokenMeanPool(self.num_prefix_tokens), nn.Dropout(drop_rate)
        )
        self.head = nn.Linear(embed_dim, num_classes)
        self._init_weights()

    def _init_weights(self) -> None:
        """Xavier-uniform Linear weights, zero biases and a zero head (as torchvision's ViT), 0.02
        position embeddings, LeCun-normal patch projection so tokens start with unit-scale entries.

        timm's truncated-normal(0.02) for every Linear suits ViT-B (D = 768); in the narrow ViTs
        this course trains on CPU it leaves the attention almost uniform for a long time (a
        one-batch overfit stalled at loss ~0.4 where the Xavier init reaches ~0).
        """
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.xavier_uniform_(m.weight)
                nn.init.zeros_(m.bias)
        nn.init.zeros_(self.head.weight)
        proj = self.embed.proj
        if isinstance(proj, nn.Conv2d):
            fan_in = proj.in_channels * proj.kernel_size[0] * proj.kernel_size[1]
            nn.init.trunc_normal_(proj.weight, std=math.sqrt(1.0 / fan_in))
            nn.init.zeros_(proj.bias)
        else:  # conv stem: He init for the ReLU convolutions
            for m in proj.modules():
                if isinstance(m, nn.Conv2d):
                    nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
                    if m.bias is not None:
                        nn.init.zeros_(m.bias)
        nn.init.trunc_normal_(self.embed.pos_embed, std=0.02)

    def named_stages(self) -> list[tuple[str, nn.Module]]:
        blocks = [(f"block{i + 1}", b) for i, b in enumerate(self.blocks)]
        return [("embed", self.embed), *blocks, ("norm", self.norm), ("pool", self.pool), ("head", self.head)]

    @property
    def cam_layer(self) -> nn.Module:
        """The LayerNorm in front of the last block's attention (``blocks[-1].norm1``), output
        ``(N, T, D)``; :func:`dflib.explain.grad_cam` drops the class token and lays the patch tokens
        out as a ``(N, D, gh, gw)`` map. Not the block's output: with ``pool="cls"`` that reaches the
        head only through the class token, so its patch tokens get zero gradient. Attention rollout
        (:func:`dflib.explain.attention_rollout`) is the usual explanation for a ViT."""
        return self.blocks[-1].norm1

    def attention_modules(self) -> list[MultiHeadSelfAttention]:
        """One attention module per block, in order (register hooks on ``.attn_probe``)."""
        return [block.attn for block in self.blocks]

    def forward_features(
        self, x: torch.Tensor, need_weights: bool = False
    ) -> torch.Tensor | tuple[torch.Tensor, list[torch.Tensor]]:
        """Image ``(N, C, H, W)`` -> normalised tokens ``(N, T, D)``; with ``need_weights=True`` also
        one ``(N, heads, T, T)`` attention map per block, first block first."""
        x = self.embed(x)  # (N, T, D)
        if not need_weights:
            return self.norm(self.blocks(x))
        maps = []
        for block in self.blocks:
            x, weights = block(x, need_weights=True)
            maps.append(weights)
        return self.norm(x), maps

    def attention_maps(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Every block's attention weights, ``(N, heads, T, T)`` each, first block first.

        Softmax rows (sum to 1 over the keys), class token first. Not detached: gradients can flow
        through them; call under ``torch.no_grad()`` when only looking.
        """
        return self.forward_features(x, need_weights=True)[1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.forward_features(x)  # (N, T, D)
        x = self.pool(x)  # (N, D)
        return self.format_logits(self.head(x))  # (N,) for one logit, else (N, num_classes)
