"""Turning what a user types (files, folders, glob patterns) into a list of image files.

Used by ``dflib predict`` and by dataset discovery (:mod:`dflib.data.layout`); knows nothing
about models. Folders are searched recursively for files with an image extension (any case);
glob patterns are expanded here too, for shells that do not expand them (Windows ``cmd``,
quoted arguments).
"""

from __future__ import annotations

import fnmatch
import os
import re
from collections.abc import Iterable
from pathlib import Path

# The one list of image extensions in dflib: dataset discovery, check-data and predict all use it.
IMAGE_EXTENSIONS: tuple[str, ...] = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff")
_GLOB_CHARS = re.compile(r"[*?\[]")


class NoImagesError(ValueError):
    """Nothing to predict on: the message lists what was searched."""


def is_image_file(path: str | os.PathLike) -> bool:
    """True when the file name has an image extension (case-insensitive)."""
    return Path(path).suffix.lower() in IMAGE_EXTENSIONS


def images_under(folder: str | os.PathLike) -> list[Path]:
    """Files named like images under ``folder``, recursively, sorted; hidden files and folders are
    skipped (``.ipynb_checkpoints``, macOS ``._name.jpg`` resource forks). Symbolic links to folders
    are never followed (a ``self -> .`` or ``up -> ..`` link would repeat or never end); entries that
    are not regular files are kept, for the reader to refuse with a reason."""
    found = []
    for root, dirs, files in os.walk(folder, followlinks=False):
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and not os.path.islink(os.path.join(root, d)))
        found += [Path(root) / f for f in sorted(files) if not f.startswith(".") and is_image_file(f)]
    return found


_images_under = images_under


def _glob(pattern: str) -> list[Path]:
    """``glob.glob(pattern, recursive=True)``, except that ``**`` never follows a symbolic link to a
    folder (Python's does: a ``self -> .`` link repeats rows, an ``up -> ..`` link never ends).
    Single-level wildcards may cross links, as their depth is fixed by the pattern."""
    parts = Path(os.path.expanduser(pattern)).parts
    fixed = 0
    while fixed < len(parts) and not _GLOB_CHARS.search(parts[fixed]):
        fixed += 1
    found: list[Path] = []

    def walk(folder: Path, rest: tuple[str, ...]) -> None:
        if not rest:
            found.append(folder)
            return
        head, tail = rest[0], rest[1:]
        try:
            names = sorted(os.listdir(folder))
        except OSError:
            return
        if head != "**":
            names = fnmatch.filter(names, head)
        names = [n for n in names if not n.startswith(".") or head.startswith(".")]
        if head == "**":
            walk(folder, tail)  # zero folders
            for name in names:
                child = folder / name
                if child.is_dir() and not child.is_symlink():
                    walk(child, rest)
            if not tail:  # a trailing ** also matches the files
                found.extend(folder / n for n in names if not (folder / n).is_dir())
            return
        for name in names:
            child = folder / name
            if not tail:
                found.append(child)
            elif child.is_dir():
                walk(child, tail)

    walk(Path(*parts[:fixed]) if fixed else Path("."), tuple(parts[fixed:]))
    return found


def find_images(paths: Iterable[str | os.PathLike] | str | os.PathLike) -> list[Path]:
    """Expand files, folders (recursive) and glob patterns into a list of image paths.

    A file named explicitly is kept whatever its extension (if it is not an image its row says
    so); folders contribute files with an image extension (``IMAGE_EXTENSIONS``, any case).
    Glob patterns (``*``, ``?``, ``[...]``, ``**``) are expanded here as well, for shells that do
    not (Windows, quoted arguments). A named file that does not exist is kept, so it gets an
    error row, but when nothing at all is found :class:`NoImagesError` says what was searched.
    Duplicates are dropped; the order is the order of ``paths``, then sorted within a folder.
    """
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    out: list[Path] = []
    searched: list[str] = []
    existing = 0
    for item in paths:
        text = os.fspath(item)
        if not text.strip():
            continue
        path = Path(text).expanduser()
        if path.is_dir():
            images = _images_under(path)
            existing += len(images)
            out += images
            if not images:
                searched.append(f"folder {path} (recursively; no file ending in {', '.join(IMAGE_EXTENSIONS)})")
        elif path.is_file() or path.exists() or path.is_symlink():
            out.append(path)  # a FIFO, a device or a symlink loop gets a row saying why it cannot be read
            existing += 1
        elif _GLOB_CHARS.search(text):
            matches = _glob(text)
            images = []
            for m in matches:
                if m.is_dir() and not m.is_symlink():
                    images += _images_under(m)
                elif not m.is_dir() and is_image_file(m):  # FIFOs and broken links get an error row
                    images.append(m)
            existing += len(images)
            out += images
            if not images:
                searched.append(
                    f"pattern {text!r} ("
                    + (f"{len(matches)} match(es), no images among them)" if matches else "matched nothing)")
                )
        else:
            out.append(path)  # missing: reported in its own row (or below if it is all there is)
            searched.append(f"{path} (does not exist)")
    if existing == 0:
        what = "; ".join(searched) or "no paths were given"
        raise NoImagesError(
            f"no images found: {what}; pass image files, folders or glob patterns (e.g. example/ or 'photos/**/*.jpg')"
        )
    seen: set[str] = set()
    unique = []
    for p in out:
        # One row per file however many folder links lead to it (the file itself may be a link of its own).
        key = os.path.normcase(os.path.join(os.path.realpath(os.path.dirname(os.path.abspath(p))), p.name))
        if key not in seen:
            seen.add(key)
            unique.append(p)
    return unique


__all__ = ["find_images", "images_under", "is_image_file", "NoImagesError", "IMAGE_EXTENSIONS"]
