"""The training augmentation, fast: :class:`TrainTransform`, fused and in two stages.

This is the performance version of :func:`dflib.data.reference_augment.reference_augment`
(read that one first: one plain ``torchvision.transforms.v2`` call per step). Both apply the same
random parameters (:class:`~dflib.data.transforms.AugmentParams`, see
:meth:`TrainTransform.draw_params`) and give the same result up to float rounding, except that
the colour jitter here clips to 0..255 once at the end instead of after each step
(``tests/test_augment_reference.py``). Detectors are trained with this version: a change to the
numbers it produces changes what they learn.

The transform comes in two stages, because on a CPU loader the per-sample work is the cost
(``benchmarks/data_throughput.py``):

* :meth:`TrainTransform.sample_stage`, per image in a loader worker: draw all of the sample's
  random numbers (one draw, from the global torch generator or the ``generator`` passed in),
  random resized crop, then flip and JPEG re-compression for the images that are re-compressed.
  Crop + resize run first, on ``uint8`` and channels-last (torch's AVX2 path), so every later
  step works on the small image. It returns the ``uint8`` image, a quarter of the bytes of a
  ``float32`` one through the worker queue, and the random numbers the second stage needs. A
  loader runs it over a whole batch with :meth:`TrainTransform.sample_stages` (the same
  numbers, each step over all images in turn).
* :meth:`TrainTransform.batch_stage`, per batch on the training device (the GPU when there is
  one): conversion to ``float32``, the flip of the images that were not re-compressed, blur (a
  separable 5-tap filter), colour jitter (one 3x3 colour matrix per image: brightness, contrast
  and saturation are all affine in RGB) and normalisation (one multiply-add), as batched
  tensor ops.

Why the flip is split so: a flip is a permutation of pixels, exact in ``uint8`` and ``float32``
alike, so mirroring right after the conversion gives the same numbers as mirroring the ``uint8``
image (tested), and it is nearly free on a device, where a loader worker spends ~30 us on one
128 px channels-last image (on average ~4 % of a worker's time per image,
``benchmarks/data_throughput.py --profile``). Only an image that is re-compressed must be
mirrored first, in the worker: JPEG's rounding (of the DCT, of the chroma subsampling) does not
commute with a flip.

Calling the transform on one image runs both stages, so a sample looks the same whichever way
it was produced (tested). Both transforms tell the dataset how small it may *decode* an image
(``decode_size``): a JPEG at least twice as large as needed is decoded at 1/2, 1/4 or 1/8 scale
straight from its DCT coefficients, within the limits set by ``AugmentConfig.draft_upscale``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as nnf
from torchvision.transforms.v2 import functional as F

from dflib.data.io import jpeg_roundtrip
from dflib.data.transforms import (
    COLOR_STEPS,
    IMAGENET_MEAN,
    IMAGENET_STD,
    AugmentConfig,
    AugmentParams,
    SeededTransform,
    _check_size,
    _Normalize,
    _resize,
)

_GRAY = (0.2989, 0.587, 0.114)  # ITU-R 601 luma, as torchvision's rgb_to_grayscale


def _jitter_factor(amount: float, v: float | torch.Tensor) -> float | torch.Tensor:
    """A colour factor uniform in ``[max(0, 1 - amount), 1 + amount]`` from a uniform ``v`` (float or tensor)."""
    lo = max(0.0, 1.0 - amount)  # amount 0 gives exactly 1: the step is the identity
    return lo + (1.0 + amount - lo) * v


class TrainTransform(SeededTransform):
    """Random resized crop, flip, JPEG re-compression, blur, colour jitter, normalise.

    Call it as ``t(img)`` (randomness from the global torch generator, so ``torch.manual_seed``
    makes it repeatable) or ``t(img, generator=g)``. ``img`` is a ``uint8`` tensor ``(3, H, W)``;
    the result a normalised ``float32`` tensor ``(3, img_size, img_size)``.

    A training loader runs it in two stages (see the module docstring):
    ``img8, params = t.sample_stage(img, generator)`` in the loader workers, then
    ``x = t.batch_stage(torch.stack(imgs8).to(device), torch.stack(params))`` on the device.
    ``t(img)`` is exactly that with a batch of one. :meth:`draw_params` says which parameters
    (crop box, flip, JPEG quality, ...) a generator state gives.

    One sample's random numbers are one ``float64`` uniform draw, laid out as: 4 per crop
    attempt (scale, ratio, top, left) for :attr:`_N_CROP` attempts; then the :attr:`N_PARAMS`
    that :meth:`batch_stage` gets: flip; JPEG on, JPEG quality (the batch stage mirrors the
    images that were not re-compressed, see the module docstring); blur on, blur sigma; colour
    on, three order keys, one unused, brightness, contrast, saturation, hue.
    """

    _N_CROP = 10  # crop attempts, as torchvision's RandomResizedCrop
    _C = 4 * _N_CROP  # the uniforms after the crop attempts: flip, JPEG (2), blur (2), colour (9)
    N_PARAMS = 14  # random numbers per sample that the batch stage reads: flip + JPEG (3), blur (2), colour (9)

    def __init__(
        self,
        img_size: int = 128,
        augment: AugmentConfig | None = None,
        mean: tuple[float, ...] = IMAGENET_MEAN,
        std: tuple[float, ...] = IMAGENET_STD,
    ) -> None:
        self.img_size = _check_size(img_size)
        self.augment = a = (augment or AugmentConfig()).check()
        self.normalize = _Normalize(mean, std)
        self._log_ratio = (math.log(a.crop_ratio[0]), math.log(a.crop_ratio[1]))
        # Smallest crop side relative to the image side (width: sqrt(scale * ratio), height:
        # sqrt(scale / ratio)); the decoded image must keep it at >= img_size / draft_upscale.
        smallest = min(math.sqrt(a.crop_scale[0] * a.crop_ratio[0]), math.sqrt(a.crop_scale[0] / a.crop_ratio[1]), 1.0)
        self.decode_size = math.ceil(img_size / (a.draft_upscale * smallest) - 1e-9) if a.draft_upscale > 0 else None

    # -- parameters ---------------------------------------------------------------------
    def _draw(self, generator: torch.Generator | None) -> torch.Tensor:
        """All of one sample's uniforms, ``float64``, in the layout of the class docstring."""
        return torch.rand(self._C + self.N_PARAMS, generator=generator, dtype=torch.float64)

    def _crop_box(self, h: int, w: int, u: list[float]) -> tuple[int, int, int, int]:
        """torchvision's RandomResizedCrop.get_params, fed from pre-drawn uniforms ``u``."""
        a, area = self.augment, h * w
        (s0, s1), (l0, l1) = a.crop_scale, self._log_ratio
        for k in range(self._N_CROP):
            us, ur, ui, uj = u[4 * k : 4 * k + 4]
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

    def _jpeg_quality(self, u: list[float]) -> int | None:
        """The JPEG quality drawn by uniforms ``u`` (flip and JPEG ones after the crop's), or ``None``."""
        a, c = self.augment, self._C
        if u[c + 1] >= a.jpeg_p:
            return None
        q0, q1 = a.jpeg_quality
        return q0 + min(int(u[c + 2] * (q1 - q0 + 1)), q1 - q0)

    def draw_params(self, h: int, w: int, generator: torch.Generator | None = None) -> AugmentParams:
        """The parameters that ``t(img, generator)`` applies to an ``h`` x ``w`` image, drawn as it draws them.

        From a generator in the same state, :meth:`sample_stage` draws the same numbers, and the
        two stages decode them with the same formulas as here; pass the result to
        :func:`~dflib.data.reference_augment.reference_augment` to get the same sample plainly.
        """
        a, c = self.augment, self._C
        draw = self._draw(generator).tolist()
        u, p = draw[: c + 3], draw[c + 3 :]
        s0, s1 = a.blur_sigma
        params = dict(
            crop=self._crop_box(h, w, u),
            hflip=u[c] < a.hflip_p,
            jpeg_quality=self._jpeg_quality(u),
            blur_sigma=s0 + (s1 - s0) * p[1] if p[0] < a.blur_p else None,
        )
        if p[2] < a.color_p:
            order = sorted(range(3), key=lambda k: p[3 + k])  # smallest key first, as batch_stage's argsort
            params.update(
                color_order=tuple(COLOR_STEPS[k] for k in order),
                brightness=_jitter_factor(a.brightness, p[7]),
                contrast=_jitter_factor(a.contrast, p[8]),
                saturation=_jitter_factor(a.saturation, p[9]),
                hue=a.hue * (2 * p[10] - 1) if a.hue > 0 else None,
            )
        return AugmentParams(**params)

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
        rows = p[..., 2 : 2 + w] * k0  # symmetric taps: add the mirrored pair, then scale once
        rows += (p[..., 1 : 1 + w] + p[..., 3 : 3 + w]) * k1
        rows += (p[..., 0:w] + p[..., 4 : 4 + w]) * k2
        out = rows[..., 2 : 2 + h, :] * k0
        out += (rows[..., 1 : 1 + h, :] + rows[..., 3 : 3 + h, :]) * k1
        out += (rows[..., 0:h, :] + rows[..., 4 : 4 + h, :]) * k2
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

        def factor(amount: float, v: torch.Tensor) -> torch.Tensor:
            return _jitter_factor(amount, v).to(dev, torch.float32)

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
    def sample_stage(
        self, img: torch.Tensor, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Per image (a loader worker's part): crop, resize, flip, JPEG re-compression.

        Returns the ``uint8`` image ``(3, img_size, img_size)`` and a ``float64`` tensor of the
        :attr:`N_PARAMS` random numbers that :meth:`batch_stage` needs for this image (all of a
        sample's randomness is drawn here, so it depends on ``generator`` alone). The image is
        mirrored here only if it is also re-compressed; otherwise :meth:`batch_stage` mirrors it
        (:meth:`flip_left` says which ones it will).
        """
        return self.sample_stages([img], [generator])[0]

    def sample_stages(
        self, imgs: list[torch.Tensor], generators: list[torch.Generator | None]
    ) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """:meth:`sample_stage` of each image with its own generator, step by step over all of them.

        The same numbers as one call per image (each image draws from its generator alone), but
        every step runs for the whole list before the next one: the same code stays in the
        CPU's caches, where one image after the other alternates between libjpeg, the resize
        kernel and Python (measured: ~10 % less time per image for a loader batch,
        ``benchmarks/data_throughput.py``).
        """
        a, size, c = self.augment, self.img_size, self._C
        imgs = [  # a float image in [0, 1]: the steps below work on 0..255 levels
            img if img.dtype == torch.uint8 else img.mul(255).round_().clamp_(0, 255).to(torch.uint8) for img in imgs
        ]
        draws = [self._draw(g) for g in generators]
        us = [d.tolist() for d in draws]  # one conversion each; the batch stage's numbers stay tensor views
        boxes = [self._crop_box(*img.shape[-2:], u) for img, u in zip(imgs, us)]
        out = [_resize(img[..., y : y + h, x : x + w], size) for img, (y, x, h, w) in zip(imgs, boxes)]
        qualities = [self._jpeg_quality(u) for u in us]
        # only a re-compressed image is mirrored here (before its JPEG); batch_stage mirrors the others
        out = [
            x if q is None else jpeg_roundtrip(x.flip(-1) if u[c] < a.hflip_p else x, q)
            for x, u, q in zip(out, us, qualities)
        ]
        return [(x, d[c:]) for x, d in zip(out, draws)]

    def flip_left(self, params: torch.Tensor) -> torch.Tensor:
        """Which images of a batch :meth:`batch_stage` mirrors: ``(n,)`` bool, from their ``params`` ``(n, N_PARAMS)``.

        Those whose flip was drawn and that were not re-compressed (a re-compressed one was
        mirrored by the sample stage, before its JPEG).
        """
        p = torch.as_tensor(params)
        return (p[:, 0] < self.augment.hflip_p) & (p[:, 1] >= self.augment.jpeg_p)

    def batch_stage(self, x: torch.Tensor, params: torch.Tensor) -> torch.Tensor:
        """Per batch, on ``x``'s device: float, the flips left to it, blur, colour jitter, normalise.

        ``x``: the stacked ``uint8`` images of :meth:`sample_stage` ``(n, 3, S, S)``;
        ``params``: their stacked random numbers ``(n, N_PARAMS)``, a tensor or NumPy array (read on the CPU, so which
        images get mirrored, blurred or jittered is known without waiting for the device). Returns a
        normalised ``float32`` batch, contiguous.
        """
        a = self.augment
        if x.ndim != 4 or params.shape != (x.shape[0], self.N_PARAMS):
            raise ValueError(
                f"batch_stage wants images (n, 3, H, W) and params (n, {self.N_PARAMS}); "
                f"got {tuple(x.shape)} and {tuple(params.shape)}"
            )
        p = torch.as_tensor(params).detach().to("cpu", torch.float64)
        if x.dtype == torch.uint8:
            x = x.to(torch.float32, memory_format=torch.contiguous_format)
        else:  # float images in 0..255 (never modified in place)
            x = x.to(torch.float32, memory_format=torch.contiguous_format, copy=True)
        flip = torch.nonzero(self.flip_left(p)).flatten()
        if len(flip):  # exact: the same numbers as mirroring the uint8 image (see the module docstring)
            idx = flip.to(x.device)
            x[idx] = x[idx].flip(-1)
        blur = torch.nonzero(p[:, 3] < a.blur_p).flatten()
        if len(blur):
            s0, s1 = a.blur_sigma
            idx = blur.to(x.device)
            x[idx] = self._blur(x[idx], self._blur_taps(s0 + (s1 - s0) * p[blur, 4]))
        colour = torch.nonzero(p[:, 5] < a.color_p).flatten()
        if len(colour):
            idx = colour.to(x.device)
            x[idx] = self._jitter(x[idx], p[colour, 6:14])
        return self.normalize.from_255_(x)

    def __call__(self, img: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        img8, params = self.sample_stage(img, generator)
        return self.batch_stage(img8.unsqueeze(0), params.unsqueeze(0))[0]

    def __repr__(self) -> str:
        a = self.augment
        return (
            f"TrainTransform({self.img_size} px: crop scale={a.crop_scale} ratio={a.crop_ratio}, "
            f"hflip p={a.hflip_p}, jpeg p={a.jpeg_p} q={a.jpeg_quality} | per batch: blur p={a.blur_p} "
            f"sigma={a.blur_sigma}, colour p={a.color_p} (b={a.brightness}, c={a.contrast}, "
            f"s={a.saturation}, h={a.hue}), normalize; decode_size={self.decode_size})"
        )


class SampleStage(SeededTransform):
    """The per-image part of a :class:`TrainTransform` (what a loader worker runs).

    ``stage(img, generator)`` returns ``(uint8 image, params)``; pass the stacked results to
    ``stage.transform.batch_stage``. Carries the transform's ``decode_size`` for the dataset.
    """

    def __init__(self, transform: TrainTransform) -> None:
        self.transform = transform
        self.decode_size = transform.decode_size

    def __call__(
        self, img: torch.Tensor, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        return self.transform.sample_stage(img, generator)

    def __repr__(self) -> str:
        return f"SampleStage({self.transform!r})"


def train_transform(
    img_size: int = 128,
    augment: AugmentConfig | None = None,
    mean: tuple[float, ...] = IMAGENET_MEAN,
    std: tuple[float, ...] = IMAGENET_STD,
) -> TrainTransform:
    """Flip, small resized crop, JPEG re-compression, blur and colour jitter, then normalise."""
    return TrainTransform(img_size, augment, mean, std)
