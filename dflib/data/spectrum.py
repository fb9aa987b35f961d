"""Frequency analysis of images: log power spectra and their azimuthal averages.

Generators that upsample with transposed convolutions or nearest-neighbour copies leave
periodic traces that are invisible in pixels but stand out as peaks in the Fourier spectrum
(Durall et al., "Watch your up-convolution", CVPR 2020; Frank et al., ICML 2020). Averaging the
spectrum over many images and over rings of equal frequency makes them easy to see.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
from PIL import Image

from dflib.data.io import read_image

_LUMA = np.array([0.299, 0.587, 0.114])


def to_gray(image: np.ndarray | Image.Image) -> np.ndarray:
    """RGB or greyscale image (uint8 or float) -> float64 greyscale in [0, 1]."""
    arr = np.asarray(image, dtype=np.float64)
    if arr.ndim == 3:
        arr = arr[..., :3] @ _LUMA
    return arr / 255.0 if arr.max() > 1.0 else arr


def log_power_spectrum(gray: np.ndarray, window: bool = True) -> np.ndarray:
    """Centred log10 power spectrum of one greyscale image.

    The mean is removed and a Hann window applied so that the image border (a hard edge for
    the periodic FFT) does not smear energy along the axes.
    """
    x = gray - gray.mean()
    if window:
        x = x * np.outer(np.hanning(x.shape[0]), np.hanning(x.shape[1]))
    power = np.abs(np.fft.fftshift(np.fft.fft2(x))) ** 2
    return np.log10(power + 1e-12)


def radial_profile(spectrum: np.ndarray, n_bins: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Azimuthal average of a centred spectrum: (frequency in cycles/pixel, mean value per ring).

    Rings go from 0 to the Nyquist frequency 0.5; the corners beyond it are left out.
    """
    h, w = spectrum.shape
    fy = np.fft.fftshift(np.fft.fftfreq(h))[:, None]
    fx = np.fft.fftshift(np.fft.fftfreq(w))[None, :]
    radius = np.sqrt(fx**2 + fy**2)
    n_bins = n_bins or min(h, w) // 2
    edges = np.linspace(0.0, 0.5, n_bins + 1)
    idx = np.digitize(radius.ravel(), edges) - 1
    valid = (idx >= 0) & (idx < n_bins)
    sums = np.bincount(idx[valid], weights=spectrum.ravel()[valid], minlength=n_bins)
    counts = np.bincount(idx[valid], minlength=n_bins)
    centers = (edges[:-1] + edges[1:]) / 2
    with np.errstate(invalid="ignore"):
        return centers, sums / np.maximum(counts, 1)


@dataclass
class SpectrumStats:
    """Average log power spectrum of a group of images and its radial profile."""

    mean2d: np.ndarray
    freqs: np.ndarray
    profile: np.ndarray
    n: int


def average_spectrum(
    images: Iterable[str | os.PathLike | np.ndarray | Image.Image],
    size: int | None = None,
) -> SpectrumStats:
    """Average :func:`log_power_spectrum` over images (paths or arrays), resized to ``size`` if given."""
    total: np.ndarray | None = None
    n = 0
    for item in images:
        img = read_image(item) if isinstance(item, (str, os.PathLike)) else item
        if size is not None:
            pil = img if isinstance(img, Image.Image) else Image.fromarray(np.asarray(img))
            img = pil.resize((size, size), Image.BICUBIC)
        spec = log_power_spectrum(to_gray(img))
        if total is not None and spec.shape != total.shape:
            raise ValueError(f"images differ in size ({spec.shape} vs {total.shape}); pass size=")
        total = spec if total is None else total + spec
        n += 1
    if total is None:
        raise ValueError("average_spectrum needs at least one image")
    mean2d = total / n
    freqs, profile = radial_profile(mean2d)
    return SpectrumStats(mean2d=mean2d, freqs=freqs, profile=profile, n=n)
