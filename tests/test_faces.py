"""Faces in photos: detection, framing, predict --faces and crop-faces, on images built here.

A real face comes from matplotlib's public-domain ``grace_hopper.jpg`` (600 x 512, one face).
"""

from __future__ import annotations

import builtins
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from matplotlib import cbook
from PIL import Image

from dflib import faces
from dflib.checkpoint import save_detector
from dflib.cli import main
from dflib.faces.detect import _detector
from dflib.models import create_model
from dflib.predict import COLUMNS, predict_ensemble, predict_paths
from dflib.predict_faces import FACE_COLUMNS
from tests.test_predict import _card

pytest.importorskip("dlib", reason="the faces extra (pip install 'dflib[faces]') is not installed")

GRACE = Path(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False))
GRACE_BOX = (181, 140, 368, 326)  # what the detector finds in the original photo


def grace(size: tuple[int, int] | None = None) -> Image.Image:
    img = Image.open(GRACE).convert("RGB")
    return img.resize(size, Image.Resampling.LANCZOS) if size else img


def iou(a, b) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    model = create_model("resnet18_w16", img_size=32)
    return save_detector(model, tmp_path_factory.mktemp("ckpt") / "tiny", _card(model))[1]


# --------------------------------------------------------------------------- detection
def test_grace_hopper_has_one_face():
    found = faces.detect_faces(grace())
    assert len(found) == 1
    assert iou(found[0].box, GRACE_BOX) > 0.9


def test_many_faces_numbered_left_to_right():
    tile = grace((256, 300))
    group = Image.new("RGB", (256 * 4, 300 * 2))
    for k in range(8):
        group.paste(tile, (256 * (k % 4), 300 * (k // 4)))
    found = faces.detect_faces(group)
    assert len(found) == 8
    xs = [f.box[0] for f in found]
    assert xs == sorted(xs)


def test_tiny_face_below_the_minimum_is_not_found():
    canvas = Image.new("RGB", (800, 600), (128, 128, 128))
    canvas.paste(grace((60, 70)), (300, 200))  # a face of about 25 px
    assert faces.detect_faces(canvas) == []  # default: faces of 40 px and larger
    small = faces.detect_faces(canvas, min_face=20)
    assert len(small) == 1 and small[0].side < 40
    assert faces.smallest_face(800, 600) == pytest.approx(faces.MIN_FACE)


@pytest.mark.parametrize("mode", ["L", "RGBA", "P", "CMYK"])
def test_non_rgb_images(mode):
    found = faces.detect_faces(grace().convert(mode))
    assert len(found) == 1 and iou(found[0].box, GRACE_BOX) > 0.8


def test_tensor_and_array_inputs():
    arr = np.array(grace())
    assert len(faces.detect_faces(arr)) == 1
    assert len(faces.detect_faces(torch.from_numpy(arr).permute(2, 0, 1))) == 1


def test_huge_photo_is_downscaled_and_boxes_mapped_back():
    s = 4000 / 600
    big = Image.new("RGB", (6000, 4000), (100, 100, 100))
    big.paste(grace((round(512 * s), 4000)), (1000, 0))
    found = faces.detect_faces(big)
    assert len(found) == 1
    expected = (GRACE_BOX[0] * s + 1000, GRACE_BOX[1] * s, GRACE_BOX[2] * s + 1000, GRACE_BOX[3] * s)
    assert iou(found[0].box, expected) > 0.7
    assert faces.smallest_face(6000, 4000) > 150  # documented: big photos find bigger faces only


def test_face_cut_by_the_border():
    cut = grace().crop((200, 0, 512, 600))  # the left of the face is outside the image
    [fc] = faces.face_crops(cut)
    x0, y0, x1, y1 = fc.face.box
    assert x0 == 0 and x1 <= cut.width  # the box is clipped to the image
    rx0, ry0, rx1, ry1 = fc.region
    assert rx1 - rx0 == ry1 - ry0 and rx0 >= 0 and rx1 <= cut.width and ry0 >= 0 and ry1 <= cut.height
    assert fc.image.shape == (ry1 - ry0, rx1 - rx0, 3)


def test_crop_region_frames_like_the_training_crops():
    region = faces.crop_region((100, 100, 200, 200), 1000, 1000)
    side = region[2] - region[0]
    assert side == region[3] - region[1] == round(faces.CROP_SCALE * 100)
    assert (region[1] + region[3]) / 2 == pytest.approx(150 + faces.CROP_SHIFT[1] * 100, abs=1)
    assert faces.crop_region((0, 0, 300, 300), 200, 400) == (0, 0, 200, 200)  # never larger than the image
    assert faces.looks_like_face_crop(256, 256) and not faces.looks_like_face_crop(1024, 768)
    assert not faces.looks_like_face_crop(512, 256)


def test_missing_extra_names_the_install(monkeypatch, checkpoint, capsys):
    real_import = builtins.__import__

    def no_dlib(name, *args, **kwargs):
        if name == "dlib":
            raise ImportError("No module named 'dlib'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_dlib)
    _detector.cache_clear()
    try:
        with pytest.raises(faces.FacesUnavailableError, match=r"pip install 'dflib\[faces\]'"):
            faces.detect_faces(grace())
        assert not faces.available()
        with pytest.raises(faces.FacesUnavailableError):
            predict_paths(GRACE, checkpoint, faces=True, device="cpu", progress=False)
        assert main(["predict", str(GRACE), "--checkpoint", str(checkpoint), "--faces", "--no-progress"]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "pip install 'dflib[faces]'" in err
    finally:
        monkeypatch.undo()
        _detector.cache_clear()


# --------------------------------------------------------------------------- predict --faces
def test_predict_faces_one_row_per_face_and_no_row_lost(tmp_path, checkpoint):
    group = Image.new("RGB", (512 * 3, 600))
    for k in range(3):
        group.paste(grace(), (512 * k, 0))
    group.save(tmp_path / "group.jpg")
    grace().convert("L").save(tmp_path / "grey.png")
    noise = np.random.default_rng(0).integers(0, 255, (256, 256, 3), dtype=np.uint8)
    Image.fromarray(noise).save(tmp_path / "crop.png")
    Image.new("RGB", (900, 500), (40, 80, 120)).save(tmp_path / "landscape.jpg")
    (tmp_path / "broken.jpg").write_bytes(b"not an image")
    df = predict_paths(tmp_path, checkpoint, faces=True, device="cpu", progress=False)
    assert df.columns.tolist()[: len(COLUMNS) + len(FACE_COLUMNS)] == COLUMNS + FACE_COLUMNS
    by = {
        name: df[df["path"].str.endswith(name)]
        for name in ["group.jpg", "grey.png", "crop.png", "landscape.jpg", "broken.jpg"]
    }
    assert by["group.jpg"]["face"].tolist() == [0, 1, 2] and by["group.jpg"]["p_fake"].notna().all()
    assert by["group.jpg"]["x0"].tolist() == sorted(by["group.jpg"]["x0"].tolist())
    assert len(by["grey.png"]) == 1 and by["grey.png"]["face"].iloc[0] == 0
    crop = by["crop.png"].iloc[0]  # no face, but a tight crop: scored whole
    assert pd.isna(crop["face"]) and np.isfinite(crop["p_fake"]) and "scored whole" in crop["note"]
    land = by["landscape.jpg"].iloc[0]  # no face, not a crop: left unscored, saying why
    assert np.isnan(land["p_fake"]) and pd.isna(land["label"]) and "not scored" in land["note"]
    bad = by["broken.jpg"].iloc[0]
    assert isinstance(bad["error"], str) and np.isnan(bad["p_fake"])
    assert len(df) == 3 + 1 + 1 + 1 + 1


def test_predict_faces_ensemble_and_explain(tmp_path, checkpoint):
    model = create_model("resnet18_w16", img_size=32)
    ens = predict_ensemble(
        GRACE, [checkpoint, (model, _card(model, name="other"))], faces=True, device="cpu", progress=False
    )
    assert len(ens) == 1 and {"p_fake_tiny", "p_fake_other"} <= set(ens.columns)
    assert ens["p_fake"].iloc[0] == pytest.approx((ens["p_fake_tiny"] + ens["p_fake_other"]).iloc[0] / 2)
    df = predict_paths(GRACE, checkpoint, faces=True, explain_dir=tmp_path / "ex", device="cpu", progress=False)
    png = Path(df.attrs["explanations"][str(GRACE)])
    assert png.is_file() and Image.open(png).size[0] > 0


def test_cli_predict_faces_on_grace_hopper_finds_one_face(tmp_path, capsys):
    out = tmp_path / "p.csv"
    shipped = Path(__file__).resolve().parent.parent / "models" / "resnet18_w16.json"
    assert (
        main(
            [
                "predict",
                str(GRACE),
                "--checkpoint",
                str(shipped),
                "--faces",
                "--out",
                str(out),
                "--no-progress",
                "--device",
                "cpu",
            ]
        )
        == 0
    )
    df = pd.read_csv(out)
    assert len(df) == 1 and df["face"].iloc[0] == 0 and 0 <= df["p_fake"].iloc[0] <= 1
    assert iou(df.loc[0, ["x0", "y0", "x1", "y1"]].tolist(), GRACE_BOX) > 0.9
    assert (
        main(["predict", str(GRACE), "--checkpoint", str(shipped), "--faces", "--no-progress", "--device", "cpu"]) == 0
    )
    assert "1 face(s) in 1 image(s)" in capsys.readouterr().out
    tight = tmp_path / "crop.png"  # a table with a face-less row too (empty face and box cells)
    Image.new("RGB", (256, 256), (120, 100, 90)).save(tight)
    assert (
        main(
            [
                "predict",
                str(GRACE),
                str(tight),
                "--checkpoint",
                str(shipped),
                "--faces",
                "--no-progress",
                "--device",
                "cpu",
            ]
        )
        == 0
    )
    text = capsys.readouterr().out
    assert "scored whole" in text and "1 face(s) in 2 image(s)" in text and "1 image(s) without a face" in text


def test_face_options_need_faces(checkpoint, capsys):
    assert main(["predict", str(GRACE), "--checkpoint", str(checkpoint), "--min-face", "20", "--no-progress"]) == 2
    assert "work with --faces" in capsys.readouterr().err


def test_face_boxes_plot():
    from dflib import plots

    fig = plots.face_boxes(grace(), [GRACE_BOX], [0.3], threshold=0.5)
    assert len(fig.axes) == 1


# --------------------------------------------------------------------------- crop-faces
def _photos(root: Path) -> Path:
    for cls, flip in (("Real", False), ("Fake", True)):
        for i in range(5):
            img = grace((int(512 * (0.8 + 0.1 * i)), int(600 * (0.8 + 0.1 * i)))).rotate((i - 2) * 4)
            if flip:
                img = img.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
            (root / cls / ("sub" if i % 2 else "")).mkdir(parents=True, exist_ok=True)
            img.save(root / cls / ("sub" if i % 2 else "") / f"photo{i}.jpg")
        Image.new("RGB", (640, 480), (90, 120, 160)).save(root / cls / "sky.png")
    (root / "Real" / "broken.jpg").write_bytes(b"not an image")
    return root


def test_crop_faces_makes_a_dataset_check_data_accepts(tmp_path, capsys):
    src, out = _photos(tmp_path / "photos"), tmp_path / "out"
    assert (
        main(
            [
                "crop-faces",
                str(src),
                str(out),
                "--split",
                "0.6",
                "0.2",
                "0.2",
                "--seed",
                "1",
                "--workers",
                "2",
                "--no-progress",
            ]
        )
        == 0
    )
    text = capsys.readouterr().out
    assert "10 face crop(s)" in text and "2 without a face" in text and "1 unreadable" in text
    assert main(["check-data", str(out)]) == 0
    manifest = pd.read_csv(out / "manifest.csv")
    assert set(manifest["status"]) == {"ok", "no_face", "unreadable"}
    assert sorted(manifest.loc[manifest["status"] == "no_face", "source"]) == ["Fake/sky.png", "Real/sky.png"]
    ok = manifest[manifest["status"] == "ok"]
    assert all((out / p).is_file() and Image.open(out / p).size == (256, 256) for p in ok["crop"])
    assert set(ok["split"]) == {"Train", "Validation", "Test"}
    assert ok.groupby("source")["split"].nunique().max() == 1  # split by photo, never by crop

    # interrupted run: a crop lost and the journal's last line torn; a re-run completes both
    lost = out / ok["crop"].iloc[0]
    lost.unlink()
    journal = out / ".crop-faces" / "detections.jsonl"
    lines = journal.read_text().splitlines()
    journal.write_text("\n".join(lines[:-1]) + "\n" + lines[-1][: len(lines[-1]) // 2])
    assert main(["crop-faces", str(src), str(out), "--split", "0.6", "0.2", "0.2", "--seed", "1", "--no-progress"]) == 0
    assert "(1 written now)" in capsys.readouterr().out and lost.is_file()
    assert pd.read_csv(out / "manifest.csv").equals(manifest)
    assert main(["crop-faces", str(src), str(out), "--seed", "2", "--no-progress"]) == 2  # other settings
    assert "other settings" in capsys.readouterr().err


def test_crop_faces_keeps_kaggle_splits(tmp_path):
    from dflib.faces.dataset import crop_faces

    src = tmp_path / "kaggle" / "Dataset"
    for split in ("Train", "Test"):
        for cls in ("Real", "Fake"):
            (src / split / cls).mkdir(parents=True)
            grace().save(src / split / cls / f"{split}_{cls}.jpg")
    report = crop_faces(tmp_path / "kaggle", tmp_path / "out", progress=False)
    assert report.counts == {"Train": {"real": 1, "fake": 1}, "Test": {"real": 1, "fake": 1}}
    assert main(["check-data", str(report.dataset)]) == 0
    settings = json.loads((tmp_path / "out" / ".crop-faces" / "settings.json").read_text())
    assert settings["crop_scale"] == faces.CROP_SCALE


def test_crop_faces_clear_errors(tmp_path):
    from dflib.faces.dataset import crop_faces

    with pytest.raises(ValueError, match="Real/"):
        crop_faces(tmp_path, tmp_path / "out", progress=False)
    src = tmp_path / "few"
    (src / "Real").mkdir(parents=True)
    (src / "Fake").mkdir()
    grace().save(src / "Real" / "a.jpg")
    grace().save(src / "Fake" / "b.jpg")
    with pytest.raises(ValueError, match="too few"):
        crop_faces(src, tmp_path / "out2", progress=False)
    with pytest.raises(ValueError, match="add up to 1"):
        crop_faces(src, tmp_path / "out3", split=(0.5, 0.1, 0.1), progress=False)
    (tmp_path / "used").mkdir()
    (tmp_path / "used" / "x.txt").write_text("mine")
    with pytest.raises(ValueError, match="not made by crop-faces"):
        crop_faces(src, tmp_path / "used", progress=False)
