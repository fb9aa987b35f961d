"""Every setting of a training run, where its files go, and what it returns: the leaf of ``dflib.training``.

Nothing here trains; :mod:`dflib.training.steps` (one epoch, validation, schedule, optimizer,
early stopping), :mod:`dflib.training.run` (setup and bookkeeping) and
:mod:`dflib.training.loop` (the epoch loop) build on it. The ``dflib train`` options are
generated from :class:`TrainConfig`'s fields (:mod:`dflib.cli`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
from torch import nn

from dflib.runtime import AMP_CHOICES

IMBALANCE_CHOICES = ("pos_weight", "sampler", "none")
OPTIMIZER_CHOICES = ("adamw", "sgd")
# Settings that must not change when a run is resumed (epochs may grow: training goes on).
RESUME_KEYS = ("model", "model_options", "img_size", "batch_size", "lr", "weight_decay", "optimizer",
               "momentum", "warmup_epochs", "min_lr_ratio", "grad_clip", "label_smoothing",
               "imbalance", "augment", "limit_per_class", "seed")


@dataclass
class TrainConfig:
    """Every setting of a run. All values are JSON-friendly; they are saved in the card."""

    model: str = "resnet18"              # a name of dflib.models.list_models()
    model_options: dict[str, Any] = field(default_factory=dict)  # create_model overrides, e.g. width=32
    data_dir: str = ""                   # Dataset folder; empty = the embedded synthetic sample
    img_size: int | None = None          # None = the model preset's size
    epochs: int = 10
    batch_size: int = 64
    lr: float = 1e-3                     # peak learning rate (after warm-up)
    weight_decay: float = 0.05           # AdamW decay on weights (never on norms and biases)
    optimizer: str = "adamw"             # "adamw" or "sgd" (Nesterov momentum)
    momentum: float = 0.9                # SGD only
    warmup_epochs: float = 1.0           # linear warm-up (capped at a fifth of the run)
    min_lr_ratio: float = 0.01           # the cosine ends at lr * min_lr_ratio
    grad_clip: float | None = 1.0        # max gradient L2 norm; None = no clipping
    label_smoothing: float = 0.0         # targets become 0 + eps/2 and 1 - eps/2
    imbalance: str = "pos_weight"        # pos_weight (loss weight = n_real / n_fake), sampler, none
    augment: bool | dict = True          # True = default AugmentConfig, dict = its fields, False = none
    patience: int | None = 5             # early stopping: epochs without a better val ROC-AUC
    limit_per_class: int | None = None   # use at most this many images per class (Train and Validation)
    seed: int = 0
    deterministic: bool = False          # torch.use_deterministic_algorithms (matters on GPUs)
    device: str = "auto"                 # auto = cuda, then mps, then cpu
    amp: str = "auto"                    # auto (bf16/fp16 on CUDA, off elsewhere), off, bf16, fp16
    channels_last: bool = False          # NHWC memory layout (faster convolutions on recent GPUs)
    compile: bool = False                # torch.compile the model
    workers: int | None = None           # loader processes; None = one per spare core
    threads: int | None = None           # CPU compute threads; None = the cores the workers leave free
    out: str = "models"
    name: str | None = None              # file stem; None = the model name
    resume: bool = False                 # continue <out>/runs/<name>/resume.pt if it exists
    overwrite: bool = False              # start again even if a run with this name exists
    progress: bool = True                # tqdm progress bars

    def check(self) -> None:
        """Reject bad values with a message that names the setting."""
        def bad(name: str, fix: str) -> ValueError:
            return ValueError(f"{name}={getattr(self, name)!r} is invalid; {fix}")

        for name in ("epochs", "batch_size"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise bad(name, "use an integer >= 1")
        if not self.lr > 0:
            raise bad("lr", "use a positive learning rate, e.g. 1e-3")
        if self.optimizer not in OPTIMIZER_CHOICES:
            raise bad("optimizer", f"use one of {OPTIMIZER_CHOICES}")
        if self.imbalance not in IMBALANCE_CHOICES:
            raise bad("imbalance", f"use one of {IMBALANCE_CHOICES}")
        if not 0 <= self.label_smoothing < 1:
            raise bad("label_smoothing", "use a value in [0, 1), e.g. 0.1")
        if self.threads is not None and (not isinstance(self.threads, int) or self.threads < 1):
            raise bad("threads", "use an integer >= 1, or None to choose from the free cores")
        if self.patience is not None and self.patience < 1:
            raise bad("patience", "use an integer >= 1, or None for no early stopping")
        if self.grad_clip is not None and not self.grad_clip > 0:
            raise bad("grad_clip", "use a positive max norm, or None")
        if self.warmup_epochs < 0 or not 0 <= self.min_lr_ratio <= 1:
            raise ValueError("warmup_epochs must be >= 0 and min_lr_ratio in [0, 1]")
        if not isinstance(self.model, str):
            raise bad("model", "pass a model name (see dflib.models.list_models()) and model_options")


@dataclass(frozen=True)
class RunPaths:
    """Where a run's files go (see the module docstring)."""

    out: Path
    name: str

    @property
    def best(self) -> Path:            # stem of the best pair: <out>/<name>
        return self.out / self.name

    @property
    def run_dir(self) -> Path:
        return self.out / "runs" / self.name

    @property
    def last(self) -> Path:            # stem of the last pair
        return self.run_dir / "last"

    @property
    def resume(self) -> Path:
        return self.run_dir / "resume.pt"

    @property
    def history_csv(self) -> Path:
        return self.run_dir / "history.csv"

    @property
    def history_json(self) -> Path:
        return self.run_dir / "history.json"

    @property
    def log(self) -> Path:
        return self.run_dir / "train.log"


@dataclass
class TrainResult:
    """What ``fit`` returns: the history, the best epoch, where the files are, and the speed."""

    history: pd.DataFrame
    best: dict[str, float]        # the history row of the best epoch
    threshold: float              # decision threshold chosen on validation for the best epoch
    paths: RunPaths
    epochs_trained: int
    stopped_early: bool
    seconds: float                # wall time of this call
    seconds_per_epoch: float      # mean over the run's epochs (training + validation)
    images_per_second: float      # mean training throughput
    model: nn.Module | None = None  # the best model, eval mode (on every rank)

    def __repr__(self) -> str:
        b = self.best
        return (f"TrainResult({self.epochs_trained} epochs{', stopped early' if self.stopped_early else ''}; "
                f"best epoch {b.get('epoch')}: val ROC-AUC {b.get('val_roc_auc', float('nan')):.4f}, "
                f"accuracy {b.get('val_accuracy', float('nan')):.4f}; {self.seconds_per_epoch:.1f} s/epoch, "
                f"{self.images_per_second:.0f} img/s; best model: {self.paths.best}.safetensors)")
