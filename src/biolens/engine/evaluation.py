"""Honest evaluation on held-out data: metrics with bootstrap CIs, calibration, and conformal "unsure".

The bootstrap resamples whole groups when groups exist (images of one smear photo are not independent),
so the intervals are as wide as the evidence really is.
"""
from __future__ import annotations

import numpy as np
from scipy.optimize import minimize_scalar
from sklearn.metrics import confusion_matrix, f1_score, precision_recall_fscore_support


def softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    z = np.asarray(logits, dtype=np.float64) / temperature
    z -= z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def fit_temperature(logits: np.ndarray, labels: np.ndarray) -> float:
    """Temperature scaling (Guo et al. 2017): one scalar that minimises validation negative log-likelihood."""
    def nll(log_t: float) -> float:
        probs = softmax(logits, np.exp(log_t))
        return float(-np.log(probs[np.arange(len(labels)), labels] + 1e-12).mean())

    result = minimize_scalar(nll, bounds=(np.log(0.05), np.log(20.0)), method="bounded")
    return float(np.exp(result.x))


def conformal_threshold(probs: np.ndarray, labels: np.ndarray, alpha: float) -> float:
    """Split-conformal (LAC) score threshold: sets {k: p_k >= 1 - q} cover the truth with prob >= 1 - alpha."""
    scores = 1.0 - probs[np.arange(len(labels)), labels]
    n = len(scores)
    level = min(1.0, np.ceil((n + 1) * (1 - alpha)) / n)
    return float(np.quantile(scores, level, method="higher"))


def prediction_sets(probs: np.ndarray, threshold: float) -> np.ndarray:
    """Boolean (N, K): class k is plausible for sample i. A prediction is unsure unless exactly one is."""
    return probs >= 1.0 - threshold


def expected_calibration_error(probs: np.ndarray, labels: np.ndarray, bins: int = 15) -> tuple[float, dict]:
    confidence = probs.max(axis=1)
    correct = probs.argmax(axis=1) == labels
    edges = np.linspace(0, 1, bins + 1)
    which = np.clip(np.digitize(confidence, edges[1:-1]), 0, bins - 1)
    ece, table = 0.0, {"confidence": [], "accuracy": [], "count": []}
    for b in range(bins):
        mask = which == b
        if mask.any():
            ece += mask.mean() * abs(confidence[mask].mean() - correct[mask].mean())
            table["confidence"].append(float(confidence[mask].mean()))
            table["accuracy"].append(float(correct[mask].mean()))
            table["count"].append(int(mask.sum()))
    return float(ece), table


def _headline(y: np.ndarray, p: np.ndarray, k: int) -> dict[str, float]:
    present = np.unique(y)
    recall = [np.mean(p[y == c] == c) for c in present]
    return {"accuracy": float(np.mean(y == p)), "balanced_accuracy": float(np.mean(recall)),
            "macro_f1": float(f1_score(y, p, labels=present, average="macro", zero_division=0))}


def classification_metrics(y_true: np.ndarray, probs: np.ndarray, class_names: list[str],
                           groups: np.ndarray | None = None, n_boot: int = 1000, seed: int = 0) -> dict:
    """accuracy, balanced_accuracy, macro_f1 and per-class precision/recall/F1, each with a 95% bootstrap CI."""
    k = len(class_names)
    y_pred = probs.argmax(axis=1)
    metrics: dict = _headline(y_true, y_pred, k)
    prec, rec, f1, support = precision_recall_fscore_support(y_true, y_pred, labels=range(k), zero_division=0)
    rng = np.random.default_rng(seed)
    units = np.unique(groups) if groups is not None else None
    members = {u: np.flatnonzero(groups == u) for u in units} if units is not None else None
    boot_head: list[dict] = []
    boot_class: list[np.ndarray] = []
    for _ in range(n_boot):
        if units is not None:
            rows = np.concatenate([members[u] for u in rng.choice(units, size=len(units), replace=True)])
        else:
            rows = rng.integers(0, len(y_true), len(y_true))
        yt, yp = y_true[rows], y_pred[rows]
        boot_head.append(_headline(yt, yp, k))
        boot_class.append(np.stack(precision_recall_fscore_support(yt, yp, labels=range(k), zero_division=0)[:3]))
    for key in ("accuracy", "balanced_accuracy", "macro_f1"):
        values = [b[key] for b in boot_head]
        metrics[f"{key}_ci95"] = [float(np.percentile(values, 2.5)), float(np.percentile(values, 97.5))]
    per_class_boot = np.stack(boot_class)  # (n_boot, 3, k)
    low, high = np.percentile(per_class_boot, 2.5, axis=0), np.percentile(per_class_boot, 97.5, axis=0)
    metrics["per_class"] = {
        name: {"precision": float(prec[c]), "precision_ci95": [float(low[0, c]), float(high[0, c])],
               "recall": float(rec[c]), "recall_ci95": [float(low[1, c]), float(high[1, c])],
               "f1": float(f1[c]), "f1_ci95": [float(low[2, c]), float(high[2, c])],
               "support": int(support[c])}
        for c, name in enumerate(class_names)
    }
    metrics["confusion_matrix"] = confusion_matrix(y_true, y_pred, labels=range(k)).tolist()
    metrics["bootstrap"] = {"resamples": n_boot, "unit": "group" if units is not None else "image"}
    _exact_where_bootstrap_is_blind(metrics, y_true, y_pred, class_names)
    return metrics


def exact_interval(successes: int, n: int) -> list[float]:
    """Clopper-Pearson 95% interval of a proportion: valid at 0 and n successes, where a bootstrap has none."""
    from scipy.stats import beta

    low = float(beta.ppf(0.025, successes, n - successes + 1)) if successes > 0 else 0.0
    high = float(beta.ppf(0.975, successes + 1, n - successes)) if successes < n else 1.0
    return [low, high]


def _exact_where_bootstrap_is_blind(metrics: dict, y_true: np.ndarray, y_pred: np.ndarray,
                                    class_names: list[str]) -> None:
    """A test set without a single error resamples to the same score every time: the bootstrap interval collapses
    to a point (100%, 95% CI 100-100), which claims a certainty 20 test images cannot give. Where it collapsed, the
    interval becomes the exact binomial one: per class for recall and precision, over all items for accuracy, and
    the mean of the classes' exact bounds for balanced accuracy (conservative)."""
    blind = []
    recall_bounds = []
    for c, name in enumerate(class_names):
        entry, truth, called = metrics["per_class"][name], y_true == c, y_pred == c
        if not truth.any():
            continue
        exact = exact_interval(int((truth & called).sum()), int(truth.sum()))
        recall_bounds.append(exact)
        if entry["recall_ci95"][1] - entry["recall_ci95"][0] < 1e-12:
            entry["recall_ci95"] = exact
            blind.append(f"recall of {name}")
        if called.any() and entry["precision_ci95"][1] - entry["precision_ci95"][0] < 1e-12:
            entry["precision_ci95"] = exact_interval(int((truth & called).sum()), int(called.sum()))
    if metrics["accuracy_ci95"][1] - metrics["accuracy_ci95"][0] < 1e-12:
        metrics["accuracy_ci95"] = exact_interval(int((y_true == y_pred).sum()), len(y_true))
        blind.append("accuracy")
    if metrics["balanced_accuracy_ci95"][1] - metrics["balanced_accuracy_ci95"][0] < 1e-12 and recall_bounds:
        metrics["balanced_accuracy_ci95"] = [float(np.mean([b[0] for b in recall_bounds])),
                                             float(np.mean([b[1] for b in recall_bounds]))]
        blind.append("balanced accuracy")
    if blind:
        metrics["bootstrap"]["exact_intervals"] = blind


def paired_difference(y: np.ndarray, predicted_a: np.ndarray, predicted_b: np.ndarray, *, resamples: int = 2000,
                      seed: int = 0, groups: np.ndarray | None = None) -> dict:
    """Balanced accuracy of two models on the same test items, and a paired bootstrap interval of the difference
    (a - b): both models are scored on the same resampled items each time, so the interval reflects how much the
    two disagree, not how hard the test set is. With `groups` (the split's grouping: items of one source image,
    patient or plate are not independent) whole groups are resampled, as the models' own intervals are."""
    y, predicted_a, predicted_b = map(np.asarray, (y, predicted_a, predicted_b))
    classes = np.unique(y)
    rng = np.random.default_rng(seed)
    if groups is None:
        weights = rng.multinomial(len(y), np.full(len(y), 1 / len(y)), size=resamples)
    else:
        units, member_of = np.unique(np.asarray(groups), return_inverse=True)
        weights = rng.multinomial(len(units), np.full(len(units), 1 / len(units)), size=resamples)[:, member_of]

    def balanced(w: np.ndarray, predicted: np.ndarray) -> np.ndarray:
        recalls = [(w @ ((y == c) & (predicted == c))) / np.maximum(w @ (y == c), 1) for c in classes]
        present = np.stack([w @ (y == c) > 0 for c in classes])
        return np.where(present, np.stack(recalls), 0).sum(0) / np.maximum(present.sum(0), 1)

    differences = balanced(weights, predicted_a) - balanced(weights, predicted_b)
    low, high = np.percentile(differences, [2.5, 97.5])
    one = np.ones((1, len(y)))
    a, b = float(balanced(one, predicted_a)[0]), float(balanced(one, predicted_b)[0])
    return {"a": a, "b": b, "difference": a - b, "ci95": [float(low), float(high)], "n_items": int(len(y)),
            "resampled": "group" if groups is not None else "item"}
