"""Image transforms for detectors: the shared pieces and the evaluation transform.

Eval (:func:`eval_transform`): resize to the model input and normalise. Train: the same plus a
horizontal flip, a small random resized crop, and the degradations that deepfake detectors must
survive in the wild: JPEG re-compression, blur and colour jitter. The training augmentation is
written twice, with the same random parameters (:class:`AugmentParams`) and the same result
(tested in ``tests/test_augment_reference.py``):

* :mod:`dflib.data.reference_augment`: plainly, one ``torchvision.transforms.v2`` call per step.
  Read it first: it says what the augmentation does.
* :mod:`dflib.data.fused_augment`: :class:`~dflib.data.fused_augment.TrainTransform`, the fast
  version that training uses (two stages: per image in the loader workers, per batch on the
  device; fused kernels). It says how to do it quickly.

This module holds what both need and what the loaders call: the knobs (:class:`AugmentConfig`),
one draw of them (:class:`AugmentParams`), normalisation (:func:`denormalize` undoes it),
the antialiased resize, :class:`EvalTransform` and :func:`apply_transform`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as nnf

# ImageNet statistics: the usual choice, and what the reference implementations expect.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

# The one decision on reduced decoding (issue 12): a JPEG is decoded at the smallest DCT scale
# (1/2, 1/4, 1/8) that still covers the model input, then resized, in training (for the smallest
# crop, enlarged by at most DRAFT_UPSCALE) *and* in evaluation, predict, the robustness sweep's
# clean reference and ONNX preprocessing, so a detector sees the same kind of pixels everywhere.
# A 256 px face crop for a 128 px model is decoded at 128 px: 40 % less decode time and no
# 256 -> 128 resize in the loader (benchmarks/data_throughput.py). PNG and other formats resize.
REDUCED_DECODING = True
DRAFT_UPSCALE = 1.25 if REDUCED_DECODING else 1.0  # 1 / sqrt(0.8 * 0.9) = 1.18 covers the default crops


@dataclass
class AugmentConfig:
    """Knobs of the training augmentation; set a probability to 0 to switch a step off.

    The defaults keep the loader cheap on a CPU (see ``benchmarks/data_throughput.py``): hue
    jitter is off because an RGB->HSV round trip costs several times the rest of the colour
    jitter, and a hue shift is not what real-world degradations do to a photo.

    ``draft_upscale`` bounds reduced JPEG decoding (see :func:`dflib.data.io.read_image_tensor`):
    an image may be decoded at 1/2, 1/4 or 1/8 scale only if the smallest crop that
    ``crop_scale``/``crop_ratio`` can draw is then enlarged by at most this factor to reach
    ``img_size``. The default (:data:`DRAFT_UPSCALE`, 1.25 while :data:`REDUCED_DECODING`) decodes
    256 px face crops at 128 px for 128 px crops, as evaluation does; ``1.0`` never enlarges a
    crop (a 256 px crop is then decoded in full, a 2000 px photo at 1/4 or 1/8 scale), ``0``
    switches reduced decoding off. Change it only together with :data:`REDUCED_DECODING`, or
    the detector trains on other pixels than it is evaluated on.
    """

    hflip_p: float = 0.5
    crop_scale: tuple[float, float] = (0.80, 1.0)
    crop_ratio: tuple[float, float] = (0.9, 1.1)
    jpeg_p: float = 0.25
    jpeg_quality: tuple[int, int] = (60, 95)
    blur_p: float = 0.15
    blur_sigma: tuple[float, float] = (0.1, 1.2)
    color_p: float = 0.3
    brightness: float = 0.15
    contrast: float = 0.15
    saturation: float = 0.15
    hue: float = 0.0
    draft_upscale: float = DRAFT_UPSCALE

    def to_dict(self) -> dict:
        return asdict(self)

    def check(self) -> AugmentConfig:
        """Raise a clear ``ValueError`` for an out-of-range knob; returns ``self``."""
        for name in ("hflip_p", "jpeg_p", "blur_p", "color_p"):
            p = getattr(self, name)
            if not 0 <= p <= 1:
                raise ValueError(f"AugmentConfig.{name} is a probability in [0, 1], got {p!r}")
        (s0, s1), (r0, r1) = self.crop_scale, self.crop_ratio
        if not (0 < s0 <= s1 <= 1):
            raise ValueError(f"AugmentConfig.crop_scale must satisfy 0 < min <= max <= 1, got {self.crop_scale!r}")
        if not (0 < r0 <= r1):
            raise ValueError(f"AugmentConfig.crop_ratio must satisfy 0 < min <= max, got {self.crop_ratio!r}")
        q0, q1 = self.jpeg_quality
        if not (1 <= q0 <= q1 <= 100):
            raise ValueError(
                f"AugmentConfig.jpeg_quality must satisfy 1 <= min <= max <= 100, got {self.jpeg_quality!r}"
            )
        if not (0 < self.blur_sigma[0] <= self.blur_sigma[1]):
            raise ValueError(f"AugmentConfig.blur_sigma must satisfy 0 < min <= max, got {self.blur_sigma!r}")
        for name in ("brightness", "contrast", "saturation"):
            if not getattr(self, name) >= 0:
                raise ValueError(f"AugmentConfig.{name} must be >= 0, got {getattr(self, name)!r}")
        if not 0 <= self.hue <= 0.5:
            raise ValueError(f"AugmentConfig.hue must be in [0, 0.5], got {self.hue!r}")
        if self.draft_upscale < 0:
            raise ValueError(f"AugmentConfig.draft_upscale must be >= 0 (0 = off), got {self.draft_upscale!r}")
        return self


COLOR_STEPS = ("brightness", "contrast", "saturation")  # the colour-jitter steps whose order is drawn


@dataclass(frozen=True)
class AugmentParams:
    """The random parameters of one training sample: one draw from an :class:`AugmentConfig`.

    What each field holds and how it is distributed (``a`` is the config):

    * ``crop``: ``(top, left, height, width)`` of the crop, as ``v2.RandomResizedCrop`` draws it:
      area a uniform fraction ``a.crop_scale`` of the image, aspect ratio (width / height)
      log-uniform in ``a.crop_ratio``, position uniform; a central crop if ten tries do not fit.
    * ``hflip``: mirror the crop, with probability ``a.hflip_p``.
    * ``jpeg_quality``: re-compress at this quality (uniform integer in ``a.jpeg_quality``), with
      probability ``a.jpeg_p``; ``None`` otherwise.
    * ``blur_sigma``: Gaussian blur (5 x 5) with this sigma (uniform in ``a.blur_sigma``), with
      probability ``a.blur_p``; ``None`` otherwise.
    * ``color_order``: with probability ``a.color_p`` the colour jitter runs, its three steps in
      this order (a uniform permutation of :data:`COLOR_STEPS`); ``None``: no colour jitter.
      ``brightness``, ``contrast`` and ``saturation`` are the factors (uniform in
      ``[max(0, 1 - x), 1 + x]`` for ``x = a.brightness``, ...; 1 = unchanged), and ``hue`` the
      hue shift that follows them (uniform in ``[-a.hue, a.hue]``; ``None`` when ``a.hue`` is 0).

    :meth:`dflib.data.fused_augment.TrainTransform.draw_params` draws them;
    :func:`dflib.data.reference_augment.reference_augment` applies them.
    """

    crop: tuple[int, int, int, int]
    hflip: bool = False
    jpeg_quality: int | None = None
    blur_sigma: float | None = None
    color_order: tuple[str, str, str] | None = None
    brightness: float = 1.0
    contrast: float = 1.0
    saturation: float = 1.0
    hue: float | None = None


def _check_size(img_size: int) -> int:
    if not isinstance(img_size, int) or isinstance(img_size, bool) or img_size < 16:
        raise ValueError(f"img_size must be an integer >= 16 pixels, got {img_size!r}")
    return img_size


class _Normalize:
    """``(x - mean) / std`` for a ``uint8`` image (0..255, scaled as ``v2.ToDtype(scale=True)``)
    or a float image in [0, 1]; the input is never modified."""

    def __init__(self, mean: tuple[float, ...], std: tuple[float, ...]) -> None:
        self.mean, self.std = tuple(float(m) for m in mean), tuple(float(s) for s in std)
        if len(self.mean) != 3 or len(self.std) != 3 or min(self.std) <= 0:
            raise ValueError(f"mean and std need 3 values each, std > 0; got mean={mean!r}, std={std!r}")
        m, s = torch.tensor(self.mean), torch.tensor(self.std)
        self._scale255 = (1.0 / (255.0 * s)).view(3, 1, 1)
        self._scale1 = (1.0 / s).view(3, 1, 1)
        self._shift = (-m / s).view(3, 1, 1)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if x.dtype == torch.uint8:
            return self.from_255_(x.to(torch.float32, memory_format=torch.contiguous_format))
        x = x.to(torch.float32, memory_format=torch.contiguous_format, copy=True)
        return x.mul_(self._scale1.to(x.device)).add_(self._shift.to(x.device))

    def from_255_(self, x: torch.Tensor) -> torch.Tensor:
        """In place on a contiguous float tensor ``(..., 3, H, W)`` holding 0..255 values."""
        if x.device != self._scale255.device:
            return x.mul_(self._scale255.to(x.device)).add_(self._shift.to(x.device))
        return x.mul_(self._scale255).add_(self._shift)


# The ATen op behind nnf.interpolate(mode="bilinear", antialias=True), without interpolate's Python
# argument checks (~4 us a call, ~8 % of resizing a 117 px crop to 128 px here). The same kernel, so
# the same pixels (tests/test_augment_reference.py); interpolate itself where a torch build lacks it.
_UPSAMPLE_AA = getattr(torch._C._nn, "_upsample_bilinear2d_aa", None)


def _resize(img: torch.Tensor, size: int) -> torch.Tensor:
    """Antialiased bilinear resize of a ``(3, H, W)`` tensor to ``size`` x ``size``.

    The same kernel as ``v2.functional.resize``, called directly on a channels-last copy:
    torch's AVX2 ``uint8`` path wants that layout, and skipping the v2 dispatch and
    ``interpolate``'s checks makes a crop + resize of a 128 px face ~2x cheaper than
    ``v2.functional.resized_crop`` (53 vs 103 us here), with the same pixels.
    """
    if img.shape[-2:] == (size, size):
        return img
    x = img.unsqueeze(0).contiguous(memory_format=torch.channels_last)
    if _UPSAMPLE_AA is not None:
        return _UPSAMPLE_AA(x, (size, size), False, None)[0]
    return nnf.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False)[0]


class SeededTransform:
    """Base of dflib's transforms: ``t(img, generator=None)`` draws its randomness from ``generator``.

    :func:`apply_transform` passes such a transform a seeded generator instead of reseeding the
    global one.
    """

    def __call__(self, img: torch.Tensor, generator: torch.Generator | None = None):
        raise NotImplementedError


class EvalTransform(SeededTransform):
    """Resize (antialiased, whole image; face crops are square) and normalise.

    ``decode_size``: with ``draft=True`` (the default, :data:`REDUCED_DECODING`) the dataset may
    decode a JPEG at reduced scale down to this size (never below ``img_size``); ``None``
    (``draft=False``) decodes in full.
    """

    def __init__(
        self,
        img_size: int = 128,
        mean: tuple[float, ...] = IMAGENET_MEAN,
        std: tuple[float, ...] = IMAGENET_STD,
        draft: bool = REDUCED_DECODING,
    ) -> None:
        self.img_size = _check_size(img_size)
        self.normalize = _Normalize(mean, std)
        self.decode_size = img_size if draft else None

    def __call__(self, img: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        return self.normalize(_resize(img, self.img_size))

    def __repr__(self) -> str:
        return (
            f"EvalTransform(resize {self.img_size}x{self.img_size} antialiased, normalize mean="
            f"{self.normalize.mean} std={self.normalize.std}, decode_size={self.decode_size})"
        )


def eval_transform(
    img_size: int = 128,
    mean: tuple[float, ...] = IMAGENET_MEAN,
    std: tuple[float, ...] = IMAGENET_STD,
    *,
    draft: bool = REDUCED_DECODING,
) -> EvalTransform:
    """Resize (antialiased, whole image, aspect ratio ignored as face crops are square) + normalise.

    ``draft=True`` (the default, :data:`REDUCED_DECODING`) lets the dataset decode JPEGs at
    reduced scale (never below ``img_size``), as training does: the same kind of pixels in both.
    ``draft=False`` decodes in full (for detectors trained before generator v3 / issue 12).
    """
    return EvalTransform(img_size, mean, std, draft=draft)


def apply_transform(transform: Callable, img: torch.Tensor, seed: int | None = None) -> torch.Tensor:
    """``transform(img)``; with ``seed``, its randomness is drawn from a generator seeded so.

    (A :class:`~dflib.data.fused_augment.SampleStage` returns its ``(image, params)`` pair.)

    Our transforms (:class:`SeededTransform`) take the generator directly; any other callable runs
    in a forked global RNG scope, so the main process's generator (dropout, ...) is left
    untouched either way.
    """
    if seed is None:
        return transform(img)
    if isinstance(transform, SeededTransform):
        return transform(img, generator=torch.Generator().manual_seed(int(seed)))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        return transform(img)


def denormalize(
    x: torch.Tensor,
    mean: tuple[float, ...] = IMAGENET_MEAN,
    std: tuple[float, ...] = IMAGENET_STD,
) -> torch.Tensor:
    """Undo :func:`eval_transform`'s normalisation: float tensor in [0, 1] for display."""
    m = torch.tensor(mean, dtype=x.dtype, device=x.device).view(-1, 1, 1)
    s = torch.tensor(std, dtype=x.dtype, device=x.device).view(-1, 1, 1)
    return (x * s + m).clamp(0, 1)
