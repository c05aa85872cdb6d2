"""Calibration and confidence intervals behave as the statistics promise, on data with a known truth."""
from __future__ import annotations

import numpy as np

from biolens.engine import evaluation


def _simulate(n, temperature, seed=0, k=3):
    """Logits whose true class probabilities are softmax(logits / temperature): over-confident when T > 1."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(0, 3, (n, k))
    probs = evaluation.softmax(logits, temperature)
    labels = np.array([rng.choice(k, p=p) for p in probs])
    return logits, labels


def test_temperature_scaling_recovers_the_true_temperature():
    logits, labels = _simulate(4000, temperature=2.5)
    assert abs(evaluation.fit_temperature(logits, labels) - 2.5) < 0.3


def test_calibration_lowers_ece_on_fresh_data():
    val_logits, val_labels = _simulate(3000, 2.0, seed=1)
    test_logits, test_labels = _simulate(3000, 2.0, seed=2)
    t = evaluation.fit_temperature(val_logits, val_labels)
    raw, _ = evaluation.expected_calibration_error(evaluation.softmax(test_logits), test_labels)
    calibrated, _ = evaluation.expected_calibration_error(evaluation.softmax(test_logits, t), test_labels)
    assert calibrated < raw / 2


def test_conformal_sets_reach_their_coverage_on_new_data():
    val_logits, val_labels = _simulate(2000, 1.0, seed=3)
    test_logits, test_labels = _simulate(5000, 1.0, seed=4)
    q = evaluation.conformal_threshold(evaluation.softmax(val_logits), val_labels, alpha=0.1)
    sets = evaluation.prediction_sets(evaluation.softmax(test_logits), q)
    coverage = sets[np.arange(len(test_labels)), test_labels].mean()
    assert 0.88 <= coverage <= 0.93


def test_bootstrap_interval_brackets_the_estimate_and_groups_widen_it():
    rng = np.random.default_rng(0)
    groups = np.repeat(np.arange(40), 10)
    truth = np.tile([0, 1], 200)
    group_skill = rng.uniform(0.4, 1.0, 40)[groups]  # images of one group succeed or fail together
    correct = rng.uniform(size=400) < group_skill
    pred = np.where(correct, truth, 1 - truth)
    probs = np.eye(2)[pred] * 0.8 + 0.1
    plain = evaluation.classification_metrics(truth, probs, ["a", "b"], n_boot=400)
    grouped = evaluation.classification_metrics(truth, probs, ["a", "b"], groups=groups, n_boot=400)
    low, high = plain["balanced_accuracy_ci95"]
    assert low < plain["balanced_accuracy"] < high
    width = lambda m: m["balanced_accuracy_ci95"][1] - m["balanced_accuracy_ci95"][0]  # noqa: E731
    assert width(grouped) > 1.3 * width(plain)
    assert set(plain["per_class"]["a"]) >= {"precision", "recall", "f1", "recall_ci95", "support"}


def test_the_paired_interval_resamples_whole_groups_when_the_split_was_grouped():
    """Two models that differ group by group (where one source image is hard for one model, all its crops are):
    the paired interval by group is wider than by item and still holds the difference; with one item a group the
    two readings are the same bootstrap."""
    rng = np.random.default_rng(1)
    groups = np.repeat(np.arange(30), 12)
    truth = np.tile([0, 1], 180)
    a_skill, b_skill = rng.uniform(0.5, 1.0, 30)[groups], rng.uniform(0.4, 0.9, 30)[groups]
    shared = rng.uniform(size=360)
    a = np.where(shared < a_skill, truth, 1 - truth)
    b = np.where(shared < b_skill, truth, 1 - truth)
    by_item = evaluation.paired_difference(truth, a, b, seed=0)
    by_group = evaluation.paired_difference(truth, a, b, seed=0, groups=groups)
    assert by_item["difference"] == by_group["difference"] and by_group["resampled"] == "group"
    width = lambda d: d["ci95"][1] - d["ci95"][0]  # noqa: E731
    assert by_group["ci95"][0] <= by_group["difference"] <= by_group["ci95"][1]
    assert width(by_group) > 1.5 * width(by_item)
    singletons = evaluation.paired_difference(truth, a, b, seed=0, groups=np.arange(360))
    np.testing.assert_allclose(singletons["ci95"], by_item["ci95"], atol=0.02)


def test_a_test_set_without_errors_gets_exact_intervals_not_a_point():
    """20 correct out of 20 is not certainty: the rule of three puts the lower bound near 0.85, not 1.0."""
    truth = np.array([0] * 20 + [1] * 60)
    probs = np.eye(2)[truth] * 0.9 + 0.05
    metrics = evaluation.classification_metrics(truth, probs, ["rare", "common"], n_boot=200)
    rare_low = metrics["per_class"]["rare"]["recall_ci95"][0]
    assert abs(rare_low - 0.025 ** (1 / 20)) < 1e-6            # Clopper-Pearson at 20 of 20
    low, high = metrics["balanced_accuracy_ci95"]
    assert high == 1.0 and 0.85 < low < 0.95 and low < metrics["per_class"]["common"]["recall_ci95"][0]
    assert metrics["accuracy_ci95"][0] == evaluation.exact_interval(80, 80)[0]
    assert set(metrics["bootstrap"]["exact_intervals"]) >= {"recall of rare", "balanced accuracy", "accuracy"}
    one_error = truth.copy()
    one_error[0] = 1
    noisy = evaluation.classification_metrics(truth, np.eye(2)[one_error] * 0.9 + 0.05, ["rare", "common"], n_boot=200)
    assert "balanced accuracy" not in noisy["bootstrap"].get("exact_intervals", [])   # the bootstrap sees the error


def test_honesty_warnings_name_chance_level_worse_calibration_and_extreme_temperatures():
    from biolens.engine.supervised import honesty_warnings

    good = {"balanced_accuracy": 0.93, "balanced_accuracy_ci95": [0.88, 0.97], "ece": 0.03,
            "ece_before_calibration": 0.06, "temperature": 1.4}
    assert honesty_warnings(good, 4) == []
    guessing = {**good, "balanced_accuracy": 0.29, "balanced_accuracy_ci95": [0.22, 0.36]}
    (line,) = honesty_warnings(guessing, 4)
    assert line.startswith("The model is not clearly better than guessing") and "25.0%" in line
    worse = {**good, "ece": 0.12}
    assert "made the test probabilities worse" in honesty_warnings(worse, 4)[0]
    assert "too easy" in honesty_warnings({**good, "temperature": 0.05}, 4)[0]


def test_chance_level_is_judged_on_the_figure_a_reader_quotes():
    """Small data: a test set of a few images per class can read 100% with a CI down to chance. The cross-validated
    estimate over all images is then the quoted figure: the chance check, the warnings and the headline read it."""
    from biolens.engine.registry import TASKS
    from biolens.engine.supervised import at_chance, honesty_warnings, settle_warnings

    tiny_test = {"balanced_accuracy": 1.0, "balanced_accuracy_ci95": [0.347, 1.0], "ece": 0.01,
                 "ece_before_calibration": 0.02, "temperature": 1.0, "n_test": 9, "class_names": ["a", "b", "c"]}
    assert at_chance(tiny_test, 3)
    (line,) = honesty_warnings(tiny_test, 3)
    assert line.startswith("Too few images to show") and "on the 9 test images" in line and "Do not use" not in line
    cross_validated = {"folds": 5, "balanced_accuracy": 0.94, "balanced_accuracy_ci95": [0.9, 0.97], "accuracy": 0.95}
    settled = {**tiny_test, "small_data": {"cross_validation": cross_validated}}
    settle_warnings(settled)
    assert settled["at_chance"] is False and settled["warnings"] == []
    assert TASKS["classify"].headline(settled).startswith("cross-validated balanced accuracy 94.0% (95% CI 90.0%-97.0%)")
    guessing = {**settled, "small_data": {"cross_validation": {**cross_validated, "balanced_accuracy": 0.4,
                                                                "balanced_accuracy_ci95": [0.3, 0.5]}}}
    settle_warnings(guessing)
    assert guessing["at_chance"] and guessing["warnings"][0].startswith("The model is not clearly better than guessing")
    assert "cross-validated over all images" in guessing["warnings"][0]
