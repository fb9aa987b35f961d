"""Small vectorised raster helpers shared by the face renderer and the manipulations.

Images are float32 arrays in the 0..255 range, **channel-first** (3 x H x W) while being
drawn: numpy is much faster on contiguous planes than on a trailing axis of length 3.
Only the public functions convert to and from the usual H x W x 3 uint8.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from PIL import Image


@lru_cache(maxsize=8)
def grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixel-centre coordinates (ys, xs) of a size x size image, read-only float32."""
    ys, xs = np.mgrid[0:size, 0:size].astype(np.float32)
    ys.flags.writeable = False
    xs.flags.writeable = False
    return ys, xs


def rgb(color) -> np.ndarray:
    """An RGB triple as a 3 x 1 x 1 float32 array, ready to broadcast over a 3 x H x W image."""
    return np.asarray(color, dtype=np.float32).reshape(3, 1, 1)


def smooth_noise(rng: np.random.Generator, shape: tuple[int, int], scale: float) -> np.ndarray:
    """Band-limited noise (std ~1) with features about `scale` pixels wide.

    A coarse random field is upsampled bicubically (in C, by PIL): a small `scale` gives fine
    texture (skin pores, hair), a large one slow blotches (uneven light, backgrounds).
    """
    h, w = shape
    scale = max(1.0, float(scale))
    ch, cw = int(h / scale) + 2, int(w / scale) + 2
    low = rng.standard_normal((ch, cw), dtype=np.float32)
    # bicubic upsampling of white noise keeps ~0.82 of its std at any factor
    return np.asarray(Image.fromarray(low).resize((w, h), Image.BICUBIC), dtype=np.float32) * (1 / 0.82)


def soft_edge(signed_dist: np.ndarray, width: float = 1.0) -> np.ndarray:
    """Coverage (0..1) from a signed distance in pixels (negative inside): an anti-aliased edge."""
    return np.clip(0.5 - signed_dist / max(width, 1e-3), 0.0, 1.0)


def smoothstep_edge(signed_dist: np.ndarray, width: float) -> np.ndarray:
    """Like `soft_edge` but fading smoothly (zero slope at both ends) over `width` pixels."""
    t = np.clip(0.5 - signed_dist / max(width, 1e-3), 0.0, 1.0)
    return t * t * (3 - 2 * t)


def ellipse_sdf(px: np.ndarray, py: np.ndarray, rx: float, ry: float) -> np.ndarray:
    """Approximate signed distance (pixels) to an axis-aligned ellipse centred at the origin."""
    return (np.sqrt((px / rx) ** 2 + (py / ry) ** 2) - 1.0) * min(rx, ry)


def blend(base: np.ndarray, color, alpha: np.ndarray) -> None:
    """Paint `color` (RGB triple or 3 x h x w) over `base` (3 x h x w) in place, coverage `alpha`.

    Only the bounding box where alpha > 0 is touched, which keeps small features cheap."""
    rows, cols = np.flatnonzero(alpha.any(1)), np.flatnonzero(alpha.any(0))
    if rows.size == 0:
        return
    r, c = slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1)
    color = np.asarray(color, dtype=np.float32)
    color = color[:, r, c] if color.ndim == 3 else color.reshape(3, 1, 1)
    sub = base[:, r, c]
    sub += alpha[r, c] * (color - sub)


def blur3(img: np.ndarray, sigma: float) -> np.ndarray:
    """Light Gaussian-like blur of a 3 x H x W image: a 3-tap kernel [w, 1-2w, w] per axis
    (variance 2w = sigma^2, so sigma <= ~0.75), edges clamped. Much cheaper than a full filter."""
    wt = min(0.3, sigma * sigma / 2)
    if wt <= 0:
        return img
    for axis in (1, 2):
        src = img
        img = src * (1 - 2 * wt)
        lo = [slice(None)] * 3
        hi = [slice(None)] * 3
        lo[axis], hi[axis] = slice(None, -1), slice(1, None)
        img[tuple(hi)] += wt * src[tuple(lo)]  # neighbour before
        img[tuple(lo)] += wt * src[tuple(hi)]  # neighbour after
        first, last = [slice(None)] * 3, [slice(None)] * 3
        first[axis], last[axis] = 0, -1
        img[tuple(first)] += wt * src[tuple(first)]  # clamped edges
        img[tuple(last)] += wt * src[tuple(last)]
    return img


def remap(img: np.ndarray, map_y: np.ndarray, map_x: np.ndarray) -> np.ndarray:
    """Bilinear sampling img[:, map_y, map_x] with edge clamping (a backward warp)."""
    c, h, w = img.shape
    y = np.clip(map_y, 0, h - 1.001).astype(np.float32)
    x = np.clip(map_x, 0, w - 1.001).astype(np.float32)
    y0, x0 = y.astype(np.int32), x.astype(np.int32)
    fy, fx = y - y0, x - x0
    flat = img.reshape(c, -1)
    idx = y0 * w + x0

    def take(k: int) -> np.ndarray:
        return np.take(flat, idx + k, axis=1)

    top = take(0)
    top += fx * (take(1) - top)
    bottom = take(w)
    bottom += fx * (take(w + 1) - bottom)
    return top + fy * (bottom - top)


def resize(img: np.ndarray, size: int, resample=Image.BILINEAR) -> np.ndarray:
    """Resize a float32 3 x H x W (or H x W) image to size x size with PIL, plane by plane."""
    if img.ndim == 2:
        return np.asarray(Image.fromarray(img).resize((size, size), resample), dtype=np.float32)
    return np.stack([resize(np.ascontiguousarray(p), size, resample) for p in img])


def to_hwc_uint8(img: np.ndarray) -> np.ndarray:
    """3 x H x W float -> H x W x 3 uint8 (rounded, clipped)."""
    return np.ascontiguousarray(np.clip(np.rint(img), 0, 255).astype(np.uint8).transpose(1, 2, 0))


def to_chw_float(img: np.ndarray) -> np.ndarray:
    """H x W x 3 uint8 -> 3 x H x W float32."""
    return np.ascontiguousarray(np.asarray(img).transpose(2, 0, 1), dtype=np.float32)
