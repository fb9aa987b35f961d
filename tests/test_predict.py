"""dflib predict: files, folders and globs in, one row per file out; bad inputs never stop a batch."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from dflib.checkpoint import save_detector
from dflib.cli import main
from dflib.data import NoImagesError, find_images
from dflib.data.transforms import IMAGENET_MEAN, IMAGENET_STD
from dflib.models import create_model
from dflib.predict import COLUMNS, explain_filenames, predict_ensemble, predict_paths
from tests.conftest import write_image

CARD_THRESHOLD = 0.3


def _card(model, threshold=CARD_THRESHOLD, name="tiny"):
    return {
        "format": "dflib-detector/1",
        "name": name,
        "architecture": model.config,
        "img_size": model.config["img_size"],
        "normalization": {"mean": list(IMAGENET_MEAN), "std": list(IMAGENET_STD)},
        "threshold": {"value": threshold, "method": "youden", "chosen_on": "Validation"},
    }


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    """A tiny untrained ResNet saved as a detector pair (img_size 32, threshold 0.3)."""
    torch.manual_seed(0)
    model = create_model("resnet18_w16", img_size=32)
    weights, card = save_detector(model, tmp_path_factory.mktemp("ckpt") / "tiny", _card(model))
    return card


@pytest.fixture
def images(tmp_path) -> Path:
    """2 good images, plus a corrupt JPEG, a text file named .jpg and a zero-byte PNG."""
    root = tmp_path / "imgs"
    write_image(root / "good_1.jpg", 1, size=40)
    write_image(root / "sub" / "good_2.png", 2, size=24, fmt="PNG")
    data = (root / "good_1.jpg").read_bytes()
    (root / "corrupt.jpg").write_bytes(data[: len(data) // 2])
    (root / "notes.jpg").write_text("this is not an image\n")
    (root / "empty.png").write_bytes(b"")
    return root


def test_rows_columns_and_bad_files(images, checkpoint):
    df = predict_paths([images], checkpoint, device="cpu", progress=False)
    assert list(df.columns) == COLUMNS and len(df) == 5
    by_name = {Path(p).name: row for p, row in zip(df["path"], df.itertuples())}
    for bad, reason in [("corrupt.jpg", "truncated"), ("notes.jpg", "not an image"), ("empty.png", "zero-byte")]:
        row = by_name[bad]
        assert reason in row.error and np.isnan(row.p_fake) and pd.isna(row.label)
    good = df[df["error"].isna()]
    assert sorted(Path(p).name for p in good["path"]) == ["good_1.jpg", "good_2.png"]
    assert good["p_fake"].between(0, 1).all()
    assert (good["label"] == np.where(good["p_fake"] >= CARD_THRESHOLD, "fake", "real")).all()
    assert (df["threshold"] == CARD_THRESHOLD).all() and (df["model"] == "tiny").all()


def test_any_size_and_mode(tmp_path, checkpoint):
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (30, 50), dtype=np.uint8), "L").save(tmp_path / "gray.png")
    Image.fromarray(rng.integers(0, 256, (20, 300, 4), dtype=np.uint8), "RGBA").save(tmp_path / "alpha.webp")
    Image.fromarray(rng.integers(0, 256, (64, 48, 3), dtype=np.uint8)).convert("CMYK").save(tmp_path / "cmyk.jpg")
    Image.fromarray(rng.integers(0, 65535, (33, 33), dtype=np.uint16)).save(tmp_path / "deep.tif")
    Image.fromarray(rng.integers(0, 256, (5, 7, 3), dtype=np.uint8)).save(tmp_path / "tiny.BMP")
    Image.fromarray(rng.integers(0, 256, (16, 16), dtype=np.uint8), "L").convert("P").save(tmp_path / "pal.gif")
    df = predict_paths(tmp_path, checkpoint, device="cpu", progress=False)
    assert len(df) == 6 and df["error"].isna().all(), df.to_string()
    assert df["p_fake"].notna().all()


def test_recursion_globs_and_case(tmp_path, checkpoint):
    write_image(tmp_path / "a" / "img.JPG", 1)
    write_image(tmp_path / "a" / "deep" / "er" / "img.jpeg", 2)
    write_image(tmp_path / "b" / "img.png", 3, fmt="PNG")
    write_image(tmp_path / "b" / ".hidden" / "skip.jpg", 4)
    (tmp_path / "b" / "readme.txt").write_text("not an image")
    found = find_images([tmp_path])
    assert sorted(p.relative_to(tmp_path).as_posix() for p in found) == ["a/deep/er/img.jpeg", "a/img.JPG", "b/img.png"]
    # Patterns are expanded by dflib (shells on Windows do not); overlapping inputs are listed once.
    assert [p.name for p in find_images([str(tmp_path / "**" / "*.png")])] == ["img.png"]
    assert len(find_images([str(tmp_path / "a"), str(tmp_path / "a" / "*.JPG"), tmp_path / "a" / "img.JPG"])) == 2
    df = predict_paths([str(tmp_path / "*")], checkpoint, device="cpu", progress=False)
    assert len(df) == 3 and df["error"].isna().all()


def test_threshold_override(images, checkpoint):
    low = predict_paths(images, checkpoint, threshold=0.0, device="cpu", progress=False)
    assert (low["threshold"] == 0.0).all()
    assert (low.loc[low["error"].isna(), "label"] == "fake").all()
    high = predict_paths(images, checkpoint, threshold=1.0, device="cpu", progress=False)
    assert (high.loc[high["error"].isna(), "label"] == "real").all()
    with pytest.raises(ValueError, match="threshold"):
        predict_paths(images, checkpoint, threshold=1.5, device="cpu", progress=False)


def test_model_card_pair_and_ensemble(images, checkpoint):
    torch.manual_seed(1)
    other = create_model("vit_face_p8_128", img_size=48)  # another architecture, input size and threshold
    single = predict_paths(images, (other, _card(other, 0.7, "other")), device="cpu", progress=False)
    assert (single["threshold"] == 0.7).all() and (single["model"] == "other").all()
    ens = predict_ensemble(images, [checkpoint, (other, _card(other, 0.7, "other"))], device="cpu", progress=False)
    assert list(ens.columns[:6]) == COLUMNS and len(ens) == 5
    assert (ens["model"] == "ensemble(tiny+other)").all() and (ens["threshold"] == 0.5).all()
    ok = ens["error"].isna()
    np.testing.assert_allclose(ens.loc[ok, "p_fake"], (ens.loc[ok, "p_fake_tiny"] + ens.loc[ok, "p_fake_other"]) / 2)
    np.testing.assert_allclose(ens.loc[ok, "p_fake_other"], single.loc[ok, "p_fake"], atol=1e-6)


def test_no_images_names_what_was_searched(tmp_path, checkpoint):
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("x")
    with pytest.raises(NoImagesError, match="no images found: folder .*empty"):
        predict_paths(tmp_path / "empty", checkpoint, progress=False)
    with pytest.raises(NoImagesError, match="does not exist"):
        find_images([tmp_path / "missing.jpg"])
    with pytest.raises(NoImagesError, match="pattern"):
        find_images([str(tmp_path / "*.webp")])


def test_explain_filenames_are_unique():
    names = explain_filenames(["/data/x/img.jpg", "/data/y/img.jpg", "/data/x/img.png"])
    assert names == ["x__img.jpg.png", "y__img.jpg.png", "x__img.png.png"]
    assert explain_filenames(["/a/b.jpg"]) == ["b.jpg.png"]


@pytest.mark.skipif(importlib.util.find_spec("dflib.explain") is None, reason="dflib.explain not available")
def test_explain_writes_overlays(tmp_path, images, checkpoint):
    write_image(images / "other" / "good_1.jpg", 5, size=300)  # same name as images/good_1.jpg
    out = tmp_path / "heatmaps"
    df = predict_paths(images, checkpoint, explain_dir=out, device="cpu", progress=False)
    written = sorted(p.name for p in out.iterdir())
    assert written == ["good_1.jpg.png", "other__good_1.jpg.png", "sub__good_2.png.png"]
    assert set(df.attrs["explanations"]) == {p for p, e in zip(df["path"], df["error"]) if pd.isna(e)}
    with Image.open(out / "other__good_1.jpg.png") as im:
        assert im.size == (300, 300) and im.mode == "RGB"  # drawn on the original image


# --------------------------------------------------------------------------- the command line
def test_cli_writes_csv(images, checkpoint, tmp_path, capsys):
    out = tmp_path / "deep" / "preds.csv"
    assert (
        main(
            [
                "predict",
                str(images),
                "--checkpoint",
                str(checkpoint),
                "--out",
                str(out),
                "--device",
                "cpu",
                "--no-progress",
            ]
        )
        == 0
    )
    df = pd.read_csv(out)
    assert list(df.columns) == COLUMNS and len(df) == 5 and df["error"].notna().sum() == 3
    assert "5 image(s) ->" in capsys.readouterr().out


def test_cli_table_and_threshold(images, checkpoint, capsys):
    weights = checkpoint.with_suffix(".safetensors")  # either file of the pair works
    assert (
        main(
            [
                "predict",
                str(images / "good_1.jpg"),
                str(images / "notes.jpg"),
                "--checkpoint",
                str(weights),
                "--threshold",
                "0",
                "--device",
                "cpu",
                "--no-progress",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert out.splitlines()[0].split() == ["path", "p_fake", "label", "error"]
    assert "not an image" in out and "threshold 0: 1 fake, 0 real, 1 unreadable" in out


@pytest.mark.parametrize("case", ["missing_checkpoint", "corrupt_checkpoint", "no_images", "bad_out"])
def test_cli_errors_are_one_clear_line(case, images, checkpoint, tmp_path, capsys):
    args = ["predict", str(images), "--checkpoint", str(checkpoint), "--device", "cpu", "--no-progress"]
    expected = {
        "missing_checkpoint": "does not exist",
        "corrupt_checkpoint": "corrupt",
        "no_images": "no images found",
        "bad_out": "cannot write --out",
    }[case]
    if case == "missing_checkpoint":
        args[3] = str(tmp_path / "nope.json")
    elif case == "corrupt_checkpoint":
        bad = tmp_path / "bad.safetensors"
        bad.write_bytes(b"\x00garbage" * 10)
        args[3] = str(bad)
    elif case == "no_images":
        (tmp_path / "empty").mkdir()
        args[1] = str(tmp_path / "empty")
    else:
        (tmp_path / "a_file").write_text("x")
        args += ["--out", str(tmp_path / "a_file" / "preds.csv")]
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and expected in err and "Traceback" not in err
    assert len(err.splitlines()) == 1


# --------------------------------------------------------------------------- example/
def test_make_examples_is_deterministic_and_balanced(tmp_path):
    from dflib.data.synthetic import METHODS, make_examples, read_labels

    labels = make_examples(tmp_path / "a", n=8, seed=3, size=64)
    make_examples(tmp_path / "b", n=8, seed=3, size=64)
    assert (labels["label"] == "fake").sum() == 4 and set(labels.loc[labels.label == "fake", "method"]) == set(METHODS)
    for name in labels["path"]:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
        with Image.open(tmp_path / "a" / name) as im:
            assert im.size == (64, 64) and im.format == "JPEG"
    assert read_labels(tmp_path / "a")["file"].map(lambda f: Path(f).is_file()).all()


def test_repository_examples_match_their_labels():
    folder = Path(__file__).resolve().parent.parent / "example"
    labels = pd.read_csv(folder / "labels.csv")
    assert list(labels.columns) == ["path", "label", "method"] and len(labels) == 12
    assert labels["label"].value_counts().to_dict() == {"real": 6, "fake": 6}
    assert all((folder / p).is_file() for p in labels["path"])
    assert sorted(p.name for p in find_images(folder)) == sorted(labels["path"])


def test_explanation_overlays_in_memory(images, checkpoint):
    from dflib.data.io import read_image_tensor
    from dflib.predict import explanation_overlays

    maps = explanation_overlays(images, checkpoint, device="cpu")
    df = predict_paths([images], checkpoint, device="cpu", progress=False)
    assert list(maps) == list(df["path"])  # same keys, same order as the predictions
    for path, error in zip(df["path"], df["error"]):
        ov = maps[path]
        if isinstance(error, str):
            assert ov is None
        else:  # drawn on the original image (40 or 24 px here), not on the 32 px model input
            h, w = read_image_tensor(path).shape[-2:]
            assert ov.dtype == np.uint8 and ov.shape == (h, w, 3)
    with pytest.raises(ValueError, match="one detector"):
        explanation_overlays(images, [checkpoint, checkpoint], device="cpu")
