"""``dflib crop-faces SRC OUT``: your own dataset of face crops, in the Kaggle layout, from raw photos.

``SRC`` holds photos in ``Real/`` and ``Fake/`` (searched recursively; any letter case), or is a
dataset in the Kaggle layout (``Train/Validation/Test`` with ``Real/Fake`` in each). Every face
found (:func:`dflib.faces.detect_faces`) is cropped like a training image
(:func:`dflib.faces.crop_region`), resized to ``size`` (256 px, like Kaggle) and written as JPEG to
``OUT/Dataset/{Train,Validation,Test}/{Real,Fake}/``; ``OUT/manifest.csv`` lists source -> crop with
the face box and the crop region (original-image pixels), and every photo without a face
(``status`` no_face) or unreadable (``status`` unreadable): those are counted, listed and skipped.

The split is by *photo*, never by crop: all faces of one photo land in the same split (a group
photo split across Train and Test would leak). ``split=(0.8, 0.1, 0.1)`` with ``seed`` shuffles
the photos that have a face, per class; a Kaggle-layout ``SRC`` keeps its own splits unless a
``split`` is given.

Safe to interrupt and re-run: detections are journaled in ``OUT/.crop-faces/`` as they come,
each crop is written atomically (temporary file + ``os.replace``), and a re-run only detects the
photos not yet seen and writes the crops not yet there, then completes the manifest. Run it
again with the same settings (other settings need another ``OUT``); photos added to ``SRC`` in
the meantime are detected and the split is drawn again, and crops the new manifest does not list
are removed from ``OUT/Dataset`` (it is crop-faces' own folder).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import secrets
import sys
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path

import numpy as np
import pandas as pd

from dflib.data.files import find_images
from dflib.data.layout import CLASSES, SPLITS, LayoutError, find_root
from dflib.faces.detect import MAX_DETECT_PIXELS, MIN_FACE, THRESHOLD, detect_faces
from dflib.faces.framing import CROP_SCALE, CROP_SHIFT, crop_region
from dflib.runtime import progress_bar

STATE = ".crop-faces"
MANIFEST_COLUMNS = [
    "source",
    "class",
    "split",
    "face",
    "x0",
    "y0",
    "x1",
    "y1",
    "crop_x0",
    "crop_y0",
    "crop_x1",
    "crop_y1",
    "crop",
    "status",
    "note",
]
DEFAULT_SPLIT = (0.8, 0.1, 0.1)


@dataclass
class CropReport:
    """What ``crop_faces`` did: crops per split and class, photos without a face, unreadable ones."""

    dataset: Path
    manifest: Path
    counts: dict[str, dict[str, int]]
    n_photos: int
    n_faces: int
    no_face: list[str] = field(default_factory=list)
    unreadable: list[tuple[str, str]] = field(default_factory=list)
    written: int = 0

    def summary(self, show: int = 10) -> str:
        lines = [
            f"dataset: {self.dataset}",
            f"manifest: {self.manifest}",
            f"{self.n_photos} photo(s): {self.n_faces} face crop(s) ({self.written} written now), "
            f"{len(self.no_face)} without a face, {len(self.unreadable)} unreadable",
        ]
        lines += [f"  {split}: {c.get('real', 0)} real, {c.get('fake', 0)} fake" for split, c in self.counts.items()]
        for title, items in (
            ("no face found (skipped)", self.no_face),
            ("unreadable (skipped)", [f"{p}: {why}" for p, why in self.unreadable]),
        ):
            if items:
                lines.append(f"{title}:")
                lines += [f"  {x}" for x in items[:show]]
                if len(items) > show:
                    lines.append(f"  ... and {len(items) - show} more (status column of the manifest)")
        lines.append(f"check it with: dflib check-data {self.dataset}")
        return "\n".join(lines)


# --------------------------------------------------------------------------- sources
def find_sources(src: str | os.PathLike) -> list[tuple[str, str, str | None]]:
    """``(relative path, class, split or None)`` for every photo under ``src`` (see the module docstring)."""
    src = Path(src).expanduser()
    if not src.is_dir():
        raise LayoutError(f"crop-faces SRC {src} is not a folder; pass a folder with Real/ and Fake/ photos")
    try:
        root = find_root(src)
    except LayoutError:
        root = None
    out = []
    if root is not None:
        for split_dir in sorted(p for p in root.iterdir() if p.is_dir()):
            split = {s.lower(): s for s in SPLITS}.get(split_dir.name.lower()) or {
                "val": "Validation",
                "valid": "Validation",
            }.get(split_dir.name.lower())
            if split is not None:
                out += [(rel, cls, split) for rel, cls, _ in _class_folders(split_dir, src)]
    else:
        out = _class_folders(src, src)
    if not out:
        raise LayoutError(
            f"no photos found under {src}: expected {src}/Real/ and {src}/Fake/ (any letter case, "
            f"photos in sub-folders too) or the Kaggle layout {src}/Dataset/{{Train,Validation,Test}}/"
            f"{{Real,Fake}}/"
        )
    return out


def _class_folders(folder: Path, src: Path) -> list[tuple[str, str, None]]:
    out = []
    for cls_dir in sorted(p for p in folder.iterdir() if p.is_dir() and p.name.lower() in CLASSES):
        try:
            images = find_images([cls_dir])
        except ValueError:
            continue  # an empty class folder: reported below if nothing at all is found
        out += [(p.relative_to(src).as_posix(), cls_dir.name.lower(), None) for p in images]
    return out


def assign_splits(
    photos: Sequence[tuple[str, str, str | None]], split: Sequence[float] | None, seed: int
) -> dict[str, str]:
    """``{source: split}``: by seed per class (``split`` fractions), or the photos' own splits."""
    own = all(s is not None for _, _, s in photos)
    if split is None and own:
        return {rel: s for rel, _, s in photos}
    fractions = tuple(float(f) for f in (split if split is not None else DEFAULT_SPLIT))
    if len(fractions) != 3 or min(fractions) < 0 or fractions[0] <= 0 or abs(sum(fractions) - 1) > 1e-6:
        raise ValueError(
            f"split={split!r} is invalid; give three fractions for Train, Validation, Test that add "
            f"up to 1, Train > 0 (e.g. 0.8 0.1 0.1)"
        )
    out = {}
    for k, cls in enumerate(CLASSES):
        mine = sorted(rel for rel, c, _ in photos if c == cls)
        n = len(mine)
        order = np.random.default_rng([seed, k]).permutation(n)
        sizes = [0, round(fractions[1] * n), round(fractions[2] * n)]
        sizes = [max(s, 1) if f > 0 else 0 for s, f in zip(sizes, fractions)]
        sizes[0] = n - sizes[1] - sizes[2]
        if n and sizes[0] < 1:
            raise ValueError(
                f"only {n} {cls} photo(s) with a face: too few for split {list(fractions)}; add photos "
                f"or give fewer splits (e.g. --split 1 0 0)"
            )
        names = [name for name, size in zip(SPLITS, sizes) for _ in range(size)]
        out.update({mine[j]: names[pos] for pos, j in enumerate(order)})
    return out


# --------------------------------------------------------------------------- workers
def _detect_job(job: tuple[str, str, dict]) -> dict:
    from dflib.data.io import quick_check, read_image

    rel, path, options = job
    try:
        img = read_image(path)
    except Exception as e:
        text = re.sub(r"\s*<_io\.\w+ object at 0x[0-9a-f]+>", "", str(e))
        reason = quick_check(path) or text.replace(f"{path}: ", "")
        return {"source": rel, "status": "unreadable", "error": reason}
    faces = detect_faces(img, **options)
    return {
        "source": rel,
        "status": "ok" if faces else "no_face",
        "size": list(img.size),
        "boxes": [[round(v, 2) for v in f.box] + [round(f.score, 3)] for f in faces],
    }


def _crop_job(job: tuple[str, list, list[str], int]) -> int:
    from PIL import Image

    from dflib.data.io import read_image

    path, regions, targets, size = job
    img = read_image(path)
    written = 0
    for region, target in zip(regions, targets):
        piece = img.crop(tuple(region)).resize((size, size), Image.Resampling.LANCZOS)
        buf = io.BytesIO()
        piece.save(buf, format="JPEG", quality=95)
        _atomic_write(Path(target), buf.getvalue())
        written += 1
    return written


def _atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")  # hidden: never listed as an image
    try:
        with open(tmp, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _map(fn, jobs: list, workers: int, bar):
    if workers <= 1 or len(jobs) <= 1:
        for job in jobs:
            yield fn(job)
            bar.update()
        return
    ctx = get_context("fork" if sys.platform.startswith("linux") else "spawn")
    with ProcessPoolExecutor(workers, mp_context=ctx) as pool:
        for result in pool.map(fn, jobs, chunksize=4):
            yield result
            bar.update()


# --------------------------------------------------------------------------- the command
def _unique_names(sources: Sequence[str]) -> dict[str, str]:
    """``{source: crop stem}``: ``Real/party/img 1.jpg`` -> ``party__img_1`` (the path below the class and
    split folders, flattened); names that would collide get a short hash of their source."""
    skip = set(CLASSES) | {s.lower() for s in SPLITS} | {"dataset", "val", "valid"}
    stems = {}
    for rel in sources:
        parts = rel.split("/")
        while len(parts) > 1 and parts[0].lower() in skip:
            parts = parts[1:]
        stems[rel] = re.sub(r"[^\w.\-]+", "_", "__".join(parts).rsplit(".", 1)[0]) or "photo"
    seen: dict[str, int] = {}
    for stem in stems.values():
        seen[stem.lower()] = seen.get(stem.lower(), 0) + 1
    tag = {rel: hashlib.blake2b(rel.encode(), digest_size=3).hexdigest() for rel in stems}
    return {rel: stem if seen[stem.lower()] == 1 else f"{stem}-{tag[rel]}" for rel, stem in stems.items()}


def _settings_check(out: Path, settings: dict) -> None:
    state = out / STATE
    saved = state / "settings.json"
    if saved.is_file():
        old = json.loads(saved.read_text(encoding="utf-8"))
        diff = {k: (old.get(k), v) for k, v in settings.items() if old.get(k) != v}
        if diff:
            raise ValueError(
                f"{out} was made by crop-faces with other settings "
                f"({', '.join(f'{k}: {a} then, {b} now' for k, (a, b) in diff.items())}); "
                f"use another OUT folder, or delete {out} to start over"
            )
        return
    if out.exists() and any(out.iterdir()):
        raise ValueError(f"OUT {out} is not empty and was not made by crop-faces; choose a new or empty folder")
    state.mkdir(parents=True, exist_ok=True)
    _atomic_write(saved, json.dumps(settings, indent=1).encode())


def _read_journal(path: Path) -> dict[str, dict]:
    done = {}
    if path.is_file():
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                rec = json.loads(line)
                done[rec["source"]] = rec
            except (ValueError, KeyError):
                continue  # a line torn by an interruption: that photo is detected again
    return done


def crop_faces(
    src: str | os.PathLike,
    out: str | os.PathLike,
    *,
    split: Sequence[float] | None = None,
    seed: int = 0,
    size: int = 256,
    min_face: float = MIN_FACE,
    face_threshold: float = THRESHOLD,
    max_pixels: int = MAX_DETECT_PIXELS,
    workers: int = 1,
    progress: bool = True,
) -> CropReport:
    """Make ``out/Dataset`` (Kaggle layout) of face crops from the photos under ``src``; see the module docstring."""

    from dflib.faces.detect import _detector

    if not isinstance(size, int) or isinstance(size, bool) or size < 16:
        raise ValueError(f"size={size!r} is invalid; use the crop side in pixels, an integer >= 16 (e.g. 256)")
    if not isinstance(workers, int) or isinstance(workers, bool) or workers < 1:
        raise ValueError(f"workers={workers!r} is invalid; use an integer >= 1 (number of processes)")
    _detector()  # fail now, with the install hint, if the extra is missing
    src, out = Path(src).expanduser(), Path(out).expanduser()
    photos = find_sources(src)
    if out.resolve().is_relative_to(src.resolve()):
        raise ValueError(f"OUT {out} is inside SRC {src}; choose a folder outside it")
    options = {"min_face": float(min_face), "max_pixels": int(max_pixels), "threshold": float(face_threshold)}
    settings = {
        "src": str(src.resolve()),
        "size": size,
        "seed": seed,
        "split": list(split) if split else None,
        **options,
        "crop_scale": CROP_SCALE,
        "crop_shift": list(CROP_SHIFT),
    }
    _settings_check(out, settings)
    journal = out / STATE / "detections.jsonl"
    done = _read_journal(journal)

    todo = [(rel, str(src / rel), options) for rel, _, _ in photos if rel not in done]
    with (
        progress_bar(total=len(todo), desc="finding faces", unit="photo", disable=not progress) as bar,
        open(journal, "a", encoding="utf-8") as log,
    ):
        for rec in _map(_detect_job, todo, workers, bar):
            log.write(json.dumps(rec) + "\n")
            log.flush()
            done[rec["source"]] = rec

    with_face = [p for p in photos if done[p[0]]["status"] == "ok"]
    splits = assign_splits(with_face, split, seed)
    for s in sorted(set(splits.values()), key=SPLITS.index):
        for cls in CLASSES:
            if not any(splits[rel] == s and c == cls for rel, c, _ in with_face):
                raise ValueError(
                    f"no {cls} photo with a face in {s} ({len(with_face)} of {len(photos)} photos have "
                    f"one): the dataset would fail check-data; add {cls} photos, lower --min-face or "
                    f"--face-threshold, or give fewer splits (e.g. --split 1 0 0)"
                )
    names = {
        rel: stem
        for cls in CLASSES
        for rel, stem in _unique_names([rel for rel, c, _ in with_face if c == cls]).items()
    }
    dataset = out / "Dataset"
    rows, jobs, expected = [], [], set()
    for rel, cls, _ in photos:
        rec = done[rel]
        if rec["status"] != "ok":
            rows.append({"source": rel, "class": cls, "status": rec["status"], "note": rec.get("error")})
            continue
        folder = dataset / splits[rel] / cls.capitalize()
        folder.mkdir(parents=True, exist_ok=True)
        w, h = rec["size"]
        regions, targets = [], []
        for k, (*box, _score) in enumerate(rec["boxes"]):
            region = crop_region(tuple(box), w, h)
            target = folder / f"{names[rel]}_f{k}.jpg"
            expected.add(target)
            rows.append(
                {
                    "source": rel,
                    "class": cls,
                    "split": splits[rel],
                    "face": k,
                    **dict(zip(("x0", "y0", "x1", "y1"), (round(v) for v in box))),
                    **dict(zip(("crop_x0", "crop_y0", "crop_x1", "crop_y1"), region)),
                    "crop": target.relative_to(out).as_posix(),
                    "status": "ok",
                }
            )
            if not (target.is_file() and target.stat().st_size > 0):
                regions.append(region)
                targets.append(str(target))
        if targets:
            jobs.append((str(src / rel), regions, targets, size))
    with progress_bar(total=len(jobs), desc="writing crops", unit="photo", disable=not progress) as bar:
        written = sum(_map(_crop_job, jobs, workers, bar))
    for stale in dataset.glob("*/*/*"):  # crops of an earlier run that this one does not list
        if stale.is_file() and stale not in expected:
            stale.unlink()
    manifest = out / "manifest.csv"
    df = pd.DataFrame(rows, columns=MANIFEST_COLUMNS)
    for c in ["face", "x0", "y0", "x1", "y1", "crop_x0", "crop_y0", "crop_x1", "crop_y1"]:
        df[c] = df[c].astype("Int64")
    _atomic_write(manifest, df.to_csv(index=False).encode())
    ok = df[df["status"] == "ok"]
    counts = {
        s: {c: int(((ok["split"] == s) & (ok["class"] == c)).sum()) for c in CLASSES}
        for s in SPLITS
        if (ok["split"] == s).any()
    }
    return CropReport(
        dataset=dataset,
        manifest=manifest,
        counts=counts,
        n_photos=len(photos),
        n_faces=len(ok),
        no_face=df.loc[df["status"] == "no_face", "source"].tolist(),
        unreadable=list(
            zip(df.loc[df["status"] == "unreadable", "source"], df.loc[df["status"] == "unreadable", "note"].fillna(""))
        ),
        written=written,
    )
