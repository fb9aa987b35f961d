"""Where and how a training run executes: device, processes (torchrun), precision, random seeds.

Nothing here knows about detectors; :mod:`dflib.train` calls these helpers so its loop stays
about training.

* ``select_device("auto")``: CUDA, then Apple MPS, then CPU.
* ``init_distributed()``: under ``torchrun`` (``RANK``/``WORLD_SIZE``/``LOCAL_RANK`` set) start
  the process group (NCCL on CUDA, Gloo on CPU); otherwise a one-process stand-in.
* ``amp_dtype(...)``: the autocast dtype that helps on this device, or ``None``.
* ``derive_seed``, ``seed_everything``, ``rng_state``, ``deterministic_mode``: reproducibility.
  The engine re-seeds every epoch from ``(seed, epoch, rank)``, so an epoch's randomness does
  not depend on what ran before it; that is what makes a resumed run end with the same weights.
"""

from __future__ import annotations

import json
import os
import random
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist

AMP_CHOICES = ("auto", "off", "bf16", "fp16")


def select_device(device: str | torch.device = "auto") -> torch.device:
    """``"auto"`` picks CUDA, then MPS, then CPU; anything else is checked and returned."""
    if isinstance(device, torch.device):
        return device
    name = (device or "auto").strip().lower()
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        dev = torch.device(name)
    except RuntimeError as e:
        raise ValueError(f"unknown device {device!r}; use auto, cpu, cuda, cuda:N or mps") from e
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} asked for, but CUDA is not available here; use --device auto or cpu")
    if dev.type == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise ValueError(f"device {device!r} asked for, but MPS is not available here; use --device auto or cpu")
    return dev


@dataclass(frozen=True)
class DistInfo:
    """This process's place in the run: ``rank`` of ``world_size`` (``local_rank`` on its node)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    launched: bool = False  # started by torchrun (even with one process: the process group is used)

    @property
    def enabled(self) -> bool:
        return self.launched or self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Only the main process (rank 0) writes checkpoints, history and logs."""
        return self.rank == 0


def dist_from_env() -> DistInfo:
    """Read torchrun's environment; without it, a single process."""
    env = os.environ
    if "WORLD_SIZE" not in env or "RANK" not in env:
        return DistInfo()
    return DistInfo(int(env["RANK"]), int(env["WORLD_SIZE"]), int(env.get("LOCAL_RANK", 0)), launched=True)


def init_distributed(device: str | torch.device = "auto") -> tuple[DistInfo, torch.device]:
    """Start the process group when launched by torchrun; return (DistInfo, this rank's device)."""
    info = dist_from_env()
    dev = select_device(device)
    if not info.enabled:
        return info, dev
    if dev.type == "cuda":
        dev = torch.device("cuda", info.local_rank)
        torch.cuda.set_device(dev)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if dev.type == "cuda" else "gloo")
    return info, dev


def backend() -> str:
    """The process group's backend (``nccl``, ``gloo``), or ``"none"`` outside torchrun."""
    return str(dist.get_backend()) if dist.is_available() and dist.is_initialized() else "none"


def available_cores() -> int:
    """CPU cores this process may run on (respects CPU affinity / container limits where visible)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def cpu_threads(workers: int, processes: int = 1) -> int:
    """Compute threads for CPU training: the cores left after the loader workers, never more than now.

    Oversubscription is costly: when a loader process takes a core that one of torch's threads
    was using, the other threads wait for it at every parallel region. On 2 cores with 1 loader
    worker, 1 compute thread trains several times faster than 2.
    """
    free = available_cores() // max(1, processes) - workers
    return max(1, min(torch.get_num_threads(), free))


def cleanup_distributed(wait: bool = True) -> None:
    """Wait for every rank (unless failing), then leave the process group (no-op without one)."""
    if dist.is_available() and dist.is_initialized():
        try:
            if wait:
                dist.barrier()
        finally:
            dist.destroy_process_group()


def barrier() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.barrier()


def all_reduce_sum(values: list[float], device: torch.device) -> list[float]:
    """Sum a few numbers over all ranks (identity in a single process)."""
    if not (dist.is_available() and dist.is_initialized()):
        return list(values)
    t = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return t.tolist()


def all_gather_cat(tensor: torch.Tensor) -> torch.Tensor:
    """Concatenate a CPU tensor from every rank (ranks may hold different lengths)."""
    if not (dist.is_available() and dist.is_initialized()):
        return tensor
    parts: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(parts, tensor.cpu())
    return torch.cat(parts)


def amp_dtype(amp: str | bool, device: torch.device) -> torch.dtype | None:
    """The autocast dtype for ``amp`` on ``device``, or ``None`` for full float32.

    ``"auto"``: bf16 on CUDA GPUs that support it (no loss scaling needed), else fp16 with a
    GradScaler; off on CPU and MPS, where it rarely speeds up small convnets. ``"bf16"`` /
    ``"fp16"`` force a dtype (CPU accepts bf16 only); ``"off"`` disables.
    """
    choice = {True: "auto", False: "off", None: "off"}.get(amp, amp)  # type: ignore[arg-type]
    if choice not in AMP_CHOICES:
        raise ValueError(f"amp must be one of {AMP_CHOICES}, got {amp!r}")
    if choice == "off":
        return None
    if choice == "auto":
        if device.type != "cuda":
            return None
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if choice == "fp16" and device.type == "cpu":
        raise ValueError("amp='fp16' needs a GPU; on the CPU use amp='bf16' or 'off'")
    return torch.bfloat16 if choice == "bf16" else torch.float16


def derive_seed(*parts: int) -> int:
    """A well-mixed 63-bit seed from integers, e.g. ``derive_seed(seed, epoch, rank)``."""
    state = np.random.SeedSequence([int(p) for p in parts]).generate_state(2, dtype=np.uint32)
    return int(state[0]) << 31 ^ int(state[1])


def seed_everything(seed: int) -> None:
    """Seed Python's, NumPy's and torch's global generators (all devices)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


@contextmanager
def deterministic_mode(enabled: bool = True) -> Iterator[None]:
    """Within the block, ask torch for deterministic kernels (no cuDNN autotuning); restore after.

    On the CPU, dflib's training is already reproducible run to run; this matters on GPUs, where
    some kernels (atomics, autotuned convolutions) otherwise differ between runs.
    """
    if not enabled:
        yield
        return
    before = (
        torch.are_deterministic_algorithms_enabled(),
        torch.is_deterministic_algorithms_warn_only_enabled(),
        torch.backends.cudnn.deterministic,
        torch.backends.cudnn.benchmark,
    )
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(True, warn_only=True)
    torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = True, False
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(before[0], warn_only=before[1])
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = before[2], before[3]


def rng_state() -> dict[str, Any]:
    """Every global generator's state, as tensors/lists only (``torch.load(weights_only=True)``-safe)."""
    py = random.getstate()
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    state: dict[str, Any] = {
        "python": {"version": py[0], "state": list(py[1]), "gauss": py[2]},
        "numpy": {
            "kind": kind,
            "keys": torch.from_numpy(keys.astype(np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "gauss": float(gauss),
        },
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what :func:`rng_state` returned."""
    py = state["python"]
    random.setstate((py["version"], tuple(py["state"]), py["gauss"]))
    n = state["numpy"]
    np.random.set_state((n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["gauss"]))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(state["cuda"])


# --------------------------------------------------------------------------- processes on this host
def host_name() -> str:
    """This machine's name, as written into lock files and temporary folder names."""
    import socket

    return socket.gethostname() or "localhost"


def pid_alive(pid: int) -> bool:
    """Whether a process with id ``pid`` runs on this host (a zombie or another user's counts as alive)."""
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except OSError:
        return False
    return True


class RunLockError(ValueError):
    """A run folder is in use by another process (the message names it and the way out)."""


LOCK_NAME = "lock"


def acquire_run_lock(folder: str | os.PathLike, log=print) -> Path:
    """Take ``<folder>/lock`` (pid, host and start time inside) for this process, or raise :class:`RunLockError`.

    Two runs into one folder would overwrite each other's checkpoints; the second one stops here
    instead. A lock left by a process of this host that no longer runs (killed, crashed) is taken
    over, with a message; one from another host cannot be checked, so the message says how to
    remove it.
    """
    from datetime import datetime, timezone

    path = Path(folder) / LOCK_NAME
    mine = {
        "pid": os.getpid(),
        "host": host_name(),
        "started_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    for _ in range(3):
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            try:
                held = json.loads(path.read_text(encoding="utf-8"))
                pid, host = int(held["pid"]), str(held["host"])
            except (OSError, ValueError, KeyError, TypeError):
                held, pid, host = {}, -1, mine["host"]  # unreadable: a writer killed mid-write
            if host != mine["host"]:
                raise RunLockError(
                    f"{path.parent} is in use by process {pid} on host {host} (since {held.get('started_utc')}); "
                    f"wait for that run to end or choose another --name or --out (if it is gone, delete {path})"
                ) from None
            if pid_alive(pid) and pid != os.getpid():
                raise RunLockError(
                    f"{path.parent} is in use by another training run (process {pid} on this host, since "
                    f"{held.get('started_utc')}); wait for it to end, or choose another --name or --out"
                ) from None
            log(f"taking over the stale lock {path} (process {pid} on this host no longer runs)")
            path.unlink(missing_ok=True)
            continue
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(json.dumps(mine) + "\n")
        return path
    raise RunLockError(f"could not take the lock {path} (another run keeps taking it); choose another --name")


def release_run_lock(path: str | os.PathLike | None) -> None:
    """Remove a lock taken by :func:`acquire_run_lock` (only if this process still holds it)."""
    if path is None:
        return
    path = Path(path)
    try:
        if int(json.loads(path.read_text(encoding="utf-8")).get("pid", -1)) == os.getpid():
            path.unlink(missing_ok=True)
    except (OSError, ValueError, TypeError, AttributeError):
        pass


PROGRESS_ENV = "DFLIB_PROGRESS"


def progress_shown() -> bool:
    """Whether dflib draws progress bars: yes unless ``DFLIB_PROGRESS`` is 0/off/false/no.

    ``dflib run-notebooks`` (``make run``, the tests) sets it to 0 for the kernels it starts: in a
    headless run a bar is not seen by anyone, and a notebook widget saved in the outputs shows as
    a frozen "0%|" outside a live JupyterLab. Set it yourself when you run ``papermill`` directly.
    """
    return os.environ.get(PROGRESS_ENV, "1").strip().lower() not in {"0", "off", "false", "no"}


def progress_bar(iterable: Any = None, *, disable: bool = False, **kwargs: Any):
    """A ``tqdm.auto`` bar (a widget in Jupyter, text in a terminal), off when ``disable`` is true
    or :func:`progress_shown` says no. Every bar dflib draws is made here."""
    from tqdm.auto import tqdm

    return tqdm(iterable, disable=disable or not progress_shown(), **kwargs)
