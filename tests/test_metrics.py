"""Metrics, operating points, thresholds, bootstrap intervals and reports, against hand-computed values."""

from __future__ import annotations

import json
import math
import warnings

import numpy as np
import pandas as pd
import pytest
from sklearn import metrics as skm

from dflib.evaluation import (
    accuracy,
    all_metrics,
    balanced_accuracy,
    bootstrap_ci,
    choose_threshold,
    confusion_matrix,
    eer,
    equal_error_rate,
    f1,
    full_report,
    metrics_table,
    per_class_accuracy,
    per_method_metrics,
    precision,
    recall,
    report_on_test,
    roc_auc,
    tpr_at_fpr,
)
from dflib.evaluation.report import infer_holdout_method, stratified_indices

# 2 reals (0.1, 0.4) and 2 fakes (0.35, 0.8), as in test_evaluate.py.
LABELS = [0, 0, 1, 1]
SCORES = [0.1, 0.4, 0.35, 0.8]


def test_threshold_metrics_by_hand():
    # threshold 0.5 -> predictions [real, real, real, fake]: TN = 2, FP = 0, FN = 1 (0.35), TP = 1 (0.8)
    assert confusion_matrix(LABELS, SCORES).tolist() == [[2, 0], [1, 1]]
    assert precision(LABELS, SCORES) == pytest.approx(1.0)  # TP / (TP + FP) = 1 / 1
    assert recall(LABELS, SCORES) == pytest.approx(0.5)  # TP / (TP + FN) = 1 / 2
    assert f1(LABELS, SCORES) == pytest.approx(2 / 3)  # 2 * 1 * 0.5 / (1 + 0.5)
    assert per_class_accuracy(LABELS, SCORES) == pytest.approx({"real": 1.0, "fake": 0.5})
    assert balanced_accuracy(LABELS, SCORES) == pytest.approx(0.75)  # (1 + 0.5) / 2
    # threshold 0.35 (>=): predictions [real, fake, fake, fake]: TN 1, FP 1, FN 0, TP 2
    assert confusion_matrix(LABELS, SCORES, 0.35).tolist() == [[1, 1], [0, 2]]
    assert precision(LABELS, SCORES, 0.35) == pytest.approx(2 / 3)  # 2 / (2 + 1)
    assert recall(LABELS, SCORES, 0.35) == pytest.approx(1.0)
    assert f1(LABELS, SCORES, 0.35) == pytest.approx(0.8)  # 2 * (2/3) * 1 / (2/3 + 1)
    # nothing called fake: precision is 0 by convention, not a crash
    assert precision(LABELS, SCORES, 0.99) == 0.0 and f1(LABELS, SCORES, 0.99) == 0.0


def test_eer_by_hand_exact_crossing():
    # ROC points (threshold: FPR, FNR): inf (0, 1), 0.8 (0, 1/2), 0.4 (1/2, 1/2) <- FPR = FNR, 0.35 (1/2, 0)
    assert equal_error_rate(LABELS, SCORES) == pytest.approx((0.5, 0.4))
    # perfectly separated: at 0.7 no real is flagged and no fake is missed
    assert equal_error_rate([0, 0, 1, 1], [0.1, 0.2, 0.7, 0.9]) == pytest.approx((0.0, 0.7))


def test_eer_by_hand_interpolated():
    # reals 0.3, 0.6; fakes 0.5, 0.7, 0.9. ROC points (threshold: FPR, FNR):
    #   0.9: (0, 2/3)   0.7: (0, 1/3)   0.6: (1/2, 1/3)   0.5: (1/2, 0)
    # FNR - FPR goes from +1/3 (at 0.7) to -1/6 (at 0.6): the curves cross at t = (1/3) / (1/3 + 1/6) = 2/3
    # of the way, where FPR = 0 + 2/3 * 1/2 = 1/3 = FNR. The closest ROC point is 0.6 (|-1/6| < 1/3).
    rate, thr = equal_error_rate([0, 0, 1, 1, 1], [0.3, 0.6, 0.5, 0.7, 0.9])
    assert rate == pytest.approx(1 / 3) and thr == pytest.approx(0.6)
    assert eer([0, 0, 1, 1, 1], [0.3, 0.6, 0.5, 0.7, 0.9]) == pytest.approx(1 / 3)


# 20 reals at 0.00, 0.05, ..., 0.95 (each step of FPR is 1/20 = 5 %) and 5 fakes.
REALS = [i / 20 for i in range(20)]
FAKES = [0.97, 0.93, 0.88, 0.5, 0.2]
Y20 = [0] * 20 + [1] * 5
S20 = REALS + FAKES


def test_tpr_at_fpr_by_hand():
    # FPR <= 1 %: no real may score above the threshold -> only 0.97 is caught: TPR 1/5
    assert tpr_at_fpr(Y20, S20, 0.01) == pytest.approx(0.2)
    # FPR <= 5 %: one real (0.95) may pass -> threshold 0.93 catches 0.97, 0.93: TPR 2/5
    assert tpr_at_fpr(Y20, S20, 0.05) == pytest.approx(0.4)
    # FPR <= 10 %: reals 0.95, 0.90 may pass -> threshold 0.88 catches three fakes: TPR 3/5
    assert tpr_at_fpr(Y20, S20, 0.10) == pytest.approx(0.6)
    assert tpr_at_fpr(LABELS, SCORES, 0.05) == pytest.approx(0.5)  # 0.8 before the first real (0.4)


def test_choose_threshold_methods():
    assert choose_threshold(LABELS, SCORES, "eer") == pytest.approx(0.4)
    assert choose_threshold([0, 0, 1, 1, 1], [0.3, 0.6, 0.5, 0.7, 0.9], method="eer") == pytest.approx(0.6)
    assert choose_threshold(Y20, S20, "fpr", target_fpr=0.05) == pytest.approx(0.93)
    assert choose_threshold(Y20, S20, "fpr", target_fpr=0.01) == pytest.approx(0.97)
    # the top score is a real: no threshold gives FPR 0 except "nothing is fake"
    thr = choose_threshold([0, 1], [0.9, 0.1], "fpr", target_fpr=0.0)
    assert thr > 0.9 and accuracy([0, 1], [0.9, 0.1], thr) == pytest.approx(0.5)
    assert choose_threshold(LABELS, SCORES) == choose_threshold(LABELS, SCORES, "youden")  # default unchanged


def test_threshold_is_never_chosen_on_test():
    with pytest.raises(ValueError, match="Validation"):
        choose_threshold(LABELS, SCORES, split="Test")
    assert choose_threshold(LABELS, SCORES, split="Validation") == pytest.approx(0.8)


def test_all_metrics_agree_with_sklearn_and_the_single_functions():
    rng = np.random.default_rng(0)
    for n, ties in [(7, False), (60, True), (300, False)]:
        y = rng.integers(0, 2, n)
        y[:2] = [0, 1]
        s = rng.integers(0, 6, n) / 5 if ties else rng.random(n)
        m = all_metrics(y, s, 0.5)
        assert m["roc_auc"] == pytest.approx(skm.roc_auc_score(y, s))
        assert m["average_precision"] == pytest.approx(skm.average_precision_score(y, s))
        assert m["eer"] == pytest.approx(eer(y, s))
        assert m["tpr_at_fpr_5pct"] == pytest.approx(tpr_at_fpr(y, s, 0.05))
        for name, fn in [
            ("accuracy", accuracy),
            ("balanced_accuracy", balanced_accuracy),
            ("precision", precision),
            ("recall", recall),
            ("f1", f1),
        ]:
            assert m[name] == pytest.approx(fn(y, s, 0.5)), name
        assert m["confusion_matrix"] == confusion_matrix(y, s, 0.5).tolist()
        assert m["accuracy_real"] == pytest.approx(per_class_accuracy(y, s)["real"])


def test_bootstrap_is_stratified_deterministic_and_covers_the_estimate():
    rng = np.random.default_rng(1)
    y = np.r_[np.zeros(60, int), np.ones(40, int)]
    s = np.clip(0.35 * y + rng.random(100) * 0.65, 0, 1)
    idx = stratified_indices(y, n_boot=50, seed=0)
    assert idx.shape == (50, 100) and (y[idx].sum(axis=1) == 40).all()  # every resample keeps 40 fakes
    ci = bootstrap_ci(y, s, roc_auc, n_boot=150, seed=7)
    assert ci.estimate == pytest.approx(roc_auc(y, s))
    assert ci.low <= ci.estimate <= ci.high and ci.high - ci.low > 0.01
    assert bootstrap_ci(y, s, roc_auc, n_boot=150, seed=7) == ci  # same seed, same interval
    assert bootstrap_ci(y, s, roc_auc, n_boot=150, seed=8) != ci
    narrow = bootstrap_ci(y, s, roc_auc, n_boot=150, seed=7, alpha=0.5)
    assert ci.low <= narrow.low <= narrow.high <= ci.high


def test_bootstrap_skips_undefined_resamples():
    y = np.r_[np.zeros(10, int), np.ones(10, int)]
    s = np.linspace(0, 1, 20)

    def needs_the_top_score(yy, ss):  # undefined on resamples that miss the top score (about 1 in 3)
        if ss.max() < 1.0:
            raise ValueError("undefined")
        return float(ss.mean())

    ci = bootstrap_ci(y, s, needs_the_top_score, n_boot=200, seed=0)
    assert math.isfinite(ci.low) and ci.low <= ci.estimate <= ci.high
    with pytest.warns(UserWarning, match="no bootstrap resample"):
        nan_ci = bootstrap_ci(y, s, lambda yy, ss: float("nan") if len(set(ss)) < 20 else 0.5, n_boot=20)
    assert math.isnan(nan_ci.low) and math.isnan(nan_ci.high)


def test_full_report_table_and_honest_threshold():
    rng = np.random.default_rng(2)
    y_val, y_test = rng.integers(0, 2, 200), rng.integers(0, 2, 150)
    s_val = np.clip(0.3 * y_val + 0.7 * rng.random(200), 0, 1)
    s_test = np.clip(0.3 * y_test + 0.7 * rng.random(150), 0, 1)
    rep = full_report(y_test, s_test, 0.5, n_boot=200)
    assert rep["n"] == 150 and rep["n_fake"] == int(y_test.sum()) and rep["threshold"] == 0.5
    assert rep["metrics"]["roc_auc"]["value"] == pytest.approx(roc_auc(y_test, s_test))
    assert rep["metrics"]["f1"]["value"] == pytest.approx(f1(y_test, s_test, 0.5))
    for name, m in rep["metrics"].items():
        assert m["low"] <= m["value"] + 1e-12 and m["value"] <= m["high"] + 1e-12, name
    json.dumps(rep)  # JSON-friendly: plain floats, ints and lists
    honest = report_on_test(y_val, s_val, y_test, s_test, method="fpr", target_fpr=0.05, n_boot=50)
    assert honest["threshold"] == pytest.approx(choose_threshold(y_val, s_val, "fpr", target_fpr=0.05))
    assert honest["threshold_source"] == "Validation" and honest["threshold_method"] == "fpr"
    table = metrics_table({"a": rep, "b": honest})
    assert list(table.columns) == ["a", "b"] and "ROC-AUC" in table.index
    assert table.loc["ROC-AUC", "a"].count("[") == 1
    numeric = metrics_table(rep, formatted=False, pretty=False)
    assert numeric.loc["roc_auc", ("model", "value")] == pytest.approx(rep["metrics"]["roc_auc"]["value"])


def _manifest() -> pd.DataFrame:
    rows = [("Train/Real/real_00000.jpg", "Train", 0, "real"), ("Train/Fake/fake_00000.jpg", "Train", 1, "face_swap")]
    for i in range(4):
        rows.append((f"Test/Real/real_{i:05d}.jpg", "Test", 0, "real"))
    for i, m in enumerate(["face_swap", "face_swap", "upsampling", "upsampling"]):
        rows.append((f"Test/Fake/fake_{i:05d}.jpg", "Test", 1, m))
    return pd.DataFrame(rows, columns=["path", "split", "label", "method"])


def test_per_method_metrics_by_hand():
    man = _manifest()
    test = man[man.split == "Test"]
    paths = ["/data/Dataset/" + p for p in test.path]
    scores = [0.1, 0.2, 0.3, 0.4, 0.9, 0.8, 0.35, 0.05]  # reals, then face_swap x2, upsampling x2
    df = per_method_metrics(man, paths, scores, threshold=0.5).set_index("method")
    # face_swap (0.9, 0.8) beats every real: AUC 1, both caught at 0.5
    assert df.loc["face_swap", ["roc_auc", "recall", "n"]].tolist() == pytest.approx([1.0, 1.0, 2])
    # upsampling: 0.35 beats 3 of 4 reals, 0.05 none -> 3/8; neither caught
    assert df.loc["upsampling", ["roc_auc", "recall"]].tolist() == pytest.approx([0.375, 0.0])
    # all fakes: (8 + 3) / 16 pairs; 2 of 4 caught
    assert df.loc["all fakes", ["roc_auc", "recall", "n_real"]].tolist() == pytest.approx([11 / 16, 0.5, 4])
    # Train's fakes never use upsampling: it is the held-out method
    assert infer_holdout_method(man) == "upsampling"
    assert df["held_out"].to_dict() == {"face_swap": False, "upsampling": True, "all fakes": False}
    assert not per_method_metrics(man, paths, scores, holdout_method=None)["held_out"].any()
    # with n_boot: a bootstrap interval per row, around its ROC-AUC (face_swap beats every real in every resample)
    boot = per_method_metrics(man, paths, scores, threshold=0.5, n_boot=100).set_index("method")
    assert boot.loc["face_swap", ["roc_auc_low", "roc_auc_high"]].tolist() == pytest.approx([1.0, 1.0])
    assert (boot["roc_auc_low"] <= boot["roc_auc"]).all() and (boot["roc_auc"] <= boot["roc_auc_high"]).all()
    assert "roc_auc_low" not in df.columns


def test_per_method_metrics_on_a_generated_sample(tmp_path):
    from dflib.data import DeepfakeDataset
    from dflib.data.synthetic import SampleConfig, generate_sample, read_manifest

    ds_dir = generate_sample(
        tmp_path,
        SampleConfig(per_class=4, eval_per_class=4, size=32, seed=1, holdout_method="local_warp"),
        progress=False,
    )
    ds = DeepfakeDataset(ds_dir, "Test")
    scores = np.linspace(0.05, 0.95, len(ds))
    df = per_method_metrics(ds_dir, ds.paths, scores)
    assert set(df.method) == set(read_manifest(ds_dir).query("label == 1").method) | {"all fakes"}
    assert df.set_index("method").loc["local_warp", "held_out"]


def test_bad_inputs_are_clear():
    with pytest.raises(ValueError, match="rate between 0 and 1"):
        tpr_at_fpr(LABELS, SCORES, 5)
    with pytest.raises(ValueError, match="rate between 0 and 1"):
        choose_threshold(LABELS, SCORES, "fpr", target_fpr=-0.1)
    with pytest.raises(ValueError, match="needs both real and fake"):
        equal_error_rate([1, 1], [0.2, 0.3])
    with pytest.raises(ValueError, match="needs both real and fake"):
        full_report([0, 0], [0.2, 0.3])
    with pytest.raises(ValueError, match="n_boot"):
        bootstrap_ci(LABELS, SCORES, roc_auc, n_boot=0)
    with pytest.raises(ValueError, match="alpha"):
        full_report(LABELS, SCORES, alpha=1.5)
    with pytest.raises(ValueError, match="threshold must be a finite number"):
        full_report(LABELS, SCORES, threshold=float("nan"))
    with pytest.raises(ValueError, match="not in the manifest"):
        per_method_metrics(_manifest(), ["/x/Test/Real/nope.jpg"], [0.5])
    with pytest.raises(ValueError, match="differ in length"):
        per_method_metrics(_manifest(), ["/x/Test/Real/real_00000.jpg"], [0.5, 0.2])
    with pytest.raises(ValueError, match="pass the output of full_report"):
        metrics_table({"m": {"roc_auc": 0.5}})
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a clean run warns about nothing
        full_report(LABELS * 5, SCORES * 5, n_boot=20)
