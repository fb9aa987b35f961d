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

With ``batched=True`` (what the training engine uses on an accelerator, see
:func:`dflib.training.run.augment_on_device`) the workers run only the per-image part of
a :class:`~dflib.data.fused_augment.TrainTransform` (crop, flip, JPEG) and ship ``uint8`` images
plus each sample's remaining random numbers (written into reused shared-memory batch slots,
:class:`SharedBatches`); :func:`finish_batch` moves a batch to the device and runs the rest
there (blur, colour jitter, normalisation), batched. The random numbers are
still drawn per sample from its own seed, so the result does not depend on the batching either.

So epoch 5 sees exactly the same images, augmented the same way, whether the run was resumed,
how many loader workers there are, and in which order the workers finished.
"""

from __future__ import annotations

import os
import uuid
import weakref
from collections.abc import Callable, Iterator, Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Sampler, default_collate, get_worker_info

from dflib.data.dataset import PREFETCH_FACTOR, DeepfakeDataset, make_loader
from dflib.data.fused_augment import SampleStage, TrainTransform
from dflib.data.transforms import apply_transform
from dflib.runtime import derive_seed


class BalancedSampler(DistributedSampler):
    """Draw ``len(dataset)`` indices per epoch with replacement, each class equally likely.

    A remedy for class imbalance (the alternative is ``pos_weight`` in the loss). Like
    ``DistributedSampler`` it is seeded by ``seed + epoch`` and shares the draw between ranks.
    """

    def __init__(
        self, dataset: Dataset, targets: Sequence[int], *, num_replicas: int = 1, rank: int = 0, seed: int = 0
    ) -> None:
        super().__init__(dataset, num_replicas=num_replicas, rank=rank, shuffle=True, seed=seed)
        t = torch.as_tensor(list(targets))
        self.weights = (1.0 / torch.bincount(t).clamp(min=1).double())[t]

    def __iter__(self) -> Iterator[int]:
        g = torch.Generator().manual_seed(self.seed + self.epoch)
        draw = torch.multinomial(self.weights, self.total_size, replacement=True, generator=g).tolist()
        return iter(draw[self.rank : self.total_size : self.num_replicas])


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

    ``batched=True`` (a :class:`~dflib.data.fused_augment.TrainTransform` only) runs just its
    per-image stage and yields ``(uint8 image, label, params)``; see :func:`finish_batch`.
    """

    def __init__(self, base: Dataset, transform: Callable[[torch.Tensor], torch.Tensor], batched: bool = False) -> None:
        if batched and not isinstance(transform, TrainTransform):
            raise TypeError(
                f"batched=True needs a TrainTransform (it has a per-batch stage), got "
                f"{type(transform).__name__}; pass batched=False"
            )
        self.base = base
        self.transform = transform
        self.batched = batched
        self._apply = SampleStage(transform) if batched else transform

    def __len__(self) -> int:
        return len(self.base)  # type: ignore[arg-type]

    def __getitem__(self, item: tuple[int, int]) -> tuple:
        index, seed = item
        if isinstance(self.base, DeepfakeDataset) and self.base.transform is None:
            out, label = self.base.get(index, self._apply, seed)
        else:
            img, label = self.base[index]
            out = apply_transform(self._apply, img, seed)
        if self.batched:
            img8, params = out
            return img8, label, params
        return out, label

    def __getitems__(self, items: Sequence[tuple[int, int]]) -> list[tuple]:
        """A loader batch of :meth:`__getitem__`'s samples (the DataLoader asks for it by batch).

        Two-stage over a :class:`~dflib.data.DeepfakeDataset`: the same samples, decoded all first
        and then augmented step by step over the batch (:meth:`TrainTransform.sample_stages
        <dflib.data.fused_augment.TrainTransform.sample_stages>`), which keeps each step's code in
        the CPU's caches. Otherwise one sample after the other.
        """
        if not (self.batched and isinstance(self.base, DeepfakeDataset) and self.base.transform is None):
            return [self[item] for item in items]
        loaded = [self.base.load_or_next(index, self.transform.decode_size) for index, _ in items]
        generators = [torch.Generator().manual_seed(int(seed)) for _, seed in items]  # as apply_transform seeds
        staged = self.transform.sample_stages([img for img, _ in loaded], generators)
        return [(img8, label, params) for (img8, params), (_, label) in zip(staged, loaded)]


def collate_staged(
    batch: Sequence[tuple[torch.Tensor, int, torch.Tensor]],
) -> tuple[torch.Tensor, np.ndarray, np.ndarray]:
    """Batch ``(uint8 image, label, params)`` samples into ``(images, labels, params)``.

    * The per-image stage leaves each image channels-last (``(3, H, W)`` with ``(H, W, 3)``
      memory, as decoded and resized), so the images are stacked that way: a plain copy instead
      of a transpose per image (the device transposes while converting to ``float32``). In the
      workers of :func:`make_train_loader` the batch goes into a reused shared-memory slot
      instead (:class:`SharedBatches`).
    * Labels (``int64``) and params (``float64``) stay NumPy arrays: they are pickled with the
      batch, where every tensor would cost its own shared-memory file and a round trip to the
      worker process (measured: two small tensors cost more than the images' 3 MB).
      :func:`finish_batch` turns them into tensors.
    """
    images, labels, params = zip(*batch)
    x = default_collate([img.permute(1, 2, 0) for img in images]).permute(0, 3, 1, 2)
    return x, np.asarray(labels, dtype=np.int64), torch.stack(params).numpy()


class SharedBatches:
    """Reusable shared-memory batch buffers for the workers of a ``batched=True`` training loader.

    torch's collate in a worker writes each batch into a *new* shared-memory file: for a 64 x
    128 px ``uint8`` batch (3 MB) that is ~770 fresh pages, and faulting them in costs the worker
    ~20 us per image, 4x the copy itself (``benchmarks/data_throughput.py``: ~0.1 of the
    decode-only time). Here each worker owns ``per_worker`` preallocated batch slots (inherited
    through ``fork``, or shared once when workers are spawned), writes its batch into a free
    one and sends only the slot number with the labels and params; the main process copies the
    slot into an ordinary tensor while unpickling the message (:class:`_SlotBatch`) and frees
    the slot. The loader's batches are so the same fresh tensors as with torch's collate.

    A slot is in use only from its worker's collate to the main process receiving it; the
    DataLoader keeps at most ``prefetch_factor`` batches per worker in flight, so
    ``prefetch_factor + 2`` slots never run out. If they do (or a batch has another shape),
    the worker falls back to torch's collate for that batch. The free flags are single-writer
    per transition (the worker clears a set flag, the main process sets it after its copy), and
    a slot belongs to one worker id: one set of workers at a time, as with the persistent
    workers of :func:`~dflib.data.dataset.make_loader`. Footprint: ``workers x per_worker``
    batches of shared memory for the loader's lifetime, of which only the slots in use are ever
    touched (about what torch's collate has in flight at its peak).
    """

    _live: weakref.WeakValueDictionary = weakref.WeakValueDictionary()  # key -> buffers, in the owning process

    def __init__(self, workers: int, per_worker: int, batch_size: int, img_size: int, pin: bool = False) -> None:
        if min(workers, per_worker, batch_size, img_size) < 1:
            raise ValueError(f"SharedBatches needs positive sizes, got {workers, per_worker, batch_size, img_size}")
        self.key = uuid.uuid4().hex
        self.per_worker = per_worker
        self.pin = pin  # copy slots out into pinned memory (a loader that pins: the one copy it makes anyway)
        self.shape = (batch_size, img_size, img_size, 3)
        # a new shared storage, not share_memory_() (which would copy, touching every page): untouched
        # pages cost nothing, only the slots a worker really uses are ever faulted in
        n = workers * per_worker
        storage = torch.UntypedStorage._new_shared(n * int(np.prod(self.shape)))
        self.images = torch.empty(0, dtype=torch.uint8).set_(storage).view(n, *self.shape)
        self.free = torch.ones(workers * per_worker, dtype=torch.uint8).share_memory_()
        self._pid = os.getpid()
        SharedBatches._live[self.key] = self

    def claim(self, worker: int) -> int | None:
        """A free slot of ``worker`` (marked in use), or None."""
        flags = self.free.numpy()[worker * self.per_worker : (worker + 1) * self.per_worker]
        if self._pid != os.getpid():  # first batch of a new worker process: what an abandoned
            flags[:] = 1  # loader iterator of this worker id left in flight was never received
            self._pid = os.getpid()
        i = int(flags.argmax())
        if not flags[i]:
            return None
        flags[i] = 0
        return worker * self.per_worker + i

    def collate(self, batch: Sequence[tuple[torch.Tensor, int, torch.Tensor]]):
        """:func:`collate_staged` into a slot (in a worker), or plainly (main process, no slot free, other shape)."""
        info = get_worker_info()
        images, labels, params = zip(*batch)
        hwc = [img.permute(1, 2, 0) for img in images]
        if info is None or len(hwc) > self.shape[0] or any(x.shape != self.shape[1:] for x in hwc):
            return collate_staged(batch)
        slot = self.claim(info.id)
        if slot is None:
            return collate_staged(batch)
        torch.stack(hwc, 0, out=self.images[slot, : len(hwc)])
        return _SlotBatch(self.key, slot, len(hwc), np.asarray(labels, dtype=np.int64), torch.stack(params).numpy())


class _SlotBatch:
    """A batch in a :class:`SharedBatches` slot, as a worker sends it; unpickled, it is the
    ``(images, labels, params)`` tuple of :func:`collate_staged` and the slot is free again."""

    def __init__(self, key: str, slot: int, n: int, labels: np.ndarray, params: np.ndarray) -> None:
        self.args = (key, slot, n, labels, params)

    def __reduce__(self):
        return _take_slot, self.args


def _take_slot(key: str, slot: int, n: int, labels: np.ndarray, params: np.ndarray):
    shared = SharedBatches._live.get(key)
    if shared is None:
        raise RuntimeError(
            "a loader batch in shared memory reached a process that does not own its buffers "
            "(SharedBatches batches go from a DataLoader worker to its main process only)"
        )
    src = shared.images[slot, :n]
    if shared.pin and torch.cuda.is_available():
        # the DataLoader's pin_memory() then keeps this tensor as it is: one copy, as without slots
        x = torch.empty(src.shape, dtype=src.dtype, pin_memory=True).copy_(src)
    else:
        x = src.clone()
    shared.free[slot] = 1
    return x.permute(0, 3, 1, 2), labels, params


def finish_batch(
    batch: Sequence, transform: Callable | None, device: torch.device | str, non_blocking: bool = True
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(x, y)`` on ``device`` from a training-loader batch, ready for the model.

    A batch of a ``batched=True`` loader is ``(uint8 images, labels, params)``: the images go to
    the device as ``uint8`` (a quarter of the bytes) and ``transform.batch_stage`` augments and
    normalises them there. A plain ``(x, y)`` batch is only moved. A batch of encoded JPEGs
    (:class:`dflib.data.device_decode.EncodedBatch`) is decoded and augmented on the device.
    """
    if hasattr(batch, "to_device"):
        return batch.to_device(transform, device)
    if len(batch) == 3:
        if not isinstance(transform, TrainTransform):
            raise TypeError("a (images, labels, params) batch needs the TrainTransform of its loader")
        x8, y, params = batch
        x = transform.batch_stage(x8.to(device, non_blocking=non_blocking), torch.as_tensor(params))
    else:
        x, y = batch
        x = x.to(device, non_blocking=non_blocking)
    return x, torch.as_tensor(y).to(device, non_blocking=non_blocking)


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
    batched: bool = False,
) -> DataLoader:
    """The training loader: ``dataset`` yields raw images, ``transform`` augments them reproducibly.

    ``dataset`` needs ``targets`` when ``balanced``. The DataLoader settings are
    :func:`dflib.data.make_loader`'s (last incomplete batch dropped, as a batch of one breaks
    BatchNorm; persistent workers); only the order and the per-sample seeds are added here.

    ``batched=True`` (needs a :class:`~dflib.data.fused_augment.TrainTransform`): the workers do
    the per-image part only and batches are ``(uint8 images, labels, params)``; turn them into
    model input with :func:`finish_batch` (as the training engine does). Same images, same
    augmentation as ``batched=False`` up to float rounding; the loader does less work per image.
    """
    collate: Callable | None = None
    if batched:
        collate = collate_staged
        if workers > 0:  # PREFETCH_FACTOR in flight per worker, one being written, one spare
            collate = SharedBatches(workers, PREFETCH_FACTOR + 2, batch_size, transform.img_size, pin_memory).collate
    return seeded_train_loader(
        AugmentedDataset(dataset, transform, batched),
        dataset,
        batch_size,
        seed=seed,
        workers=workers,
        balanced=balanced,
        rank=rank,
        world_size=world_size,
        pin_memory=pin_memory,
        collate_fn=collate,
    )


def seeded_train_loader(
    wrapped: Dataset,
    dataset: DeepfakeDataset,
    batch_size: int,
    *,
    seed: int,
    workers: int,
    balanced: bool,
    rank: int,
    world_size: int,
    pin_memory: bool,
    collate_fn: Callable | None,
) -> DataLoader:
    """The training order and per-sample seeds over ``dataset`` (balanced or shuffled, sharded
    across ranks), batching ``wrapped`` (``dataset`` with its per-sample work): what every
    training loader shares, the CPU-augmenting one here and the GPU-decoding one in
    :mod:`dflib.data.device_decode`."""
    if balanced:
        order: DistributedSampler = BalancedSampler(
            dataset,
            dataset.targets,
            num_replicas=world_size,  # type: ignore[attr-defined]
            rank=rank,
            seed=seed,
        )
    else:
        order = DistributedSampler(dataset, num_replicas=world_size, rank=rank, shuffle=True, seed=seed)
    return make_loader(
        wrapped,
        batch_size,
        train=True,
        num_workers=workers,
        sampler=SeededSampler(order, seed),
        seed=seed,
        pin_memory=pin_memory,
        collate_fn=collate_fn,
    )
