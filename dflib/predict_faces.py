"""Score the faces in photos, one row per face: what ``predict_paths(..., faces=True)`` and
``dflib predict --faces`` run.

Each image is read in full, its faces found (:func:`dflib.faces.detect_faces`), each cut out
framed like a training crop (:func:`dflib.faces.crop_region`) and prepared as the model card
says, so a photo of a whole person or a group is scored the way the detectors were trained:
on face crops. Rows keep the columns of :data:`dflib.predict.COLUMNS` and add ``FACE_COLUMNS``:
``face`` (0, 1, ... left to right), the face box ``x0, y0, x1, y1`` in original-image pixels
and a ``note``. No row is ever lost:

- an unreadable file gets one row with ``error`` filled, as without ``--faces``;
- an image without a face gets one row with ``face`` empty and a ``note``; it is scored whole
  when it already looks like a face crop (small and square-ish,
  :func:`dflib.faces.looks_like_face_crop`), else left unscored (``p_fake`` empty).

With an explanation folder, one PNG per image shows the photo with each face's box, its
P(fake) and decision, and the heatmap of the first detector inside the face's crop.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from dflib.evaluation.scoring import p_fake
from dflib.faces import MAX_DETECT_PIXELS, MIN_FACE, THRESHOLD, crop_region, detect_faces, no_face_note, smallest_face
from dflib.runtime import progress_bar

FACE_COLUMNS = ["face", "x0", "y0", "x1", "y1", "note"]
DISPLAY_MAX_SIDE = 768  # face overlays are drawn on the photo shrunk to this (boxes stay legible)


@dataclass
class FaceRows:
    """The rows of a face-mode prediction: P(fake) per detector, read errors and the face columns."""

    paths: list[Path]
    probs: np.ndarray  # (rows, detectors), NaN where not scored
    errors: list[str]
    columns: pd.DataFrame  # FACE_COLUMNS, one row each
    explanations: dict[str, str] = field(default_factory=dict)
    explain_errors: dict[str, str] = field(default_factory=dict)


class _FaceFiles(torch.utils.data.Dataset):
    """Reads one file and finds its faces: ``(index, entries, error, note, display, (w, h))``; an entry is
    ``(face index or None, box or None, crop region, inputs per detector)``."""

    def __init__(self, paths: Sequence[Path], transforms: Sequence, options: dict, display: bool) -> None:
        self.paths, self.transforms, self.options, self.display = list(paths), list(transforms), options, display

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int):
        from dflib.data.io import read_image_tensor

        try:
            img = read_image_tensor(self.paths[i])
        except Exception as e:
            return i, None, e, "", None, None
        h, w = img.shape[-2:]
        faces = detect_faces(img, **self.options)
        entries = []
        for k, face in enumerate(faces):
            region = crop_region(face, w, h)
            x0, y0, x1, y1 = region
            piece = img[:, y0:y1, x0:x1]
            entries.append((k, face.box, region, [t(piece) for t in self.transforms]))
        note = ""
        if not faces:
            smallest = smallest_face(w, h, self.options["min_face"], self.options["max_pixels"])
            whole, note = no_face_note(w, h, smallest)
            entries = [(None, None, (0, 0, w, h), [t(img) for t in self.transforms])] if whole else []
        return i, entries, None, note, _display(img) if self.display else None, (w, h)


def _display(img: torch.Tensor, max_side: int = DISPLAY_MAX_SIDE) -> np.ndarray:
    from PIL import Image

    arr = img.permute(1, 2, 0).numpy()
    h, w = arr.shape[:2]
    if max(h, w) <= max_side:
        return np.ascontiguousarray(arr)
    s = max_side / max(h, w)
    return np.asarray(
        Image.fromarray(arr).resize((max(1, round(w * s)), max(1, round(h * s))), Image.Resampling.LANCZOS)
    )


def _collate(items):
    return items


def draw_faces(
    image: np.ndarray,
    size: tuple[int, int],
    rows: Sequence[dict],
    threshold: float,
    heat: Sequence[torch.Tensor | None] | None = None,
) -> np.ndarray:
    """The photo (``image``, the original of ``size`` = (w, h) shrunk) with each face's heatmap inside its
    crop, its box and ``face k: P(fake) -> decision``; ``rows`` have ``box``, ``region``, ``face``, ``p``."""
    from PIL import Image, ImageDraw, ImageFont

    from dflib.explain import overlay

    out = image.copy()
    f = out.shape[1] / size[0]
    for r, hm in zip(rows, heat or [None] * len(rows)):
        if hm is not None:
            x0, y0, x1, y1 = (int(round(v * f)) for v in r["region"])
            if x1 > x0 and y1 > y0:
                out[y0:y1, x0:x1] = overlay(out[y0:y1, x0:x1], hm)
    pil = Image.fromarray(out)
    draw = ImageDraw.Draw(pil)
    try:
        font = ImageFont.load_default(size=max(12, out.shape[1] // 40))
    except TypeError:  # Pillow < 10.1
        font = ImageFont.load_default()
    for r in rows:
        p = r["p"]
        fake = np.isfinite(p) and p >= threshold
        colour = (220, 40, 40) if fake else (40, 200, 80)
        who = "" if r["face"] is None else f"face {r['face']}: "
        text = f"{who}{p:.2f} {'fake' if fake else 'real'}"
        box = r["box"] if r["box"] is not None else r["region"]
        x0, y0, x1, y1 = (v * f for v in box)
        draw.rectangle([x0, y0, x1 - 1, y1 - 1], outline=colour, width=max(2, out.shape[1] // 200))
        tx, ty = x0 + 2, max(0, y0 - font.size - 6) if hasattr(font, "size") else max(0, y0 - 14)
        bbox = draw.textbbox((tx, ty), text, font=font)
        draw.rectangle(bbox, fill=(0, 0, 0))
        draw.text((tx, ty), text, fill=colour, font=font)
    return np.asarray(pil)


def score_faces(
    paths: Sequence[Path],
    detectors: Sequence[tuple[Any, Any]],
    device: torch.device,
    *,
    batch_size: int,
    workers: int,
    progress: bool,
    threshold: float,
    read_error: Callable[[Path, Exception], str],
    explain_targets: Sequence[Path] | None = None,
    min_face: float = MIN_FACE,
    max_pixels: int = MAX_DETECT_PIXELS,
    face_threshold: float = THRESHOLD,
) -> FaceRows:
    """Find, crop and score the faces of every image under ``paths`` with ``detectors`` ((model, card) pairs)."""

    from dflib.faces.detect import _detector

    _detector()  # a missing extra fails here, once, with the install hint
    options = {"min_face": float(min_face), "max_pixels": int(max_pixels), "threshold": float(face_threshold)}
    smallest_face(1, 1, **{k: options[k] for k in ("min_face", "max_pixels")})  # validates the options
    data = _FaceFiles(paths, [card.transform() for _, card in detectors], options, explain_targets is not None)
    loader = torch.utils.data.DataLoader(
        data, batch_size=batch_size, shuffle=False, num_workers=workers, collate_fn=_collate
    )
    rows: list[dict] = []
    result = FaceRows(paths=[], probs=np.zeros((0, len(detectors))), errors=[], columns=pd.DataFrame())
    with progress_bar(total=len(paths), desc="predict faces", unit="img", disable=not progress) as bar:
        for batch in loader:
            pending, first = [], len(rows)
            for i, entries, error, note, _, _ in batch:
                if error is not None:
                    rows.append({"i": i, "error": read_error(paths[i], error), "face": None, "box": None, "note": ""})
                    continue
                if not entries:
                    rows.append({"i": i, "error": "", "face": None, "box": None, "note": note})
                for k, box, region, xs in entries:
                    rows.append({"i": i, "error": "", "face": k, "box": box, "region": region, "note": note, "xs": xs})
                    pending.append(rows[-1])
            _run(pending, detectors, device, batch_size, explain_targets is not None)
            if explain_targets is not None:
                for i, _, error, _, shown, size in batch:
                    if error is None:
                        mine = [r for r in rows[first:] if r["i"] == i and "region" in r]
                        _explain_one(mine, shown, size, paths[i], explain_targets[i], threshold, result)
            bar.update(len(batch))
    result.paths = [paths[r["i"]] for r in rows]
    blank = [np.nan] * len(detectors)
    result.probs = np.array([r.get("p", blank) for r in rows], dtype=float).reshape(-1, len(detectors))
    result.errors = [r["error"] for r in rows]
    box = [r["box"] if r["box"] is not None else (None,) * 4 for r in rows]
    result.columns = pd.DataFrame(
        {
            "face": pd.array([r["face"] for r in rows], dtype="Int64"),
            **{
                c: pd.array([None if b[j] is None else int(round(b[j])) for b in box], dtype="Int64")
                for j, c in enumerate(("x0", "y0", "x1", "y1"))
            },
            "note": [r["note"] or None for r in rows],
        },
        columns=FACE_COLUMNS,
    )
    return result


def _run(pending: list[dict], detectors, device, batch_size: int, with_heat: bool) -> None:
    """Score ``pending`` rows in chunks of ``batch_size``; sets ``p`` (per detector) and ``heat`` on each."""
    for start in range(0, len(pending), batch_size):
        chunk = pending[start : start + batch_size]
        probs = []
        for k, (model, card) in enumerate(detectors):
            x = torch.stack([r["xs"][k] for r in chunk]).to(device)
            probs.append(p_fake(model, x, card.name, "faces"))
            if with_heat and k == 0:
                from dflib.explain import explain

                try:
                    with torch.enable_grad():
                        heat = explain(model, x.clone()).detach().cpu()
                except Exception:  # an explanation is a bonus: the boxes and scores are still drawn
                    heat = [None] * len(chunk)
                for r, hm in zip(chunk, heat):
                    r["heat"] = hm
        for j, r in enumerate(chunk):
            r["p"] = [float(p[j]) for p in probs]
            del r["xs"]


def _explain_one(
    mine: list[dict],
    shown: np.ndarray,
    size: tuple[int, int],
    path: Path,
    target: Path,
    threshold: float,
    result: FaceRows,
) -> None:
    from PIL import Image

    try:
        drawn = draw_faces(shown, size, [{**r, "p": r["p"][0]} for r in mine], threshold, [r.get("heat") for r in mine])
        Image.fromarray(drawn).save(target, format="PNG")
        result.explanations[os.fspath(path)] = str(target)
    except Exception as e:
        result.explain_errors[os.fspath(path)] = f"explanation not written ({type(e).__name__}: {e})"


def format_faces_table(df: pd.DataFrame) -> str:
    """The CLI's text table for a face-mode prediction: one line per face, then a summary."""
    cols = ["path", "face", "x0", "y0", "x1", "y1", "p_fake", "label", "note", "error"]
    shown = df[[c for c in cols if c in df]].copy()
    shown["p_fake"] = [("" if np.isnan(v) else f"{v:.4f}") for v in df["p_fake"]]
    for c in ("note", "error"):
        if c in shown and shown[c].isna().all():
            shown = shown.drop(columns=c)
    shown = shown.astype(object)
    text = shown.where(shown.notna(), "").astype(str).to_string(index=False)
    n_faces = int(df["face"].notna().sum())
    n_images = df["path"].nunique()
    n_none = int((df["face"].isna() & df["error"].isna()).sum())
    n_bad = int(df["error"].notna().sum())
    return text + (
        f"\n{n_faces} face(s) in {n_images} image(s), {df['model'].iloc[0]}, threshold "
        f"{df['threshold'].iloc[0]:.4g}: {int(df['p_fake'].notna().sum())} row(s) scored, "
        f"{int((df['label'] == 'fake').sum())} fake, {int((df['label'] == 'real').sum())} real"
        + (f", {n_none} image(s) without a face" if n_none else "")
        + (f", {n_bad} unreadable" if n_bad else "")
    )
