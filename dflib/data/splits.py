"""Split hygiene: exact duplicates within and across splits, and the class balance of each split.

A test image that also sits in Train (or the same image labelled both real and fake) inflates
every number reported on it. ``check_splits`` hashes file contents, so renamed copies are found.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from dflib import CLASS_NAMES
from dflib.data.io import ImageReadError, read_file_bytes
from dflib.data.layout import DatasetLayout, discover
from dflib.runtime import progress_bar


def file_hash(path: str | os.PathLike) -> str | None:
    """BLAKE2b content hash of a file (hex, 32 chars), read with the bounded reader; None if unreadable."""
    try:
        return hashlib.blake2b(read_file_bytes(path), digest_size=16).hexdigest()
    except ImageReadError:
        return None


@dataclass
class SplitReport:
    """What :func:`check_splits` found."""

    balance: pd.DataFrame
    duplicates: pd.DataFrame  # one row per file that shares its content with another file
    n_files: int
    groups: list[list[tuple[str, str, Path]]] = field(default_factory=list)

    @property
    def within_split(self) -> int:
        """Duplicate groups whose copies all sit in one split."""
        return sum(len({s for s, _, _ in g}) == 1 for g in self.groups)

    @property
    def across_splits(self) -> int:
        """Duplicate groups that span two or more splits (leakage)."""
        return sum(len({s for s, _, _ in g}) > 1 for g in self.groups)

    @property
    def conflicting_labels(self) -> int:
        """Duplicate groups whose copies carry different labels."""
        return sum(len({c for _, c, _ in g}) > 1 for g in self.groups)

    @property
    def ok(self) -> bool:
        return not self.groups

    def summary(self) -> str:
        lines = [
            f"{self.n_files:,} files hashed; {len(self.groups)} group(s) of exact duplicates: "
            f"{self.within_split} within a split, {self.across_splits} across splits, "
            f"{self.conflicting_labels} with conflicting labels."
        ]
        for _, row in self.balance.iterrows():
            lines.append(
                f"  {row['split']:<10} real {row['real']:>7,}  fake {row['fake']:>7,}  "
                f"fake share {row['fake_share']:.1%}"
            )
        return "\n".join(lines)

    def __repr__(self) -> str:
        return f"SplitReport(\n{self.summary()}\n)"


def check_splits(
    root: str | os.PathLike | DatasetLayout, progress: bool = True, hashes: dict[Path, str] | None = None
) -> SplitReport:
    """Hash every image of every split; report duplicate groups and per-split class balance.

    ``hashes`` (path -> content hash, e.g. :attr:`dflib.data.scan.ReadReport.hashes`) saves reading
    the files again (a file missing from it is taken as unreadable). Unreadable files take part in no group
    (:func:`dflib.data.scan.scan_dataset` reports them).
    """
    layout = root if isinstance(root, DatasetLayout) else discover(root)
    entries = [
        (split.name, CLASS_NAMES[label], path) for split in layout.splits.values() for path, label in split.samples()
    ]
    by_hash: dict[str, list[tuple[str, str, Path]]] = {}
    known = hashes or {}
    for entry in progress_bar(entries, desc="hashing", disable=not progress or bool(known), leave=False):
        h = known.get(entry[2]) or (None if known else file_hash(entry[2]))
        if h is not None:
            by_hash.setdefault(h, []).append(entry)
    groups = [g for g in by_hash.values() if len(g) > 1]

    rows = []
    for name, counts in layout.counts().items():
        total = counts["real"] + counts["fake"]
        rows.append(
            {
                "split": name,
                "real": counts["real"],
                "fake": counts["fake"],
                "total": total,
                "fake_share": counts["fake"] / total if total else float("nan"),
            }
        )
    dup_rows = [{"group": i, "split": s, "class": c, "path": str(p)} for i, g in enumerate(groups) for s, c, p in g]
    duplicates = pd.DataFrame(dup_rows, columns=["group", "split", "class", "path"])
    return SplitReport(
        balance=pd.DataFrame(rows), duplicates=duplicates, n_files=sum(len(g) for g in by_hash.values()), groups=groups
    )
