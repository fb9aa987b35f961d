"""Bad input never yields a wrong number or lost work (issue 11): one test per case, bad files built here."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from dflib.checkpoint import load_detector, save_detector
from dflib.cli import main
from dflib.data import DeepfakeDataset, discover, eval_transform, quick_check
from dflib.data.scan import scan_files
from dflib.models import create_model
from dflib.runtime import RunLockError, acquire_run_lock, release_run_lock
from tests.badfiles import BAD_REASONS, corrupt_body, huge_header, jpeg_bytes, write_bad
from tests.conftest import make_dataset, write_image
from tests.test_predict import _card

TRAIN = [
    "train",
    "--model",
    "resnet18",
    "--model-arg",
    "width=4",
    "--img-size",
    "32",
    "--epochs",
    "1",
    "--batch-size",
    "4",
    "--workers",
    "0",
    "--no-progress",
    "--seed",
    "1",
]


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def detector(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    model = create_model("resnet18", img_size=32, width=4)
    return save_detector(model, tmp_path_factory.mktemp("det") / "tiny", _card(model))[1]


def leftovers(folder: Path) -> list[Path]:
    """Half-written or stale files: temporary files, locks, partial folders."""
    return [p for p in folder.rglob("*") if p.name.endswith(".tmp") or p.name == "lock" or ".partial-" in p.name]


# 1 ------------------------------------------------------------------------------------------------
def test_1_evaluate_scores_only_images_that_were_read(tmp_path, detector, capsys):
    data = make_dataset(tmp_path, splits=("Test",), per_class=10)
    real = data / "Test" / "Real"
    (real / "bad_corrupt.jpg").write_bytes(corrupt_body(jpeg_bytes(1)))  # passes the quick check
    (real / "bad_huge.jpg").write_bytes(huge_header(jpeg_bytes(2)))
    out = tmp_path / "res" / "eval.json"
    assert (
        main(
            [
                "evaluate",
                "--checkpoint",
                str(detector),
                "--data",
                str(data),
                "--json",
                str(out),
                "--workers",
                "0",
                "--no-progress",
            ]
        )
        == 0
    )
    printed = capsys.readouterr()
    result = json.loads(out.read_text())
    assert (result["n"], result["n_real"], result["n_fake"]) == (20, 10, 10)
    assert result["n_files"] == 22 and result["skipped"]["count"] == 2
    assert result["skipped"]["by_class"] == {"real": 2, "fake": 0}
    reasons = {Path(f["path"]).name: f["reason"] for f in result["skipped"]["files"]}
    assert "corrupt or truncated" in reasons["bad_corrupt.jpg"] and "pixels exceeds" in reasons["bad_huge.jpg"]
    assert '"n_real": 10' in printed.out and "2 unreadable image(s) left out (real 2)" in printed.err


def test_1_validation_skips_instead_of_substituting(tmp_path):
    from dflib.data.dataset import make_scoring_loader
    from dflib.evaluation.scoring import score_loader

    data = make_dataset(tmp_path, splits=("Validation",), per_class=3)
    ds = DeepfakeDataset(data, "Validation", eval_transform(32), check="none")
    victim = ds.samples[1][0]
    victim.write_bytes(corrupt_body(victim.read_bytes()))
    out = score_loader(
        torch.nn.Sequential(torch.nn.Flatten(), torch.nn.LazyLinear(1)), make_scoring_loader(ds, 4, num_workers=0)
    )
    assert len(out.labels) == 5 and out.labels.tolist() == [0, 0, 1, 1, 1]
    assert out.index.tolist() == [0, 2, 3, 4, 5] and out.skipped[0][:2] == (1, 0)


def test_1_scored_split_rows_stay_aligned_with_the_dataset(tmp_path):
    from dflib.evaluation.scoring import score_split

    data = make_dataset(tmp_path, splits=("Test",), per_class=3)
    victim = data / "Test" / "Real" / "real_1.jpg"
    victim.write_bytes(corrupt_body(victim.read_bytes()))
    model = create_model("resnet18", img_size=32, width=4).eval()
    with pytest.warns(UserWarning, match="1 unreadable image"):
        scored = score_split(model, _card(model), data, "Test", batch_size=4)
    assert len(scored.labels) == len(scored.dataset) == 5 and victim not in scored.paths
    assert scored.skipped["count"] == 1 and scored.dataset.targets == scored.labels.tolist()


# 2 ------------------------------------------------------------------------------------------------
def test_2_train_refuses_a_class_without_a_readable_image(tmp_path, capsys):
    data = make_dataset(tmp_path / "d", splits=("Train", "Validation"), per_class=4)
    for f in (data / "Train" / "Fake").iterdir():
        f.write_bytes(b"")
    out = tmp_path / "models"
    assert main([*TRAIN, "--data", str(data), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "Train split" in err and "no readable images of class fake" in err and "zero-byte file" in err
    assert "Traceback" not in err
    assert not (out / "resnet18.safetensors").exists() and not (out / "runs").exists()


# 3 ------------------------------------------------------------------------------------------------
def test_3_jpeg_with_trailing_bytes_is_read_everywhere(tmp_path):
    data = make_dataset(tmp_path, splits=("Test",), per_class=2)
    f = data / "Test" / "Real" / "padded.jpg"
    f.write_bytes(jpeg_bytes(5) + b"\x00" * 3000 + b"trailer")
    assert quick_check(f) is None
    assert f in DeepfakeDataset(data, "Test", check="quick").paths
    assert f in DeepfakeDataset(data, "Test", check="full").paths


# 4 ------------------------------------------------------------------------------------------------
def test_4_check_data_decodes_every_image_and_lists_reasons(tmp_path, capsys):
    data = make_dataset(tmp_path, splits=("Train", "Test"), per_class=3)
    write_bad(data / "Test" / "Fake", ["zero", "text", "truncated", "corrupt", "huge"])
    assert main(["check-data", str(data), "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "5 unreadable" in out and "fake       3 readable (5 unreadable)" in out
    for kind in ("zero", "text", "truncated", "corrupt", "huge"):
        assert BAD_REASONS[kind] in out
    assert main(["check-data", str(data), "--quick", "--no-progress"]) == 0
    assert "4 unreadable" in capsys.readouterr().out  # the corrupt body needs decoding
    for f in (data / "Test" / "Real").iterdir():
        f.write_bytes(b"not a jpeg")
    assert main(["check-data", str(data), "--no-progress"]) == 1
    assert "no readable image in Test/real" in capsys.readouterr().err


def test_4_scan_in_worker_processes_equals_in_process(tmp_path):
    paths = [write_image(tmp_path / f"{i}.jpg", i, size=16) for i in range(70)]
    paths[3].write_bytes(b"")
    paths[40].write_bytes(corrupt_body(jpeg_bytes(4)))
    alone = scan_files(paths, "full", workers=0)
    assert scan_files(paths, "full", workers=2) == alone
    assert [i for i, (r, _) in enumerate(alone) if r] == [3, 40]


# 5 ------------------------------------------------------------------------------------------------
def test_5_one_run_per_folder_and_stale_locks_are_taken_over(tmp_path, capsys):
    folder = tmp_path / "runs" / "x"
    folder.mkdir(parents=True)
    (folder / "lock").write_text(
        json.dumps({"pid": os.getppid(), "host": __import__("socket").gethostname(), "started_utc": "now"})
    )
    with pytest.raises(RunLockError, match="in use by another training run"):
        acquire_run_lock(folder)
    data = make_dataset(tmp_path / "d", splits=("Train", "Validation"), per_class=4)
    assert main([*TRAIN, "--data", str(data), "--out", str(tmp_path), "--name", "x"]) == 2
    assert "in use by another training run" in capsys.readouterr().err
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (folder / "lock").write_text(json.dumps({"pid": dead.pid, "host": __import__("socket").gethostname()}))
    messages = []
    lock = acquire_run_lock(folder, log=messages.append)
    assert "taking over the stale lock" in messages[0] and json.loads(lock.read_text())["pid"] == os.getpid()
    release_run_lock(lock)
    assert not lock.exists()
    assert main([*TRAIN, "--data", str(data), "--out", str(tmp_path), "--name", "x"]) == 0
    assert not (folder / "lock").exists() and (tmp_path / "x.safetensors").is_file()


# 6, 7 ---------------------------------------------------------------------------------------------
@pytest.mark.timeout(60) if hasattr(pytest.mark, "timeout") else (lambda f: f)
def test_6_7_predict_globs_never_follow_folder_links_and_never_block(tmp_path, detector):
    from dflib.predict import predict_paths

    root = tmp_path / "photos"
    write_image(root / "a.jpg", 1)
    write_image(root / "sub" / "b.jpg", 2)
    os.symlink(".", root / "self")
    os.symlink("..", root / "sub" / "up")
    write_bad(root / "bad", ["fifo", "loop", "device"])
    df = predict_paths([f"{root}/**/*.jpg"], detector, device="cpu", progress=False)
    names = sorted(Path(p).name for p in df["path"])
    assert names == ["a.jpg", "b.jpg", "fifo.jpg", "loop.jpg", "zero-device.jpg"]
    errors = dict(zip((Path(p).name for p in df["path"]), df["error"]))
    assert "FIFO" in errors["fifo.jpg"] and "symbolic link loop" in errors["loop.jpg"]
    assert "character device" in errors["zero-device.jpg"] and df["p_fake"].notna().sum() == 2
    one = predict_paths([root / "bad" / "fifo.jpg"], detector, device="cpu", progress=False)
    assert "FIFO" in one["error"][0]


# 8 ------------------------------------------------------------------------------------------------
def test_8_evaluate_json_path_is_checked_before_scoring_and_results_survive_a_failed_write(
    tmp_path, detector, capsys, monkeypatch
):
    data = make_dataset(tmp_path, splits=("Test",), per_class=2)
    blocker = tmp_path / "file.txt"
    blocker.write_text("x")
    base = ["evaluate", "--checkpoint", str(detector), "--data", str(data), "--workers", "0", "--no-progress"]
    for bad, why in ((tmp_path, "is a folder"), (blocker / "r.json", "is a file, not a folder"), ("", "is a folder")):
        assert main([*base, "--json", str(bad)]) == 2
        cap = capsys.readouterr()
        assert why in cap.err and '"roc_auc"' not in cap.out
    import dflib.checkpoint as ckpt

    def fail(*_a, **_k):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(ckpt, "atomic_write_text", fail)
    assert main([*base, "--json", str(tmp_path / "r.json")]) == 2
    cap = capsys.readouterr()
    assert '"roc_auc"' in cap.out and "No space left on device" in cap.err and "printed above" in cap.err


# 9, 10 --------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "args, message",
    [
        (["--img-size", "100000"], "img_size=100000 is invalid (--img-size 100000"),
        (["--img-size", "8"], "from 16 to 1024"),
        (["--model-arg", "width=100000"], "parameters, more than"),
        (["--name", "a/b"], "contains a path separator"),
        (["--name", "../../x"], "contains a path separator"),
        (["--name", ".."], "relative folder reference"),
        (["--out", ""], "out='' is invalid"),
        (["--weight-decay", "-0.1"], "--weight-decay -0.1"),
        (["--patience", "-1"], "--patience 0 (patience=None)"),
        (["--workers", "-1"], "--workers -1"),
    ],
)
def test_9_10_16_bad_settings_stop_before_anything_is_written(tmp_path, capsys, args, message):
    data = make_dataset(tmp_path / "d", splits=("Train", "Validation"), per_class=2)
    out = tmp_path / "out"
    cmd = [a for a in TRAIN if a not in ("--workers", "0")] if "--workers" in args else TRAIN
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        assert main([*cmd, "--data", str(data), "--out", str(out), *args]) == 2
    finally:
        os.chdir(cwd)
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert not out.exists() or not any(out.rglob("*"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d"]  # nothing outside --out either


def test_9_card_sizes_are_bounded(tmp_path):
    from dflib.card import CardError, ModelCard

    model = create_model("resnet18", img_size=32, width=4)
    card = _card(model)
    for size in (100000, 0, 8):
        with pytest.raises(CardError, match="from 16 to 1024"):
            ModelCard.from_dict({**card, "img_size": size}, source="edited.json")
    with pytest.raises(ValueError, match="parameters, more than"):
        from dflib.models import create_model_from_config

        create_model_from_config({**model.config, "overrides": {"width": 100000}})


# 11 -----------------------------------------------------------------------------------------------
def test_11_an_edited_json_card_never_changes_what_the_weights_get(tmp_path):
    model = create_model("resnet18", img_size=32, width=4)
    weights, card_path = save_detector(model, tmp_path / "m", _card(model))
    doc = json.loads(card_path.read_text())
    doc["img_size"] = 64
    doc["normalization"]["mean"] = [0.0, 0.0, 0.0]
    doc["threshold"]["value"] = 0.7  # not a property of the weights: an edit here is honoured
    card_path.write_text(json.dumps(doc))
    with pytest.warns(UserWarning, match="was edited and no longer describes m.safetensors.*img_size 64"):
        _, card = load_detector(card_path)
    assert card.img_size == 32 and card.mean != (0.0, 0.0, 0.0) and card.threshold == 0.7


# 12 -----------------------------------------------------------------------------------------------
def test_12_validation_left_with_one_class_stops_before_epoch_1_and_keeps_the_old_run(tmp_path, capsys):
    data = make_dataset(tmp_path / "d", splits=("Train", "Validation"), per_class=4)
    out = tmp_path / "models"
    assert main([*TRAIN, "--data", str(data), "--out", str(out)]) == 0
    run = out / "runs" / "resnet18"
    before = {p.name: p.read_bytes() for p in run.iterdir()}
    for f in (data / "Validation" / "Fake").iterdir():
        f.write_bytes(corrupt_body(f.read_bytes()))  # passes the quick check: only decoding finds it
    capsys.readouterr()
    assert main([*TRAIN, "--data", str(data), "--out", str(out), "--overwrite"]) == 2
    err = capsys.readouterr().err
    assert "Validation split" in err and "no readable images of class fake" in err and "epoch 1" not in err
    assert {p.name: p.read_bytes() for p in run.iterdir()} == before and not leftovers(out)


# 13 -----------------------------------------------------------------------------------------------
def test_13_images_in_sub_folders_are_included_and_reported(tmp_path, capsys):
    data = make_dataset(tmp_path, splits=("Test",), per_class=2)
    write_image(data / "Test" / "Real" / "batch2" / "x.jpg", 9)
    write_image(data / "Test" / "Real" / ".hidden" / "y.jpg", 10)
    layout = discover(data)
    assert layout.counts()["Test"] == {"real": 3, "fake": 2} and layout["Test"].nested == {0: 1, 1: 0}
    assert main(["check-data", str(data), "--no-progress"]) == 0
    assert "[1 in sub-folders, included]" in capsys.readouterr().out


# 14 -----------------------------------------------------------------------------------------------
def test_14_smoke_run_without_out_never_touches_the_committed_notebooks(tmp_path, monkeypatch, capsys):
    import dflib.notebook_runner as nr

    seen = {}

    def fake_run(only, **kwargs):
        seen.update(kwargs)
        return []

    monkeypatch.setattr(nr, "run_notebooks", fake_run)
    books = tmp_path / "notebooks"
    books.mkdir()
    assert main(["run-notebooks", "--smoke", "--dir", str(books)]) == 0
    assert Path(seen["out_dir"]) == tmp_path.resolve() / "runs" / "smoke"
    assert "committed notebooks are left as they are" in capsys.readouterr().out

    def interrupted(only, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(nr, "run_notebooks", interrupted)
    assert main(["run-notebooks", "--dir", str(books)]) == 130
    err = capsys.readouterr().err
    assert "interrupted" in err and "Traceback" not in err


# 15 -----------------------------------------------------------------------------------------------
def test_15_resume_with_another_thread_count_warns(tmp_path, capsys):
    data = make_dataset(tmp_path / "d", splits=("Train", "Validation"), per_class=4)
    out = tmp_path / "m"
    assert main([*TRAIN, "--data", str(data), "--out", str(out), "--threads", "1"]) == 0
    capsys.readouterr()
    cmd = [a if a != "1" or i != TRAIN.index("--epochs") + 1 else "2" for i, a in enumerate(TRAIN)]
    assert main([*cmd, "--data", str(data), "--out", str(out), "--threads", "2", "--resume"]) == 0
    log = (out / "runs" / "resnet18" / "train.log").read_text()
    assert "resuming with 2 compute thread(s), the run used 1" in log and "--threads 1" in log


# 16 -----------------------------------------------------------------------------------------------
def test_16_checkpoint_messages_name_the_card_and_the_format(tmp_path, detector, capsys):
    model = create_model("resnet18", img_size=32, width=4)
    _, card_path = save_detector(model, tmp_path / "m", _card(model))
    doc = json.loads(card_path.read_text())
    doc["threshold"]["value"] = 1.5
    card_path.write_text(json.dumps(doc))
    write_image(tmp_path / "img.jpg", 1)
    assert main(["predict", str(tmp_path), "--checkpoint", str(card_path), "--no-progress"]) == 2
    assert f"{card_path}: threshold 1.5 is not a probability" in capsys.readouterr().err
    pt = tmp_path / "old.pt"
    torch.save({"w": torch.zeros(1)}, pt)
    for cmd in (["predict", str(tmp_path)], ["evaluate", "--data", str(tmp_path)]):
        assert main([*cmd, "--checkpoint", str(pt)]) == 2
        assert "unsupported format (.pt)" in capsys.readouterr().err


def test_16_evaluate_and_predict_name_the_flags(tmp_path, detector, capsys):
    data = make_dataset(tmp_path, splits=("Test",), per_class=2)
    assert main(["predict", str(data), "--checkpoint", str(detector), "--workers", "-1"]) == 2
    assert "--workers -1 is invalid" in capsys.readouterr().err
    assert main(["evaluate", "--checkpoint", str(detector), "--data", str(data), "--workers", "-1"]) == 2
    assert "(--workers N, num_workers=N)" in capsys.readouterr().err
    assert main(["evaluate", "--checkpoint", str(detector), "--data", str(data), "--batch-size", "0"]) == 2
    assert "batch_size must be >= 1 (--batch-size B" in capsys.readouterr().err


def test_16_killed_sample_generation_leaves_no_partial_folder_for_ever(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)  # `--out ''` once meant the current folder
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    host = __import__("socket").gethostname()
    stale = tmp_path / f".Dataset.partial-{host}-{dead.pid}-abcd1234"
    alive = tmp_path / f".Dataset.partial-{host}-{os.getpid()}-abcd1234"
    (stale / "Train").mkdir(parents=True)
    alive.mkdir()
    assert main(["sample-data", "--out", str(tmp_path), "--per-class", "4", "--size", "32"]) == 0
    assert not stale.exists() and alive.exists() and (tmp_path / "Dataset" / "Train").is_dir()
    assert "removed 1 partial folder" in capsys.readouterr().err
    assert main(["sample-data", "--out", str(tmp_path), "--per-class", "4", "--size", "32"]) == 2
    assert "pass --overwrite" in capsys.readouterr().err
    assert main(["sample-data", "--out", "", "--per-class", "4"]) == 2


# the sweep ----------------------------------------------------------------------------------------
def test_sweep_every_bad_kind_through_every_command(tmp_path, capsys):
    """A dataset with one file of every bad kind in every class of every split: check-data, train,
    evaluate and predict each run to the end, count every skip with its reason and leave nothing half-written."""
    data = make_dataset(tmp_path / "d", per_class=6)
    for split in ("Train", "Validation", "Test"):
        for cls in ("Real", "Fake"):
            write_bad(data / split / cls)
    n_bad = len(BAD_REASONS)

    assert main(["check-data", str(data), "--no-progress", "--max-listed", "100"]) == 0
    out = capsys.readouterr().out
    assert f"{6 * n_bad} unreadable" in out
    for reason in BAD_REASONS.values():
        assert out.count(reason) >= 6, reason

    models = tmp_path / "models"
    assert main([*TRAIN, "--data", str(data), "--out", str(models)]) == 0
    card = json.loads((models / "resnet18.json").read_text())
    skipped = card["data"]["skipped"]
    assert skipped["Train"]["count"] == 2 * n_bad  # both splits are decoded in full before epoch 1
    assert skipped["Validation"]["count"] == 2 * n_bad
    assert card["data"]["used"]["Validation"] == {"real": 6, "fake": 6}
    assert card["data"]["used"]["Train"] == {"real": 6, "fake": 6}  # no unreadable image is ever trained on
    log = (models / "runs" / "resnet18" / "train.log").read_text()
    assert f"Validation: {2 * n_bad} unreadable image(s) left out" in log
    capsys.readouterr()

    result_path = tmp_path / "eval.json"
    assert (
        main(
            [
                "evaluate",
                "--checkpoint",
                str(models / "resnet18.json"),
                "--data",
                str(data),
                "--json",
                str(result_path),
                "--workers",
                "0",
                "--no-progress",
            ]
        )
        == 0
    )
    result = json.loads(result_path.read_text())
    assert (result["n"], result["n_real"], result["n_fake"]) == (12, 6, 6)
    assert result["skipped"]["count"] == 2 * n_bad and result["skipped"]["by_class"] == {"real": n_bad, "fake": n_bad}
    assert f"{2 * n_bad} unreadable image(s) left out" in capsys.readouterr().err

    os.symlink(".", data / "Test" / "self")
    csv = tmp_path / "pred.csv"
    assert (
        main(
            [
                "predict",
                f"{data}/Test/**/*.jpg",
                "--checkpoint",
                str(models / "resnet18.json"),
                "--out",
                str(csv),
                "--no-progress",
            ]
        )
        == 0
    )
    printed = capsys.readouterr().out
    assert f"{12 + 2 * n_bad} image(s) -> {csv} ({2 * n_bad} unreadable, see the error column)" in printed
    import pandas as pd

    rows = pd.read_csv(csv)
    assert len(rows) == 12 + 2 * n_bad and rows["error"].notna().sum() == 2 * n_bad
    assert not leftovers(tmp_path)


def test_train_decodes_train_in_full_unless_asked_for_a_quick_check(tmp_path):
    """A Train file whose body is corrupt is left out and counted before epoch 1 (default), or, with
    --data-check quick, met mid-epoch and replaced (warned, not counted)."""
    data = make_dataset(tmp_path / "d", per_class=6)
    (data / "Train" / "Fake" / "body.jpg").write_bytes(corrupt_body(jpeg_bytes(7)))
    full = tmp_path / "full"
    assert main([*TRAIN, "--data", str(data), "--out", str(full)]) == 0
    card = json.loads((full / "resnet18.json").read_text())
    assert card["data"]["skipped"]["Train"]["count"] == 1
    assert card["data"]["used"]["Train"] == {"real": 6, "fake": 6}
    assert card["training"]["config"]["data_check"] == "full"
    quick = tmp_path / "quick"
    with pytest.warns(UserWarning, match="body.jpg: corrupt or truncated image"):
        assert main([*TRAIN, "--data", str(data), "--out", str(quick), "--data-check", "quick", "--workers", "0"]) == 0
    card = json.loads((quick / "resnet18.json").read_text())
    assert card["data"]["skipped"]["Train"]["count"] == 0 and card["data"]["used"]["Train"]["fake"] == 7
