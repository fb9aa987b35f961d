"""SqueezeNeXt's residual_init (initial BatchNorm scale of each unit's last layer): 0.2 vs 1.0, over seeds.

    python benchmarks/residual_init.py [--seeds 0 1 2] [--inits 1.0 0.2] [--data DIR] [--out img/03_residual_init]

Notebook 03 trains sqnxt23_w1 twice with one seed to show why dflib starts each unit near the
identity (residual_init=0.2) instead of the reference's 1.0. One seed is an anecdote; this script
repeats exactly the notebook's short run (its default parameters: 96 px, 6 epochs, batch 32,
lr 0.002, no augmentation, 250 images per class, no early stopping) for each seed and each init,
and writes ``<out>.csv`` (one row per run) and ``<out>.md`` (per-seed values, mean ± sd, and the
per-seed difference, which is paired: both inits see the same data order for a given seed).
The notebook shows the saved table; ``residual_init_live=True`` there recomputes it.
"""

from __future__ import annotations

import argparse
import platform
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import torch

from dflib.data import resolve_data_dir
from dflib.training import fit

# The notebook's short run (notebooks/03_squeezenext.ipynb, parameters cell).
SHORT_RUN = dict(
    model="sqnxt23_w1",
    img_size=96,
    epochs=6,
    batch_size=32,
    lr=0.002,
    augment=False,
    limit_per_class=250,
    patience=None,
)


def run_one(residual_init: float, seed: int, data_dir: Path, work: Path) -> dict:
    """One short run; the row the table is built from."""
    start = time.perf_counter()
    res = fit(
        **SHORT_RUN,
        model_options={"residual_init": residual_init},
        data_dir=str(data_dir),
        seed=seed,
        device="cpu",
        out=str(work),
        name=f"g{residual_init:g}_s{seed}",
        overwrite=True,
        progress=False,
    )
    h = res.history
    return {
        "residual_init": residual_init,
        "seed": seed,
        "best_val_roc_auc": float(res.best["val_roc_auc"]),
        "final_val_roc_auc": float(h["val_roc_auc"].iloc[-1]),
        "final_train_loss": float(h["train_loss"].iloc[-1]),
        "minutes": round((time.perf_counter() - start) / 60, 2),
    }


def markdown(runs: pd.DataFrame, note: str) -> str:
    """Per-seed best validation ROC-AUC for each init, mean ± sd, and the paired difference."""
    wide = runs.pivot(index="seed", columns="residual_init", values="best_val_roc_auc")
    inits = sorted(wide.columns, reverse=True)
    lines = [
        "| seed | " + " | ".join(f"residual_init {g:g}" for g in inits) + " | difference (0.2 − 1.0) |",
        "|---|" + "---|" * (len(inits) + 1),
    ]
    diff = wide[0.2] - wide[1.0] if {0.2, 1.0} <= set(inits) else None
    for seed, row in wide.iterrows():
        d = "" if diff is None else f"{diff[seed]:+.3f}"
        lines.append(f"| {seed} | " + " | ".join(f"{row[g]:.3f}" for g in inits) + f" | {d} |")
    sd = wide.std(ddof=1)
    lines.append(
        "| mean ± sd | "
        + " | ".join(f"{wide[g].mean():.3f} ± {sd[g]:.3f}" for g in inits)
        + ("" if diff is None else f" | {diff.mean():+.3f} ± {diff.std(ddof=1):.3f}")
        + " |"
    )
    return "Best validation ROC-AUC of the short run, per seed.\n\n" + "\n".join(lines) + f"\n\n{note}\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    ap.add_argument("--inits", nargs="+", type=float, default=[1.0, 0.2])
    ap.add_argument("--data", default="", help="Dataset folder (default: the embedded sample)")
    ap.add_argument("--out", default="img/03_residual_init", help="output stem: <out>.csv and <out>.md")
    args = ap.parse_args(argv)

    data_dir = resolve_data_dir(args.data)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    rows: list[dict] = []
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="dflib-resinit-") as tmp:
        for seed in args.seeds:
            for g in args.inits:
                rows.append(run_one(g, seed, data_dir, Path(tmp)))
                r = rows[-1]
                print(
                    f"residual_init {g:g} seed {seed}: best val ROC-AUC {r['best_val_roc_auc']:.4f} "
                    f"(final {r['final_val_roc_auc']:.4f}, train loss {r['final_train_loss']:.4f}, "
                    f"{r['minutes']:.1f} min)",
                    flush=True,
                )
    runs = pd.DataFrame(rows)
    runs.to_csv(out.with_suffix(".csv"), index=False)
    note = (
        f"Measured with `benchmarks/residual_init.py` ({len(rows)} runs, "
        f"{(time.perf_counter() - start) / 60:.0f} min) on "
        f"{'the embedded sample' if not args.data else args.data}, CPU ({platform.processor() or platform.machine()}), "
        f"torch {torch.__version__}: sqnxt23_w1, 96 px, 6 epochs, batch 32, lr 0.002, no augmentation, "
        "250 images per class, Validation ROC-AUC of the best epoch."
    )
    table = markdown(runs, note)
    out.with_suffix(".md").write_text(table)
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
