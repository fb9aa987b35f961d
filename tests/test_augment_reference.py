"""The fast fused training augmentation equals its plain torchvision v2 reference, parameter for parameter.

``TrainTransform.draw_params`` decodes the random numbers a generator state gives into explicit
parameters (crop box, flip, JPEG quality, blur sigma, colour order and factors);
``reference_augment`` applies exactly those with one ``v2.functional`` call per step. The two
paths must agree on every sample, and the parameters must follow ``AugmentConfig``'s ranges.
"""

from __future__ import annotations

import math
from itertools import permutations

import pytest
import torch
from torchvision.transforms.v2 import functional as F

from dflib.data import COLOR_STEPS, AugmentConfig, AugmentParams, TrainTransform, reference_augment

# Tolerance between the two paths, in normalised units (ImageNet std: one uint8 level is ~0.017).
# Measured on the samples below (~1,360 compared, ~880 of them colour-jittered, hue included):
# at most 4.2e-6, i.e. ~15 float32 ulps of values up to 2.6. The uint8 steps (crop + antialiased
# resize, flip, JPEG) are bit-identical: the same torch resize kernel and the same libjpeg-turbo
# through torchvision (``test_uint8_steps_are_bit_identical``), so neither the JPEG codec nor the
# resize contributes. What remains is float32 rounding of equivalent arithmetic done in a different
# order: the fused path blurs on 0..255 with taps computed in float64 (v2: on [0, 1] with a float32
# softmax kernel, the same Gaussian weights), applies the colour steps as one 3x3 matrix per image
# (v2: three blends) and normalises with one multiply-add (v2: subtract, divide). 1e-5 leaves a
# factor of ~2 for other CPUs' vector paths and is still 1/1700 of a uint8 level.
ATOL = 1e-5

ALL_ON = AugmentConfig(jpeg_p=1.0, blur_p=1.0, color_p=1.0)
CONFIGS = {
    "default": AugmentConfig(),
    "all_on": ALL_ON,
    "wide_hue": AugmentConfig(
        hflip_p=0.5,
        crop_scale=(0.3, 1.0),
        crop_ratio=(0.6, 1.6),
        jpeg_p=0.5,
        jpeg_quality=(20, 100),
        blur_p=0.5,
        blur_sigma=(0.1, 2.0),
        color_p=0.7,
        brightness=0.3,
        contrast=0.3,
        saturation=0.3,
        hue=0.1,
    ),
}


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny tensors: torch's intra-op threads only cost here (20x on a busy 2-core machine)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _smooth(g: torch.Generator, h: int, w: int, lo: int, hi: int) -> torch.Tensor:
    """A smooth random ``uint8`` image with levels in ``[lo, hi]`` (little JPEG ringing)."""
    f = torch.nn.functional.interpolate(torch.rand(1, 3, 5, 5, generator=g), size=(h, w), mode="bilinear")[0]
    return (lo + (hi - lo) * f).round().to(torch.uint8)


def _images() -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """Full-range images (noise, smooth, a thin strip that forces the central-crop fallback) and
    mid-range ones, whose levels no colour jitter of ``CONFIGS`` can push out of 0..255."""
    g = torch.Generator().manual_seed(2024)
    full = [
        torch.randint(0, 256, (3, h, w), dtype=torch.uint8, generator=g)
        for h, w in [(40, 40), (64, 48), (37, 90), (20, 200), (120, 96)]
    ]
    full += [_smooth(g, 72, 60, 0, 255)]
    mid = [_smooth(g, h, w, 104, 152) for h, w in [(40, 40), (64, 48), (37, 90), (120, 96)]]
    mid += [torch.randint(112, 145, (3, 48, 48), dtype=torch.uint8, generator=g)]
    return full, mid


def _colour_stays_in_range(lo: float, hi: float, p: AugmentParams) -> bool:
    """Whether ``p``'s colour steps keep every level of an image in ``[lo, hi]`` inside 0..255.

    Interval arithmetic: brightness scales the interval; contrast and saturation blend each
    level with a grey level inside the interval, so a factor f > 1 widens it by (f - 1) * width
    on both sides. Where nothing leaves the range, clipping after each step (v2) and once at the
    end (fused) agree.
    """
    factors = {"brightness": p.brightness, "contrast": p.contrast, "saturation": p.saturation}
    for name in p.color_order:
        f = factors[name]
        if name == "brightness":
            lo, hi = f * lo, f * hi
        elif f > 1:
            lo, hi = lo - (f - 1) * (hi - lo), hi + (f - 1) * (hi - lo)
    return 0 <= lo and hi <= 255


@pytest.mark.parametrize("name", list(CONFIGS))
def test_fused_equals_reference_for_the_same_parameters(name):
    full, mid = _images()
    compared = jittered = 0
    for size in (24, 32):
        t = TrainTransform(size, CONFIGS[name])
        for kind, imgs in (("full", full), ("mid", mid)):
            for i, img in enumerate(imgs):
                for seed in range(25):
                    p = t.draw_params(*img.shape[-2:], torch.Generator().manual_seed(seed))
                    img8, numbers = t.sample_stage(img, torch.Generator().manual_seed(seed))  # as t(img) does
                    if p.color_order is not None:
                        in_range = _colour_stays_in_range(img8.min().item(), img8.max().item(), p)
                        assert in_range or kind == "full", (name, i, seed, p)  # the mid images are built so
                        if not in_range:
                            continue  # clipping may differ by design (test_colour_jitter_clips_once_at_the_end)
                        jittered += 1
                    fused = t.batch_stage(img8[None], numbers[None])[0]
                    ref = reference_augment(img, p, size)
                    assert ref.shape == fused.shape == (3, size, size) and ref.dtype == torch.float32
                    diff = (fused - ref).abs().max().item()
                    assert diff <= ATOL, f"{name} {kind} image {i} seed {seed}: max |fused - ref| = {diff:.3g}; {p}"
                    compared += 1
    assert compared >= 400 and jittered >= 20  # the colour path is really compared, not just skipped


def test_batched_fused_equals_reference():
    """The loader's two-stage batches (several images, some blurred or jittered) match the reference too."""
    _, mid = _images()
    t = TrainTransform(24, CONFIGS["wide_hue"])
    imgs = [mid[k % len(mid)] for k in range(16)]
    staged = [t.sample_stage(img, torch.Generator().manual_seed(50 + k)) for k, img in enumerate(imgs)]
    batch = t.batch_stage(torch.stack([s[0] for s in staged]), torch.stack([s[1] for s in staged]))
    ref = torch.stack(
        [
            reference_augment(img, t.draw_params(*img.shape[-2:], torch.Generator().manual_seed(50 + k)), 24)
            for k, img in enumerate(imgs)
        ]
    )
    assert (batch - ref).abs().max().item() <= ATOL


def test_uint8_steps_are_bit_identical():
    """Crop + resize, flip and JPEG: the fused sample stage is exactly the v2 calls (tolerance 0).

    The sample stage mirrors only the images it re-compresses; the others' flip is left to the
    batch stage (``flip_left``), applied here as it applies it, on the same numbers.
    """
    full, mid = _images()
    t = TrainTransform(32, AugmentConfig(jpeg_p=0.5, crop_scale=(0.3, 1.0), crop_ratio=(0.6, 1.6)))
    kinds = set()
    for i, img in enumerate(full + mid):
        for seed in range(20):
            p = t.draw_params(*img.shape[-2:], torch.Generator().manual_seed(seed))
            x = F.resized_crop(img, *p.crop, size=[32, 32], antialias=True)
            x = F.horizontal_flip(x) if p.hflip else x
            x = F.jpeg(x, quality=p.jpeg_quality) if p.jpeg_quality is not None else x
            img8, numbers = t.sample_stage(img, torch.Generator().manual_seed(seed))
            left = bool(t.flip_left(numbers[None])[0])
            assert left == (p.hflip and p.jpeg_quality is None), (i, seed, p)
            assert torch.equal(img8.flip(-1) if left else img8, x), (i, seed, p)
            kinds.add((p.hflip, p.jpeg_quality is not None))
    assert len(kinds) == 4  # flipped or not, re-compressed or not: every case compared


def test_flip_left_to_the_batch_stage_is_exact():
    """Mirroring in the batch stage gives bit for bit what mirroring the uint8 image before it gives."""
    full, mid = _images()
    t = TrainTransform(32, CONFIGS["wide_hue"])
    staged = [t.sample_stage(img, torch.Generator().manual_seed(7 + k)) for k, img in enumerate(full + mid)]
    x8, params = torch.stack([s[0] for s in staged]), torch.stack([s[1] for s in staged])
    left = t.flip_left(params)
    assert left.any() and not left.all()
    done = params.clone()
    done[left, 0] = 1.0  # flip not drawn: the batch stage mirrors nothing
    x8_flipped = torch.where(left.view(-1, 1, 1, 1), x8.flip(-1), x8)
    assert not t.flip_left(done).any()
    assert torch.equal(t.batch_stage(x8, params), t.batch_stage(x8_flipped, done))


def test_colour_jitter_clips_once_at_the_end():
    """The one deliberate difference: v2 clips after each colour step, the fused colour matrix once.

    Brightness 1.2 takes a level of 240 to 288; contrast 0.5 then blends it with the mean grey.
    v2 blends the clipped 255, the fused path the unclipped 288.
    """
    img = torch.full((3, 32, 32), 60, dtype=torch.uint8)
    img[:, :16] = 240
    p = AugmentParams(
        crop=(0, 0, 32, 32),
        color_order=("brightness", "contrast", "saturation"),
        brightness=1.2,
        contrast=0.5,
        saturation=1.0,
    )
    t = TrainTransform(
        32,
        AugmentConfig(
            hflip_p=0,
            crop_scale=(1, 1),
            crop_ratio=(1, 1),
            jpeg_p=0,
            blur_p=0,
            color_p=1,
            brightness=0.2,
            contrast=0.5,
            saturation=0,
        ),
    )
    x = img.float()
    u = torch.tensor([[0.1, 0.2, 0.3, 0.0, 1.0, 0.0, 0.5, 0.5]], dtype=torch.float64)  # b, c, s; factors 1.2, 0.5, 1
    fused = t._jitter(x[None], u)[0]
    grey = torch.tensor([0.2989, 0.587, 0.114]).view(3, 1, 1)  # the luma weights of both paths

    def contrast(y: torch.Tensor) -> torch.Tensor:  # blend with the mean grey level, factor 0.5
        return 0.5 * y + 0.5 * (y * grey).sum(0).mean()

    assert torch.allclose(fused, contrast(1.2 * x), atol=1e-3)  # brightness unclipped: 288
    mean, std = torch.tensor([0.485, 0.456, 0.406]).view(3, 1, 1), torch.tensor([0.229, 0.224, 0.225]).view(3, 1, 1)
    v2 = (reference_augment(img, p, 32) * std + mean) * 255
    assert torch.allclose(v2, contrast((1.2 * x).clamp(0, 255)), atol=1e-3)  # clipped to 255 first
    assert (fused - v2)[:, :16].min() > 20  # the bright half: about 25 levels apart


def _draws(cfg: AugmentConfig, h: int, w: int, n: int = 4000) -> list[AugmentParams]:
    t = TrainTransform(32, cfg)
    g = torch.Generator().manual_seed(7)
    return [t.draw_params(h, w, g) for _ in range(n)]


def _close_to(share: float, p: float, n: int) -> bool:
    """A frequency within 5 binomial standard deviations of ``p`` (the draws are seeded: no flakes)."""
    return abs(share - p) <= 5 * math.sqrt(p * (1 - p) / n) + 1e-12


def _uniform_mean_ok(values: list[float], lo: float, hi: float) -> bool:
    n = len(values)
    return abs(sum(values) / n - (lo + hi) / 2) <= 5 * (hi - lo) / math.sqrt(12 * n)


def test_drawn_parameters_follow_the_config():
    cfg = AugmentConfig(
        hflip_p=0.5,
        crop_scale=(0.3, 0.6),
        crop_ratio=(0.75, 4 / 3),
        jpeg_p=0.25,
        jpeg_quality=(60, 95),
        blur_p=0.15,
        blur_sigma=(0.1, 1.2),
        color_p=0.3,
        brightness=0.15,
        contrast=0.25,
        saturation=1.5,
        hue=0.05,
    )
    h = w = 600  # large: the rounding of the crop's sides is negligible, and every first attempt fits
    ps = _draws(cfg, h, w)
    n = len(ps)

    # crop: inside the image; area share uniform in crop_scale; log aspect ratio uniform in log crop_ratio
    assert all(
        0 <= p.crop[0] and 0 <= p.crop[1] and p.crop[0] + p.crop[2] <= h and p.crop[1] + p.crop[3] <= w for p in ps
    )
    scale = [p.crop[2] * p.crop[3] / (h * w) for p in ps]
    log_ratio = [math.log(p.crop[3] / p.crop[2]) for p in ps]
    assert 0.3 - 0.005 <= min(scale) < 0.31 and 0.59 < max(scale) <= 0.6 + 0.005
    assert _uniform_mean_ok(scale, 0.3, 0.6)
    lr0, lr1 = math.log(0.75), math.log(4 / 3)
    assert lr0 - 0.01 <= min(log_ratio) and max(log_ratio) <= lr1 + 0.01 and _uniform_mean_ok(log_ratio, lr0, lr1)
    tops = [p.crop[0] / (h - p.crop[2]) for p in ps]
    assert _uniform_mean_ok(tops, 0, 1)  # position uniform

    # flip, JPEG, blur, colour: each with its probability
    assert _close_to(sum(p.hflip for p in ps) / n, 0.5, n)
    quality = [p.jpeg_quality for p in ps if p.jpeg_quality is not None]
    assert _close_to(len(quality) / n, 0.25, n)
    assert set(quality) == set(range(60, 96))  # integers, both ends included
    assert _uniform_mean_ok(quality, 59.5, 95.5)  # discrete uniform on 60..95
    sigma = [p.blur_sigma for p in ps if p.blur_sigma is not None]
    assert _close_to(len(sigma) / n, 0.15, n) and 0.1 <= min(sigma) and max(sigma) <= 1.2
    assert _uniform_mean_ok(sigma, 0.1, 1.2)
    col = [p for p in ps if p.color_order is not None]
    assert _close_to(len(col) / n, 0.3, n)
    assert all(
        p.color_order is None and (p.brightness, p.contrast, p.saturation, p.hue) == (1, 1, 1, None)
        for p in ps
        if p.color_order is None
    )  # no jitter: identity factors

    # colour: a uniform order of the three steps; factors uniform in [max(0, 1 - x), 1 + x]; hue in [-h, h]
    orders = [p.color_order for p in col]
    assert set(orders) == set(permutations(COLOR_STEPS))
    assert all(_close_to(orders.count(o) / len(col), 1 / 6, len(col)) for o in set(orders))
    for field, amount in (("brightness", 0.15), ("contrast", 0.25), ("saturation", 1.5)):
        v = [getattr(p, field) for p in col]
        lo, hi = max(0.0, 1 - amount), 1 + amount
        assert lo <= min(v) < lo + 0.02 and hi - 0.02 < max(v) <= hi and _uniform_mean_ok(v, lo, hi), field
    hue = [p.hue for p in col]
    assert -0.05 <= min(hue) < -0.049 and 0.049 < max(hue) <= 0.05 and _uniform_mean_ok(hue, -0.05, 0.05)


def test_drawn_parameters_edge_cases():
    # probabilities 0 and 1; no hue by default
    off = _draws(AugmentConfig(hflip_p=0, jpeg_p=0, blur_p=0, color_p=0), 64, 64, 300)
    assert not any(p.hflip or p.jpeg_quality or p.blur_sigma or p.color_order for p in off)
    on = _draws(AugmentConfig(hflip_p=1, jpeg_p=1, blur_p=1, color_p=1), 64, 64, 300)
    assert all(p.hflip and p.jpeg_quality and p.blur_sigma and p.color_order and p.hue is None for p in on)
    # no crop at all with scale = ratio = 1 on a square image
    full = _draws(AugmentConfig(crop_scale=(1, 1), crop_ratio=(1, 1)), 50, 50, 50)
    assert {p.crop for p in full} == {(0, 0, 50, 50)}
    # a strip no drawn box fits: the central crop with the ratio clamped (as v2.RandomResizedCrop)
    strip = _draws(AugmentConfig(), 20, 200, 50)
    assert {p.crop for p in strip} == {(0, 89, 20, 22)}


def test_reference_wants_uint8():
    p = AugmentParams(crop=(0, 0, 16, 16))
    with pytest.raises(TypeError, match="uint8"):
        reference_augment(torch.rand(3, 16, 16), p, 16)


def test_resize_without_the_aten_binding_gives_the_same_pixels(monkeypatch):
    """``_resize`` calls the ATen op behind ``interpolate`` directly; where a torch build lacks that
    binding it falls back to ``interpolate`` itself, with the same pixels (uint8 and float)."""
    from dflib.data import transforms

    full, mid = _images()
    crops = [img[..., 1:-2, 2:-1] for img in full + mid] + [full[0].float() / 255]
    fast = [transforms._resize(x, 32) for x in crops]
    monkeypatch.setattr(transforms, "_UPSAMPLE_AA", None)
    slow = [transforms._resize(x, 32) for x in crops]
    assert all(torch.equal(a, b) for a, b in zip(fast, slow))
    assert all(torch.equal(a, F.resize(x, [32, 32], antialias=True)) for a, x in zip(fast, crops))
