"""The training augmentation, plainly: one ``torchvision.transforms.v2`` call per step.

Read this first: it is what the augmentation *does*. Training runs the fast version,
:class:`dflib.data.fused_augment.TrainTransform`, which gives the same result (up to float
rounding) from the same random parameters, and ``tests/test_augment_reference.py`` checks that
the two agree.

The steps, in order, and why a deepfake detector wants them:

1. **Random resized crop** (``v2.RandomResizedCrop``-style box, antialiased bilinear resize to
   ``img_size``): the face is not always framed the same way.
2. **Horizontal flip**: a mirrored face is as real (or as fake) as the original.
3. **JPEG re-compression** (on ``uint8``, as a camera or a website would do it): images in the
   wild are re-compressed, and compression wipes out exactly the fine traces that a detector
   trained on pristine files learns to rely on.
4. Conversion to ``float32`` in [0, 1].
5. **Gaussian blur** (5 x 5): resampling and out-of-focus images soften those traces too.
6. **Colour jitter**: brightness, contrast and saturation in a random order, then hue (off by
   default): white balance and screen or print colour must not decide real vs fake.
7. **Normalisation** with the model's mean and std (ImageNet statistics by default).

The random parameters of one sample (crop box, flip, JPEG quality, blur sigma, colour factors
and order) are an :class:`~dflib.data.transforms.AugmentParams`; its docstring says how each is
distributed, and :meth:`TrainTransform.draw_params <dflib.data.fused_augment.TrainTransform.draw_params>`
draws them as the fast version does.

One difference from the fast version is by design, not rounding: ``v2``'s colour steps clip to
[0, 1] after each step, the fast version (one colour matrix for all three steps) clips once at
the end. They differ only where a step pushes a pixel out of range and a later step brings it
back.
"""

from __future__ import annotations

import torch
from torchvision.transforms.v2 import functional as F

from dflib.data.transforms import IMAGENET_MEAN, IMAGENET_STD, AugmentParams


def reference_augment(
    img: torch.Tensor,
    params: AugmentParams,
    img_size: int,
    mean: tuple[float, ...] = IMAGENET_MEAN,
    std: tuple[float, ...] = IMAGENET_STD,
) -> torch.Tensor:
    """Augment a ``uint8`` image ``(3, H, W)`` with ``params``; a normalised ``float32`` ``(3, img_size, img_size)``.

    The same steps in the same order as :class:`~dflib.data.fused_augment.TrainTransform`,
    written as plain ``torchvision.transforms.v2.functional`` calls.
    """
    if img.dtype != torch.uint8 or img.ndim != 3 or img.shape[0] != 3:
        raise TypeError(f"reference_augment wants a uint8 RGB image (3, H, W), got {img.dtype} {tuple(img.shape)}")

    # 1. Crop the drawn box and resize it to the model input (antialiased: no aliasing when shrinking).
    top, left, height, width = params.crop
    x = F.resized_crop(img, top, left, height, width, size=[img_size, img_size], antialias=True)

    # 2. Mirror left-right.
    if params.hflip:
        x = F.horizontal_flip(x)

    # 3. Re-compress as JPEG (encode and decode with libjpeg-turbo, on uint8 as a real encoder would).
    if params.jpeg_quality is not None:
        x = F.jpeg(x, quality=params.jpeg_quality)

    # 4. From uint8 levels 0..255 to float32 in [0, 1].
    x = F.to_dtype(x, torch.float32, scale=True)

    # 5. Gaussian blur, 5 x 5 (reflect padding at the borders).
    if params.blur_sigma is not None:
        x = F.gaussian_blur(x, kernel_size=[5, 5], sigma=[params.blur_sigma, params.blur_sigma])

    # 6. Colour jitter: the three steps in the drawn order (each clips to [0, 1]), then the hue shift.
    if params.color_order is not None:
        steps = {
            "brightness": lambda t: F.adjust_brightness(t, params.brightness),  # scale every channel
            "contrast": lambda t: F.adjust_contrast(t, params.contrast),  # blend with the mean grey level
            "saturation": lambda t: F.adjust_saturation(t, params.saturation),  # blend with each pixel's grey
        }
        for name in params.color_order:
            x = steps[name](x)
        if params.hue is not None:
            x = F.adjust_hue(x, params.hue)  # rotate the hue (through HSV)

    # 7. Normalise: (x - mean) / std per channel.
    return F.normalize(x, mean=list(mean), std=list(std))
