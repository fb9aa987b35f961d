"""``benchmarks/seed_spread.py``'s bookkeeping: the summary, the table, and --update keeping other recipes' runs."""

from __future__ import annotations

import json

import pytest

from tests.conftest import load_benchmark


@pytest.fixture(scope="module")
def spread():
    return load_benchmark("seed_spread")


def _run(recipe, seed, auc):
    return {"recipe": recipe, "seed": seed, "test_roc_auc": auc, "val_roc_auc": auc, "epochs": 1, "minutes": 0.1}


def test_summary_is_mean_and_sample_sd(spread):
    rows = [_run("a", 0, 0.90), _run("a", 1, 0.92), _run("a", 2, 0.94), _run("b", 0, 0.5)]
    a, b = spread.summarise(rows)
    assert (a["recipe"], a["seeds"]) == ("a", 3)
    assert a["mean"] == pytest.approx(0.92) and a["sd"] == pytest.approx(0.02)
    assert (a["min"], a["max"]) == (0.90, 0.94)
    assert b["sd"] != b["sd"]  # one seed: no sd
    table = spread.markdown([a, b], {"feature": "f", "test_roc_auc": 0.5, "low": 0.4, "high": 0.6})
    assert "| a | 3 | 0.920 ± 0.020 | 0.900 – 0.940 |" in table and "| b | 1 | 0.500 ± n/a |" in table
    assert "Strongest trivial baseline on the same Test split: f, ROC-AUC 0.500 [0.400, 0.600]" in table


def test_update_keeps_only_the_other_recipes_runs_of_the_same_data(spread, tmp_path):
    out = tmp_path / "spread"
    data = "embedded synthetic sample, generator v3"
    rows = [_run("a", 0, 0.9), _run("b", 0, 0.6), _run("b", 1, 0.7)]
    out.with_suffix(".json").write_text(json.dumps({"data": data, "runs": rows}))
    assert spread.kept_runs(out, data, ["b"]) == [rows[0]]
    assert spread.kept_runs(tmp_path / "missing", data, ["b"]) == []
    with pytest.raises(SystemExit, match="made on"):
        spread.kept_runs(out, "/data/Dataset", ["b"])
