"""The training engine on a tiny dataset and a tiny ResNet: layout, card, determinism, exact resume
(also after kill -9), refusals with clear messages, and two processes under torchrun."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import torch
from safetensors.torch import load_file

import dflib
from dflib.checkpoint import CheckpointError, load_resume_state
from dflib.cli import main
from dflib.data import LayoutError
from dflib.data.sampling import BalancedSampler, SeededSampler
from dflib.training import EarlyStopping, fit, warmup_cosine
from tests.conftest import make_dataset

ROOT = Path(__file__).resolve().parent.parent
TINY = dict(model="resnet18", model_options={"width": 4}, img_size=32, batch_size=4, workers=0, progress=False, seed=3)
TIMING = ["train_seconds", "train_images_per_s", "epoch_seconds"]  # the only columns allowed to differ
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    return make_dataset(tmp_path_factory.mktemp("data"), per_class=12)


@pytest.fixture(scope="module")
def reference(data, tmp_path_factory):
    """An uninterrupted 3-epoch run that other tests compare against."""
    return fit(**TINY, data_dir=str(data), epochs=3, out=str(tmp_path_factory.mktemp("ref")), deterministic=True)


def _metrics(history: pd.DataFrame) -> pd.DataFrame:
    return history.drop(columns=TIMING).reset_index(drop=True)


def _same_weights(a: Path, b: Path) -> None:
    ta, tb = load_file(a), load_file(b)
    assert ta.keys() == tb.keys()
    for k in ta:
        assert torch.equal(ta[k], tb[k]), k


# ----------------------------------------------------------------------- units
def test_warmup_cosine_schedule():
    assert warmup_cosine(0, 4, 20) == pytest.approx(0.25)
    assert warmup_cosine(3, 4, 20) == pytest.approx(1.0)
    assert warmup_cosine(4, 4, 20) == pytest.approx(1.0)
    assert warmup_cosine(12, 4, 20, min_ratio=0.0) == pytest.approx(0.5)  # half-way down the cosine
    assert warmup_cosine(20, 4, 20, min_ratio=0.1) == pytest.approx(0.1)
    assert warmup_cosine(0, 0, 10) == pytest.approx(1.0)


def test_early_stopping_counts_bad_epochs_and_breaks_ties_by_loss():
    s = EarlyStopping(patience=2)
    assert s.step(0.8, 0.5, 1) and not s.should_stop
    assert s.step(0.8, 0.4, 2)  # same AUC, lower loss: better
    assert not s.step(0.7, 0.1, 3) and not s.should_stop
    assert not s.step(0.8, 0.4, 4) and s.should_stop
    assert s.best_epoch == 2
    t = EarlyStopping(patience=2)
    t.load_state_dict(s.state_dict())
    assert t == s


def test_samplers_are_seeded_by_epoch_and_shard_across_ranks():
    targets = [0] * 90 + [1] * 10
    ds = list(range(100))
    draw = list(BalancedSampler(ds, targets, seed=1))
    assert len(draw) == 100 and 30 < sum(targets[i] for i in draw) < 70  # fakes drawn ~half the time
    ranks = [list(BalancedSampler(ds, targets, num_replicas=2, rank=r, seed=1)) for r in (0, 1)]
    assert [i for pair in zip(*ranks) for i in pair] == draw
    a = SeededSampler(BalancedSampler(ds, targets, seed=1), seed=7)
    first = list(a)
    a.set_epoch(1)
    second = list(a)
    a.set_epoch(0)
    assert list(a) == first and second != first and len({s for _, s in first}) == 100


# ----------------------------------------------------------------------- in-process runs
def test_run_layout_card_and_result(reference, data):
    r = reference
    out = r.paths.out
    assert sorted(p.name for p in out.iterdir()) == ["resnet18.json", "resnet18.safetensors", "runs"]
    assert sorted(p.name for p in r.paths.run_dir.iterdir()) == [
        "history.csv",
        "history.json",
        "last.json",
        "last.safetensors",
        "resume.pt",
        "train.log",
    ]
    assert list(r.history.epoch) == [1, 2, 3] and r.epochs_trained == 3 and not r.stopped_early
    for col in ("train_loss", "val_loss", "val_accuracy", "val_roc_auc", "val_average_precision", "lr"):
        assert r.history[col].notna().all(), col
    assert r.seconds_per_epoch > 0 and r.images_per_second > 0
    assert json.loads(r.paths.history_json.read_text())[0]["epoch"] == 1
    pd.testing.assert_frame_equal(pd.read_csv(r.paths.history_csv), r.history, check_dtype=False)

    card = json.loads((out / "resnet18.json").read_text())
    assert card["architecture"] == {"name": "resnet18", "num_classes": 1, "img_size": 32, "overrides": {"width": 4}}
    assert card["labels"]["1"] == "fake" and card["labels"]["positive"] == "fake"
    assert card["normalization"]["mean"] == [0.485, 0.456, 0.406]
    assert card["threshold"]["method"] == "youden" and card["threshold"]["value"] == pytest.approx(r.threshold)
    assert card["metrics"]["roc_auc"] == pytest.approx(r.best["val_roc_auc"])
    assert card["training"]["epochs_trained"] == r.best["epoch"]
    assert card["data"]["used"]["Train"] == {"real": 12, "fake": 12} and card["data"]["fingerprint"].startswith(
        "sha256:"
    )
    assert card["versions"]["torch"] == torch.__version__ and card["created_utc"].endswith("+00:00")

    model, card2 = dflib.load_detector(out / "resnet18.safetensors")
    x = torch.randn(3, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(model(x), r.model(x))  # result.model holds the best weights, eval mode


def test_same_seed_same_history_whatever_the_worker_count(reference, data, tmp_path):
    # One loader worker instead of none: per-sample augmentation seeds make it the same run.
    again = fit(**{**TINY, "workers": 1}, data_dir=str(data), epochs=3, out=str(tmp_path), deterministic=True)
    pd.testing.assert_frame_equal(_metrics(again.history), _metrics(reference.history))
    _same_weights(again.paths.last.with_suffix(".safetensors"), reference.paths.last.with_suffix(".safetensors"))


def test_two_stage_augmentation_on_a_device_gives_the_same_run(reference, data, tmp_path, monkeypatch):
    # On an accelerator the engine ships uint8 crops and finishes the augmentation on the device.
    # Forced on the CPU here (no GPU in CI): the same augmentation up to float rounding, so the
    # same training run up to rounding.
    import dflib.data.sampling
    import dflib.training.run
    import dflib.training.steps

    monkeypatch.setattr(dflib.training.run, "augment_on_device", lambda device: True)
    batches = []
    finish = dflib.data.sampling.finish_batch
    monkeypatch.setattr(
        dflib.training.steps, "finish_batch", lambda b, t, d: (batches.append(len(b)), finish(b, t, d))[1]
    )
    staged = fit(**{**TINY, "workers": 1}, data_dir=str(data), epochs=3, out=str(tmp_path), deterministic=True)
    assert batches and set(batches) == {3}  # (uint8 images, labels, params) batches
    pd.testing.assert_frame_equal(_metrics(staged.history), _metrics(reference.history), rtol=1e-3)


def test_resume_after_an_interruption_equals_the_uninterrupted_run(reference, data, tmp_path, monkeypatch):
    from dflib.training.run import TrainingRun

    original = TrainingRun.end_epoch

    def end_epoch_then_crash(self, row, improved):
        original(self, row, improved)
        if row["epoch"] == 2:
            raise KeyboardInterrupt("simulated crash")

    monkeypatch.setattr(TrainingRun, "end_epoch", end_epoch_then_crash)
    with pytest.raises(KeyboardInterrupt):
        fit(**TINY, data_dir=str(data), epochs=3, out=str(tmp_path))
    monkeypatch.setattr(TrainingRun, "end_epoch", original)
    resumed = fit(**TINY, data_dir=str(data), epochs=3, out=str(tmp_path), resume=True)
    pd.testing.assert_frame_equal(_metrics(resumed.history), _metrics(reference.history))
    _same_weights(resumed.paths.last.with_suffix(".safetensors"), reference.paths.last.with_suffix(".safetensors"))
    _same_weights(tmp_path / "resnet18.safetensors", reference.paths.out / "resnet18.safetensors")
    assert "resuming" in resumed.paths.log.read_text()


def test_resume_refuses_other_settings_and_new_runs_refuse_old_ones(reference, data):
    out = str(reference.paths.out)
    with pytest.raises(CheckpointError, match=r"cannot resume .*lr 0.001 -> 0.01.*--overwrite"):
        fit(**TINY, data_dir=str(data), epochs=3, out=out, resume=True, lr=0.01)
    with pytest.raises(CheckpointError, match="already exists.*--resume.*--overwrite"):
        fit(**TINY, data_dir=str(data), epochs=3, out=out)
    finished = fit(**TINY, data_dir=str(data), epochs=3, out=out, resume=True)  # nothing left to do
    pd.testing.assert_frame_equal(finished.history, reference.history)


def test_early_stopping_stops_and_a_stopped_run_stays_stopped(data, tmp_path, monkeypatch):
    import dflib.training.loop as train

    flat = {
        "val_loss": 0.69,
        "val_accuracy": 0.5,
        "val_roc_auc": 0.5,
        "val_average_precision": 0.5,
        "val_threshold": 0.5,
        "val_balanced_accuracy": 0.5,
    }
    monkeypatch.setattr(train, "validate", lambda *a, **k: dict(flat))
    r = fit(**TINY, data_dir=str(data), epochs=6, patience=2, out=str(tmp_path))
    assert r.stopped_early and r.epochs_trained == 3 and r.best["epoch"] == 1
    again = fit(**TINY, data_dir=str(data), epochs=6, patience=2, out=str(tmp_path), resume=True)
    assert again.epochs_trained == 3 and again.stopped_early


def test_class_imbalance_is_weighted_and_reported(tmp_path):
    ds = make_dataset(tmp_path / "d", per_class=8)
    for p in sorted((ds / "Train" / "Fake").iterdir())[:4]:
        p.unlink()  # Train: 8 real, 4 fake
    r = fit(**TINY, data_dir=str(ds), epochs=1, out=str(tmp_path / "o"))
    card = json.loads((tmp_path / "o" / "resnet18.json").read_text())
    assert card["training"]["pos_weight"] == pytest.approx(2.0) and "pos_weight 2" in card["training"]["loss"]
    assert "pos_weight 2.000" in r.paths.log.read_text()
    s = fit(**TINY, data_dir=str(ds), epochs=1, out=str(tmp_path / "s"), imbalance="sampler")
    assert json.loads((tmp_path / "s" / "resnet18.json").read_text())["training"]["pos_weight"] == 1.0
    assert s.epochs_trained == 1


def test_missing_validation_split_is_a_clear_error(tmp_path, capsys):
    ds = make_dataset(tmp_path / "d", splits=("Train", "Test"), per_class=2)
    with pytest.raises(LayoutError, match="no Validation split.*create .*Validation/\\{Real,Fake\\}"):
        fit(**TINY, data_dir=str(ds), epochs=1, out=str(tmp_path / "o"))
    assert main(["train", "--model", "resnet18", "--data", str(ds), "--out", str(tmp_path / "o2")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "no Validation split" in err and err.count("\n") == 1


def test_unwritable_output_is_refused_before_anything_else(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    # The data folder does not even exist: the output folder is checked first.
    with pytest.raises(CheckpointError, match="cannot write to output folder"):
        fit(**TINY, data_dir=str(tmp_path / "no-such-data"), out=str(blocker / "models"))


def test_bad_settings_are_clear_errors(data, tmp_path):
    with pytest.raises(ValueError, match="batch_size=0 is invalid"):
        fit(**{**TINY, "batch_size": 0}, data_dir=str(data), out=str(tmp_path))
    with pytest.raises(ValueError, match="fewer than one batch of 64; lower --batch-size"):
        fit(**{**TINY, "batch_size": 64}, data_dir=str(data), out=str(tmp_path))
    with pytest.raises(ValueError, match="unknown model 'resnet99'"):
        fit(**{**TINY, "model": "resnet99"}, data_dir=str(data), out=str(tmp_path / "x"))
    with pytest.raises(ValueError, match="threads=0 is invalid"):
        fit(**TINY, threads=0, data_dir=str(data), out=str(tmp_path))


def test_device_and_precision_choices():
    from dflib.runtime import amp_dtype, cpu_threads, select_device

    cpu = torch.device("cpu")
    assert select_device("auto").type in ("cuda", "mps", "cpu") and select_device("cpu") == cpu
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available here; use --device auto or cpu"):
            select_device("cuda")
    assert amp_dtype("auto", cpu) is None and amp_dtype("off", cpu) is None
    assert amp_dtype("bf16", cpu) == torch.bfloat16
    with pytest.raises(ValueError, match="needs a GPU"):
        amp_dtype("fp16", cpu)
    assert 1 <= cpu_threads(workers=99) <= torch.get_num_threads()


def test_cpu_bf16_channels_last_and_sgd_run(data, tmp_path):
    r = fit(
        **TINY,
        data_dir=str(data),
        epochs=1,
        out=str(tmp_path),
        amp="bf16",
        channels_last=True,
        optimizer="sgd",
        label_smoothing=0.1,
        grad_clip=None,
    )
    card = json.loads((tmp_path / "resnet18.json").read_text())
    assert card["training"]["amp"] == "bfloat16" and math.isfinite(r.history.train_loss[0])


# ----------------------------------------------------------------------- separate processes
def _train_cmd(data: Path, out: Path, *extra: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "dflib",
        "train",
        "--model",
        "resnet18",
        "--model-arg",
        "width=4",
        "--img-size",
        "32",
        "--data",
        str(data),
        "--out",
        str(out),
        "--epochs",
        "3",
        "--batch-size",
        "2",
        "--workers",
        "0",
        "--seed",
        "5",
        "--no-progress",
        *extra,
    ]


def test_kill_9_mid_epoch_then_resume_matches_uninterrupted(data, tmp_path):
    # The uninterrupted reference, in this process through the Python API: the CLI must agree with it.
    ref = fit(**{**TINY, "batch_size": 2, "seed": 5}, data_dir=str(data), epochs=3, out=str(tmp_path / "ref"))
    out = tmp_path / "killed"
    victim = subprocess.Popen(_train_cmd(data, out), env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    resume_pt = out / "runs" / "resnet18" / "resume.pt"
    deadline = time.monotonic() + 120
    while not resume_pt.exists() and victim.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    assert victim.poll() is None, "the run ended before it could be killed"
    victim.send_signal(signal.SIGKILL)  # during epoch 2 (12 steps): the first checkpoint exists
    victim.wait()

    # Whatever is on disk after the kill is whole: every checkpoint loads.
    state = load_resume_state(resume_pt)
    assert 1 <= state["epoch"] < 3
    for weights in out.rglob("*.safetensors"):
        dflib.load_detector(weights)

    done = subprocess.run(_train_cmd(data, out, "--resume"), env=ENV, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert not list(out.rglob("*.tmp"))
    resumed = pd.read_csv(out / "runs" / "resnet18" / "history.csv")
    pd.testing.assert_frame_equal(_metrics(resumed), _metrics(ref.history), check_dtype=False)
    _same_weights(ref.paths.last.with_suffix(".safetensors"), out / "runs" / "resnet18" / "last.safetensors")
    _same_weights(ref.paths.out / "resnet18.safetensors", out / "resnet18.safetensors")


def test_torchrun_two_cpu_processes_write_one_checkpoint(data, tmp_path):
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        "2",
        "-m",
        "dflib",
        *_train_cmd(data, tmp_path)[3:],
    ]
    cmd[cmd.index("--epochs") + 1] = "1"
    cmd[cmd.index("--batch-size") + 1] = "4"
    done = subprocess.run(cmd, env=ENV, capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*.safetensors")) == [
        "resnet18.safetensors",
        "runs/resnet18/last.safetensors",
    ]
    card = json.loads((tmp_path / "resnet18.json").read_text())
    assert card["training"]["world_size"] == 2 and card["training"]["epochs_trained"] == 1
    log = (tmp_path / "runs" / "resnet18" / "train.log").read_text()
    assert log.count("epoch 1/1") == 1 and "2 process(es)" in log  # rank 0 alone writes
    history = pd.read_csv(tmp_path / "runs" / "resnet18" / "history.csv")
    assert len(history) == 1 and history.train_images[0] == 24  # 2 ranks x 3 batches x 4 images
    assert math.isfinite(history.val_roc_auc[0])


def test_fit_and_score_scores_the_saved_best_checkpoint(data, tmp_path):
    from dflib.training import fit_and_score

    result, scores = fit_and_score("Validation", **TINY, data_dir=str(data), epochs=2, out=str(tmp_path))
    card = json.loads(result.paths.best.with_suffix(".json").read_text())
    # the saved checkpoint, re-read from disk and scored again, gives what training measured on Validation
    assert scores["roc_auc"] == pytest.approx(card["metrics"]["roc_auc"], abs=1e-6)
    assert scores["split"] == "Validation" and scores["n_files"] == card["metrics"]["images"]
