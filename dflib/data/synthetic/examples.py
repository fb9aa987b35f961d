"""The dozen images in the repository's ``example/`` folder, made reproducibly.

They come from the same generator and "camera" as the embedded sample, but from a random
stream of their own (spawn key ``EXAMPLES_STREAM``, never used for Train/Validation/Test), so
no detector trained on any sample has seen them. Half are real, half fake, and the fakes cycle
through every manipulation method. File names are neutral (``face_01.jpg`` ...) and the order is
shuffled, so the gallery in notebook 07 does not give the answers away; ``labels.csv`` does.

    >>> make_examples("example")            # what made the files in example/
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from .camera import camera
from .faces import render_face
from .generate import SampleConfig, camera_settings
from .manipulations import METHODS, manipulate

EXAMPLES_STREAM = 100  # spawn-key namespace; the sample's splits use 0, 1, 2
EXAMPLES_SEED = 2024
LABEL_COLUMNS = ["path", "label", "method"]


def _camera_settings(config: SampleConfig, index: int) -> dict:
    """As :func:`generate.camera_settings`, from the examples' own stream (shared by real and fake i)."""
    return camera_settings(config, "", index, stream=EXAMPLES_STREAM)


def make_example_image(label: int, index: int, seed: int = EXAMPLES_SEED, size: int = 256) -> tuple[bytes, str]:
    """One example (JPEG bytes) and its method ("real" or a manipulation); depends only on its arguments."""
    config = SampleConfig(size=size, seed=seed)
    ss = np.random.SeedSequence(config.seed, spawn_key=(EXAMPLES_STREAM, label, index))
    face_ss, camera_ss = ss.spawn(2)
    rng = np.random.default_rng(face_ss)
    image, geo = render_face(rng, config.size)
    method = "real"
    if label == 1:
        method = METHODS[index % len(METHODS)]
        donor = render_face(rng, config.size) if method == "face_swap" else None
        image, _ = manipulate(method, image, geo, rng, donor=donor)
    data = camera(image, np.random.default_rng(camera_ss), _camera_settings(config, index))
    return data, method


def make_examples(
    out_dir: str | os.PathLike = "example", n: int = 12, seed: int = EXAMPLES_SEED, size: int = 256
) -> pd.DataFrame:
    """Write ``n`` example faces (half real, half fake) and ``labels.csv`` into ``out_dir``.

    Returns the labels table (``path`` relative to ``out_dir``, ``label`` "real"/"fake",
    ``method``). Same arguments, same bytes (with the same numpy/Pillow versions). Other files
    in ``out_dir`` (a README, your own images) are left alone; ``face_NN.jpg`` files are replaced.
    """
    if not isinstance(n, int) or isinstance(n, bool) or n < 2:
        raise ValueError(f"n={n!r} is invalid; use an integer >= 2 (half real, half fake)")
    out = Path(out_dir).expanduser()
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ValueError(f"cannot create {out} ({e.strerror or e}); choose a writable folder") from None
    n_fake = n // 2
    items = [(0, i) for i in range(n - n_fake)] + [(1, i) for i in range(n_fake)]
    order = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(EXAMPLES_STREAM, 3))).permutation(len(items))
    width = max(2, len(str(n)))
    rows = []
    for k, j in enumerate(order, start=1):
        label, index = items[j]
        data, method = make_example_image(label, index, seed=seed, size=size)
        name = f"face_{k:0{width}d}.jpg"
        (out / name).write_bytes(data)
        rows.append({"path": name, "label": "fake" if label else "real", "method": method})
    labels = pd.DataFrame(rows, columns=LABEL_COLUMNS)
    labels.to_csv(out / "labels.csv", index=False)
    return labels


def read_labels(example_dir: str | os.PathLike = "example") -> pd.DataFrame:
    """``labels.csv`` of an example folder plus a ``file`` column (``path`` joined to the folder)."""
    folder = Path(example_dir).expanduser()
    path = folder / "labels.csv"
    if not path.is_file():
        raise FileNotFoundError(
            f"no labels.csv in {folder}; make the examples with dflib.data.synthetic.make_examples({str(folder)!r})"
        )
    labels = pd.read_csv(path, dtype=str, keep_default_na=False)
    labels["file"] = [str(folder / p) for p in labels["path"]]
    return labels


__all__ = ["make_examples", "make_example_image", "read_labels", "EXAMPLES_SEED", "EXAMPLES_STREAM"]
