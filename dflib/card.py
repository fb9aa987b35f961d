"""The model card: what a saved detector is, how to feed it an image, and when it calls one fake.

A detector on disk is a pair (:mod:`dflib.checkpoint`): ``<name>.safetensors`` (the weights, with
a copy of the card embedded) and ``<name>.json`` (the card, for people and tools). The card is a
JSON document; :class:`ModelCard` reads it once, checks the parts code relies on, and gives them
typed names:

    >>> card = ModelCard.from_dict(json.loads(Path("models/resnet18_w16.json").read_text()))
    >>> card.img_size, card.mean, card.std          # how to prepare an image
    >>> card.threshold                               # fake when P(fake) >= this (chosen on Validation)
    >>> card.transform()(image_tensor)               # the exact evaluation preprocessing
    >>> card["training"]["config"]["lr"]             # any other section, as read from the JSON

The sections: ``architecture`` (what :func:`dflib.models.create_model_from_config` rebuilds),
``img_size``, ``normalization``, ``labels``, ``threshold``, ``metrics`` (Validation), ``data``,
``training``, ``versions``, ``created_utc``; later additions such as ``test_metrics`` or
``provenance`` (:func:`dflib.checkpoint.annotate_detector`); ``weights`` (file, SHA-256, size and
parameter count) in the JSON file only.
"""

from __future__ import annotations

import copy
import json
import math
from collections.abc import Iterator, Mapping
from datetime import datetime, timezone
from typing import Any

CARD_FORMAT = "dflib-detector/1"
DEFAULT_THRESHOLD = 0.5
NORMALIZATION_INPUT = "RGB, resized to img_size x img_size, scaled to [0, 1], then (x - mean) / std"
LABELS = {"0": "real", "1": "fake", "positive": "fake", "output": "one logit per image; sigmoid(logit) = P(fake)"}
# Sections that describe the weights themselves: changing them would make the card lie.
WEIGHT_SECTIONS = ("architecture", "img_size", "normalization", "weights", "format")


class CardError(ValueError):
    """A model card is missing a part code needs, or holds a value that cannot be right."""


def _json_copy(value: Any) -> Any:
    return json.loads(json.dumps(value))


class ModelCard(Mapping):
    """A validated, read-only model card. Typed accessors for what code uses; ``card[key]`` for the rest."""

    __slots__ = ("_doc", "source")

    def __init__(self, doc: Mapping[str, Any], source: str = "") -> None:
        self._doc: dict[str, Any] = _json_copy(dict(doc))
        self.source = source  # where it was read from, for messages
        self._validate()

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_dict(cls, doc: Any, source: str = "") -> ModelCard:
        """Check ``doc`` (a parsed JSON card) and wrap it; :class:`CardError` names the problem."""
        if isinstance(doc, ModelCard):
            return doc
        if not isinstance(doc, Mapping):
            raise CardError(f"{source or 'the model card'} is not a JSON object (got {type(doc).__name__})")
        return cls(doc, source)

    @classmethod
    def make(
        cls,
        *,
        name: str,
        architecture: Mapping[str, Any],
        mean: tuple[float, ...],
        std: tuple[float, ...],
        threshold: float,
        threshold_method: str = "youden",
        threshold_note: str = "",
        metrics: Mapping[str, Any] | None = None,
        data: Mapping[str, Any] | None = None,
        training: Mapping[str, Any] | None = None,
    ) -> ModelCard:
        """The card of a freshly trained detector (``threshold`` chosen on Validation)."""
        import torch
        import torchvision

        import dflib

        arch = _json_copy(dict(architecture))
        doc = {
            "format": CARD_FORMAT,
            "name": name,
            "architecture": arch,
            "img_size": arch.get("img_size"),
            "normalization": {"mean": list(mean), "std": list(std), "input": NORMALIZATION_INPUT},
            "labels": dict(LABELS),
            "threshold": {
                "value": float(threshold),
                "rule": "fake when P(fake) >= value",
                "method": threshold_method,
                "chosen_on": "Validation",
                "note": threshold_note,
            },
            "metrics": dict(metrics or {}),
            "data": dict(data or {}),
            "training": dict(training or {}),
            "versions": {
                "dflib": dflib.__version__,
                "torch": torch.__version__,
                "torchvision": torchvision.__version__,
            },
            "created_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        }
        return cls(doc, source=f"the card of {name!r}")

    def with_sections(self, **sections: Any) -> ModelCard:
        """A copy with top-level ``sections`` added or replaced; the weight-describing ones are refused."""
        for key in sections:
            if key in WEIGHT_SECTIONS:
                raise CardError(f"cannot change {key!r} of a model card: it describes the weights; retrain instead")
        return ModelCard({**self._doc, **_json_copy(sections)}, self.source)

    def without(self, *keys: str) -> ModelCard:
        """A copy without the top-level ``keys`` (e.g. ``"weights"``, which only the JSON file holds)."""
        return ModelCard({k: v for k, v in self._doc.items() if k not in keys}, self.source)

    # ------------------------------------------------------------------ checks
    def _fail(self, what: str) -> CardError:
        where = self.source or f"the model card of {self._doc.get('name')!r}"
        return CardError(f"{where}: {what}; re-save the detector with dflib (or fix the JSON by hand)")

    def _validate(self) -> None:
        arch = self._doc.get("architecture")
        if not isinstance(arch, Mapping) or not isinstance(arch.get("name"), str):
            raise self._fail("no 'architecture' with a model 'name', so the model cannot be rebuilt")
        from dflib import MAX_IMG_SIZE, MIN_IMG_SIZE

        for size in {
            repr(v): v for v in (self._doc.get("img_size", arch.get("img_size")), arch.get("img_size")) if v is not None
        }.values():
            if isinstance(size, bool) or not isinstance(size, int) or not MIN_IMG_SIZE <= size <= MAX_IMG_SIZE:
                raise self._fail(
                    f"img_size {size!r} is not a whole number of pixels from {MIN_IMG_SIZE} to {MAX_IMG_SIZE}"
                )
        if self._doc.get("img_size", arch.get("img_size")) is None:
            raise self._fail("no img_size, so the input size is unknown")
        norm = self._doc.get("normalization")
        if norm is not None:
            for key in ("mean", "std"):
                v = norm.get(key) if isinstance(norm, Mapping) else None
                if v is None:
                    continue
                ok = (
                    isinstance(v, list)
                    and len(v) == 3
                    and all(isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x) for x in v)
                )
                if not ok or (key == "std" and min(v) <= 0):
                    raise self._fail(
                        f"normalization {key} {v!r} is not three finite numbers" + (" above 0" if key == "std" else "")
                    )
        t = self._doc.get("threshold")
        if t is not None:
            value = t.get("value") if isinstance(t, Mapping) else t
            if value is not None and (
                isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0
            ):
                raise self._fail(f"threshold {value!r} is not a probability in [0, 1]")

    # ------------------------------------------------------------------ typed accessors
    @property
    def name(self) -> str:
        return str(self._doc.get("name") or self.architecture["name"])

    @property
    def architecture(self) -> dict[str, Any]:
        return copy.deepcopy(self._doc["architecture"])

    @property
    def img_size(self) -> int:
        return int(self._doc.get("img_size") or self._doc["architecture"]["img_size"])

    @property
    def mean(self) -> tuple[float, float, float]:
        from dflib.data.transforms import IMAGENET_MEAN

        return tuple((self._doc.get("normalization") or {}).get("mean") or IMAGENET_MEAN)

    @property
    def std(self) -> tuple[float, float, float]:
        from dflib.data.transforms import IMAGENET_STD

        return tuple((self._doc.get("normalization") or {}).get("std") or IMAGENET_STD)

    @property
    def threshold(self) -> float | None:
        """The decision threshold chosen on Validation, or None if the card has none."""
        t = self._doc.get("threshold")
        value = t.get("value") if isinstance(t, Mapping) else t
        return None if value is None else float(value)

    def threshold_or_default(self) -> float:
        """:attr:`threshold`, else 0.5 (what a detector without a validated threshold uses)."""
        t = self.threshold
        return DEFAULT_THRESHOLD if t is None else t

    def transform(self):
        """The evaluation transform this detector expects: resize to ``img_size``, normalise with its mean/std.

        Every place that feeds a saved detector (evaluate, predict, robustness, notebooks) uses it.
        """
        from dflib.data.transforms import eval_transform

        return eval_transform(self.img_size, mean=self.mean, std=self.std)

    def to_dict(self) -> dict[str, Any]:
        """The JSON document (a deep copy)."""
        return copy.deepcopy(self._doc)

    def to_json(self) -> str:
        return json.dumps(self._doc, indent=2) + "\n"

    # ------------------------------------------------------------------ read-only mapping
    def __getitem__(self, key: str) -> Any:
        return copy.deepcopy(self._doc[key])

    def __iter__(self) -> Iterator[str]:
        return iter(self._doc)

    def __len__(self) -> int:
        return len(self._doc)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, ModelCard):
            return self._doc == other._doc
        return isinstance(other, Mapping) and self._doc == dict(other)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"ModelCard({self.name!r}, {self.img_size} px, threshold {self.threshold})"


__all__ = ["CARD_FORMAT", "DEFAULT_THRESHOLD", "CardError", "ModelCard", "WEIGHT_SECTIONS"]
