"""dflib: the shared code of the deepfake image detection course.

Label convention, everywhere in the suite: **fake = 1 (positive class), real = 0**.
Every score dflib reports is P(fake).

``dflib.load_detector(path)`` rebuilds a saved detector (see :mod:`dflib.checkpoint`); it is
imported on first use, so ``import dflib`` stays light (no torch).
"""

__version__ = "0.1.0"

FAKE = 1
REAL = 0
CLASS_NAMES = ("real", "fake")  # index = label

# Input sizes a detector may be built, trained or run at (pixels per side): below 16 px a face is a
# smudge; above 1024 px one activation map of a ResNet stem alone passes 1 GB per image.
MIN_IMG_SIZE = 16
MAX_IMG_SIZE = 1024

__all__ = ["__version__", "FAKE", "REAL", "CLASS_NAMES", "MIN_IMG_SIZE", "MAX_IMG_SIZE", "load_detector"]


def __getattr__(name: str):
    if name == "load_detector":
        from dflib.checkpoint import load_detector

        return load_detector
    raise AttributeError(f"module 'dflib' has no attribute {name!r}")
