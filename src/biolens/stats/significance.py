"""Permutation p-values and false-discovery-rate q-values."""
from __future__ import annotations

import numpy as np
from scipy import stats


def bh_qvalues(pvalues: np.ndarray) -> np.ndarray:
    """Benjamini-Hochberg q-values; NaN p-values stay NaN and do not count as tests."""
    q = np.full(len(pvalues), np.nan)
    finite = np.isfinite(pvalues)
    if finite.any():
        q[finite] = stats.false_discovery_control(np.clip(pvalues[finite], 0, 1), method="bh")
    return q


def pooled_permutation_p(observed: np.ndarray, null: np.ndarray, *, standardise: bool = True) -> np.ndarray:
    """Empirical p of each observed score against the pooled null scores of all features and permutations.

    null: permutations x features. With `standardise`, each feature's scores (observed and null) are first standardised
    by that feature's own null mean and SD, so rare sites whose scores are noisier under the null do not dominate the
    pool; without it, scores must already be on one scale (pair effects per SD^2, mostly zero).
    p = (1 + #null >= observed) / (1 + #null): never zero (Phipson & Smyth 2010); pooling standardised scores across
    features (as in SAM, Tusher et al. 2001) gives p-values fine enough for BH across all features.
    """
    if standardise:
        centre, spread = null.mean(0), null.std(0)
        spread = np.where(spread > 0, spread, np.maximum(np.abs(centre), 1e-12))
        observed, null = (observed - centre) / spread, (null - centre) / spread
    ordered = np.sort(np.ravel(null))
    at_least = len(ordered) - np.searchsorted(ordered, observed, side="left")
    return (1 + at_least) / (1 + len(ordered))
