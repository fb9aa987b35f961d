"""The dataset and data loaders of one split of a Kaggle-layout folder.

A bad file (zero bytes, truncated, not an image, too large, not a regular file) never crashes
an epoch: files that fail the integrity check are left out when the dataset is built (counted,
listed with their reason in ``dataset.bad_files`` and reported with a warning), and a split in
which a class has no readable image is refused at once, before any training or scoring.

A file that still fails to decode later is handled in one of two ways. Scoring
(:func:`make_scoring_loader`, used by evaluation and validation) *skips* it and reports it:
a number is computed only on images that were read. Training (``dataset[i]``) replaces it by
the next good sample, so every batch keeps its size; the warning names the file.
"""

from __future__ import annotations

import os
import random
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Literal, NamedTuple

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler, WeightedRandomSampler, default_collate

from dflib import CLASS_NAMES
from dflib.data.io import MAX_PIXELS, ImageReadError, read_image_tensor
from dflib.data.layout import DatasetLayout, LayoutError, discover
from dflib.data.transforms import apply_transform

Check = Literal["quick", "full", "none"]


class DeepfakeDataset(Dataset):
    """Images of one split with labels fake = 1, real = 0.

    Args:
        root: the ``Dataset`` folder, its parent, or an already discovered :class:`DatasetLayout`.
        split: ``"Train"``, ``"Validation"`` or ``"Test"`` (any letter case).
        transform: applied to the ``uint8`` tensor ``(3, H, W)``; ``None`` returns it as is.
        check: ``"quick"`` screens every file cheaply (regular file, size, signature, end marker,
            header size) when the dataset is built; ``"full"`` decodes every file once (in
            ``check_workers`` processes; slower, exact); ``"none"`` trusts the folder. Decoding
            errors at load time are handled in all modes (see the module docstring).
        limit_per_class: keep a random subset of at most this many files per class (seeded),
            for quick experiments and smoke runs.
    """

    def __init__(
        self,
        root: str | os.PathLike | DatasetLayout,
        split: str = "Train",
        transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
        *,
        check: Check = "quick",
        limit_per_class: int | None = None,
        seed: int = 0,
        max_pixels: int = MAX_PIXELS,
        check_workers: int = 0,
        progress: bool = False,
    ) -> None:
        if check not in ("quick", "full", "none"):
            raise ValueError(f"check must be 'quick', 'full' or 'none', got {check!r}")
        if limit_per_class is not None and limit_per_class < 1:
            raise ValueError(f"limit_per_class must be >= 1 or None, got {limit_per_class!r}")
        layout = root if isinstance(root, DatasetLayout) else discover(root, required=(split,))
        files = layout[split]
        self.root = layout.root
        self.split = files.name
        self.transform = transform
        self.max_pixels = max_pixels
        self.classes = CLASS_NAMES
        self.bad_files: list[tuple[Path, str]] = []
        self.bad_labels: list[int] = []  # the label of each bad file

        samples = files.samples()
        if limit_per_class is not None:
            rng = random.Random(seed)
            by_label: dict[int, list[tuple[Path, int]]] = {}
            for s in samples:
                by_label.setdefault(s[1], []).append(s)
            samples = []
            for label in sorted(by_label):
                group = by_label[label]
                keep = sorted(rng.sample(range(len(group)), min(limit_per_class, len(group))))
                samples += [group[i] for i in keep]
        if check != "none":
            from dflib.data.scan import scan_files

            results = scan_files(
                [p for p, _ in samples],
                check,
                workers=check_workers,
                max_pixels=max_pixels,
                progress=progress,
                desc=f"checking {self.split}",
            )
            self.bad_files = [(path, reason) for (path, _), (reason, _) in zip(samples, results) if reason]
            self.bad_labels = [label for (_, label), (reason, _) in zip(samples, results) if reason]
            samples = [s for s, (reason, _) in zip(samples, results) if reason is None]
            if self.bad_files:
                warnings.warn(
                    f"{self.split}: skipped {len(self.bad_files)} unreadable file(s) "
                    f"(see dataset.bad_files), e.g. {self.bad_files[0][0]}: {self.bad_files[0][1]}",
                    stacklevel=2,
                )
        self._require_both_classes(samples)
        self.samples: list[tuple[Path, int]] = samples
        self.targets: list[int] = [label for _, label in samples]

    def _require_both_classes(self, samples: list[tuple[Path, int]]) -> None:
        """Refuse a split in which a class has no readable image: nothing computed on it would mean anything."""
        present = {label for _, label in samples}
        missing = [name for label, name in enumerate(self.classes) if label not in present]
        if not missing:
            return
        bad = {
            name: [f for f, label in zip(self.bad_files, self.bad_labels) if self.classes[label] == name]
            for name in missing
        }
        parts = []
        for name in missing:
            example = f", e.g. {bad[name][0][0]}: {bad[name][0][1]}" if bad[name] else ""
            parts.append(f"{name}: {len(bad[name])} file(s), none readable{example}")
        raise LayoutError(
            f"the {self.split} split of {self.root} has no readable images of class "
            f"{' or '.join(missing)} ({'; '.join(parts)}); replace the unreadable files "
            f"(`dflib check-data {self.root}` lists them all with their reasons) or point --data "
            f"at another folder"
        )

    def __len__(self) -> int:
        return len(self.samples)

    @property
    def paths(self) -> list[Path]:
        return [p for p, _ in self.samples]

    def skipped_counts(self) -> dict[str, int]:
        """Files left out when the dataset was built (unreadable), per class name."""
        return {name: sum(label == i for label in self.bad_labels) for i, name in enumerate(self.classes)}

    def class_counts(self) -> dict[str, int]:
        """Number of usable images per class name."""
        counts = np.bincount(np.asarray(self.targets, dtype=np.int64), minlength=len(self.classes))
        return {name: int(counts[i]) for i, name in enumerate(self.classes)}

    def load(self, index: int, min_size: int | tuple[int, int] | None = None) -> torch.Tensor:
        """The raw ``uint8`` image tensor of sample ``index`` (raises :class:`ImageReadError`).

        ``min_size`` allows reduced JPEG decoding down to that size (see :func:`read_image_tensor`).
        """
        return read_image_tensor(self.samples[index][0], max_pixels=self.max_pixels, min_size=min_size)

    def get(
        self, index: int, transform: Callable[[torch.Tensor], torch.Tensor] | None = None, seed: int | None = None
    ) -> tuple[torch.Tensor, int]:
        """Sample ``index`` through ``transform``; an unreadable file is replaced by the next one
        (what training wants: same batch size; scoring uses :meth:`read_or_skip` instead).

        The image is decoded no larger than the transform needs (its ``decode_size``); with
        ``seed`` the transform's randomness is reproducible (see :mod:`dflib.data.sampling`).
        """
        img, label = self.load_or_next(index, getattr(transform, "decode_size", None))
        if transform is not None:
            img = apply_transform(transform, img, seed)
        return img, label

    def load_or_next(self, index: int, min_size: int | tuple[int, int] | None = None) -> tuple[torch.Tensor, int]:
        """``(raw image, label)`` of sample ``index``, or of the next readable one (what :meth:`get` decodes)."""
        n = len(self.samples)
        for offset in range(min(n, 10)):
            i = (index + offset) % n
            try:
                return self.load(i, min_size), self.samples[i][1]
            except ImageReadError as e:
                path = self.samples[i][0]
                if all(p != path for p, _ in self.bad_files):
                    self.bad_files.append((path, e.reason))
                    self.bad_labels.append(self.samples[i][1])
                    warnings.warn(f"{e}; using the next image instead (scoring skips it)", stacklevel=4)
        raise ImageReadError(
            f"{self.split}: 10 consecutive unreadable images from index {index}; "
            f"the folder looks corrupt, check {self.root}"
        )

    def __getitem__(self, index: int | tuple[int, int]) -> tuple[torch.Tensor, int]:
        """``(image, label)``; ``index`` may be an ``(index, seed)`` pair from a seeded sampler."""
        if isinstance(index, tuple):
            return self.get(index[0], self.transform, index[1])
        return self.get(index, self.transform)

    def read_or_skip(self, index: int) -> tuple:
        """``(image, label, index)``, or ``(None, label, index, reason)`` when the file cannot be read.

        What :func:`make_scoring_loader` uses: never another sample in place of an unreadable one.
        """
        label = self.samples[index][1]
        try:
            img = self.load(index, getattr(self.transform, "decode_size", None))
        except ImageReadError as e:
            return None, label, index, e.reason
        if self.transform is not None:
            img = apply_transform(self.transform, img, None)
        return img, label, index

    def __repr__(self) -> str:
        counts = ", ".join(f"{k}={v}" for k, v in self.class_counts().items())
        bad = f", {len(self.bad_files)} bad file(s) skipped" if self.bad_files else ""
        return f"DeepfakeDataset({self.split}: {len(self)} images, {counts}{bad}; root={self.root})"


class ReadBatch(NamedTuple):
    """A scoring batch: the images that were read, their labels and dataset indices, and the skipped ones."""

    x: torch.Tensor
    y: torch.Tensor
    index: torch.Tensor
    skipped: list  # [(dataset index, label, reason)]


class _Scoring(Dataset):
    """``dataset.read_or_skip`` as a map-style dataset (a :class:`torch.utils.data.Subset` keeps its base's order)."""

    def __init__(self, dataset: Dataset) -> None:
        self.dataset = dataset
        base, self.indices = dataset, None
        if isinstance(dataset, torch.utils.data.Subset):
            base, self.indices = dataset.dataset, list(dataset.indices)
        if not isinstance(base, DeepfakeDataset):
            raise TypeError(
                f"make_scoring_loader needs a DeepfakeDataset (or a Subset of one), got {type(base).__name__}"
            )
        self.base = base

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, i: int) -> tuple:
        return self.base.read_or_skip(i if self.indices is None else self.indices[i])


def collate_readable(items: list[tuple]) -> ReadBatch:
    """Batch the images that were read; list the others with their reason (see :class:`ReadBatch`)."""
    good = [it for it in items if it[0] is not None]
    skipped = [(int(it[2]), int(it[1]), str(it[3])) for it in items if it[0] is None]
    if good:
        x = default_collate([it[0] for it in good])
    else:
        x = torch.empty(0)
    y = torch.tensor([int(it[1]) for it in good], dtype=torch.int64)
    return ReadBatch(x, y, torch.tensor([int(it[2]) for it in good], dtype=torch.int64), skipped)


def make_scoring_loader(
    dataset: Dataset, batch_size: int = 64, *, num_workers: int | None = None, device: str | torch.device | None = None
) -> DataLoader:
    """A loader for scoring (evaluation, validation) that yields one :class:`ReadBatch` per batch, in dataset order.

    An image that cannot be decoded is left out of its batch and listed in ``batch.skipped``
    with its reason; no other image takes its place (see
    :func:`dflib.evaluation.scoring.score_loader`, which counts them).
    """
    return make_loader(
        _Scoring(dataset), batch_size, train=False, num_workers=num_workers, device=device, collate_fn=collate_readable
    )


PREFETCH_FACTOR = 4  # batches in flight per loader worker (DataLoader's prefetch_factor)


def default_num_workers() -> int:
    """Loader processes: one per spare core, at most 8 (0 = load in the main process)."""
    n = os.cpu_count() or 1
    return max(0, min(8, n - 1))


def _worker_init(worker_id: int) -> None:
    # Each worker decodes one image at a time; torch's intra-op threads would only oversubscribe
    # the cores the training step needs.
    torch.set_num_threads(1)
    seed = torch.initial_seed() % 2**32
    np.random.seed(seed)
    random.seed(seed)


def make_loader(
    dataset: Dataset,
    batch_size: int = 64,
    *,
    train: bool = False,
    num_workers: int | None = None,
    device: str | torch.device | None = None,
    balanced: bool = False,
    seed: int = 0,
    drop_last: bool | None = None,
    sampler: Sampler | None = None,
    pin_memory: bool | None = None,
    collate_fn: Callable | None = None,
) -> DataLoader:
    """A DataLoader with settings that fit the machine.

    ``train=True`` shuffles (seeded) and drops the last incomplete batch; ``balanced=True``
    samples both classes equally often (a remedy for class imbalance); ``sampler`` replaces
    both with your own order (e.g. :func:`dflib.data.sampling.make_train_loader`'s seeded one);
    ``collate_fn`` replaces torch's default batching.
    Workers default to one per spare core, stay alive between epochs, and pin memory when the
    target device is CUDA (``pin_memory`` overrides that).
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1 (--batch-size B on the command line), got {batch_size!r}")
    workers = default_num_workers() if num_workers is None else int(num_workers)
    if workers < 0:
        raise ValueError(
            f"the number of loader workers must be >= 0 (--workers N, num_workers=N), "
            f"got {num_workers!r}; use 0 to load in the main process"
        )
    if sampler is not None and balanced:
        raise ValueError(
            "pass either balanced=True or a sampler, not both (BalancedSampler in "
            "dflib.data.sampling draws balanced classes as a sampler)"
        )
    generator = torch.Generator().manual_seed(seed)
    if balanced:
        targets = torch.as_tensor(dataset.targets)
        class_weight = 1.0 / torch.bincount(targets).clamp(min=1).double()
        sampler = WeightedRandomSampler(
            class_weight[targets], num_samples=len(targets), replacement=True, generator=generator
        )
    if pin_memory is None:
        pin_memory = torch.device(device).type == "cuda" if device is not None else False
    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=train and sampler is None,
        sampler=sampler,
        num_workers=workers,
        persistent_workers=workers > 0,
        pin_memory=pin_memory,
        drop_last=train if drop_last is None else drop_last,
        generator=generator,
        worker_init_fn=_worker_init if workers > 0 else None,
        collate_fn=collate_fn,
        prefetch_factor=PREFETCH_FACTOR if workers > 0 else None,
    )
