"""Speed and memory of the from-scratch dflib models against their reference implementations.

For every model (dflib preset vs torchvision / pytorchcv with the same configuration and the
same weights) and image size, in one process:

* train img/s: forward + backward + SGD step, batch ``--train-batch`` (default 32), train mode;
* infer img/s: forward under ``torch.no_grad()``, eval mode, batch ``--batch`` (default 32);
* memory of one training step (see below).

Timings are interleaved (dflib, reference, reference, dflib, ...) after a warm-up, so a busy
machine slows both sides alike; each repeat runs for at least ``--min-time`` seconds and the
table shows the median over ``--repeats``; the speed ratio is the median of the per-repeat
ratios (each from two back-to-back measurements). Ratios are dflib / reference: > 1 means
dflib is faster (speed) or needs more memory (memory). ``--clock cpu`` times process CPU time
instead of wall time, which shared machines disturb much less (use it with ``--threads 1``).

Memory, honestly:
* ``act MB``: bytes of the tensors autograd saves for the backward pass in one training step
  (unique storages, parameters excluded). Deterministic: this is the activation memory the
  architecture's implementation needs.
* CPU ``rss MB``: peak resident-set growth during one training step (after a batch-1 warm-up
  step), measured in a fresh subprocess per model: peak RSS (``VmHWM``, reset just before the
  step) minus the RSS just before the step, with glibc's mmap threshold fixed so that RSS
  follows live memory. Includes gradients and library workspaces.
* CUDA ``peak MB``: ``torch.cuda.max_memory_allocated`` during one training step (after the
  same warm-up), minus the memory allocated before it.

    python benchmarks/models_vs_reference.py --quick
    python benchmarks/models_vs_reference.py --models resnet18,vit_tiny_patch16_224 --sizes 128,224 --device cuda
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable

import torch
from torch import nn

from dflib.models import build_reference, create_model, list_models, load_reference_weights

DEFAULT_MODELS = [
    "sqnxt23_w1",
    "sqnxt23v5_w1",
    "sqnxt23_w2",
    "resnet18",
    "resnet34",
    "resnet50",
    "vit_tiny_patch16_224",
    "vit_small_patch16_224",
    "vit_base_patch16_224",
    "vit_face_p8_128",
]
QUICK_MODELS = ["sqnxt23_w1", "resnet18", "vit_tiny_patch16_224", "vit_face_p8_128"]


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def build_pair(name: str, size: int, device: torch.device) -> tuple[nn.Module, nn.Module]:
    """dflib model and reference with the same configuration and the same weights."""
    ours = create_model(name, num_classes=1, img_size=size)
    ref = build_reference(name, num_classes=1, img_size=size)
    load_reference_weights(ours, ref)
    return ours.to(device), ref.to(device)


def make_steps(model: nn.Module, batch: int, size: int, device: torch.device) -> tuple[Callable, Callable]:
    """(train step, inference step) closures for one model, with their own data."""
    x = torch.randn(batch, 3, size, size, device=device)
    y = torch.randint(0, 2, (batch,), device=device).float()
    opt = torch.optim.SGD(model.parameters(), lr=1e-4)
    loss_fn = nn.BCEWithLogitsLoss()

    def train_step() -> None:
        model.train()
        opt.zero_grad(set_to_none=True)
        loss_fn(model(x).reshape(-1), y).backward()  # reference gives (N, 1), dflib (N,)
        opt.step()

    def infer_step() -> None:
        model.eval()
        with torch.no_grad():
            model(x)

    return train_step, infer_step


def time_rate(step: Callable, batch: int, device: torch.device, min_time: float, clock: Callable[[], float]) -> float:
    """Images per second of ``step`` over at least ``min_time`` seconds (at least one call)."""
    calls = 0
    sync(device)
    start = clock()
    while True:
        step()
        calls += 1
        sync(device)
        elapsed = clock() - start
        if elapsed >= min_time:
            return calls * batch / elapsed


def interleaved(
    steps: dict[str, Callable],
    batch: int,
    device: torch.device,
    repeats: int,
    min_time: float,
    clock: Callable[[], float] = time.perf_counter,
) -> tuple[dict[str, float], float]:
    """Median images/s per side and the median of the paired ratios first/second side.

    Sides alternate ABBA, and each repeat's ratio compares two measurements taken back to back,
    so a machine that speeds up or slows down during the run biases neither side.
    """
    for step in steps.values():  # warm-up: kernel selection, allocator, caches
        step()
    first, second = steps
    rates: dict[str, list[float]] = {first: [], second: []}
    for r in range(repeats):
        for k in (first, second) if r % 2 == 0 else (second, first):
            rates[k].append(time_rate(steps[k], batch, device, min_time, clock))
    ratios = [a / b for a, b in zip(rates[first], rates[second])]
    return {k: statistics.median(v) for k, v in rates.items()}, statistics.median(ratios)


def saved_activation_bytes(model: nn.Module, batch: int, size: int, device: torch.device) -> int:
    """Bytes autograd saves for backward in one training forward (unique storages, no parameters)."""
    x = torch.randn(batch, 3, size, size, device=device)
    params = {p.data_ptr() for p in model.parameters()}
    storages: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        s = t.untyped_storage()
        if s.data_ptr() not in params:
            storages[s.data_ptr()] = s.nbytes()
        return t

    model.train()
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = model(x)
    del out
    return sum(storages.values())


def _proc_status_kib(field: str) -> int:
    """``VmRSS`` (resident now) or ``VmHWM`` (peak resident) of this process, in KiB (Linux)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"no {field} in /proc/self/status: the CPU memory measurement needs Linux")


def _reset_peak_rss() -> None:
    """Reset VmHWM to the current RSS (Linux >= 4.0). Not ``ru_maxrss``: that one is inherited
    from the parent process through fork/exec and would report the benchmark's own size."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass


def child_peak_memory(name: str, impl: str, size: int, batch: int, device: str) -> None:
    """Subprocess entry point: print the memory growth (MiB) of one training step."""
    dev = torch.device(device)
    model = (
        create_model(name, num_classes=1, img_size=size)
        if impl == "dflib"
        else build_reference(name, num_classes=1, img_size=size)
    ).to(dev)
    # Warm-up at batch 1 pages in library code and creates thread pools / kernel caches, which
    # would otherwise dominate the RSS growth; its own (small) peak stays below the measured one.
    warm_step, _ = make_steps(model, 1, size, dev)
    warm_step()
    for p in model.parameters():
        p.grad = None  # the measured step allocates its gradients again
    train_step, _ = make_steps(model, batch, size, dev)
    if dev.type == "cuda":
        sync(dev)
        torch.cuda.reset_peak_memory_stats(dev)
        base = torch.cuda.memory_allocated(dev)
        train_step()
        sync(dev)
        print((torch.cuda.max_memory_allocated(dev) - base) / 2**20)
    else:
        _reset_peak_rss()
        base = _proc_status_kib("VmRSS")
        train_step()
        print((_proc_status_kib("VmHWM") - base) / 1024)


def peak_memory(name: str, impl: str, size: int, batch: int, device: torch.device) -> float:
    cmd = [
        sys.executable,
        os.path.abspath(__file__),
        "--_child",
        name,
        impl,
        str(size),
        str(batch),
        str(device),
        str(torch.get_num_threads()),
    ]
    # Fixed glibc mmap threshold: every tensor above 128 KiB gets its own mapping that is returned
    # to the OS when freed, so RSS follows live memory instead of allocator history (+-25 MB noise
    # without it, +-1 MB with it).
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "131072"}
    out = subprocess.run(cmd, capture_output=True, text=True, check=True, env=env)
    return float(out.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default=None, help="comma-separated presets (default: all with a reference)")
    parser.add_argument("--sizes", default=None, help="comma-separated image sizes (default 128,224)")
    parser.add_argument("--repeats", type=int, default=None, help="timed repeats per side (default 5, quick 3)")
    parser.add_argument("--device", default="auto", help="cpu, cuda or auto")
    parser.add_argument("--batch", type=int, default=32, help="inference batch size")
    parser.add_argument("--train-batch", type=int, default=32, help="training batch size")
    parser.add_argument("--min-time", type=float, default=None, help="seconds per timed repeat (default 1, quick 0.3)")
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch intra-op threads (default: torch's choice; 1 is steadier on a shared machine)",
    )
    parser.add_argument(
        "--clock",
        choices=["wall", "cpu"],
        default="wall",
        help="wall: elapsed time (default); cpu: this process's CPU time, steadier on a shared "
        "machine with --threads 1 (with more threads it also counts spin-waiting)",
    )
    parser.add_argument("--no-memory", action="store_true", help="skip the memory measurements")
    parser.add_argument("--quick", action="store_true", help=f"{', '.join(QUICK_MODELS)} at 128 px, 3 repeats")
    args = parser.parse_args(argv)

    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device)
    models = args.models.split(",") if args.models else (QUICK_MODELS if args.quick else DEFAULT_MODELS)
    sizes = [int(s) for s in args.sizes.split(",")] if args.sizes else ([128] if args.quick else [128, 224])
    repeats = args.repeats or (3 if args.quick else 5)
    min_time = args.min_time if args.min_time is not None else (0.3 if args.quick else 1.0)
    if args.clock == "cpu" and device.type == "cuda":
        parser.error("--clock cpu measures CPU time; GPU work needs the wall clock")
    clock = time.process_time if args.clock == "cpu" else time.perf_counter
    unknown = [m for m in models if m not in list_models()]
    if unknown:
        parser.error(f"unknown model(s) {unknown}; choose from {', '.join(list_models())}")

    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(
        f"torch {torch.__version__}, device {device}, threads {torch.get_num_threads()}, "
        f"cpus {os.cpu_count()}, load avg {load:.2f}; batch {args.batch} (infer) / {args.train_batch} (train); "
        f"median of {repeats} interleaved repeats >= {min_time}s each ({args.clock} clock)"
    )
    mem_kind = "peak MB" if device.type == "cuda" else "rss MB"
    header = (
        f"{'model':<22}{'px':>4} | {'train img/s':>17} {'ratio':>5} | {'infer img/s':>17} {'ratio':>5} | "
        f"{'act MB':>15} {'ratio':>5} | {mem_kind:>13} {'ratio':>5}"
    )
    print(header + "\n" + "-" * len(header))
    for name in models:
        for size in sizes:
            torch.manual_seed(0)
            try:
                ours, ref = build_pair(name, size, device)
            except ValueError as err:  # e.g. resnet18_w32: torchvision has no such model
                print(f"{name:<22}{size:>4} | skipped: {err}")
                continue
            t_ours, i_ours = make_steps(ours, args.train_batch, size, device)
            t_ref, i_ref = make_steps(ref, args.train_batch, size, device)
            if args.batch != args.train_batch:
                _, i_ours = make_steps(ours, args.batch, size, device)
                _, i_ref = make_steps(ref, args.batch, size, device)
            train, train_ratio = interleaved(
                {"dflib": t_ours, "ref": t_ref}, args.train_batch, device, repeats, min_time, clock
            )
            infer, infer_ratio = interleaved(
                {"dflib": i_ours, "ref": i_ref}, args.batch, device, repeats, min_time, clock
            )
            row = (
                f"{name:<22}{size:>4} | {train['dflib']:>8.1f} {train['ref']:>8.1f} {train_ratio:>5.2f} | "
                f"{infer['dflib']:>8.1f} {infer['ref']:>8.1f} {infer_ratio:>5.2f} | "
            )
            if args.no_memory:
                row += f"{'-':>15} {'-':>5} | {'-':>13} {'-':>5}"
            else:
                act = [saved_activation_bytes(m, args.train_batch, size, device) / 2**20 for m in (ours, ref)]
                del ours, ref, t_ours, i_ours, t_ref, i_ref
                peak = [peak_memory(name, impl, size, args.train_batch, device) for impl in ("dflib", "ref")]
                row += (
                    f"{act[0]:>7.1f} {act[1]:>7.1f} {act[0] / act[1]:>5.2f} | "
                    f"{peak[0]:>6.0f} {peak[1]:>6.0f} {peak[0] / max(peak[1], 1e-9):>5.2f}"
                )
            print(row, flush=True)
    print(
        "columns: dflib, reference, ratio dflib/reference (speed: median of paired per-repeat ratios). "
        "Speed ratio > 1: dflib faster; memory ratio < 1: dflib leaner."
    )


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--_child":
        _, _, n, impl, s, b, d, threads = sys.argv
        torch.set_num_threads(int(threads))
        child_peak_memory(n, impl, int(s), int(b), d)
    else:
        main()
