"""Seed variance of the shipped recipes: train each with several seeds, report Test ROC-AUC mean ± sd.

    python benchmarks/seed_spread.py [--recipes sqnxt23_w1 resnet18_w16 vit_face_conv_128]
                                     [--seeds 0 1 2] [--data DIR] [--out img/seed_spread]
                                     [--augment recipe off] [--epochs N] [--update]

One number from one seed says little: on the embedded sample the same recipe moves by a point or
more from seed to seed (initial weights, data order, augmentation). Each run trains with
``dflib.training.fit_and_score("Test", **recipe(name), seed=s)`` into a temporary folder (Test
scored with the checkpoint's own card), and the script writes
``<out>.json`` (every run) and ``<out>.md`` (the table the README cites), next to the strongest
trivial baseline of the same data (``dflib.evaluation.baselines``) for the margin.

``--augment recipe off`` trains every recipe twice per seed, with its own augmentation and with
none (rows ``<recipe>`` and ``<recipe> (no augmentation)``): what augmentation is worth at the
same budget (notebook 05 shows ``img/augment_effect.md``, made with
``--recipes resnet18_w16 --augment recipe off --out img/augment_effect``). ``--epochs`` overrides
every recipe's epochs (both arms alike). ``--update`` re-runs only ``--recipes`` and keeps the
other recipes' runs from ``<out>.json`` (after a change to one recipe).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

from dflib.data import resolve_data_dir
from dflib.data.synthetic import GENERATOR_VERSION
from dflib.evaluation import difficulty_baselines
from dflib.evaluation.baselines import strongest_baseline
from dflib.training import fit_and_score
from dflib.training.recipes import RECIPES, recipe

NO_AUGMENT = " (no augmentation)"


def run_one(name: str, seed: int, data_dir: Path, work: Path, augment: str = "recipe", **overrides) -> dict:
    """Train recipe `name` with `seed` (``augment="off"``: without augmentation), score Test; one JSON-able row."""
    start = time.perf_counter()
    if augment == "off":
        overrides["augment"] = False
    stem = f"{name}_s{seed}" + ("_noaug" if augment == "off" else "")
    kw = recipe(name, seed=seed, name=stem, out=str(work), progress=False, **overrides)
    res, ev = fit_and_score("Test", **kw, data_dir=str(data_dir))
    return {
        "recipe": name + (NO_AUGMENT if augment == "off" else ""),
        "seed": seed,
        "test_roc_auc": float(ev["roc_auc"]),
        "val_roc_auc": float(res.best.get("val_roc_auc", float("nan"))),
        "epochs": int(res.epochs_trained),
        "minutes": round((time.perf_counter() - start) / 60, 2),
    }


def summarise(rows: list[dict]) -> list[dict]:
    """Mean, sd (n - 1) and range of Test ROC-AUC per recipe."""
    out = []
    for name in dict.fromkeys(r["recipe"] for r in rows):
        aucs = [r["test_roc_auc"] for r in rows if r["recipe"] == name]
        sd = statistics.stdev(aucs) if len(aucs) > 1 else float("nan")
        out.append(
            {
                "recipe": name,
                "seeds": len(aucs),
                "mean": statistics.fmean(aucs),
                "sd": sd,
                "min": min(aucs),
                "max": max(aucs),
            }
        )
    return out


def markdown(summary: list[dict], baseline: dict | None, provenance: str = "") -> str:
    lines = ["| detector | seeds | Test ROC-AUC mean ± sd | min – max |", "|---|---|---|---|"]
    for s in summary:
        sd = "n/a" if s["sd"] != s["sd"] else f"{s['sd']:.3f}"
        lines.append(f"| {s['recipe']} | {s['seeds']} | {s['mean']:.3f} ± {sd} | {s['min']:.3f} – {s['max']:.3f} |")
    if baseline:
        lines.append(
            f"\nStrongest trivial baseline on the same Test split: {baseline['feature']}, "
            f"ROC-AUC {baseline['test_roc_auc']:.3f} [{baseline['low']:.3f}, {baseline['high']:.3f}]."
        )
    if provenance:
        lines.append("\n" + provenance)
    return "\n".join(lines) + "\n"


def provenance_line(argv: list[str], data: str, started: str, minutes: float) -> str:
    """Command, data, date and machine of a sweep (the last line of ``<out>.md``)."""
    import torch

    machine = (
        f"{torch.cuda.get_device_name(0)}, torch {torch.__version__}"
        if torch.cuda.is_available()
        else f"{platform.machine()} {platform.system()}, {os.cpu_count()} CPU cores, torch {torch.__version__}, no GPU"
    )
    return (
        f"Measured with `python benchmarks/seed_spread.py {' '.join(argv)}` on {data or 'the embedded sample'}; "
        f"started {started}, {minutes:.0f} min in all; {machine}."
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--recipes", nargs="+", default=list(RECIPES), choices=list(RECIPES))
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    ap.add_argument("--data", default="", help="Dataset folder (default: the embedded sample)")
    ap.add_argument("--out", default="img/seed_spread", help="output stem: <out>.json and <out>.md")
    ap.add_argument(
        "--augment",
        nargs="+",
        default=["recipe"],
        choices=["recipe", "off"],
        help="recipe = each recipe's own augmentation, off = none; give both for one row of each",
    )
    ap.add_argument("--epochs", type=int, default=None, help="override every recipe's epochs (both arms alike)")
    ap.add_argument("--dry-run", action="store_true", help="1 seed, 1 epoch, 8 images per class at 64 px (a test)")
    ap.add_argument(
        "--update",
        action="store_true",
        help="keep the runs of the other recipes already in <out>.json (same data only) and replace those of --recipes",
    )
    args = ap.parse_args(argv)
    overrides = {"epochs": args.epochs} if args.epochs else {}
    if args.dry_run:
        args.seeds = args.seeds[:1]
        overrides = {"epochs": 1, "limit_per_class": 8, "img_size": 64, "batch_size": 8, "workers": 0}

    data_dir = resolve_data_dir(args.data)
    source = (
        str(data_dir)
        if args.data
        else f"embedded synthetic sample, default SampleConfig, generator v{GENERATOR_VERSION} (dflib.data.synthetic)"
    )
    base = difficulty_baselines(data_dir, per_method=False)
    strongest = {k: (v.item() if hasattr(v, "item") else v) for k, v in strongest_baseline(base).items()}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    rows = kept_runs(out, source, args.recipes) if args.update else []
    kept = sorted({r["recipe"] for r in rows})
    started, t0 = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"), time.perf_counter()
    given = list(argv) if argv is not None else sys.argv[1:]
    with tempfile.TemporaryDirectory(prefix="dflib-seeds-") as tmp:
        for name in args.recipes:
            for augment in args.augment:
                for seed in args.seeds:
                    rows.append(run_one(name, seed, data_dir, Path(tmp), augment, **overrides))
                    r = rows[-1]
                    print(
                        f"{r['recipe']} seed {seed}: Test ROC-AUC {r['test_roc_auc']:.4f} (val {r['val_roc_auc']:.4f}, "
                        f"{r['epochs']} epochs, {r['minutes']:.1f} min)",
                        flush=True,
                    )
                    note = provenance_line(given, args.data, started, (time.perf_counter() - t0) / 60)
                    if kept:
                        note += f" The runs of {', '.join(kept)} were kept from an earlier sweep (--update)."
                    table = write(out, source, rows, strongest, note)  # after every run: a stopped sweep keeps it
    print(table)
    return 0


def kept_runs(out: Path, source: str, recipes: list[str]) -> list[dict]:
    """The runs in ``<out>.json`` of recipes other than ``recipes`` (either augmentation arm); refuses
    a file made on other data."""
    path = out.with_suffix(".json")
    if not path.is_file():
        return []
    saved = json.loads(path.read_text())
    if saved.get("data") != source:
        raise SystemExit(f"--update: {path} was made on {saved.get('data')!r}, not {source!r}; drop --update")
    kept = [r for r in saved.get("runs", []) if r["recipe"].removesuffix(NO_AUGMENT) not in recipes]
    print(f"kept {len(kept)} run(s) of {sorted({r['recipe'] for r in kept})} from {path}")
    return kept


def write(out: Path, source: str, rows: list[dict], strongest: dict, provenance: str = "") -> str:
    """Write ``<out>.json`` (runs + summary) and ``<out>.md`` (the table); returns the table."""
    summary = summarise(rows)
    out.with_suffix(".json").write_text(
        json.dumps({"data": source, "runs": rows, "summary": summary, "strongest_baseline": strongest}, indent=1) + "\n"
    )
    table = markdown(summary, strongest, provenance)
    out.with_suffix(".md").write_text(table)
    return table


if __name__ == "__main__":
    sys.exit(main())
