"""Training detectors: ``fit`` trains one and saves it with its model card; recipes give the settings.

    >>> from dflib.training import fit, recipe
    >>> result = fit(**recipe("resnet18_w16", epochs=5))   # embedded sample, CPU is fine
    >>> result.history          # one row per epoch (pandas): losses, accuracy, ROC-AUC, lr, speed

The layers, each importing only those before it:

* :mod:`~dflib.training.config`: :class:`TrainConfig` (every setting), :class:`RunPaths`,
  :class:`TrainResult`, the choice lists;
* :mod:`~dflib.training.steps`: one epoch, validation, the learning-rate schedule, the optimizer,
  early stopping;
* :mod:`~dflib.training.run`: :class:`TrainingRun`, the setup (folders, data, model, resume) and
  the bookkeeping (checkpoints, history, resume state) around the loop;
* :mod:`~dflib.training.loop`: :func:`fit`, the epoch loop, and :func:`fit_and_score` (train, then
  score a split with the new card);
* :mod:`~dflib.training.recipes`: the settings of the shipped detectors.
"""

from dflib.training.config import (
    DATA_CHECK_CHOICES,
    IMBALANCE_CHOICES,
    OPTIMIZER_CHOICES,
    RESUME_KEYS,
    RunPaths,
    TrainConfig,
    TrainResult,
)
from dflib.training.loop import fit, fit_and_score
from dflib.training.recipes import RECIPES, Recipe, recipe, recipes_table
from dflib.training.run import TrainingRun, augment_on_device
from dflib.training.steps import EarlyStopping, build_optimizer, train_one_epoch, validate, warmup_cosine

__all__ = [
    "DATA_CHECK_CHOICES",
    "IMBALANCE_CHOICES",
    "OPTIMIZER_CHOICES",
    "RESUME_KEYS",
    "RunPaths",
    "TrainConfig",
    "TrainResult",
    "fit",
    "fit_and_score",
    "RECIPES",
    "Recipe",
    "recipe",
    "recipes_table",
    "TrainingRun",
    "augment_on_device",
    "EarlyStopping",
    "build_optimizer",
    "train_one_epoch",
    "validate",
    "warmup_cosine",
]
