"""Image transforms for detectors, built on torchvision transforms v2 kernels.

Eval: resize to the model input and normalise. Train: the same plus a horizontal flip, a small
random resized crop, and the degradations that deepfake detectors must survive in the wild:
JPEG re-compression, blur and colour jitter.

The training transform comes in two stages, because on a CPU loader the per-sample work is
the cost (``benchmarks/data_throughput.py``):

* :meth:`TrainTransform.sample_stage`, per image in a loader worker: draw all of the sample's
  random numbers (one draw, from the global torch generator or the ``generator`` passed in),
  random resized crop, flip and JPEG re-compression. Crop + resize run first, on ``uint8`` and
  channels-last (torch's AVX2 path), so every later step works on the small image. It returns
  the ``uint8`` image, a quarter of the bytes of a ``float32`` one through the worker queue,
  and the random numbers the second stage needs.
* :meth:`TrainTransform.batch_stage`, per batch on the training device (the GPU when there is
  one): conversion to ``float32``, blur (a separable 5-tap filter), colour jitter (one 3x3 colour
  matrix per image: brightness, contrast and saturation are all affine in RGB) and
  normalisation (one multiply-add), as batched tensor ops.

Calling the transform on one image runs both stages, so a sample looks the same whichever way
it was produced (tested). Both transforms tell the dataset how small it may *decode* an image
(``decode_size``): a JPEG at least twice as large as needed is decoded at 1/2, 1/4 or 1/8 scale
straight from its DCT coefficients, within the limits set by ``AugmentConfig.draft_upscale`` /
``draft``.

The kernels are torchvision's (``v2.functional``, ``torchvision.io``) or plain torch ops;
the results match ``v2.RandomResizedCrop``/``GaussianBlur``/``ColorJitter`` up to float rounding,
except that colour jitter clips to 0..255 once at the end instead of after each step.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as nnf
from torchvision.transforms.v2 import functional as F

from dflib.data.io import jpeg_roundtrip

# ImageNet statistics: the usual choice, and what the reference implementations expect.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
_GRAY = (0.2989, 0.587, 0.114)  # ITU-R 601 luma, as torchvision's rgb_to_grayscale

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

    def check(self) -> "AugmentConfig":
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
            raise ValueError(f"AugmentConfig.jpeg_quality must satisfy 1 <= min <= max <= 100, got {self.jpeg_quality!r}")
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


def _resize(img: torch.Tensor, size: int) -> torch.Tensor:
    """Antialiased bilinear resize of a ``(3, H, W)`` tensor to ``size`` x ``size``.

    The same kernel as ``v2.functional.resize``, called directly on a channels-last copy:
    torch's AVX2 ``uint8`` path wants that layout, and skipping the v2 dispatch halves the cost.
    """
    if img.shape[-2:] == (size, size):
        return img
    x = img.unsqueeze(0).contiguous(memory_format=torch.channels_last)
    return nnf.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False)[0]


class EvalTransform:
    """Resize (antialiased, whole image; face crops are square) and normalise.

    ``decode_size``: with ``draft=True`` (the default, :data:`REDUCED_DECODING`) the dataset may
    decode a JPEG at reduced scale down to this size (never below ``img_size``); ``None``
    (``draft=False``) decodes in full.
    """

    def __init__(self, img_size: int = 128, mean: tuple[float, ...] = IMAGENET_MEAN,
                 std: tuple[float, ...] = IMAGENET_STD, draft: bool = REDUCED_DECODING) -> None:
        self.img_size = _check_size(img_size)
        self.normalize = _Normalize(mean, std)
        self.decode_size = img_size if draft else None

    def __call__(self, img: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        return self.normalize(_resize(img, self.img_size))

    def __repr__(self) -> str:
        return (f"EvalTransform(resize {self.img_size}x{self.img_size} antialiased, normalize mean="
                f"{self.normalize.mean} std={self.normalize.std}, decode_size={self.decode_size})")


class TrainTransform:
    """Random resized crop, flip, JPEG re-compression, blur, colour jitter, normalise.

    Call it as ``t(img)`` (randomness from the global torch generator, so ``torch.manual_seed``
    makes it repeatable) or ``t(img, generator=g)``. ``img`` is a ``uint8`` tensor ``(3, H, W)``;
    the result a normalised ``float32`` tensor ``(3, img_size, img_size)``.

    A training loader runs it in two stages (see the module docstring):
    ``img8, params = t.sample_stage(img, generator)`` in the loader workers, then
    ``x = t.batch_stage(torch.stack(imgs8).to(device), torch.stack(params))`` on the device.
    ``t(img)`` is exactly that with a batch of one.
    """

    _N_CROP = 10  # crop attempts, as torchvision's RandomResizedCrop
    _C = 4 * _N_CROP  # the uniforms after the crop attempts: flip, JPEG (2), then the batch stage's
    N_PARAMS = 11  # random numbers per sample that the batch stage consumes: blur (2), colour (9)

    def __init__(self, img_size: int = 128, augment: AugmentConfig | None = None,
                 mean: tuple[float, ...] = IMAGENET_MEAN, std: tuple[float, ...] = IMAGENET_STD) -> None:
        self.img_size = _check_size(img_size)
        self.augment = a = (augment or AugmentConfig()).check()
        self.normalize = _Normalize(mean, std)
        self._log_ratio = (math.log(a.crop_ratio[0]), math.log(a.crop_ratio[1]))
        # Smallest crop side relative to the image side (width: sqrt(scale * ratio), height:
        # sqrt(scale / ratio)); the decoded image must keep it at >= img_size / draft_upscale.
        smallest = min(math.sqrt(a.crop_scale[0] * a.crop_ratio[0]), math.sqrt(a.crop_scale[0] / a.crop_ratio[1]), 1.0)
        self.decode_size = (math.ceil(img_size / (a.draft_upscale * smallest) - 1e-9)
                            if a.draft_upscale > 0 else None)

    # -- parameters ---------------------------------------------------------------------
    def _crop_box(self, h: int, w: int, u: list[float]) -> tuple[int, int, int, int]:
        """torchvision's RandomResizedCrop.get_params, fed from pre-drawn uniforms ``u``."""
        a, area = self.augment, h * w
        (s0, s1), (l0, l1) = a.crop_scale, self._log_ratio
        for k in range(self._N_CROP):
            us, ur, ui, uj = u[4 * k:4 * k + 4]
            target = area * (s0 + (s1 - s0) * us)
            ratio = math.exp(l0 + (l1 - l0) * ur)
            cw, ch = int(round(math.sqrt(target * ratio))), int(round(math.sqrt(target / ratio)))
            if 0 < cw <= w and 0 < ch <= h:
                return int(ui * (h - ch + 1)), int(uj * (w - cw + 1)), ch, cw
        in_ratio = w / h  # fallback: central crop with the ratio clamped
        if in_ratio < a.crop_ratio[0]:
            cw, ch = w, int(round(w / a.crop_ratio[0]))
        elif in_ratio > a.crop_ratio[1]:
            ch, cw = h, int(round(h * a.crop_ratio[1]))
        else:
            cw, ch = w, h
        return (h - ch) // 2, (w - cw) // 2, ch, cw

    # -- batch-stage steps (float32, 0..255, shape (n, 3, H, W)) ------------------------
    @staticmethod
    def _blur_taps(sigma: torch.Tensor) -> torch.Tensor:
        """Normalised 5-tap Gaussian weights ``(n, 3)`` (centre, +-1, +-2) for sigmas ``(n,)``."""
        k = torch.stack([torch.exp(-0.5 * (i / sigma.double()) ** 2) for i in (0, 1, 2)], 1)
        return k / (k[:, :1] + 2 * k[:, 1:2] + 2 * k[:, 2:3])

    @staticmethod
    def _blur(x: torch.Tensor, taps: torch.Tensor) -> torch.Tensor:
        """Separable 5-tap Gaussian (reflect padding) of ``x (n, 3, H, W)``, one kernel per image."""
        k0, k1, k2 = (taps[:, i].to(x.device, x.dtype).view(-1, 1, 1, 1) for i in range(3))
        h, w = x.shape[-2:]
        p = nnf.pad(x, (2, 2, 2, 2), mode="reflect")
        rows = p[..., 2:2 + w] * k0  # symmetric taps: add the mirrored pair, then scale once
        rows += (p[..., 1:1 + w] + p[..., 3:3 + w]) * k1
        rows += (p[..., 0:w] + p[..., 4:4 + w]) * k2
        out = rows[..., 2:2 + h, :] * k0
        out += (rows[..., 1:1 + h, :] + rows[..., 3:3 + h, :]) * k1
        out += (rows[..., 0:h, :] + rows[..., 4:4 + h, :]) * k2
        return out

    def _jitter(self, x: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        """Brightness, contrast and saturation in a random order, as one colour matrix per image.

        ``x (n, 3, H, W)``, ``u (n, 8)``: the order keys (``u[:, 0:3]``) and factors
        (``u[:, 4:7]``) of each image, and its hue shift (``u[:, 7]``). Each of the three
        steps is affine in RGB (brightness scales, contrast blends with the mean grey level,
        saturation with the pixel's own grey level), so any order of them is one 3x3 matrix
        plus an offset, built here with batched tensor ops on ``x``'s device (no host sync),
        and applied with one batched matrix product instead of three ``uint8`` -> float ->
        ``uint8`` passes. Unlike ``v2.ColorJitter`` the result is clipped to 0..255 once at
        the end, not after every step. Hue (off by default) follows, image by image.
        """
        a, dev = self.augment, x.device
        n, _, h, w = x.shape

        def factor(amount: float, v: torch.Tensor) -> torch.Tensor:  # uniform in [max(0, 1 - amount), 1 + amount]
            lo = max(0.0, 1.0 - amount)  # amount 0 gives exactly 1: the step is the identity
            return (lo + (1.0 + amount - lo) * v).to(dev, torch.float32)

        u = u.to("cpu", torch.float64)
        fb, fc, fs = factor(a.brightness, u[:, 4]), factor(a.contrast, u[:, 5]), factor(a.saturation, u[:, 6])
        order = torch.argsort(u[:, 0:3], dim=1, stable=True).to(dev)  # the op at each position
        g = torch.tensor(_GRAY, device=dev)
        eye = torch.eye(3, device=dev)
        sat = fs.view(n, 1, 1) * eye + (1 - fs).view(n, 1, 1) * g.view(1, 1, 3)  # f*I + (1-f)*1 g^T
        xf = x.reshape(n, 3, h * w)
        mu = xf.mean(2)  # (n, 3): the contrast step's grey level follows from it
        m, d = eye.expand(n, 3, 3), torch.zeros(n, 3, device=dev)
        for k in range(3):
            op = order[:, k]
            grey = (torch.bmm(m, mu.unsqueeze(2)).squeeze(2) + d) @ g  # mean grey after the steps so far
            m_b, d_b = fb.view(n, 1, 1) * m, fb.view(n, 1) * d
            m_c, d_c = fc.view(n, 1, 1) * m, fc.view(n, 1) * d + ((1 - fc) * grey).view(n, 1)
            m_s, d_s = torch.bmm(sat, m), torch.bmm(sat, d.unsqueeze(2)).squeeze(2)
            is_b, is_c = (op == 0).view(n, 1, 1), (op == 1).view(n, 1, 1)
            m = torch.where(is_b, m_b, torch.where(is_c, m_c, m_s))
            d = torch.where(is_b[..., 0], d_b, torch.where(is_c[..., 0], d_c, d_s))
        out = torch.baddbmm(d.unsqueeze(2), m, xf).clamp_(0, 255).view(n, 3, h, w)
        if a.hue > 0:
            shifts = (a.hue * (2 * u[:, 7] - 1)).tolist()
            for i, shift in enumerate(shifts):
                out[i] = F.adjust_hue(out[i] / 255, shift) * 255
        return out

    # -- the two stages ---------------------------------------------------------------------
    def sample_stage(self, img: torch.Tensor, generator: torch.Generator | None = None
                     ) -> tuple[torch.Tensor, torch.Tensor]:
        """Per image (a loader worker's part): crop, resize, flip, JPEG re-compression.

        Returns the ``uint8`` image ``(3, img_size, img_size)`` and a ``float64`` tensor of the
        :attr:`N_PARAMS` random numbers that :meth:`batch_stage` needs for this image (all of a
        sample's randomness is drawn here, so it depends on ``generator`` alone).
        """
        a, size, c = self.augment, self.img_size, self._C
        if img.dtype != torch.uint8:  # a float image in [0, 1]: the steps below work on 0..255 levels
            img = img.mul(255).round_().clamp_(0, 255).to(torch.uint8)
        draw = torch.rand(c + 3 + self.N_PARAMS, generator=generator, dtype=torch.float64)
        u = draw[:c + 3].tolist()
        h, w = img.shape[-2:]
        top, left, ch, cw = self._crop_box(h, w, u)
        img = _resize(img[..., top:top + ch, left:left + cw], size)
        if u[c] < a.hflip_p:
            img = img.flip(-1)
        if u[c + 1] < a.jpeg_p:
            q0, q1 = a.jpeg_quality
            img = jpeg_roundtrip(img, q0 + min(int(u[c + 2] * (q1 - q0 + 1)), q1 - q0))
        return img, draw[c + 3:]

    def batch_stage(self, x: torch.Tensor, params: torch.Tensor) -> torch.Tensor:
        """Per batch, on ``x``'s device: float, blur, colour jitter, normalise.

        ``x``: the stacked ``uint8`` images of :meth:`sample_stage` ``(n, 3, S, S)``;
        ``params``: their stacked random numbers ``(n, N_PARAMS)``, a tensor or NumPy array (read on the CPU, so which
        images get blurred or jittered is known without waiting for the device). Returns a
        normalised ``float32`` batch, contiguous.
        """
        a = self.augment
        if x.ndim != 4 or params.shape != (x.shape[0], self.N_PARAMS):
            raise ValueError(f"batch_stage wants images (n, 3, H, W) and params (n, {self.N_PARAMS}); "
                             f"got {tuple(x.shape)} and {tuple(params.shape)}")
        p = torch.as_tensor(params).detach().to("cpu", torch.float64)
        if x.dtype == torch.uint8:
            x = x.to(torch.float32, memory_format=torch.contiguous_format)
        else:  # float images in 0..255 (never modified in place)
            x = x.to(torch.float32, memory_format=torch.contiguous_format, copy=True)
        blur = torch.nonzero(p[:, 0] < a.blur_p).flatten()
        if len(blur):
            s0, s1 = a.blur_sigma
            idx = blur.to(x.device)
            x[idx] = self._blur(x[idx], self._blur_taps(s0 + (s1 - s0) * p[blur, 1]))
        colour = torch.nonzero(p[:, 2] < a.color_p).flatten()
        if len(colour):
            idx = colour.to(x.device)
            x[idx] = self._jitter(x[idx], p[colour, 3:11])
        return self.normalize.from_255_(x)

    def __call__(self, img: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        img8, params = self.sample_stage(img, generator)
        return self.batch_stage(img8.unsqueeze(0), params.unsqueeze(0))[0]

    def __repr__(self) -> str:
        a = self.augment
        return (f"TrainTransform({self.img_size} px: crop scale={a.crop_scale} ratio={a.crop_ratio}, "
                f"hflip p={a.hflip_p}, jpeg p={a.jpeg_p} q={a.jpeg_quality} | per batch: blur p={a.blur_p} "
                f"sigma={a.blur_sigma}, colour p={a.color_p} (b={a.brightness}, c={a.contrast}, "
                f"s={a.saturation}, h={a.hue}), normalize; decode_size={self.decode_size})")


class SampleStage:
    """The per-image part of a :class:`TrainTransform` (what a loader worker runs).

    ``stage(img, generator)`` returns ``(uint8 image, params)``; pass the stacked results to
    ``stage.transform.batch_stage``. Carries the transform's ``decode_size`` for the dataset.
    """

    def __init__(self, transform: TrainTransform) -> None:
        self.transform = transform
        self.decode_size = transform.decode_size

    def __call__(self, img: torch.Tensor, generator: torch.Generator | None = None
                 ) -> tuple[torch.Tensor, torch.Tensor]:
        return self.transform.sample_stage(img, generator)

    def __repr__(self) -> str:
        return f"SampleStage({self.transform!r})"


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


def train_transform(
    img_size: int = 128,
    augment: AugmentConfig | None = None,
    mean: tuple[float, ...] = IMAGENET_MEAN,
    std: tuple[float, ...] = IMAGENET_STD,
) -> TrainTransform:
    """Flip, small resized crop, JPEG re-compression, blur and colour jitter, then normalise."""
    return TrainTransform(img_size, augment, mean, std)


def apply_transform(transform, img: torch.Tensor, seed: int | None = None) -> torch.Tensor:
    """``transform(img)``; with ``seed``, its randomness is drawn from a generator seeded so.

    Our transforms take the generator directly; any other callable runs in a forked global RNG
    scope, so the main process's generator (dropout, ...) is left untouched either way.
    """
    if seed is None:
        return transform(img)
    if isinstance(transform, (TrainTransform, EvalTransform, SampleStage)):
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
