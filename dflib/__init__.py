"""dflib: the shared code of the deepfake image detection course.

Label convention, everywhere in the suite: **fake = 1 (positive class), real = 0**.
Every score dflib reports is P(fake).
"""

__version__ = "0.1.0"

FAKE = 1
REAL = 0
CLASS_NAMES = ("real", "fake")  # index = label

__all__ = ["__version__", "FAKE", "REAL", "CLASS_NAMES"]
