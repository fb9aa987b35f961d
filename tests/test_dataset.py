"""Dataset, transforms, loaders and split hygiene on tiny folders built in the test."""

from __future__ import annotations

import shutil
import warnings

import pytest
import torch

from dflib.data import (
    AugmentConfig,
    DeepfakeDataset,
    check_splits,
    denormalize,
    eval_transform,
    make_loader,
    train_transform,
)
from dflib.data.transforms import REDUCED_DECODING
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
    off = train_transform(
        32, AugmentConfig(hflip_p=0, crop_scale=(1, 1), crop_ratio=(1, 1), jpeg_p=0, blur_p=0, color_p=0)
    )
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


def test_eval_transform_matches_torchvision_compose(tiny_dataset):
    from torchvision.transforms import v2

    raw = make_dataset(tiny_dataset.parent / "big", splits=("Test",), per_class=1, size=64)
    img = DeepfakeDataset(raw, "Test").load(0)
    ref = v2.Compose(
        [
            v2.Resize((24, 24), antialias=True),
            v2.ToDtype(torch.float32, scale=True),
            v2.Normalize(mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225]),
        ]
    )
    out = eval_transform(24)(img)
    assert out.dtype == torch.float32 and out.shape == (3, 24, 24) and out.is_contiguous()
    assert torch.allclose(out, ref(img), atol=1e-5)
    assert torch.allclose(eval_transform(24)(img.float() / 255), out, atol=0.02)  # float in [0, 1]; no uint8 rounding
    assert eval_transform(24, draft=False).decode_size is None and eval_transform(24, draft=True).decode_size == 24
    # the default follows the one decision on reduced decoding (transforms.REDUCED_DECODING)
    assert eval_transform(24).decode_size == (24 if REDUCED_DECODING else None)


def test_train_steps_match_torchvision_kernels():
    from torchvision.transforms.v2 import functional as F

    from dflib.data import TrainTransform

    x = torch.randint(40, 200, (3, 40, 40)).float()  # mid-range: no clipping inside the jitter
    taps = TrainTransform._blur_taps(torch.tensor([0.7, 1.1]))
    blurred = TrainTransform._blur(torch.stack([x, x.flip(-1)]), taps)
    assert torch.allclose(blurred[0], F.gaussian_blur(x[None], [5, 5], [0.7, 0.7])[0], atol=1e-3)
    assert torch.allclose(blurred[1], F.gaussian_blur(x.flip(-1)[None], [5, 5], [1.1, 1.1])[0], atol=1e-3)
    t = TrainTransform(32, AugmentConfig(brightness=0.3, contrast=0.3, saturation=0.3, hue=0.1))
    u = torch.tensor(
        [
            [0.9, 0.5, 0.1, 0.0, 0.9, 0.1, 0.3, 0.5],  # saturation, contrast, brightness
            [0.2, 0.6, 0.4, 0.0, 0.3, 0.8, 0.6, 0.9],
        ],  # brightness, saturation, contrast; hue
        dtype=torch.float64,
    )
    out = t._jitter(torch.stack([x, x]), u)
    f = [[0.7 + 0.6 * v for v in row[4:7]] for row in u.tolist()]
    ref0 = F.adjust_brightness(F.adjust_contrast(F.adjust_saturation(x / 255, f[0][2]), f[0][1]), f[0][0])
    ref1 = F.adjust_contrast(F.adjust_saturation(F.adjust_brightness(x / 255, f[1][0]), f[1][2]), f[1][1])
    ref1 = F.adjust_hue(ref1, 0.1 * (2 * 0.9 - 1))
    assert torch.allclose(out[0], ref0 * 255, atol=1e-2)
    assert torch.allclose(out[1], ref1 * 255, atol=0.5)  # hue goes through HSV: a little rounding


def test_two_stage_train_transform_equals_the_one_image_call(tiny_dataset):
    from dflib.data import TrainTransform

    ds = DeepfakeDataset(tiny_dataset, "Train")
    t = train_transform(24, AugmentConfig(jpeg_p=0.5, blur_p=0.5, color_p=0.5, hue=0.05))
    imgs = [ds.load(i % len(ds)) for i in range(12)]
    staged = [t.sample_stage(img, torch.Generator().manual_seed(i)) for i, img in enumerate(imgs)]
    assert all(s[0].dtype == torch.uint8 and s[0].shape == (3, 24, 24) for s in staged)
    assert all(s[1].shape == (TrainTransform.N_PARAMS,) for s in staged)
    params = torch.stack([s[1] for s in staged])
    assert (params[:, 3] < 0.5).any() and (params[:, 3] >= 0.5).any()  # some blurred, some not
    x8 = torch.stack([s[0] for s in staged])
    batch = t.batch_stage(x8, params)
    assert x8.dtype == torch.uint8  # the input batch is left alone
    one = torch.stack([t(img, generator=torch.Generator().manual_seed(i)) for i, img in enumerate(imgs)])
    assert batch.dtype == torch.float32 and batch.is_contiguous()
    assert torch.allclose(batch, one, atol=1e-4)
    with pytest.raises(ValueError, match="params"):
        t.batch_stage(x8, params[:, :3])


def test_train_transform_with_generator_is_reproducible_and_leaves_global_rng_alone(tiny_dataset):
    raw = DeepfakeDataset(tiny_dataset, "Train").load(0)
    t = train_transform(24, AugmentConfig(jpeg_p=0.5, blur_p=0.5, color_p=0.5))
    torch.manual_seed(3)
    before = torch.get_rng_state()
    a = t(raw, generator=torch.Generator().manual_seed(5))
    b = t(raw, generator=torch.Generator().manual_seed(5))
    c = t(raw, generator=torch.Generator().manual_seed(6))
    assert torch.equal(torch.get_rng_state(), before)
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert a.dtype == torch.float32 and a.shape == (3, 24, 24) and a.is_contiguous()
    assert -2.2 < a.min() and a.max() < 2.7  # normalised with ImageNet statistics


def test_dataset_accepts_index_seed_pairs(tiny_dataset):
    ds = DeepfakeDataset(tiny_dataset, "Train", train_transform(24))
    (a, ya), (b, yb) = ds[(3, 11)], ds[(3, 11)]
    assert torch.equal(a, b) and ya == yb == ds[3][1]
    assert not torch.equal(a, ds[(3, 12)][0])


def test_train_transform_decode_size_respects_draft_upscale():
    # 128 px from the smallest crop (0.85 of the side), never enlarged
    assert train_transform(128, AugmentConfig(draft_upscale=1.0)).decode_size == 151
    assert train_transform(128, AugmentConfig(draft_upscale=0)).decode_size is None
    assert train_transform(128, AugmentConfig(draft_upscale=1.25)).decode_size == 121
    assert train_transform(128).decode_size == (121 if REDUCED_DECODING else 151)  # the default decision
    with pytest.raises(ValueError, match="jpeg_p is a probability"):
        train_transform(128, AugmentConfig(jpeg_p=1.5))
    with pytest.raises(ValueError, match="crop_scale"):
        train_transform(128, AugmentConfig(crop_scale=(0.5, 1.5)))


def test_make_loader_takes_a_sampler(tmp_path):
    from torch.utils.data import SequentialSampler

    ds = DeepfakeDataset(make_dataset(tmp_path, splits=("Train",), per_class=3), "Train", eval_transform(16))
    loader = make_loader(ds, batch_size=4, train=True, num_workers=0, sampler=SequentialSampler(ds))
    assert [y.tolist() for _, y in loader] == [[0, 0, 0, 1]]  # drop_last, fixed order
    with pytest.raises(ValueError, match="either balanced=True or a sampler"):
        make_loader(ds, batch_size=4, balanced=True, sampler=SequentialSampler(ds))
    assert make_loader(ds, 4, device="cpu", pin_memory=True).pin_memory


def test_make_train_loader_is_seeded_and_worker_independent(tmp_path):
    from dflib.data.sampling import finish_batch, make_train_loader

    ds = DeepfakeDataset(make_dataset(tmp_path, splits=("Train",), per_class=4), "Train")
    t = train_transform(16, AugmentConfig(jpeg_p=0.5, blur_p=0.5, color_p=0.5))
    runs = []
    for workers, batched in ((0, False), (2, False), (0, True), (2, True)):
        loader = make_train_loader(ds, t, 4, seed=3, workers=workers, batched=batched)
        assert loader.drop_last and len(loader) == 2
        loader.sampler.set_epoch(1)
        batches = list(loader)
        if batched:  # uint8 out of the workers, finished on the device
            assert all(len(b) == 3 and b[0].dtype == torch.uint8 for b in batches)
        runs.append(torch.cat([finish_batch(b, t, "cpu")[0] for b in batches]))
    assert runs[0].shape == (8, 3, 16, 16) and torch.equal(runs[0], runs[1]) and torch.equal(runs[2], runs[3])
    assert torch.allclose(runs[0], runs[2], atol=1e-4)  # two stages: the same augmentation
    with pytest.raises(TypeError, match="needs a TrainTransform"):
        make_train_loader(ds, eval_transform(16), 4, batched=True)


def test_shared_batch_slots_are_reused_and_batches_stay_fresh(tmp_path, monkeypatch):
    """Workers of a two-stage loader write batches into reused shared-memory slots; the main process
    gets ordinary tensors (later batches never overwrite earlier ones) and frees each slot on receipt."""
    import pickle
    from types import SimpleNamespace

    import numpy as np

    from dflib.data import sampling
    from dflib.data.sampling import SharedBatches, collate_staged, make_train_loader

    t = train_transform(16)
    g = torch.Generator().manual_seed(0)
    samples = [t.sample_stage(torch.randint(0, 256, (3, 20, 20), dtype=torch.uint8, generator=g)) for _ in range(4)]
    batch = [(img, k % 2, p) for k, (img, p) in enumerate(samples)]
    expected = collate_staged(batch)
    shared = SharedBatches(workers=1, per_worker=2, batch_size=4, img_size=16)
    assert shared.collate(batch)[0].data_ptr() != 0  # main process: plain collate, no slot
    monkeypatch.setattr(sampling, "get_worker_info", lambda: SimpleNamespace(id=0))
    sent = [shared.collate(batch) for _ in range(3)]
    assert [type(s).__name__ for s in sent] == ["_SlotBatch", "_SlotBatch", "tuple"]  # 2 slots, then torch's collate
    assert shared.free.tolist() == [0, 0]
    received = [pickle.loads(pickle.dumps(s)) for s in sent[:2]]  # what the main process's queue does
    assert shared.free.tolist() == [1, 1]
    for x, y, p in received:
        assert not x.is_shared() and x.shape == (4, 3, 16, 16) and x.stride() == expected[0].stride()
        assert torch.equal(x, expected[0]) and np.array_equal(y, expected[1]) and np.array_equal(p, expected[2])
    shared.images.fill_(0)  # the slots are reused: the received batches must not change
    assert torch.equal(received[0][0], expected[0])
    odd = [(torch.zeros(3, 8, 8, dtype=torch.uint8), 0, samples[0][1])]
    assert isinstance(shared.collate(odd), tuple)  # another shape: plain collate

    ds = DeepfakeDataset(make_dataset(tmp_path, splits=("Train",), per_class=4), "Train")
    loader = make_train_loader(ds, t, 2, seed=1, workers=1, batched=True)
    first = list(loader)
    kept = [b[0].clone() for b in first]
    second = list(loader)  # same epoch again: the workers reuse the slots of the first pass
    assert len(first) == 4 and all(torch.equal(b[0], k) for b, k in zip(first, kept))
    assert all(torch.equal(a[0], b[0]) for a, b in zip(first, second))
    assert loader.collate_fn.__self__.free.all()


def test_two_stage_batches_are_the_samples_one_by_one(tmp_path):
    """AugmentedDataset.__getitems__ (decode all, then each step over the batch) gives exactly the
    samples of __getitem__, and an unreadable file is replaced by the next one in both."""
    from dflib.data.sampling import AugmentedDataset

    root = make_dataset(tmp_path, splits=("Train",), per_class=4)
    ds = DeepfakeDataset(root, "Train")
    t = train_transform(16, AugmentConfig(jpeg_p=0.5, crop_scale=(0.3, 1.0)))
    aug = AugmentedDataset(ds, t, batched=True)
    items = [(i, 1000 + 7 * i) for i in (3, 0, 7, 5, 1)]
    ds.samples[5][0].write_bytes(b"not an image any more")  # breaks after the dataset's check
    with pytest.warns(UserWarning, match="using the next image"):
        batch = aug.__getitems__(items)
    for (img8, label, params), item in zip(batch, items):
        ref8, ref_label, ref_params = aug[item]
        assert torch.equal(img8, ref8) and label == ref_label and torch.equal(params, ref_params)
    assert batch[3][1] == ds.samples[6][1] and len(ds.bad_files) == 1
    plain = AugmentedDataset(ds, t, batched=False)
    assert all(torch.equal(a[0], plain[it][0]) for a, it in zip(plain.__getitems__(items), items))
