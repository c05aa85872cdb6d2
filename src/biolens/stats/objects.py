"""How well found objects match annotated ones: point matching within a radius, box and mask matching by IoU,
average precision, count errors, and bootstrap intervals over held-out images (or image regions).

Pure numpy/scipy, shared by the network and the classical baseline so that both are scored by the same rules.
"""
from __future__ import annotations

import numpy as np


def match_points(truth: np.ndarray, found: np.ndarray, radius: float) -> tuple[np.ndarray, np.ndarray]:
    """One-to-one matching (Hungarian) of found to true points within `radius`; returns index pairs."""
    from scipy.optimize import linear_sum_assignment
    from scipy.spatial.distance import cdist

    if len(truth) == 0 or len(found) == 0:
        return np.zeros(0, int), np.zeros(0, int)
    distance = cdist(truth, found)
    cost = np.where(distance <= radius, distance, 1e6)
    rows, cols = linear_sum_assignment(cost)
    keep = distance[rows, cols] <= radius
    return rows[keep], cols[keep]


def boxes_in_image(centres: np.ndarray, sizes: np.ndarray, width: int, height: int) -> np.ndarray:
    """(n, 4) xmin, ymin, xmax, ymax from centres and sizes, cut at the image's edges: an object at the border is
    boxed by the part of it that is in the picture, as annotation tools draw it (never a negative coordinate)."""
    boxes = np.concatenate([centres - sizes / 2, centres + sizes / 2], axis=1)
    return np.clip(boxes, 0.0, [width, height, width, height])


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of every box in `a` with every box in `b` (xmin, ymin, xmax, ymax)."""
    if len(a) == 0 or len(b) == 0:
        return np.zeros((len(a), len(b)))
    x0 = np.maximum(a[:, None, 0], b[None, :, 0])
    y0 = np.maximum(a[:, None, 1], b[None, :, 1])
    x1 = np.minimum(a[:, None, 2], b[None, :, 2])
    y1 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    return inter / np.maximum(area_a[:, None] + area_b[None, :] - inter, 1e-9)


def mask_iou(truth: np.ndarray, found: np.ndarray) -> np.ndarray:
    """IoU between the instances of two label images of the same shape (0 = background)."""
    n_t, n_f = int(truth.max()), int(found.max())
    if n_t == 0 or n_f == 0:
        return np.zeros((n_t, n_f))
    joint = np.zeros((n_t + 1, n_f + 1), np.int64)
    np.add.at(joint, (truth.ravel(), found.ravel()), 1)
    area_t, area_f = joint.sum(1)[1:], joint.sum(0)[1:]
    inter = joint[1:, 1:]
    return inter / np.maximum(area_t[:, None] + area_f[None, :] - inter, 1)


def greedy_iou_matches(iou: np.ndarray, scores: np.ndarray, threshold: float) -> np.ndarray:
    """For each found object (best score first), whether it matches a not-yet-matched true one at IoU >= threshold."""
    matched_truth = np.zeros(iou.shape[0], bool)
    hit = np.zeros(iou.shape[1], bool)
    for j in np.argsort(-scores, kind="stable"):
        if iou.shape[0] == 0:
            break
        candidates = np.where(~matched_truth & (iou[:, j] >= threshold), iou[:, j], -1)
        best = int(np.argmax(candidates))
        if candidates[best] >= threshold:
            matched_truth[best] = True
            hit[j] = True
    return hit


def average_precision(hits: np.ndarray, scores: np.ndarray, n_truth: int) -> float:
    """Area under the interpolated precision-recall curve (VOC 'all points'); NaN without true objects."""
    if n_truth == 0:
        return float("nan")
    if len(scores) == 0:
        return 0.0
    order = np.argsort(-scores, kind="stable")
    tp = np.cumsum(hits[order])
    precision = tp / np.arange(1, len(order) + 1)
    recall = tp / n_truth
    precision = np.maximum.accumulate(precision[::-1])[::-1]
    recall = np.concatenate([[0.0], recall])
    return float(np.sum((recall[1:] - recall[:-1]) * precision))


def prf(tp: int, n_found: int, n_truth: int) -> dict:
    precision = tp / n_found if n_found else (1.0 if n_truth == 0 else 0.0)
    recall = tp / n_truth if n_truth else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f1": f1}


def bootstrap_ci(units: list, statistic, seed: int = 0, resamples: int = 1000) -> list[float] | None:
    """95% percentile interval of `statistic(list of units)` over resamples of the held-out units."""
    if len(units) < 2:
        return None
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(resamples):
        pick = rng.integers(0, len(units), len(units))
        value = statistic([units[i] for i in pick])
        if np.isfinite(value):
            values.append(value)
    if not values:
        return None
    return [float(np.percentile(values, 2.5)), float(np.percentile(values, 97.5))]


def count_errors(true_counts: np.ndarray, found_counts: np.ndarray) -> dict:
    true_counts, found_counts = np.asarray(true_counts, float), np.asarray(found_counts, float)
    error = found_counts - true_counts
    nonzero = true_counts > 0
    return {"count_mae": float(np.abs(error).mean()) if len(error) else float("nan"),
            "count_bias": float(error.mean()) if len(error) else float("nan"),
            "count_error_pct": float(100 * np.abs(error[nonzero] / true_counts[nonzero]).mean()) if nonzero.any() else float("nan")}


def paired_f1_difference(true: np.ndarray, found_a: np.ndarray, matched_a: np.ndarray, found_b: np.ndarray,
                         matched_b: np.ndarray, *, resamples: int = 2000, seed: int = 0) -> dict:
    """Object F1 (pooled over units) of two runs on the same held-out units, and a paired bootstrap interval of the
    difference (a - b): both runs are scored on the same resampled units each time. Arrays hold one value per unit."""
    true, found_a, matched_a, found_b, matched_b = (np.asarray(v, dtype=float)
                                                    for v in (true, found_a, matched_a, found_b, matched_b))
    n = len(true)
    weights = np.random.default_rng(seed).multinomial(n, np.full(n, 1 / n), size=resamples)

    def f1(w: np.ndarray, found: np.ndarray, matched: np.ndarray) -> np.ndarray:
        return 2 * (w @ matched) / np.maximum(w @ found + w @ true, 1e-12)

    differences = f1(weights, found_a, matched_a) - f1(weights, found_b, matched_b)
    low, high = np.percentile(differences, [2.5, 97.5])
    one = np.ones((1, n))
    a, b = float(f1(one, found_a, matched_a)[0]), float(f1(one, found_b, matched_b)[0])
    return {"a": a, "b": b, "difference": a - b, "ci95": [float(low), float(high)], "n_units": int(n)}
