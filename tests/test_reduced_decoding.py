"""Reduced (DCT-domain) JPEG decoding: one rule, and the same pixels in training, evaluation and predict."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from dflib.data import eval_transform, io, train_transform
from dflib.data.dataset import DeepfakeDataset
from dflib.data.transforms import REDUCED_DECODING


def _face_folder(root, side: int = 256, n: int = 2):
    rng = np.random.default_rng(0)
    for split in ("Train", "Validation", "Test"):
        for cls in ("Real", "Fake"):
            (root / split / cls).mkdir(parents=True)
            for i in range(n):
                low = rng.uniform(0, 255, (16, 16, 3)).astype(np.uint8)
                img = Image.fromarray(low).resize((side, side), Image.BICUBIC)
                img.save(root / split / cls / f"{cls.lower()}_{i}.jpg", quality=90)
    return root


def test_jpeg_scale_rule():
    assert io.jpeg_scale((256, 256), None) == 1
    assert io.jpeg_scale((256, 256), 128) == 2
    assert io.jpeg_scale((256, 256), 121) == 2
    assert io.jpeg_scale((256, 256), 150) == 1  # 1/2 would give 128 < 150
    assert io.jpeg_scale((2000, 1500), 121) == 8
    assert io.jpeg_scale((2000, 1500), (300, 200)) == 4
    assert io.jpeg_scale((200, 200), 128) == 1


def test_fast_reader_and_pil_draft_give_the_same_pixels(tmp_path, monkeypatch):
    root = _face_folder(tmp_path)
    path = next((root / "Test" / "Fake").glob("*.jpg"))
    fast = io.read_image_tensor(path, min_size=128)
    assert fast.shape == (3, 128, 128)
    monkeypatch.setattr(io, "jpeg_decoder", lambda: None)  # force the PIL draft fallback
    slow = io.read_image_tensor(path, min_size=128)
    assert torch.equal(fast, slow)
    assert io.read_image_tensor(path).shape == (3, 256, 256)


def test_png_is_never_reduced(tmp_path):
    Image.fromarray(np.zeros((256, 256, 3), np.uint8)).save(tmp_path / "a.png")
    assert io.read_image_tensor(tmp_path / "a.png", min_size=64).shape == (3, 256, 256)


@pytest.mark.skipif(not REDUCED_DECODING, reason="reduced decoding is switched off")
def test_train_eval_and_predict_decode_alike(tmp_path):
    root = _face_folder(tmp_path)
    ev, tr = eval_transform(128), train_transform(128)
    assert io.jpeg_scale((256, 256), ev.decode_size) == io.jpeg_scale((256, 256), tr.decode_size) == 2
    ds = DeepfakeDataset(root, "Test", ev)
    path = ds.samples[0][0]
    decoded = io.read_image_tensor(path, min_size=ev.decode_size)
    assert torch.equal(io.read_image_tensor(path, min_size=tr.decode_size), decoded)  # training sees these pixels
    x = ds[0][0]  # evaluation (and the card's transform)
    assert torch.allclose(x, ev(decoded))
    from dflib.predict import _Files  # predict reads with the transforms' decode size

    files = _Files([path], [ev])
    assert files.read_options == {"min_size": ev.decode_size}
    assert torch.allclose(files[0][1][0], x)
