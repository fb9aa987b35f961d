"""The four fake-making manipulations, each a small model of a real deepfake pipeline.

Each one takes a rendered real face (uint8 image + FaceGeometry) and returns the fake plus a
JSON-able dict of the random parameters it used, so every fake is explainable from the
manifest. They all change *local* structure (blending seams, resampling blur, periodic
upsampling patterns, warped features) while keeping colours and brightness unbiased on
average, and every fake ends with :func:`match_spectrum`, which gives the image back the power
spectrum of its source: a detector has to look at local evidence, not at a global statistic.

* ``face_swap``  - identity swap (FaceSwap / DeepFaceLab style): the inner face of another
  identity is aligned on the landmarks, passed through a lower-resolution "generator",
  colour-corrected imperfectly and pasted through a soft mask.
* ``self_blend`` - Self-Blended Images (Shiohara & Yamasaki, CVPR 2022): the face is blended
  with a slightly shifted, scaled, colour-jittered and blurred/sharpened copy of itself
  through a randomly deformed soft mask; only the blending artifacts remain (ghosted edges
  where both copies show, a colour seam, a change of sharpness).
* ``upsampling`` - a GAN-generated face region: the face is reduced to 1/3 or 1/4 and upsampled
  again the way generators do it, by transposed convolution (uneven kernel overlap gives the
  checkerboard of Odena et al., 2016, here of varied strength), nearest-neighbour repetition, or
  anti-aliased bicubic / Lanczos interpolation. The first two leave a pattern with the period of
  the factor and peaks in the 2-D spectrum (Durall et al., 2020; Frank et al., 2020); all of them
  lose detail.
* ``local_warp`` - expression / reenactment edits (Face2Face, NeuralTextures): smooth
  displacement fields move the mouth or eyes and the edited area is re-rendered at a lower
  resolution and blended back.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
from PIL import Image
from scipy import ndimage

from ._raster import grid, remap, resize, rgb, smoothstep_edge, to_chw_float, to_hwc_uint8
from .faces import FaceGeometry

METHODS: tuple[str, ...] = ("face_swap", "self_blend", "upsampling", "local_warp")


def _r(x: float, nd: int = 3) -> float:
    return round(float(x), nd)


def blend_mask(
    geo: FaceGeometry,
    rng: np.random.Generator,
    *,
    scale=(0.8, 0.64),
    offset_v: float = 0.12,
    feather: float = 8.0,
    wobble: float = 0.07,
) -> tuple[np.ndarray, dict]:
    """Soft, randomly deformed elliptical mask over the inner face (brows to chin top).

    The ellipse radius is modulated by a few random harmonics (like the elastic mask
    deformation of SBI) and the edge fades over `feather` pixels with a smoothstep.
    """
    a, b = geo.axes
    u, v = geo.face_frame()
    du, dv = u / (scale[0] * a), (v - offset_v * b) / (scale[1] * b)
    theta = np.arctan2(dv, du)
    amps = rng.uniform(-wobble, wobble, 3)
    phases = rng.uniform(0, 2 * math.pi, 3)
    radius = 1 + sum(float(amp) * np.cos(k * theta + float(ph)) for k, amp, ph in zip((2, 3, 4), amps, phases))
    sd = (np.sqrt(du * du + dv * dv) - radius) * (min(scale) * a)  # ~ signed distance in pixels
    mask = smoothstep_edge(sd, feather)
    return mask, {"feather_px": _r(feather, 2), "wobble": [_r(x) for x in amps]}


def add_grain(
    out: np.ndarray, ref: np.ndarray, rng: np.random.Generator, gain: float, where: np.ndarray | None = None
) -> np.ndarray:
    """Add fine luminance noise carrying `gain` times the detail energy `out` lost against `ref`.

    Generators do not only blur: they paint their own fine texture. Adding it back keeps the
    edited image's high-frequency energy (hence its JPEG file size) close to the original's,
    while the texture itself changes - a local inconsistency, not a global cue. `where`
    (H x W weights) restricts the energy measurement to the region that will be pasted.
    """
    err = ((ref - out) ** 2).mean(0)
    lost = float(np.sqrt(err.mean() if where is None else (err * where).sum() / max(float(where.sum()), 1e-6)))
    return out + (gain * lost) * rng.standard_normal(out.shape[1:], dtype=np.float32)


def generator_resample(
    img: np.ndarray,
    factor: float,
    rng: np.random.Generator | None = None,
    grain: float = 0.0,
    where: np.ndarray | None = None,
) -> np.ndarray:
    """Down-then-up resampling: what a generator working at size/factor px leaves behind.

    With `grain` > 0 (and an `rng`), generator texture is added back (see `add_grain`).
    """
    size = img.shape[-1]
    low = max(4, int(round(size / factor)))
    out = resize(resize(img, low, Image.BILINEAR), size, Image.BICUBIC)
    return add_grain(out, img, rng, grain, where) if rng is not None and grain > 0 else out


def _mix(base: np.ndarray, other: np.ndarray, mask: np.ndarray) -> np.ndarray:
    return base + mask * (other - base)


def _similarity_to(src_pts: np.ndarray, dst_pts: np.ndarray) -> tuple[complex, complex]:
    """Least-squares similarity (rotation, scale, shift) z -> alpha*z + beta taking dst points to src.

    Used as a backward map: for every target pixel it says where to read in the donor."""
    p = dst_pts[:, 0] + 1j * dst_pts[:, 1]
    q = src_pts[:, 0] + 1j * src_pts[:, 1]
    pc, qc = p - p.mean(), q - q.mean()
    alpha = (np.conj(pc) * qc).sum() / (np.abs(pc) ** 2).sum()
    return complex(alpha), complex(q.mean() - alpha * p.mean())


def face_swap(
    image: np.ndarray, geo: FaceGeometry, rng: np.random.Generator, donor: tuple[np.ndarray, FaceGeometry]
) -> tuple[np.ndarray, dict, np.ndarray]:
    """Paste the aligned, re-generated inner face of `donor` onto `image` (an identity swap)."""
    k = geo.size / 256
    d_img, d_geo = donor
    # 1. align the donor on the target's eyes and mouth (what landmark-based pipelines do)
    alpha, beta = _similarity_to(d_geo.landmarks()[[0, 1, 3]], geo.landmarks()[[0, 1, 3]])
    ys, xs = grid(geo.size)
    aligned = remap(
        to_chw_float(d_img),
        alpha.imag * xs + alpha.real * ys + beta.imag,
        alpha.real * xs - alpha.imag * ys + beta.real,
    )
    # 2. the swap network works at a lower resolution (e.g. 64-100 px for the face)
    factor = rng.uniform(2.5, 4.0)
    mask, mparams = blend_mask(geo, rng, feather=rng.uniform(4, 12) * k)
    # grain gains (0.2 here, 0.35 in local_warp, 0.2 in upsampling) are kept low: match_spectrum puts the
    # rest of the lost power back around the face, and more white grain here made fakes' files larger
    aligned = generator_resample(aligned, factor, rng, grain=0.2, where=mask)
    # 3. imperfect colour transfer: the donor's mean colour moves only part of the way
    tgt = to_chw_float(image)
    wsum = float(mask.sum())
    m_t = (tgt * mask).sum((1, 2)) / wsum
    m_d = (aligned * mask).sum((1, 2)) / wsum
    correction = rng.uniform(0.4, 0.85)
    offset = rng.uniform(-8, 8, 3)
    aligned += rgb(correction * (m_t - m_d) + offset)
    # 4. paste through the soft mask
    out = _mix(tgt, aligned, mask)
    return (
        out,
        {
            "generator_factor": _r(factor),
            "color_correction": _r(correction),
            "color_offset": [_r(x, 2) for x in offset],
            "scale": _r(1 / abs(alpha)),
            **mparams,
        },
        mask,
    )


def self_blend(image: np.ndarray, geo: FaceGeometry, rng: np.random.Generator) -> tuple[np.ndarray, dict, np.ndarray]:
    """Self-Blended Image: blend the face with a perturbed copy of itself (Shiohara & Yamasaki 2022)."""
    k = geo.size / 256
    tgt = to_chw_float(image)
    # source-target augmentation: contrast, brightness and per-channel colour shifts ...
    shift_rgb = float(rng.choice([-1, 1])) * rng.uniform(5, 15) + rng.uniform(-10, 10, 3)
    src = tgt * rng.uniform(0.9, 1.1) + rgb(shift_rgb)
    # ... and one frequency perturbation: downscale-upscale (blur) or, less often, sharpening
    if rng.random() < 0.75:
        kind, amount = "downscale", rng.uniform(2.0, 4.0)
        src = generator_resample(src, amount)
    else:
        kind, amount = "sharpen", rng.uniform(0.5, 1.0)
        src += amount * (src - generator_resample(src, rng.uniform(3.0, 5.0)))
    # small scale change and shift: the landmarks of the two faces no longer match exactly
    scale = 1 + float(rng.choice([-1, 1])) * rng.uniform(0.03, 0.07)
    shift = rng.uniform(4, 8, 2) * rng.choice([-1, 1], 2) * k
    ys, xs = grid(geo.size)
    cx, cy = geo.center
    src = remap(src, (ys - cy - float(shift[1])) / scale + cy, (xs - cx - float(shift[0])) / scale + cx)
    mask, mparams = blend_mask(
        geo, rng, scale=(rng.uniform(0.72, 0.9), rng.uniform(0.58, 0.72)), feather=rng.uniform(3, 8) * k
    )
    ratio = rng.uniform(0.45, 0.9)  # < 1: both copies show through, edges of eyes/mouth double
    out = _mix(tgt, src, mask * ratio)
    return (
        out,
        {
            "color_shift": [_r(x, 2) for x in shift_rgb],
            "frequency": kind,
            "amount": _r(amount),
            "scale": _r(scale),
            "shift_px": [_r(x, 2) for x in shift],
            "blend_ratio": _r(ratio),
            **mparams,
        },
        mask,
    )


def _upsample(low: np.ndarray, factor: int, mode: str, rng: np.random.Generator) -> tuple[np.ndarray, dict]:
    """Upsample `low` (3 x h x w) by an integer factor the way a generator layer does."""
    if mode == "nearest":  # nearest-neighbour repetition: blocks of factor x factor pixels
        return low.repeat(factor, 1).repeat(factor, 2), {}
    if mode in ("bicubic", "lanczos"):  # anti-aliased interpolation, as modern generators use: no periodic trace
        return resize(low, low.shape[-1] * factor, Image.BICUBIC if mode == "bicubic" else Image.LANCZOS), {}
    # Transposed convolution = zero insertion + convolution. Each output phase (position
    # modulo the stride) is a sum over a different subset of kernel taps; unless every subset
    # sums to the same value ("even overlap") the phases get different gains: the checkerboard
    # of Odena et al. (2016). We take the bilinear kernel (even overlap) and perturb its taps
    # so that phase r gets gain 1 + s*cos(2*pi*r/factor), a pure period-`factor` pattern.
    i = np.arange(-(factor - 1), factor)
    strength = rng.uniform(0.04, 0.16)  # from barely visible to obvious
    kernel = 1 - np.abs(i) / factor
    kernel[factor - 1 :] += strength * np.cos(2 * np.pi * np.arange(factor) / factor)
    c, h, w = low.shape
    up = np.zeros((c, h * factor, w * factor), np.float32)
    up[:, ::factor, ::factor] = low
    up = ndimage.convolve1d(up, kernel.astype(np.float32), axis=1, mode="nearest")
    up = ndimage.convolve1d(up, kernel.astype(np.float32), axis=2, mode="nearest")
    return up, {"checkerboard_strength": _r(strength)}


def upsampling(image: np.ndarray, geo: FaceGeometry, rng: np.random.Generator) -> tuple[np.ndarray, dict, np.ndarray]:
    """Replace the face region by a low-resolution copy upsampled like a GAN generator would.

    The generator works at 1/3 or 1/4 of the image size and upsamples by transposed
    convolution (checkerboard of period 3-4 px at 256 px, 1.5-2 px after the loaders' resize to
    128), nearest-neighbour repetition, or anti-aliased bicubic / Lanczos interpolation (no
    periodic trace, only the missing detail that its painted grain replaces). The generator's
    pixel grid is offset randomly from the crop's grid.
    """
    size = geo.size
    factor = max(2, int(round(float(rng.choice([3, 4, 4])) * size / 256)))
    mode = str(rng.choice(["transposed_conv", "nearest", "bicubic", "lanczos"]))
    offset = [int(x) for x in rng.integers(0, factor, 2)]
    tgt = to_chw_float(image)
    mask, mparams = blend_mask(
        geo,
        rng,
        scale=(rng.uniform(1.0, 1.15), rng.uniform(0.95, 1.1)),
        offset_v=0.0,
        feather=rng.uniform(6, 14) * size / 256,
    )
    shifted = np.roll(tgt, (-offset[0], -offset[1]), axis=(1, 2))  # the mask never reaches the borders
    low = resize(shifted, -(-size // factor), Image.BOX)
    up, uparams = _upsample(low, factor, mode, rng)
    up = np.roll(up[:, :size, :size], tuple(offset), axis=(1, 2))
    up = add_grain(up, tgt, rng, 0.2, where=mask)
    out = _mix(tgt, up, mask)
    return out, {"mode": mode, "factor": factor, "grid_offset": offset, **uparams, **mparams}, mask


def local_warp(image: np.ndarray, geo: FaceGeometry, rng: np.random.Generator) -> tuple[np.ndarray, dict, np.ndarray]:
    """Move the mouth and/or eyes with smooth Gaussian displacement fields, re-render the area."""
    k = geo.size / 256
    ys, xs = grid(geo.size)
    targets = [t for t in ("mouth", "eyes") if rng.random() < 0.6] or [str(rng.choice(["mouth", "eyes"]))]
    dx, dy, region = np.zeros_like(xs), np.zeros_like(xs), np.zeros_like(xs)
    fields = []
    ew, _ = geo.eye_size
    centres = {"mouth": [(geo.mouth, geo.mouth_width)], "eyes": [(geo.left_eye, ew * 1.4), (geo.right_eye, ew * 1.4)]}
    for target in targets:
        for (cx, cy), sigma in centres[target]:
            g = np.exp(-((xs - cx) ** 2 + (ys - cy) ** 2) / (2 * sigma**2))
            if rng.random() < 0.5:  # translate the feature (lower the jaw, raise the brows)
                amp, ang = rng.uniform(5, 10) * k, rng.uniform(0, 2 * math.pi)
                dx += amp * math.cos(ang) * g
                dy += amp * math.sin(ang) * g
                fields.append({"target": target, "kind": "shift", "amp_px": _r(amp, 2), "angle": _r(ang)})
            else:  # grow or shrink it (open the mouth, widen the eyes)
                f = float(rng.choice([-1, 1])) * rng.uniform(0.2, 0.35)
                dx += f * (xs - cx) * g
                dy += f * (ys - cy) * g
                fields.append({"target": target, "kind": "scale", "factor": _r(f)})
            region = np.maximum(region, g ** (1 / 2.56))  # same Gaussian, 1.6x wider
    warped = remap(to_chw_float(image), ys - dy, xs - dx)  # backward map: read at x - d(x)
    factor = rng.uniform(3.0, 4.0)  # the edited area is re-rendered at a lower resolution
    mask = np.clip(region * 1.6 - 0.3, 0, 1)
    out = _mix(warped, generator_resample(warped, factor, rng, grain=0.35, where=mask), mask)
    return out, {"targets": targets, "fields": fields, "rerender_factor": _r(factor)}, mask


@lru_cache(maxsize=4)
def _ring_index(size: int) -> tuple[np.ndarray, int]:
    """Ring (0 .. size//2 - 1, corners beyond Nyquist in the last ring) of each ``rfft2`` bin."""
    radius = np.hypot(np.fft.fftfreq(size)[:, None], np.fft.rfftfreq(size)[None, :])
    n = size // 2
    return np.minimum((radius / 0.5 * n).astype(np.int64), n - 1), n


@lru_cache(maxsize=4)
def _hann2d(size: int) -> np.ndarray:
    w = np.hanning(size).astype(np.float32)
    return np.outer(w, w)


def match_spectrum(
    fake: np.ndarray,
    source: np.ndarray,
    region: np.ndarray,
    rng: np.random.Generator,
    lowest: float = 0.03,
    spread: float = 12.0,
    iterations: int = 5,
) -> np.ndarray:
    """Put the power that the edited `region` of `fake` lost back *around* it, as shaped grain,
    until the image's power spectrum matches `source`'s, the real face it was made from.

    The anti-forensic last step of modern forgery pipelines: generators are trained with
    spectral losses or post-processed until their spectrum looks like a camera's (Durall et al.
    2020; Jung & Keuper 2021; Dong et al. 2022). A re-generated face lacks detail, which shows in
    the azimuthal power spectrum of the whole image; here luminance grain whose spectrum is the
    missing one (per frequency ring, from `lowest` cycles/px up, measured through the Hann window
    a spectral probe uses) is added in a band ``spread`` px wide (at 256 px) around the region.
    The spectrum, high-frequency energy and sharpness of the image then say nothing about the
    label; the face keeps its deficit (only detail finer than 0.3 cycles/px, which no 128 px
    detector sees, is softened where the region's grain overshoots), softer than the grainier
    hair, ears and neck around it: local evidence for a detector that compares a region with its
    surroundings.
    """
    size = fake.shape[-1]
    if fake.shape[-2] != size:
        return fake
    idx, n = _ring_index(size)
    band = np.clip(ndimage.gaussian_filter(region, spread * size / 256) - region, 0, None)
    band = (band / max(float(band.max()), 1e-6)).astype(np.float32)
    win = _hann2d(size)
    luma = np.array([0.299, 0.587, 0.114], np.float32).reshape(3, 1, 1)
    counts = np.maximum(np.bincount(idx.ravel(), minlength=n), 1)

    def ring_log_power(gray: np.ndarray) -> np.ndarray:  # what the spectral probe measures, per ring
        p = np.abs(np.fft.rfft2((gray - gray.mean()) * win)) ** 2
        return np.bincount(idx.ravel(), weights=np.log10(p + 1e-3).ravel(), minlength=n) / counts

    target = ring_log_power((source * luma).sum(0))
    top = np.arange(n) >= int(0.6 * n)  # above 0.3 cycles/px: finer than any 128 px detector sees
    for _ in range(2):  # surplus up there (the region's white grain): soften the region's finest detail
        cut = np.where(top, np.minimum(1.0, 10.0 ** ((target - ring_log_power((fake * luma).sum(0))) / 2)), 1.0)
        soft = np.fft.irfft2(np.fft.rfft2(fake) * cut[idx].astype(np.float32), s=(size, size)).astype(np.float32)
        fake = fake + region * (soft - fake)
    gray = (fake * luma).sum(0)
    now = ring_log_power(gray)
    white = np.fft.rfft2(rng.standard_normal((size, size), dtype=np.float32))
    # first guess: the missing power, spread over the band's share of the window
    share = float((band * win).sum() / win.sum())
    amp = np.sqrt(np.clip(10.0**target - 10.0**now, 0, None) / max(share, 1e-3)) / size
    first = int(np.ceil(lowest * 2 * n))
    amp[:first] = 0.0
    grain = np.zeros_like(gray)
    for _ in range(iterations):
        grain = np.fft.irfft2(white * amp[idx].astype(np.float32), s=(size, size)).astype(np.float32) * band
        error = target - ring_log_power(gray + grain)
        amp = np.clip(amp * 10.0 ** (error * 0.75), 0, None)
        amp[:first] = 0.0
    return _soften_periphery(fake + grain, source, win, np.clip(band + region, 0, 1))


def _soften_periphery(img: np.ndarray, source: np.ndarray, win: np.ndarray, inner: np.ndarray) -> np.ndarray:
    """Blur the image's periphery (where the Hann window is below 1/2, outside `inner`) just enough that
    the Laplacian variance of the whole image is back to the source's: the grain added around the face
    counts more without a window than with one, and would otherwise show in sharpness and file size."""
    luma = np.array([0.299, 0.587, 0.114], np.float32).reshape(3, 1, 1)

    def sharpness(x: np.ndarray) -> float:
        return float(ndimage.laplace((x * luma).sum(0)).var())

    goal = sharpness(source)
    if sharpness(img) <= goal:
        return img
    outer = (np.clip(1 - 2 * win, 0, 1) * (1 - inner)).astype(np.float32)
    lo, hi = 0.0, 2.0
    for _ in range(6):  # bisection on the blur's sigma
        mid = (lo + hi) / 2
        cand = img + outer * (ndimage.gaussian_filter(img, (0, mid, mid)) - img)
        lo, hi = (mid, hi) if sharpness(cand) > goal else (lo, mid)
    return img + outer * (ndimage.gaussian_filter(img, (0, hi, hi)) - img)


def manipulate(
    method: str,
    image: np.ndarray,
    geometry: FaceGeometry,
    rng: np.random.Generator,
    donor: tuple[np.ndarray, FaceGeometry] | None = None,
) -> tuple[np.ndarray, dict]:
    """Apply one manipulation family to a real face; returns (fake H x W x 3 uint8, JSON-able params).

    `donor` (image, geometry) of another face is required for ``face_swap``, ignored otherwise.
    Every fake ends with :func:`match_spectrum` against the real face it was made from.
    """
    if method == "face_swap":
        if donor is None:
            raise ValueError("manipulate('face_swap', ...) needs donor=(image, geometry) of another face")
        fake, params, mask = face_swap(image, geometry, rng, donor)
    else:
        funcs = {"self_blend": self_blend, "upsampling": upsampling, "local_warp": local_warp}
        if method not in funcs:
            raise ValueError(f"method={method!r} is unknown; choose one of {METHODS}")
        fake, params, mask = funcs[method](image, geometry, rng)
    return to_hwc_uint8(match_spectrum(fake, to_chw_float(image), mask, rng)), params
