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

    Indexed by the ``(index, seed)`` pairs of :class:`SeededSampler`. The seed is set in a forked
    RNG scope, so the global generator (dropout, ...) is left untouched in the main process.
    """

    def __init__(self, base: Dataset, transform: Callable[[torch.Tensor], torch.Tensor]) -> None:
        self.base = base
        self.transform = transform

    def __len__(self) -> int:
        return len(self.base)  # type: ignore[arg-type]

    def __getitem__(self, item: tuple[int, int]) -> tuple[torch.Tensor, int]:
        index, seed = item
        img, label = self.base[index]
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            img = self.transform(img)
        return img, label


def _worker_init(worker_id: int) -> None:
    torch.set_num_threads(1)  # a loader process decodes one image at a time; leave the cores to training


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

    ``dataset`` needs ``targets`` when ``balanced``. The last incomplete batch is dropped (a
    batch of one breaks BatchNorm), and loader processes stay alive between epochs.
    """
    if balanced:
        order: DistributedSampler = BalancedSampler(dataset, dataset.targets, num_replicas=world_size,  # type: ignore[attr-defined]
                                                    rank=rank, seed=seed)
    else:
        order = DistributedSampler(dataset, num_replicas=world_size, rank=rank, shuffle=True, seed=seed)
    return DataLoader(
        AugmentedDataset(dataset, transform), batch_size=batch_size, sampler=SeededSampler(order, seed),
        drop_last=True, num_workers=workers, persistent_workers=workers > 0, pin_memory=pin_memory,
        worker_init_fn=_worker_init if workers > 0 else None, prefetch_factor=4 if workers > 0 else None,
        generator=torch.Generator().manual_seed(seed))
