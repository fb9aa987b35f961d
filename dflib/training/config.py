"""Every setting of a training run, where its files go, and what it returns: the leaf of ``dflib.training``.

Nothing here trains; :mod:`dflib.training.steps` (one epoch, validation, schedule, optimizer,
early stopping), :mod:`dflib.training.run` (setup and bookkeeping) and
:mod:`dflib.training.loop` (the epoch loop) build on it. The ``dflib train`` options are
generated from :class:`TrainConfig`'s fields (:mod:`dflib.cli`).
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Sequence
from dataclasses import MISSING, dataclass, field, fields
from pathlib import Path
from typing import Any

import pandas as pd
from torch import nn

from dflib.runtime import AMP_CHOICES

IMBALANCE_CHOICES = ("pos_weight", "sampler", "none")
OPTIMIZER_CHOICES = ("adamw", "sgd")
DATA_CHECK_CHOICES = ("full", "quick")
# Settings that must not change when a run is resumed (epochs may grow: training goes on).
RESUME_KEYS = (
    "model",
    "model_options",
    "img_size",
    "batch_size",
    "lr",
    "weight_decay",
    "optimizer",
    "momentum",
    "warmup_epochs",
    "min_lr_ratio",
    "grad_clip",
    "label_smoothing",
    "imbalance",
    "augment",
    "limit_per_class",
    "seed",
    "init",
)
INIT_CHOICES = ("random", "imagenet")
DECODE_CHOICES = ("auto", "cpu", "device")  # as dflib.models.pretrained.INIT_CHOICES


def setting(
    default: Any = MISSING,
    *,
    help: str,
    choices: Sequence[str] | None = None,
    flag: str | None = None,
    metavar: str | None = None,
    zero_is_none: bool = False,
    cli: bool = True,
    required: bool = False,
    default_factory: Any = MISSING,
) -> Any:
    """A :class:`TrainConfig` field with what ``dflib train`` needs to offer it as an option.

    ``help`` and ``choices`` are the one place a setting is described; ``flag`` renames the
    option (default: the field name with dashes); ``zero_is_none`` lets ``0`` on the command
    line mean ``None`` (off); ``cli=False`` keeps a setting out of the command line; ``required``
    makes the option mandatory there (the Python default stays for ``fit()``).
    """
    meta = {
        "help": help,
        "choices": tuple(choices) if choices else None,
        "flag": flag,
        "metavar": metavar,
        "zero_is_none": zero_is_none,
        "cli": cli,
        "required": required,
    }
    if default_factory is not MISSING:
        return field(default_factory=default_factory, metadata=meta)
    return field(default=default, metadata=meta)


@dataclass
class TrainConfig:
    """Every setting of a run. All values are JSON-friendly; they are saved in the card.

    Each field's ``help`` (in its metadata) is also the help of its ``dflib train`` option.
    """

    model: str = setting(
        "resnet18", help="a model name (see dflib.models.list_models())", metavar="NAME", required=True
    )
    model_options: dict[str, Any] = setting(
        default_factory=dict,
        flag="model-arg",
        metavar="KEY=VALUE",
        help="override a model option, e.g. width=32 (create_model's keyword arguments; repeatable)",
    )
    data_dir: str = setting(
        "", flag="data", metavar="DIR", help="Dataset folder (Kaggle layout); empty = the embedded synthetic sample"
    )
    img_size: int | None = setting(None, metavar="PX", help="input size in pixels; unset = the model preset's size")
    epochs: int = setting(10, metavar="N", help="maximum number of epochs")
    batch_size: int = setting(64, metavar="B", help="images per optimisation step (per process)")
    lr: float = setting(1e-3, metavar="LR", help="peak learning rate (after warm-up)")
    weight_decay: float = setting(
        0.05, metavar="WD", help="decoupled weight decay on weights, never on norms and biases"
    )
    optimizer: str = setting("adamw", choices=OPTIMIZER_CHOICES, help="adamw, or sgd with Nesterov momentum")
    momentum: float = setting(0.9, metavar="M", help="SGD momentum (sgd only)")
    warmup_epochs: float = setting(
        1.0, metavar="E", help="linear warm-up length in epochs (capped at a fifth of the run)"
    )
    min_lr_ratio: float = setting(0.01, metavar="R", help="the cosine schedule ends at lr x this ratio")
    grad_clip: float | None = setting(
        1.0, metavar="NORM", zero_is_none=True, help="max gradient L2 norm (0 = no clipping)"
    )
    label_smoothing: float = setting(0.0, metavar="EPS", help="targets become eps/2 and 1 - eps/2, e.g. 0.1")
    imbalance: str = setting(
        "pos_weight",
        choices=IMBALANCE_CHOICES,
        help="class imbalance remedy: pos_weight (= n_real / n_fake in the loss), a class-balanced sampler, or none",
    )
    augment: bool | dict = setting(
        True, help="data augmentation (the default AugmentConfig; from Python also a dict of its fields)"
    )
    patience: int | None = setting(
        5, metavar="N", zero_is_none=True, help="early stopping: epochs without a better validation ROC-AUC (0 = off)"
    )
    data_check: str = setting(
        "full",
        choices=DATA_CHECK_CHOICES,
        help="how Train is checked before epoch 1 (Validation is always decoded in full): full = decode every "
        "image once, so every unreadable file is left out and counted in the card (~0.35 ms per 256 px JPEG "
        "here); quick = headers only, a corrupt body is then met mid-epoch and replaced "
        "by another image with a warning",
    )
    limit_per_class: int | None = setting(
        None, metavar="N", help="use at most N images per class of Train and Validation (quick runs)"
    )
    seed: int = setting(0, metavar="S", help="random seed: initial weights, data order, augmentation")
    init: str = setting(
        "random",
        choices=INIT_CHOICES,
        help="initial weights: random, or imagenet (torchvision/pytorchcv ImageNet weights for the "
        "full-width ResNets, ViT-B/L and SqueezeNeXt; downloaded once into their cache)",
    )
    deterministic: bool = setting(False, help="deterministic kernels (torch.use_deterministic_algorithms; GPU runs)")
    device: str = setting("auto", metavar="DEV", help="auto (cuda, then mps, then cpu), cpu, cuda, cuda:N or mps")
    amp: str = setting("auto", choices=AMP_CHOICES, help="mixed precision: auto (bf16/fp16 on CUDA, off elsewhere)")
    decode: str = setting(
        "auto",
        choices=DECODE_CHOICES,
        help="where training JPEGs are decoded: auto (on the GPU when training on CUDA with "
        "augmentation, else by the loader workers), cpu, or device (the training device, "
        "any kind: what the tests use)",
    )
    channels_last: bool = setting(False, help="NHWC memory layout (faster convolutions on recent GPUs)")
    compile: bool = setting(False, help="torch.compile the model")
    workers: int | None = setting(None, metavar="N", help="loader processes; unset = one per spare core")
    threads: int | None = setting(
        None, metavar="N", help="CPU compute threads; unset = the cores the loader workers leave free"
    )
    out: str = setting("models", metavar="DIR", help="output folder")
    name: str | None = setting(None, metavar="NAME", help="file name stem; unset = the model name")
    resume: bool = setting(False, help="continue <out>/runs/<name>/resume.pt if it exists")
    overwrite: bool = setting(False, help="start again over an existing run of this name")
    progress: bool = setting(True, help="progress bars")

    def check(self) -> None:
        """Reject bad values with a message that names the option as typed (``--flag``, ``fit(name=)``) and the fix."""
        from dflib import MAX_IMG_SIZE, MIN_IMG_SIZE

        flags = {f.name: "--" + (f.metadata.get("flag") or f.name.replace("_", "-")) for f in fields(self)}

        def bad(name: str, fix: str) -> ValueError:
            v = getattr(self, name)
            return ValueError(f"{name}={v!r} is invalid ({flags[name]} {v!r} on the command line); {fix}")

        def whole(v: Any) -> bool:
            return isinstance(v, int) and not isinstance(v, bool)

        for name in ("epochs", "batch_size"):
            if not whole(getattr(self, name)) or getattr(self, name) < 1:
                raise bad(name, "use an integer >= 1")
        if not isinstance(self.model, str):
            raise bad("model", "pass a model name (see dflib.models.list_models()) and model_options")
        size = self.img_size
        if size is not None and (not whole(size) or not MIN_IMG_SIZE <= size <= MAX_IMG_SIZE):
            raise bad(
                "img_size",
                f"use a size from {MIN_IMG_SIZE} to {MAX_IMG_SIZE} pixels (e.g. 128), or leave it "
                f"unset for the model preset's size",
            )
        if not _finite(self.lr) or not self.lr > 0:
            raise bad("lr", "use a positive learning rate, e.g. 1e-3")
        if not _finite(self.weight_decay) or self.weight_decay < 0:
            raise bad("weight_decay", "use a weight decay >= 0, e.g. 0.05 (0 = none)")
        if not _finite(self.momentum) or not 0 <= self.momentum < 1:
            raise bad("momentum", "use a value in [0, 1), e.g. 0.9")
        if self.optimizer not in OPTIMIZER_CHOICES:
            raise bad("optimizer", f"use one of {', '.join(OPTIMIZER_CHOICES)}")
        if self.imbalance not in IMBALANCE_CHOICES:
            raise bad("imbalance", f"use one of {', '.join(IMBALANCE_CHOICES)}")
        if self.data_check not in DATA_CHECK_CHOICES:
            raise bad("data_check", f"use one of {', '.join(DATA_CHECK_CHOICES)}")
        if self.decode not in DECODE_CHOICES:
            raise bad("decode", f"use one of {', '.join(DECODE_CHOICES)}")
        if self.init not in INIT_CHOICES:
            raise bad("init", f"use one of {', '.join(INIT_CHOICES)}")
        if not _finite(self.label_smoothing) or not 0 <= self.label_smoothing < 1:
            raise bad("label_smoothing", "use a value in [0, 1), e.g. 0.1")
        if self.threads is not None and (not whole(self.threads) or self.threads < 1):
            raise bad("threads", "use an integer >= 1, or leave it unset to use the cores the loader leaves free")
        if self.workers is not None and (not whole(self.workers) or self.workers < 0):
            raise bad("workers", "use an integer >= 0 (0 = load in the training process), or leave it unset")
        if self.patience is not None and (not whole(self.patience) or self.patience < 1):
            raise bad("patience", "use an integer >= 1, or --patience 0 (patience=None) for no early stopping")
        if self.grad_clip is not None and (not _finite(self.grad_clip) or not self.grad_clip > 0):
            raise bad("grad_clip", "use a positive max norm, or --grad-clip 0 (grad_clip=None) for no clipping")
        if self.limit_per_class is not None and (not whole(self.limit_per_class) or self.limit_per_class < 1):
            raise bad("limit_per_class", "use an integer >= 1, or leave it unset to use every image")
        if not _finite(self.warmup_epochs) or self.warmup_epochs < 0:
            raise bad("warmup_epochs", "use a number of epochs >= 0, e.g. 1")
        if not _finite(self.min_lr_ratio) or not 0 <= self.min_lr_ratio <= 1:
            raise bad("min_lr_ratio", "use a ratio in [0, 1], e.g. 0.01")
        if not str(self.out).strip():
            raise bad("out", "name the output folder, e.g. --out models (use --out . for the current folder)")
        name = self.name if self.name is not None else self.model
        problem = name_problem(name)
        if problem:
            what = "name" if self.name is not None else "model"
            raise ValueError(
                f"{flags[what]} {name!r} cannot name a run: {problem}; use one plain file name "
                f"made of letters, digits, '.', '_' and '-' (e.g. --name resnet18_try2)"
            )


_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")


def name_problem(name: Any) -> str | None:
    """Why ``name`` cannot be a run's file stem (one safe path component), or None."""
    if not isinstance(name, str) or not name:
        return "it is empty"
    if "/" in name or "\\" in name or os.sep in name:
        return "it contains a path separator (the files go to --out; name is only the file stem)"
    if name in (".", ".."):
        return "it is a relative folder reference"
    if not _NAME.fullmatch(name):
        return (
            "it has characters other than letters, digits, '.', '_' and '-', starts with one of '._-', "
            "or is longer than 100 characters"
        )
    return None


def _finite(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


@dataclass(frozen=True)
class RunPaths:
    """Where a run's files go (see the module docstring)."""

    out: Path
    name: str

    @property
    def best(self) -> Path:  # stem of the best pair: <out>/<name>
        return self.out / self.name

    @property
    def run_dir(self) -> Path:
        return self.out / "runs" / self.name

    @property
    def last(self) -> Path:  # stem of the last pair
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
    best: dict[str, float]  # the history row of the best epoch
    threshold: float  # decision threshold chosen on validation for the best epoch
    paths: RunPaths
    epochs_trained: int
    stopped_early: bool
    seconds: float  # wall time of this call
    seconds_per_epoch: float  # mean over the run's epochs (training + validation)
    images_per_second: float  # mean training throughput
    model: nn.Module | None = None  # the best model, eval mode (on every rank)

    def __repr__(self) -> str:
        b = self.best
        return (
            f"TrainResult({self.epochs_trained} epochs{', stopped early' if self.stopped_early else ''}; "
            f"best epoch {b.get('epoch')}: val ROC-AUC {b.get('val_roc_auc', float('nan')):.4f}, "
            f"accuracy {b.get('val_accuracy', float('nan')):.4f}; {self.seconds_per_epoch:.1f} s/epoch, "
            f"{self.images_per_second:.0f} img/s; best model: {self.paths.best}.safetensors)"
        )
