"""Is my data enough? Fit a saturating learning curve to scores measured on nested fractions of the
training set, and predict the score with more data.

The curve is the inverse power law that learning curves of classifiers follow (Cortes et al. 1994; Figueroa
et al. 2012): score(n) = plateau - scale * n^(-rate), with plateau in [0, 1], scale >= 0, rate in [0.05, 2].
Uncertainty comes from the scatter of the measured scores around the curve: the fit is repeated on a wild
bootstrap of its residuals (resampled, random sign, inflated for the three fitted parameters), and the 2.5-97.5
percentiles of the predictions are the range reported.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

RATE_BOUNDS = (0.05, 2.0)
N_BOOTSTRAP = 200
PLATEAU_GAIN = 0.01  # a predicted rise smaller than this at twice the data = "more data is unlikely to help"
NOISY_GAP = 0.05     # a curve this far from the score measured on the full set cannot be extrapolated from


@dataclass
class CurveFit:
    plateau: float
    scale: float
    rate: float

    def predict(self, n: np.ndarray | float) -> np.ndarray:
        return np.clip(self.plateau - self.scale * np.asarray(n, dtype=float) ** -self.rate, 0.0, 1.0)


def fit_curve(sizes: np.ndarray, scores: np.ndarray) -> CurveFit:
    """Least-squares inverse power law through (training-set size, score) points (several seeds per size allowed)."""
    from scipy.optimize import curve_fit

    sizes, scores = np.asarray(sizes, dtype=float), np.asarray(scores, dtype=float)

    def model(n, plateau, scale, rate):
        return plateau - scale * n ** -rate

    best, best_error = None, np.inf
    for rate in (0.2, 0.5, 1.0):  # a few starts: the surface has long flat valleys
        start = [min(1.0, scores.max() + 0.02), max(1e-6, (scores.max() - scores.min() + 0.01) * sizes.min() ** rate),
                 rate]
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                params, _ = curve_fit(model, sizes, scores, p0=start, maxfev=5000,
                                      bounds=([0.0, 0.0, RATE_BOUNDS[0]], [1.0, np.inf, RATE_BOUNDS[1]]))
        except (RuntimeError, ValueError):
            continue
        error = float(np.sum((model(sizes, *params) - scores) ** 2))
        if error < best_error:
            best, best_error = params, error
    if best is None:  # nothing converged: a flat curve at the mean of the largest size
        return CurveFit(float(scores[sizes == sizes.max()].mean()), 0.0, 1.0)
    return CurveFit(*map(float, best))


def learning_curve(sizes, scores, *, factors=(2, 4), seed: int = 0) -> dict:
    """Fit, and predict at `factors` x the largest size measured, each as [estimate, low, high].

    Args:
        sizes: training-set size of each measurement.
        scores: the held-out score of each measurement (same length; NaN measurements are ignored).
    """
    sizes, scores = np.asarray(sizes, dtype=float), np.asarray(scores, dtype=float)
    keep = np.isfinite(scores)
    sizes, scores = sizes[keep], scores[keep]
    fit = fit_curve(sizes, scores)
    largest = sizes.max()
    targets = np.array([largest * f for f in factors])
    rng = np.random.default_rng(seed)
    fitted = fit.predict(sizes)
    residuals = (scores - fitted) * np.sqrt(len(scores) / max(1, len(scores) - 3))  # inflated for the 3 fitted parameters
    if not residuals.any():
        residuals = np.full(len(scores), 1e-3)
    draws = [fit_curve(sizes, fitted + rng.choice(residuals, len(scores)) * rng.choice([-1.0, 1.0], len(scores))
                       ).predict(targets) for _ in range(N_BOOTSTRAP)]
    low, high = np.percentile(np.array(draws), [2.5, 97.5], axis=0)
    estimate = fit.predict(targets)
    current = float(fit.predict(largest))
    return {"current": current,
            "measured_at_largest": float(scores[sizes == largest].mean()),
            "plateau": fit.plateau, "rate": fit.rate, "scale": fit.scale,
            "predicted": {f"{f}x": [float(e), float(min(lo, e)), float(max(hi, e))]
                          for f, e, lo, hi in zip(factors, estimate, low, high)}}


def advice(overall: dict, per_class: dict[str, dict], class_counts: dict[str, int], *, metric: str = "balanced accuracy",
           unit: str = "images", class_metric: str = "recall", plateau_hint: str | None = None) -> str:
    """One or two plain sentences: how much more data would likely help, and where to add it."""
    if plateau_hint is None:
        plateau_hint = (f"Check the labels of the classes that are confused and the {unit} listed as possible label "
                        "errors.")
    now = overall["measured_at_largest"]
    fitted_now = overall["current"]
    estimate, low, high = overall["predicted"]["2x"]
    if abs(fitted_now - now) > NOISY_GAP:
        return (f"The scores measured on parts of the training set scatter too much to extrapolate: the curve "
                f"fitted through them gives {fitted_now:.2f} at the full set, where {now:.2f} was measured. Train "
                "longer (more epochs) or add data before trusting a prediction.")
    gain = estimate - fitted_now
    if gain < PLATEAU_GAIN:
        return (f"More {unit} are unlikely to help much: the curve flattens near {overall['plateau']:.2f} "
                f"(now {now:.2f}; twice the data would likely give {estimate:.2f}, range {low:.2f}-{high:.2f}). "
                + plateau_hint)
    gains = {name: fit["predicted"]["2x"][0] - fit["current"] for name, fit in per_class.items()}
    focus = max(gains, key=gains.get) if gains else None
    text = (f"With twice the {unit} ({sum(class_counts.values())} more), {metric} would likely rise from about "
            f"{fitted_now:.2f} to {estimate:.2f} (range {low:.2f}-{high:.2f}); at four times, "
            f"{overall['predicted']['4x'][0]:.2f}.")
    if focus is not None and gains[focus] >= PLATEAU_GAIN:
        fit = per_class[focus]
        text += (f" The class that gains most is '{focus}': with about {class_counts[focus]} more {focus} {unit} its "
                 f"{class_metric} would likely rise from about {fit['current']:.2f} to {fit['predicted']['2x'][0]:.2f}.")
    return text
