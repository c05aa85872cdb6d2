"""A classical model beside every trained classifier: fitted and scored as the network is, compared in plain words.

The network's epoch is chosen on the validation set and it is scored once on the test set; a baseline gets the same:
fitted on the training rows (at most 20,000, evenly spread), its L2 strength chosen by validation balanced accuracy,
scored on the same test rows, and its difference from the network given a paired bootstrap interval. What the
features are is the task's own (`sequence_baseline.py`: k-mer frequencies; `image_baseline.py`: colour and
gradient histograms).
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from biolens.engine.evaluation import classification_metrics, paired_difference

STRENGTHS = (0.001, 0.01, 0.1, 1.0, 10.0)  # inverse L2 strengths tried, the best on validation kept
MAX_TRAIN = 20_000  # training rows a baseline reads (an even spread beyond this)


def fewer_training_rows(parts: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The splits with at most MAX_TRAIN training rows, evenly spread."""
    parts = dict(parts)
    if len(parts["train"]) > MAX_TRAIN:
        parts["train"] = parts["train"][np.linspace(0, len(parts["train"]) - 1, MAX_TRAIN).round().astype(int)]
    return parts


def fit_on_train_pick_on_val(features: Callable, y: np.ndarray, parts: dict, strengths=STRENGTHS):
    """Logistic regression (L2, class-balanced) on the training rows at each strength; the one with the best
    validation balanced accuracy, and its strength. Strengths run from the most penalised up, each fit starting
    where the last ended (the path's usual warm start)."""
    import copy

    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import balanced_accuracy_score

    best = None
    train, val = features(parts["train"]), features(parts["val"])
    model = LogisticRegression(class_weight="balanced", max_iter=1000, warm_start=True)
    for strength in sorted(strengths):
        model.set_params(C=strength)
        model.fit(train, y[parts["train"]])
        score = balanced_accuracy_score(y[parts["val"]], model.predict(val))
        if best is None or score > best[1] + 1e-12:
            best = (copy.deepcopy(model), score, strength)
    return best[0], best[2]


def fit_table(table, y: np.ndarray, parts: dict[str, np.ndarray], scaler):
    """Fit on a feature table whose rows are the training, validation and test rows of `parts` in that order: the
    scaler on the training rows only, then `fit_on_train_pick_on_val`. Returns the model, its strength and the scaled
    features of any subset of rows."""
    rows = np.concatenate([parts["train"], parts["val"], parts["test"]])
    where = {int(r): k for k, r in enumerate(rows)}
    scaler.fit(table[:len(parts["train"])])

    def features(subset: np.ndarray):
        return scaler.transform(table[[where[int(r)] for r in subset]])

    model, strength = fit_on_train_pick_on_val(features, y, parts)
    return model, strength, features


def scored(y_test: np.ndarray, probs: np.ndarray, network_predicted: np.ndarray, class_names: list[str],
           groups: np.ndarray | None, seed: int) -> dict:
    """A baseline's test balanced accuracy (bootstrap interval, by group where the split was grouped) and the
    network's lead over it (paired bootstrap over the test rows, or their groups)."""
    own = classification_metrics(y_test, probs, class_names, groups=groups, n_boot=1000, seed=seed)
    paired = paired_difference(y_test, network_predicted, probs.argmax(1), seed=seed, groups=groups)
    return {"balanced_accuracy": own["balanced_accuracy"], "balanced_accuracy_ci95": own["balanced_accuracy_ci95"],
            "network_minus_this": paired["difference"], "network_minus_this_ci95": paired["ci95"],
            "resampled": paired["resampled"]}


def reading(baseline: dict) -> str:
    """The comparison in plain words: the network beats the baseline, does worse, or is no better."""
    difference, (low, high) = baseline["network_minus_this"], baseline["network_minus_this_ci95"]
    figures = (f"balanced accuracy {100 * baseline['balanced_accuracy']:.1f}% for the {baseline['name']}; the "
               f"network {'+' if difference >= 0 else '-'}{100 * abs(difference):.1f} points (95% CI "
               f"{100 * low:+.1f} to {100 * high:+.1f})")
    if low > 0:
        return f"The network beats a classical model, {baseline['model']} ({figures})."
    if high < 0:
        return (f"A classical model, {baseline['model']}, does better than the network ({figures}): prefer it, or "
                "read the network's explanations with that in mind.")
    return (f"The network is no better than a classical model, {baseline['model']} ({figures}): what it learned is "
            "one reading of what sets the classes apart, not evidence that a deep network is needed.")
