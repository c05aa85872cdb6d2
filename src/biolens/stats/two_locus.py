"""The saturated two-locus test for every pair of sites: interactions of any form, not only dosage products.

For sites i and j the 3 x 3 table of genotype classes (0/1/2 copies) splits the individuals into up to nine cells.
The full model gives each cell its own mean; the main-effects model gives each site its own three class means
(additive + dominance, no interaction). The F test of full vs main effects has up to 4 df and detects any departure
from main effects: a product, "exactly one carrier", both dominant, both recessive, a threshold. PLINK's `--epistasis`
(in `regression.pair_tests`) only sees the product part.

Everything comes from per-cell counts and sums, and those for all pairs come from two matrix products of the
genotype-class indicators, so 10^5-10^6 pairs take seconds. The trait is first residualised on the covariates (for a
binary trait this is the linear-probability form of the test, as in BOLT-LMM or REGENIE's linear step).
"""
from __future__ import annotations

import numpy as np
from scipy import stats

# cell (a, b) of the 3 x 3 table -> design row of the main-effects model: intercept, a==1, a==2, b==1, b==2
_MAIN_DESIGN = np.asarray([[1, a == 1, a == 2, b == 1, b == 2] for a in range(3) for b in range(3)], dtype=np.float64)
_PAIRS_PER_BLOCK = 50_000


def genotype_classes(dosage: np.ndarray) -> np.ndarray:
    """Copies of the alt allele as 0/1/2 per individual and site (imputed dosages are rounded)."""
    return np.clip(np.rint(dosage), 0, 2).astype(np.int8)


def residualise(y: np.ndarray, covariates: np.ndarray) -> np.ndarray:
    """y (a vector, or a matrix column by column) minus its least-squares fit on an intercept and the covariates."""
    base = np.hstack([np.ones((len(y), 1)), covariates])
    coefficients, *_ = np.linalg.lstsq(base, y, rcond=None)
    return y - base @ coefficients


def saturated_pair_tests(dosage: np.ndarray, y: np.ndarray, covariates: np.ndarray,
                         pairs: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """F statistic, its interaction df and the p-value of the full 3 x 3 model against main effects, per pair.

    dosage: individuals x sites; y: the trait (any coding); pairs: K x 2 site indices. NaN where the table leaves no
    interaction df (a site with one genotype class among the individuals, or pairs in complete LD).
    """
    classes = genotype_classes(dosage)
    n, m = classes.shape
    resid = residualise(np.asarray(y, dtype=np.float64), covariates)
    indicators = np.zeros((n, 3 * m), dtype=np.float64)
    indicators[np.arange(n)[:, None], 3 * np.arange(m)[None, :] + classes] = 1.0
    weighted = indicators * resid[:, None]
    total_ss = float(resid @ resid)
    residual_df_base = n - covariates.shape[1] - 1
    f_stat, df_int, pvalues = (np.full(len(pairs), np.nan) for _ in range(3))
    order = np.argsort(pairs[:, 0], kind="stable")
    for start in range(0, len(order), _PAIRS_PER_BLOCK):
        chosen = order[start:start + _PAIRS_PER_BLOCK]
        first = np.unique(pairs[chosen, 0])
        columns = (3 * first[:, None] + np.arange(3)).ravel()
        counts_rows = indicators[:, columns].T @ indicators  # (3|first|) x 3m
        sums_rows = indicators[:, columns].T @ weighted
        where = {site: k for k, site in enumerate(first)}
        row = np.asarray([where[i] for i in pairs[chosen, 0]])
        counts = _tables(counts_rows, row, pairs[chosen, 1])
        sums = _tables(sums_rows, row, pairs[chosen, 1])
        f_stat[chosen], df_int[chosen], pvalues[chosen] = _f_tests(counts, sums, total_ss, residual_df_base)
    return f_stat, df_int, pvalues


def _tables(rows: np.ndarray, row: np.ndarray, second: np.ndarray) -> np.ndarray:
    """K x 9 cells (a-major) from the (3 rows per first site) x 3m block."""
    blocks = rows.reshape(-1, 3, rows.shape[1])[row]  # K x 3 x 3m
    cols = 3 * second[:, None] + np.arange(3)  # K x 3
    return np.take_along_axis(blocks, np.broadcast_to(cols[:, None, :], (len(row), 3, 3)), axis=2).reshape(-1, 9)


def _f_tests(counts: np.ndarray, sums: np.ndarray, total_ss: float, residual_df_base: int):
    filled = counts > 0
    cell_ss = np.where(filled, sums ** 2 / np.where(filled, counts, 1), 0.0).sum(1)  # SS explained by the full model
    gram = np.einsum("kc,ci,cj->kij", counts, _MAIN_DESIGN, _MAIN_DESIGN)
    gram += 1e-9 * max(counts.sum(1).max(), 1) * np.eye(5)  # empty genotype classes: their column fits nothing
    rhs = sums @ _MAIN_DESIGN
    main_ss = np.einsum("ki,ki->k", np.linalg.solve(gram, rhs[..., None])[..., 0], rhs)
    counts_a = counts.reshape(-1, 3, 3).sum(2) > 0
    counts_b = counts.reshape(-1, 3, 3).sum(1) > 0
    df_int = filled.sum(1) - (counts_a.sum(1) + counts_b.sum(1) - 1)
    df_resid = residual_df_base - filled.sum(1) + 1
    residual_ss = np.maximum(total_ss - cell_ss, 1e-300)
    interaction_ss = np.maximum(cell_ss - main_ss, 0.0)
    valid = (df_int > 0) & (df_resid > 0)
    f_stat = np.where(valid, (interaction_ss / np.maximum(df_int, 1)) / (residual_ss / np.maximum(df_resid, 1)), np.nan)
    pvalues = np.where(valid, stats.f.sf(f_stat, np.maximum(df_int, 1), np.maximum(df_resid, 1)), np.nan)
    return f_stat, np.where(valid, df_int, np.nan), pvalues
