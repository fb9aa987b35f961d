"""JPEG decoding on the training device, run on the CPU: the same batches as the CPU loader.

On CUDA the engine decodes with nvJPEG; here ``decode_jpeg(list, device="cpu")`` runs the same
code path, so everything but the decoder library itself is exercised (no GPU in CI).
"""

from __future__ import annotations

import io

import pandas as pd
import pytest
import torch
from PIL import Image

from dflib.data import AugmentConfig, DeepfakeDataset, discover, train_transform
from dflib.data.device_decode import EncodedBatch, device_decodable, make_device_decode_loader
from dflib.data.sampling import finish_batch, make_train_loader
from dflib.training import fit
from tests.conftest import make_dataset, write_image

EVERYTHING = AugmentConfig(hflip_p=0.5, jpeg_p=0.5, blur_p=0.5, color_p=0.5)
# Reduced decoding off: every baseline colour JPEG is decoded in full, so it travels encoded.
FULL_DECODE = AugmentConfig(hflip_p=0.5, jpeg_p=0.5, blur_p=0.5, color_p=0.5, draft_upscale=0)


@pytest.fixture(scope="module")
def train_set(tmp_path_factory):
    root = make_dataset(tmp_path_factory.mktemp("dd"), splits=("Train", "Validation"), per_class=6, size=64)
    write_image(root / "Train" / "Fake" / "a_png.png", 99, size=64, fmt="PNG")  # decoded by the worker
    write_image(root / "Train" / "Real" / "grey.jpg", 98, size=64, mode="L")  # greyscale JPEG: same
    return root


def _batches(loader, transform):
    return [finish_batch(b, transform, "cpu") for b in loader]


@pytest.mark.parametrize(
    ("workers", "augment", "expected_kinds"),
    [
        (0, FULL_DECODE, {1, 3}),  # encoded JPEGs, plus the PNG and the greyscale JPEG as CPU crops
        (1, FULL_DECODE, {1, 3}),
        # Reduced decoding on (the default): the 64 px JPEGs are decoded at 1/2 scale by the CPU
        # worker, as evaluation decodes them, so none travels encoded and the pixels stay the same.
        (0, EVERYTHING, {3}),
    ],
)
def test_same_images_same_augmentation_as_the_cpu_loader(train_set, workers, augment, expected_kinds):
    ds = DeepfakeDataset(discover(train_set), "Train", None)
    t = train_transform(32, augment)
    cpu = make_train_loader(ds, t, 4, seed=5, workers=workers, batched=True)
    dev = make_device_decode_loader(ds, t, 4, seed=5, workers=workers)
    for epoch in (0, 1):
        cpu.sampler.set_epoch(epoch)
        dev.sampler.set_epoch(epoch)
        raw = list(dev)
        assert all(isinstance(b, EncodedBatch) for b in raw)
        kinds = {t.ndim for b in raw for t in b.images}
        assert kinds == expected_kinds
        ours, theirs = _batches(raw, t), _batches(cpu, t)
        assert len(ours) == len(theirs) == 3
        for (x1, y1), (x2, y2) in zip(ours, theirs):
            assert torch.equal(y1, y2)
            assert x1.shape == x2.shape == (4, 3, 32, 32)
            torch.testing.assert_close(x1, x2, atol=1e-5, rtol=0)  # same pixels: only float rounding


def test_only_baseline_colour_jpegs_travel_encoded():
    img = Image.new("RGB", (24, 24), (10, 200, 30))

    def jpeg(image, **kw):
        buf = io.BytesIO()
        image.save(buf, "JPEG", **kw)
        return buf.getvalue()

    assert device_decodable(jpeg(img), 10_000)
    assert not device_decodable(jpeg(img), 100)  # above max_pixels
    assert not device_decodable(jpeg(img, progressive=True), 10_000)
    assert not device_decodable(jpeg(img.convert("L")), 10_000)
    assert not device_decodable(b"\x89PNG\r\n\x1a\n", 10_000)
    assert not device_decodable(jpeg(img)[:20], 10_000)  # truncated header


def test_training_with_device_decoding_matches_cpu_decoding(train_set, tmp_path):
    common = dict(
        model="resnet18",
        model_options={"width": 4},
        img_size=32,
        batch_size=4,
        workers=0,
        progress=False,
        seed=3,
        epochs=1,
        data_dir=str(train_set),
        deterministic=True,
        augment=FULL_DECODE.to_dict(),  # so JPEGs really travel encoded (see the test above)
    )
    before = torch.get_num_threads()
    try:
        a = fit(**common, decode="device", out=str(tmp_path / "a"))
        b = fit(**common, decode="cpu", out=str(tmp_path / "b"))
    finally:
        torch.set_num_threads(before)
    drop = ["train_seconds", "train_images_per_s", "epoch_seconds"]
    # decode="cpu" on the CPU is the one-stage loader: same augmentation up to float rounding
    pd.testing.assert_frame_equal(a.history.drop(columns=drop), b.history.drop(columns=drop), rtol=1e-3)
    log = (a.paths.run_dir / "train.log").read_text()
    assert "JPEGs decoded on cpu" in log
