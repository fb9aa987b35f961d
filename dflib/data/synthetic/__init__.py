"""Embedded synthetic real-vs-fake face dataset, the default data of every notebook.

Reals are procedurally rendered face portraits (`faces.render_face`); fakes are other
rendered faces changed by one of four manipulation families that mirror real deepfake
pipelines (`manipulations.METHODS`). `generate.generate_sample` writes them in the Kaggle
layout with a `manifest.csv`; `cache.ensure_sample` keeps one copy per config in a user
cache folder.

    >>> from dflib.data.synthetic import ensure_sample, read_manifest
    >>> data_dir = ensure_sample()          # .../sample-<hash>/Dataset, built once
    >>> read_manifest(data_dir).method.value_counts()
"""

from .cache import default_cache_dir, ensure_sample
from .faces import FaceGeometry, render_face
from .generate import GENERATOR_VERSION, SampleConfig, generate_sample, make_image, read_manifest
from .manipulations import METHODS, manipulate

__all__ = [
    "METHODS", "SampleConfig", "FaceGeometry", "render_face", "manipulate", "generate_sample",
    "ensure_sample", "default_cache_dir", "read_manifest", "make_image", "GENERATOR_VERSION",
]
