"""Find and validate the Kaggle layout ``Dataset/{Train,Validation,Test}/{Real,Fake}/*``.

The reference dataset (``manjilkarki/deepfake-and-real-images``) and the embedded synthetic
sample share this layout. Discovery is forgiving where it is safe (the ``Dataset`` folder or
its parent, any letter case for split and class folders, a split the caller does not need may
be absent) and strict where silence would hurt (an unknown class folder, an empty class, a
needed split that is missing): then one :class:`LayoutError` says what was found and what was
expected.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from dflib import FAKE, REAL
from dflib.data.files import IMAGE_EXTENSIONS, images_under

SPLITS: tuple[str, ...] = ("Train", "Validation", "Test")
CLASSES: Mapping[str, int] = {"real": REAL, "fake": FAKE}
# Common aliases for the validation split seen in other face datasets.
_SPLIT_ALIASES = {
    "train": "Train",
    "validation": "Validation",
    "val": "Validation",
    "valid": "Validation",
    "test": "Test",
}

EXPECTED = (
    "expected <root>/Dataset/{Train,Validation,Test}/{Real,Fake}/*.jpg "
    "(or that Dataset folder itself); class folders may be spelt Real/Fake or real/fake"
)


class LayoutError(ValueError):
    """The folder does not have the Kaggle layout (the message lists found vs expected)."""


@dataclass
class SplitFiles:
    """The image files of one split, by class label."""

    name: str
    folders: dict[int, Path]
    files: dict[int, list[Path]] = field(default_factory=dict)
    nested: dict[int, int] = field(default_factory=dict)  # how many of the files sit in sub-folders

    @property
    def counts(self) -> dict[str, int]:
        return {cls: len(self.files.get(label, [])) for cls, label in CLASSES.items()}

    def samples(self) -> list[tuple[Path, int]]:
        """(path, label) pairs, real first, each class in sorted file order."""
        return [(p, label) for label in sorted(self.files) for p in self.files[label]]


@dataclass
class DatasetLayout:
    """A validated dataset: its root (the ``Dataset`` folder) and the splits found in it."""

    root: Path
    splits: dict[str, SplitFiles]

    def __contains__(self, split: str) -> bool:
        return _canonical_split(split) in self.splits

    def __getitem__(self, split: str) -> SplitFiles:
        name = _canonical_split(split)
        if name not in self.splits:
            raise LayoutError(
                f"split {split!r} is not in {self.root}; found splits: {sorted(self.splits) or 'none'}. {EXPECTED}"
            )
        return self.splits[name]

    def counts(self) -> dict[str, dict[str, int]]:
        """Image counts per split and class, e.g. ``{"Train": {"real": 10, "fake": 10}}``."""
        return {name: s.counts for name, s in self.splits.items()}


def _canonical_split(name: str) -> str:
    return _SPLIT_ALIASES.get(name.lower(), name)


def _subdirs(path: Path) -> list[Path]:
    return sorted(p for p in path.iterdir() if p.is_dir() and not p.name.startswith("."))


def _looks_like_dataset(path: Path) -> bool:
    return any(p.name.lower() in _SPLIT_ALIASES for p in _subdirs(path))


def find_root(path: str | os.PathLike) -> Path:
    """Return the folder that holds the split folders: ``path`` itself or ``path/Dataset``."""
    path = Path(path).expanduser()
    if not path.exists():
        raise LayoutError(
            f"data folder {path} does not exist. Pass the path to the "
            f"Kaggle 'Dataset' folder (or its parent); {EXPECTED}"
        )
    if not path.is_dir():
        raise LayoutError(f"{path} is a file, not a folder; {EXPECTED}")
    if _looks_like_dataset(path):
        return path
    for child in _subdirs(path):
        if child.name.lower() == "dataset" and _looks_like_dataset(child):
            return child
    found = [p.name for p in _subdirs(path)]
    raise LayoutError(
        f"no split folders (Train/Validation/Test) in {path}; found sub-folders: {found or 'none'}. {EXPECTED}"
    )


def _list_images(folder: Path) -> list[Path]:
    """Everything named like an image under ``folder``, sub-folders included, sorted for determinism.

    Sub-folders are searched (symbolic links to folders are not followed, hidden names are
    skipped); entries that are not regular files (a FIFO, a device, a broken link) are listed
    too, so the reader refuses them with a reason and they are counted, never silently dropped.
    """
    return images_under(folder)


def discover(
    path: str | os.PathLike,
    required: Iterable[str] = (),
) -> DatasetLayout:
    """Discover and validate the dataset under ``path``.

    ``required`` names the splits the caller needs (e.g. ``("Train", "Validation")`` for
    training, ``("Test",)`` for evaluation); any other split may be absent. Every split that is
    present must hold exactly the two classes, each non-empty.
    """
    root = find_root(path)
    splits: dict[str, SplitFiles] = {}
    problems: list[str] = []
    for split_dir in _subdirs(root):
        name = _SPLIT_ALIASES.get(split_dir.name.lower())
        if name is None:
            continue  # unrelated folder next to the splits (e.g. a cache); ignored on purpose
        if name in splits:
            problems.append(f"two folders map to split {name}: {splits[name].folders} and {split_dir}")
            continue
        folders: dict[int, Path] = {}
        for cls_dir in _subdirs(split_dir):
            label = CLASSES.get(cls_dir.name.lower())
            if label is None:
                problems.append(f"{split_dir.name}/{cls_dir.name}: unknown class folder (expected Real and Fake)")
            elif label in folders:
                problems.append(f"{split_dir.name}: two folders for class {cls_dir.name.lower()}")
            else:
                folders[label] = cls_dir
        split = SplitFiles(name=name, folders=folders)
        for cls, label in CLASSES.items():
            if label not in folders:
                problems.append(f"{split_dir.name}: missing class folder {cls.capitalize()}")
                continue
            split.files[label] = _list_images(folders[label])
            split.nested[label] = sum(p.parent != folders[label] for p in split.files[label])
            if not split.files[label]:
                problems.append(
                    f"{split_dir.name}/{folders[label].name}: empty class "
                    f"(no image files with extensions {sorted(IMAGE_EXTENSIONS)})"
                )
        splits[name] = split
    for need in required:
        if _canonical_split(need) not in splits:
            problems.append(f"needed split {_canonical_split(need)} is missing")
    if problems:
        found = {n: s.counts for n, s in splits.items()}
        raise LayoutError(
            f"the dataset at {root} does not have the expected layout:\n  - "
            + "\n  - ".join(problems)
            + f"\nfound (images per split and class): {found or 'no splits'}\n{EXPECTED}"
        )
    ordered = {name: splits[name] for name in SPLITS if name in splits}
    return DatasetLayout(root=root, splits=ordered)
