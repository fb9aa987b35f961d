"""Find faces in a photo with dlib's HOG frontal face detector (weights built into dlib).

Chosen by measurement (``benchmarks/face_detectors.md``): among the detectors whose weights
come inside a registry wheel, dlib's HOG detector found every frontal face of the offline real
photos (also rotated by 15 degrees, mirrored, at half and double size), is the fastest at a
given resolution and the smallest install (the ``dlib-bin`` wheel, 11 MB, for Linux, macOS and
Windows; a compiled ``dlib`` works as well). Nothing is downloaded at run time.

How an image is searched: the detector finds faces of about ``WINDOW`` (80) pixels and larger,
so the image is resized first by ``WINDOW / min_face`` (2x for the default ``MIN_FACE`` of 40
px: a smaller face, upscaled six times to a 256 px crop, would say nothing), but never to more
than ``max_pixels`` (4 MP): a huge photo is *downscaled* before detection, which keeps the time
per photo bounded (about half a second here) and raises the smallest face found in it (a 24 MP
photo, 6000 x 4000, finds faces of about 200 px and larger). Boxes are mapped back to the
original image's pixels and clipped to it (a face cut by the border keeps the visible part).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np
from PIL import Image

WINDOW = 80  # dlib's HOG frontal detector: an 80 x 80 px sliding window (its smallest face)
MIN_FACE = 40  # default smallest face looked for, in original-image pixels
MAX_DETECT_PIXELS = 4_000_000  # the image the detector searches has at most this many pixels
# dlib's default score threshold is 0; at 0.4 the measured real photos gave no false positive (at 0,
# 17 in 54, all on the astronaut's mission patch) and lost no frontal face (benchmarks/face_detectors.md).
THRESHOLD = 0.4
INSTALL_HINT = "pip install 'dflib[faces]'"


class FacesUnavailableError(ImportError):
    """The optional face detector (dlib) is not installed; the message says how to install it."""


@dataclass(frozen=True)
class Face:
    """A face found in an image: its box ``(x0, y0, x1, y1)`` in original-image pixels and the
    detector's score (higher = surer; see ``THRESHOLD``)."""

    box: tuple[float, float, float, float]
    score: float

    @property
    def side(self) -> float:
        """The box's mean side length in pixels."""
        x0, y0, x1, y1 = self.box
        return ((x1 - x0) + (y1 - y0)) / 2


@functools.lru_cache(maxsize=1)
def _detector():
    try:
        import dlib
    except ImportError as e:
        raise FacesUnavailableError(
            f"finding faces needs dlib's face detector, which is not installed ({e}); "
            f"install it with {INSTALL_HINT} (or pip install dlib-bin)"
        ) from None
    return dlib.get_frontal_face_detector()


def available() -> bool:
    """True when the face detector can be used (dlib importable)."""
    try:
        _detector()
    except FacesUnavailableError:
        return False
    return True


def as_rgb_array(image) -> np.ndarray:
    """``H x W x 3`` uint8 from a PIL image (any mode), an ``H x W (x C)`` array or a ``3 x H x W`` tensor."""
    if isinstance(image, Image.Image):
        from dflib.data.io import to_rgb

        return np.asarray(to_rgb(image))
    arr = np.asarray(image.detach().cpu().numpy() if hasattr(image, "detach") else image)
    if arr.ndim == 3 and arr.shape[0] in (1, 3, 4) and arr.shape[-1] not in (1, 3, 4):
        arr = arr.transpose(1, 2, 0)  # C x H x W (a tensor from read_image_tensor)
    if arr.ndim == 2:
        arr = arr[..., None]
    if arr.ndim != 3 or arr.shape[-1] not in (1, 3, 4):
        raise ValueError(f"expected an RGB image (H x W x 3 or 3 x H x W), got shape {arr.shape}")
    if arr.dtype != np.uint8:
        arr = np.clip(arr * (255 if arr.dtype.kind == "f" and arr.max() <= 1 else 1), 0, 255).astype(np.uint8)
    if arr.shape[-1] == 1:
        arr = np.repeat(arr, 3, axis=-1)
    return np.ascontiguousarray(arr[..., :3])


def detect_scale(width: int, height: int, min_face: float = MIN_FACE, max_pixels: int = MAX_DETECT_PIXELS) -> float:
    """The factor the image is resized by before detection (see the module docstring)."""
    if not min_face > 0:
        raise ValueError(f"min_face={min_face!r} is invalid; use a face size in pixels > 0, e.g. {MIN_FACE}")
    if not max_pixels >= WINDOW * WINDOW:
        raise ValueError(f"max_pixels={max_pixels!r} is too small; use at least {WINDOW * WINDOW}")
    return min(WINDOW / min_face, math.sqrt(max_pixels / (width * height)))


def smallest_face(width: int, height: int, min_face: float = MIN_FACE, max_pixels: int = MAX_DETECT_PIXELS) -> float:
    """The smallest face (pixels of the original image) that can be found in a ``width x height`` image."""
    return WINDOW / detect_scale(width, height, min_face, max_pixels)


def detect_faces(
    image, *, min_face: float = MIN_FACE, max_pixels: int = MAX_DETECT_PIXELS, threshold: float = THRESHOLD
) -> list[Face]:
    """The frontal faces in ``image`` (PIL, array or tensor, any mode), numbered left to right.

    ``min_face``: the smallest face looked for (pixels); ``max_pixels``: the largest image the
    detector searches (bigger photos are downscaled first, boxes mapped back); ``threshold``: the
    detector's score threshold (lower it, e.g. to 0, to find more faces and more false positives).
    Raises :class:`FacesUnavailableError` when dlib is not installed.
    """
    detector = _detector()
    rgb = as_rgb_array(image)
    h, w = rgb.shape[:2]
    scale = detect_scale(w, h, min_face, max_pixels)
    work = rgb
    if abs(scale - 1) > 0.02:
        size = (max(1, round(w * scale)), max(1, round(h * scale)))
        resample = Image.Resampling.BILINEAR if scale > 1 else Image.Resampling.LANCZOS
        work = np.asarray(Image.fromarray(rgb).resize(size, resample, reducing_gap=3.0 if scale < 0.5 else None))
    sy, sx = work.shape[0] / h, work.shape[1] / w
    rects, scores, _ = detector.run(np.ascontiguousarray(work), 0, float(threshold))
    faces = []
    for r, s in zip(rects, scores):
        x0, y0 = max(0.0, r.left() / sx), max(0.0, r.top() / sy)
        x1, y1 = min(float(w), (r.right() + 1) / sx), min(float(h), (r.bottom() + 1) / sy)
        if x1 - x0 >= 1 and y1 - y0 >= 1:
            faces.append(Face((x0, y0, x1, y1), float(s)))
    return sorted(faces, key=lambda f: (f.box[0], f.box[1]))
