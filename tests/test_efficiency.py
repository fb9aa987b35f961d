"""dflib.evaluation.efficiency: the live efficiency table (parameters, MACs, latency, throughput, memory, file size)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from dflib.checkpoint import save_detector
from dflib.evaluation.efficiency import (
    MIB,
    TensorMemoryTracker,
    efficiency_table,
    forward_peak_bytes,
    time_forward,
    weights_bytes,
)
from dflib.models import count_macs, count_parameters, create_model


def test_tracker_peak_equals_hand_count():
    # Linear(100 -> 400) then ReLU (not in place): two (64, 400) float32 tensors alive at once,
    # then the first is freed and a (64, 10) output remains.
    model = nn.Sequential(nn.Linear(100, 400), nn.ReLU(), nn.Linear(400, 10)).eval()
    x = torch.randn(64, 100)
    with torch.inference_mode(), TensorMemoryTracker() as mem:
        out = model(x)
    assert mem.peak == 2 * 64 * 400 * 4
    assert mem.live == 64 * 10 * 4 == out.numel() * 4


def test_tracker_ignores_views_and_preexisting_tensors():
    x = torch.randn(1000)
    with TensorMemoryTracker() as mem:
        v = x.view(10, 100)  # a view of a tensor that existed before: no new storage
        y = v * 2  # one new tensor of 1000 floats
        z = y.reshape(100, 10)  # a view of y: counted once
    assert mem.peak == 1000 * 4 and z.shape == (100, 10)


def test_weights_bytes_counts_parameters_and_buffers():
    model = nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8))
    # conv 8*3*3*3 + 8, BN weight+bias 16, running mean+var 16 (float32), num_batches_tracked 1 (int64)
    assert weights_bytes(model) == (8 * 27 + 8 + 16 + 16) * 4 + 8


def test_forward_peak_includes_weights():
    model = create_model("resnet18_w16", img_size=32).eval()
    peak = forward_peak_bytes(model, 32, batch=4)
    assert peak > weights_bytes(model)
    # Bigger batches need more activation memory.
    assert forward_peak_bytes(model, 32, batch=8) > peak


def test_time_forward_runs_and_rejects_bad_counts():
    model = nn.Linear(3 * 8 * 8, 1)
    flat = nn.Sequential(nn.Flatten(), model)
    times = time_forward(flat, 8, batch=2, runs=4, warmup=1)
    assert len(times) == 4 and all(t > 0 for t in times)
    with pytest.raises(ValueError, match="runs"):
        time_forward(flat, 8, runs=0)


def test_efficiency_table(tmp_path):
    torch.manual_seed(0)
    a = create_model("resnet18_w16", img_size=32)
    b = create_model("sqnxt23_w1", img_size=32)
    weights, _ = save_detector(a, tmp_path / "a", {"name": "a", "architecture": a.config, "img_size": 32})
    a.train()
    df = efficiency_table(
        {"a": a, "b": b},
        {"a": 32, "b": 32},
        checkpoints={"a": tmp_path / "a.json"},
        batch=4,
        latency_runs=3,
        throughput_runs=1,
        warmup=1,
        progress=False,
    )
    assert list(df.index) == ["a", "b"]
    assert {
        "img_size",
        "parameters",
        "macs",
        "latency_ms",
        "images_per_s",
        "peak_memory_mib",
        "weights_mib",
        "checkpoint_mib",
    } <= set(df.columns)
    assert df.loc["a", "parameters"] == count_parameters(a) and df.loc["b", "macs"] == count_macs(b, 32)
    assert df.loc["a", "checkpoint_mib"] == pytest.approx(weights.stat().st_size / MIB)
    assert df["checkpoint_mib"].isna().tolist() == [False, True]  # no file given for b
    assert (df["latency_ms"] > 0).all() and (df["images_per_s"] > 0).all()
    assert (df["peak_memory_mib"] > df["weights_mib"]).all()
    assert a.training, "the model's train/eval mode is restored"
    assert df.attrs["device"] == "cpu" and df.attrs["batch"] == 4 and "TorchDispatchMode" in df.attrs["memory_method"]


def test_efficiency_table_bad_inputs():
    model = create_model("resnet18_w16", img_size=32)
    with pytest.raises(ValueError, match="at least one model"):
        efficiency_table({}, 32)
    with pytest.raises(ValueError, match="img_size has no entry"):
        efficiency_table({"a": model}, {"b": 32}, progress=False)
    with pytest.raises(ValueError, match="batch"):
        efficiency_table({"a": model}, 32, batch=0, progress=False)
