"""What does a detector cost to run? Parameters, MACs, latency, throughput, memory, file size — measured live.

Accuracy is half of the choice of a detector; the other half is whether it runs where it must
(a phone, a browser plug-in, a server scanning millions of uploads). :func:`efficiency_table`
measures, on this machine and for each model:

* **parameters** and **MACs** of one image at the model's input size (:mod:`dflib.models.analysis`);
* **latency** at batch 1: the median of several timed forward passes after warm-up runs (the
  median resists the odd slow run caused by other programs);
* **throughput** at batch 32: images per second of the median batch;
* **peak memory** of a batch-32 forward pass: the weights plus the peak of the tensors the pass
  creates. On CUDA this is ``torch.cuda.max_memory_allocated``; on the CPU, where PyTorch keeps
  no allocator statistics, :class:`TensorMemoryTracker` (a ``TorchDispatchMode``) sees every
  operator's output tensor and when it is freed. Scratch buffers that a kernel allocates and
  frees inside one operator are not seen; Python and library overhead is not counted;
* **checkpoint size** on disk (the ``.safetensors`` file).

Timings depend on the machine, the thread count and what else runs on it: compare models
measured side by side in one run, never numbers from different machines.

    >>> efficiency_table({"resnet": model}, img_size=128, checkpoints={"resnet": "models/resnet18_w16.json"})
"""

from __future__ import annotations

import os
import statistics
import time
import weakref
from collections.abc import Mapping

import pandas as pd
import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

from dflib.runtime import progress_bar

MIB = 2**20

__all__ = [
    "TensorMemoryTracker",
    "weights_bytes",
    "forward_peak_bytes",
    "time_forward",
    "efficiency_table",
    "MEMORY_METHOD",
]


class TensorMemoryTracker(TorchDispatchMode):
    """Track the bytes of live tensors created while the mode is active; ``peak`` is the high-water mark.

    Every operator's output storage is counted once and subtracted when PyTorch frees it (a
    finalizer on the storage). Outputs that alias an input (views, in-place results) are not new
    memory, and tensors that existed before (the weights, the input) are not counted.

        >>> with torch.inference_mode(), TensorMemoryTracker() as mem:
        ...     model(x)
        >>> mem.peak / 2**20        # MiB
    """

    def __init__(self) -> None:
        super().__init__()
        self.live = 0
        self.peak = 0
        self._sizes: dict[int, int] = {}

    def _free(self, key: int, nbytes: int) -> None:
        if self._sizes.pop(key, None) is not None:
            self.live -= nbytes

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        inputs = {
            t.untyped_storage().data_ptr()
            for t in tree_flatten((args, kwargs))[0]
            if isinstance(t, torch.Tensor) and t.device.type != "meta"
        }
        for t in tree_flatten(out)[0]:
            if not isinstance(t, torch.Tensor) or t.device.type == "meta":
                continue
            storage = t.untyped_storage()
            key, nbytes = storage.data_ptr(), storage.nbytes()
            if nbytes == 0 or key in self._sizes or key in inputs:  # views and in-place results alias an input
                continue
            self._sizes[key] = nbytes
            self.live += nbytes
            self.peak = max(self.peak, self.live)
            weakref.finalize(storage, self._free, key, nbytes)
        return out


def weights_bytes(model: nn.Module) -> int:
    """Bytes of the parameters and buffers (what the weights occupy in memory)."""
    tensors = list(model.parameters()) + list(model.buffers())
    return int(sum(t.numel() * t.element_size() for t in tensors))


MEMORY_METHOD = {
    "cpu": "weights + peak of the tensors one forward pass creates (TensorMemoryTracker, a TorchDispatchMode)",
    "cuda": "torch.cuda.max_memory_allocated during one forward pass (weights included)",
}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


def _input(model: nn.Module, img_size: int, batch: int, device: torch.device) -> torch.Tensor:
    gen = torch.Generator().manual_seed(0)
    return torch.randn(batch, 3, img_size, img_size, generator=gen).to(device)


@torch.inference_mode()
def forward_peak_bytes(model: nn.Module, img_size: int, batch: int = 32) -> int:
    """Peak memory (bytes) of one ``batch x 3 x img_size x img_size`` forward pass, weights included.

    CUDA: the allocator's high-water mark. CPU and others: :func:`weights_bytes` plus the peak
    of :class:`TensorMemoryTracker`.
    """
    device = next(model.parameters()).device
    x = _input(model, img_size, batch, device)
    if device.type == "cuda":
        _sync(device)
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device) - x.numel() * x.element_size()
        model(x)
        _sync(device)
        return int(torch.cuda.max_memory_allocated(device) - base + weights_bytes(model))
    with TensorMemoryTracker() as mem:
        model(x)
    return weights_bytes(model) + mem.peak


@torch.inference_mode()
def time_forward(model: nn.Module, img_size: int, batch: int = 1, runs: int = 20, warmup: int = 3) -> list[float]:
    """Seconds of ``runs`` forward passes on a random ``batch``, after ``warmup`` untimed ones."""
    if runs < 1 or warmup < 0:
        raise ValueError(f"runs must be >= 1 and warmup >= 0, got runs={runs!r}, warmup={warmup!r}")
    device = next(model.parameters()).device
    x = _input(model, img_size, batch, device)
    for _ in range(warmup):
        model(x)
    times = []
    for _ in range(runs):
        _sync(device)
        start = time.perf_counter()
        model(x)
        _sync(device)
        times.append(time.perf_counter() - start)
    return times


def _file_size(path: str | os.PathLike | None) -> float:
    if path is None:
        return float("nan")
    from dflib.checkpoint import detector_paths

    weights, _ = detector_paths(path)
    return weights.stat().st_size / MIB if weights.is_file() else float("nan")


def efficiency_table(
    models: Mapping[str, nn.Module],
    img_size: int | Mapping[str, int],
    *,
    checkpoints: Mapping[str, str | os.PathLike] | None = None,
    batch: int = 32,
    latency_runs: int = 20,
    throughput_runs: int = 5,
    warmup: int = 3,
    progress: bool = True,
) -> pd.DataFrame:
    """One row per model: size, cost and speed measured now, on the device the model sits on.

    ``img_size`` is one size or one per model (the card's ``img_size``); ``checkpoints`` maps
    a model to its saved file (either file of the pair) for the on-disk size. Columns:
    ``img_size, parameters, macs (per image), latency_ms`` (median at batch 1),
    ``latency_ms_min``, ``images_per_s`` (at ``batch``), ``peak_memory_mib`` (a forward pass
    at ``batch``, weights included), ``weights_mib``, ``checkpoint_mib``. ``df.attrs`` records
    the device, the threads and how memory was measured.
    """

    from dflib.models import count_macs, count_parameters

    if not models:
        raise ValueError("efficiency_table needs at least one model: pass {name: model}")
    if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
        raise ValueError(f"batch must be a positive integer (e.g. 32), got {batch!r}")
    sizes = {n: img_size for n in models} if isinstance(img_size, int) else dict(img_size)
    missing = [n for n in models if n not in sizes]
    if missing:
        raise ValueError(f"img_size has no entry for model(s) {missing}; give one size or one per model")
    rows = {}
    device = torch.device("cpu")
    for name, model in progress_bar(models.items(), desc="efficiency", disable=not progress, leave=False):
        size = int(sizes[name])
        was_training = model.training
        model.eval()
        try:
            device = next(model.parameters()).device
            one = time_forward(model, size, 1, latency_runs, warmup)
            many = time_forward(model, size, batch, throughput_runs, min(warmup, 1))
            peak = forward_peak_bytes(model, size, batch)
            rows[name] = {
                "img_size": size,
                "parameters": count_parameters(model),
                "macs": count_macs(model, size),
                "latency_ms": 1000 * statistics.median(one),
                "latency_ms_min": 1000 * min(one),
                "images_per_s": batch / statistics.median(many),
                "peak_memory_mib": peak / MIB,
                "weights_mib": weights_bytes(model) / MIB,
                "checkpoint_mib": _file_size((checkpoints or {}).get(name)),
            }
        finally:
            model.train(was_training)
    df = pd.DataFrame(rows).T
    df.index.name = "model"
    for col in ("img_size", "parameters", "macs"):
        df[col] = df[col].astype("int64")
    df.attrs.update(
        device=str(device),
        threads=torch.get_num_threads(),
        batch=batch,
        latency_runs=latency_runs,
        throughput_runs=throughput_runs,
        memory_method=MEMORY_METHOD["cuda" if device.type == "cuda" else "cpu"],
    )
    return df
