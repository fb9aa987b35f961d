"""Read every file of a list (or of a dataset) once, in worker processes: which ones can be used, and why not.

The one screening path behind ``dflib check-data`` and ``DeepfakeDataset(check=...)``. Each file
goes through the bounded reader (:func:`dflib.data.io.read_file_bytes`: regular files only, a
size cap) and then either the cheap header check (``quick``) or a full decode exactly as the
loaders decode (``full``, the pixel cap included). Nothing is dropped without a reason: every
unusable file comes back with one, per split and class.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from dflib import CLASS_NAMES
from dflib.data.io import MAX_PIXELS, ImageReadError, check_image, quick_check, read_file_bytes
from dflib.data.layout import DatasetLayout
from dflib.runtime import progress_bar

Mode = Literal["quick", "full"]


def inspect_file(
    path: str | os.PathLike, mode: Mode = "full", max_pixels: int = MAX_PIXELS, digest: bool = False
) -> tuple[str | None, str | None]:
    """``(reason it cannot be used or None, BLAKE2b content hash or None)`` of one file.

    ``digest`` hashes the bytes read (for duplicate search); ``quick`` then reads the whole file
    anyway, bounded, and screens it without decoding.
    """
    if not digest:
        reason = quick_check(path, max_pixels)
        return (reason if reason is not None or mode == "quick" else check_image(path, max_pixels)), None
    try:
        data = read_file_bytes(path)
    except ImageReadError as e:
        return e.reason, None
    h = hashlib.blake2b(data, digest_size=16).hexdigest() if digest else None
    # The screen first, for its precise reasons ("truncated JPEG", "not an image"); then the decoder.
    reason = quick_check(path, max_pixels)
    if reason is None and mode == "full":
        reason = check_image(path, max_pixels, data)
    return reason, h


def _inspect(job: tuple[str, Mode, int, bool]) -> tuple[str | None, str | None]:
    return inspect_file(*job)


def scan_files(
    paths: Sequence[str | os.PathLike],
    mode: Mode = "full",
    *,
    workers: int = 0,
    max_pixels: int = MAX_PIXELS,
    digest: bool = False,
    progress: bool = False,
    desc: str = "checking",
) -> list[tuple[str | None, str | None]]:
    """:func:`inspect_file` for every path, in order; ``workers`` > 0 spreads the work over processes."""
    jobs = [(os.fspath(p), mode, max_pixels, digest) for p in paths]
    bar = progress_bar(total=len(jobs), desc=desc, unit="img", disable=not progress, leave=False)
    try:
        if workers <= 0 or len(jobs) < 64:
            out = []
            for job in jobs:
                out.append(_inspect(job))
                bar.update()
            return out
        chunk = max(1, min(256, len(jobs) // (workers * 8)))
        with ProcessPoolExecutor(max_workers=workers) as pool:
            out = []
            for result in pool.map(_inspect, jobs, chunksize=chunk):
                out.append(result)
                bar.update()
            return out
    finally:
        bar.close()


@dataclass
class ReadReport:
    """What :func:`scan_dataset` found: per split and class, the files and the readable ones; every problem."""

    mode: Mode
    counts: dict[str, dict[str, dict[str, int]]]  # split -> class -> {"files", "readable"}
    problems: list[tuple[str, str, Path, str]] = field(default_factory=list)  # (split, class, path, reason)
    nested: dict[str, dict[str, int]] = field(default_factory=dict)  # files found in sub-folders
    hashes: dict[Path, str] = field(default_factory=dict)

    @property
    def unreadable(self) -> int:
        return len(self.problems)

    def empty_classes(self) -> list[str]:
        """``Split/class`` names with no readable image (each makes the split unusable)."""
        return [f"{split}/{cls}" for split, by in self.counts.items() for cls, c in by.items() if c["readable"] == 0]

    def summary(self, max_listed: int = 20) -> str:
        what = "decoded" if self.mode == "full" else "screened (header only, --quick)"
        total = sum(c["files"] for by in self.counts.values() for c in by.values())
        lines = [f"{total:,} files {what}; {self.unreadable} unreadable."]
        for split, by in self.counts.items():
            cells = []
            for cls, c in by.items():
                bad = c["files"] - c["readable"]
                cells.append(f"{cls} {c['readable']:>7,} readable" + (f" ({bad} unreadable)" if bad else ""))
            nested = sum(self.nested.get(split, {}).values())
            lines.append(
                f"  {split:<10} " + "  ".join(cells) + (f"  [{nested} in sub-folders, included]" if nested else "")
            )
        for split, cls, path, reason in self.problems[:max_listed]:
            lines.append(f"  unreadable {split}/{cls}: {path}: {reason}")
        if self.unreadable > max_listed:
            lines.append(f"  ... and {self.unreadable - max_listed} more unreadable file(s)")
        return "\n".join(lines)


def scan_dataset(
    layout: DatasetLayout,
    mode: Mode = "full",
    *,
    workers: int = 0,
    max_pixels: int = MAX_PIXELS,
    digest: bool = True,
    progress: bool = True,
) -> ReadReport:
    """Read every file of every split of ``layout`` (see :func:`scan_files`) and sort the results by split and class."""
    entries = [
        (split.name, CLASS_NAMES[label], path) for split in layout.splits.values() for path, label in split.samples()
    ]
    results = scan_files(
        [p for _, _, p in entries],
        mode,
        workers=workers,
        max_pixels=max_pixels,
        digest=digest,
        progress=progress,
        desc="decoding" if mode == "full" else "screening",
    )
    counts = {s.name: {cls: {"files": 0, "readable": 0} for cls in CLASS_NAMES} for s in layout.splits.values()}
    report = ReadReport(mode, counts)
    report.nested = {s.name: {CLASS_NAMES[k]: n for k, n in s.nested.items()} for s in layout.splits.values()}
    for (split, cls, path), (reason, h) in zip(entries, results):
        counts[split][cls]["files"] += 1
        if reason is None:
            counts[split][cls]["readable"] += 1
            if h is not None:
                report.hashes[path] = h
        else:
            report.problems.append((split, cls, path, reason))
    return report


__all__ = ["ReadReport", "inspect_file", "scan_dataset", "scan_files"]
