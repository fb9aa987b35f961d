"""JPEG decoding on the training device: the loader ships the encoded bytes, the GPU decodes them in batches.

On a GPU the CPU loader is the bottleneck of a small model: decoding a 256 px JPEG costs more
than the model's step on it. With this path the loader workers only read each file (and draw
the sample's random numbers from its seed, as :mod:`dflib.data.sampling` does); the training
process decodes the whole batch at once on the device (``torchvision.io.decode_jpeg(list,
device=...)``, nvJPEG on CUDA), then crops, resizes, flips and re-compresses each image there,
and finishes with :meth:`~dflib.data.fused_augment.TrainTransform.batch_stage` (blur, colour
jitter, normalisation), batched.

* Only baseline 3-channel JPEGs (the whole Kaggle dataset) that the CPU loader would decode in
  full travel encoded. Anything else (PNG, greyscale, progressive JPEG, an unreadable file, and
  a JPEG large enough for reduced decoding: nvJPEG cannot scale in the DCT domain, and training
  must see the pixels evaluation sees) is decoded and cropped on the CPU by the worker, exactly
  as the one-stage loader would, and joins the batch as a ``uint8`` crop. So with 256 px face
  crops, device decoding pays off for models at 224-256 px; at 128 px the worker's reduced
  decoding (a 256 px JPEG decoded at 128 px) is the fast path.
* The random numbers come from the same per-sample seed as :func:`make_train_loader`'s, and
  the crop box is computed by the same code, so a batch holds the same images with the same
  augmentation. On the CPU (``device="cpu"``, how the tests run this path) the pixels are the
  same as the CPU loader's; on CUDA, nvJPEG, the GPU resize and the GPU JPEG encoder round
  differently (a grey level here and there).

The training engine selects it only on CUDA (``TrainConfig.decode="auto"``);
``decode="device"`` forces it on any device (the tests and ``benchmarks/gpu_check.py --dry-run``).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as nnf
from torch.utils.data import DataLoader, Dataset

from dflib.data.dataset import DeepfakeDataset
from dflib.data.fused_augment import SampleStage, TrainTransform
from dflib.data.io import ImageReadError, jpeg_frame, jpeg_roundtrip, jpeg_scale, read_image_tensor
from dflib.data.sampling import seeded_train_loader

_BASELINE_SOF = (0xC0, 0xC1)  # baseline and extended sequential Huffman JPEG: what nvJPEG decodes on the GPU


def device_jpeg_size(data: bytes, max_pixels: int) -> tuple[int, int] | None:
    """``(width, height)`` of a baseline (or extended sequential) 3-component JPEG of at most
    ``max_pixels`` pixels, the kind nvJPEG decodes on the GPU; None for anything else."""
    frame = jpeg_frame(data)
    if frame is None:
        return None
    marker, w, h, components = frame
    return (w, h) if marker in _BASELINE_SOF and components == 3 and w * h <= max_pixels else None


def device_decodable(data: bytes, max_pixels: int) -> bool:
    """True for a baseline (or extended sequential) 3-component JPEG of at most ``max_pixels`` pixels."""
    return device_jpeg_size(data, max_pixels) is not None


class EncodedDataset(Dataset):
    """Loader-worker side: ``(index, seed)`` -> ``(image, label, draw, path)``.

    ``image`` is the file's bytes as a 1-D ``uint8`` tensor when the device can decode it, else
    the CPU-decoded, cropped ``uint8`` image of :meth:`TrainTransform.sample_stage`; ``draw`` is
    all of the sample's random numbers (``float64``), drawn from its seed as the CPU loader does.
    """

    def __init__(self, base: DeepfakeDataset, transform: TrainTransform) -> None:
        if not isinstance(base, DeepfakeDataset) or base.transform is not None:
            raise TypeError("EncodedDataset needs a DeepfakeDataset without its own transform")
        if not isinstance(transform, TrainTransform):
            raise TypeError(f"device decoding needs a TrainTransform, got {type(transform).__name__}")
        self.base, self.transform = base, transform
        self.stage = SampleStage(transform)
        self.n_draw = transform._C + transform.N_PARAMS

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, item: tuple[int, int]) -> tuple[torch.Tensor, int, torch.Tensor, str]:
        index, seed = item
        path, label = self.base.samples[index]
        draw = torch.rand(self.n_draw, generator=torch.Generator().manual_seed(int(seed)), dtype=torch.float64)
        try:
            with open(path, "rb") as f:
                data = f.read()
        except OSError:
            data = b""
        size = device_jpeg_size(data, self.base.max_pixels)
        # Only JPEGs that the CPU loader would decode in full travel encoded: one it would decode at
        # reduced scale in the DCT domain (reduced decoding, dflib.data.transforms.REDUCED_DECODING)
        # is decoded so here too, so the detector sees the same pixels as in evaluation and predict.
        if size is not None and jpeg_scale(size, self.transform.decode_size) == 1:
            return torch.frombuffer(bytearray(data), dtype=torch.uint8), label, draw, str(path)
        # Not for the device (or unreadable: the dataset substitutes the next image and warns).
        (img8, _), label = self.base.get(index, self.stage, seed)
        return img8, label, draw, str(path)


@dataclass
class EncodedBatch:
    """A batch of :class:`EncodedDataset` samples; :meth:`to_device` turns it into model input."""

    images: list[torch.Tensor]  # 1-D encoded bytes or (3, S, S) uint8 crops
    labels: np.ndarray
    draws: np.ndarray  # (n, n_draw) float64
    paths: list[str]

    def __len__(self) -> int:
        return len(self.images)

    def pin_memory(self) -> EncodedBatch:  # called by DataLoader(pin_memory=True)
        self.images = [t.pin_memory() for t in self.images]
        return self

    def to_device(self, transform: TrainTransform, device: torch.device | str) -> tuple[torch.Tensor, torch.Tensor]:
        """Decode, crop, resize (flip + JPEG: re-compressed images) on ``device``, then the batch stage: ``(x, y)``."""
        device = torch.device(device)
        crops = sample_stage_on_device(self.images, self.draws, transform, device, self.paths)
        x = transform.batch_stage(torch.stack(crops), self.draws[:, transform._C :])
        return x, torch.as_tensor(self.labels).to(device, non_blocking=True)


def collate_encoded(batch: Sequence[tuple[torch.Tensor, int, torch.Tensor, str]]) -> EncodedBatch:
    images, labels, draws, paths = zip(*batch)
    return EncodedBatch(list(images), np.asarray(labels, dtype=np.int64), torch.stack(draws).numpy(), list(paths))


def _decode_all(encoded: list[torch.Tensor], device: torch.device, paths: list[str]) -> list[torch.Tensor]:
    """``decode_jpeg`` of a list on ``device`` (one batched call); a failing batch is retried image by image."""
    if not encoded:  # every image of the batch was decoded by the loader (e.g. all at reduced scale)
        return []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        from torchvision.io import ImageReadMode, decode_jpeg

        try:
            out = decode_jpeg(encoded, mode=ImageReadMode.RGB, device=device)
            return list(out)
        except RuntimeError:
            pass
        images = []
        for data, path in zip(encoded, paths):
            try:
                images.append(decode_jpeg(data, mode=ImageReadMode.RGB, device=device))
            except RuntimeError:  # corrupt data behind a valid header: the CPU reader names the problem
                images.append(read_image_tensor(path).to(device))
    return images


def _resize(img: torch.Tensor, size: int) -> torch.Tensor:
    """Antialiased bilinear resize of a ``uint8`` ``(3, H, W)`` image, as the CPU loader's.

    On the CPU the same call as :mod:`dflib.data.transforms` (channels-last ``uint8``); on a
    GPU, where the antialiased kernel wants floats, in ``float32`` rounded back to ``uint8``.
    """
    if img.shape[-2:] == (size, size):
        return img
    if img.device.type == "cpu":
        x = img.unsqueeze(0).contiguous(memory_format=torch.channels_last)
        return nnf.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False)[0]
    x = nnf.interpolate(
        img.unsqueeze(0).float(), size=(size, size), mode="bilinear", antialias=True, align_corners=False
    )
    return x[0].round_().clamp_(0, 255).to(torch.uint8)


def _jpeg(img: torch.Tensor, quality: int) -> torch.Tensor:
    """JPEG re-compression on the image's device when torchvision can, else on the CPU."""
    if img.device.type == "cpu":
        return jpeg_roundtrip(img, quality)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        from torchvision.io import decode_jpeg, encode_jpeg

        try:
            data = encode_jpeg(img.contiguous(), quality=quality)  # on the GPU; decode_jpeg reads from host memory
            return decode_jpeg(data.cpu(), device=img.device)
        except (RuntimeError, TypeError):
            return jpeg_roundtrip(img.cpu(), quality).to(img.device)


def sample_stage_on_device(
    images: list[torch.Tensor],
    draws: np.ndarray,
    transform: TrainTransform,
    device: torch.device,
    paths: list[str] | None = None,
) -> list[torch.Tensor]:
    """:meth:`TrainTransform.sample_stage` for a batch on ``device``: the ``uint8`` crops, one per image.

    1-D entries of ``images`` are encoded JPEGs (decoded here, in one call); 3-D ones are crops
    the loader already made on the CPU and are only moved.
    """
    a, size, c = transform.augment, transform.img_size, transform._C
    paths = paths or [f"image {i}" for i in range(len(images))]
    todo = [i for i, t in enumerate(images) if t.ndim == 1]
    decoded = dict(zip(todo, _decode_all([images[i] for i in todo], device, [paths[i] for i in todo])))
    out = []
    for i, t in enumerate(images):
        if i not in decoded:
            out.append(t.to(device, non_blocking=True))
            continue
        img, u = decoded[i], draws[i].tolist()
        h, w = img.shape[-2:]
        top, left, ch, cw = transform._crop_box(h, w, u)
        img = _resize(img[..., top : top + ch, left : left + cw], size)
        if u[c + 1] < a.jpeg_p:  # mirrored before its JPEG; batch_stage mirrors the others, as on the CPU
            if u[c] < a.hflip_p:
                img = img.flip(-1)
            q0, q1 = a.jpeg_quality
            img = _jpeg(img, q0 + min(int(u[c + 2] * (q1 - q0 + 1)), q1 - q0))
        out.append(img)
    return out


def make_device_decode_loader(
    dataset: DeepfakeDataset,
    transform: TrainTransform,
    batch_size: int,
    *,
    seed: int = 0,
    workers: int = 0,
    balanced: bool = False,
    rank: int = 0,
    world_size: int = 1,
    pin_memory: bool = False,
) -> DataLoader:
    """:func:`~dflib.data.sampling.make_train_loader`'s order and seeds, with batches of encoded JPEGs.

    Its batches are :class:`EncodedBatch` objects; :func:`~dflib.data.sampling.finish_batch` (or
    ``batch.to_device(transform, device)``) decodes and augments them on the device.
    """
    return seeded_train_loader(
        EncodedDataset(dataset, transform),
        dataset,
        batch_size,
        seed=seed,
        workers=workers,
        balanced=balanced,
        rank=rank,
        world_size=world_size,
        pin_memory=pin_memory,
        collate_fn=collate_encoded,
    )


def check_device_decoding(device: torch.device | str) -> None:
    """Raise a clear error when ``device`` cannot decode JPEGs (torchvision without nvJPEG, say)."""
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (16, 16), (120, 30, 200)).save(buf, "JPEG")
    try:
        _decode_all([torch.frombuffer(bytearray(buf.getvalue()), dtype=torch.uint8)], torch.device(device), ["probe"])
    except (RuntimeError, ImageReadError) as e:
        raise RuntimeError(f"this torchvision cannot decode JPEGs on {device} ({e}); train with --decode cpu") from e
