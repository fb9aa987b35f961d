"""What every figure shares: the class colours, saving to img/, and showing any image type."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import torch

from dflib import CLASS_NAMES

CLASS_COLORS = {"real": "#2a9d8f", "fake": "#e76f51"}
CLASSES = list(CLASS_NAMES)  # index = label: real, fake (the order of bars, legends and matrix rows)


def save_figure(fig: plt.Figure, path: str | os.PathLike | None, dpi: int = 110) -> None:
    """Save ``fig`` (creating the folder) when ``path`` is given; figures for the README go to img/."""
    if path:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=dpi, bbox_inches="tight")


def as_hwc(img) -> np.ndarray:
    """An image as an HxWxC array for ``imshow``: PIL images, arrays, CxHxW tensors (floats clamped to [0, 1])."""
    if isinstance(img, torch.Tensor):
        img = img.detach().cpu()
        if img.dtype.is_floating_point:
            img = img.clamp(0, 1)
        return img.permute(1, 2, 0).numpy()
    return np.asarray(img)


def image_grid(
    images: Sequence,
    titles: Sequence[str] | None = None,
    ncols: int = 6,
    size: float = 1.9,
    suptitle: str | None = None,
) -> plt.Figure:
    """Show images (PIL, HxWx3 arrays, or CxHxW tensors) in a grid with small titles."""
    n = len(images)
    nrows = max(1, int(np.ceil(n / ncols)))
    fig, axes = plt.subplots(nrows, ncols, figsize=(size * ncols, size * nrows + 0.4), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for i, img in enumerate(images):
        ax = axes.ravel()[i]
        ax.imshow(as_hwc(img))
        if titles is not None:
            ax.set_title(titles[i], fontsize=8)
    if suptitle:
        fig.suptitle(suptitle)
    fig.tight_layout()
    return fig


class Table:
    """A table that reads well everywhere: styled HTML in JupyterLab and the rendered pages, and
    aligned text (with the same number formats) in text viewers, ``print`` and GitHub's diff.

    A bare ``Styler`` saves only HTML plus ``<pandas Styler at 0x...>`` as its text form.

        >>> display(plots.table(df.style.format({"params": "{:,}"})))
    """

    def __init__(self, data) -> None:
        import pandas as pd

        if isinstance(data, pd.DataFrame):
            data = data.style
        if not hasattr(data, "to_html") or not hasattr(data, "to_string"):
            raise TypeError(f"table() takes a DataFrame or its .style (a Styler), got {type(data).__name__}")
        self.styler = data

    def _repr_html_(self) -> str:
        return self.styler.to_html()

    def __repr__(self) -> str:
        sep = "\x1f"  # a delimiter no cell contains
        rows = [line.split(sep) for line in self.styler.to_string(delimiter=sep).splitlines()]
        width = max(len(r) for r in rows)
        rows = [r + [""] * (width - len(r)) for r in rows]
        widths = [max(len(r[i]) for r in rows) for i in range(width)]
        out = []
        for r in rows:
            first = r[0].ljust(widths[0])  # the index, left-aligned; values right-aligned
            out.append("  ".join([first, *(c.rjust(w) for c, w in zip(r[1:], widths[1:]))]).rstrip())
        return "\n".join(out)


def table(data) -> Table:
    """``data`` (a DataFrame or a ``Styler``) as a :class:`Table` for ``display``."""
    return Table(data)
