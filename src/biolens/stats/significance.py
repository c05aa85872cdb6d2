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


def _standardisers(mean: np.ndarray, mean_square: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    spread = np.sqrt(np.maximum(mean_square - mean ** 2, 0.0))
    return mean, np.where(spread > 0, spread, np.maximum(np.abs(mean), 1e-12))


def pooled_permutation_p(observed: np.ndarray, null: np.ndarray, *, standardise: bool = True) -> np.ndarray:
    """Empirical p of each observed score against the pooled null scores of all features and permutations.

    null: permutations x features. With `standardise`, each feature's scores (observed and null) are first standardised
    by that feature's own null mean and SD, so rare sites whose scores are noisier under the null do not dominate the
    pool; without it, scores must already be on one scale (pair effects per SD^2, mostly zero).
    p = (1 + #null >= observed) / (1 + #null): never zero (Phipson & Smyth 2010); pooling standardised scores across
    features (as in SAM, Tusher et al. 2001) gives p-values fine enough for BH across all features.
    """
    if standardise:
        # The observed score is standardised by statistics of the null copies it is not part of; each null copy must
        # be too (leave-one-out), or the null pool is narrower than the observed scores' distribution under the null
        # and p is too small (measured: 2.7% of p < 0.01 and a BH discovery in 43 of 50 pure-null simulations with
        # in-sample standardisation; see tests/test_associate.py).
        n_copies = null.shape[0]
        centre, spread = _standardisers(null.mean(0), (null ** 2).mean(0))
        total, squares = null.sum(0), (null ** 2).sum(0)
        loo_centre, loo_spread = _standardisers((total - null) / (n_copies - 1), (squares - null ** 2) / (n_copies - 1))
        observed, null = (observed - centre) / spread, (null - loo_centre) / loo_spread
    ordered = np.sort(np.ravel(null))
    at_least = len(ordered) - np.searchsorted(ordered, observed, side="left")
    return (1 + at_least) / (1 + len(ordered))
