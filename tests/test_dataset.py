"""Dataset, transforms, loaders and split hygiene on tiny folders built in the test."""

from __future__ import annotations

import shutil
import warnings

import pytest
import torch

from dflib.data import (AugmentConfig, DeepfakeDataset, check_splits, denormalize, eval_transform,
                        make_loader, train_transform)
from tests.conftest import make_dataset, write_image


def test_dataset_labels_and_counts(tiny_dataset):
    ds = DeepfakeDataset(tiny_dataset, "train", eval_transform(24))
    assert len(ds) == 8 and ds.split == "Train"
    assert ds.class_counts() == {"real": 4, "fake": 4}
    x, y = ds[0]
    assert x.shape == (3, 24, 24) and x.dtype == torch.float32 and y == 0
    assert ds[7][1] == 1
    assert "Train: 8 images, real=4, fake=4" in repr(ds)


def test_bad_files_are_skipped_counted_and_listed(tiny_dataset):
    fake = tiny_dataset / "Train" / "Fake"
    (fake / "zero.jpg").write_bytes(b"")
    (fake / "text.jpg").write_text("not an image")
    good = (fake / "fake_0.jpg").read_bytes()
    (fake / "trunc.jpg").write_bytes(good[: len(good) // 2])
    with pytest.warns(UserWarning, match="skipped 3 unreadable file"):
        ds = DeepfakeDataset(tiny_dataset, "Train")
    assert len(ds) == 8
    assert sorted(p.name for p, _ in ds.bad_files) == ["text.jpg", "trunc.jpg", "zero.jpg"]
    assert "3 bad file(s) skipped" in repr(ds)


def test_file_that_breaks_at_load_time_is_replaced_not_fatal(tiny_dataset):
    ds = DeepfakeDataset(tiny_dataset, "Test", eval_transform(16), check="none")
    victim = ds.samples[2][0]
    victim.write_text("gone bad after indexing")
    with pytest.warns(UserWarning, match="using the next image instead"):
        x, y = ds[2]
    assert x.shape == (3, 16, 16) and y == ds.samples[3][1]
    assert [p for p, _ in ds.bad_files] == [victim]
    # a whole epoch through a loader completes
    batches = list(make_loader(ds, batch_size=3, num_workers=0))
    assert sum(len(b[1]) for b in batches) == len(ds)


def test_full_check_finds_corrupt_body(tiny_dataset):
    path = tiny_dataset / "Validation" / "Real" / "real_1.jpg"
    data = bytearray(path.read_bytes())
    data[200:-2] = b"\x00" * (len(data) - 202)
    path.write_bytes(bytes(data))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        quick = DeepfakeDataset(tiny_dataset, "Validation", check="quick")
    assert len(quick) == 8 and not quick.bad_files
    with pytest.warns(UserWarning, match="skipped 1"):
        full = DeepfakeDataset(tiny_dataset, "Validation", check="full")
    assert len(full) == 7 and full.bad_files[0][0] == path


def test_all_files_bad_is_a_clear_error(tmp_path):
    ds = make_dataset(tmp_path, splits=("Test",), per_class=1)
    for f in ds.rglob("*.jpg"):
        f.write_bytes(b"")
    with pytest.raises(ValueError, match="has no readable images"), pytest.warns(UserWarning):
        DeepfakeDataset(ds, "Test")


def test_small_images_are_resized_not_rejected(tmp_path):
    ds_dir = make_dataset(tmp_path, splits=("Test",), per_class=1, size=8)
    x, _ = DeepfakeDataset(ds_dir, "Test", eval_transform(64))[0]
    assert x.shape == (3, 64, 64)


def test_limit_per_class_is_seeded_subset(tmp_path):
    ds_dir = make_dataset(tmp_path, splits=("Train",), per_class=10)
    a = DeepfakeDataset(ds_dir, "Train", limit_per_class=3, seed=1)
    b = DeepfakeDataset(ds_dir, "Train", limit_per_class=3, seed=1)
    c = DeepfakeDataset(ds_dir, "Train", limit_per_class=3, seed=2)
    assert a.class_counts() == {"real": 3, "fake": 3}
    assert a.paths == b.paths and a.paths != c.paths


def test_bad_parameters(tiny_dataset):
    with pytest.raises(ValueError, match="check must be"):
        DeepfakeDataset(tiny_dataset, "Train", check="sometimes")
    with pytest.raises(ValueError, match="img_size must be an integer >= 16"):
        eval_transform(8)
    with pytest.raises(ValueError, match="batch_size must be >= 1"):
        make_loader(DeepfakeDataset(tiny_dataset, "Train"), batch_size=0)


def test_train_transform_is_random_but_seedable_and_normalised(tiny_dataset):
    raw = DeepfakeDataset(tiny_dataset, "Train").load(0)
    t = train_transform(24, AugmentConfig(jpeg_p=1.0, blur_p=1.0, color_p=1.0))
    torch.manual_seed(0)
    a = t(raw)
    torch.manual_seed(0)
    b = t(raw)
    c = t(raw)
    assert a.shape == (3, 24, 24) and torch.equal(a, b) and not torch.equal(a, c)
    e = eval_transform(24)(raw)
    assert torch.equal(e, eval_transform(24)(raw))
    assert 0 <= denormalize(e).min() and denormalize(e).max() <= 1
    off = train_transform(32, AugmentConfig(hflip_p=0, crop_scale=(1, 1), crop_ratio=(1, 1),
                                            jpeg_p=0, blur_p=0, color_p=0))
    assert torch.allclose(off(raw), eval_transform(32)(raw), atol=1e-5)  # all steps off = eval


def test_loader_settings_and_balanced_sampler(tmp_path):
    ds_dir = make_dataset(tmp_path, splits=("Train",), per_class=2)
    for i in range(10):  # 12 real vs 2 fake
        write_image(ds_dir / "Train" / "Real" / f"extra_{i}.jpg", 1000 + i)
    ds = DeepfakeDataset(ds_dir, "Train", eval_transform(16))
    loader = make_loader(ds, batch_size=4, train=True, num_workers=0)
    assert loader.drop_last and len(loader) == 3
    balanced = make_loader(ds, batch_size=14, train=True, num_workers=0, balanced=True, seed=0)
    labels = torch.cat([y for _ in range(30) for _, y in balanced])
    assert 0.4 < labels.float().mean() < 0.6  # fake share ~50 % instead of 14 %
    workers = make_loader(ds, batch_size=7, num_workers=2)
    assert workers.persistent_workers and not workers.pin_memory
    assert sum(len(y) for _, y in workers) == 14


def test_check_splits_finds_duplicates_and_balance(tmp_path):
    ds = make_dataset(tmp_path, per_class=3)
    shutil.copy(ds / "Train" / "Real" / "real_0.jpg", ds / "Test" / "Real" / "leak.jpg")
    shutil.copy(ds / "Train" / "Real" / "real_1.jpg", ds / "Train" / "Fake" / "conflict.jpg")
    shutil.copy(ds / "Validation" / "Fake" / "fake_0.jpg", ds / "Validation" / "Fake" / "dup.jpg")
    report = check_splits(ds, progress=False)
    assert report.n_files == 21
    assert (report.within_split, report.across_splits, report.conflicting_labels) == (2, 1, 1)
    assert len(report.duplicates) == 6 and not report.ok
    test_row = report.balance.set_index("split").loc["Test"]
    assert (test_row["real"], test_row["fake"]) == (4, 3)
    assert abs(test_row["fake_share"] - 3 / 7) < 1e-12
    assert "3 group(s) of exact duplicates" in report.summary()
    clean = check_splits(make_dataset(tmp_path / "clean"), progress=False)
    assert clean.ok and clean.duplicates.empty
