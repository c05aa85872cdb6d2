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
    return _empirical(*_on_pooled_scale(observed, null, standardise))


def _on_pooled_scale(observed: np.ndarray, null: np.ndarray, standardise: bool) -> tuple[np.ndarray, np.ndarray]:
    """The observed and null scores on the scale they are pooled on."""
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
    return observed, null


def _empirical(observed: np.ndarray, null: np.ndarray) -> np.ndarray:
    ordered = np.sort(np.ravel(null))
    at_least = len(ordered) - np.searchsorted(ordered, observed, side="left")
    return (1 + at_least) / (1 + len(ordered))


def permutation_test(observed: np.ndarray, null: np.ndarray, *, standardise: bool = True) -> tuple[np.ndarray, dict]:
    """Pooled permutation p-values (see `pooled_permutation_p`) with the tail extended past their resolution
    (`NullTail`); and how the tail was read."""
    observed, null = _on_pooled_scale(observed, null, standardise)
    return NullTail.of(null).read(observed)


TAIL_EXCEEDANCES = 250  # null scores above the threshold the tail model is fitted to (Knijnenburg et al. 2009)
TAIL_MIN_EXCEEDANCES = 50  # the fewest largest null scores a tail is fitted to
TAIL_MIN_HITS = 10      # below this many null scores >= observed, the empirical p is replaced by the tail model's


def exponential_tail_p(pooled: np.ndarray, observed: np.ndarray) -> np.ndarray:
    """p of scores past the largest null scores from an exponential tail fitted to the TAIL_MIN_EXCEEDANCES largest
    (`pooled`: the null scores sorted largest first, at least two): the lightest tail `NullTail` trusts."""
    top = min(TAIL_MIN_EXCEEDANCES, len(pooled) - 1)
    start = float(pooled[top])
    mean_excess = max(float(np.mean(pooled[:top] - start)), 1e-300)
    return top / len(pooled) * np.exp(-(observed - start) / mean_excess)


class NullTail:
    """Permutation p-values extended past the permutations' resolution with a generalised Pareto tail.

    With B permutations pooled over m features, the smallest empirical p is 1/(1 + B m) and BH can then never go below
    about 1/B: 20 permutations could not say q < 0.05 however strong the signal. Knijnenburg, Wessels, Reinders &
    Shmulevich (2009, Bioinformatics) fit a generalised Pareto distribution to the largest null scores and read small
    p-values from it; where fewer than TAIL_MIN_HITS null scores reach the observed one, p = (N_u / N) * GPD.sf(x - u).
    A Cramer-von Mises test of the fit decides: with a poor fit the empirical p stays (and the report states the floor).
    The null scores (on the scale of the observed ones: standardised as for `pooled_permutation_p`) are pooled and
    the tail fitted once, then read for any observed scores: the pair readings read the real data and every copy the
    network screens against one fit per LD class, so the screening ranks pairs as the reported p-values do.
    """

    def __init__(self, pooled: np.ndarray, fit: tuple | None):
        self.pooled, self.fit = pooled, fit  # pooled: sorted largest first

    @classmethod
    def of(cls, null: np.ndarray) -> NullTail:
        pooled = np.sort(np.ravel(null))[::-1]
        for exceedances in range(TAIL_EXCEEDANCES, TAIL_MIN_EXCEEDANCES - 1, -50):
            if len(pooled) < 4 * exceedances:
                continue
            tail = pooled[: exceedances + 1]
            threshold = float(tail[-1])
            excess = tail[:-1] - threshold
            if np.ptp(excess) <= 0:
                continue
            shape, _, scale = stats.genpareto.fit(excess, floc=0)
            fitted = stats.genpareto(shape, 0, scale)
            # Knijnenburg et al. lower the number of exceedances until the fit is good; a shape >= 0.5 (infinite
            # variance) is refused too: it comes from a mixture (e.g. near-zero scores of pairs the penalty removed)
            # and would make every large score look merely unusual.
            if shape < 0.5 and stats.cramervonmises(excess, fitted.cdf).pvalue > 0.05:
                return cls(pooled, (exceedances, threshold, shape, scale, fitted))
        return cls(pooled, None)

    def read(self, observed: np.ndarray) -> tuple[np.ndarray, dict]:
        """p of each observed score: (1 + null scores >= it) / (1 + null scores), as `pooled_permutation_p` gives
        it, replaced by the tail's where fewer than TAIL_MIN_HITS null scores reach it; and how the tail was read."""
        pooled = self.pooled
        hits = len(pooled) - np.searchsorted(pooled[::-1], observed, side="left")
        p = (1 + hits) / (1 + len(pooled))
        info = {"method": "empirical", "resolution": float(1 / (1 + len(pooled)))}
        if self.fit is None:
            return p, info
        exceedances, threshold, shape, scale, fitted = self.fit
        extend = (hits < TAIL_MIN_HITS) & (observed > threshold)
        p[extend] = exceedances / len(pooled) * fitted.sf(observed[extend] - threshold)
        if shape < 0:
            # A negative shape bounds the tail at threshold + scale / |shape|, and a score past that fitted bound got
            # p = 1e-300. Light tails (the normal's, and the deep pair scores') in the Gumbel domain, whose true tail
            # goes on, are often fitted that way from a few hundred exceedances: on 20 null cohorts 4 had a deep pair
            # claimed past the bound (docs/association.md). So the tail read is never lighter than an exponential one
            # fitted to the TAIL_MIN_EXCEEDANCES largest null scores (the mean excess of light tails falls with the
            # threshold: fitted to all 250 it was far too cautious; measured in docs/association.md).
            p[extend] = np.maximum(p[extend], exponential_tail_p(pooled, observed[extend]))
        p = np.clip(p, 1e-300, 1)
        info = {"method": "generalised Pareto tail", "resolution": float(1 / (1 + len(pooled))),
                "tail_shape": round(float(shape), 4), "tail_scale": float(scale), "tail_threshold": threshold,
                "tail_exceedances": exceedances}
        return p, info
