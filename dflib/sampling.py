"""Reproducible training batches: which images an epoch sees, in what order, with what augmentation.

Plain ``DataLoader(shuffle=True)`` draws its order and its workers' random state from one
generator whose state depends on everything that happened before; with persistent workers the
augmentation randomness of epoch 5 even depends on epochs 1-4. That makes an exact resume
impossible. Here every random choice of an epoch is a function of ``(seed, epoch)``:

* the order comes from ``DistributedSampler`` (seeded with ``seed + epoch``; with several
  processes it also gives each rank its own equal share) or, for class balancing,
  :class:`BalancedSampler` (same interface, draws both classes equally often);
* :class:`SeededSampler` pairs each index with a per-sample seed drawn from ``(seed, epoch, rank)``;
* :class:`AugmentedDataset` applies the random augmentation under that seed;
* :func:`make_train_loader` puts the three together (``loader.sampler.set_epoch(e)`` each epoch).

So epoch 5 sees exactly the same images, augmented the same way, whether the run was resumed,
how many loader workers there are, and in which order the workers finished.
"""

from __future__ import annotations

from typing import Callable, Iterator, Sequence

import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Sampler

from dflib.data.dataset import DeepfakeDataset, make_loader
from dflib.data.transforms import apply_transform
from dflib.runtime import derive_seed


class BalancedSampler(DistributedSampler):
    """Draw ``len(dataset)`` indices per epoch with replacement, each class equally likely.

    A remedy for class imbalance (the alternative is ``pos_weight`` in the loss). Like
    ``DistributedSampler`` it is seeded by ``seed + epoch`` and shares the draw between ranks.
    """

    def __init__(self, dataset: Dataset, targets: Sequence[int], *, num_replicas: int = 1,
                 rank: int = 0, seed: int = 0) -> None:
        super().__init__(dataset, num_replicas=num_replicas, rank=rank, shuffle=True, seed=seed)
        t = torch.as_tensor(list(targets))
        self.weights = (1.0 / torch.bincount(t).clamp(min=1).double())[t]

    def __iter__(self) -> Iterator[int]:
        g = torch.Generator().manual_seed(self.seed + self.epoch)
        draw = torch.multinomial(self.weights, self.total_size, replacement=True, generator=g).tolist()
        return iter(draw[self.rank:self.total_size:self.num_replicas])


class SeededSampler(Sampler):
    """Yield ``(index, sample_seed)`` pairs: the index sampler's order plus one seed per sample."""

    def __init__(self, sampler: DistributedSampler, seed: int) -> None:
        self.sampler = sampler
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch
        self.sampler.set_epoch(epoch)

    def __len__(self) -> int:
        return len(self.sampler)

    def __iter__(self) -> Iterator[tuple[int, int]]:
        indices = list(self.sampler)
        g = torch.Generator().manual_seed(derive_seed(self.seed, self.epoch, self.sampler.rank))
        seeds = torch.randint(0, 2**62, (len(indices),), generator=g).tolist()
        return iter(zip(indices, seeds))


class AugmentedDataset(Dataset):
    """``base[index]`` passed through a random ``transform`` seeded by the sample's own seed.

    Indexed by the ``(index, seed)`` pairs of :class:`SeededSampler`. dflib's transforms draw
    from a generator seeded so; any other callable runs in a forked RNG scope, so the global
    generator (dropout, ...) is left untouched in the main process either way. A
    :class:`~dflib.data.DeepfakeDataset` base decodes each image no larger than the transform
    needs (its ``decode_size``).
    """

    def __init__(self, base: Dataset, transform: Callable[[torch.Tensor], torch.Tensor]) -> None:
        self.base = base
        self.transform = transform

    def __len__(self) -> int:
        return len(self.base)  # type: ignore[arg-type]

    def __getitem__(self, item: tuple[int, int]) -> tuple[torch.Tensor, int]:
        index, seed = item
        if isinstance(self.base, DeepfakeDataset) and self.base.transform is None:
            return self.base.get(index, self.transform, seed)
        img, label = self.base[index]
        return apply_transform(self.transform, img, seed), label


def make_train_loader(
    dataset: Dataset,
    transform: Callable[[torch.Tensor], torch.Tensor],
    batch_size: int,
    *,
    seed: int = 0,
    workers: int = 0,
    balanced: bool = False,
    rank: int = 0,
    world_size: int = 1,
    pin_memory: bool = False,
) -> DataLoader:
    """The training loader: ``dataset`` yields raw images, ``transform`` augments them reproducibly.

    ``dataset`` needs ``targets`` when ``balanced``. The DataLoader settings are
    :func:`dflib.data.make_loader`'s (last incomplete batch dropped, as a batch of one breaks
    BatchNorm; persistent workers); only the order and the per-sample seeds are added here.
    """
    if balanced:
        order: DistributedSampler = BalancedSampler(dataset, dataset.targets, num_replicas=world_size,  # type: ignore[attr-defined]
                                                    rank=rank, seed=seed)
    else:
        order = DistributedSampler(dataset, num_replicas=world_size, rank=rank, shuffle=True, seed=seed)
    return make_loader(AugmentedDataset(dataset, transform), batch_size, train=True, num_workers=workers,
                       sampler=SeededSampler(order, seed), seed=seed, pin_memory=pin_memory)
