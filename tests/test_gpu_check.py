"""``benchmarks/gpu_check.py --dry-run``: every GPU code path of the check, run tiny on the CPU, so it never rots."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.timeout(300)
def test_gpu_check_dry_run_prints_one_complete_table():
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "gpu_check.py"), "--dry-run"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=280,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
    table = done.stdout[done.stdout.index("check    |") :]
    rows = [line.split("|") for line in table.splitlines()[2:] if "|" in line]
    checks = {r[0].strip() for r in rows}
    assert checks == {"train", "full", "resume", "evaluate", "predict", "torchrun"}
    models = {r[1].strip() for r in rows if r[0].strip() in ("train", "full")}
    assert models == {"sqnxt23_w1", "resnet18_w16", "vit_face_conv_128", "resnet18"}
    settings = " ".join(r[3] for r in rows)
    for what in ("fp32", "bfloat16", "channels-last", "torch.compile", "JPEGs decoded by the CPU loader"):
        assert what in settings
    assert "goal >= 0.90" in table
    assert "max |d weight| 0; history identical" in table  # resume is exact in deterministic mode
    assert "cpu fp32 vs cpu fp32" in table and "max |dP(fake)| 0.00e+00" in table
    assert "ok in" in table and "backend gloo, world size 1" in table
