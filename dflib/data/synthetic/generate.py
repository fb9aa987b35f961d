"""Write the synthetic dataset to disk in the Kaggle layout, plus a manifest.

Layout (identical to `manjilkarki/deepfake-and-real-images`)::

    Dataset/{Train,Validation,Test}/{Real,Fake}/real_00012.jpg | fake_00012.jpg
    Dataset/manifest.csv   # one row per image: path, split, label, method, params, ...

Every image has its own random generator, derived with `numpy.random.SeedSequence` from
(seed, split, class, index): images can be made in any order and in parallel, and the same
config always gives byte-identical files (with the same numpy/Pillow versions). Reals and
fakes share one randomised "camera" (:mod:`.camera`: blur, CFA demosaicing, sensor noise,
sharpening, resampling, single or double JPEG); real_i and fake_i of a split even get the same
camera settings, so no global statistic (file size, JPEG tables, brightness, the power spectrum)
gives the label away and the difference has to be found in local structure.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import shutil
import sys
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, fields, replace
from multiprocessing import get_context
from pathlib import Path

import numpy as np
import pandas as pd

from dflib.runtime import progress_bar

from .camera import camera, draw_settings
from .faces import render_face
from .manipulations import METHODS, manipulate

GENERATOR_VERSION = 3  # bump whenever the images change, so cached samples are rebuilt
SPLITS = ("Train", "Validation", "Test")
CLASSES = ("Real", "Fake")  # folder names; index = label (real = 0, fake = 1)
MANIFEST_COLUMNS = [
    "path",
    "split",
    "label",
    "method",
    "identity",
    "donor",
    "jpeg_quality",
    "noise_sigma",
    "params",
    "camera",
]


@dataclass(frozen=True)
class SampleConfig:
    """What to generate. Equal configs give byte-identical datasets (same numpy/Pillow versions).

    per_class: Train images per class; Validation and Test get `eval_per_class` each
        (default max(1, per_class // 4)).
    size: image side in pixels (the Kaggle crops are 256).
    seed: master seed.
    holdout_method: a manipulation left out of Train fakes (Validation/Test keep all four),
        to measure how a detector generalises to an unseen forgery method.
    jpeg_quality: inclusive range of JPEG qualities, drawn per image for both classes.
    noise_sigma: range of the sensor read-noise std (8-bit levels), drawn per image.
    """

    per_class: int = 400
    size: int = 256
    seed: int = 0
    holdout_method: str | None = None
    eval_per_class: int | None = None
    jpeg_quality: tuple[int, int] = (65, 95)
    noise_sigma: tuple[float, float] = (1.0, 4.0)

    def __post_init__(self) -> None:
        def bad(name: str, fix: str) -> ValueError:
            return ValueError(f"SampleConfig: {name}={getattr(self, name)!r} is invalid; {fix}")

        def is_int(x) -> bool:
            return isinstance(x, (int, np.integer)) and not isinstance(x, bool)

        if not is_int(self.per_class) or self.per_class < 1:
            raise bad("per_class", "use an integer >= 1 (images per class in Train)")
        if not is_int(self.size) or self.size < 32:
            raise bad("size", "use an integer >= 32 (image side in pixels, e.g. 256)")
        if not is_int(self.seed) or self.seed < 0:
            raise bad("seed", "use an integer >= 0")
        if self.holdout_method is not None and self.holdout_method not in METHODS:
            raise bad("holdout_method", f"use None or one of {METHODS}")
        if self.eval_per_class is not None and (not is_int(self.eval_per_class) or self.eval_per_class < 1):
            raise bad("eval_per_class", "use None or an integer >= 1")
        q, n = self.jpeg_quality, self.noise_sigma
        pair = isinstance(q, (tuple, list)) and len(q) == 2 and all(is_int(x) for x in q)
        if not (pair and 1 <= q[0] <= q[1] <= 100):
            raise bad("jpeg_quality", "use (low, high) integers with 1 <= low <= high <= 100")
        if not (isinstance(n, (tuple, list)) and len(n) == 2 and 0 <= n[0] <= n[1]):
            raise bad("noise_sigma", "use (low, high) with 0 <= low <= high")
        for name in ("per_class", "size", "seed"):  # plain ints: JSON-able and hashable
            object.__setattr__(self, name, int(getattr(self, name)))
        if self.eval_per_class is not None:
            object.__setattr__(self, "eval_per_class", int(self.eval_per_class))
        object.__setattr__(self, "jpeg_quality", (int(q[0]), int(q[1])))
        object.__setattr__(self, "noise_sigma", (float(n[0]), float(n[1])))

    def counts(self) -> dict[str, int]:
        """Images per class in each split, e.g. {'Train': 400, 'Validation': 100, 'Test': 100}."""
        n_eval = self.eval_per_class or max(1, self.per_class // 4)
        return {"Train": int(self.per_class), "Validation": int(n_eval), "Test": int(n_eval)}

    def methods(self, split: str) -> tuple[str, ...]:
        """Manipulations used for the fakes of `split` (the holdout is only removed from Train)."""
        if split == "Train" and self.holdout_method:
            return tuple(m for m in METHODS if m != self.holdout_method)
        return METHODS

    def to_dict(self) -> dict:
        """JSON-friendly dict of the config plus the generator version."""
        d = asdict(self)
        d.update(
            jpeg_quality=list(self.jpeg_quality),
            noise_sigma=list(self.noise_sigma),
            generator_version=GENERATOR_VERSION,
        )
        return d

    def short_hash(self) -> str:
        """10 hex digits identifying the config (and generator version): the cache folder name."""
        blob = json.dumps(self.to_dict(), sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:10]


def resolve_config(config: SampleConfig | None, overrides: dict) -> SampleConfig:
    """`config` (or the default) with keyword overrides applied; unknown keys raise ValueError."""
    config = config or SampleConfig()
    if not isinstance(config, SampleConfig):
        raise ValueError(f"config must be a SampleConfig or None, got {type(config).__name__}")
    names = {f.name for f in fields(SampleConfig)}
    unknown = sorted(set(overrides) - names)
    if unknown:
        raise ValueError(f"unknown SampleConfig option(s) {unknown}; valid ones are {sorted(names)}")
    return replace(config, **overrides) if overrides else config


def camera_settings(config: SampleConfig, split: str, index: int, stream: int | None = None) -> dict:
    """Camera settings (see :mod:`.camera`) of image `index` of `split` (or of spawn-key `stream`).

    They depend on the index but not on the class: real_00012 and fake_00012 are "shot" with
    the same settings, so every split has exactly the same distribution of JPEG qualities, noise
    levels, resampling and sharpening in both classes - not just in expectation - and none of
    them hints at the label.
    """
    key = SPLITS.index(split) if stream is None else stream
    rng = np.random.default_rng(np.random.SeedSequence(config.seed, spawn_key=(key, 2, index)))
    return draw_settings(rng, config.jpeg_quality, config.noise_sigma)


def make_image(config: SampleConfig, split: str, label: int, index: int) -> tuple[bytes, dict]:
    """Build one image (JPEG bytes) and its manifest row; depends only on its arguments."""
    ss = np.random.SeedSequence(config.seed, spawn_key=(SPLITS.index(split), label, index))
    face_ss, camera_ss = ss.spawn(2)
    rng = np.random.default_rng(face_ss)
    kind = CLASSES[label].lower()
    identity = f"{split}/{kind}/{index:05d}"
    image, geo = render_face(rng, config.size)
    method, params, donor = "real", {}, ""
    if label == 1:
        methods = config.methods(split)
        method = methods[index % len(methods)]
        donor_face = None
        if method == "face_swap":
            donor_face = render_face(rng, config.size)
            donor = identity + "/donor"
        image, params = manipulate(method, image, geo, rng, donor=donor_face)
    settings = camera_settings(config, split, index)
    data = camera(image, np.random.default_rng(camera_ss), settings)
    cam = {k: settings[k] for k in ("jpeg_quality", "noise_sigma")}
    row = {
        "path": f"{split}/{CLASSES[label]}/{kind}_{index:05d}.jpg",
        "split": split,
        "label": label,
        "method": method,
        "identity": identity,
        "donor": donor,
        **cam,
        "params": json.dumps(params, sort_keys=True),
        "camera": json.dumps(settings, sort_keys=True),
    }
    return data, row


def _write_one(job: tuple) -> dict:
    root, config, split, label, index = job
    data, row = make_image(config, split, label, index)
    (Path(root) / row["path"]).write_bytes(data)
    return row


def _prepare_out_dir(out_dir) -> Path:
    try:
        out = Path(out_dir).expanduser()
    except TypeError:
        raise ValueError(f"out_dir must be a path, got {out_dir!r}") from None
    if out.exists() and not out.is_dir():
        raise ValueError(f"out_dir={str(out)!r} is a file; pass a folder (it will contain Dataset/)")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ValueError(f"out_dir={str(out)!r} cannot be created ({err.strerror}); choose a writable folder") from None
    if not os.access(out, os.W_OK | os.X_OK):
        raise ValueError(f"out_dir={str(out)!r} is not writable; choose a writable folder")
    return out


def partial_token() -> str:
    """``<host>-<pid>-<random>``: names a temporary folder so a later run can tell whether its writer is gone."""
    from dflib.runtime import host_name

    return f"{host_name()}-{os.getpid()}-{secrets.token_hex(4)}"


def remove_stale_partials(folder: Path, stem: str) -> int:
    """Delete the hidden ``.<stem>.partial-*`` folders of killed runs on this host (and ``.<stem>.stale-*``
    leftovers); return how many. A partial folder of a process that still runs, or of another host, is kept."""
    from dflib.runtime import host_name, pid_alive

    removed = 0
    for path in sorted(folder.glob(f".{stem}.partial-*")) + sorted(folder.glob(f".{stem}.stale-*")):
        rest = path.name.split(".partial-", 1)[1] if ".partial-" in path.name else None
        if rest is not None:
            parts = rest.rsplit("-", 2)
            host, pid = (parts[0], parts[1]) if len(parts) == 3 else (host_name(), parts[0])
            if host != host_name() or not pid.isdigit() or pid_alive(int(pid)):
                continue
        shutil.rmtree(path, ignore_errors=True)
        removed += not path.exists()
    if removed:
        print(f"removed {removed} partial folder(s) of interrupted sample generation in {folder}", file=sys.stderr)
    return removed


def generate_sample(
    out_dir,
    config: SampleConfig | None = None,
    *,
    progress: bool = True,
    workers: int = 1,
    overwrite: bool = False,
    **overrides,
) -> Path:
    """Generate the dataset into `<out_dir>/Dataset` and return that path.

    Files are written to a temporary sibling folder that is renamed to `Dataset` at the end,
    so an interrupted run never leaves a half-written `Dataset`. An existing non-empty
    `Dataset` is only replaced with `overwrite=True`. `workers > 1` uses that many processes;
    the result is the same byte for byte.
    """
    config = resolve_config(config, overrides)
    if not isinstance(workers, int) or workers < 1:
        raise ValueError(f"workers={workers!r} is invalid; use an integer >= 1 (number of processes)")
    out = _prepare_out_dir(out_dir)
    final = out / "Dataset"
    if final.exists() and any(final.iterdir()) and not overwrite:
        raise ValueError(
            f"{final} already exists and is not empty; pass --overwrite (overwrite=True) to "
            f"replace it, or another --out (out_dir)"
        )
    remove_stale_partials(out, "Dataset")
    tmp = out / f".Dataset.partial-{partial_token()}"
    try:
        for split in SPLITS:
            for cls in CLASSES:
                (tmp / split / cls).mkdir(parents=True)
        jobs = [
            (str(tmp), config, split, label, i)
            for split, n in config.counts().items()
            for label in (0, 1)
            for i in range(n)
        ]
        bar = None
        if progress:
            bar = progress_bar(total=len(jobs), desc="synthetic faces", unit="img")
        rows = []
        if workers == 1:
            for job in jobs:
                rows.append(_write_one(job))
                if bar is not None:
                    bar.update()
        else:
            # fork on Linux: works from plain scripts without an `if __name__ == "__main__"` guard
            # (the workers only use numpy and PIL); spawn elsewhere.
            ctx = get_context("fork" if sys.platform.startswith("linux") else "spawn")
            with ProcessPoolExecutor(workers, mp_context=ctx) as pool:
                for row in pool.map(_write_one, jobs, chunksize=8):
                    rows.append(row)
                    if bar is not None:
                        bar.update()
        if bar is not None:
            bar.close()
        pd.DataFrame(rows, columns=MANIFEST_COLUMNS).to_csv(tmp / "manifest.csv", index=False)
        if final.exists():
            stale = out / f".Dataset.stale-{os.getpid()}-{secrets.token_hex(4)}"
            final.rename(stale)
            shutil.rmtree(stale, ignore_errors=True)
        tmp.rename(final)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return final


def read_manifest(dataset_dir) -> pd.DataFrame:
    """Load `<dataset_dir>/manifest.csv` (one row per image; `params` is a JSON string)."""
    path = Path(dataset_dir).expanduser() / "manifest.csv"
    if not path.is_file():
        raise FileNotFoundError(
            f"no manifest.csv in {path.parent}: it is written by generate_sample / "
            "ensure_sample (the Kaggle dataset has none)"
        )
    return pd.read_csv(path, dtype={"donor": str, "params": str, "camera": str}, keep_default_na=False)
