"""Fine-mapping: which sites in a region of linkage disequilibrium carry the effect (SuSiE).

Sum of Single Effects regression (Wang, Sarkar, Carbonetto & Stephens 2020, JRSS-B), fitted by their iterative
Bayesian stepwise selection (IBSS), written on the data's sufficient statistics X'X, X'y and y'y (susieR's `susie_ss`
form, the same fit as on individual-level data). Each of L single effects is one causal site with a
posterior over the sites; sites in strong LD share that posterior, so a credible set lists the sites the data cannot
tell apart, and the posterior inclusion probability (PIP) says how sure the data are about each. Prior effect variances
are estimated per effect (an effect with no support drops to zero), as in susieR's default `estimate_prior_variance`.
IBSS is started several ways (from nothing, from the best-fitting configurations, susieR's refinement), and the
distinct fits it reaches are averaged by their evidence lower bounds, as varbvs averages its fits.
Written here because the Python ports on PyPI are unmaintained; the algorithm is short and checked against the
susieR behaviour on simulated cohorts in tests/test_associate.py.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np
from scipy import optimize
from scipy.special import logsumexp


@dataclass
class FineMap:
    pip: np.ndarray                  # per site
    credible_sets: list[np.ndarray]  # site indices, best effect first
    purity: list[float]              # smallest |r| between two sites of each set
    converged: bool
    iterations: int
    mode_weights: list | None = None  # the averaged fits' weights, best first ([1.0]: one fit)

    def set_of_each_site(self) -> np.ndarray:
        """1-based credible-set number per site, 0 outside every set."""
        label = np.zeros(len(self.pip), dtype=int)
        for number, members in enumerate(self.credible_sets, start=1):
            label[members[label[members] == 0]] = number
        return label


def _log_bayes_factors(betahat: np.ndarray, shat2: np.ndarray, prior_variance: float) -> np.ndarray:
    if prior_variance <= 0:
        return np.zeros_like(betahat)
    ratio = prior_variance / (prior_variance + shat2)
    return 0.5 * np.log1p(-ratio) + 0.5 * betahat ** 2 / shat2 * ratio


def _best_prior_variance(betahat: np.ndarray, shat2: np.ndarray, log_prior: np.ndarray, scale: float) -> float:
    """Maximise the single-effect marginal likelihood over the prior variance; 0 when no variance beats none."""
    def negative(log_v):
        weights = _log_bayes_factors(betahat, shat2, np.exp(log_v)) + log_prior
        top = weights.max()  # logsumexp written out: scipy's costs more than the sum itself at this size
        return -(top + np.log(np.exp(weights - top).sum()))

    found = optimize.minimize_scalar(negative, bounds=(np.log(scale * 1e-6), np.log(scale * 10)), method="bounded")
    return float(np.exp(found.x)) if -found.fun > 0 else 0.0


def susie(x: np.ndarray, y: np.ndarray, *, effects: int = 10, coverage: float = 0.95, min_purity: float = 0.5,
          max_iterations: int = 100, tolerance: float = 1e-4, refine: bool = True, search_sites: int = 5,
          starts_per_size: int = 3, average: bool = True) -> FineMap:
    """Fine-map y on the columns of x (individuals x sites; covariates already regressed out of y and x).

    Returns PIPs and the `coverage` credible sets whose sites are correlated at |r| >= min_purity (susieR's defaults).
    refine: susieR's `refine = TRUE`: IBSS can stop in a local optimum where one site tagging two causal ones takes
    their place (common in a region without recombination); each credible set is then blocked in turn, the fit
    restarted from there, and the restart kept when its evidence lower bound (ELBO) is higher.
    search_sites: IBSS is also started from the best-fitting configurations of 1 to `search_sites` sites found by
    `best_configurations` (as susieR users start it from L0Learn's; 0 turns this off), each start kept when its
    ELBO is higher. Why: where several causal sites mask one another, a site tagging their combination explains the
    trait best on its own, and IBSS, which adds effects one at a time, settles on it and its neighbours.
    starts_per_size: configurations of each size to start from (the next best that are not the first's sites up to
    r^2 >= 0.8 tags), each a way into another fit.
    average: the distinct fits reached are averaged by exp(ELBO) (`_averaged`); False keeps the best fit alone, as
    susieR does. Why: where two sets of sites fit the trait almost equally, the best fit alone gave 95% sets that
    held a planted site 72% of the time on simulated cohorts (82% averaged; benchmarks/finemap_calibration.py).
    """
    x = np.asarray(x, dtype=np.float64)
    varying = x.std(0) > 0
    if not varying.all():  # a constant column never explains anything: fine-map the others, PIP 0 for it
        inner = susie(x[:, varying], y, effects=effects, coverage=coverage, min_purity=min_purity,
                      max_iterations=max_iterations, tolerance=tolerance, refine=refine, search_sites=search_sites,
                      starts_per_size=starts_per_size, average=average)
        index = np.nonzero(varying)[0]
        pip = np.zeros(x.shape[1])
        pip[index] = inner.pip
        return FineMap(pip, [index[s] for s in inner.credible_sets], inner.purity, inner.converged, inner.iterations,
                       inner.mode_weights)
    moments = _Moments.of(x, y)
    m = x.shape[1]
    fit = _ibss(moments, effects, np.full(m, 1.0 / m), None, max_iterations, tolerance)
    fits = [fit]
    for sites in _configurations(moments, min(search_sites, effects), starts=starts_per_size) if search_sites else []:
        start = _ibss(moments, effects, np.full(m, 1.0 / m), _state_at(moments, sites, effects), max_iterations,
                      tolerance)
        fits.append(start)
        if start["elbo"] > fit["elbo"] + 1e-6:
            fit = start
    while refine:
        sets, _ = _credible_sets(moments, fit["alpha"], fit["prior_variance"], coverage, min_purity)
        better = None
        for members in sets:
            blocked = np.full(m, 1.0)
            blocked[members] = 0.0
            start = _ibss(moments, effects, blocked / blocked.sum(), None, max_iterations, tolerance)
            restart = _ibss(moments, effects, np.full(m, 1.0 / m), start, max_iterations, tolerance)
            fits.append(restart)
            if restart["elbo"] > (better or fit)["elbo"] + 1e-6:
                better = restart
        if better is None:
            break
        fit = better
    pip, alpha, weights = _averaged(fits, moments, min_purity) if average else (
        _pip(fit), fit["alpha"][fit["prior_variance"] > 0], [1.0])
    sets, purities = _credible_sets(moments, alpha, np.ones(len(alpha)), coverage, min_purity)
    return FineMap(pip, sets, purities, fit["converged"], fit["iterations"], [round(float(w), 4) for w in weights])


def _pip(fit: dict) -> np.ndarray:
    active = fit["prior_variance"] > 0
    return 1 - np.prod(1 - fit["alpha"][active], axis=0) if active.any() else np.zeros(fit["alpha"].shape[1])


MIN_MODE_WEIGHT = 0.01


def _averaged(fits: list[dict], moments: _Moments, min_purity: float) -> tuple[np.ndarray, np.ndarray, list[float]]:
    """PIPs and each effect's posterior over sites, averaged over the distinct fits (modes) IBSS reached from its
    starts, each weighted by exp(ELBO) (its approximate evidence); modes under MIN_MODE_WEIGHT are left out.

    Why: in a region without recombination two sets of sites can explain the trait almost equally (ELBOs 0.5-4
    nats apart on simulated cohorts), and keeping only the best one made credible sets that missed the planted sites
    more often than their 95% says. Each effect of the best mode is matched to the effect of every other mode whose
    sites it is most correlated with (expected |r| of the two posteriors, at least `min_purity`; one-to-one), and
    their posteriors are mixed by the modes' weights; effects of other modes with no match add to PIPs only.
    Returns (PIPs, the best mode's active effects' mixed posteriors, the modes' weights, best first).
    """
    from scipy.optimize import linear_sum_assignment

    modes: list[tuple[dict, np.ndarray]] = []
    finite = [fit for fit in fits if np.isfinite(fit["elbo"])] or fits[:1]  # a degenerate fit has no evidence
    for fit in sorted(finite, key=lambda f: -f["elbo"]):  # one copy of each mode: several starts reach the same
        pip = _pip(fit)
        if not any(np.abs(pip - other).max() < 0.05 for _, other in modes):
            modes.append((fit, pip))
    elbo = np.array([fit["elbo"] for fit, _ in modes])
    weights = np.exp(elbo - elbo.max()) if np.isfinite(elbo.max()) else np.eye(len(elbo))[0]
    weights /= weights.sum()
    kept = weights >= MIN_MODE_WEIGHT
    modes, weights = [mode for mode, keep in zip(modes, kept) if keep], weights[kept] / weights[kept].sum()
    pip = sum(w * mode_pip for w, (_, mode_pip) in zip(weights, modes))
    best = modes[0][0]
    alpha = best["alpha"][best["prior_variance"] > 0] * weights[0]
    total = np.full(len(alpha), weights[0])
    if len(modes) > 1 and len(alpha):
        correlation = np.abs(moments.correlation)
        for w, (fit, _) in zip(weights[1:], modes[1:]):
            other = fit["alpha"][fit["prior_variance"] > 0]
            if not len(other):
                continue
            alike = (alpha / total[:, None]) @ correlation @ other.T
            for row, col in zip(*linear_sum_assignment(-alike)):
                if alike[row, col] >= min_purity:
                    alpha[row] += w * other[col]
                    total[row] += w
    return pip, alpha / total[:, None] if len(alpha) else alpha, list(weights)


@dataclass
class _Moments:
    """What IBSS needs of the data (susieR's sufficient statistics): X'X, X'y, y'y and n of centred x and y.

    Every IBSS step then costs O(sites^2) instead of O(individuals x sites): with 10,000 individuals the ~15 fits of
    one run (the plain one, the configuration starts, the refinement restarts) took 56-88 s on the individual-level
    data and take a few seconds here, with the same fits up to rounding.
    """
    n: int
    xtx: np.ndarray
    xty: np.ndarray
    yty: float

    @classmethod
    def of(cls, x: np.ndarray, y: np.ndarray) -> _Moments:
        x = x - x.mean(0)
        y = np.asarray(y, dtype=np.float64) - np.mean(y)
        return cls(len(y), x.T @ x, x.T @ y, float(y @ y))

    @property
    def d(self) -> np.ndarray:
        return np.diag(self.xtx).copy()

    @cached_property
    def spread(self) -> np.ndarray:
        """Each site's sqrt(x'x) (1 for a constant site), the scale of the correlations below."""
        spread = np.sqrt(self.d)
        spread[spread == 0] = 1
        return spread

    @cached_property
    def correlation(self) -> np.ndarray:
        """r between every two sites, for the configuration search, the fits' matching and the sets' purity."""
        return self.xtx / np.outer(self.spread, self.spread)


def _ibss(moments: _Moments, effects: int, prior: np.ndarray, start: dict | None, max_iterations: int,
          tolerance: float) -> dict:
    """One IBSS fit from `start` (or from nothing) with prior inclusion weights `prior`; returns its state and ELBO.

    Written on `_Moments`: b_l = alpha_l * mean_l is effect l's expected coefficients, X'X b_l is kept per effect
    (the individual-level form keeps X b_l), and every residual product below is X'y and X'X b expanded."""
    n, xtx, xty, yty = moments.n, moments.xtx, moments.xty, moments.yty
    m = len(xty)
    d = moments.d
    scale = yty / n or 1.0
    with np.errstate(divide="ignore"):
        log_prior = np.log(prior)
    if start is None:
        alpha = np.full((effects, m), 1.0 / m)
        mean, mean_square = np.zeros((effects, m)), np.zeros((effects, m))
        prior_variance = np.full(effects, 0.2 * scale)
        residual_variance = scale
    else:
        alpha, mean, mean_square = start["alpha"].copy(), start["mean"].copy(), start["mean_square"].copy()
        prior_variance, residual_variance = start["prior_variance"].copy(), start["residual_variance"]
    b = alpha * mean
    xtx_b = b @ xtx  # X'X b_l of each effect (effects x m); X'X is symmetric
    total_b, total_xtx_b = b.sum(0), xtx_b.sum(0)
    kl = np.zeros(effects)
    converged, iteration, elbo = False, 0, -np.inf
    for iteration in range(1, max_iterations + 1):
        for effect in range(effects):
            total_b -= b[effect]
            total_xtx_b -= xtx_b[effect]
            xtr = xty - total_xtx_b  # X'(y - X b_others)
            betahat, shat2 = xtr / d, residual_variance / d
            prior_variance[effect] = _best_prior_variance(betahat, shat2, log_prior, scale)
            weights = _log_bayes_factors(betahat, shat2, prior_variance[effect]) + log_prior
            lbf_model = logsumexp(weights)
            alpha[effect] = np.exp(weights - lbf_model)
            if prior_variance[effect] > 0:
                posterior_variance = 1 / (1 / prior_variance[effect] + d / residual_variance)
                mean[effect] = posterior_variance * xtr / residual_variance
                mean_square[effect] = posterior_variance + mean[effect] ** 2
            else:
                mean[effect], mean_square[effect] = 0.0, 0.0
            b[effect] = alpha[effect] * mean[effect]
            xtx_b[effect] = xtx @ b[effect]
            # KL of this single effect's posterior from its prior (susieR's SER_posterior_e_loglik - loglik)
            rss = yty - 2 * total_b @ xty + total_b @ total_xtx_b  # |y - X b_others|^2
            expected = -0.5 * n * np.log(2 * np.pi * residual_variance) - 0.5 / residual_variance * (
                rss - 2 * xtr @ b[effect] + (d * alpha[effect] * mean_square[effect]).sum())
            null = -0.5 * n * np.log(2 * np.pi * residual_variance) - 0.5 * rss / residual_variance
            kl[effect] = -(lbf_model + null) + expected
            total_b += b[effect]
            total_xtx_b += xtx_b[effect]
        expected_rss = (yty - 2 * total_b @ xty + total_b @ total_xtx_b - (b * xtx_b).sum()
                        + (d * alpha * mean_square).sum())
        residual_variance = max(float(expected_rss) / n, 1e-8 * scale)
        new_elbo = float(-0.5 * n * np.log(2 * np.pi * residual_variance) - 0.5 * expected_rss / residual_variance
                         - kl.sum())
        if abs(new_elbo - elbo) < tolerance:
            converged, elbo = True, new_elbo
            break
        elbo = new_elbo
    return {"alpha": alpha, "mean": mean, "mean_square": mean_square, "prior_variance": prior_variance,
            "residual_variance": residual_variance, "elbo": elbo, "converged": converged, "iterations": iteration}


EXACT_PAIRS_UP_TO = 2000  # sites; every pair's fit is computed exactly up to here (2 M pairs, ~100 MB)


def best_configurations(x: np.ndarray, y: np.ndarray, max_sites: int, beam: int = 1000) -> list[np.ndarray]:
    """The sets of 1..max_sites sites that explain most of y by least squares, found from correlations: every pair
    exactly (up to EXACT_PAIRS_UP_TO sites), then a beam of the `beam` best sets of each size extended by one site. Measured on a simulated cohort
    where three causal sites mask one another (docs/association.md): IBSS and forward selection both settled on
    tags of their combination; pairs exhaustively and a beam of 1,000 found the three signals, a beam of 100 did not."""
    return _configurations(_Moments.of(np.asarray(x, dtype=np.float64), y), max_sites, beam)  # the best of each size


def _configurations(moments: _Moments, max_sites: int, beam: int = 1000, starts: int = 1) -> list[np.ndarray]:
    """The best configuration of each size; with `starts` > 1 also the next best ones of that size that are not
    the same sites up to tags (each site at r^2 >= 0.8 with one of a configuration already taken), as further
    starts for IBSS: each may lead to another mode."""
    m = len(moments.xty)
    r_xx = moments.correlation
    r_xy = moments.xty / moments.spread / (np.sqrt(moments.yty) or 1.0)
    best = [[(float(r_xy[i] ** 2), (int(i),)) for i in np.argsort(-r_xy ** 2)[:beam]]]
    if max_sites >= 2 and 2 <= m <= EXACT_PAIRS_UP_TO:  # beyond, pairs grow from the best single sites like the rest
        rows, cols = np.triu_indices(m, 1)
        rho = r_xx[rows, cols]
        explained = (r_xy[rows] ** 2 + r_xy[cols] ** 2 - 2 * rho * r_xy[rows] * r_xy[cols]) / np.maximum(1 - rho ** 2, 1e-6)
        top = np.argsort(-explained)[:beam]
        best.append([(float(explained[t]), (int(rows[t]), int(cols[t]))) for t in top])
    while len(best) < max_sites and len(best) < m:
        sets, values = [], []
        for explained, sites in best[-1]:
            chosen = list(sites)
            inverse = np.linalg.inv(r_xx[np.ix_(chosen, chosen)] + 1e-9 * np.eye(len(chosen)))
            weights, across = inverse @ r_xy[chosen], inverse @ r_xx[chosen]
            # the share of y a further site explains beyond the chosen ones: its squared partial correlation
            gain = (r_xy - r_xx[:, chosen] @ weights) ** 2 / np.maximum(1 - (r_xx[:, chosen] * across.T).sum(1), 1e-6)
            gain[chosen] = -np.inf
            added = np.argsort(-gain)[:beam]
            added = added[np.isfinite(gain[added])]
            sets.append(np.column_stack([np.tile(chosen, (len(added), 1)), added]))
            values.append(explained + gain[added])
        best.append(_best_distinct(np.sort(np.vstack(sets), axis=1), np.concatenate(values), beam))
    chosen = []
    for level in best:
        taken: list[tuple] = []
        for _, sites in level:
            if len(taken) == starts:
                break
            if not any(all((r_xx[list(other), site] ** 2).max() >= 0.8 for site in sites) for other in taken):
                taken.append(sites)
        chosen += [np.array(sites) for sites in taken]
    return chosen


def _best_distinct(sets: np.ndarray, values: np.ndarray, beam: int) -> list[tuple[float, tuple]]:
    """The `beam` best distinct site sets (rows of `sets`, sorted), each with its largest value, best first (ties:
    the larger set first, as Python orders the (value, sites) tuples). One pass of numpy over the up to beam x sites
    grown sets, each coded as one integer where it fits: a dict of tuples took most of a 1,000-individual run's
    fine-mapping."""
    base = int(sets.max(initial=0)) + 1
    if base ** sets.shape[1] < 2 ** 62:  # each set as one integer, in the sets' lexicographic order
        keys = sets @ base ** np.arange(sets.shape[1] - 1, -1, -1, dtype=np.int64)
        _, first, inverse = np.unique(keys, return_index=True, return_inverse=True)
    else:
        _, first, inverse = np.unique(sets, axis=0, return_index=True, return_inverse=True)
    distinct = sets[first]
    largest = np.full(len(distinct), -np.inf)
    np.maximum.at(largest, inverse.ravel(), values)
    order = np.lexsort((*distinct.T[::-1], largest))[::-1][:beam]
    return [(float(largest[k]), tuple(int(site) for site in distinct[k])) for k in order]


def _state_at(moments: _Moments, sites: np.ndarray, effects: int) -> dict:
    """An IBSS state whose first effects sit on `sites`, each with its joint least-squares effect."""
    m = len(moments.xty)
    inner = moments.xtx[np.ix_(sites, sites)]
    beta = np.linalg.lstsq(inner, moments.xty[sites], rcond=None)[0]
    alpha = np.full((effects, m), 1.0 / m)
    mean, mean_square = np.zeros((effects, m)), np.zeros((effects, m))
    for effect, (site, value) in enumerate(zip(sites, beta)):
        alpha[effect] = 0.0
        alpha[effect, site] = 1.0
        mean[effect, site], mean_square[effect, site] = value, value ** 2
    scale = moments.yty / moments.n or 1.0
    rss = moments.yty - 2 * beta @ moments.xty[sites] + beta @ inner @ beta
    return {"alpha": alpha, "mean": mean, "mean_square": mean_square, "prior_variance": np.full(effects, 0.2 * scale),
            "residual_variance": max(float(rss) / moments.n, 1e-8 * scale)}


def _credible_sets(moments: _Moments, alpha: np.ndarray, prior_variance: np.ndarray, coverage: float,
                   min_purity: float) -> tuple[list[np.ndarray], list[float]]:
    """Each effect's `coverage` set, kept when its sites are correlated at |r| >= min_purity."""
    found: list[tuple[float, np.ndarray, float]] = []
    for effect in np.nonzero(prior_variance > 0)[0]:
        order = np.argsort(-alpha[effect])
        size = int(np.searchsorted(np.cumsum(alpha[effect][order]), coverage) + 1)
        members = np.sort(order[:size])
        if any(set(members) == set(other) for _, other, _ in found):
            continue
        if len(members) > 1:
            purity = float(np.abs(moments.correlation[np.ix_(members, members)]).min())
        else:
            purity = 1.0
        if purity >= min_purity:
            found.append((float(alpha[effect].max()), members, purity))
    found.sort(key=lambda item: -item[0])
    return [members for _, members, _ in found], [purity for _, _, purity in found]
