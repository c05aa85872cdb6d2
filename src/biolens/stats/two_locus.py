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

from itertools import pairwise

import numpy as np
from scipy import stats

from biolens.hardware import one_blas_thread
from biolens.stats.regression import (
    genotype_classes,
    last_from_cross_products,
    pair_cell_tables,
    product_grams,
    product_untestable,
)

# cell (a, b) of the 3 x 3 table -> design row of the main-effects model: intercept, a==1, a==2, b==1, b==2
MAIN_DESIGN = np.asarray([[1, a == 1, a == 2, b == 1, b == 2] for a in range(3) for b in range(3)], dtype=np.float64)
_PAIRS_PER_BLOCK = 50_000


def residualise(y: np.ndarray, covariates: np.ndarray) -> np.ndarray:
    """y (a vector, or a matrix column by column) minus its least-squares fit on an intercept and the covariates."""
    base = np.hstack([np.ones((len(y), 1)), covariates])
    coefficients, *_ = np.linalg.lstsq(base, y, rcond=None)
    return y - base @ coefficients


def saturated_pair_tests(dosage: np.ndarray, y: np.ndarray, covariates: np.ndarray,
                         pairs: np.ndarray, absorbed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """F statistic, its interaction df and the p-value of the full 3 x 3 model against main effects, per pair.

    dosage: individuals x sites; y: the trait (any coding), or several traits as columns (then F and p are traits x
    pairs; the genotype tables and the main-effects solve are shared, which is what makes a null of many simulated
    traits cheap); pairs: K x 2 site indices. NaN where the table leaves no interaction df (a site with one genotype
    class among the individuals, or pairs in complete LD). absorbed: covariates the caller has already regressed out
    of y (`residualise`, each trait on its own), counted in the residual df as `covariates` are: traits whose
    covariates differ (the permuted copies of the network's screen) are then tested in one scan.
    """
    n = dosage.shape[0]
    y = np.asarray(y, dtype=np.float64)
    resid = residualise(y if y.ndim == 2 else y[:, None], covariates)  # n x traits
    total_ss = (resid ** 2).sum(0)
    residual_df_base = n - covariates.shape[1] - absorbed - 1
    f_stat, pvalues = np.full((resid.shape[1], len(pairs)), np.nan), np.full((resid.shape[1], len(pairs)), np.nan)
    df_int = np.full(len(pairs), np.nan)
    for chosen, counts, sums in pair_cell_tables(dosage, pairs, resid):  # sums: K x 9 x traits
        f_stat[:, chosen], df_int[chosen], pvalues[:, chosen] = _f_tests(counts, sums, total_ss, residual_df_base)
    return (f_stat, df_int, pvalues) if y.ndim == 2 else (f_stat[0], df_int, pvalues[0])


def table_fits(counts: np.ndarray, sums: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sums of squares the full 3 x 3 model and the main-effects model explain (K x traits each), and the
    main-effects design's Gram matrix in the metric of the cell counts (K x 5 x 5).

    counts: K x 9 cells (a-major); sums: K x 9 x traits, the centred trait summed per cell."""
    filled = counts > 0
    safe = np.where(filled, counts, 1)[..., None]
    cell_ss = np.where(filled[..., None], sums ** 2 / safe, 0.0).sum(1)
    gram = np.einsum("kc,ci,cj->kij", counts, MAIN_DESIGN, MAIN_DESIGN)
    gram += 1e-9 * max(counts.sum(1).max(), 1) * np.eye(5)  # empty genotype classes: their column fits nothing
    rhs = np.einsum("kct,ci->kit", sums, MAIN_DESIGN)  # K x 5 x traits
    main_ss = np.einsum("kit,kit->kt", np.linalg.solve(gram, rhs), rhs)
    return cell_ss, main_ss, gram


def _f_tests(counts: np.ndarray, sums: np.ndarray, total_ss: np.ndarray, residual_df_base: int):
    """counts: K x 9; sums: K x 9 x traits; total_ss: per trait. Returns F (traits x K), df (K), p (traits x K)."""
    filled = counts > 0
    cell_ss, main_ss, _ = table_fits(counts, sums)
    counts_a = counts.reshape(-1, 3, 3).sum(2) > 0
    counts_b = counts.reshape(-1, 3, 3).sum(1) > 0
    df_int = filled.sum(1) - (counts_a.sum(1) + counts_b.sum(1) - 1)
    df_resid = residual_df_base - filled.sum(1) + 1
    residual_ss = np.maximum(total_ss[None, :] - cell_ss, 1e-300)
    interaction_ss = np.maximum(cell_ss - main_ss, 0.0)
    valid = ((df_int > 0) & (df_resid > 0))[:, None]
    df1, df2 = np.maximum(df_int, 1)[:, None], np.maximum(df_resid, 1)[:, None]
    f_stat = np.where(valid, (interaction_ss / df1) / (residual_ss / df2), np.nan)
    pvalues = np.where(valid, stats.f.sf(f_stat, df1, df2), np.nan)
    return f_stat.T, np.where(valid[:, 0], df_int, np.nan), pvalues.T


NULL_SCAN_SCORES = 10_000_000  # null traits x pairs scanned at most (80 MB of p-values); past it, a sample of pairs


def product_pair_tests(dosage: np.ndarray, y: np.ndarray, covariates: np.ndarray, pairs: np.ndarray) -> np.ndarray:
    """p-value of the dosage-product term in trait ~ a + b + a*b, per pair (PLINK --epistasis's model, linear, on
    the trait with the covariates regressed out; a binary trait in its linear-probability form, as the saturated
    test). y: a trait or several as columns (then p is traits x pairs: each pair's design is solved once for all).

    The least squares are `regression.linear_last`'s, from each pair's cross-products (`regression.product_grams`:
    8.6 s for 21 traits x 80,601 pairs when each pair's n x 4 design was built, 1.6 s now). NaN where the product is
    a linear function of the two sites (`regression.product_untestable`).
    """
    y = np.asarray(y, dtype=np.float64)
    resid = residualise(y if y.ndim == 2 else y[:, None], covariates)  # n x traits
    n, traits = resid.shape
    dof = max(n - 4 - covariates.shape[1], 1)
    pvalues = np.full((traits, len(pairs)), np.nan)
    for start in range(0, len(pairs), _PAIRS_PER_BLOCK):
        chosen = slice(start, start + _PAIRS_PER_BLOCK)
        grams, cross = product_grams(dosage, pairs[chosen], resid)  # K x 4 x 4, K x 4 x traits
        beta, se = last_from_cross_products(grams, cross, (resid ** 2).sum(0), dof)
        with np.errstate(divide="ignore", invalid="ignore"):
            block = 2 * stats.t.sf(np.abs(beta / se), dof)
        block[product_untestable(grams)] = np.nan
        pvalues[:, chosen] = block.T
    return pvalues if y.ndim == 2 else pvalues[0]


def distinct_pairs(dosage: np.ndarray, pairs: np.ndarray,
                   untested: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The pairs that genotypes can tell apart: (index in `pairs` of one pair per distinct pair, which distinct pair
    each pair is; -1 where both sites carry the same genotypes, and where `untested` (a mask over `pairs`: two alleles
    of one locus, `associate._one_locus`) says the pair is no pair of loci).

    In one region without recombination dozens of sites can carry the same genotypes (or their mirror image, 2 - x),
    and every pair test then gives their pairs one value: on a null cohort a site paired with a block of 80 identical
    sites was one chance extreme, and BH, counting each copy as a discovery, made it 82 claims (docs/association.md).
    """
    oriented = np.where(dosage.mean(0) <= 1, dosage, 2 - dosage)
    _, group = np.unique(oriented.T, axis=0, return_inverse=True)
    group = np.ravel(group)
    a, b = group[pairs[:, 0]], group[pairs[:, 1]]
    key = np.minimum(a, b).astype(np.int64) * (int(group.max()) + 1) + np.maximum(a, b)
    apart = np.flatnonzero((a != b) if untested is None else (a != b) & ~untested)
    _, first, inverse = np.unique(key[apart], return_index=True, return_inverse=True)
    which = np.full(len(pairs), -1, dtype=np.int64)
    which[apart] = np.ravel(inverse)
    return apart[first], which


# Classes of r^2 between a pair's own two sites. Each pair is read against the null pairs of its class: two sites in
# LD with each other can together describe a third, causal site better than their own main effects do, so under the
# main-effects null such pairs reach large scores; two unlinked sites cannot, and pooled with them an unlinked
# interaction was read against a tail it cannot belong to (docs/association.md, "Pairs read within their LD class").
PAIR_LD_CLASSES = (0.05, 0.2, 0.5, 0.8)
MIN_CLASS_PAIRS = 100  # a class with fewer distinct pairs joins the next higher one (the highest, the next lower)


def ld_classes(dosage: np.ndarray, pairs: np.ndarray) -> np.ndarray:
    """The LD class of each pair (0 = its sites nearly unlinked ... 4 = r^2 >= 0.8), small classes merged upwards.

    Upwards, because a pair read against a heavier null than its own only loses power, while linked pairs pooled
    with unlinked ones would be read against a tail lighter than theirs and claimed by their LD alone.
    """
    from biolens.stats.linkage import pair_r_squared

    classes = np.digitize(pair_r_squared(dosage, pairs), PAIR_LD_CLASSES)
    for c in sorted(np.unique(classes))[:-1]:
        if (classes == c).sum() < MIN_CLASS_PAIRS:
            classes[classes == c] = min(k for k in np.unique(classes) if k > c)
    present = sorted(np.unique(classes))
    if len(present) > 1 and (classes == present[-1]).sum() < MIN_CLASS_PAIRS:
        classes[classes == present[-1]] = present[-2]
    return classes


def within_ld_classes(observed: np.ndarray, classes: np.ndarray, tail_of) -> tuple[np.ndarray, dict]:
    """Permutation p of each observed pair score against the null scores of the pairs in its LD class (`ld_classes`),
    the tail extended in each class (`tail_of(c)`: that class's `significance.NullTail`); and how each class was
    read. Scores must be on one scale within a class."""
    p = np.ones(len(observed))
    bounds = [0.0, *PAIR_LD_CLASSES, 1.0]
    present = [int(c) for c in np.unique(classes)]
    tails = []
    for c, above in zip(present, [*present[1:], len(PAIR_LD_CLASSES) + 1]):
        members = classes == c
        p[members], info = tail_of(c).read(observed[members])
        tails.append({"pair_r2": [bounds[c], bounds[above]], "pairs": int(members.sum()), **info})
    method = ("empirical" if all(t["method"] == "empirical" for t in tails)
              else "generalised Pareto tail, per LD class")
    return p, {"method": method, "resolution": min(t["resolution"] for t in tails), "ld_classes": tails}


def _reference(null_classes: np.ndarray, c: int) -> np.ndarray:
    """The null pairs a pair of LD class `c` is read against: its own class. Past NULL_SCAN_SCORES the null is a
    sample of pairs, which may miss a small class: then the classes above it stand in (a heavier null only costs
    power)."""
    return next(chosen for chosen in (null_classes == c, null_classes >= c, null_classes >= 0) if chosen.any())


class MainEffectsNull:
    """A pair test scanned over traits simulated under the main-effects model of every site, ready to read any
    observed p-values of the same pairs against it.

    In one region without recombination a pair test's own p-value is not a test of epistasis: the 3 x 3 table (or
    the product) of two sites that both tag a third, causal one describes that site better than their two main
    effects do, so on purely additive cohorts hundreds of pairs reach q < 0.05 (and, with structure, on null ones).
    `null_traits` (n x B) keep every site's additive and dominance effects and nothing else (the deep pair test's
    null, Buzkova et al. 2011): pairs that only tag main effects score as high there as in the data. Each null trait
    is scanned over the same pairs as the data (a uniform sample of them when B x pairs passes NULL_SCAN_SCORES),
    so the null holds every pair in its share: the few pairs that tag a causal site best have the heaviest null, and
    a null that missed them (all pairs of 150 random sites did, in 3 of 20 additive cohorts) claims them. The
    observed -log10 p of every pair is compared with the null scores of the pairs in its LD class (`ld_classes`:
    how strongly its own two sites are linked), with the tail extended (`significance.permutation_test`), and BH
    runs over all pairs. Pairs of sites with the same genotypes are one test (`distinct_pairs`): they are scanned,
    pooled and counted by BH once, and every copy gets that test's p and q (NaN: no test). The null can only add to
    the test's own p: a tail fitted to 20 null traits can come out lighter than the test's own distribution, and a
    p below the pair's own is that fit's noise (18 pairs at own p 4e-5 were claimed that way on one additive cohort).
    `scan(test, dosage, traits, covariates, pairs)` runs the null scan elsewhere (`dask_scans.scan_blocks` on a
    cluster); by default it runs here. `untested`: pairs that are no pair of loci (`distinct_pairs`), left out of the
    null and read NaN.
    """

    def __init__(self, test, dosage: np.ndarray, pairs: np.ndarray, null_traits: np.ndarray, covariates: np.ndarray,
                 rng: np.random.Generator, scan=None, untested: np.ndarray | None = None):
        self.chosen, self.which = distinct_pairs(dosage, pairs, untested)
        scanned = np.arange(len(self.chosen))
        most = max(1, NULL_SCAN_SCORES // max(null_traits.shape[1], 1))
        if len(scanned) > most:
            scanned = np.sort(rng.choice(len(self.chosen), most, replace=False))
        p_null = (scan(test, dosage, null_traits, covariates, pairs[self.chosen][scanned]) if scan
                  else test(dosage, null_traits, covariates, pairs[self.chosen][scanned]))
        self.classes = ld_classes(dosage, pairs[self.chosen])
        self.null_evidence, self.null_classes = _evidence(p_null), self.classes[scanned]
        self._tails: dict = {}

    def _tail(self, c: int):
        """The null scores of LD class `c` and their fitted tail, fitted once for `read` and every screened copy."""
        from biolens.stats.significance import NullTail

        if c not in self._tails:
            self._tails[c] = NullTail.of(self.null_evidence[:, _reference(self.null_classes, c)])
        return self._tails[c]

    def read(self, p_observed: np.ndarray) -> tuple[np.ndarray, np.ndarray, dict]:
        """p and BH q of every pair (NaN: no test) and how the tails were read, for the test's own p of every pair."""
        from biolens.stats.significance import bh_qvalues

        p_distinct, tail = within_ld_classes(_evidence(p_observed[self.chosen]), self.classes, self._tail)
        p_distinct = np.maximum(p_distinct, np.nan_to_num(p_observed[self.chosen], nan=1.0))  # never below its own
        tail["distinct_pairs"] = len(self.chosen)
        apart = self.which >= 0
        p, q = np.full(len(self.which), np.nan), np.full(len(self.which), np.nan)
        p[apart], q[apart] = p_distinct[self.which[apart]], bh_qvalues(p_distinct)[self.which[apart]]
        return p, q, tail

    def screening_evidence(self, p_observed: np.ndarray) -> np.ndarray:
        """-log10 of each pair's p as `read` gives it (read within its LD class against the main-effects null, with
        that class's fitted tail, never below the pair's own p), for every copy the network screens
        (`PairCodes.screen`); -1: no test. Only the BH step is left out.

        By its own F test, a pair of linked sites that together describe a third site's effect outranks a real
        interaction: on recessive cohorts such pairs filled the network's 32 candidates in the real fit and its
        null copies, and the planted pair the reading against main effects ranks first was left out. The tail is the
        one `read` fits: an exponential tail past the 50 largest null scores (the cheaper reading this used before)
        is lighter than the Pareto fit in some classes, and on a one-carrier grid cohort (seed 1020, 20% effect) it
        put a partial tag of the planted pair (p 4e-8 against 2e-6 read) ahead of the planted pair itself (2e-7), so
        the pair clumping left the planted pair out of the network's candidates.
        """
        own = _evidence(p_observed)
        strength = np.full(len(own), -1.0)
        pair_class = np.where(self.which >= 0, self.classes[np.maximum(self.which, 0)], -1)
        for c in np.unique(self.classes):
            members = np.flatnonzero(pair_class == c)
            p, _ = self._tail(int(c)).read(own[members])
            strength[members] = np.minimum(-np.log10(np.maximum(p, 1e-300)), own[members])
        return np.where(np.isfinite(p_observed), strength, -1.0)


MAX_PAIR_SIGNALS = 10  # interacting pairs the stepwise scan conditions on at most
LEAD_CONTENDERS = 10  # distinct pairs by read p, and as many by own p, that contend to lead a signal
EXPLAINED_P = 0.05  # a pair with nothing left at this level given another's table, which has, is explained by it


def first_unexplained(test, dosage: np.ndarray, y: np.ndarray, covariates: np.ndarray, pairs: np.ndarray,
                      contenders: np.ndarray | None = None, mutual_by_fit: bool = False) -> int:
    """Of `contenders` (indices into `pairs`, in order of preference; all of `pairs` when not given), the first that
    no other contender explains: each is tested given each other's whole 3 x 3 table, and pair j explains pair i when
    i has nothing left given j (p(i | j) >= EXPLAINED_P) while j has something left given i (p(j | i) <
    EXPLAINED_P). Pairs that explain each other, or neither the other, leave the order as it is; where every
    contender is explained by another, the first.

    Why: the pairs that partly tag one interaction all reach q < 0.05, and which of them reads smallest was decided by
    the tails fitted to their LD classes' nulls, not by the data. On a product grid cohort (seed 1016) a partial tag
    (own F-test p 4e-15, read 4e-15) led the signal over the planted pair (own p 2e-22, read 2e-9 against its class's
    heavier fitted tail), and given the lead's table the planted pair had nothing left. The planted pair explains
    its partial tags; they do not explain it. The order is overridden only on that evidence: counting wins instead
    (any smaller conditional p, or the most pairs explained) let a partial tag that explains a second cluster of
    contenders lead over the planted pair it is equal to, and lost planted pairs that the reading had found
    (docs/association.md, "A signal's pair"). Only the contenders' sites are scanned: a few small tests.
    mutual_by_fit: of two contenders that explain each other, the one whose own test (given `covariates`) has the
    smaller p is preferred, as the better fit of two tables the conditional tests cannot tell apart. The network's
    screen uses it (`PairCodes._clumped`), whose contenders are one pair and its tags of better own p
    (docs/association.md, "In the network's screen").
    """
    contenders = np.arange(len(pairs)) if contenders is None else np.asarray(contenders, dtype=np.int64)
    if len(contenders) == 1:
        return int(contenders[0])
    given, own = _given_each_other(test, dosage, y, covariates, pairs[contenders], own=mutual_by_fit)
    explained = (given >= EXPLAINED_P) & (given.T < EXPLAINED_P)  # [i, j]: j explains i
    if mutual_by_fit:
        explained |= (given >= EXPLAINED_P) & (given.T >= EXPLAINED_P) & (own[None, :] < own[:, None])
    np.fill_diagonal(explained, False)
    free = np.flatnonzero(~explained.any(1))
    return int(contenders[free[0]] if len(free) else contenders[0])


def _given_each_other(test, dosage: np.ndarray, y: np.ndarray, covariates: np.ndarray, pairs: np.ndarray,
                      own: bool = False) -> tuple[np.ndarray, np.ndarray | None]:
    """given[i, j]: the p of pair i's test with pair j's whole 3 x 3 table among the covariates (1 on the diagonal
    and where there is no test); with `own`, also each pair's p given the covariates alone. Only the pairs' sites
    are scanned: a few small tests."""
    sites, local = np.unique(pairs, return_inverse=True)
    local = local.reshape(-1, 2)
    classes = genotype_classes(dosage[:, sites])
    y = np.asarray(y, dtype=np.float64)
    given = np.ones((len(pairs), len(pairs)))
    for j in range(len(pairs)):
        table = _cell_indicators(classes[:, local[j, 0]], classes[:, local[j, 1]])
        given[:, j] = np.nan_to_num(test(dosage[:, sites], y[:, None], np.hstack([covariates, table]), local)[0],
                                    nan=1.0)
    np.fill_diagonal(given, 1.0)
    alone = np.nan_to_num(test(dosage[:, sites], y[:, None], covariates, local)[0], nan=1.0) if own else None
    return given, alone


MAX_CLAIMS_COMPARED = 50  # distinct claims of one test asked whether they tag each other's signal; the rest lead


def claims_as_signals(test, dosage: np.ndarray, y: np.ndarray, covariates: np.ndarray, pairs: np.ndarray,
                      claims: list[int], null: MainEffectsNull | None = None, q_marginal: np.ndarray | None = None,
                      scan=None) -> tuple[list[int], dict[int, int]]:
    """A test's claims (indices into `pairs`, strongest first, one per distinct pair) counted as signals: the leads,
    and for every other claim the position in the leads of the signal it tags. A claim tags a signal when

    - it, or the signal's claim, has evidence of its own in `test` (p < EXPLAINED_P given the covariates) and none
      left given the other's whole 3 x 3 table (each signal then led by its first claim that no other of its claims
      explains, as `first_unexplained` chooses); or
    - `test`'s reading (`null`, `q_marginal`) claims its signal's lead on its own (q < 0.05) but not given the whole
      tables of the other signals' leads, as the stepwise reading asks of its own claims (`stepwise_signals`); asked
      backward, from the weakest claim, its signal then joins the one whose lead's table alone leaves it least.

    Why: the deep test claims each pair whose learned interaction outscores the null copies', and partial tags of
    an interacting pair (sites at r^2 0.1-0.8 with the pair's) are learned beside it and claimed too. On foreign
    cohorts with additive sites and a pair (benchmarks/association_foreign.py --kinds mixed) the deep test claimed
    the planted pair and, as separate signals, pairs of partial tags: one with nothing left given the planted pair's
    table (seed 5402, p 0.96), and two that the saturated reading claimed on their own (q 0.003, 0.017) but not given
    the planted pair's table (q 0.87, 0.50; seeds 5408, 5404). A claim that `test` does not see on its own is never
    made a tag: that the network sees what the table test does not is the point of the network.
    """
    compared = list(claims[:MAX_CLAIMS_COMPARED])
    if len(compared) < 2:
        return list(claims), {}
    given, own = _given_each_other(test, dosage, y, covariates, pairs[compared], own=True)
    one = ((own[:, None] < EXPLAINED_P) & (given >= EXPLAINED_P))
    one |= one.T
    groups: list[list[int]] = []  # positions in `compared`
    for i in range(len(compared)):
        home = next((g for g in groups if one[i, g].any()), None)
        if home is None:
            groups.append([i])
        else:
            home.append(i)
    explained = (given >= EXPLAINED_P) & (given.T < EXPLAINED_P)  # [i, j]: j explains i
    leads = []  # one per group, positions in `compared`
    for members in groups:
        inside = explained[np.ix_(members, members)]
        free = [m for m, row in zip(members, inside) if not row.any()]
        leads.append(free[0] if free else members[0])
    if null is not None:  # backward, weakest claim first: a lead the reading explains by the others' tables joins one
        classes = genotype_classes(dosage)
        for g in reversed(range(len(groups))):
            others = [h for h in range(len(groups)) if h != g and groups[h]]
            lead = compared[leads[g]]
            if not others or not q_marginal[lead] < 0.05:
                continue
            sites = pairs[[compared[leads[h]] for h in others]]
            tables = [_cell_indicators(classes[:, i], classes[:, j]) for i, j in sites]
            conditioned = np.hstack([covariates, *tables])
            p_given = (scan(test, dosage, y[:, None], conditioned, pairs) if scan
                       else test(dosage, y[:, None], conditioned, pairs))[0]
            q_given = null.read(p_given)[1][lead]
            if np.isfinite(q_given) and q_given >= 0.05:
                home = others[int(np.argmax(given[leads[g], [leads[h] for h in others]]))]
                groups[home] += groups[g]
                groups[g] = []
    kept = [g for g in range(len(groups)) if groups[g]]
    tag_of = {compared[m]: position for position, g in enumerate(kept) for m in groups[g] if m != leads[g]}
    return [compared[leads[g]] for g in kept] + list(claims[MAX_CLAIMS_COMPARED:]), tag_of


def _contenders(open_: np.ndarray, p_read: np.ndarray, p_own: np.ndarray, which: np.ndarray) -> np.ndarray:
    """The LEAD_CONTENDERS open pairs of smallest read p, then as many of smallest own p, one per distinct pair."""
    open_pairs = np.flatnonzero(open_)
    chosen: list[int] = []
    for ranking in (p_read, np.nan_to_num(p_own, nan=1.0)):
        order = open_pairs[np.argsort(ranking[open_pairs], kind="stable")]
        chosen += one_per_distinct(order, which, LEAD_CONTENDERS, taken=chosen)
    return np.asarray(chosen, dtype=np.int64)


def one_per_distinct(order, which: np.ndarray, limit: int | None = None, taken=()) -> list[int]:
    """The first pair of `order` from each distinct pair (`which`, as `MainEffectsNull.which`: exact copies share a
    test; a pair without one is its own), skipping those `taken` already stands for, `limit` at most."""
    seen = {int(which[k]) if which[k] >= 0 else -1 - int(k) for k in taken}
    chosen: list[int] = []
    for k in order:
        key = int(which[k]) if which[k] >= 0 else -1 - int(k)
        if key in seen:
            continue
        seen.add(key)
        chosen.append(int(k))
        if len(chosen) == limit:
            break
    return chosen


def stepwise_signals(test, null: MainEffectsNull, dosage: np.ndarray, y: np.ndarray, covariates: np.ndarray,
                     pairs: np.ndarray, marginal: tuple[np.ndarray, np.ndarray], level: float = 0.05, scan=None,
                     own: np.ndarray | None = None):
    """Claims counted as signals: a pair at q < `level` leads a signal, every pair is tested again with the leads'
    whole 3 x 3 tables as covariates, and so on until no pair is left at q < `level`.

    Why: an interaction of two sites is also seen, weaker, through every pair whose sites partly tag them (r^2 0.2-0.8
    in a region with little recombination), and each of those reaches q < 0.05 on its own: on simulated cohorts with
    one interacting pair, the saturated test claimed 260-1,948 pairs. Given the lead's table they have nothing left to
    add, while a second interaction elsewhere keeps its own evidence (GCTA-COJO's stepwise conditional selection,
    for pairs). The conditional p-values are read against the same main-effects null as the marginal ones. The lead
    is the first contender in the reading's order that no other contender explains (`first_unexplained`), not simply
    the smallest p: which partial tag reads smallest depends on the fitted tails of the LD classes. `own`: the test's
    own p of every pair (scanned here when not given). Returns p, q (a lead keeps the values it was chosen with; every
    other pair, those given all leads) and the leads (indices into `pairs`, in the order chosen). `scan` as for
    `MainEffectsNull`.
    """
    p, q = (np.asarray(v, dtype=np.float64).copy() for v in marginal)
    leads: list[int] = []
    chosen_at: dict[int, tuple[float, float]] = {}
    classes = genotype_classes(dosage)
    given = covariates
    p_own = own if own is not None else (scan(test, dosage, y[:, None], given, pairs) if scan
                                         else test(dosage, y[:, None], given, pairs))[0]
    while len(leads) < MAX_PAIR_SIGNALS:
        open_ = np.isfinite(q) & (q < level)
        open_[leads] = False
        if not open_.any():
            break
        lead = first_unexplained(test, dosage, y, given, pairs, _contenders(open_, p, p_own, null.which))
        leads.append(lead)
        chosen_at[lead] = (p[lead], q[lead])
        tables = [_cell_indicators(classes[:, pairs[k, 0]], classes[:, pairs[k, 1]]) for k in leads]
        given = np.hstack([covariates, *tables])
        p_own = (scan(test, dosage, y[:, None], given, pairs) if scan else test(dosage, y[:, None], given, pairs))[0]
        p, q, _ = null.read(p_own)
    for lead, (p_lead, q_lead) in chosen_at.items():
        same = copies_of(null.which, lead)
        p[same], q[same] = p_lead, q_lead
    return p, q, leads


STAND_IN_CANDIDATES = 200  # pairs claimed on their own, strongest own p first, asked whether they stand in for a lead
STAND_IN_LEVEL = 0.05  # a pair stays a possible carrier of a signal unless its lead adds to its table at this level


def stand_ins(dosage: np.ndarray, y: np.ndarray, covariates: np.ndarray, pairs: np.ndarray, leads: list[int],
              q_marginal: np.ndarray, own: np.ndarray, which: np.ndarray, level: float = 0.05) -> np.ndarray:
    """For each pair, the position in `leads` of the signal it stands in for, or -1. A pair stands in for a lead when
    it reaches q < `level` on its own reading (`q_marginal`) and the lead's whole 3 x 3 table adds nothing to the
    pair's at STAND_IN_LEVEL: the partial F test of the lead's table in the model that already holds this pair's
    table, the other leads' tables and the covariates. Only the STAND_IN_CANDIDATES pairs of smallest own p (`own`)
    are asked, one per distinct pair (`which`, as `MainEffectsNull.which`; a lead's exact copies already share its
    claim), and a stand-in's exact copies join it.

    Why: an interaction that lives in one cell of the table (both sites homozygous for the minor allele) rests on
    10-25 individuals, and any pair whose table singles out the same individuals fits it as well; the stepwise
    reading claims one of them and explains the others away, and which one leads is close to a coin toss (on
    both-recessive grid cohort 1026 the planted pair, own p 7e-21 against the lead's 1e-22, sat at row 31). The test
    is inverted as a confidence set is: where the causal pair's table holds the signal, the lead's table adds to it at
    STAND_IN_LEVEL by chance only, so the lead and its stand-ins hold the causal pair 95% of the time (when it is among
    the pairs asked), as a credible set holds a causal site. Two weaker checks were run first and dropped
    (docs/association.md): the stepwise reading's own (the lead's test on the trait with the pair's table regressed
    out) is conservative and let pairs of own p 1e-5 "explain" a lead of 1e-15; the lead's interaction alone given
    the pair's table and the lead's sites' main effects let partial tags of a one-carrier pair stand in whose tables
    fit 20 nats worse, their interaction emulating the lead's only beside the lead's own main effects."""
    signal = np.full(len(pairs), -1)
    if not leads:
        return signal
    lead_groups = {int(which[k]) for k in leads if which[k] >= 0}
    asked = np.flatnonzero(np.isfinite(q_marginal) & (q_marginal < level))
    asked = asked[[k not in leads and int(which[k]) not in lead_groups for k in asked]]
    asked = asked[np.argsort(np.nan_to_num(own[asked], nan=1.0), kind="stable")]
    first_of = {}
    for k in asked:  # one per distinct pair, at most STAND_IN_CANDIDATES
        first_of.setdefault(int(which[k]) if which[k] >= 0 else -1 - int(k), int(k))
        if len(first_of) == STAND_IN_CANDIDATES:
            break
    classes = genotype_classes(dosage)
    y = np.asarray(y, dtype=np.float64)
    intercept = np.ones((len(y), 1))

    def table(k: int) -> np.ndarray:
        return _cell_indicators(classes[:, pairs[k, 0]], classes[:, pairs[k, 1]])

    lead_tables = [table(k) for k in leads]
    shared = np.hstack([intercept, covariates, *lead_tables])
    ends = np.cumsum([1 + covariates.shape[1]] + [t.shape[1] for t in lead_tables])
    lead_columns = [np.arange(start, end) for start, end in pairwise(ends)]
    products = _CrossProducts.of(shared, y)
    with one_blas_thread():  # small products: 3.5 times faster with the cores shared (docs/performance.md, session 51)
        for k in first_of.values():
            with_mine = products.beside(table(k))
            mine = np.arange(shared.shape[1], with_mine.columns)
            left = [with_mine.added_p(np.concatenate([np.arange(ends[0]), *lead_columns[:s], *lead_columns[s + 1:],
                                                      mine]), lead_columns[s]) for s in range(len(leads))]
            if max(left) >= STAND_IN_LEVEL:
                signal[k] = int(np.argmax(left))
    for k in np.flatnonzero(signal >= 0):  # exact copies of a stand-in stand in with it
        signal[copies_of(which, k) & (signal < 0) & np.isfinite(q_marginal) & (q_marginal < level)] = signal[k]
    return signal


def copies_of(which: np.ndarray, k: int) -> np.ndarray:
    """Pairs that are one test with pair `k` (`which` as `MainEffectsNull.which`: the distinct pair each is a copy
    of, -1 for a pair without a test, which is only itself)."""
    return (which == which[k]) if which[k] >= 0 else (np.arange(len(which)) == k)


class _CrossProducts:
    """Partial F tests of column groups of one design, from its cross-products: the stand-in check asks up to 200
    pairs x leads models that share the intercept, the covariates and the leads' tables. Fitted each by least squares
    on the individuals, three leads took 0.7 s alone on 2 cores but 48-90 s with the cores shared (LAPACK's threads
    contending); from the cross-products 0.26 s (docs/performance.md, session 51). Columns are scaled to unit length
    before the Gram matrix is taken, so covariates on any scale keep their rank."""

    RANK_TOLERANCE = 1e-10  # eigenvalues of the unit-column Gram matrix below this times the largest: no direction

    def __init__(self, unit: np.ndarray, y: np.ndarray, gram: np.ndarray, cross: np.ndarray):
        self.unit, self.y, self.gram, self.cross = unit, y, gram, cross  # y centred; unit: the unit-length columns

    @classmethod
    def of(cls, design: np.ndarray, y: np.ndarray) -> _CrossProducts:
        unit, centred = _unit_columns(design), y - y.mean()
        return cls(unit, centred, unit.T @ unit, unit.T @ centred)

    @property
    def columns(self) -> int:
        return self.unit.shape[1]

    def beside(self, added: np.ndarray) -> _CrossProducts:
        """The cross-products of this design with `added` columns appended (only the new ones are computed)."""
        unit = _unit_columns(added)
        side = self.unit.T @ unit
        return _CrossProducts(np.hstack([self.unit, unit]), self.y, np.block([[self.gram, side], [side.T, unit.T @ unit]]),
                              np.concatenate([self.cross, unit.T @ self.y]))

    def _fit(self, columns: np.ndarray) -> tuple[float, int]:
        values, vectors = np.linalg.eigh(self.gram[np.ix_(columns, columns)])
        kept = values > self.RANK_TOLERANCE * max(values.max(), 1e-300)
        explained = (vectors[:, kept].T @ self.cross[columns]) ** 2 / values[kept]
        return float(self.y @ self.y - explained.sum()), int(kept.sum())

    def added_p(self, base: np.ndarray, added: np.ndarray) -> float:
        """p of the partial F test of the columns `added` beside the columns `base` (the intercept among them); 1 where
        they add no direction (the base spans them)."""
        (rss_full, rank_full), (rss_base, rank_base) = self._fit(np.concatenate([base, added])), self._fit(base)
        df1, df2 = rank_full - rank_base, len(self.y) - rank_full
        if df1 <= 0 or df2 <= 0 or rss_full <= 0:
            return 1.0
        return float(stats.f.sf(max(rss_base - rss_full, 0.0) / df1 / (rss_full / df2), df1, df2))


def _unit_columns(design: np.ndarray) -> np.ndarray:
    """The design's columns scaled to unit length (a column of zeros stays zeros)."""
    norms = np.linalg.norm(design, axis=0)
    return design / np.where(norms > 0, norms, 1.0)


def _cell_indicators(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Indicators of the filled cells of two sites' 3 x 3 genotype table, one dropped (the intercept holds it)."""
    cell = 3 * a.astype(np.int64) + b
    filled = np.unique(cell)
    return (cell[:, None] == filled[None, 1:]).astype(np.float64)


def saturated_p(dosage: np.ndarray, traits: np.ndarray, covariates: np.ndarray, pairs: np.ndarray,
                absorbed: int = 0) -> np.ndarray:
    """The saturated test's p-values alone (traits x pairs), the form `MainEffectsNull` takes."""
    return saturated_pair_tests(dosage, traits, covariates, pairs, absorbed)[2]


def _evidence(pvalues: np.ndarray) -> np.ndarray:
    """-log10 p (one scale for F tests of different df); a pair without a test scores 0."""
    return -np.log10(np.clip(np.nan_to_num(pvalues, nan=1.0), 1e-300, 1.0))
