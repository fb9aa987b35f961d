"""Keep one generated sample per config in a user cache folder, built at most once.

`ensure_sample` is what notebooks call: the first call generates the sample into a
temporary folder, writes a completion marker last and renames the folder into place in one
atomic step; later calls just check the marker and the file counts. Two processes racing
both generate, the first rename wins, and the loser uses the winner's folder.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from .generate import CLASSES, SampleConfig, generate_sample, partial_token, remove_stale_partials, resolve_config

MARKER = "complete.json"


def default_cache_dir() -> Path:
    """`$DFLIB_CACHE`, else `$XDG_CACHE_HOME/dflib`, else `~/.cache/dflib`."""
    if os.environ.get("DFLIB_CACHE"):
        return Path(os.environ["DFLIB_CACHE"]).expanduser()
    if os.environ.get("XDG_CACHE_HOME"):
        return Path(os.environ["XDG_CACHE_HOME"]).expanduser() / "dflib"
    return Path.home() / ".cache" / "dflib"


def is_complete(folder: Path, config: SampleConfig) -> bool:
    """True when `folder` holds a finished sample of `config` (marker + expected file counts)."""
    try:
        marker = json.loads((folder / MARKER).read_text())
    except (OSError, ValueError):
        return False
    if marker.get("config") != config.to_dict():
        return False
    dataset = folder / "Dataset"
    if not (dataset / "manifest.csv").is_file():
        return False
    for split, n in config.counts().items():
        for cls in CLASSES:
            d = dataset / split / cls
            if not d.is_dir() or sum(1 for p in d.iterdir() if p.suffix == ".jpg") != n:
                return False
    return True


def ensure_sample(
    config: SampleConfig | None = None, *, cache_dir=None, progress: bool = True, workers: int = 1, **overrides
) -> Path:
    """Return the `Dataset` folder of the cached sample for `config`, generating it if needed.

    The sample lives in `<cache_dir>/sample-<config hash>/Dataset` (cache_dir defaults to
    `default_cache_dir()`); a missing or incomplete folder is (re)generated.
    """
    config = resolve_config(config, overrides)
    root = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    if root.exists() and not root.is_dir():
        raise ValueError(f"cache_dir={str(root)!r} is a file; pass a folder or unset DFLIB_CACHE")
    folder = root / f"sample-{config.short_hash()}"
    if is_complete(folder, config):
        return folder / "Dataset"

    if root.is_dir():
        remove_stale_partials(root, folder.name)
    token = partial_token()
    tmp = root / f".{folder.name}.partial-{token}"
    try:
        generate_sample(tmp, config, progress=progress, workers=workers)
        marker = {"config": config.to_dict(), "counts": config.counts(), "images": 2 * sum(config.counts().values())}
        (tmp / MARKER).write_text(json.dumps(marker, indent=2))  # written last: the folder is complete
        if is_complete(folder, config):  # another process finished first: use its folder
            return folder / "Dataset"
        if folder.exists():  # incomplete leftover: move it aside, then delete it
            stale = root / f".{folder.name}.stale-{token}"
            try:
                folder.rename(stale)
                shutil.rmtree(stale, ignore_errors=True)
            except OSError:
                pass
        try:
            tmp.rename(folder)
        except OSError:
            if not is_complete(folder, config):  # lost a race against a broken folder: give up clearly
                raise RuntimeError(
                    f"could not move the generated sample into {folder}; delete that folder and try again"
                ) from None
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return folder / "Dataset"
