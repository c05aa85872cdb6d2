"""Fine-mapping: which sites in a region of linkage disequilibrium carry the effect (SuSiE).

Sum of Single Effects regression (Wang, Sarkar, Carbonetto & Stephens 2020, JRSS-B), fitted by their iterative
Bayesian stepwise selection (IBSS) on individual-level data. Each of L single effects is one causal site with a
posterior over the sites; sites in strong LD share that posterior, so a credible set lists the sites the data cannot
tell apart, and the posterior inclusion probability (PIP) says how sure the data are about each. Prior effect variances
are estimated per effect (an effect with no support drops to zero), as in susieR's default `estimate_prior_variance`.
Written here because the Python ports on PyPI are unmaintained; the algorithm is short and checked against the
susieR behaviour on simulated cohorts in tests/test_associate.py.
"""
from __future__ import annotations

from dataclasses import dataclass

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
          max_iterations: int = 100, tolerance: float = 1e-4, refine: bool = True, search_sites: int = 5) -> FineMap:
    """Fine-map y on the columns of x (individuals x sites; covariates already regressed out of y and x).

    Returns PIPs and the `coverage` credible sets whose sites are correlated at |r| >= min_purity (susieR's defaults).
    refine: susieR's `refine = TRUE`: IBSS can stop in a local optimum where one site tagging two causal ones takes
    their place (common in a region without recombination); each credible set is then blocked in turn, the fit
    restarted from there, and the restart kept when its evidence lower bound (ELBO) is higher.
    search_sites: IBSS is also started from the best-fitting configurations of 1 to `search_sites` sites found by
    `best_configurations` (as susieR users start it from L0Learn's; 0 turns this off), each start kept when its
    ELBO is higher. Why: where several causal sites mask one another, a site tagging their combination explains the
    trait best on its own, and IBSS, which adds effects one at a time, settles on it and its neighbours.
    """
    x = np.asarray(x, dtype=np.float64)
    varying = x.std(0) > 0
    if not varying.all():  # a constant column never explains anything: fine-map the others, PIP 0 for it
        inner = susie(x[:, varying], y, effects=effects, coverage=coverage, min_purity=min_purity,
                      max_iterations=max_iterations, tolerance=tolerance, refine=refine)
        index = np.nonzero(varying)[0]
        pip = np.zeros(x.shape[1])
        pip[index] = inner.pip
        return FineMap(pip, [index[s] for s in inner.credible_sets], inner.purity, inner.converged, inner.iterations)
    x = x - x.mean(0)
    y = np.asarray(y, dtype=np.float64) - np.mean(y)
    m = x.shape[1]
    fit = _ibss(x, y, effects, np.full(m, 1.0 / m), None, max_iterations, tolerance)
    for sites in best_configurations(x, y, min(search_sites, effects)) if search_sites else []:
        start = _ibss(x, y, effects, np.full(m, 1.0 / m), _state_at(x, y, sites, effects), max_iterations, tolerance)
        if start["elbo"] > fit["elbo"] + 1e-6:
            fit = start
    while refine:
        sets, _ = _credible_sets(x, fit["alpha"], fit["prior_variance"], coverage, min_purity)
        better = None
        for members in sets:
            blocked = np.full(m, 1.0)
            blocked[members] = 0.0
            start = _ibss(x, y, effects, blocked / blocked.sum(), None, max_iterations, tolerance)
            restart = _ibss(x, y, effects, np.full(m, 1.0 / m), start, max_iterations, tolerance)
            if restart["elbo"] > (better or fit)["elbo"] + 1e-6:
                better = restart
        if better is None:
            break
        fit = better
    alpha, prior_variance = fit["alpha"], fit["prior_variance"]
    pip = 1 - np.prod(1 - alpha[prior_variance > 0], axis=0) if (prior_variance > 0).any() else np.zeros(m)
    sets, purities = _credible_sets(x, alpha, prior_variance, coverage, min_purity)
    return FineMap(pip, sets, purities, fit["converged"], fit["iterations"])


def _ibss(x: np.ndarray, y: np.ndarray, effects: int, prior: np.ndarray, start: dict | None, max_iterations: int,
          tolerance: float) -> dict:
    """One IBSS fit from `start` (or from nothing) with prior inclusion weights `prior`; returns its state and ELBO."""
    n, m = x.shape
    d = (x ** 2).sum(0)
    scale = float(y.var()) or 1.0
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
    effect_fits = (alpha * mean) @ x.T  # each effect's fitted values (effects x n), kept as the effects change
    fitted = effect_fits.sum(0)
    kl = np.zeros(effects)
    converged, iteration, elbo = False, 0, -np.inf
    for iteration in range(1, max_iterations + 1):
        for effect in range(effects):
            fitted -= effect_fits[effect]
            residual = y - fitted
            xtr = x.T @ residual
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
            effect_fit = effect_fits[effect] = x @ (alpha[effect] * mean[effect])
            # KL of this single effect's posterior from its prior (susieR's SER_posterior_e_loglik - loglik)
            rss = residual @ residual
            expected = -0.5 * n * np.log(2 * np.pi * residual_variance) - 0.5 / residual_variance * (
                rss - 2 * residual @ effect_fit + (d * alpha[effect] * mean_square[effect]).sum())
            null = -0.5 * n * np.log(2 * np.pi * residual_variance) - 0.5 * rss / residual_variance
            kl[effect] = -(lbf_model + null) + expected
            fitted += effect_fit
        expected_rss = (((y - fitted) ** 2).sum() - (effect_fits ** 2).sum() + (d * alpha * mean_square).sum())
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
    n, m = x.shape
    spread = x.std(0)
    spread[spread == 0] = 1
    standard = (x - x.mean(0)) / spread
    r_xx = standard.T @ standard / n
    r_xy = standard.T @ ((y - y.mean()) / (y.std() or 1.0)) / n
    best = [[(float(r_xy[i] ** 2), (int(i),)) for i in np.argsort(-r_xy ** 2)[:beam]]]
    if max_sites >= 2 and 2 <= m <= EXACT_PAIRS_UP_TO:  # beyond, pairs grow from the best single sites like the rest
        rows, cols = np.triu_indices(m, 1)
        rho = r_xx[rows, cols]
        explained = (r_xy[rows] ** 2 + r_xy[cols] ** 2 - 2 * rho * r_xy[rows] * r_xy[cols]) / np.maximum(1 - rho ** 2, 1e-6)
        top = np.argsort(-explained)[:beam]
        best.append([(float(explained[t]), (int(rows[t]), int(cols[t]))) for t in top])
    while len(best) < max_sites and len(best) < m:
        grown: dict[tuple, float] = {}
        for explained, sites in best[-1]:
            chosen = list(sites)
            inverse = np.linalg.inv(r_xx[np.ix_(chosen, chosen)] + 1e-9 * np.eye(len(chosen)))
            weights, across = inverse @ r_xy[chosen], inverse @ r_xx[chosen]
            # the share of y a further site explains beyond the chosen ones: its squared partial correlation
            gain = (r_xy - r_xx[:, chosen] @ weights) ** 2 / np.maximum(1 - (r_xx[:, chosen] * across.T).sum(1), 1e-6)
            gain[chosen] = -np.inf
            for site in np.argsort(-gain)[:beam]:
                key = tuple(sorted(chosen + [int(site)]))
                grown[key] = max(grown.get(key, -np.inf), explained + float(gain[site]))
        best.append(sorted(((value, key) for key, value in grown.items()), reverse=True)[:beam])
    return [np.array(level[0][1]) for level in best if level]


def _state_at(x: np.ndarray, y: np.ndarray, sites: np.ndarray, effects: int) -> dict:
    """An IBSS state whose first effects sit on `sites`, each with its joint least-squares effect."""
    n, m = x.shape
    beta = np.linalg.lstsq(x[:, sites], y, rcond=None)[0]
    alpha = np.full((effects, m), 1.0 / m)
    mean, mean_square = np.zeros((effects, m)), np.zeros((effects, m))
    for effect, (site, value) in enumerate(zip(sites, beta)):
        alpha[effect] = 0.0
        alpha[effect, site] = 1.0
        mean[effect, site], mean_square[effect, site] = value, value ** 2
    scale = float(y.var()) or 1.0
    return {"alpha": alpha, "mean": mean, "mean_square": mean_square, "prior_variance": np.full(effects, 0.2 * scale),
            "residual_variance": max(float(np.mean((y - x[:, sites] @ beta) ** 2)), 1e-8 * scale)}


def _credible_sets(x: np.ndarray, alpha: np.ndarray, prior_variance: np.ndarray, coverage: float,
                   min_purity: float) -> tuple[list[np.ndarray], list[float]]:
    norms = np.sqrt((x ** 2).sum(0))
    norms[norms == 0] = 1
    found: list[tuple[float, np.ndarray, float]] = []
    for effect in np.nonzero(prior_variance > 0)[0]:
        order = np.argsort(-alpha[effect])
        size = int(np.searchsorted(np.cumsum(alpha[effect][order]), coverage) + 1)
        members = np.sort(order[:size])
        if any(set(members) == set(other) for _, other, _ in found):
            continue
        if len(members) > 1:
            standard = x[:, members] / norms[members]
            purity = float(np.abs(standard.T @ standard).min())
        else:
            purity = 1.0
        if purity >= min_purity:
            found.append((float(alpha[effect].max()), members, purity))
    found.sort(key=lambda item: -item[0])
    return [members for _, members, _ in found], [purity for _, _, purity in found]
