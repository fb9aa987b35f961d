"""Saving and loading detectors: safetensors weights + a JSON model card, written atomically.

A detector is a pair of files with one stem::

    resnet18.safetensors   the weights (no pickle: loading can never run code)
    resnet18.json          the model card: architecture, input size, normalisation, labels,
                           data fingerprint, validation metrics, threshold, versions, date

The card is also embedded in the safetensors header, so the weights file alone is enough and
a pair can never silently disagree: the JSON records the weights' SHA-256, and a stale JSON is
reported and ignored. ``load_detector`` accepts either file of the pair (or the stem).

Every write goes to a temporary file in the same folder, is flushed to disk (fsync) and then
renamed over the target (``os.replace``, atomic on POSIX and Windows): a crash or ``kill -9``
leaves either the old file or the new one, never half of one. Leftover temporary files are
named ``.<target>.<random>.tmp`` and are removed by :func:`clean_temp_files`.

The training state needed to resume (optimizer, scheduler, RNG states, history, ...) goes in a
separate ``resume.pt`` that holds only tensors, numbers, strings, lists and dicts, so it loads
with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import secrets
import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from dflib.card import ModelCard

WEIGHTS_SUFFIX = ".safetensors"
MAX_WEIGHTS_BYTES = 4 * 2**30  # ViT-B in float32 is 350 MB; no read is unbounded
CARD_SUFFIX = ".json"


class CheckpointError(ValueError):
    """A checkpoint is missing, corrupt, or does not fit the model (the message says the fix)."""


# --------------------------------------------------------------------------- atomic writes
def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` so that readers only ever see the old or the complete new file."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)
    return path


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def _fsync_dir(folder: Path) -> None:
    """Make the rename itself durable (POSIX); not possible, and not needed, on Windows."""
    if os.name != "posix":
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def clean_temp_files(folder: str | os.PathLike) -> int:
    """Delete temporary files a killed writer left in ``folder``; return how many."""
    folder = Path(folder)
    if not folder.is_dir():
        return 0
    stale = [p for p in folder.glob(".*.tmp") if p.is_file()]
    for p in stale:
        p.unlink(missing_ok=True)
    return len(stale)


def check_writable(folder: str | os.PathLike) -> Path:
    """Create ``folder`` if needed and prove a file can be written there, before any training."""
    folder = Path(folder).expanduser()
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f".write-test-{os.getpid()}-{secrets.token_hex(4)}.tmp"
        probe.write_bytes(b"ok")
        probe.unlink(missing_ok=True)
    except OSError as e:
        reason = e.strerror or type(e).__name__
        raise CheckpointError(
            f"cannot write to output folder {folder} ({reason}); choose a writable folder with --out (fit(out=...))"
        ) from e
    return folder


def check_output_file(path: str | os.PathLike, flag: str = "--out") -> Path:
    """Fail early (before any model runs) when a result file cannot be written at ``path``; return it.

    Refuses an empty name, a folder, a path under a file and an unwritable folder, naming ``flag``.
    """
    if not str(path).strip():
        raise ValueError(f"{flag} is empty; give a file name, e.g. {flag} results.json")
    path = Path(path).expanduser()
    if path.is_dir():
        example = path / ("results" + (path.suffix or ".json"))
        raise ValueError(f"{flag} {path} is a folder; give a file name, e.g. {example}")
    blocker = next((p for p in path.parents if p.exists() and not p.is_dir()), None)
    if blocker is not None:
        raise ValueError(f"cannot write {flag} {path}: {blocker} is a file, not a folder; choose another location")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ValueError(
            f"cannot write {flag} {path}: its folder cannot be created ({e.strerror or e}); choose a writable location"
        ) from None
    if not os.access(path.parent, os.W_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise ValueError(f"cannot write {flag} {path}: permission denied; choose a writable location")
    return path


# --------------------------------------------------------------------------- model pairs
def unwrap(model: nn.Module) -> nn.Module:
    """The plain model inside DistributedDataParallel and/or torch.compile wrappers."""
    while True:
        if hasattr(model, "_orig_mod"):  # torch.compile
            model = model._orig_mod
        elif isinstance(model, nn.parallel.DistributedDataParallel):
            model = model.module
        else:
            return model


def detector_paths(path: str | os.PathLike) -> tuple[Path, Path]:
    """``(weights, card)`` paths of a pair, from either file or the common stem."""
    path = Path(path).expanduser()
    if path.suffix in (WEIGHTS_SUFFIX, CARD_SUFFIX):
        path = path.with_suffix("")
    return path.with_name(path.name + WEIGHTS_SUFFIX), path.with_name(path.name + CARD_SUFFIX)


def _write_pair(
    tensors: dict[str, torch.Tensor], path: str | os.PathLike, card: ModelCard, parameters: int
) -> tuple[Path, Path]:
    """Write the weights (card embedded) then the JSON card with the weights' hash; both atomically."""
    from safetensors.torch import save

    weights_path, card_path = detector_paths(path)
    embedded = card.without("weights")
    data = save(tensors, metadata={"format": "pt", "dflib_card": json.dumps(embedded.to_dict())})
    atomic_write_bytes(weights_path, data)
    full = embedded.to_dict()
    full["weights"] = {
        "file": weights_path.name,
        "sha256": hashlib.sha256(data).hexdigest(),
        "bytes": len(data),
        "parameters": int(parameters),
    }
    atomic_write_text(card_path, json.dumps(full, indent=2) + "\n")
    return weights_path, card_path


def save_detector(model: nn.Module, path: str | os.PathLike, card: ModelCard | dict[str, Any]) -> tuple[Path, Path]:
    """Write ``<stem>.safetensors`` (card embedded) then ``<stem>.json``; return both paths."""
    card = ModelCard.from_dict(card, source=f"the card given for {path}")
    target = unwrap(model)
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in target.state_dict().items()}
    return _write_pair(tensors, path, card, sum(p.numel() for p in target.parameters()))


def annotate_detector(path: str | os.PathLike, **sections: Any) -> ModelCard:
    """Add or replace top-level ``sections`` of a saved detector's card, in both files, atomically.

    For what is known only after training, e.g. ``annotate_detector(p, test_metrics={...},
    provenance={...})``. The weights are unchanged (the card embedded in them is rewritten).
    Returns the new card.
    """
    tensors, card = _load_pair(path)
    card = card.without("weights").with_sections(**sections)
    _write_pair(tensors, path, card, _parameter_count(tensors, card))
    return read_card(path)


def _parameter_count(tensors: dict[str, torch.Tensor], card: ModelCard) -> int:
    """Parameters (not buffers) of the weights: rebuild the model on the meta device to tell them apart."""
    from dflib.models import create_model_from_config

    with torch.device("meta"):
        model = create_model_from_config(card.architecture)
    return int(sum(p.numel() for p in model.parameters()))


def _read_weights(weights_path: Path) -> tuple[dict[str, torch.Tensor], ModelCard | None, str]:
    """Tensors, the embedded card (or None) and the SHA-256 of one safetensors file."""
    from safetensors import SafetensorError
    from safetensors.torch import load

    if not weights_path.is_file():
        raise CheckpointError(
            f"checkpoint weights {weights_path} do not exist; check the path "
            f"(expected the pair <name>.safetensors + <name>.json)"
        )
    size = weights_path.stat().st_size
    if size > MAX_WEIGHTS_BYTES:
        raise CheckpointError(
            f"checkpoint {weights_path} is {size:,} bytes, more than dflib reads "
            f"({MAX_WEIGHTS_BYTES:,}); is it really a dflib detector?"
        )
    data = weights_path.read_bytes()
    try:
        tensors = load(data)
        header_len = int.from_bytes(data[:8], "little")
        meta = json.loads(data[8 : 8 + header_len]).get("__metadata__") or {}
        card = json.loads(meta["dflib_card"]) if "dflib_card" in meta else None
    except (SafetensorError, ValueError, KeyError, TypeError) as e:
        raise CheckpointError(
            f"checkpoint {weights_path} is corrupt or truncated ({e}); "
            f"re-copy it, or use another checkpoint (e.g. runs/<name>/last)"
        ) from e
    if card is not None:
        card = ModelCard.from_dict(card, source=f"the card embedded in {weights_path}")
    return tensors, card, hashlib.sha256(data).hexdigest()


def read_card(path: str | os.PathLike) -> ModelCard:
    """The model card of a pair: the JSON file, else the copy embedded in the weights.

    Quick (the weights are not read when the JSON exists); ``load_detector`` also checks that
    the JSON describes these very weights.
    """
    check_format(path)
    weights_path, card_path = detector_paths(path)
    if card_path.is_file():
        return _read_json_card(card_path)
    return _load_pair(path)[1]


def _read_json_card(card_path: Path) -> ModelCard:
    try:
        card = json.loads(card_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise CheckpointError(
            f"model card {card_path} is unreadable ({e}); delete it to fall back "
            f"on the card embedded in the .safetensors file"
        ) from e
    if not isinstance(card, dict) or "architecture" not in card:
        raise CheckpointError(f"{card_path} is not a dflib model card (no 'architecture')")
    return ModelCard.from_dict(card, source=str(card_path))


def check_format(path: str | os.PathLike) -> None:
    """Refuse an existing file that is not one of a pair (``.pt``, ``.pth``, ``.onnx``, ...): an unsupported format."""
    given = Path(path).expanduser()
    if given.suffix and given.suffix not in (WEIGHTS_SUFFIX, CARD_SUFFIX) and given.is_file():
        raise CheckpointError(
            f"checkpoint {given} has an unsupported format ({given.suffix}): dflib loads a pair "
            f"<name>.safetensors + <name>.json (never a pickle); save one with dflib.checkpoint.save_detector, "
            f"or pass the .safetensors or .json file of the pair"
        )


# What describes the weights: a JSON card may not change these without the embedded card agreeing.
_DESCRIBES_WEIGHTS = ("architecture", "img_size", "normalization")


def _disagreement(card: ModelCard, embedded: ModelCard) -> list[str]:
    """The sections of ``_DESCRIBES_WEIGHTS`` in which the JSON card differs from the embedded one."""
    a, b = card.to_dict(), embedded.to_dict()
    out = []
    for key in _DESCRIBES_WEIGHTS:
        if key == "normalization":
            same = all(
                _json_value((a.get(key) or {}).get(k)) == _json_value((b.get(key) or {}).get(k))
                for k in ("mean", "std")
            )
        elif key == "img_size":
            same = card.img_size == embedded.img_size
        else:
            same = _json_value(a.get(key)) == _json_value(b.get(key))
        if not same:
            out.append(f"{key} {_short(a.get(key))} (JSON) vs {_short(b.get(key))} (embedded)")
    return out


def _short(value: Any) -> str:
    text = json.dumps(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _load_pair(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], ModelCard]:
    check_format(path)
    weights_path, card_path = detector_paths(path)
    tensors, embedded, sha = _read_weights(weights_path)
    card = None
    if card_path.is_file():
        try:
            card = _read_json_card(card_path)
        except CheckpointError as e:
            if embedded is None:
                raise
            warnings.warn(f"{e}; using the card embedded in {weights_path.name}", stacklevel=3)
        if card is not None and card.get("weights", {}).get("sha256") not in (None, sha):
            if embedded is None:
                raise CheckpointError(
                    f"model card {card_path} describes other weights than "
                    f"{weights_path} (SHA-256 differs); copy the matching pair"
                )
            warnings.warn(
                f"{card_path.name} is stale (it describes other weights); using the "
                f"card embedded in {weights_path.name}",
                stacklevel=3,
            )
            card = None
    if card is not None and embedded is not None:
        diffs = _disagreement(card, embedded)
        if diffs:
            # The embedded card was written with the weights: it is what they were trained for.
            warnings.warn(
                f"{card_path} was edited and no longer describes {weights_path.name} ({'; '.join(diffs)}); "
                f"using the card embedded in the weights, so results do not change. To use another input "
                f"size or normalisation, retrain (or fine-tune) and save a new pair",
                stacklevel=3,
            )
            card = ModelCard(
                {**card.to_dict(), **{k: embedded.to_dict().get(k) for k in _DESCRIBES_WEIGHTS if k in embedded}},
                source=card.source,
            )
    card = card or embedded
    if card is None:
        raise CheckpointError(
            f"{weights_path} has no model card: {card_path.name} is missing and none "
            f"is embedded; save it with dflib.checkpoint.save_detector"
        )
    return tensors, card


def _json_value(value: Any) -> Any:
    """``value`` as it reads back from JSON (tuples become lists; empty means absent)."""
    return json.loads(json.dumps(value)) if value else None


def _describe(config: dict[str, Any]) -> str:
    over = config.get("overrides") or {}
    extra = "".join(f", {k}={v!r}" for k, v in sorted(over.items()))
    return f"{config.get('name')} at {config.get('img_size')} px{extra}"


def load_weights(model: nn.Module, path: str | os.PathLike, *, strict: bool = True) -> ModelCard:
    """Load a saved detector's weights into ``model`` (same architecture and size); return its card.

    Raises :class:`CheckpointError` naming both sides when the checkpoint was made for another
    architecture, other options or another input size.
    """
    tensors, card = _load_pair(path)
    _load_into(model, tensors, card, path, strict=strict)
    return card


def _load_into(
    model: nn.Module, tensors: dict[str, torch.Tensor], card: ModelCard, path: str | os.PathLike, *, strict: bool = True
) -> None:
    target = unwrap(model)
    saved = card.architecture
    mine = getattr(target, "config", None)
    if isinstance(mine, dict) and mine.get("name") is not None:
        keys = ("name", "num_classes", "img_size", "overrides")
        if any(_json_value(saved.get(k)) != _json_value(mine.get(k)) for k in keys):
            raise CheckpointError(
                f"checkpoint {Path(path).name} holds {_describe(saved)}, but the model is "
                f"{_describe(mine)}; build the model from the checkpoint with "
                f"dflib.load_detector('{path}') (or create_model with the card's architecture)"
            )
    try:
        target.load_state_dict(tensors, strict=strict)
    except RuntimeError as e:
        first = str(e).strip().splitlines()
        raise CheckpointError(
            f"checkpoint {Path(path).name} ({_describe(saved)}) does not fit this "
            f"model: {' '.join(first[1:3]) or first[0]}; use dflib.load_detector"
        ) from e


def load_detector(path: str | os.PathLike, device: str | torch.device = "cpu") -> tuple[nn.Module, ModelCard]:
    """Rebuild a saved detector from either file of its pair: ``(model in eval mode, card)``.

    >>> model, card = dflib.load_detector("models/resnet18.json")
    >>> p_fake = torch.sigmoid(model(card.transform()(image)[None]))
    >>> is_fake = p_fake >= card.threshold
    """
    from dflib.models import create_model_from_config

    tensors, card = _load_pair(path)
    try:
        model = create_model_from_config(card.architecture)
    except (KeyError, TypeError, ValueError) as e:
        raise CheckpointError(
            f"cannot rebuild the model described by {path}: {e}; the card's 'architecture' must name a dflib model"
        ) from e
    _load_into(model, tensors, card, path)
    return model.to(device).eval(), card


# --------------------------------------------------------------------------- resume state
def save_resume_state(path: str | os.PathLike, state: dict[str, Any]) -> Path:
    """Write the resume state atomically (plain containers and tensors only)."""
    buffer = io.BytesIO()
    torch.save(state, buffer)
    return atomic_write_bytes(path, buffer.getvalue())


def load_resume_state(path: str | os.PathLike) -> dict[str, Any]:
    """Read ``resume.pt`` without unpickling arbitrary objects (``weights_only=True``)."""
    path = Path(path)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise
    except Exception as e:  # truncated zip, foreign pickle, ...: all mean "cannot resume from this"
        raise CheckpointError(
            f"resume state {path} is unreadable ({type(e).__name__}: "
            f"{str(e).splitlines()[0][:200]}); start the run again with --overwrite"
        ) from e
    if not isinstance(state, dict) or "epoch" not in state:
        raise CheckpointError(f"{path} is not a dflib resume state; start again with --overwrite")
    return state


# --------------------------------------------------------------------------- data fingerprint
def data_fingerprint(paths: Iterable[str | os.PathLike], root: str | os.PathLike) -> str:
    """SHA-256 of the sorted (relative path, size) list: changes when files are added, removed or edited."""
    root = Path(root)
    lines = sorted(f"{Path(p).relative_to(root).as_posix()}\t{os.path.getsize(p)}" for p in paths)
    return "sha256:" + hashlib.sha256("\n".join(lines).encode()).hexdigest()
