"""The capture-and-processing chain every image goes through, real or fake alike.

A real photo is not a clean render: lens blur, a colour filter array (CFA) and its
demosaicing, sensor noise, in-camera sharpening, resizing by whoever published it, one or two
rounds of JPEG. Each step reshapes the power spectrum, and each varies from image to image.
Running reals *and* fakes through the same randomised chain (the settings of image ``i`` are
shared by ``real_i`` and ``fake_i``, :func:`camera_settings`) makes the global statistics and
the spectral envelope vary far more between shots than between classes, so none of them
carries the label (``dflib.evaluation.baselines``); what is left is the local evidence.

Steps, in order (:func:`camera`):

1. optics: a light blur (sigma 0-0.6 px);
2. sensor: read + shot noise; with probability 0.6 on a Bayer mosaic (RGGB, random phase) that
   is then demosaiced bilinearly, which correlates the noise and leaves the period-2 CFA trace
   (Popescu & Farid 2005); otherwise luminance + half-resolution chroma noise as before;
3. processing: unsharp masking (amount 0-0.8) on half the images;
4. resampling (60 %): down to 55-95 % of the side and back up, each way with a random kernel
   (box, bilinear, Hamming, bicubic, Lanczos), as a re-published photo is;
5. JPEG at the image's quality, on a third of the images after a first JPEG at another one.
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image
from scipy import ndimage

from ._raster import blur3, resize, to_chw_float, to_hwc_uint8

KERNELS = {
    "box": Image.BOX,
    "bilinear": Image.BILINEAR,
    "hamming": Image.HAMMING,
    "bicubic": Image.BICUBIC,
    "lanczos": Image.LANCZOS,
}
_K_G = np.array([[0, 1, 0], [1, 4, 1], [0, 1, 0]], np.float32) / 4  # bilinear demosaicing kernels
_K_RB = np.array([[1, 2, 1], [2, 4, 2], [1, 2, 1]], np.float32) / 4


def draw_settings(rng: np.random.Generator, jpeg_quality: tuple[int, int], noise_sigma: tuple[float, float]) -> dict:
    """Random camera settings (JSON-able), drawn in a fixed order from `rng`."""
    names = list(KERNELS)
    s = {
        "jpeg_quality": int(rng.integers(jpeg_quality[0], jpeg_quality[1] + 1)),
        "noise_sigma": round(float(rng.uniform(*noise_sigma)), 3),
        "shot_noise": round(float(rng.uniform(0.0, 0.04)), 4),
        "blur_sigma": round(float(rng.uniform(0.0, 0.6)), 3),
        "cfa": bool(rng.random() < 0.6),
        "cfa_phase": [int(x) for x in rng.integers(0, 2, 2)],
        "sharpen": round(float(rng.uniform(0.0, 0.8)) if rng.random() < 0.5 else 0.0, 3),
        "resample": round(float(rng.uniform(0.55, 0.95)) if rng.random() < 0.6 else 1.0, 3),
        "down_kernel": names[int(rng.integers(len(names)))],
        "up_kernel": names[int(rng.integers(len(names)))],
    }
    first = int(rng.integers(60, 96))
    s["first_jpeg"] = first if rng.random() < 1 / 3 else None
    return s


def _demosaic(mosaic: np.ndarray, masks: np.ndarray) -> np.ndarray:
    """Bilinear demosaicing of a Bayer mosaic (H x W) given the 3 x H x W channel masks."""
    out = np.empty(masks.shape, np.float32)
    for c, kernel in zip(range(3), (_K_RB, _K_G, _K_RB)):
        out[c] = ndimage.convolve(mosaic * masks[c], kernel, mode="mirror")
    return out


def _bayer_masks(h: int, w: int, phase: list[int]) -> np.ndarray:
    ys, xs = np.mgrid[0:h, 0:w]
    ys, xs = (ys + phase[0]) % 2, (xs + phase[1]) % 2
    return np.stack([(ys == 0) & (xs == 0), (ys + xs) == 1, (ys == 1) & (xs == 1)]).astype(np.float32)


def _jpeg(x: np.ndarray, quality: int) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(to_hwc_uint8(x)).save(buf, format="JPEG", quality=int(quality))
    return buf.getvalue()


def camera(image: np.ndarray, rng: np.random.Generator, settings: dict) -> bytes:
    """Run an H x W x 3 uint8 image through the chain (module docstring); returns JPEG bytes.

    `settings` come from :func:`draw_settings`; older settings without the new keys (only
    noise and JPEG) run the noise + JPEG part alone."""
    x = to_chw_float(image)
    c, h, w = x.shape
    x = blur3(x, settings.get("blur_sigma", 0.0))
    std = np.sqrt(settings["noise_sigma"] ** 2 + settings["shot_noise"] * np.clip(x.mean(0), 0, None))
    if settings.get("cfa"):
        masks = _bayer_masks(h, w, settings["cfa_phase"])
        mosaic = (x * masks).sum(0) + std * rng.standard_normal((h, w), dtype=np.float32)
        x = _demosaic(mosaic, masks)
    else:
        luma = rng.standard_normal((h, w), dtype=np.float32)
        chroma = rng.standard_normal((c, (h + 1) // 2, (w + 1) // 2), dtype=np.float32)
        chroma = chroma.repeat(2, 1).repeat(2, 2)[:, :h, :w]
        x += std * (0.85 * luma + 0.5 * chroma)
    if settings.get("sharpen", 0.0) > 0:
        x += settings["sharpen"] * (x - blur3(x.copy(), 0.7))
    scale = settings.get("resample", 1.0)
    if scale < 1.0:
        low = max(8, int(round(h * scale)))
        x = resize(resize(np.clip(x, 0, 255), low, KERNELS[settings["down_kernel"]]), h, KERNELS[settings["up_kernel"]])
    if settings.get("first_jpeg"):
        with Image.open(io.BytesIO(_jpeg(x, settings["first_jpeg"]))) as im:
            x = to_chw_float(np.asarray(im.convert("RGB")))
    return _jpeg(x, settings["jpeg_quality"])
