"""Image transforms (torchvision transforms v2) for detectors.

Eval: resize to the model input and normalise. Train: the same plus a horizontal flip, a small
random resized crop, and the degradations that deepfake detectors must survive in the wild:
JPEG re-compression, blur and colour jitter. Every transform works on ``uint8`` tensors
``(3, H, W)`` and crops/resizes first, so the costly steps run on the small image.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torchvision.transforms import v2

# ImageNet statistics: the usual choice, and what the reference implementations expect.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass
class AugmentConfig:
    """Knobs of the training augmentation; set a probability to 0 to switch a step off.

    The defaults keep the loader cheap on a CPU (see ``benchmarks/data_throughput.py``): hue
    jitter is off because torchvision's RGB->HSV round trip costs about four times the rest of
    the colour jitter, and a hue shift is not what real-world degradations do to a photo.
    """

    hflip_p: float = 0.5
    crop_scale: tuple[float, float] = (0.80, 1.0)
    crop_ratio: tuple[float, float] = (0.9, 1.1)
    jpeg_p: float = 0.25
    jpeg_quality: tuple[int, int] = (60, 95)
    blur_p: float = 0.15
    blur_sigma: tuple[float, float] = (0.1, 1.2)
    color_p: float = 0.3
    brightness: float = 0.15
    contrast: float = 0.15
    saturation: float = 0.15
    hue: float = 0.0

    def to_dict(self) -> dict:
        return asdict(self)


def _check_size(img_size: int) -> int:
    if not isinstance(img_size, int) or isinstance(img_size, bool) or img_size < 16:
        raise ValueError(f"img_size must be an integer >= 16 pixels, got {img_size!r}")
    return img_size


def _finish(mean, std) -> list[v2.Transform]:
    return [v2.ToDtype(torch.float32, scale=True), v2.Normalize(mean=list(mean), std=list(std))]


def eval_transform(
    img_size: int = 128,
    mean: tuple[float, ...] = IMAGENET_MEAN,
    std: tuple[float, ...] = IMAGENET_STD,
) -> v2.Compose:
    """Resize (antialiased, whole image, aspect ratio ignored as face crops are square) + normalise."""
    _check_size(img_size)
    return v2.Compose([v2.Resize((img_size, img_size), antialias=True), *_finish(mean, std)])


def train_transform(
    img_size: int = 128,
    augment: AugmentConfig | None = None,
    mean: tuple[float, ...] = IMAGENET_MEAN,
    std: tuple[float, ...] = IMAGENET_STD,
) -> v2.Compose:
    """Flip, small resized crop, JPEG re-compression, blur and colour jitter, then normalise."""
    _check_size(img_size)
    a = augment or AugmentConfig()
    steps: list[v2.Transform] = [
        v2.RandomResizedCrop(img_size, scale=a.crop_scale, ratio=a.crop_ratio, antialias=True),
        v2.RandomHorizontalFlip(a.hflip_p),
    ]
    if a.jpeg_p > 0:
        steps.append(v2.RandomApply([v2.JPEG(quality=list(a.jpeg_quality))], p=a.jpeg_p))
    if a.blur_p > 0:
        steps.append(v2.RandomApply([v2.GaussianBlur(kernel_size=5, sigma=a.blur_sigma)], p=a.blur_p))
    if a.color_p > 0:
        jitter = v2.ColorJitter(a.brightness, a.contrast, a.saturation, a.hue)
        steps.append(v2.RandomApply([jitter], p=a.color_p))
    return v2.Compose([*steps, *_finish(mean, std)])


def denormalize(
    x: torch.Tensor,
    mean: tuple[float, ...] = IMAGENET_MEAN,
    std: tuple[float, ...] = IMAGENET_STD,
) -> torch.Tensor:
    """Undo :func:`eval_transform`'s normalisation: float tensor in [0, 1] for display."""
    m = torch.tensor(mean, dtype=x.dtype, device=x.device).view(-1, 1, 1)
    s = torch.tensor(std, dtype=x.dtype, device=x.device).view(-1, 1, 1)
    return (x * s + m).clamp(0, 1)
