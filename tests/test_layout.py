"""Layout discovery and validation of the Kaggle folder structure."""

from __future__ import annotations

import shutil

import pytest

from dflib.data import LayoutError, discover, find_root
from tests.conftest import make_dataset, write_image


def test_accepts_dataset_folder_and_its_parent(tmp_path):
    ds = make_dataset(tmp_path, per_class=3)
    for path in (ds, tmp_path):
        layout = discover(path)
        assert layout.root == ds
        assert list(layout.splits) == ["Train", "Validation", "Test"]
        assert layout.counts() == {s: {"real": 3, "fake": 3} for s in ("Train", "Validation", "Test")}


def test_class_folders_any_case_and_labels(tmp_path):
    ds = make_dataset(tmp_path, splits=("train", "test"), class_names=("real", "FAKE"), per_class=2)
    layout = discover(ds)
    assert set(layout.splits) == {"Train", "Test"}
    samples = layout["test"].samples()
    assert [label for _, label in samples] == [0, 0, 1, 1]  # real = 0, fake = 1
    assert all("FAKE" in str(p) for p, label in samples if label == 1)


def test_missing_split_allowed_unless_required(tmp_path):
    ds = make_dataset(tmp_path, splits=("Test",))
    assert list(discover(ds).splits) == ["Test"]
    assert list(discover(ds, required=("Test",)).splits) == ["Test"]
    with pytest.raises(LayoutError, match="needed split Train is missing") as e:
        discover(ds, required=("Train", "Test"))
    assert "found (images per split and class): {'Test': {'real': 4, 'fake': 4}}" in str(e.value)


def test_unknown_class_folder(tmp_path):
    ds = make_dataset(tmp_path, splits=("Train",))
    write_image(ds / "Train" / "Unknown" / "x.jpg", 99)
    with pytest.raises(LayoutError, match=r"Train/Unknown: unknown class folder \(expected Real and Fake\)"):
        discover(ds)


def test_empty_class_and_missing_class(tmp_path):
    ds = make_dataset(tmp_path, splits=("Train", "Test"))
    for f in (ds / "Train" / "Fake").iterdir():
        f.unlink()
    shutil.rmtree(ds / "Test" / "Real")
    with pytest.raises(LayoutError) as e:
        discover(ds)
    msg = str(e.value)
    assert "Train/Fake: empty class" in msg
    assert "Test: missing class folder Real" in msg
    assert "expected <root>/Dataset/{Train,Validation,Test}/{Real,Fake}" in msg


def test_wrong_paths(tmp_path):
    with pytest.raises(LayoutError, match="does not exist"):
        find_root(tmp_path / "nope")
    f = write_image(tmp_path / "a.jpg", 1)
    with pytest.raises(LayoutError, match="is a file, not a folder"):
        find_root(f)
    (tmp_path / "images").mkdir()
    with pytest.raises(LayoutError, match=r"no split folders .* found sub-folders: \['images'\]"):
        find_root(tmp_path)


def test_non_image_files_are_ignored_in_listing(tmp_path):
    ds = make_dataset(tmp_path, splits=("Train",), per_class=2)
    (ds / "Train" / "Real" / "notes.txt").write_text("hello")
    (ds / "manifest.csv").write_text("path\n")
    assert discover(ds).counts() == {"Train": {"real": 2, "fake": 2}}
