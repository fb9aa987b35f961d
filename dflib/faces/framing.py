"""From a detector's face box to a crop framed like the training data, and what a "face crop" is.

The Kaggle images (and the embedded synthetic sample, built to mimic them) are square crops in
which the face fills about half the width, with hair, ears and chin inside the frame. dlib's
box is tighter (brows to chin), so a crop is the square of side ``CROP_SCALE`` x the box side,
centred ``CROP_SHIFT`` box sides away from the box centre (up: the box sits low on the face).
Both numbers were measured with the detector on the tight 256 px crops of the synthetic sample
(``benchmarks/face_detectors.py``: median crop side / box side, median offset).

At the border the square is moved inside the image and, where the image is smaller than the
square, shrunk to the image's shorter side: a crop always holds real pixels only (no padding
the detectors never saw in training). A face cut by the border is therefore off-centre in its
crop, with as much of it as the image has.

An image in which no face is found is scored whole when it already looks like a face crop
(:func:`looks_like_face_crop`: at most ``TIGHT_CROP_MAX_SIDE`` px on its longer side and
square-ish, aspect ratio at most ``TIGHT_CROP_MAX_ASPECT``) and left unscored otherwise.
"""

from __future__ import annotations

import numpy as np

from dflib.faces.detect import Face

CROP_SCALE = 2.35  # crop side / detector box side (measured median on the synthetic sample: see the benchmark)
CROP_SHIFT = (0.0, -0.2)  # crop centre - box centre, in box sides (x right, y down)
TIGHT_CROP_MAX_SIDE = 512
TIGHT_CROP_MAX_ASPECT = 1.25


def crop_region(
    face: Face | tuple[float, float, float, float],
    width: int,
    height: int,
    scale: float = CROP_SCALE,
    shift: tuple[float, float] = CROP_SHIFT,
) -> tuple[int, int, int, int]:
    """The square ``(x0, y0, x1, y1)`` (integer pixels, inside the image) to crop for ``face``."""
    x0, y0, x1, y1 = face.box if isinstance(face, Face) else face
    side_box = ((x1 - x0) + (y1 - y0)) / 2
    side = int(round(min(scale * side_box, width, height)))
    side = max(1, side)
    cx = (x0 + x1) / 2 + shift[0] * side_box
    cy = (y0 + y1) / 2 + shift[1] * side_box
    left = int(round(min(max(cx - side / 2, 0), width - side)))
    top = int(round(min(max(cy - side / 2, 0), height - side)))
    return left, top, left + side, top + side


def crop(image: np.ndarray, region: tuple[int, int, int, int]) -> np.ndarray:
    """``image`` (``H x W x 3`` or ``3 x H x W``; numpy or torch) cut to ``region``."""
    x0, y0, x1, y1 = region
    if image.shape[0] == 3 and image.shape[-1] != 3:
        return image[:, y0:y1, x0:x1]
    return image[y0:y1, x0:x1]


def looks_like_face_crop(width: int, height: int) -> bool:
    """True for a small, square-ish image: the no-face policy scores such an image whole."""
    return (
        max(width, height) <= TIGHT_CROP_MAX_SIDE
        and max(width, height) / max(1, min(width, height)) <= TIGHT_CROP_MAX_ASPECT
    )


def no_face_note(width: int, height: int, smallest: float) -> tuple[bool, str]:
    """``(score it whole?, the note for its row)`` for an image in which no face was found."""
    if looks_like_face_crop(width, height):
        return True, (
            f"no face found; scored whole: {width}x{height} looks like a face crop "
            f"(square-ish, at most {TIGHT_CROP_MAX_SIDE} px)"
        )
    return False, (
        f"no face found (frontal faces of {smallest:.0f} px and larger were looked for); not scored: "
        f"a {width}x{height} image is not a face crop; crop the face or pass a smaller --min-face"
    )
