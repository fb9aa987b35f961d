"""Data: layout discovery and validation, robust reading, transforms (the training augmentation
twice: plainly in ``reference_augment``, fast in ``fused_augment``), loaders, split hygiene,
statistics and spectra, the embedded synthetic sample and the Kaggle download helper. Knows
nothing about models: nothing here imports ``dflib.models`` or above.

Label convention: fake = 1 (positive class), real = 0.
"""

from __future__ import annotations

import os
from pathlib import Path

from dflib.data.dataset import DeepfakeDataset, default_num_workers, make_loader
from dflib.data.download import KAGGLE_DATASET, DownloadError, download_kaggle
from dflib.data.files import IMAGE_EXTENSIONS, NoImagesError, find_images, is_image_file
from dflib.data.fused_augment import SampleStage, TrainTransform, train_transform
from dflib.data.io import MAX_PIXELS, ImageReadError, quick_check, read_image, read_image_tensor
from dflib.data.layout import CLASSES, SPLITS, DatasetLayout, LayoutError, discover, find_root
from dflib.data.reference_augment import reference_augment
from dflib.data.sampling import finish_batch, make_train_loader
from dflib.data.spectrum import SpectrumStats, average_spectrum, log_power_spectrum, radial_profile
from dflib.data.splits import SplitReport, check_splits
from dflib.data.stats import decode_throughput, image_statistics, loader_throughput
from dflib.data.transforms import (
    COLOR_STEPS,
    IMAGENET_MEAN,
    IMAGENET_STD,
    AugmentConfig,
    AugmentParams,
    EvalTransform,
    SeededTransform,
    apply_transform,
    denormalize,
    eval_transform,
)


def resolve_data_dir(data_dir: str | os.PathLike | None = "", **sample_options) -> Path:
    """The ``Dataset`` folder to use: ``data_dir`` if given, else the embedded synthetic sample.

    An empty ``data_dir`` (the notebooks' default) generates the sample on first use and reuses
    the cached copy afterwards; ``sample_options`` go to :func:`ensure_sample` (``per_class``,
    ``size``, ``seed``, ``holdout_method``).
    """
    if data_dir is None or str(data_dir).strip() == "":
        from dflib.data.synthetic import ensure_sample

        return ensure_sample(**sample_options)
    return find_root(data_dir)


__all__ = [
    "COLOR_STEPS",
    "EvalTransform",
    "IMAGE_EXTENSIONS",
    "NoImagesError",
    "SampleStage",
    "SeededTransform",
    "SpectrumStats",
    "TrainTransform",
    "apply_transform",
    "average_spectrum",
    "decode_throughput",
    "find_images",
    "finish_batch",
    "image_statistics",
    "is_image_file",
    "loader_throughput",
    "log_power_spectrum",
    "make_train_loader",
    "radial_profile",
    "reference_augment",
    "AugmentConfig",
    "AugmentParams",
    "CLASSES",
    "DatasetLayout",
    "DeepfakeDataset",
    "DownloadError",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "ImageReadError",
    "KAGGLE_DATASET",
    "LayoutError",
    "MAX_PIXELS",
    "SPLITS",
    "SplitReport",
    "check_splits",
    "default_num_workers",
    "denormalize",
    "discover",
    "download_kaggle",
    "eval_transform",
    "find_root",
    "make_loader",
    "quick_check",
    "read_image",
    "read_image_tensor",
    "resolve_data_dir",
    "train_transform",
]
