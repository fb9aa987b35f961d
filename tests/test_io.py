"""Robust image reading: every mode to RGB, every bad file to one clear error."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from dflib.data import ImageReadError, quick_check, read_image, read_image_tensor
from tests.conftest import write_image


@pytest.mark.parametrize(
    "mode,fmt,ext",
    [
        ("RGB", "JPEG", "jpg"),
        ("L", "JPEG", "jpg"),
        ("CMYK", "JPEG", "jpg"),
        ("LA", "PNG", "png"),
        ("P", "PNG", "png"),
        ("RGBA", "PNG", "png"),
        ("I;16", "PNG", "png"),
        ("RGB", "WEBP", "webp"),
        ("RGBA", "WEBP", "webp"),
        ("RGB", "BMP", "bmp"),
        ("P", "GIF", "gif"),
    ],
)
def test_every_mode_becomes_rgb(tmp_path, mode, fmt, ext):
    if mode == "I;16":
        arr = np.arange(32 * 32, dtype=np.uint16).reshape(32, 32) * 60
        path = tmp_path / "img16.png"
        Image.fromarray(arr).save(path)
    else:
        path = write_image(tmp_path / f"img.{ext}", 1, mode=mode, fmt=fmt)
    img = read_image(path)
    assert img.mode == "RGB" and img.size == (32, 32)
    t = read_image_tensor(path)
    assert t.dtype == torch.uint8 and t.shape == (3, 32, 32)
    if mode == "I;16":  # 16-bit values are rescaled, not clipped to white
        assert 0 < t.float().mean() < 250 and t.max() > 200


def test_transparency_composited_on_white(tmp_path):
    path = tmp_path / "clear.png"
    Image.new("RGBA", (8, 8), (10, 20, 30, 0)).save(path)
    assert np.asarray(read_image(path)).min() == 255


def test_tensor_path_matches_pil_for_jpeg(tmp_path):
    path = write_image(tmp_path / "a.jpg", 3, size=64)
    a = read_image_tensor(path).numpy().transpose(1, 2, 0).astype(int)
    b = np.asarray(read_image(path)).astype(int)
    assert np.abs(a - b).max() <= 2  # same libjpeg family; IDCT rounding may differ by a level


def test_png_renamed_to_jpg_is_read(tmp_path):
    path = write_image(tmp_path / "actually_png.jpg", 2, fmt="PNG")
    assert quick_check(path) is None
    assert read_image_tensor(path).shape == (3, 32, 32)


def _truncated(tmp_path):
    good = write_image(tmp_path / "good.jpg", 4, size=64).read_bytes()
    path = tmp_path / "truncated.jpg"
    path.write_bytes(good[: len(good) // 2])
    return path


def test_bad_files_have_clear_errors(tmp_path):
    zero = tmp_path / "zero.jpg"
    zero.write_bytes(b"")
    text = tmp_path / "notes.jpg"
    text.write_text("this is not an image")
    trunc = _truncated(tmp_path)
    assert quick_check(zero) == "zero-byte file"
    assert quick_check(text) == "not an image (unknown file signature)"
    assert quick_check(trunc) == "truncated JPEG (no end-of-image marker)"
    with pytest.raises(ImageReadError, match="zero.jpg: zero-byte file"):
        read_image(zero)
    with pytest.raises(ImageReadError, match="notes.jpg: not a readable image"):
        read_image_tensor(text)
    with pytest.raises(ImageReadError, match="truncated.jpg: corrupt or truncated image"):
        read_image(trunc)
    with pytest.raises(ImageReadError, match="file not found"):
        read_image(tmp_path / "missing.jpg")
    with pytest.raises(ImageReadError, match="is a folder"):
        read_image(tmp_path)


def test_corrupt_body_detected_when_decoding(tmp_path):
    data = bytearray(write_image(tmp_path / "c.jpg", 5, size=64).read_bytes())
    data[200:-2] = b"\x00" * (len(data) - 202)  # keep the SOI/EOI markers, destroy the rest
    path = tmp_path / "corrupt.jpg"
    path.write_bytes(bytes(data))
    assert quick_check(path) is None  # the cheap check cannot see it ...
    with pytest.raises(ImageReadError, match="corrupt.jpg"):  # ... decoding does
        read_image(path)


def test_decompression_bomb_refused(tmp_path):
    path = tmp_path / "bomb.png"
    Image.new("1", (8000, 6000)).save(path)  # 48 MP, a few KB on disk
    assert path.stat().st_size < 100_000
    with pytest.raises(ImageReadError, match=r"refused, 8000x6000 = 48,000,000 pixels exceeds"):
        read_image_tensor(path)
    small = write_image(tmp_path / "s.jpg", 6, size=64)
    with pytest.raises(ImageReadError, match="exceeds the limit of 1,000"):
        read_image(small, max_pixels=1000)


@pytest.mark.parametrize("min_size,expected", [(None, 256), (200, 256), (128, 128), (100, 128), (64, 64), (20, 32)])
def test_reduced_jpeg_decoding_never_goes_below_min_size(tmp_path, min_size, expected):
    yy, xx = np.mgrid[0:256, 0:256]
    smooth = np.stack([xx, yy, (xx + yy) // 2], -1).astype(np.uint8)  # gradients: no detail to lose
    path = tmp_path / "big.jpg"
    Image.fromarray(smooth).save(path, quality=95)
    t = read_image_tensor(path, min_size=min_size)
    assert t.dtype == torch.uint8 and t.shape == (3, expected, expected)
    full = read_image_tensor(path).float()
    if expected < 256:  # the DCT-scaled decode is a low-passed version of the full image
        f = 256 // expected
        pooled = full.view(3, expected, f, expected, f).mean((2, 4))
        assert (pooled - t.float()).abs().mean() < 2


def test_reduced_decoding_of_grey_jpeg_and_of_png(tmp_path):
    grey = write_image(tmp_path / "grey.jpg", 6, size=128, mode="L")
    t = read_image_tensor(grey, min_size=32)
    assert t.shape == (3, 32, 32) and torch.equal(t[0], t[1]) and torch.equal(t[1], t[2])
    png = write_image(tmp_path / "a.png", 7, size=128, fmt="PNG")
    assert read_image_tensor(png, min_size=32).shape == (3, 128, 128)  # only JPEG scales at decode


def test_jpeg_header_fast_path_still_guards_size(tmp_path):
    path = write_image(tmp_path / "a.jpg", 8, size=64)
    with pytest.raises(ImageReadError, match="exceeds the limit"):
        read_image_tensor(path, max_pixels=64 * 64 - 1)
    assert read_image_tensor(path, max_pixels=64 * 64).shape == (3, 64, 64)


def test_fast_jpeg_decoders_give_the_same_pixels_as_pil(tmp_path):
    """simplejpeg, torchvision and PIL all run libjpeg's accurate IDCT: swapping is a pure speedup."""
    pytest.importorskip("simplejpeg")
    from dflib.data.io import _tv_decode_jpeg, jpeg_decoder

    name, decode = jpeg_decoder()
    assert name == "simplejpeg"
    rng = np.random.default_rng(0)
    smooth = np.kron(rng.integers(0, 256, (12, 12, 3)), np.ones((8, 8, 1))).astype(np.uint8)
    cases = [
        ("rgb420.jpg", smooth, {}),
        ("rgb444.jpg", smooth, {"subsampling": 0}),
        ("grey.jpg", smooth[..., 0], {}),
        ("odd.jpg", smooth[:93, :71], {"quality": 60}),
    ]
    for fname, arr, kw in cases:
        path = tmp_path / fname
        Image.fromarray(arr).save(path, "JPEG", quality=kw.pop("quality", 85), **kw)
        pil = np.asarray(read_image(path))
        fast = decode(path.read_bytes())
        assert fast.shape == (3, *pil.shape[:2]) and np.array_equal(fast.permute(1, 2, 0).numpy(), pil), fname
        if _tv_decode_jpeg() is not None:
            tv = _tv_decode_jpeg()(torch.frombuffer(bytearray(path.read_bytes()), dtype=torch.uint8))
            assert torch.equal(tv, fast), fname
        assert torch.equal(read_image_tensor(path), fast)
    data = bytearray((tmp_path / "rgb420.jpg").read_bytes())
    data[300:-2] = b"\x00" * (len(data) - 302)
    with pytest.raises(ValueError):  # strict: corrupt data raises, it is not patched over
        decode(bytes(data))


def test_jpeg_roundtrip_is_torchvisions_encode_and_decode():
    """The augmentation's re-compression: torchvision's encoder op, then the fast decoder; the same
    pixels as ``v2.functional.jpeg`` (what the reference augmentation calls) for every layout and quality."""
    from torchvision.transforms.v2 import functional as F

    from dflib.data.io import jpeg_roundtrip

    g = torch.Generator().manual_seed(3)
    smooth = torch.nn.functional.interpolate(torch.rand(1, 3, 6, 6, generator=g), size=(64, 80), mode="bilinear")
    smooth = smooth[0].mul(255).round().to(torch.uint8)
    noise = torch.randint(0, 256, (3, 37, 90), dtype=torch.uint8, generator=g)
    for img in (smooth, smooth.permute(1, 2, 0).contiguous().permute(2, 0, 1), noise, smooth[:, 5:50, 3:70]):
        for quality in (1, 20, 60, 95, 100):
            out = jpeg_roundtrip(img, quality)
            assert out.dtype == torch.uint8 and out.shape == img.shape
            assert torch.equal(out, F.jpeg(img, quality)), (tuple(img.shape), img.stride(), quality)
