"""Association: which variant sites and pairs of sites drive a trait, classical tests beside a deep model.

Stages (each saved under checkpoints/, so an interrupted run resumes where it stopped):
1. classical: per-site regression tests, BH q-values, lambda_GC (and at sites unlinked to the hits), LD r^2 and
   blocks, PLINK-style product epistasis scan and the saturated two-locus test of every pair (any form).
2. fine_mapping: SuSiE credible sets and posterior inclusion probabilities over the region's LD.
3. crossval: k-fold cross-validation of the genotype network against a penalised additive model on the same folds.
4. discovery: the network refitted on all samples together with permutation copies; site importance (in-silico
   mutagenesis) against phenotype permutations, pair interaction scores against a null that keeps the main
   effects (parametric bootstrap / residual permutation under the main-effects model, Buzkova et al. 2011); p-values
   past the permutations' resolution from a generalised Pareto tail (Knijnenburg et al. 2009).
What the run writes from the stages' results (tables, metrics, verdict, figures) is `tasks/association_outputs.py`.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from biolens import console
from biolens.errors import InputError
from biolens.hardware import map_on_cores, one_blas_thread
from biolens.config import AssociateConfig
from biolens.engine import lifecycle
from biolens.runs import Run, cached_stage

if TYPE_CHECKING:
    from biolens.engine.dask_scans import DaskSession

TASK = "associate"


def associate(phenotypes: str | Path | None = None, trait: str | None = None, out: str | Path | None = None, *,
              genotypes: str | Path | None = None, sequences: str | Path | None = None,
              resume: str | Path | None = None, **options) -> Run:
    """Find the sites and site pairs associated with `trait`; returns the finished run folder.

    Args:
        phenotypes: TSV/CSV/Excel with a sample column, the trait and any covariates (or a PLINK .fam/.psam).
        trait: the trait column (two values = binary, numbers = quantitative).
        out: the run folder to create.
        genotypes / sequences: a VCF/VCF.gz/BCF, PLINK 1 or 2 fileset or BGEN, or an aligned FASTA of haplotypes
            (exactly one).
        resume: an interrupted association run folder to continue instead.
        **options: any field of `AssociateConfig` (covariates, sample_column, sample_map, min_maf, permutations, ...).

    Example:
        >>> biolens.associate("traits.tsv", "status", "runs/assoc", genotypes="cohort.vcf.gz")  # doctest: +SKIP
    """
    if resume is None:
        resolved = {key: str(Path(value).resolve()) if value is not None else None
                    for key, value in (("phenotypes", phenotypes), ("genotypes", genotypes), ("sequences", sequences),
                                       ("sample_map", options.pop("sample_map", None)),
                                       ("structure_genotypes", options.pop("structure_genotypes", None)))}
        options.update(resolved, trait=trait)
    return lifecycle.execute(TASK, out=out, resume=resume, options=options, prepare=_prepare, body=_run_stages)


def _prepare(config: AssociateConfig, run: Run | None, out: Path) -> lifecycle.Prepared:
    from biolens.readers.variants import genotype_files

    # in this order (the fingerprint of a run being resumed must come out the same); a genotype input is every file
    # of its fileset
    inputs = [(config.genotypes, True), (config.sequences, False), (config.phenotypes, False),
              (config.sample_map, False), (config.structure_genotypes, True)]
    fingerprint = lifecycle.data_fingerprint(
        [f for p, fileset in inputs if p for f in (genotype_files(p) if fileset else [p])])
    return lifecycle.Prepared(_load(config), fingerprint)


@dataclass
class _Data:
    genotypes: "object"
    dosage: np.ndarray
    x: np.ndarray
    y: np.ndarray
    y_model: np.ndarray
    kind: str
    covariates: np.ndarray
    covariate_columns: list[str]
    notes: dict
    _codes: "object" = None

    @property
    def ploidy(self) -> int:
        """The most alleles a genotype call holds (1: haploid strains; above 2: polyploids)."""
        return int(self.genotypes.notes.get("ploidy", 2))

    @property
    def codes(self):
        """Cockerham additive/dominance codes of every site (interaction terms of any pair are built from them)."""
        if self._codes is None:
            from biolens.engine.genotype_training import PairCodes

            self._codes = PairCodes(self.dosage)
        return self._codes


MANY_PAIRS = 5_000_000  # above this many site pairs a run is said to be long, and --region offered


def _load(config: AssociateConfig) -> _Data:
    from biolens.readers.phenotypes import match_samples, read_phenotypes, skewness_note, transform_trait
    from biolens.readers.sequences import call_variants
    from biolens.readers.variants import read_genotypes
    from biolens.stats.preprocess import NEIGHBOURS

    if config.genotypes:
        from biolens.readers.regions import Region

        genotypes = read_genotypes(config.genotypes, region=Region.parse(config.region) if config.region else None)
    else:
        genotypes = call_variants(config.sequences, sample_map=config.sample_map)
    pheno = read_phenotypes(config.phenotypes, config.trait, config.covariates, config.sample_column)
    geno_rows, pheno_rows, match_notes = match_samples(genotypes.samples, pheno.samples, genotypes.source,
                                                       config.phenotypes)
    genotypes = genotypes.subset(rows=geno_rows)
    y, cov = pheno.y[pheno_rows], pheno.covariates[pheno_rows]
    y, transformed = transform_trait(y, config.trait_transform, pheno.kind, config.phenotypes, config.trait,
                                     [pheno.samples[i] for i in pheno_rows])
    skewness, skewed = skewness_note(y, pheno.kind, config.trait, config.trait_transform)
    covariate_columns = list(pheno.covariate_columns)
    structure_notes: dict = {}
    if config.structure_genotypes:
        from biolens.readers.variants import structure_components

        components = structure_components(config.structure_genotypes, genotypes.samples, config.structure_pcs,
                                          structure_notes)
        cov = np.hstack([cov, components])
        covariate_columns += [f"PC{k + 1}" for k in range(components.shape[1])]
    maf = genotypes.minor_allele_frequency()
    keep = np.nonzero(np.isfinite(maf) & (maf >= max(config.min_maf, 1e-12)) & (np.nanstd(genotypes.dosage, 0) > 0))[0]
    if len(keep) < 2:
        raise InputError(f"{genotypes.source}: only {len(keep)} site(s) pass --min-maf {config.min_maf} among the "
                         f"{len(y)} matched individuals; lower --min-maf or check the samples.")
    dropped = genotypes.n_sites - len(keep)
    genotypes = genotypes.subset(sites=keep)
    pairs = len(keep) * (len(keep) - 1) // 2
    many = ([f"{genotypes.source}: {len(keep):,} sites pass --min-maf, {pairs:,} pairs to scan; the time grows with "
             "the pairs (928,203 took 4 minutes on 2 cores, docs/performance.md), so this run will be long. To study "
             "part of the file, name it with --region CHROM:START-END."] if pairs > MANY_PAIRS else [])
    dosage, imputed = genotypes.imputed()
    x = (dosage - dosage.mean(0)) / dosage.std(0)
    y_model = y if pheno.kind == "binary" else (y - y.mean()) / y.std()
    ploidy = int(genotypes.notes.get("ploidy", 2))
    polyploid = ([f"{genotypes.source}: calls of up to {ploidy} alleles: the per-site tests and the network's additive "
                  f"terms use each individual's whole dosage (0-{ploidy} alt copies), but the pair tests' genotype "
                  "tables and the dominance codes count 0, 1 and 2 or more copies, a diploid reading of a polyploid."]
                 if ploidy > 2 else [])
    notes = {**genotypes.notes, **pheno.notes, **match_notes, **transformed, **skewness, **structure_notes,
             "sites_below_min_maf": int(dropped), "imputed_calls": imputed, "trait_kind": pheno.kind,
             **({"imputation": f"the mean call of the {NEIGHBOURS} nearest neighbours, the individuals most alike "
                               "at the other sites"} if imputed else {}),
             "warnings": genotypes.notes.get("warnings", []) + pheno.notes.get("warnings", [])
                         + match_notes.get("warnings", []) + polyploid + skewed + many}
    for line in notes["warnings"]:
        console.say(f"warning: {line}")
    if imputed:
        console.say(f"{imputed} missing genotype calls ({100 * imputed / dosage.size:.2f}%) were imputed with "
                    f"{notes['imputation']}.")
    return _Data(genotypes, dosage, x, y, y_model, pheno.kind, cov, covariate_columns, notes)


# -- stages ------------------------------------------------------------------------------------------------------
# The discovery fit (real data and every permutation copy alike, so the test stays calibrated) trains at least this
# many epochs. Cross-validation often finds its lowest validation loss at epochs 1-5, before the group lasso has
# removed the noise pairs, and a network stopped there has not yet grown the real interaction (measured on 7 pair
# cohorts of five forms: planted pair found at q < 0.05 in 2 of 7 with the CV epoch, 5 of 7 with this floor; no
# false pair on null or additive cohorts either way; docs/performance.md).
MIN_DISCOVERY_EPOCHS = 100


def _discovery_epochs(crossval: dict) -> int:
    return max(int(crossval["epochs"]), MIN_DISCOVERY_EPOCHS)


def _run_stages(run: Run, config: AssociateConfig, data: _Data) -> bool:
    from biolens.engine.dask_scans import DaskSession
    from biolens.hardware import import_tensorflow
    from biolens.tasks.association_outputs import write_outputs

    import_tensorflow()
    run.update_info(n_samples=len(data.y), n_sites=data.x.shape[1], trait_kind=data.kind,
                    data_notes=data.notes, covariate_columns=data.covariate_columns,
                    warnings=data.notes.get("warnings", []))
    n, m = data.x.shape
    console.say(f"{n} individuals x {m} sites ({data.kind} trait '{config.trait}'); {m * (m - 1) // 2} site pairs.")
    # "_v2".."_v13": checkpoints of runs interrupted under an older biolens lack the saturated test, the tail model,
    # the main-effects null, its scan of every pair, its distinct pairs, its LD classes, the stepwise signals, the
    # network's saturated-test screening, leads chosen by mutual conditioning, the screen's mutual tags settled by
    # their fit, the null's main effects as strong as out of sample and repeated fits contested in the screen, or
    # (v13) the pairs that stand in for a signal's lead
    # (fine_mapping_v2: the inflation left after the fine-mapped signals; _v3: fits averaged by evidence;
    # crossval_v2: the screening; crossval_v3: the additive + dominance model; classical_v3, crossval_v4,
    # discovery_v16: two alleles of one locus are not a pair; crossval_v5, discovery_v17: a contest winner's tags
    # contend in turn in the screen; discovery_v18: the additive part held back in the discovery fit; crossval_v6,
    # discovery_v19: a binary trait's pair penalty a quarter of the universal threshold, its pair weights settled;
    # crossval_v7, discovery_v20: the network's main part holds the sites' dominance codes; fine_mapping_v4: the
    # lead sites kept; discovery_v21: deep claims that tag another's signal);
    # their stages are recomputed
    with DaskSession(config.dask) as dask:  # one cluster for both scanning stages, started only if one runs
        classical = cached_stage(run, "classical_v3", lambda: _classical(data, dask, config.seed))
        fine_mapping = cached_stage(run, "fine_mapping_v4", lambda: _fine_mapping(data, classical, config.seed))
        crossval = cached_stage(run, "crossval_v7", lambda: _crossval(data, config, classical))
        spread = null_main_effects_spread(data, crossval)
        discovery = cached_stage(run, "discovery_v21",
                                 lambda: _discovery(data, config, classical, _discovery_epochs(crossval), spread, dask))
    fine_mapping = {**fine_mapping, **inflation_left_given_pairs(data, classical, fine_mapping,
                                                                 np.flatnonzero(leading_claims(discovery)),
                                                                 config.seed)}
    seconds = lifecycle.elapsed_seconds(run)
    write_outputs(run, config, data, classical, fine_mapping, crossval, discovery, seconds)
    console.say(f"done in {seconds:.0f} s.")
    return True


def null_main_effects_spread(data: _Data, crossval: dict) -> float | None:
    """How strongly the main effects predict a quantitative trait (standardised) out of sample, as the SD the
    interaction null gives their fitted values (`interaction_null_traits`): sqrt of the better out-of-fold R^2 of the
    additive and the additive + dominance models.

    None for a binary trait: its null draws cases from the in-sample fit as it is. Scaling its logit to the
    out-of-fold logit's SD times its calibration slope was tried (session 45) and not kept: on foreign cohorts the
    product reading then claimed 8 pairs beside the planted one on a nearly clonal binary cohort (1 before), and the
    deep test one more pair on a binary null cohort (a term of 0.003 log-odds on 2 individuals).
    """
    if data.kind == "binary":
        return None
    from sklearn.metrics import r2_score

    return float(np.sqrt(max(r2_score(data.y_model, crossval["oof_additive"]),
                             r2_score(data.y_model, crossval["oof_main_effects"]), 0.0)))


def _classical(data: _Data, dask: DaskSession, seed: int = 0) -> dict:
    from biolens.engine.dask_scans import describe, pair_scans
    from biolens.stats import linkage, regression
    from biolens.stats.significance import bh_qvalues

    with console.step("classical per-site tests and LD"):
        beta, p_site = regression.site_tests(data.dosage, data.y, data.covariates, data.kind)
        r2 = linkage.r_squared(data.dosage)
        blocks = linkage.blocks(r2)
    q_site = bh_qvalues(p_site)
    with console.step(f"lambda_GC by chance in this region ({LAMBDA_PERMUTATIONS} shuffles of the trait)"):
        chance = regression.inflation_by_permutation(data.dosage, data.y, data.covariates, data.kind,
                                                     permutations=LAMBDA_PERMUTATIONS, seed=seed)
    m = data.x.shape[1]
    pairs = np.stack(np.triu_indices(m, 1), axis=1)
    client = dask.client()
    with console.step(f"classical epistasis scans ({len(pairs)} pairs: product term and saturated 3 x 3 table){dask.where}"):
        scans = pair_scans(data.dosage, data.y, data.covariates, data.kind, pairs, client)
        engine = describe(client)
    one_locus = _one_locus(data, pairs)
    for key in ("pair_beta", "p_epistasis", "p_saturated", "df_saturated"):
        scans[key] = np.where(one_locus, np.nan, scans[key])
    return {"beta": beta, "p_site": p_site, "q_site": q_site, "r2": r2, "ld_block": blocks,
            "pairs": pairs, "pair_beta": scans["pair_beta"], "p_epistasis": scans["p_epistasis"],
            "q_epistasis": bh_qvalues(scans["p_epistasis"]), "p_saturated": scans["p_saturated"],
            "q_saturated": bh_qvalues(scans["p_saturated"]), "df_saturated": scans["df_saturated"],
            "pair_scan_engine": np.asarray(json.dumps(engine)),
            "lambda_gc": np.asarray(regression.genomic_inflation(p_site)),
            "lambda_gc_unlinked": np.asarray(_unlinked_inflation(p_site, _far_from_hits(q_site, r2))),
            "lambda_gc_chance": np.asarray(chance),
            "effective_tests": np.asarray(regression.effective_tests(data.dosage))}


UNLINKED_R2 = 0.1  # sites below this r^2 with every hit measure inflation that LD with the hits cannot explain
MIN_UNLINKED_SITES = 20  # fewer such sites: their median says nothing
LAMBDA_PERMUTATIONS = 100  # trait shuffles whose 95% quantile of lambda_GC is "what chance gives here"


def _far_from_hits(q_site: np.ndarray, r2: np.ndarray) -> np.ndarray:
    """Sites in weak LD (r^2 < 0.1) with every site at q < 0.05 (all sites when there is no hit)."""
    hits = np.nonzero(q_site < 0.05)[0]
    return np.ones(len(q_site), dtype=bool) if not len(hits) else (r2[:, hits] < UNLINKED_R2).all(1)


def _unlinked_inflation(p_site: np.ndarray, far: np.ndarray) -> float:
    """lambda_GC over the sites far from every hit (`_far_from_hits`); NaN when fewer than 20 such sites.

    In one small region most sites are in LD with an associated site, so their test statistics rise with it and the
    overall lambda_GC measures that LD, not population structure. Inflation that persists far from the hits does.
    """
    from biolens.stats.regression import genomic_inflation

    return genomic_inflation(p_site[far]) if far.sum() >= MIN_UNLINKED_SITES else float("nan")


def _fine_mapping(data: _Data, classical: dict, seed: int) -> dict:
    """SuSiE over the region (covariates regressed out of trait and genotypes): PIPs and 95% credible sets; then
    lambda_GC far from the hits with each credible set's lead site as a covariate (`_inflation_left`)."""
    from biolens.stats.finemap import susie
    from biolens.stats.two_locus import residualise

    x, y = residualise(data.dosage, data.covariates), residualise(data.y.astype(np.float64), data.covariates)
    with console.step("fine-mapping (SuSiE credible sets)"), one_blas_thread():
        found = susie(x, y)
    leads = _lead_sites(found, classical["p_site"])
    left, left_chance = _inflation_left(x, y, leads, _far_from_hits(classical["q_site"], classical["r2"]), seed)
    return {"pip": found.pip, "credible_set": found.set_of_each_site(),
            "purity": np.asarray(found.purity), "converged": np.asarray(found.converged),
            "mode_weights": np.asarray(found.mode_weights), "lead_sites": np.asarray(leads, dtype=np.int64),
            "lambda_gc_unlinked_left": np.asarray(left), "lambda_gc_unlinked_left_chance": np.asarray(left_chance)}


def inflation_left_given_pairs(data: _Data, classical: dict, fine_mapping: dict, claimed: np.ndarray,
                               seed: int) -> dict:
    """`_inflation_left` again with the whole 3 x 3 genotype table of every interacting pair the pair tests claim
    (`claimed`: indices into the pairs) beside the lead sites; {} when nothing is claimed.

    Why: a site in weak LD with each of a pair's two sites can still tag the pair's joint genotypes, so an
    interaction carries inflation to the "far" sites that the lead sites, entered additively, do not take away. On
    foreign cohorts holding additive sites and a pair (benchmarks/association_foreign.py --kinds mixed, seeds 5427
    and 5431, no structure) lambda_GC there read 6.50 and 3.17 against chance bounds of 2.85 and 2.86 and the report
    said it looked like stratification; with the claimed pairs' tables beside the leads, 2.01 and 1.72 (bounds 3.01,
    2.88). A trait shifted between populations is a main effect of the many sites whose frequencies differ: a pair
    table or two does not take it away from hundreds of far sites.
    """
    from biolens.stats.two_locus import _cell_indicators, genotype_classes, residualise

    if not len(claimed) or "lead_sites" not in fine_mapping:
        return {}
    classes = genotype_classes(data.dosage)
    tables = {}  # exact copies of a pair share its table: one each
    for a, b in classical["pairs"][claimed]:
        table = _cell_indicators(classes[:, a], classes[:, b])
        tables.setdefault(table.tobytes(), table)
    x, y = residualise(data.dosage, data.covariates), residualise(data.y.astype(np.float64), data.covariates)
    left, left_chance = _inflation_left(x, y, [int(k) for k in fine_mapping["lead_sites"]],
                                        _far_from_hits(classical["q_site"], classical["r2"]), seed,
                                        residualise(np.hstack(list(tables.values())), data.covariates))
    return {"lambda_gc_unlinked_left": np.asarray(left), "lambda_gc_unlinked_left_chance": np.asarray(left_chance),
            "lambda_left_given_pairs": np.asarray(len(tables))}


def _lead_sites(found, p_site: np.ndarray) -> list[int]:
    """The site of highest PIP in each credible set; the strongest per-site hit when SuSiE found no set."""
    return [int(members[np.argmax(found.pip[members])]) for members in found.credible_sets] or [int(np.argmin(p_site))]


def _inflation_left(x: np.ndarray, y: np.ndarray, leads: list[int], far: np.ndarray, seed: int,
                    tables: np.ndarray | None = None) -> tuple[float, float]:
    """lambda_GC at the sites far from every hit, tested with the lead sites as covariates (the site of highest PIP
    in each credible set, else the strongest hit), and its 95% quantile over shuffles of what the leads leave of the
    trait (NaN, NaN with fewer than MIN_UNLINKED_SITES such sites). x, y: covariates already regressed out.

    Why: "far" (r^2 < 0.1 with every hit) is not unlinked when a hit is strong: a site at r^2 0.05 with a hit of
    chi^2 45 expects a chi^2 of about 3. On simulated additive cohorts without structure, lambda_GC at such sites
    passed the chance bound and was read as stratification (docs/association.md). With the leads as covariates
    (conditional analysis, as GCTA-COJO's) that LD has little left to carry, while a trait shifted between
    populations still lifts the many sites whose frequencies differ between them. The bound is these sites' own:
    the median of fewer sites moves more. SuSiE's whole fit was tried in place of the leads and dropped: where its
    effects without a credible set are spurious, taking them out adds inflation (lambda 1.6 -> 3.1 in one cohort).
    tables: more covariates, already residualised (the claimed pairs' genotype tables, `inflation_left_given_pairs`).
    """
    from biolens.stats import regression

    if far.sum() < MIN_UNLINKED_SITES:
        return float("nan"), float("nan")
    design = np.column_stack([np.ones(len(y)), x[:, leads], *([] if tables is None else [tables])])
    left = y - design @ np.linalg.lstsq(design, y, rcond=None)[0]
    none = np.zeros((len(left), 0))
    _, p = regression.site_tests(x[:, far], left, none, "quantitative")
    bound = regression.inflation_by_permutation(x[:, far], left, none, "quantitative",
                                                permutations=LAMBDA_PERMUTATIONS, seed=seed)
    return regression.genomic_inflation(p), bound


class _OneBlasThread:
    """Mixed into the penalised models: their many small products run on one BLAS thread (`one_blas_thread`)."""

    def fit(self, X, y, *args, **kwargs):
        with one_blas_thread():
            return super().fit(X, y, *args, **kwargs)


def _additive_model(kind: str):
    from sklearn.linear_model import LogisticRegressionCV

    if kind == "binary":
        class OneThreadLogisticCV(_OneBlasThread, LogisticRegressionCV):
            pass

        return OneThreadLogisticCV(Cs=np.logspace(-4, 1, 12), cv=3, max_iter=2000, scoring="neg_log_loss")
    return _steady_ridge_cv(alphas=np.logspace(-2, 5, 30))


def _steady_ridge_cv(**params):
    """RidgeCV whose leave-one-out path falls back from the SVD of the design to the eigendecomposition of the Gram
    matrix when LAPACK fails.

    The SVD (gesdd) stopped a run with "SVD did not converge" on a clonal region whose 308 columns had rank 71 (a
    cohort of benchmarks/association_foreign.py); the Gram path has no such failure and gives the same fit, but it
    decomposes an n x n matrix: with 10,000 individuals the 5-fold additive fits took 258 s on it.
    """
    from sklearn.linear_model import RidgeCV

    class SteadyRidgeCV(_OneBlasThread, RidgeCV):
        def fit(self, X, y, *args, **kwargs):
            try:
                return super().fit(X, y, *args, **kwargs)
            except np.linalg.LinAlgError:
                self.set_params(gcv_mode="eigen")
                return super().fit(X, y, *args, **kwargs)

    return SteadyRidgeCV(gcv_mode="svd", **params)


def _additive_penalty(model, n_train: int, kind: str) -> float:
    """A penalised model's cross-validated L2 strength, in the units of the network's mean loss. The network's
    additive weights take the additive model's; its dominance weights that of the additive + dominance model
    (`_main_effect_features`). Why two: with the additive model's for both, the 200-600 dominance weights were held
    too loosely and the out-of-fold R^2 fell on null and additive cohorts (0.036 -> 0.022, 0.032 -> 0.005); with the
    additive + dominance model's for both, the additive weights were held too tightly (R^2 0.186 -> 0.159 on a
    10,000-individual cohort; docs/performance.md, session 56)."""
    if kind == "binary":
        return float(1 / (2 * model.C_[0] * n_train))
    return float(model.alpha_ / n_train)


# How many times more strongly the discovery fit holds its additive part than cross-validation chose for prediction,
# for a quantitative trait (docs/association.md, "The additive part held back in the discovery fit").
DISCOVERY_ADDITIVE_SHRINKAGE = 10.0


def _discovery_additive_shrinkage(kind: str) -> float:
    """How many times the cross-validated L2 strength the discovery fit's additive part gets:
    DISCOVERY_ADDITIVE_SHRINKAGE for a quantitative trait, 1 for a binary one.

    Why: at the strength that predicts best, the additive part takes part of a real interaction through the many
    sites that tag its carriers (small weights spread over hundreds of sites cost little L2), and the group-lasso
    pair term keeps only what is left; the null copies, whose traits hold main effects only, have nothing to lose, so
    the real pair lost ground against the null's largest terms. On grid threshold cohort 1057 the planted pair's
    interaction terms correlated 0.203 with the trait, 0.146 with what a ridge at the cross-validated strength leaves
    and 0.179 at ten times it, while noise candidates moved from 0.12-0.14 by at most 0.01. A weaker additive part
    leaves more of the trait's main effects and structure to the pair terms, in the real fit and the null copies
    alike: on 48 null and additive cohorts (grid and foreign) a pair was claimed in 3, as before, and planted pairs
    found went from 47 to 50 of 60 (docs/performance.md, "Session 52"). Binary traits keep the cross-validated
    strength: tried on the grid's binary product and one-carrier cohorts 1050-1053 (session 53, before their pair
    weights were settled), the factor found 5 planted pairs against 6; not tried since.
    """
    return 1.0 if kind == "binary" else DISCOVERY_ADDITIVE_SHRINKAGE


def _discovery_additive_penalty(model, n_train: int, kind: str) -> float:
    """The L2 strength of the discovery fit's additive part (`_discovery_additive_shrinkage`)."""
    return _discovery_additive_shrinkage(kind) * _additive_penalty(model, n_train, kind)


def _features(data: _Data) -> np.ndarray:
    return np.hstack([data.x, data.covariates]) if data.covariates.shape[1] else data.x


def _main_effect_features(data: _Data) -> np.ndarray:
    """Every site's additive and dominance codes (and the covariates): the main effects of the pair tests' null and
    the classical model the deep model must beat before its gain can be read as interactions."""
    return np.hstack([_features(data), data.codes.d[:, data.codes.has_dominance]])


def _network_inputs(data: _Data) -> tuple[np.ndarray, int]:
    """The genotype network's genotype input: the standardised dosages and the dominance codes of the sites with
    enough individuals in each genotype class (`PairCodes.dominance_sites`; the main effects the interaction null
    holds, `models.genotype.GenotypeNetworks`), and how many dominance columns it has."""
    dominance = data.codes.dominance_inputs()
    return np.hstack([data.x, dominance]).astype(np.float32), dominance.shape[1]


def _one_locus(data: _Data, pairs: np.ndarray) -> np.ndarray:
    """Pairs of two alleles of one position (a multi-allelic record or alignment column, split into one biallelic
    site per allele): one locus, not a pair of loci, so no pair test is run on them (NaN in every pair column).

    Why: their 3 x 3 table is the locus's own genotypes (an individual carrying both alleles is the A1/A2
    heterozygote), and no site's additive or dominance code holds what that heterozygote does, so every pair test
    read the locus's dominance as an interaction: on grid both-recessive cohort 1024 the two alleles at position 979
    were row 4 of interactions.tsv (saturated q 0.039 on their own, PLINK's q 9e-15), ahead of real two-site pairs.
    """
    chrom, pos = np.asarray(data.genotypes.chrom), np.asarray(data.genotypes.pos)
    return (chrom[pairs[:, 0]] == chrom[pairs[:, 1]]) & (pos[pairs[:, 0]] == pos[pairs[:, 1]])


def _allowed_pairs(r2: np.ndarray, data: _Data) -> np.ndarray:
    """Pairs the network may take as candidates: sites not in strong LD (r^2 < 0.8) and not two alleles of one
    locus (`_one_locus`); m x m."""
    from biolens.stats.linkage import BLOCK_R2

    allowed = r2 < BLOCK_R2
    np.fill_diagonal(allowed, False)
    m = len(r2)
    rows, cols = np.triu_indices(m, 1)
    one_locus = _one_locus(data, np.stack([rows, cols], axis=1))
    allowed[rows[one_locus], cols[one_locus]] = allowed[cols[one_locus], rows[one_locus]] = False
    return allowed


def _copies_inputs(data: _Data, targets: np.ndarray, fit_rows: list[np.ndarray], config: AssociateConfig,
                   allowed: np.ndarray, covariates: np.ndarray, pairs: np.ndarray, null=None,
                   scan=None) -> tuple[np.ndarray, np.ndarray]:
    """Per-copy candidate pairs (screened by the saturated test of that copy's own target on its own training rows,
    with its own covariates, read within LD classes against the main-effects `null` where there is one) and their
    interaction terms. covariates: n x copies x c; `scan` as for the null scans.

    Cross-validation runs before the null exists and screens by the test's own p: its folds only choose the epoch
    count and give the out-of-fold predictions, for which pairs that tag main effects are as good as any.
    """
    from functools import partial

    from biolens.engine.genotype_training import PAIR_TERMS
    from biolens.stats.two_locus import first_unexplained, residualise, saturated_p

    n, copies = targets.shape
    k = config.candidate_pairs
    terms = np.zeros((n, copies, k * PAIR_TERMS), dtype=np.float32)
    candidates = np.zeros((copies, k, 2), dtype=np.int64)
    groups: dict[bytes, list[int]] = {}
    for j, rows in enumerate(fit_rows):  # copies that share rows are scanned together
        groups.setdefault(rows.tobytes(), []).append(j)
    for members in groups.values():
        rows = fit_rows[members[0]]
        dosage = data.dosage[rows]
        # each copy's target minus the fit of its own covariates (the permuted copies carry permuted ones), so that one
        # scan tests them all: a scan per distinct covariate matrix made the screen 21 scans with covariates
        residuals = np.stack([residualise(targets[rows, j], covariates[rows, j]) for j in members], axis=1)
        arguments = (dosage, residuals, np.zeros((len(rows), 0)), pairs)
        test = partial(saturated_p, absorbed=covariates.shape[2])
        pvalues = scan(test, *arguments) if scan else test(*arguments)
        own = [-np.log10(np.clip(p_copy, 1e-300, 1)) for p_copy in pvalues]
        evidence = [null.screening_evidence(p_copy) for p_copy in pvalues] if null is not None else own

        def screened(i: int) -> np.ndarray:
            j = members[i]
            contest = partial(first_unexplained, saturated_p, dosage, targets[rows, j], covariates[rows, j],
                              mutual_by_fit=True)
            return data.codes.screen(evidence[i], pairs, k, allowed, targets[rows, j], rows, own[i], contest)

        # the copies side by side, one BLAS thread each: the contests' and fits' products are small (sessions 51, 55)
        for j, chosen in zip(members, map_on_cores(screened, range(len(members)))):
            terms[:, j, : len(chosen) * PAIR_TERMS] = data.codes.terms(chosen)
            candidates[j, : len(chosen)] = chosen
    return terms, candidates


def _crossval(data: _Data, config: AssociateConfig, classical: dict) -> dict:
    from sklearn.model_selection import KFold, StratifiedKFold

    from biolens.engine.genotype_training import fit_copies, predict_copies

    n = len(data.y)
    splitter = (StratifiedKFold if data.kind == "binary" else KFold)(config.folds, shuffle=True, random_state=config.seed)
    fold_of = np.zeros(n, dtype=int)
    for k, (_, test) in enumerate(splitter.split(data.x, data.y if data.kind == "binary" else None)):
        fold_of[test] = k
    rng = np.random.default_rng(config.seed)
    features, main_features = _features(data), _main_effect_features(data)
    oof_additive, oof_main_effects, penalties, dominance_penalties = np.zeros(n), np.zeros(n), [], []
    train_weight, val_weight = np.zeros((n, config.folds)), np.zeros((n, config.folds))
    fit_rows = []
    trains = [np.nonzero(fold_of != k)[0] for k in range(config.folds)]

    def fitted(train: np.ndarray) -> tuple:
        return (_additive_model(data.kind).fit(features[train], data.y_model[train]),
                _additive_model(data.kind).fit(main_features[train], data.y_model[train]))

    with console.step(f"additive models (with and without dominance), {config.folds}-fold cross-validation"):
        for k, (model, main_effects) in enumerate(map_on_cores(fitted, trains)):  # folds side by side
            train = trains[k]
            test = fold_of == k
            oof_additive[test] = (model.predict_proba(features[test])[:, 1] if data.kind == "binary"
                                  else model.predict(features[test]))
            penalties.append(_additive_penalty(model, len(train), data.kind))
            dominance_penalties.append(_additive_penalty(main_effects, len(train), data.kind))
            oof_main_effects[test] = (main_effects.predict_proba(main_features[test])[:, 1] if data.kind == "binary"
                                      else main_effects.predict(main_features[test]))
            inner = rng.random(len(train)) < 0.15
            train_weight[train[~inner], k], val_weight[train[inner], k] = 1, 1
            fit_rows.append(train[~inner])
    targets = np.repeat(data.y_model[:, None], config.folds, axis=1)
    covariates = np.repeat(data.covariates[:, None, :], config.folds, axis=1)
    products, _ = _copies_inputs(data, targets, fit_rows, config, _allowed_pairs(classical["r2"], data), covariates,
                                 classical["pairs"])
    inputs, dominance = _network_inputs(data)
    with console.step(f"genotype network, {config.folds}-fold cross-validation"):
        model, epochs = fit_copies(inputs, products, covariates, targets, train_weight, val_weight=val_weight,
                                   kind=data.kind, seed=config.seed, epochs=300, l2=float(np.median(penalties)),
                                   dominance_l2=float(np.median(dominance_penalties)),
                                   pair_penalty=_pair_penalty(len(fit_rows[0]), data.x.shape[1], data.kind),
                                   dominance=dominance, **_NETWORK)
        logits = predict_copies(model, inputs, products, covariates)[np.arange(n), fold_of]
    oof_deep = 1 / (1 + np.exp(-logits)) if data.kind == "binary" else logits
    return {"fold": fold_of, "oof_deep": oof_deep, "oof_additive": oof_additive,
            "oof_main_effects": oof_main_effects, "fold_epochs": epochs,
            "epochs": np.asarray(max(1, int(np.median(epochs)))), "l2": np.asarray(float(np.median(penalties)))}


# The network's settings; the main part's L2 strengths come from the cross-validated additive and additive + dominance
# models of the same data (`_additive_penalty`).
_NETWORK = {"hidden": 16, "l1": 1e-2, "learning_rate": 1e-3, "batch_size": 64, "patience": 50}


def _pair_penalty(n: int, m: int, kind: str) -> float:
    """Group-lasso strength of the pair terms: the largest correlation noise pairs reach, sqrt(2 ln(pairs) / n)
    (the universal threshold); a quarter of it for the logistic loss, so both losses drop the same pairs.

    Why a quarter: the mean squared error's gradient along a standardised term is twice its covariance with the
    residual (SD ~1), the mean log-loss's is its covariance with p - y (SD ~0.5 near balance): four times flatter.
    At half (until session 53) a binary trait's exactly settled null copies kept no pair at all."""
    pairs = max(m * (m - 1) // 2, 2)
    return float(np.sqrt(2 * np.log(pairs) / n)) * (0.25 if kind == "binary" else 1.0)


def _pair_positions(candidates: np.ndarray, m: int) -> np.ndarray:
    """Index of each (i < j) pair in the row-major upper-triangle list of all pairs."""
    i, j = candidates[:, 0], candidates[:, 1]
    return i * m - i * (i + 1) // 2 + (j - i - 1)


def _pair_contributions(network, copy: int, candidates: np.ndarray, codes):
    """Each candidate pair's interaction term in f per individual (n x K), and which candidates are real."""
    from biolens.engine.genotype_training import PAIR_TERMS

    valid = candidates[:, 0] < candidates[:, 1]  # rows past the last candidate are padding (0, 0)
    weights = network.weights_of(copy)["pair_weights"].reshape(-1, PAIR_TERMS)[valid]
    terms = codes.terms(candidates[valid]).reshape(-1, int(valid.sum()), PAIR_TERMS)
    return np.einsum("nkf,kf->nk", terms, weights), valid


def _pair_scores(contributions: np.ndarray, pairs: np.ndarray, n_pairs: int, m: int) -> np.ndarray:
    """The SD over individuals of each pair's learned interaction term (trait SD units); zero for non-candidates.

    The term is the network's function of the pair's four interaction codes, so this measures an interaction of
    any form; for a pure dosage product it equals |d2f / dx_i dx_j| per SD^2, what double in-silico mutagenesis
    measures. The tanh layer's curvature is left out: it mostly reflects how main effects are fitted.
    """
    scores = np.zeros(n_pairs)
    scores[_pair_positions(pairs, m)] = contributions.std(0)
    return scores


def interaction_null_traits(data: _Data, count: int, rng: np.random.Generator, spread: float | None,
                            main_effects=None) -> np.ndarray:
    """`count` traits (n x count) with every site's main effects, dominance included, and no interaction: the null
    hypothesis of the pair tests (Buzkova et al. 2011). A quantitative trait: the main effects' in-sample fit scaled
    to SD `spread` (`null_main_effects_spread`: as strong as out of sample) plus permuted residuals. A binary trait
    (`spread` None): a parametric bootstrap of the in-sample fit.

    Why the scaling, both ways. Up: ridge shrinks in-sample effects, and a null with weaker main effects than the data
    would let the data's main effects pass for interactions. Down: on a cohort with an interaction, the in-sample fit
    of 700 additive and dominance codes absorbs part of it (and noise) through the sites that tag it: on a
    both-recessive cohort it carried 12% of the trait's variance where 9% held out of sample, and null traits with
    that excess scored pairs of unlinked sites up to p 1e-12.7 instead of 1e-9.8 (their LD class's tail threshold),
    so the planted pair, at own p 7e-26, read q 0.006-0.036 instead of 4e-5 to 0.003 (docs/association.md).
    main_effects: that model already fitted to `_main_effect_features` (fitted here when not given).
    """
    n = len(data.y_model)
    main_features = _main_effect_features(data)
    if main_effects is None:
        main_effects = _additive_model(data.kind).fit(main_features, data.y_model)
    if data.kind == "binary":
        fitted = main_effects.predict_proba(main_features)[:, 1]
        return np.stack([(rng.random(n) < fitted).astype(float) for _ in range(count)], axis=1)
    fitted = main_effects.predict(main_features)
    centre, sd = fitted.mean(), fitted.std()
    fitted = centre + (fitted - centre) * (spread * data.y_model.std() / sd if sd > 0 else 1.0)
    residual = data.y_model - fitted
    return np.stack([fitted + residual[rng.permutation(n)] for _ in range(count)], axis=1)


def _discovery(data: _Data, config: AssociateConfig, classical: dict, epochs: int, spread: float | None,
               dask: DaskSession) -> dict:
    from functools import partial

    from biolens.engine.dask_scans import scan_blocks
    from biolens.engine.genotype_training import fit_copies
    from biolens.stats.significance import bh_qvalues, permutation_test
    from biolens.stats.two_locus import (MainEffectsNull, product_pair_tests, saturated_p, stand_ins,
                                         stepwise_signals)

    n, m = data.x.shape
    B = config.permutations
    rng = np.random.default_rng(config.seed + 1)
    additive, main_effects = map_on_cores(lambda features: _additive_model(data.kind).fit(features, data.y_model),
                                          [_features(data), _main_effect_features(data)])  # side by side, as the folds
    # copy 0: real data; 1..B: phenotype (and covariates) permuted; B+1..2B: main-effects-only null for interactions
    orders = [np.arange(n)] + [rng.permutation(n) for _ in range(B)] + [np.arange(n)] * B
    targets = np.hstack([np.stack([data.y_model[order] for order in orders[: B + 1]], axis=1),
                         interaction_null_traits(data, B, rng, spread, main_effects)])
    copies = targets.shape[1]
    client = dask.client()
    pairs = classical["pairs"]
    with console.step(f"saturated and product tests against {B} traits with every main effect and no interaction{dask.where}"):
        scan = partial(scan_blocks, client=client) if client is not None else None
        one_locus = _one_locus(data, pairs)
        p_product_linear = np.where(one_locus, np.nan,
                                    product_pair_tests(data.dosage, data.y_model, data.covariates, pairs))
        readings, nulls = {}, {}
        for name, test, p_own, seed in (("saturated", saturated_p, classical["p_saturated"], config.seed + 2),
                                        ("product", product_pair_tests, p_product_linear, config.seed + 3)):
            null = MainEffectsNull(test, data.dosage, pairs, targets[:, B + 1:], data.covariates,
                                   np.random.default_rng(seed), scan, untested=one_locus)
            p_marginal, q_marginal, tail = null.read(p_own)
            p_signal, q_signal, leads = stepwise_signals(test, null, data.dosage, data.y_model, data.covariates, pairs,
                                                         (p_marginal, q_marginal), scan=scan, own=p_own)
            # stand-ins for the saturated reading's leads only: its own model is the whole table, which is what the
            # stand-in test compares; a product lead that is a dominance effect in disguise (two linked sites) was
            # "explained" by the table of any pair holding one of its sites (372 such pairs on one cohort)
            stand_in_for = (stand_ins(data.dosage, data.y_model, data.covariates, pairs, leads, q_marginal,
                                      p_own, null.which) if name == "saturated" else np.full(len(pairs), -1))
            signal, role = _signals(leads, stand_in_for, null.which)
            standing_in = role == STAND_IN
            p_signal[standing_in], q_signal[standing_in] = p_marginal[standing_in], q_marginal[standing_in]
            tail["signals"], tail["stand_ins"] = len(leads), int(standing_in.sum())
            readings |= {f"{name}_p": p_signal, f"{name}_q": q_signal, f"{name}_p_marginal": p_marginal,
                         f"{name}_q_marginal": q_marginal, f"{name}_tail": np.asarray(json.dumps(tail)),
                         f"{name}_signal": signal, f"{name}_role": role}
            nulls[name] = null
    allowed = _allowed_pairs(classical["r2"], data)
    covariates = np.stack([data.covariates[order] for order in orders], axis=1)
    with console.step(f"screening pairs for the network: saturated test of {copies} traits{dask.where}"):
        products, candidates = _copies_inputs(data, targets, [np.arange(n)] * copies, config, allowed, covariates,
                                              pairs, nulls["saturated"], scan)
    with console.step(f"genotype network on all samples + {2 * B} null copies ({epochs} epochs)"):
        inputs, dominance = _network_inputs(data)
        model, _ = fit_copies(inputs, products, covariates, targets, np.ones((n, copies)), kind=data.kind,
                              seed=config.seed + 1, epochs=epochs, l2=_discovery_additive_penalty(additive, n, data.kind),
                              dominance_l2=_discovery_additive_penalty(main_effects, n, data.kind),
                              pair_penalty=_pair_penalty(n, m, data.kind), dominance=dominance,
                              **{k: v for k, v in _NETWORK.items() if k != "patience"})
    network = model.get_layer("networks")
    rows = rng.choice(n, min(n, config.explain_samples), replace=False)
    dominance_sites, dominance_slope = data.codes.dominance_sites, data.codes.dominance_slope(rows)
    with console.step("in-silico mutagenesis of every site and interaction scores of every pair"):
        importance, scores = [], []
        for j in range(copies):  # each copy's interaction terms are computed once, for both uses
            contributions, valid = _pair_contributions(network, j, candidates[j], data.codes)
            if j <= B:  # the real fit and the site test's permuted copies
                importance.append(network.site_effects(data.x[rows], j, candidates[j][valid], contributions[rows],
                                                       dominance_sites, dominance_slope))
            if j == 0 or j > B:  # the real fit and the interaction-null copies
                scores.append(_pair_scores(contributions, candidates[j][valid], len(pairs), m))
        importance, scores = np.stack(importance), np.stack(scores).astype(np.float32)
    p_site, site_tail = permutation_test(importance[0], importance[1 : B + 1])
    p_pair, pair_tail = permutation_test(scores[0], scores[1:], standardise=False)
    q_pair = bh_qvalues(p_pair)
    deep_signal, deep_role = _deep_signals(data, pairs, p_pair, q_pair, readings["saturated_q_marginal"],
                                           classical["p_saturated"], nulls["saturated"], scan)
    pair_tail["signals"], pair_tail["stand_ins"] = int(deep_signal.max(initial=0)), int((deep_role == STAND_IN).sum())
    return {"importance": importance[0], "p_perm": p_site, "q_perm": bh_qvalues(p_site), "pair_score": scores[0],
            "pair_p_perm": p_pair, "pair_q_perm": q_pair, "pair_signal": deep_signal, "pair_role": deep_role,
            "candidates": candidates[0],
            "site_tail": np.asarray(json.dumps(site_tail)), "pair_tail": np.asarray(json.dumps(pair_tail)),
            "product_p_own": p_product_linear, **readings}


LEAD, STAND_IN, TAG = 1, 2, 3  # a pair's role in a reading's signal (0: none)
ROLES = {LEAD: "lead", STAND_IN: "stand-in", TAG: "tag"}


def leading_claims(discovery: dict) -> np.ndarray:
    """Pairs claimed (q < 0.05) by the deep test or a classical reading other than as a stand-in for its lead or a
    tag of it: one row per interaction the tests claim, with its exact copies (discovery dicts of older runs have no
    roles)."""
    return np.logical_or.reduce(
        [(_clean(discovery[q]) < 0.05) & ~np.isin(discovery.get(f"{test}_role", np.zeros(len(discovery[q]))),
                                                  (STAND_IN, TAG))
         for test, q in (("pair", "pair_q_perm"), ("saturated", "saturated_q"), ("product", "product_q"))])


def _deep_signals(data: _Data, pairs: np.ndarray, p_pair: np.ndarray, q_pair: np.ndarray,
                  q_saturated_marginal: np.ndarray, p_saturated_own: np.ndarray, null,
                  scan=None) -> tuple[np.ndarray, np.ndarray]:
    """Signal number and role of every pair for the deep test, whose claims (q < 0.05) lead one signal each (the
    network takes one candidate per signal) unless one is a tag of another's signal (`two_locus.claims_as_signals`:
    nothing left in the saturated test given the other's table, or claimed by the saturated reading on its own but
    not given the other signals' leads' tables; `null` is that reading's `MainEffectsNull`, `scan` its scanner), with
    their stand-ins as the saturated reading finds them (`two_locus.stand_ins`: significant on its own, and the lead's
    whole table adds nothing to the pair's). `p_pair` and `q_pair` are updated in place: a lead, its exact copies and
    its stand-ins carry the signal's p and q (its strongest claim's); a tag and its copies keep the tag's.

    Why: where an interaction lives in a few individuals, several pairs single out the same ones and fit it about
    equally (own F-test p within a factor of 10-100); the network learns one of them, and which one is close to a
    coin toss. On grid both-recessive cohorts 1022 and 1026 the deep test claimed such a pair (q 7e-6, 2e-9) beside
    the planted one, which the saturated reading found only as a stand-in. A deep claim is a signal; the pairs the
    data cannot tell from its lead are where it may lie, as for the saturated reading (docs/association.md).
    """
    from biolens.stats.two_locus import claims_as_signals, copies_of, one_per_distinct, saturated_p, stand_ins

    which = null.which
    claimed = np.flatnonzero(_clean(q_pair) < 0.05)
    distinct = one_per_distinct(claimed[np.argsort(p_pair[claimed], kind="stable")], which)  # strongest first
    leads, tag_of = claims_as_signals(saturated_p, data.dosage, data.y_model, data.covariates, pairs, distinct, null,
                                      q_saturated_marginal, scan)
    stand_in_for = stand_ins(data.dosage, data.y_model, data.covariates, pairs, leads, q_saturated_marginal,
                             p_saturated_own, which)
    signal, role = _signals(leads, stand_in_for, which)
    for tag, position in tag_of.items():  # a claim that tags a signal's lead: claimed, but not a signal of its own
        same = copies_of(which, tag)
        signal[same], role[same] = position + 1, TAG
        p_pair[same], q_pair[same] = p_pair[tag], q_pair[tag]  # its exact copies are one test with it
    for position, lead in enumerate(leads):  # a signal's evidence is its strongest claim's, whichever leads it
        strongest = min([lead, *(t for t, s in tag_of.items() if s == position)], key=lambda k: p_pair[k])
        p_pair[lead], q_pair[lead] = p_pair[strongest], q_pair[strongest]
    carries = (signal > 0) & (role != TAG)
    lead_of = np.asarray(leads, dtype=np.int64)[signal[carries] - 1]
    p_pair[carries], q_pair[carries] = p_pair[lead_of], q_pair[lead_of]
    return signal, role


def _clean(values) -> np.ndarray:
    """p- or q-values with NaN (no test) read as 1."""
    return np.nan_to_num(np.asarray(values, dtype=np.float64), nan=1.0)


def _signals(leads: list[int], stand_in_for: np.ndarray, which: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Signal number (1-based, in the order the leads were chosen; 0: none) and role of every pair: the leads with
    their exact copies (`which`, as `MainEffectsNull.which`), and the pairs that stand in for them
    (`two_locus.stand_ins`)."""
    from biolens.stats.two_locus import copies_of

    signal, role = np.zeros(len(which), dtype=np.int64), np.zeros(len(which), dtype=np.int64)
    standing_in = stand_in_for >= 0
    signal[standing_in], role[standing_in] = stand_in_for[standing_in] + 1, STAND_IN
    for number, lead in enumerate(leads, start=1):
        same = copies_of(which, lead)
        signal[same], role[same] = number, LEAD
    return signal, role
