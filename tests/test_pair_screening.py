"""Which pairs the genotype network is given: their interaction terms and the screening that picks them."""
from __future__ import annotations

import numpy as np

from biolens.engine.genotype_training import PAIR_TERMS, PairCodes
from biolens.stats.two_locus import saturated_p


def _genotypes(rng, n: int, sites: int) -> np.ndarray:
    return rng.binomial(2, rng.uniform(0.3, 0.5, sites), size=(n, sites)).astype(float)


def test_pair_terms_are_an_orthonormal_basis_of_what_the_table_adds_to_main_effects():
    rng = np.random.default_rng(0)
    dosage = _genotypes(rng, 800, 12)
    dosage[:, 5] = np.where(rng.random(800) < 0.7, dosage[:, 4], dosage[:, 5])  # two sites in LD
    codes = PairCodes(dosage)
    pairs = np.array([[0, 1], [4, 5], [2, 9]])
    terms = codes.terms(pairs).reshape(800, len(pairs), PAIR_TERMS)
    for k, (i, j) in enumerate(pairs):
        basis = terms[:, k]
        np.testing.assert_allclose(basis.T @ basis / 800, np.eye(PAIR_TERMS), atol=1e-8)
        main = np.column_stack([np.ones(800), codes.a[:, i], codes.d[:, i], codes.a[:, j], codes.d[:, j]])
        np.testing.assert_allclose(main.T @ basis, 0, atol=1e-6)
        # any two-site function lies in main effects + these four directions: here, both homozygous for the ALT allele
        cell = ((dosage[:, i] == 2) & (dosage[:, j] == 2)).astype(float)
        design = np.column_stack([main, basis])
        residual = cell - design @ np.linalg.lstsq(design, cell, rcond=None)[0]
        assert np.abs(residual).max() < 1e-8


def test_a_table_with_empty_cells_gives_fewer_directions_and_zeros_for_the_rest():
    rng = np.random.default_rng(1)
    dosage = _genotypes(rng, 600, 3)
    dosage[:, 1] = np.where(dosage[:, 0] == 2, 2, np.minimum(dosage[:, 1], 1))  # (2, 0) and (2, 1) cells are empty
    codes = PairCodes(dosage)
    terms = codes.terms(np.array([[0, 1]]))
    cells = np.unique(3 * dosage[:, 0] + dosage[:, 1])
    main = np.column_stack([np.ones(600), codes.a[:, 0], codes.d[:, 0], codes.a[:, 1], codes.d[:, 1]])
    directions = len(cells) - np.linalg.matrix_rank(main)  # the interaction df of this table: 5 cells, rank 4
    variances = terms.var(0)
    assert np.isfinite(terms).all() and directions == 1
    assert np.isclose(variances, 1).sum() == directions and (variances < 1e-12).sum() == PAIR_TERMS - directions


def test_screening_puts_a_recessive_pair_first_once_and_not_the_pairs_of_a_strong_site():
    """The raw-product screen ranked planted both-recessive pairs in the thousands behind products of a strong site
    with unrelated ones; and a pair whose table isolates the same few individuals must not be a second candidate."""
    rng = np.random.default_rng(2)
    n, m = 1000, 60
    dosage = _genotypes(rng, n, m)
    # site 31 carries site 30's ALT homozygotes and is redrawn elsewhere: weakly linked to 30 (r^2 < 0.5, so the
    # tag clumping cannot merge them) yet its pair with site 10 isolates exactly the same individuals
    others = dosage[:, 30] < 2
    dosage[others, 31] = rng.binomial(1, 0.5, others.sum())
    dosage[~others, 31] = 2
    assert np.corrcoef(dosage[:, 30], dosage[:, 31])[0, 1] ** 2 < 0.5
    both = (dosage[:, 10] == 2) & (dosage[:, 30] == 2)
    trait = 1.5 * (dosage[:, 5] > 0) + 2.5 * both + rng.normal(size=n)
    codes = PairCodes(dosage)
    pairs = np.stack(np.triu_indices(m, 1), axis=1)
    allowed = codes.r2 < 0.8
    evidence = -np.log10(saturated_p(dosage, trait[:, None], np.zeros((n, 0)), pairs)[0])
    chosen = codes.screen(evidence, pairs, 8, allowed, trait, np.arange(n))
    chosen = [tuple(p) for p in chosen]
    assert chosen[0] in ((10, 30), (10, 31))
    assert not {(10, 30), (10, 31)} <= set(chosen)  # one pair per signal
    assert sum(5 in p for p in chosen) <= 1  # the strong site's own effect does not fill the list


def test_a_signal_is_stood_for_by_the_pair_its_partial_tags_do_not_explain():
    """Which partial tag of an interaction reads strongest was decided by the tails fitted to the LD classes' nulls:
    on a grid cohort a partial tag of the planted pair read 4e-15 against the planted pair's 2e-9 (own p 2e-22), led
    the signal, and the planted pair, tagged by it, was passed over by the stepwise reading and the network's screen
    alike. Given the planted pair's table the tag has nothing left; given the tag's, the planted pair still has."""
    from biolens.stats.two_locus import first_unexplained

    rng = np.random.default_rng(4)
    n, m = 1000, 40
    dosage = _genotypes(rng, n, m)
    redrawn = rng.random(n) < 0.2
    dosage[:, 21] = np.where(redrawn, rng.binomial(2, 0.4, n), dosage[:, 20])  # partial tag of site 20
    dosage[:, 22] = np.where(rng.random(n) < 0.01, rng.binomial(2, 0.4, n), dosage[:, 20])  # all but a copy of it
    r2 = np.corrcoef(dosage[:, 20], dosage[:, 21])[0, 1] ** 2
    assert 0.5 <= r2 < 0.8, r2
    one_carrier = ((dosage[:, 10] > 0).astype(int) + (dosage[:, 20] > 0) == 1).astype(float)
    trait = 0.6 * (one_carrier - one_carrier.mean()) / one_carrier.std() + rng.normal(size=n)
    pairs = np.stack(np.triu_indices(m, 1), axis=1)
    planted, tag, twin = (int(np.flatnonzero((pairs[:, 0] == 10) & (pairs[:, 1] == j))[0]) for j in (20, 21, 22))
    no_covariates = np.zeros((n, 0))
    for order in ([tag, planted], [planted, tag]):
        assert first_unexplained(saturated_p, dosage, trait, no_covariates, pairs, order) == planted
    for order in ([twin, planted], [planted, twin]):  # they explain each other: the order of preference stands
        assert first_unexplained(saturated_p, dosage, trait, no_covariates, pairs, order) == order[0]
        # ... unless asked to settle such pairs by their own fit, as the network's screen does: the planted table fits
        assert first_unexplained(saturated_p, dosage, trait, no_covariates, pairs, order, mutual_by_fit=True) == planted

    own = -np.log10(saturated_p(dosage, trait[:, None], no_covariates, pairs)[0])
    assert own[planted] == own.max()
    evidence = own.copy()
    evidence[tag] = own[planted] + 5  # as a lighter fitted tail of the tag's LD class reads it
    codes = PairCodes(dosage)
    allowed = codes.r2 < 0.8
    rows = np.arange(n)

    def contest(contenders):
        return first_unexplained(saturated_p, dosage, trait, no_covariates, contenders)

    by_reading = [tuple(p) for p in codes.screen(evidence, pairs, 4, allowed, trait, rows)]
    by_contest = [tuple(p) for p in codes.screen(evidence, pairs, 4, allowed, trait, rows, own, contest)]
    assert by_reading[0] == (10, 21) and (10, 20) not in by_reading  # what the tails alone chose
    assert by_contest[0] == (10, 20) and (10, 21) not in by_contest  # one pair per signal, the planted one

    # a near copy read strongest explains the planted pair as much as it is explained by it (grid one carrier 1023,
    # foreign xor_het 5028): the screen keeps the better fit of the two
    evidence = own.copy()
    evidence[twin] = own[planted] + 5

    def settled(contenders):
        return first_unexplained(saturated_p, dosage, trait, no_covariates, contenders, mutual_by_fit=True)

    assert tuple(codes.screen(evidence, pairs, 4, allowed, trait, rows, own, contest)[0]) == (10, 22)
    by_fit = [tuple(p) for p in codes.screen(evidence, pairs, 4, allowed, trait, rows, own, settled)]
    assert by_fit[0] == (10, 20) and (10, 22) not in by_fit


def test_a_deep_claim_that_tags_another_s_signal_is_counted_in_it_and_a_second_interaction_is_not():
    """On a foreign cohort (seed 5402) the deep test claimed the planted pair and, as a second signal, a pair of its
    partial tags with nothing left given the planted pair's table. Such a claim joins the signal it tags; a second
    interaction elsewhere, and a claim the table test sees nothing in, stay signals of their own."""
    from types import SimpleNamespace

    from biolens.stats.two_locus import claims_as_signals
    from biolens.tasks.associate import LEAD, TAG, _deep_signals

    rng = np.random.default_rng(7)
    n, m = 1500, 40
    dosage = _genotypes(rng, n, m)
    for tag, of in ((11, 10), (21, 20)):  # partial tags of both planted sites
        dosage[:, tag] = np.where(rng.random(n) < 0.25, rng.binomial(2, 0.4, n), dosage[:, of])
        assert 0.4 <= np.corrcoef(dosage[:, tag], dosage[:, of])[0, 1] ** 2 < 0.8
    one_carrier = ((dosage[:, 10] > 0).astype(int) + (dosage[:, 20] > 0) == 1).astype(float)
    product = (dosage[:, 30] - dosage[:, 30].mean()) * (dosage[:, 35] - dosage[:, 35].mean())
    trait = (0.6 * (one_carrier - one_carrier.mean()) / one_carrier.std() + 0.3 * product / product.std()
             + rng.normal(size=n))
    pairs = np.stack(np.triu_indices(m, 1), axis=1)
    index = {tuple(p): k for k, p in enumerate(pairs.tolist())}
    planted, tags, second, blank = index[(10, 20)], index[(11, 21)], index[(30, 35)], index[(5, 6)]
    none = np.zeros((n, 0))
    own = saturated_p(dosage, trait[:, None], none, pairs)[0]
    assert own[tags] < 1e-3 and own[second] < 1e-3 and own[blank] > 0.05
    null = _main_effects_null(dosage, trait, pairs, rng)
    q_marginal = null.read(own)[1]
    for claims in ([tags, planted, second, blank], [planted, blank, tags, second]):
        for reading in ({}, {"null": null, "q_marginal": q_marginal}):
            leads, tag_of = claims_as_signals(saturated_p, dosage, trait, none, pairs, claims, **reading)
            assert leads == [k for k in claims if k != tags], claims  # the planted pair leads whichever read stronger
            assert tag_of == {tags: leads.index(planted)}

    # in the run's reading: the tag keeps its claim, joins the planted pair's signal, and the signal reads the
    # strongest claim's p
    p_pair, q_pair = np.ones(len(pairs)), np.ones(len(pairs))
    p_pair[[tags, planted, second]], q_pair[[tags, planted, second]] = [1e-9, 1e-7, 1e-6], [1e-5, 1e-4, 1e-3]
    data = SimpleNamespace(dosage=dosage, y_model=trait, covariates=none)
    which = np.arange(len(pairs))
    copy = index[(11, 22)]  # site 22 an exact copy of 21: one test with the tag
    dosage[:, 22] = dosage[:, 21]
    which[copy] = tags
    signal, role = _deep_signals(data, pairs, p_pair, q_pair, np.ones(len(pairs)), own, SimpleNamespace(which=which))
    assert role[planted] == LEAD and role[second] == LEAD and role[tags] == role[copy] == TAG
    assert signal[tags] == signal[copy] == signal[planted] == 1 and signal[second] == 2 and signal.max() == 2
    assert p_pair[planted] == 1e-9 and q_pair[planted] == 1e-5 and p_pair[second] == 1e-6
    assert p_pair[tags] == p_pair[copy] == 1e-9 and q_pair[copy] == 1e-5


def _main_effects_null(dosage: np.ndarray, trait: np.ndarray, pairs: np.ndarray, rng):
    """The pair tests' null for a few sites: traits with every site's additive and dominance effects, as fitted, and
    permuted residuals."""
    from biolens.stats.two_locus import MainEffectsNull, genotype_classes

    classes = genotype_classes(dosage)
    main = np.hstack([np.ones((len(trait), 1))] + [np.column_stack([classes[:, j] == 1, classes[:, j] == 2])
                                                   for j in range(dosage.shape[1])]).astype(float)
    fitted = main @ np.linalg.lstsq(main, trait, rcond=None)[0]
    residual = trait - fitted
    traits = np.stack([fitted + residual[rng.permutation(len(trait))] for _ in range(20)], axis=1)
    return MainEffectsNull(saturated_p, dosage, pairs, traits, np.zeros((len(trait), 0)), rng)


def test_a_deep_claim_the_saturated_reading_explains_by_a_stronger_claim_tags_its_signal(tmp_path):
    """With real LD (msprime) many pairs of partial tags of an interacting pair keep a little evidence given its
    table (p < 0.05) yet are claimed by the saturated reading on their own and not given the pair's table, as its
    stepwise reading asks (foreign mixed cohorts 5404, 5408: a second deep signal at q 0.014-0.025 with saturated q
    0.017 and 0.003 on its own, 0.50 and 0.87 given the planted pair's). Such a claim tags the planted pair's signal;
    so does one with nothing left given it; a claim the saturated reading does not see on its own stays a signal."""
    from biolens.config import AssociateConfig
    from biolens.simulate import simulate_cohort
    from biolens.stats.two_locus import MainEffectsNull, _cell_indicators, claims_as_signals, genotype_classes
    from biolens.tasks import associate as task

    cohort = simulate_cohort("pair", trait="binary", form="one_carrier", seed=2, n_individuals=800)
    paths = cohort.write(tmp_path)
    data = task._load(AssociateConfig(phenotypes=str(paths["phenotypes"]), trait="status",
                                      genotypes=str(paths["genotypes"])))
    m = data.dosage.shape[1]
    pairs = np.stack(np.triu_indices(m, 1), axis=1)
    rng = np.random.default_rng(0)
    null = MainEffectsNull(saturated_p, data.dosage, pairs, task.interaction_null_traits(data, 20, rng, None),
                           data.covariates, rng)
    own = saturated_p(data.dosage, data.y_model[:, None], data.covariates, pairs)[0]
    q_marginal = null.read(own)[1]
    positions = list(data.genotypes.pos)
    a, b = sorted(positions.index(site) for site in cohort.truth["pair"])
    planted = int(np.flatnonzero((pairs[:, 0] == a) & (pairs[:, 1] == b))[0])
    classes = genotype_classes(data.dosage)
    table = _cell_indicators(classes[:, a], classes[:, b])
    p_given = saturated_p(data.dosage, data.y_model[:, None], np.hstack([data.covariates, table]), pairs)[0]
    q_given = null.read(p_given)[1]
    assert q_marginal[planted] < 1e-6
    some_left = np.flatnonzero((q_marginal < 0.05) & (p_given < 0.05) & (q_given >= 0.05))
    nothing_left = np.flatnonzero((q_marginal < 0.05) & (p_given >= 0.05))
    unseen = np.flatnonzero((q_marginal > 0.5) & (own > 0.5))
    assert len(some_left) >= 10 and len(nothing_left) >= 10 and len(unseen)
    claims = [int(some_left[0]), planted, int(nothing_left[0]), int(unseen[0])]
    leads, tag_of = claims_as_signals(saturated_p, data.dosage, data.y_model, data.covariates, pairs, claims, null,
                                      q_marginal)
    assert leads == [planted, claims[3]] and tag_of == {claims[0]: 0, claims[2]: 0}
    # without the reading only the claim with nothing left given the planted pair's table is its tag
    leads, tag_of = claims_as_signals(saturated_p, data.dosage, data.y_model, data.covariates, pairs, claims)
    assert leads == [claims[0], planted, claims[3]] and tag_of == {claims[2]: 1}


def test_a_contest_winner_s_own_better_tags_contend_in_turn():
    """The screen passes over a chosen pair's tags. Where a contest picks a pair other than the strongest, the
    winner's tags are passed over with it, and a pair that tags the winner but not the strongest never contended:
    on a rare-allele product cohort (grid seed 1022) the planted pair, which explains the winner, was lost that way
    and the network learned two partial tags instead. The winner's better tags now contend in turn."""
    from biolens.stats.two_locus import first_unexplained

    rng = np.random.default_rng(7)
    n, m = 1000, 40
    dosage = _genotypes(rng, n, m)
    dosage[:, 21] = np.where(rng.random(n) < 0.22, rng.binomial(2, 0.4, n), dosage[:, 20])  # partial tag of 20
    dosage[:, 23] = np.where(rng.random(n) < 0.22, rng.binomial(2, 0.4, n), dosage[:, 21])  # partial tag of 21
    r2 = np.corrcoef(dosage[:, [20, 21, 23]].T) ** 2
    assert r2[0, 1] >= 0.5 and r2[1, 2] >= 0.5 and r2[0, 2] < 0.5, r2  # 23 tags 21, not 20
    one_carrier = ((dosage[:, 10] > 0).astype(int) + (dosage[:, 20] > 0) == 1).astype(float)
    trait = 0.6 * (one_carrier - one_carrier.mean()) / one_carrier.std() + rng.normal(size=n)
    pairs = np.stack(np.triu_indices(m, 1), axis=1)
    planted, tag, tag_of_tag = (int(np.flatnonzero((pairs[:, 0] == 10) & (pairs[:, 1] == j))[0]) for j in (20, 21, 23))
    no_covariates = np.zeros((n, 0))
    own = -np.log10(saturated_p(dosage, trait[:, None], no_covariates, pairs)[0])
    assert own[planted] > own[tag] > own[tag_of_tag]
    evidence = own.copy()
    evidence[tag_of_tag] = own[planted] + 5  # as a lighter fitted tail of its LD class reads it
    codes = PairCodes(dosage)

    def contest(contenders):
        return first_unexplained(saturated_p, dosage, trait, no_covariates, contenders, mutual_by_fit=True)

    assert contest(pairs[[tag_of_tag, tag]]) == 1 and contest(pairs[[tag, planted]]) == 1  # each explained in turn
    chosen = [tuple(p) for p in codes.screen(evidence, pairs, 4, codes.r2 < 0.8, trait, np.arange(n), own, contest)]
    assert chosen[0] == (10, 20) and (10, 21) not in chosen and (10, 23) not in chosen, chosen


def test_a_pair_that_repeats_a_chosen_fit_and_fits_it_better_stands_for_it():
    """A both-recessive interaction lives in one cell: a pair whose table isolates most of the same individuals fits
    it too, though its site is unlinked to the planted one (r^2 < 0.01, so no tag contest). Read first (its LD class's
    tail lighter), it took the signal and the planted pair, repeating its fit, was passed over (as a partial tag did
    on grid product cohort 1022). Given the contest, the planted pair, whose own fit is better and which the other does
    not explain, stands."""
    from biolens.stats.two_locus import first_unexplained

    rng = np.random.default_rng(6)
    n, m = 1000, 40
    dosage = _genotypes(rng, n, m)
    follows = (dosage[:, 10] == 2) & (rng.random(n) < 0.9)  # site 23 copies site 20 where site 10 is homozygous
    dosage[:, 23] = np.where(follows, dosage[:, 20], dosage[:, 23])
    assert np.corrcoef(dosage[:, 20], dosage[:, 23])[0, 1] ** 2 < 0.01
    recessive = ((dosage[:, 10] == 2) & (dosage[:, 20] == 2)).astype(float)
    trait = 0.5 * (recessive - recessive.mean()) / recessive.std() + rng.normal(size=n)
    pairs = np.stack(np.triu_indices(m, 1), axis=1)
    planted, other = (int(np.flatnonzero((pairs[:, 0] == 10) & (pairs[:, 1] == j))[0]) for j in (20, 23))
    no_covariates = np.zeros((n, 0))
    own = -np.log10(saturated_p(dosage, trait[:, None], no_covariates, pairs)[0])
    assert own[planted] == own.max() and own[other] > 20
    evidence = own.copy()
    evidence[other] = own[planted] + 5
    codes = PairCodes(dosage)
    allowed, rows = codes.r2 < 0.8, np.arange(n)

    def settled(contenders):
        return first_unexplained(saturated_p, dosage, trait, no_covariates, contenders, mutual_by_fit=True)

    by_reading = [tuple(p) for p in codes.screen(evidence, pairs, 4, allowed, trait, rows)]
    by_contest = [tuple(p) for p in codes.screen(evidence, pairs, 4, allowed, trait, rows, own, settled)]
    assert by_reading[0] == (10, 23) and (10, 20) not in by_reading, by_reading
    assert by_contest[0] == (10, 20) and (10, 23) not in by_contest, by_contest


def test_screening_evidence_reads_each_pair_within_its_ld_class_like_the_main_effects_reading():
    """The reading the network's screen uses is `MainEffectsNull.read`'s p without the BH step (the same fitted tail
    per LD class), never says more than the pair's own test, and gives no evidence where there is no test."""
    from biolens.stats.two_locus import MainEffectsNull

    rng = np.random.default_rng(3)
    n, m = 600, 40
    dosage = _genotypes(rng, n, m)
    dosage[:, 1] = np.where(rng.random(n) < 0.8, dosage[:, 0], dosage[:, 1])  # linked pairs: several LD classes
    dosage[:, 2] = np.where(rng.random(n) < 0.5, dosage[:, 0], dosage[:, 2])
    dosage[:, 3] = dosage[:, 4]  # identical sites: their pair has no test
    pairs = np.stack(np.triu_indices(m, 1), axis=1)
    main = 0.5 * dosage[:, 0] + 0.4 * (dosage[:, 7] == 1)
    null_traits = main[:, None] + rng.normal(size=(n, 20))
    null = MainEffectsNull(saturated_p, dosage, pairs, null_traits, np.zeros((n, 0)), np.random.default_rng(0))
    trait = main + 0.4 * ((dosage[:, 11] > 0) ^ (dosage[:, 25] > 0)) + rng.normal(size=n)
    p_own = saturated_p(dosage, trait[:, None], np.zeros((n, 0)), pairs)[0]
    evidence = null.screening_evidence(p_own)
    read, _, _ = null.read(p_own)
    tested = np.isfinite(read)
    assert (evidence[~tested] == -1).all() and not tested[(pairs[:, 0] == 3) & (pairs[:, 1] == 4)].any()
    assert (evidence[tested] <= -np.log10(p_own[tested]) + 1e-9).all()
    assert np.allclose(evidence[tested], -np.log10(read[tested]))
    planted = np.flatnonzero((pairs[:, 0] == 11) & (pairs[:, 1] == 25))[0]
    assert np.argmax(evidence) == planted


def test_the_additive_ridge_falls_back_to_the_gram_path_when_lapack_fails(monkeypatch):
    """The SVD path is fast with many individuals; where LAPACK's SVD fails (it did once, on a clonal region), the
    fit goes on by the eigendecomposition path and gives the same model."""
    import sklearn.linear_model._ridge as ridge

    from biolens.tasks.associate import _additive_model

    rng = np.random.default_rng(4)
    x = _genotypes(rng, 400, 30)
    y = x[:, :3].sum(1) + rng.normal(size=400)
    fast = _additive_model("quantitative").fit(x, y)

    def failing(self, *args):
        raise np.linalg.LinAlgError("SVD did not converge")

    monkeypatch.setattr(ridge._RidgeGCV, "_svd_decompose_design_matrix", failing)
    steady = _additive_model("quantitative").fit(x, y)
    assert steady.gcv_mode == "eigen" and fast.gcv_mode == "svd"
    assert steady.alpha_ == fast.alpha_
    np.testing.assert_allclose(steady.coef_, fast.coef_, rtol=1e-6, atol=1e-9)


def test_screening_reads_a_heavy_null_tail_as_the_reported_p_does():
    """Past the largest null scores the screen reads each LD class with the tail `read` fits, not a lighter one: with
    null scores from a heavy (Pareto) tail, a pair far past them is less extreme than an exponential tail of the 50
    largest says, and a screen reading it that way ranked a partial tag above the planted pair it tags (grid seed
    1020). The null p-values come from a stand-in test: this is about the reading of any test's null scores."""
    from scipy import stats

    from biolens.stats.two_locus import MainEffectsNull

    rng = np.random.default_rng(5)
    n, m = 300, 30
    dosage = _genotypes(rng, n, m)
    pairs = np.stack(np.triu_indices(m, 1), axis=1)
    heavy = stats.genpareto(0.3, 0, 1.0)

    def null_test(dosage, traits, covariates, pairs):
        return 10 ** -heavy.rvs(size=(traits.shape[1], len(pairs)), random_state=rng)

    null = MainEffectsNull(null_test, dosage, pairs, np.zeros((n, 20)), np.zeros((n, 0)), np.random.default_rng(0))
    largest = null.null_evidence.max()
    p_own = 10 ** -np.linspace(0.1, largest + 12, len(pairs))  # some pairs far past every null score
    evidence = null.screening_evidence(p_own)
    read, _, _ = null.read(p_own)
    tested = np.isfinite(read)
    assert (-np.log10(p_own[tested]) > largest).sum() > 20  # past every null score: read by the tail
    assert np.allclose(evidence[tested], -np.log10(read[tested]))  # an exponential tail of the top 50: up to 3 more


def _group_lasso_gaps(terms, target, offset, beta, strength):
    """How far each pair's weights are from the group lasso's optimality conditions: a zero pair's gradient norm may
    not pass the penalty; a non-zero pair's gradient must be minus the penalty along its weights."""
    gradient = terms.T @ (2 * (offset + terms @ beta - target)) / len(target)
    gaps = []
    for start in range(0, terms.shape[1], PAIR_TERMS):
        g, b = gradient[start:start + PAIR_TERMS], beta[start:start + PAIR_TERMS]
        norm = np.linalg.norm(b)
        gaps.append(max(np.linalg.norm(g) - strength, 0) if norm == 0 else np.linalg.norm(g + strength * b / norm))
    return np.array(gaps)


def test_the_network_s_pair_weights_are_the_exact_group_lasso_solution_given_the_rest():
    """Adam follows the penalty's subgradient and leaves noise pairs jittering near zero; the settled weights meet the
    optimality conditions in every copy, noise pairs are exactly zero and the planted pair is kept."""
    import keras

    from biolens.engine.genotype_training import fit_copies, predict_copies

    rng = np.random.default_rng(3)
    n, sites, strength = 600, 10, 0.15
    dosage = _genotypes(rng, n, sites)
    codes = PairCodes(dosage)
    pairs = np.array([[0, 1], [2, 3], [4, 5], [6, 7], [8, 9], [1, 4]])
    products = codes.terms(pairs)
    both = ((dosage[:, 0] >= 1) & (dosage[:, 1] >= 1)).astype(float)
    x = (dosage - dosage.mean(0)) / dosage.std(0)
    y = 0.6 * both + 0.3 * x[:, 2] + rng.normal(size=n)
    y = (y - y.mean()) / y.std()
    targets = np.column_stack([y, rng.permutation(y)])
    copies, covariates = np.repeat(products[:, None, :], 2, axis=1), np.zeros((n, 2, 1))
    model, _ = fit_copies(x, copies, covariates, targets, np.ones((n, 2)), kind="quantitative", seed=0, epochs=20,
                          pair_penalty=strength, hidden=4, learning_rate=1e-3)
    weights = keras.ops.convert_to_numpy(model.get_layer("networks").pair_weights).astype(np.float64)
    fitted = predict_copies(model, x, copies, covariates).astype(np.float64)
    for copy in range(2):
        offset = fitted[:, copy] - products @ weights[copy]
        gaps = _group_lasso_gaps(products.astype(np.float64), targets[:, copy], offset, weights[copy], strength)
        assert gaps.max() < 1e-4, (copy, gaps)
    planted = np.linalg.norm(weights[0, :PAIR_TERMS])
    assert planted > 0.05, planted
    noise = np.linalg.norm(weights[0, PAIR_TERMS:].reshape(-1, PAIR_TERMS), axis=1)
    assert (noise == 0).sum() >= 4, noise  # exactly zero, where Adam alone leaves them jittering


def test_traits_with_their_own_covariates_regressed_out_are_tested_as_with_the_covariates():
    """The network's screen tests every copy in one scan, each copy's target minus the fit of its own (permuted)
    covariates, their count kept in the residual df: the p-values are those of one scan per covariate matrix."""
    from biolens.stats.two_locus import residualise

    rng = np.random.default_rng(5)
    n, m = 500, 20
    dosage = _genotypes(rng, n, m)
    pairs = np.stack(np.triu_indices(m, 1), axis=1)
    covariates = np.column_stack([rng.normal(50, 10, n), rng.integers(0, 2, n)])
    trait = 0.05 * covariates[:, 0] + 0.5 * ((dosage[:, 2] > 0) ^ (dosage[:, 9] > 0)) + rng.normal(size=n)
    orders = [np.arange(n)] + [rng.permutation(n) for _ in range(3)]
    apart = np.vstack([saturated_p(dosage, trait[order][:, None], covariates[order], pairs) for order in orders])
    residuals = np.stack([residualise(trait[order], covariates[order]) for order in orders], axis=1)
    together = saturated_p(dosage, residuals, np.zeros((n, 0)), pairs, absorbed=2)
    assert np.allclose(np.log10(together), np.log10(apart), rtol=0, atol=1e-9)
    without_df = saturated_p(dosage, residuals, np.zeros((n, 0)), pairs)  # the covariates' df are what differs
    assert not np.allclose(without_df, apart, rtol=1e-9, atol=0)


def test_partial_f_tests_from_cross_products_match_least_squares_on_any_covariate_scale():
    """The stand-in check's partial F tests come from one design's cross-products; they must be the least-squares
    tests, with covariates on scales 1e5 apart and with tables that share a site (a design short of full rank)."""
    from scipy import stats

    from biolens.stats.two_locus import _cell_indicators, _CrossProducts

    def least_squares_p(y, base, added):
        def fit(design):
            coefficients, _, rank, _ = np.linalg.lstsq(design, y, rcond=None)
            residual = y - design @ coefficients
            return residual @ residual, rank
        (rss_full, rank_full), (rss_base, rank_base) = fit(np.hstack([base, added])), fit(base)
        df1, df2 = rank_full - rank_base, len(y) - rank_full
        return 1.0 if df1 <= 0 else stats.f.sf((rss_base - rss_full) / df1 / (rss_full / df2), df1, df2)

    rng = np.random.default_rng(7)
    n = 800
    classes = rng.binomial(2, [0.05, 0.4, 0.3, 0.45, 0.2, 0.35], size=(n, 6))
    classes[:, 1] = np.where(rng.random(n) < 0.9, classes[:, 0], classes[:, 1])
    covariates = np.column_stack([rng.normal(50, 10, n), rng.integers(0, 2, n), rng.normal(1e5, 2e4, n)])
    y = 10 + 0.6 * ((classes[:, 2] == 2) & (classes[:, 3] == 2)) + 1e-5 * covariates[:, 2] + rng.normal(size=n)
    leads = [_cell_indicators(classes[:, a], classes[:, b]) for a, b in ((2, 3), (0, 1))]
    intercept = np.ones((n, 1))
    for mine_sites, expect_nothing_added in (((1, 4), False), ((2, 3), True)):
        mine = _cell_indicators(classes[:, mine_sites[0]], classes[:, mine_sites[1]])
        products = _CrossProducts.of(np.hstack([intercept, covariates, *leads]), y).beside(mine)
        start = 1 + covariates.shape[1]
        columns = [np.arange(start, start + leads[0].shape[1]),
                   np.arange(start + leads[0].shape[1], start + leads[0].shape[1] + leads[1].shape[1])]
        mine_columns = np.arange(products.columns - mine.shape[1], products.columns)
        for s in range(2):
            base = np.concatenate([np.arange(start), columns[1 - s], mine_columns])
            fast = products.added_p(base, columns[s])
            slow = least_squares_p(y, np.hstack([intercept, covariates, leads[1 - s], mine]), leads[s])
            assert np.isclose(np.log10(fast), np.log10(slow), rtol=0, atol=1e-8)
        assert (products.added_p(np.concatenate([np.arange(start), mine_columns]), columns[0]) == 1.0) == expect_nothing_added


def test_the_discovery_fit_leaves_an_interaction_to_its_pair_term_not_to_the_tags_of_its_carriers(tmp_path):
    """At the strength that predicts best, the additive part took part of a real interaction through the sites that
    tag its carriers, and the pair term kept the rest; the discovery fit holds the additive part back, so the planted
    pair's learned term keeps nearly all its own terms fit, and unrelated pairs stay at zero."""
    import pandas as pd

    from biolens.engine.genotype_training import fit_copies
    from biolens.readers.variants import read_vcf
    from biolens.simulate import simulate_cohort
    from biolens.tasks.associate import (
        _NETWORK,
        _additive_model,
        _additive_penalty,
        _discovery_additive_penalty,
        _pair_penalty,
    )

    # one region without recombination, as the grid simulates it: many sites tag the interaction's carriers
    cohort = simulate_cohort("pair", trait="quantitative", seed=1057, form="threshold", maf=(0.3, 0.5))
    paths = cohort.write(tmp_path)
    genotypes = read_vcf(paths["genotypes"])
    traits = pd.read_csv(paths["phenotypes"], sep="\t").set_index("sample").loc[genotypes.samples]
    keep = genotypes.minor_allele_frequency() >= 0.01
    dosage = genotypes.dosage[:, keep].astype(np.float64)
    positions = genotypes.pos[keep]
    x = (dosage - dosage.mean(0)) / dosage.std(0)
    y = traits["yield"].to_numpy(float)
    y = (y - y.mean()) / y.std()
    n, m = x.shape
    planted = [int(np.flatnonzero(positions == p)[0]) for p in cohort.truth["pair"]]
    rng = np.random.default_rng(0)
    noise = [sorted(rng.choice(np.setdiff1d(np.arange(m), planted), 2, replace=False)) for _ in range(7)]
    pairs = np.array([sorted(planted)] + noise)
    codes = PairCodes(dosage)
    terms = codes.terms(pairs)
    own_fit = np.linalg.norm(terms[:, :PAIR_TERMS].T @ y / n)  # what the planted pair's terms fit of the trait
    additive = _additive_model("quantitative").fit(x, y)
    learned = {}
    for name, l2 in (("cross-validated", _additive_penalty(additive, n, "quantitative")),
                     ("discovery", _discovery_additive_penalty(additive, n, "quantitative"))):
        model, _ = fit_copies(x, terms[:, None, :], np.zeros((n, 1, 1)), y[:, None], np.ones((n, 1)),
                              kind="quantitative", seed=0, epochs=100, l2=l2, pair_penalty=_pair_penalty(n, m, "quantitative"),
                              **{k: v for k, v in _NETWORK.items() if k != "patience"})  # the discovery fit's settings
        weights = model.get_layer("networks").weights_of(0)["pair_weights"].reshape(-1, PAIR_TERMS)
        learned[name] = np.linalg.norm(weights, axis=1)  # orthonormal terms: the SD of each pair's learned term
    # the most a pair term can keep under its group lasso: what its own terms fit, less half the penalty (the squared
    # loss's gradient is twice the correlation)
    bound = own_fit - _pair_penalty(n, m, "quantitative") / 2
    assert learned["cross-validated"][0] < 0.85 * bound, (bound, learned)  # the tags took part of it
    assert learned["discovery"][0] > 0.9 * bound, (bound, learned)
    assert learned["discovery"][1:].max() < 0.01, learned  # unrelated pairs are not handed the main effects
