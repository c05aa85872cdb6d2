"""Many small regressions at once: the per-site test and the PLINK-style epistasis scan as batched GLMs.

Each test fits y ~ covariates + tested columns (additive dosage coding) and reports the Wald test of the last
coefficient: linear regression (t test) for a quantitative trait, logistic regression (Newton-Raphson, z test) for a
binary one, exactly what `plink --linear/--logistic` and `--epistasis` compute. Batching turns ~10^5 tiny fits into a
few large array operations.
"""
from __future__ import annotations

import numpy as np
from scipy import stats

from biolens.hardware import map_on_cores

_ELEMENTS_PER_CHUNK = 4_000_000


def _chunks(k: int, n: int, p: int):
    size = max(1, _ELEMENTS_PER_CHUNK // max(n * p, 1))
    for start in range(0, k, size):
        yield slice(start, min(k, start + size))


def linear_last(X: np.ndarray, y: np.ndarray, absorbed: int = 0) -> tuple[np.ndarray, np.ndarray, int]:
    """Least squares for every design of the batch X (k x n x p): effect and standard error of the last column, and
    the residual degrees of freedom. y: one trait (n) or several (n x t) sharing each design, each solved once;
    `absorbed`: columns already regressed out of y (covariates), which the degrees of freedom lose too."""
    n, p = X.shape[1], X.shape[2]
    traits = y if y.ndim == 2 else y[:, None]
    dof = max(n - p - absorbed, 1)
    beta, se = last_from_cross_products(np.matmul(np.swapaxes(X, 1, 2), X), np.einsum("kni,nt->kit", X, traits),
                                        (traits**2).sum(0), dof)
    if y.ndim == 2:
        return beta, se, dof
    return beta[:, 0], se[:, 0], dof


def last_from_cross_products(gram: np.ndarray, cross: np.ndarray, total_ss: np.ndarray,
                             dof: int) -> tuple[np.ndarray, np.ndarray]:
    """Effect and standard error of the last column (K x t each) from each design's cross-products: gram K x p x p
    (X'X), cross K x p x t (X'y), total_ss the traits' sums of squares (y'y, t), dof the residual degrees of freedom.
    The least squares of `linear_last` and of the product scans (`product_grams`), which build them without X."""
    inverse = np.linalg.pinv(gram)
    beta = np.matmul(inverse, cross)
    rss = np.maximum(total_ss[None, :] - np.einsum("kit,kit->kt", cross, beta), 1e-300)
    se = np.sqrt(np.maximum(rss / dof * inverse[:, -1, -1, None], 1e-300))
    return beta[:, -1, :], se


SEPARATION_STEPS = 10  # Newton steps after which a fit whose steps no longer shrink is read as separated


def _newton(k: int, p: int, intercept, information_and_score, iterations: int, tol: float,
            separation: float | None = None, start: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Newton-Raphson for k logistic fits of p coefficients at once, started at the intercept's log-odds (`intercept`,
    per fit or one for all), or with `start` at those values of the first coefficients (one for all: the fit of the
    columns every fit shares, `_shared_fit`); `information_and_score(active, coefficients)` gives the active fits'
    information matrices and scores. Each fit stops on its own once its step is below `tol` (a few near-separated
    fits that need every iteration no longer keep the whole batch iterating). The last coefficient and its standard
    error.

    `separation`: stop separated fits and give them this standard error (NaN: no test; inf: p = 1); None: every
    fit runs until its step is below `tol` or the iterations end. A separated fit (the individuals of a genotype
    combination all cases or all controls) has no maximum: a coefficient heads to infinity by about one log-odds a
    step, and the Wald test of that coefficient reads p ~ 1 whatever the data (Hauck-Donner). PLINK 1.9 reports
    such a fit as failed (its `logistic_regression` fails a fit whose steps stay at 1 from the 8th on). Here a fit
    still moving after SEPARATION_STEPS steps with its last step more than half the one before (a converging Newton
    fit's steps shrink quadratically) stops: with the tested coefficient still moving it gets the `separation`
    standard error; with only other coefficients moving (one individual alone in a genotype cell) the tested one
    has settled and keeps its test. In a binary run with age and sex, 17% of the pairs (a third of those fitted)
    were separated and took half the scan's Newton steps (docs/performance.md, session 55)."""
    beta = np.zeros((k, p))
    beta[:, 0] = intercept  # column 0 is the intercept
    if start is not None:
        beta[:, : len(start)] = start
    ridge = 1e-8 * np.eye(p)
    information = np.empty((k, p, p))
    active = np.arange(k)
    last = np.full(k, np.inf)
    separated = np.zeros(k, dtype=bool)
    for iteration in range(iterations):
        block, score = information_and_score(active, beta[active])
        information[active] = block + ridge
        step = np.linalg.solve(information[active], score[..., None])[..., 0]
        beta[active] += step
        size = np.abs(step).max(1)
        moving = size >= tol
        if separation is not None and iteration + 1 >= SEPARATION_STEPS:
            stuck = moving & (size > 0.5 * last[active])
            separated[active[stuck & (np.abs(step[:, -1]) >= tol)]] = True
            moving &= ~stuck
        last[active] = size
        active = active[moving]
        if not len(active):
            break
    covariance = np.linalg.pinv(information)
    se = np.sqrt(np.maximum(covariance[:, -1, -1], 1e-300))
    if separation is not None:
        se[separated] = separation
    return beta[:, -1], se


def _log_odds(mean) -> np.ndarray:
    mean = np.clip(mean, 1e-6, 1 - 1e-6)
    return np.log(mean / (1 - mean))


def _logistic(X: np.ndarray, y: np.ndarray, iterations: int = 25, tol: float = 1e-5,
              trials: np.ndarray | None = None, separation: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Logistic fits of a batch, each on its own design (`_newton`).

    X: k x n x p (column 0 the intercept), y: the n individuals' 0/1 trait. Or grouped: `trials` (k x n) individuals
    share each row of X, and y (k x n) counts the cases among them: the binomial likelihood of the groups is the
    individuals' likelihood, so the fit, its information matrix and its Wald test are the same."""
    k, n, p = X.shape
    if trials is None:
        y, trials = np.broadcast_to(y, (k, n)), np.ones((1, 1))
    trials = np.broadcast_to(trials, (k, n))

    def information_and_score(active, coefficients):
        part = X[active]
        eta = np.clip(np.matmul(part, coefficients[..., None])[..., 0], -30, 30)
        mu = 1 / (1 + np.exp(-eta))
        weight = trials[active] * mu * (1 - mu)
        information = np.matmul(np.swapaxes(part * weight[..., None], 1, 2), part)
        return information, np.matmul(np.swapaxes(part, 1, 2), (y[active] - trials[active] * mu)[..., None])[..., 0]

    return _newton(k, p, _log_odds(y.sum(1) / np.maximum(trials.sum(1), 1e-300)), information_and_score,
                   iterations, tol, separation)


def _logistic_beside(base: np.ndarray, tested: np.ndarray, y: np.ndarray, iterations: int = 25,
                     tol: float = 1e-5, separation: float | None = None,
                     shared: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """`_logistic` for fits that share their first columns: y ~ base + tested[:, k], for every k; the last tested
    column's coefficient and standard error. base: n x c (intercept first); tested: t x k x n (each column contiguous);
    shared: where the fits start, `_shared_fit(base, y)` (the intercept alone when None).

    The information matrix and the score are assembled from matrix products with the shared base (w @ base x base,
    (w * tested) @ base) instead of each fit's own n x (c + t) design: the same Newton-Raphson steps with fewer passes
    over memory. With two covariates, 2.5 times faster for the per-site test (lambda_GC's 100 shuffles of the trait)
    and 1.5 times for PLINK's pair scan (docs/performance.md, session 51)."""
    t, k, n = tested.shape
    c = base.shape[1]
    p = c + t
    base_products = (base[:, :, None] * base[:, None, :]).reshape(n, c * c)

    def information_and_score(active, coefficients):
        columns = tested if len(active) == k else tested[:, active]  # no copy while every fit is active
        eta = coefficients[:, :c] @ base.T
        for s in range(t):
            eta += columns[s] * coefficients[:, c + s, None]
        mu = 1 / (1 + np.exp(-np.clip(eta, -30, 30)))
        weight, residual = mu * (1 - mu), y - mu
        block = np.empty((len(active), p, p))
        score = np.empty((len(active), p))
        block[:, :c, :c] = (weight @ base_products).reshape(-1, c, c)
        score[:, :c] = residual @ base
        for s in range(t):
            weighted = weight * columns[s]
            block[:, :c, c + s] = weighted @ base
            block[:, c + s, :c] = block[:, :c, c + s]
            for u in range(s, t):
                block[:, c + s, c + u] = block[:, c + u, c + s] = np.einsum("kn,kn->k", weighted, columns[u])
            score[:, c + s] = np.einsum("kn,kn->k", residual, columns[s])
        return block, score

    return _newton(k, p, _log_odds(y.mean()), information_and_score, iterations, tol, separation, start=shared)


def _shared_fit(base: np.ndarray, y: np.ndarray, iterations: int = 25, tol: float = 1e-8) -> np.ndarray | None:
    """The logistic fit of y on the shared columns alone (intercept and covariates), where every fit that adds tested
    columns starts: those columns are centred or nearly unrelated to the covariates, so the fits begin close to
    their optimum. Started at the intercept alone, the covariates' effects (age, sex) took a PLINK pair scan's first
    Newton steps, in which every fit is active (docs/performance.md, session 57). None (start at the intercept) with
    no covariates, or where this fit does not converge (covariates that separate the cases)."""
    if base.shape[1] < 2:
        return None
    beta = np.zeros(base.shape[1])
    beta[0] = _log_odds(y.mean())
    for _ in range(iterations):
        mu = 1 / (1 + np.exp(-np.clip(base @ beta, -30, 30)))
        information = (base * (mu * (1 - mu))[:, None]).T @ base + 1e-8 * np.eye(base.shape[1])
        step = np.linalg.solve(information, base.T @ (y - mu))
        beta += step
        if np.abs(step).max() < tol:
            return beta
    return None


def wald_last(base: np.ndarray, tested: np.ndarray, y: np.ndarray, kind: str,
              separation: float | None = None, shared: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Effect and two-sided p-value of the last tested column in y ~ base + tested[k], for every k.

    base: n x c (intercept first); tested: k x n x t. Returns (beta, p) of length k; NaN p where the fit is degenerate
    (`separation`: the standard error of fits separated in the tested column, `_newton`). A binary trait's fits
    start at `shared`, the fit of y on base alone (`_shared_fit`), fitted here when not given: a caller that tests
    many blocks against one base and trait fits it once.
    """
    k, n, t = tested.shape
    p = base.shape[1] + t
    betas, pvalues = np.empty(k), np.empty(k)
    if kind == "binary" and shared is None:
        shared = _shared_fit(base, y)
    for part in _chunks(k, n, p):
        if kind == "binary":
            beta, se = _logistic_beside(base, np.ascontiguousarray(np.moveaxis(tested[part], 2, 0)), y,
                                        separation=separation, shared=shared)
            pvalue = 2 * stats.norm.sf(np.abs(beta / se))
        else:
            X = np.concatenate([np.broadcast_to(base, (part.stop - part.start, n, base.shape[1])), tested[part]], axis=2)
            beta, se, dof = linear_last(X, y)
            pvalue = 2 * stats.t.sf(np.abs(beta / se), dof)
        degenerate = ~np.isfinite(pvalue) | (tested[part][..., -1].std(1) == 0)
        pvalue[degenerate] = np.nan
        betas[part], pvalues[part] = beta, pvalue
    return betas, pvalues


def design(covariates: np.ndarray) -> np.ndarray:
    """Intercept plus covariates: the part of every model that is not a tested genotype."""
    return np.hstack([np.ones((covariates.shape[0], 1)), covariates])


def site_tests(dosage: np.ndarray, y: np.ndarray, covariates: np.ndarray, kind: str,
               separation: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Per-site additive test (PLINK --linear/--logistic): beta per alt allele and p for every site.

    A binary trait without covariates is fitted on each site's genotype classes (individuals and cases with 0, 1
    and 2 copies) wherever the site's dosages are whole numbers: the same likelihood on 3 rows instead of n, which
    matters for the 100 shuffles of the trait that `inflation_by_permutation` tests. `separation`: the standard
    error of separated logistic fits, stopped early (`_newton`); None: they run every Newton step (p ~ 1)."""
    if kind != "binary" or covariates.shape[1]:
        return wald_last(design(covariates), dosage.T[:, :, None], y, kind, separation)
    whole = np.flatnonzero(_whole_sites(dosage))
    rest = np.setdiff1d(np.arange(dosage.shape[1]), whole)
    betas, pvalues = np.full(dosage.shape[1], np.nan), np.full(dosage.shape[1], np.nan)
    if len(rest):
        betas[rest], pvalues[rest] = wald_last(design(covariates), dosage[:, rest].T[:, :, None], y, kind, separation)
    if len(whole):
        classes = genotype_classes(dosage[:, whole])
        trials = np.stack([(classes == c).sum(0) for c in range(3)], axis=1).astype(np.float64)  # sites x 3
        cases = np.stack([((classes == c) * y[:, None]).sum(0) for c in range(3)], axis=1)
        X = np.stack([np.ones((len(whole), 3)), np.broadcast_to(np.arange(3.0), (len(whole), 3))], axis=2)
        beta, se = _logistic(X, cases, trials=trials, separation=separation)
        with np.errstate(invalid="ignore"):
            pvalue = 2 * stats.norm.sf(np.abs(beta / se))
        one_class = (trials > 0).sum(1) < 2
        betas[whole], pvalues[whole] = beta, np.where(np.isfinite(pvalue) & ~one_class, pvalue, np.nan)
    return betas, pvalues


def pair_tests(dosage: np.ndarray, y: np.ndarray, covariates: np.ndarray, kind: str,
               pairs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """PLINK --epistasis: y ~ covariates + a + b + a*b for each pair, Wald test of the a*b term (NaN where the
    product is a linear function of the two sites and the covariates: `product_untestable`; for a binary trait also
    where the fit is separated in the a*b term, a failed fit in PLINK: `_newton`).

    A quantitative trait's least squares come from each pair's cross-products (`product_grams` with the covariates
    in the design): building and solving every pair's n x (covariates + 4) design took 21 s of a 10,000-individual
    run (docs/performance.md, session 50). A binary trait's logistic fits need each pair's design, except without
    covariates where both sites' dosages are whole numbers: then the pair's 3 x 3 cells carry the same likelihood
    (`_logistic_pairs_by_cells`).
    """
    base = design(covariates)
    betas, pvalues = np.full(len(pairs), np.nan), np.full(len(pairs), np.nan)
    if kind != "binary":
        centred_y = (np.asarray(y, dtype=np.float64) - np.mean(y))[:, None]  # the intercept absorbs the mean
        dof = max(dosage.shape[0] - base.shape[1] - 3, 1)
        for start in range(0, len(pairs), _PRODUCT_PAIRS_PER_BLOCK):
            chosen = slice(start, start + _PRODUCT_PAIRS_PER_BLOCK)
            grams, cross = product_grams(dosage, pairs[chosen], centred_y, base)
            beta, se = last_from_cross_products(grams, cross, (centred_y ** 2).sum(0), dof)
            with np.errstate(divide="ignore", invalid="ignore"):
                p = 2 * stats.t.sf(np.abs(beta[:, 0] / se[:, 0]), dof)
            testable = ~product_untestable(grams) & np.isfinite(p)
            betas[chosen] = np.where(testable, beta[:, 0], np.nan)
            pvalues[chosen] = np.where(testable, p, np.nan)
        return betas, pvalues
    # pairs whose product is a linear function of the two sites and the covariates have no test: found first from the
    # cross-products, they are not fitted (their singular fits ran all 25 Newton steps: 754 of 2,000 pairs, most of
    # the time of a scan with covariates)
    testable = np.ones(len(pairs), bool)
    for start in range(0, len(pairs), _PRODUCT_PAIRS_PER_BLOCK):
        chosen = slice(start, start + _PRODUCT_PAIRS_PER_BLOCK)
        testable[chosen] = ~product_untestable(product_grams(dosage, pairs[chosen], base=base))
    centred = dosage - dosage.mean(0)  # centring leaves the a*b test unchanged and keeps the fit well conditioned
    whole = _whole_sites(dosage)
    by_cells = (whole[pairs[:, 0]] & whole[pairs[:, 1]]) if covariates.shape[1] == 0 else np.zeros(len(pairs), bool)
    chosen = np.flatnonzero(by_cells & testable)
    betas[chosen], pvalues[chosen] = _logistic_pairs_by_cells(dosage, y, pairs[chosen])
    rest = np.flatnonzero(~by_cells & testable)
    block = max(1, _ELEMENTS_PER_CHUNK // (dosage.shape[0] * (base.shape[1] + 3)))
    # one thread per core, each on one BLAS thread: the Newton steps' products are small, and OpenBLAS's threads
    # waiting on one another made this scan 3.5 times slower with the cores shared (docs/performance.md, sessions
    # 51 and 55)

    shared = _shared_fit(base, y)  # where every pair's fit starts, fitted once for all blocks

    def fitted(start: int) -> tuple[np.ndarray, np.ndarray]:
        a, b = pairs[rest[start:start + block], 0], pairs[rest[start:start + block], 1]
        tested = np.stack([centred[:, a].T, centred[:, b].T, (centred[:, a] * centred[:, b]).T], axis=2)
        return wald_last(base, tested, y, kind, separation=np.nan, shared=shared)

    starts = range(0, len(rest), block)
    for start, (beta, p) in zip(starts, map_on_cores(fitted, starts)):
        betas[rest[start:start + block]], pvalues[rest[start:start + block]] = beta, p
    return betas, pvalues


def _logistic_pairs_by_cells(dosage: np.ndarray, y: np.ndarray, pairs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """PLINK's logistic product test (y ~ a + b + a*b, Wald test of a*b) for pairs of sites whose dosages are all
    0, 1 or 2, with no covariates: fitted on the 3 x 3 table's cells (individuals and cases per cell) rather than on
    the individuals, the same likelihood on 9 rows instead of n. Fitting each pair on its n individuals was the
    largest stage of a binary run (docs/performance.md, session 50)."""
    betas, pvalues = np.full(len(pairs), np.nan), np.full(len(pairs), np.nan)
    value = np.arange(3)[None, :] - dosage.mean(0)[:, None]  # m x 3: each class's centred dosage
    for chosen, trials, cases in pair_cell_tables(dosage, pairs, y[:, None]):
        a = np.repeat(value[pairs[chosen, 0]], 3, axis=1)  # K x 9, a-major as the cells
        b = np.tile(value[pairs[chosen, 1]], (1, 3))
        X = np.stack([np.ones_like(a), a, b, a * b], axis=2)
        for part in _chunks(len(chosen), 9, 4):
            beta, se = _logistic(X[part], np.rint(cases[part, :, 0]), trials=trials[part], separation=np.nan)
            with np.errstate(invalid="ignore"):
                pvalue = 2 * stats.norm.sf(np.abs(beta / se))
            betas[chosen[part]] = beta
            pvalues[chosen[part]] = np.where(np.isfinite(pvalue), pvalue, np.nan)
    return betas, pvalues


def genotype_classes(dosage: np.ndarray) -> np.ndarray:
    """Copies of the alt allele as 0/1/2 per individual and site (imputed dosages are rounded)."""
    return np.clip(np.rint(dosage), 0, 2).astype(np.int8)


def _whole_sites(dosage: np.ndarray) -> np.ndarray:
    """Sites whose dosages are all 0, 1 or 2 (no imputed, fractional call): their genotype classes are their dosages."""
    return np.all(dosage == genotype_classes(dosage), axis=0)


_CELL_PAIRS_PER_BLOCK = 50_000  # pairs whose 3 x 3 tables are gathered at once


def pair_cell_tables(dosage: np.ndarray, pairs: np.ndarray, values: np.ndarray):
    """Each pair's 3 x 3 genotype table, in blocks of pairs: yields (indices into `pairs`, individuals per cell K x 9,
    `values` (n x t) summed per cell K x 9 x t), cells a-major.

    Only the four cells where both sites carry the alt allele (classes 1 and 2) come from matrix products of
    genotype-class indicators, one per block of first sites against the block's second sites; the other five follow
    from each site's class totals (a cell with a class-0 site is its row's or column's total less the rest). Taking
    all nine from products of 0/1/2 indicators of every site cost 2.25 times the arithmetic, and the product of a
    block against every site twice what the block's second sites need; the saturated scans of 41 traits spent most of
    their time there (docs/performance.md, session 57). Gathered cell by cell: taking each pair's whole rows first
    made this gather 80% of a scan's time (session 50).
    """
    classes = genotype_classes(dosage)
    n, m = classes.shape
    values = np.asarray(values, dtype=np.float64)
    indicators = np.stack([classes == 1, classes == 2], axis=2).reshape(n, 2 * m).astype(np.float64)  # site-major
    class_counts = indicators.sum(0).reshape(m, 2)  # individuals in class 1 and 2 of each site
    class_sums = (values.T @ indicators).reshape(-1, m, 2)  # traits x sites x (class 1, class 2)
    totals = values.sum(0)
    order = np.argsort(pairs[:, 0], kind="stable")
    for start in range(0, len(order), _CELL_PAIRS_PER_BLOCK):
        chosen = order[start:start + _CELL_PAIRS_PER_BLOCK]
        a, b = pairs[chosen, 0], pairs[chosen, 1]
        first, second = np.unique(a), np.unique(b)
        block = indicators[:, (2 * first[:, None] + np.arange(2)).ravel()]
        against = indicators[:, (2 * second[:, None] + np.arange(2)).ravel()]
        rows = 2 * np.searchsorted(first, a)[:, None] + np.array([0, 0, 1, 1])  # K x 4: cells (1,1) (1,2) (2,1) (2,2)
        cells = rows * (2 * len(second)) + 2 * np.searchsorted(second, b)[:, None] + np.array([0, 1, 0, 1])
        counts = _whole_table((block.T @ against).ravel()[cells], class_counts[a], class_counts[b], n)
        carried = np.empty((values.shape[1], len(chosen), 4))
        for t, v in enumerate(values.T):
            carried[t] = ((block * v[:, None]).T @ against).ravel()[cells]
        yield chosen, counts, np.moveaxis(_whole_table(carried, class_sums[:, a], class_sums[:, b], totals), 0, -1)


def _whole_table(carried: np.ndarray, first_totals: np.ndarray, second_totals: np.ndarray, total) -> np.ndarray:
    """The 3 x 3 table (... x K x 9, a-major) from its four cells where both sites carry the alt allele (... x K x 4:
    (1,1) (1,2) (2,1) (2,2)), each site's totals in its classes 1 and 2 (... x K x 2 each) and the grand total (...).
    Cell by cell: numpy's sums over axes of length 2 took half of the whole scan."""
    c11, c12, c21, c22 = (carried[..., c] for c in range(4))
    f1, f2, s1, s2 = first_totals[..., 0], first_totals[..., 1], second_totals[..., 0], second_totals[..., 1]
    table = np.empty((*carried.shape[:-1], 9))
    table[..., 4], table[..., 5], table[..., 7], table[..., 8] = c11, c12, c21, c22
    table[..., 3], table[..., 6] = f1 - c11 - c12, f2 - c21 - c22
    table[..., 1], table[..., 2] = s1 - c11 - c21, s2 - c12 - c22
    table[..., 0] = np.asarray(total)[..., None] - f1 - f2 - s1 - s2 + c11 + c12 + c21 + c22
    return table


_PRODUCT_CELLS_PER_BLOCK = 4_000_000  # first sites x second sites of cross-products held at once (32 MB)
_PRODUCT_PAIRS_PER_BLOCK = 50_000  # pairs whose cross-products are held at once


def product_grams(dosage: np.ndarray, pairs: np.ndarray, traits: np.ndarray | None = None,
                  base: np.ndarray | None = None):
    """Each pair's cross-product matrix of the design [base, a, b, a*b] (a, b: the two sites' centred dosages; base:
    n x c, the intercept and any covariates, the intercept alone by default), K x (c + 3) x (c + 3), and with
    `traits` (n x t) also the design's cross-products with them, K x (c + 3) x t.

    From matrix products of the sites' columns, their squares, the traits and the base's columns (a'b, a^2'b, a'b^2,
    a^2'b^2, (a y)'b, (a z)'b for each base column z) rather than from each pair's n x (c + 3) design, in float64:
    building the design for every pair made the product scans the largest numpy stage of a run (docs/performance.md,
    session 49).
    """
    centred = np.asarray(dosage, dtype=np.float64)
    centred = centred - centred.mean(0)
    n, t = len(centred), 0 if traits is None else traits.shape[1]
    base = np.ones((n, 1)) if base is None else np.asarray(base, dtype=np.float64)
    c = base.shape[1]
    grams, cross = np.empty((len(pairs), c + 3, c + 3)), np.empty((len(pairs), c + 3, t))
    firsts, seconds = np.unique(pairs[:, 0]), np.unique(pairs[:, 1])
    b, b2 = centred[:, seconds], centred[:, seconds] ** 2
    base_b, base_gram = base.T @ b, base.T @ base  # c x seconds, c x c
    per_block = max(1, _PRODUCT_CELLS_PER_BLOCK // max(len(seconds) * (t + c + 3), 1))
    upper = np.triu_indices(c + 3, 1)  # the Gram is filled above the diagonal, then mirrored
    for start in range(0, len(firsts), per_block):
        block = firsts[start:start + per_block]
        chosen = np.flatnonzero(np.isin(pairs[:, 0], block))
        row, col = np.searchsorted(block, pairs[chosen, 0]), np.searchsorted(seconds, pairs[chosen, 1])
        a, a2 = centred[:, block], centred[:, block] ** 2
        s_aa, s_bb = a2.sum(0)[row], b2.sum(0)[col]
        s_ab, s_aab = (a.T @ b)[row, col], (a2.T @ b)[row, col]
        s_abb, s_aabb = (a.T @ b2)[row, col], (a2.T @ b2)[row, col]
        base_a = (base.T @ a)[:, row].T  # K x c
        base_ab = np.stack([((a * z[:, None]).T @ b)[row, col] for z in base.T], -1)  # K x c: z'(a*b)
        g = grams[chosen]
        g[:, :c, :c] = base_gram
        g[:, :c, c], g[:, :c, c + 1], g[:, :c, c + 2] = base_a, base_b[:, col].T, base_ab
        g[:, c, c:] = np.stack([s_aa, s_ab, s_aab], -1)
        g[:, c + 1, c + 1:] = np.stack([s_bb, s_abb], -1)
        g[:, c + 2, c + 2] = s_aabb
        g[:, upper[1], upper[0]] = g[:, upper[0], upper[1]]
        grams[chosen] = g
        if t:
            cross[chosen] = np.concatenate([np.broadcast_to(base.T @ traits, (len(chosen), c, t)),
                                            np.stack([(a.T @ traits)[row], (b.T @ traits)[col],
                                                      np.stack([((a * y[:, None]).T @ b)[row, col] for y in traits.T],
                                                               -1)], axis=1)], axis=1)
    return grams if traits is None else (grams, cross)


def product_untestable(grams: np.ndarray) -> np.ndarray:
    """Pairs whose product a*b is (numerically) a linear function of the design's other columns (a, b, the intercept
    first and any covariates), from `product_grams`: nothing is left of it beyond the two sites' main effects, so its
    test has nothing to test. This is a table whose filled cells lie in one row and one column (no individual
    carrying the minor allele at both sites, for example): its Wald test then read the rounding of a singular fit, p
    anything from 1e-4 to 1 (1,872 of 80,601 pairs of one grid cohort)."""
    main, across = grams[:, :-1, :-1], grams[:, :-1, -1:]
    beyond = grams[:, -1, -1] - np.einsum("kio,kij,kjo->k", across, np.linalg.pinv(main), across)
    own = grams[:, -1, -1] - grams[:, 0, -1] ** 2 / grams[:, 0, 0]
    return beyond <= 1e-9 * np.maximum(own, 1e-300)


def genomic_inflation(pvalues: np.ndarray) -> float:
    """lambda_GC: median observed chi-square (1 df) over its expectation under the null (0.4549)."""
    finite = pvalues[np.isfinite(pvalues)]
    if not len(finite):
        return float("nan")
    return float(np.median(stats.chi2.isf(finite, 1)) / stats.chi2.ppf(0.5, 1))


def effective_tests(dosage: np.ndarray) -> float:
    """Effective number of independent sites (Li & Ji 2005) from the eigenvalues of the dosage correlation matrix:
    in one region without recombination hundreds of sites may carry only a handful of independent signals."""
    varying = dosage[:, dosage.std(0) > 0]
    if varying.shape[1] < 2:
        return float(varying.shape[1])
    eigen = np.abs(np.linalg.eigvalsh(np.corrcoef(varying, rowvar=False)))
    return float(np.sum((eigen >= 1) + (eigen - np.floor(eigen))))


def inflation_by_permutation(dosage: np.ndarray, y: np.ndarray, covariates: np.ndarray, kind: str, *,
                             permutations: int = 100, quantile: float = 0.95, seed: int = 0) -> float:
    """The `quantile` of lambda_GC with the individuals' traits (and covariates, as one row) shuffled against their
    genotypes: what chance gives in this region's own LD. A region without recombination may carry only a few
    haplotype clades, and one chance association with a clade moves the median of all its sites at once; counting
    independent sites (`inflation_by_chance`) underestimated that spread (warnings on 4 of 19 null cohorts)."""
    rng = np.random.default_rng(seed)
    orders = [rng.permutation(len(y)) for _ in range(permutations)]

    def shuffled(order: np.ndarray) -> float:
        # a separated fit's Wald p is ~1 however long it runs (`_newton`): read as 1 at once, it stays above the
        # median, and lambda_GC is the same at a third of the Newton steps for a binary trait with covariates
        return genomic_inflation(site_tests(dosage, y[order], covariates[order], kind, separation=np.inf)[1])

    return float(np.nanquantile(map_on_cores(shuffled, orders), quantile))


def inflation_by_chance(tests: float, quantile: float = 0.95, draws: int = 4000, seed: int = 0) -> float:
    """The `quantile` of lambda_GC under no association with `tests` independent tests: the median of few
    chi-squares is noisy, so a lambda of 1.3 over ~10 independent signals is expected by chance."""
    k = max(int(round(tests)), 1)
    rng = np.random.default_rng(seed)
    medians = np.median(rng.chisquare(1, size=(draws, k)), axis=1) / stats.chi2.ppf(0.5, 1)
    return float(np.quantile(medians, quantile))
