"""One change at a time: what makes a small ViT learn on the embedded sample (notebook 04).

    python benchmarks/vit_ablation.py [--epochs 20] [--seeds 0 1 2] [--lr 3e-4] [--batch-size 32]
                                      [--patch-size 16]
                                      [--rows plain conv_stem mean_pool augment all]
                                      [--data DIR] [--out img/vit_ablation] [--dry-run]

Every row trains the same network at the same budget: a narrow ViT (embed_dim 96, depth 4,
3 heads; 16 px tokens unless ``--patch-size``) at 128 px, the same data, epochs, learning rate,
batch size and seeds; only the changes named in the row differ from the plain ViT (linear patch
embedding, class-token pooling, no augmentation). The budget is pinned here, not read from the
``vit_face_conv_128`` recipe, so a later change of the recipe does not silently change what
the saved table means; only the augmentation is the recipe's.

    plain      the paper's ViT (Dosovitskiy et al. 2021): patch stem, class token, no augmentation
    conv_stem  + convolutional stem alone (Xiao et al. 2021)
    mean_pool  + mean pooling of the patch tokens alone
    augment    + the recipe's augmentation alone
    all        all three together (vit_face_conv_128's design, at this budget)

Each run is ``dflib.training.fit_and_score`` into a temporary folder (early stopping off, the best epoch
by Validation ROC-AUC kept), scored on Test with its own card (``evaluate_checkpoint``). The
script writes ``<out>.csv`` (one line per run) and ``<out>.md`` (the table, with the command,
date and machine) after every run, so an interrupted sweep keeps what it measured.
``--dry-run`` trains every row for one epoch on a few images at 64 px (a test that the script
works, not a measurement).
"""

from __future__ import annotations

import argparse
import csv
import os
import platform
import statistics
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

from dflib.data import resolve_data_dir
from dflib.training import fit_and_score
from dflib.training.recipes import RECIPES, recipe

BASE = "vit_face_conv_128"
# row -> (what it changes, stem, pool, augmentation on)
ROWS: dict[str, tuple[str, str, str, bool]] = {
    "plain": ("plain ViT: patch stem, class token, no augmentation", "patch", "cls", False),
    "conv_stem": ("+ convolutional stem alone", "conv", "cls", False),
    "mean_pool": ("+ mean pooling alone", "patch", "mean", False),
    "augment": ("+ augmentation alone", "patch", "cls", True),
    "all": ("all three (vit_face_conv_128's design)", "conv", "mean", True),
}
ARCH = {"embed_dim": 96, "depth": 4, "num_heads": 3}  # the width and depth of every row
IMG_SIZE = 128
FIELDS = ["row", "change", "stem", "pool", "augment", "seed", "test_roc_auc", "val_roc_auc", "best_epoch", "minutes"]


def settings(
    row: str, seed: int, epochs: int, lr: float, *, batch_size: int = 32, patch_size: int = 16, **extra
) -> dict:
    """``fit`` keyword arguments of one run of the ablation."""
    _, stem, pool, aug = ROWS[row]
    kw = recipe(BASE, seed=seed, epochs=epochs, lr=lr, patience=None, progress=False)
    kw.update(img_size=IMG_SIZE, batch_size=batch_size)
    kw["model_options"] = {**ARCH, "patch_size": patch_size, "stem": stem, "pool": pool}
    kw["augment"] = RECIPES[BASE].fit_kwargs()["augment"] if aug else False
    kw.update(extra)
    return kw


def run_one(row: str, seed: int, data_dir: Path, work: Path, epochs: int, lr: float, **extra) -> dict:
    start = time.perf_counter()
    kw = settings(row, seed, epochs, lr, name=f"{row}_s{seed}", out=str(work), **extra)
    res, ev = fit_and_score("Test", **kw, data_dir=str(data_dir))
    change, stem, pool, aug = ROWS[row]
    return {
        "row": row,
        "change": change,
        "stem": stem,
        "pool": pool,
        "augment": aug,
        "seed": seed,
        "test_roc_auc": round(float(ev["roc_auc"]), 4),
        "val_roc_auc": round(float(res.best.get("val_roc_auc", float("nan"))), 4),
        "best_epoch": int(res.best.get("epoch", 0)),
        "minutes": round((time.perf_counter() - start) / 60, 2),
    }


def summarise(rows: list[dict]) -> list[dict]:
    """Per ablation row: seeds, Test ROC-AUC mean, sd (n - 1), per-seed values, Validation mean."""
    out = []
    for name in dict.fromkeys(r["row"] for r in rows):
        runs = [r for r in rows if r["row"] == name]
        aucs = [float(r["test_roc_auc"]) for r in runs]
        out.append(
            {
                "row": name,
                "change": runs[0]["change"],
                "seeds": len(runs),
                "mean": statistics.fmean(aucs),
                "sd": statistics.stdev(aucs) if len(aucs) > 1 else float("nan"),
                "per_seed": {int(r["seed"]): float(r["test_roc_auc"]) for r in runs},
                "val_mean": statistics.fmean(float(r["val_roc_auc"]) for r in runs),
            }
        )
    return out


def markdown(summary: list[dict], provenance: str) -> str:
    lines = [
        "| row | change | seeds | Test ROC-AUC mean ± sd | per seed | Validation ROC-AUC mean |",
        "|---|---|---|---|---|---|",
    ]
    for s in summary:
        sd = "n/a" if s["sd"] != s["sd"] else f"{s['sd']:.3f}"
        per = ", ".join(f"{v:.3f}" for v in s["per_seed"].values())
        lines.append(
            f"| {s['row']} | {s['change']} | {s['seeds']} | {s['mean']:.3f} ± {sd} | {per} | {s['val_mean']:.3f} |"
        )
    return "\n".join(lines) + "\n\n" + provenance + "\n"


def read_csv(path: str | os.PathLike) -> list[dict]:
    """The runs of a saved ablation (``<out>.csv``), numbers as numbers."""
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    for r in rows:
        r["seed"] = int(r["seed"])
        r["best_epoch"] = int(r["best_epoch"])
        for k in ("test_roc_auc", "val_roc_auc", "minutes"):
            r[k] = float(r[k])
        r["augment"] = r["augment"] == "True"
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", nargs="+", default=list(ROWS), choices=list(ROWS))
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--lr", type=float, default=3e-4, help="AdamW peak learning rate, the same for every row")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--patch-size", type=int, default=16, help="token side in px (a power of two: conv stem)")
    ap.add_argument("--data", default="", help="Dataset folder (default: the embedded sample)")
    ap.add_argument("--out", default="img/vit_ablation", help="output stem: <out>.csv and <out>.md")
    ap.add_argument("--dry-run", action="store_true", help="1 seed, 1 epoch, 8 images per class, 64 px")
    args = ap.parse_args(argv)

    extra: dict = {}
    if args.dry_run:
        args.seeds, args.epochs = args.seeds[:1], 1
        extra = {"limit_per_class": 8, "img_size": 64, "workers": 0}
        args.batch_size = 8
    extra.update(batch_size=args.batch_size, patch_size=args.patch_size)
    data_dir = resolve_data_dir(args.data)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    command = "python benchmarks/vit_ablation.py " + " ".join(argv if argv is not None else sys.argv[1:])
    import torch

    machine = (
        f"{platform.machine()} {platform.system()}, {os.cpu_count()} CPU cores "
        f"(shared), torch {torch.__version__}, no GPU"
        if not torch.cuda.is_available()
        else f"{torch.cuda.get_device_name(0)}, torch {torch.__version__}"
    )
    started = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    rows: list[dict] = []
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="dflib-vit-ablation-") as tmp:
        for row in args.rows:
            for seed in args.seeds:
                rows.append(run_one(row, seed, data_dir, Path(tmp), args.epochs, args.lr, **extra))
                r = rows[-1]
                print(
                    f"{row} seed {seed}: Test ROC-AUC {r['test_roc_auc']:.4f} (val {r['val_roc_auc']:.4f} "
                    f"at epoch {r['best_epoch']}, {r['minutes']:.1f} min)",
                    flush=True,
                )
                provenance = (
                    f"Measured with `{command.strip()}` ({args.epochs} epochs, AdamW lr {args.lr:g}, batch "
                    f"{args.batch_size}, {extra.get('img_size', IMG_SIZE)} px, {args.patch_size} px tokens, "
                    f"width {ARCH['embed_dim']}, {ARCH['depth']} blocks, early stopping off, best epoch by "
                    f"Validation ROC-AUC) on {data_dir if args.data else 'the embedded sample'}; started "
                    f"{started}, {(time.perf_counter() - t0) / 60:.0f} min in all; {machine}."
                )
                table = write(out, rows, provenance)
    print(table)
    return 0


def write(out: Path, rows: list[dict], provenance: str) -> str:
    """Write ``<out>.csv`` (every run) and ``<out>.md`` (the table + provenance); returns the table."""
    with open(out.with_suffix(".csv"), "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=FIELDS)
        w.writeheader()
        w.writerows(rows)
    table = markdown(summarise(rows), provenance)
    out.with_suffix(".md").write_text(table)
    return table


if __name__ == "__main__":
    sys.exit(main())
