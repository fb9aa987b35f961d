"""Shared fixtures: tiny Kaggle-layout folders built on the fly (no synthetic generator needed)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

# Keep torch to the machine's cores and away from the user's cache during tests.
os.environ.setdefault("DFLIB_CACHE", str(Path(__file__).resolve().parent.parent / ".pytest_cache" / "dflib"))


def load_benchmark(name: str):
    """``benchmarks/<name>.py`` imported as a module (a script, not a package: loaded from its file,
    with ``benchmarks/`` on the path while it runs, for the scripts that import a sibling)."""
    import importlib.util
    import sys

    folder = Path(__file__).resolve().parent.parent / "benchmarks"
    spec = importlib.util.spec_from_file_location(name, folder / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.path.insert(0, str(folder))
    try:
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(folder))
    return module


def write_image(path: Path, seed: int, size: int = 32, fmt: str = "JPEG", mode: str = "RGB") -> Path:
    """Write a small random image (distinct content per seed)."""
    rng = np.random.default_rng(seed)
    arr = rng.integers(0, 256, size=(size, size, 3), dtype=np.uint8)
    img = Image.fromarray(arr, "RGB")
    if mode != "RGB":
        img = img.convert(mode)
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path, format=fmt)
    return path


def make_dataset(
    root: Path, splits=("Train", "Validation", "Test"), per_class: int = 4, class_names=("Real", "Fake"), size: int = 32
) -> Path:
    """Write root/Dataset/<split>/<class>/<i>.jpg and return the Dataset folder."""
    ds = root / "Dataset"
    seed = 0
    for split in splits:
        for cls in class_names:
            for i in range(per_class):
                seed += 1
                write_image(ds / split / cls / f"{cls.lower()}_{i}.jpg", seed, size=size)
    return ds


@pytest.fixture
def tiny_dataset(tmp_path: Path) -> Path:
    return make_dataset(tmp_path)


@pytest.fixture(scope="module")
def one_thread():
    """Run a module single-threaded (use it with ``pytestmark = pytest.mark.usefixtures("one_thread")``).

    On a shared 2-core machine, 2 intra-op threads that get preempted spin at every OpenMP barrier:
    forward+backward measured 5-20x slower than with one thread; it is also the arithmetic of the
    subprocesses some tests start. Results do not depend on it; the thread count is restored afterwards.
    """
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
