"""Per-image statistics and loader throughput, for the data notebook and the benchmark."""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image
from torch.utils.data import DataLoader

from dflib import CLASS_NAMES
from dflib.data.io import read_image, read_image_tensor
from dflib.runtime import progress_bar


def image_statistics(samples: Sequence[tuple[Path, int]], progress: bool = True) -> pd.DataFrame:
    """One row per image: path, label, class, width, height, file size and pixel statistics.

    Global statistics like these must *not* separate real from fake in a well-built dataset;
    if they do, a detector can cheat with them.
    """
    rows = []
    for path, label in progress_bar(samples, desc="image statistics", disable=not progress, leave=False):
        img = read_image(path)
        arr = np.asarray(img, dtype=np.float32)
        gray = arr @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
        rows.append(
            {
                "path": str(path),
                "label": label,
                "class": CLASS_NAMES[label],
                "width": img.width,
                "height": img.height,
                "file_kb": os.path.getsize(path) / 1024,
                "mean_r": arr[..., 0].mean(),
                "mean_g": arr[..., 1].mean(),
                "mean_b": arr[..., 2].mean(),
                "mean_intensity": gray.mean(),
                "contrast": gray.std(),
            }
        )
    return pd.DataFrame(rows)


def decode_throughput(paths: Iterable[str | os.PathLike], reader: str = "pil") -> float:
    """Images/s of a decode-only baseline over ``paths``, one process, full resolution.

    ``reader="pil"``: PIL open + convert("RGB") (its speed differs from process to process on some
    machines, by up to 2x); ``reader="dflib"``: :func:`~dflib.data.io.read_image_tensor`, the
    reader the loaders use (libjpeg-turbo through simplejpeg where installed), the baseline
    ``benchmarks/data_throughput.py`` compares the training loader with.
    """
    if reader not in ("pil", "dflib"):
        raise ValueError(f"decode_throughput: reader must be 'pil' or 'dflib', got {reader!r}")
    paths = list(paths)
    start = time.perf_counter()
    for p in paths:
        if reader == "dflib":
            read_image_tensor(p)
        else:
            with Image.open(p) as im:
                im.convert("RGB")
    return len(paths) / (time.perf_counter() - start)


def loader_throughput(loader: DataLoader, epochs: int = 1, warmup: bool = True) -> float:
    """Images/s delivered by ``loader`` over ``epochs`` full passes.

    One untimed pass first starts the (persistent) worker processes and warms the file cache;
    each timed pass runs from creating the iterator to the last batch, so prefetching cannot
    hide work outside the timed window. Batches are ``(x, y)`` or ``(x, y, params)``
    (:func:`dflib.data.sampling.make_train_loader` with ``batched=True``).
    """
    if warmup:
        for _ in loader:
            pass
    n = 0
    start = time.perf_counter()
    for _ in range(epochs):
        for batch in loader:
            n += len(batch[0])
    if n == 0:
        raise ValueError("loader_throughput: the loader yielded no images")
    return n / (time.perf_counter() - start)
