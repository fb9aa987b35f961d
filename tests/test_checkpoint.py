"""Checkpoints: atomic writes, round trips, and a clear error for every way loading can go wrong."""

from __future__ import annotations

import json
import os
import warnings

import pytest
import torch

import dflib
from dflib.checkpoint import (
    CheckpointError,
    atomic_write_bytes,
    check_writable,
    clean_temp_files,
    data_fingerprint,
    detector_paths,
    load_detector,
    load_resume_state,
    load_weights,
    read_card,
    save_detector,
    save_resume_state,
)
from dflib.cli import main
from dflib.models import create_model
from tests.conftest import make_dataset


def _tiny(img_size=32, width=4, name="resnet18"):
    torch.manual_seed(0)
    return create_model(name, img_size=img_size, width=width)


def _card(model):
    return {
        "format": "dflib-detector/1",
        "name": "tiny",
        "architecture": model.config,
        "img_size": model.config["img_size"],
        "threshold": {"value": 0.42, "method": "youden"},
    }


@pytest.fixture
def saved(tmp_path):
    model = _tiny()
    save_detector(model, tmp_path / "tiny", _card(model))
    return model, tmp_path / "tiny"


# ----------------------------------------------------------------------- atomic writes
def test_atomic_write_replaces_whole_file(tmp_path):
    target = tmp_path / "f.bin"
    atomic_write_bytes(target, b"old")
    atomic_write_bytes(target, b"new content")
    assert target.read_bytes() == b"new content"
    assert [p.name for p in tmp_path.iterdir()] == ["f.bin"]


def test_a_crash_during_the_write_leaves_the_old_file(tmp_path, monkeypatch):
    target = tmp_path / "f.bin"
    atomic_write_bytes(target, b"old")

    def crash(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", crash)
    with pytest.raises(OSError, match="No space"):
        atomic_write_bytes(target, b"x" * 10_000)
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["f.bin"]  # the temporary file is gone


def test_stale_temp_files_are_cleaned(tmp_path):
    (tmp_path / ".best.safetensors.1a2b3c4d.tmp").write_bytes(b"half")
    (tmp_path / "keep.json").write_text("{}")
    assert clean_temp_files(tmp_path) == 1
    assert [p.name for p in tmp_path.iterdir()] == ["keep.json"]


# ----------------------------------------------------------------------- round trips
@pytest.mark.parametrize("which", ["tiny.safetensors", "tiny.json", "tiny"])
def test_load_detector_from_either_file(saved, which):
    model, stem = saved
    loaded, card = dflib.load_detector(stem.parent / which)
    assert not loaded.training and card["threshold"]["value"] == 0.42
    assert card["weights"]["sha256"] and card["weights"]["parameters"] == sum(p.numel() for p in model.parameters())
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(loaded(x), model.eval()(x))


def test_weights_file_alone_is_enough(saved):
    _, stem = saved
    weights, card_path = detector_paths(stem)
    card_path.unlink()
    model, card = load_detector(weights)
    assert card["architecture"]["overrides"] == {"width": 4} and "weights" not in card


def test_stale_json_card_is_reported_and_ignored(saved, tmp_path):
    model, stem = saved
    other = _tiny()
    for p in other.parameters():
        p.data.add_(1.0)
    stale_card = json.loads(detector_paths(stem)[1].read_text())
    save_detector(other, stem, {**_card(other), "threshold": {"value": 0.9}})
    detector_paths(stem)[1].write_text(json.dumps(stale_card))  # old card next to new weights
    with pytest.warns(UserWarning, match="stale"):
        _, card = load_detector(stem)
    assert card["threshold"]["value"] == 0.9  # the embedded card, which matches the weights


def test_resume_state_round_trip_is_weights_only(tmp_path):
    state = {"epoch": 3, "model": {"w": torch.arange(4.0)}, "history": [{"loss": 0.5}], "betas": (0.9, 0.99)}
    path = save_resume_state(tmp_path / "resume.pt", state)
    back = load_resume_state(path)
    assert back["epoch"] == 3 and torch.equal(back["model"]["w"], torch.arange(4.0))


# ----------------------------------------------------------------------- clear errors
def test_other_architecture_is_a_clear_error(saved):
    _, stem = saved
    vit = create_model("vit_face_p8_128", img_size=32, depth=1)
    with pytest.raises(
        CheckpointError, match=r"holds resnet18 at 32 px.*but the model is vit_face_p8_128.*load_detector"
    ):
        load_weights(vit, stem.with_suffix(".safetensors"))
    wider = _tiny(width=8)
    with pytest.raises(CheckpointError, match="width=4.*width=8"):
        load_weights(wider, stem)


def test_other_input_size_is_a_clear_error(saved):
    _, stem = saved
    with pytest.raises(CheckpointError, match="resnet18 at 32 px.*resnet18 at 64 px"):
        load_weights(_tiny(img_size=64), stem)


def test_shape_mismatch_without_config_is_a_clear_error(saved):
    _, stem = saved
    model = _tiny(width=8)
    model.config = {"name": None}  # a hand-built model: only the shapes can be compared
    with pytest.raises(CheckpointError, match="does not fit this model"):
        load_weights(model, stem)


def test_missing_checkpoint_is_a_clear_error(tmp_path):
    with pytest.raises(CheckpointError, match="do not exist; check the path"):
        load_detector(tmp_path / "nothing.json")


@pytest.mark.parametrize("damage", ["truncate", "garbage"])
def test_corrupt_checkpoint_is_a_clear_error(saved, damage):
    _, stem = saved
    weights, card = detector_paths(stem)
    data = weights.read_bytes()
    weights.write_bytes(data[: len(data) // 2] if damage == "truncate" else os.urandom(len(data)))
    card.unlink()
    with pytest.raises(CheckpointError, match="corrupt or truncated"):
        load_detector(weights)


def test_corrupt_resume_state_is_a_clear_error(tmp_path):
    path = tmp_path / "resume.pt"
    save_resume_state(path, {"epoch": 1, "w": torch.zeros(1000)})
    path.write_bytes(path.read_bytes()[:500])
    with pytest.raises(CheckpointError, match="unreadable.*--overwrite"):
        load_resume_state(path)


class Evil:
    def __reduce__(self):
        return (print, ("this would run on load",))


def test_resume_state_never_unpickles_objects(tmp_path):
    path = tmp_path / "resume.pt"
    torch.save({"epoch": 1, "payload": Evil()}, path)
    with pytest.raises(CheckpointError, match="unreadable"):
        load_resume_state(path)


def test_unwritable_output_folder_is_a_clear_error(tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    with pytest.raises(CheckpointError, match="cannot write to output folder .*--out"):
        check_writable(blocker / "models")


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root can write anywhere")
def test_read_only_folder_is_a_clear_error(tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        with pytest.raises(CheckpointError, match="cannot write to output folder"):
            check_writable(ro)
    finally:
        ro.chmod(0o700)


def test_cli_evaluate_missing_checkpoint_is_one_line(tmp_path, capsys):
    assert main(["evaluate", "--checkpoint", str(tmp_path / "x.safetensors"), "--data", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: checkpoint weights") and err.count("\n") == 1


def test_cli_evaluate_writes_json(saved, tmp_path, capsys):
    _, stem = saved
    data = make_dataset(tmp_path / "data", splits=("Test",), per_class=3)
    out = tmp_path / "eval.json"
    assert (
        main(
            [
                "evaluate",
                "--checkpoint",
                str(stem) + ".json",
                "--data",
                str(data),
                "--workers",
                "0",
                "--json",
                str(out),
                "--no-progress",
            ]
        )
        == 0
    )
    result = json.loads(out.read_text())
    assert result["n"] == 6 and result["threshold"] == 0.42 and result["split"] == "Test"
    for key in ("roc_auc", "accuracy", "average_precision", "accuracy_at_threshold"):
        assert 0.0 <= result[key] <= 1.0


def test_data_fingerprint_changes_with_the_files(tmp_path):
    ds = make_dataset(tmp_path, splits=("Train",), per_class=2)
    files = sorted(ds.rglob("*.jpg"))
    a = data_fingerprint(files, ds)
    assert a == data_fingerprint(list(reversed(files)), ds) and a.startswith("sha256:")
    with open(files[0], "ab") as f:
        f.write(b"\0")
    assert data_fingerprint(files, ds) != a


def test_read_card_prefers_the_json(saved):
    _, stem = saved
    assert read_card(stem.with_suffix(".safetensors"))["weights"]["file"] == "tiny.safetensors"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        load_detector(stem)  # a consistent pair loads without warnings


def test_annotate_detector_updates_both_cards_and_keeps_weights(saved):
    from dflib.checkpoint import annotate_detector, detector_paths, read_card

    model, path = saved
    before = {k: v.clone() for k, v in model.state_dict().items()}
    card = annotate_detector(path, test_metrics={"split": "Test", "roc_auc": 0.97, "n": 0})
    weights, card_path = detector_paths(path)
    assert card["test_metrics"] == {"split": "Test", "roc_auc": 0.97, "n": 0}
    assert card["weights"]["parameters"] == sum(p.numel() for p in model.parameters())
    card_path.unlink()  # the copy embedded in the weights was rewritten too
    assert read_card(weights)["test_metrics"]["roc_auc"] == 0.97
    loaded, _ = dflib.load_detector(weights)
    assert all(torch.equal(before[k], v) for k, v in loaded.state_dict().items())
    with pytest.raises(ValueError, match="cannot change 'img_size'"):
        annotate_detector(weights, img_size=64)
