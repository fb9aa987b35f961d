"""Faces in photographs: find them, crop them like the training data, make a dataset of crops.

Every detector here looks at a tight face crop (like the Kaggle data). A whole photo is not
that; ``dflib predict --faces`` and :func:`face_crops` first find the faces
(:mod:`~dflib.faces.detect`: dlib's HOG detector, the optional extra ``pip install 'dflib[faces]'``),
then frame each like a training crop (:mod:`~dflib.faces.framing`); ``dflib crop-faces``
(:mod:`~dflib.faces.dataset`) turns a folder of raw photos into a dataset in the Kaggle layout.

    >>> from dflib.faces import face_crops
    >>> for fc in face_crops(photo):   # PIL image, array or tensor
    ...     fc.face.box, fc.region, fc.image.shape

Knows nothing about models: it sits just above :mod:`dflib.data`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dflib.faces.detect import (
    INSTALL_HINT,
    MAX_DETECT_PIXELS,
    MIN_FACE,
    THRESHOLD,
    WINDOW,
    Face,
    FacesUnavailableError,
    as_rgb_array,
    available,
    detect_faces,
    smallest_face,
)
from dflib.faces.framing import (
    CROP_SCALE,
    CROP_SHIFT,
    TIGHT_CROP_MAX_ASPECT,
    TIGHT_CROP_MAX_SIDE,
    crop,
    crop_region,
    looks_like_face_crop,
    no_face_note,
)


@dataclass(frozen=True)
class FaceCrop:
    """One face: the detector's ``face``, the square ``region`` cut out, and the crop ``image`` (H x W x 3)."""

    face: Face
    region: tuple[int, int, int, int]
    image: np.ndarray


def face_crops(
    image, *, min_face: float = MIN_FACE, max_pixels: int = MAX_DETECT_PIXELS, threshold: float = THRESHOLD
) -> list[FaceCrop]:
    """Find the faces in ``image`` and cut each out framed like a training crop (left to right)."""
    rgb = as_rgb_array(image)
    h, w = rgb.shape[:2]
    out = []
    for face in detect_faces(rgb, min_face=min_face, max_pixels=max_pixels, threshold=threshold):
        region = crop_region(face, w, h)
        out.append(FaceCrop(face, region, np.ascontiguousarray(crop(rgb, region))))
    return out


__all__ = [
    "CROP_SCALE",
    "CROP_SHIFT",
    "Face",
    "FaceCrop",
    "FacesUnavailableError",
    "INSTALL_HINT",
    "MAX_DETECT_PIXELS",
    "MIN_FACE",
    "THRESHOLD",
    "TIGHT_CROP_MAX_ASPECT",
    "TIGHT_CROP_MAX_SIDE",
    "WINDOW",
    "as_rgb_array",
    "available",
    "crop",
    "crop_region",
    "detect_faces",
    "face_crops",
    "looks_like_face_crop",
    "no_face_note",
    "smallest_face",
]
