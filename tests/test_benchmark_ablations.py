"""``--dry-run`` of the two training benchmarks behind notebooks 04 and 05 (one epoch on a few images),
so that the scripts that made ``img/vit_ablation.*`` and ``img/augment_effect.*`` keep working."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import load_benchmark

ROOT = Path(__file__).resolve().parent.parent


def _run(script: str, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT), "DFLIB_PROGRESS": "0"}
    return subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / script), "--dry-run", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=280,
    )


@pytest.mark.timeout(300)
def test_vit_ablation_dry_run_writes_one_row_per_change(tmp_path):
    done = _run("vit_ablation.py", "--rows", "plain", "all", "--out", str(tmp_path / "abl"), cwd=tmp_path)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
    vit_ablation = load_benchmark("vit_ablation")
    runs = vit_ablation.read_csv(tmp_path / "abl.csv")
    assert [r["row"] for r in runs] == ["plain", "all"]
    assert [(r["stem"], r["pool"], r["augment"]) for r in runs] == [("patch", "cls", False), ("conv", "mean", True)]
    assert len({v[1:] for v in vit_ablation.ROWS.values()}) == len(vit_ablation.ROWS)  # five different models
    assert all(0 <= r["test_roc_auc"] <= 1 for r in runs)
    md = (tmp_path / "abl.md").read_text()
    assert "| plain |" in md and "| all |" in md and "Measured with `python benchmarks/vit_ablation.py" in md
    # every row trains the same network at the same budget: only stem, pool and augmentation differ
    kws = [vit_ablation.settings(row, 0, 20, 3e-4) for row in vit_ablation.ROWS]
    for kw in kws:
        for key in ("model", "img_size", "epochs", "lr", "batch_size", "seed", "patience"):
            assert kw[key] == kws[0][key]
        assert {k: v for k, v in kw["model_options"].items() if k not in ("stem", "pool")} == {
            k: v for k, v in kws[0]["model_options"].items() if k not in ("stem", "pool")
        }


@pytest.mark.timeout(300)
def test_seed_spread_dry_run_with_and_without_augmentation(tmp_path):
    done = _run(
        "seed_spread.py",
        "--recipes",
        "resnet18_w16",
        "--augment",
        "recipe",
        "off",
        "--out",
        str(tmp_path / "aug"),
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
    saved = json.loads((tmp_path / "aug.json").read_text())
    assert [r["recipe"] for r in saved["runs"]] == ["resnet18_w16", "resnet18_w16 (no augmentation)"]
    assert "Measured with `python benchmarks/seed_spread.py" in (tmp_path / "aug.md").read_text()
