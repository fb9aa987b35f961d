"""Embedded synthetic real-vs-fake face dataset, the default data of every notebook.

Reals are procedurally rendered face portraits (`render_face`); fakes are *other* rendered
faces changed by one of four manipulation families modelled on the traces real forgeries
leave (`METHODS`: face_swap, self_blend, upsampling, local_warp; see `manipulations`):
blending boundaries of a swapped face, a face blended with a transformed copy of itself (the
Self-Blended Images recipe for training pseudo-fakes, Shiohara & Yamasaki 2022, not a deepfake
generator), a face generated at lower resolution and upsampled, and a local geometric warp.
`generate_sample` writes them in the Kaggle layout with a `manifest.csv`; `ensure_sample`
keeps one copy per config in a user cache folder (`default_cache_dir`).

The default config (400 Train images per class, 100 per class in Validation and Test,
256 px) is generated in about a minute on one CPU core. It is built to be hard for
shortcuts and easy for convolutional networks: reals and fakes share one randomised camera
(`camera`: blur, CFA demosaicing, noise, sharpening, resampling, single or double JPEG) and every
fake gets the power spectrum of its source back (`manipulations.match_spectrum`), so logistic
regressions on 32x32 gray pixels, on the power spectrum, on colour statistics or on the JPEG tables,
and single numbers (file size, brightness, high-frequency energy, sharpness) stay at or below
about 0.57 Test ROC-AUC overall (`dflib.evaluation.baselines`; per manipulation, sharpness reaches
about 0.71 on upsampling, whose softer face is its very evidence), while a small CNN trained for
a few CPU minutes at 128 px separates real from fake.

    >>> from dflib.data.synthetic import ensure_sample, read_manifest
    >>> data_dir = ensure_sample()          # .../sample-<hash>/Dataset, built once
    >>> read_manifest(data_dir).method.value_counts()

`make_examples("example")` writes the dozen unseen images (and `labels.csv`) of the
repository's `example/` folder, used by `dflib predict` and notebook 07.
"""

from .cache import default_cache_dir, ensure_sample
from .examples import make_examples, read_labels
from .faces import FaceGeometry, render_face
from .generate import GENERATOR_VERSION, SampleConfig, generate_sample, make_image, read_manifest
from .manipulations import METHODS, manipulate

__all__ = [
    "METHODS",
    "SampleConfig",
    "FaceGeometry",
    "render_face",
    "manipulate",
    "generate_sample",
    "ensure_sample",
    "default_cache_dir",
    "read_manifest",
    "make_image",
    "GENERATOR_VERSION",
    "make_examples",
    "read_labels",
]
