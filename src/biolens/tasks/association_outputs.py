"""What an association run writes: variants.tsv, interactions.tsv, metrics.json with the verdict, the figures.

The stages (`tasks/associate.py`) compute; this module orders, reads and words their results: sites by evidence and
clumped, pairs by the tiers of `pair_evidence_order`, lambda_GC in plain words (`inflation_reading`), and the deep
model's prediction against the classical ones with bootstrap intervals (`prediction_metrics`).
"""
from __future__ import annotations

import json
from typing import TYPE_CHECKING

import numpy as np

from biolens.runs import Run, write_csv, write_json
from biolens.tasks.associate import (ROLES, STAND_IN, TAG, UNLINKED_R2, _clean, _discovery_additive_shrinkage,
                                     _discovery_epochs, _one_locus, leading_claims)

if TYPE_CHECKING:
    from biolens.config import AssociateConfig
    from biolens.tasks.associate import _Data


def write_outputs(run: Run, config: AssociateConfig, data: _Data, classical: dict, fine_mapping: dict,
                  crossval: dict, discovery: dict, seconds: float) -> None:
    from biolens.engine.genotype_training import DOMINANCE_MIN_CLASS
    from biolens.report import association_figures as figures
    from biolens.stats import power
    from biolens.stats.linkage import BLOCK_R2, clump, clump_pairs, distinct_patterns

    g = data.genotypes
    maf = g.minor_allele_frequency()
    pip, credible = fine_mapping["pip"], fine_mapping["credible_set"]
    # Evidence: sites in a credible set by their PIP (which site in the LD carries the effect), then the rest by the
    # stronger of the classical and the deep site test (sites acting only through a pair have no additive PIP but a
    # deep score), then importance. Rank: that order clumped at r^2 >= 0.8 (docs/association.md): one row per signal
    # first, the signals' tags after them, each with its clump number.
    evidence = np.lexsort((-discovery["importance"], np.minimum(classical["p_site"], discovery["p_perm"]),
                           -np.where(credible > 0, pip, 0.0)))
    order, clumps = clump(evidence, classical["r2"], BLOCK_R2)
    rank = np.empty(len(order), dtype=int)
    rank[order] = np.arange(1, len(order) + 1)
    rows = [[g.chrom[i], int(g.pos[i]), g.ref[i], g.alt[i], _f(maf[i]), _f(classical["beta"][i]),
             _g(classical["p_site"][i]), _g(classical["q_site"][i]), _f(discovery["importance"][i]),
             _g(discovery["p_perm"][i]), _g(discovery["q_perm"][i]), int(classical["ld_block"][i]), int(rank[i]),
             _f(pip[i]), int(credible[i]) if credible[i] else "", int(clumps[i])]
            for i in order]
    header = ["chrom", "pos", "ref", "alt", "maf", "beta", "p_site", "q_site", "importance", "p_perm", "q_perm",
              "ld_block", "rank", "pip", "credible_set", "clump"]
    write_csv(run.file("variants.tsv"), header, rows, delimiter="\t")

    pairs, score = classical["pairs"], discovery["pair_score"]
    r2_pairs = classical["r2"][pairs[:, 0], pairs[:, 1]]
    linked = r2_pairs >= BLOCK_R2
    evidence = pair_evidence_order(discovery, classical["p_saturated"])
    pair_order, pair_clump = clump_pairs(evidence[~linked[evidence]], pairs, classical["r2"], BLOCK_R2)
    pair_order = np.concatenate([pair_order, evidence[linked[evidence]]])
    pair_rank = np.empty(len(pairs), dtype=int)
    pair_rank[pair_order] = np.arange(1, len(pairs) + 1)
    shown = set(pair_order[: config.pairs_written].tolist())
    for q in (classical["q_epistasis"], discovery["saturated_q"], discovery["product_q"], discovery["pair_q_perm"]):
        shown |= set(np.nonzero(q < 0.05)[0][: config.pairs_written].tolist())
    from biolens.stats.interaction_forms import interaction_forms, minor_counts
    from biolens.stats.two_locus import residualise

    listed = sorted(shown, key=lambda k: pair_rank[k])
    trait = residualise(data.y.astype(np.float64), data.covariates)  # trait units: effects a reader can weigh
    forms = dict(zip(listed, interaction_forms(minor_counts(data.dosage, data.ploidy), trait,
                                               pairs[listed].reshape(-1, 2), data.ploidy)))
    pair_rows = []
    for k in listed:
        a, b = pairs[k]
        form, form_effect, form_share, form_individuals = forms[k]
        pair_rows.append([int(g.pos[a]), int(g.pos[b]), _f(score[k]), _g(discovery["pair_p_perm"][k]),
                          _g(discovery["pair_q_perm"][k]), _f(r2_pairs[k]), int(pair_rank[k]),
                          g.chrom[a], g.chrom[b], _g(classical["p_epistasis"][k]), _g(classical["q_epistasis"][k]),
                          _g(discovery["saturated_p"][k]), _g(discovery["saturated_q"][k]),
                          "yes" if linked[k] else "no", _g(classical["p_saturated"][k]), _g(classical["q_saturated"][k]),
                          int(pair_clump[k]) if pair_clump[k] else "", _g(discovery["product_p"][k]),
                          _g(discovery["product_q"][k]), g.alt[a], g.alt[b],
                          *(_g(discovery[f"{test}_{v}_marginal"][k]) for test in ("saturated", "product") for v in "pq"),
                          form, _f(form_effect), _f(form_share), form_individuals if form else "",
                          *(value for test in ("saturated", "product", "pair")
                            for value in (int(discovery[f"{test}_signal"][k]) or "",
                                          ROLES.get(int(discovery[f"{test}_role"][k]), "")))])
    write_csv(run.file("interactions.tsv"), ["pos_a", "pos_b", "score", "p_perm", "q_perm", "r2_ab", "rank", "chrom_a",
                                             "chrom_b", "p_epistasis", "q_epistasis", "p_saturated", "q_saturated",
                                             "strong_ld", "p_saturated_f", "q_saturated_f", "clump", "p_product",
                                             "q_product", "alt_a", "alt_b", "p_saturated_marginal",
                                             "q_saturated_marginal", "p_product_marginal", "q_product_marginal",
                                             "form", "form_effect", "form_share", "form_individuals",
                                             "signal_saturated", "role_saturated", "signal_product", "role_product",
                                             "signal_deep", "role_deep"],
              pair_rows, delimiter="\t")

    set_members = [np.nonzero(credible == k)[0] for k in range(1, int(credible.max()) + 1)]
    metrics = prediction_metrics(data, crossval, config.seed, int(leading_claims(discovery).sum()))
    site_tail, pair_tail = json.loads(str(discovery["site_tail"])), json.loads(str(discovery["pair_tail"]))
    saturated_tail = json.loads(str(discovery["saturated_tail"]))
    product_tail = json.loads(str(discovery["product_tail"]))
    m = data.x.shape[1]
    metrics.update({
        "n_samples": int(len(data.y)), "n_sites": int(m), "n_pairs": int(len(pairs)),
        "pairs_one_locus": int(_one_locus(data, pairs).sum()),
        "lambda_gc": float(classical["lambda_gc"]), "lambda_gc_unlinked": _none_if_nan(classical["lambda_gc_unlinked"]),
        "lambda_gc_unlinked_left": _none_if_nan(fine_mapping.get("lambda_gc_unlinked_left", np.nan)),
        "lambda_gc_unlinked_left_chance": _none_if_nan(fine_mapping.get("lambda_gc_unlinked_left_chance", np.nan)),
        # claimed interacting pairs whose genotype tables were covariates beside the lead sites (session 66)
        "lambda_gc_unlinked_left_pairs": int(fine_mapping.get("lambda_left_given_pairs", 0)),
        "fine_mapping_fit_weights": [round(float(w), 4) for w in fine_mapping["mode_weights"]],
        "seconds": round(seconds, 1), "trait_kind": data.kind,
        "n_cases": int(data.y.sum()) if data.kind == "binary" else None,
        "permutations": config.permutations, "folds": config.folds, "epochs": int(crossval["epochs"]),
        "discovery_epochs": _discovery_epochs(crossval),
        "discovery_additive_shrinkage": _discovery_additive_shrinkage(data.kind),
        "pair_weights_settled": True,  # for either trait kind since session 53 (genotype_training.settle_pair_lasso)
        # the network's main part holds the dominance codes of sites with this many individuals in each genotype class
        # (session 56, `_network_inputs`; runs before lack the key)
        "network_dominance": DOMINANCE_MIN_CLASS,
        "sites_q05_classical": int((classical["q_site"] < 0.05).sum()),
        "sites_q05_deep": int((discovery["q_perm"] < 0.05).sum()),
        "pairs_q05_classical": int((classical["q_epistasis"] < 0.05).sum()),
        "pairs_q05_saturated": int((discovery["saturated_q"] < 0.05).sum()),
        "pairs_q05_saturated_marginal": int((discovery["saturated_q_marginal"] < 0.05).sum()),
        "pairs_q05_product_marginal": int((discovery["product_q_marginal"] < 0.05).sum()),
        "pairs_q05_saturated_f": int((classical["q_saturated"] < 0.05).sum()),
        "pairs_q05_product": int((discovery["product_q"] < 0.05).sum()),
        "pairs_q05_deep": int((discovery["pair_q_perm"] < 0.05).sum()),
        "signals_saturated": int(discovery["saturated_signal"].max(initial=0)),
        "stand_ins_saturated": int((discovery["saturated_role"] == STAND_IN).sum()),
        "signals_product": int(discovery["product_signal"].max(initial=0)),
        "signals_deep": int(discovery["pair_signal"].max(initial=0)),
        "stand_ins_deep": int((discovery["pair_role"] == STAND_IN).sum()),
        "tags_deep": int((discovery["pair_role"] == TAG).sum()),
        "ld_blocks": int(classical["ld_block"].max()),
        "credible_sets": [[int(g.pos[i]) for i in members] for members in set_members],
        "credible_set_distinct": [distinct_patterns(members, classical["r2"]) for members in set_members],
        "site_test_tail": site_tail, "pair_test_tail": pair_tail,
        "saturated_test_tail": saturated_tail,
        "site_q_floor": _q_floor(site_tail, m), "pair_q_floor": _q_floor(pair_tail, len(pairs)),
        "saturated_q_floor": _q_floor(saturated_tail, saturated_tail["distinct_pairs"]),
        "product_test_tail": product_tail, "product_q_floor": _q_floor(product_tail, product_tail["distinct_pairs"]),
        "effective_tests": _none_if_nan(classical.get("effective_tests", np.nan)),
        "pair_scans": json.loads(str(classical["pair_scan_engine"])) if "pair_scan_engine" in classical else None,
        "inflation_reading": inflation_reading(float(classical["lambda_gc"]), classical["lambda_gc_unlinked"],
                                               int((classical["q_site"] < 0.05).sum()), data.covariate_columns,
                                               float(classical.get("effective_tests", m)),
                                               float(classical.get("lambda_gc_chance", np.nan)),
                                               float(fine_mapping.get("lambda_gc_unlinked_left", np.nan)),
                                               float(fine_mapping.get("lambda_gc_unlinked_left_chance", np.nan)),
                                               int(fine_mapping.get("lambda_left_given_pairs", 0))),
    })
    metrics["detectable"] = power.what_can_be_detected(len(data.y), metrics["effective_tests"] or m,
                                                       saturated_tail["distinct_pairs"])
    metrics["detectable_reading"] = power.reading(metrics["detectable"], data.kind == "binary")
    write_json(run.file("metrics.json"), metrics)
    figures.manhattan(g.pos, classical["p_site"], discovery["p_perm"], discovery["importance"],
                      run.path / "figures" / "manhattan.png", pip=pip, chrom=g.chrom)
    figures.qq(classical["p_site"], run.path / "figures" / "qq.png")
    figures.ld_map(classical["r2"], g.pos, run.path / "figures" / "ld_map.png", chrom=g.chrom)
    figures.interaction_map(pairs, score, g.pos, m, run.path / "figures" / "interactions.png",
                            saturated=classical["p_saturated"], chrom=g.chrom)


def pair_evidence_order(discovery: dict, p_saturated_own: np.ndarray) -> np.ndarray:
    """Pairs, best evidence first, for interactions.tsv (clumped after).

    Four tiers. First the claims: q < 0.05 by the deep, the saturated or the product test (all three read against
    the same main-effects null, so their p-values are on one footing; a pair the network never took as a candidate
    still heads the table when a classical test sees it), by the smallest p. Then the pairs claimed only as stand-ins
    for a signal's lead (deep or saturated; `two_locus.stand_ins`: the data fit the signal as well with them) or as
    its tags (deep; `two_locus.claims_as_signals`), so that the first rows show one pair per signal. Then the pairs
    that reach q < 0.05 on their own but not given the claims (the stepwise reading's other pairs of a claimed
    signal), by their own reading's p: with little recombination the pair that leads a signal is often a partial tag
    of the causal pair, which the data cannot tell apart, and the causal pair then had sat behind every unclaimed
    network candidate (rows 20-27 at marginal q 1e-8 to 1e-10 on two both-recessive cohorts). Then the rest by the
    smallest p. Ties (strong pairs all reach the Pareto tail's end, p = 1e-300) are broken by the classical tests'
    own p-values, then the deep score."""
    either = np.minimum.reduce([_clean(discovery["pair_p_perm"]), _clean(discovery["saturated_p"]),
                                _clean(discovery["product_p"])])
    claimed = np.minimum.reduce([_clean(discovery[key]) for key in ("pair_q_perm", "saturated_q", "product_q")]) < 0.05
    leading = leading_claims(discovery)
    marginal_p = np.minimum(_clean(discovery["saturated_p_marginal"]), _clean(discovery["product_p_marginal"]))
    marginal = ~claimed & (np.minimum(_clean(discovery["saturated_q_marginal"]),
                                      _clean(discovery["product_q_marginal"])) < 0.05)
    tier = np.where(leading, 0, np.where(claimed, 1, np.where(marginal, 2, 3)))
    own = np.minimum(_clean(p_saturated_own), _clean(discovery["product_p_own"]))
    return np.lexsort((-np.asarray(discovery["pair_score"]), own, np.where(marginal, marginal_p, either), tier))


def _none_if_nan(value) -> float | None:
    value = float(value)
    return round(value, 4) if np.isfinite(value) else None


def _q_floor(tail: dict, tests: int) -> float | None:
    """The smallest BH q one lone hit can reach: resolution x tests with plain permutations; none with the tail model."""
    return None if tail.get("method") != "empirical" else min(1.0, float(tail["resolution"]) * tests)


def inflation_reading(overall: float, unlinked, hits: int, covariates: list[str], effective: float,
                      shuffled: float = float("nan"), left: float = float("nan"),
                      left_chance: float = float("nan"), pairs_given: int = 0) -> str:
    """lambda_GC in plain words: chance (few haplotype clades), LD with the hits in one region, or stratification.

    shuffled: the 95% quantile of lambda_GC with the trait shuffled against the genotypes (this region's own LD);
    lambda up to it is read as chance, not inflation. Runs checkpointed before it existed fall back to the quantile
    for `effective` independent tests (the region's effective number of independent sites).
    left, left_chance: lambda_GC at the sites far from every hit with the lead site of each signal as a covariate,
    and its own chance bound (`_inflation_left`): what decides "looks like stratification" when there are hits.
    Runs checkpointed before it existed judge `unlinked` against `shuffled` instead. pairs_given: claimed
    interacting pairs whose genotype tables were covariates too (`inflation_left_given_pairs`).
    """
    from biolens.stats.regression import inflation_by_chance

    unlinked, left = float(unlinked), float(left)
    by_shuffling = np.isfinite(shuffled)
    chance = max(1.1, shuffled if by_shuffling else inflation_by_chance(effective))
    how = "in 95% of shuffles of the trait" if by_shuffling else "by chance"
    if overall <= chance:
        return (f"lambda_GC = {overall:.2f}: no sign of inflation (the sites carry about {effective:.0f} independent "
                f"signals; up to {chance:.2f} is expected {how}).")
    structure = any(c.startswith("PC") for c in covariates)
    advice = ("" if structure else " Give ancestry covariates (--covariates) or genome-wide markers "
              "(--structure-genotypes VCF) to correct for it, and trust the classical column with care.")
    given = "the lead site of each signal as a covariate" + (
        "" if not pairs_given else " (and the genotype table of the interacting pair claimed)" if pairs_given == 1
        else f" (and the genotype tables of the {pairs_given} interacting pairs claimed)")
    if hits and np.isfinite(left) and left > max(1.1, left_chance):
        return (f"warning: lambda_GC = {overall:.2f}, and {left:.2f} at sites in weak LD (r² < {UNLINKED_R2}) with "
                f"every hit, tested with {given} (up to "
                f"{max(1.1, left_chance):.2f} there {how}): inflation far from the hits looks like population "
                f"stratification.{advice}")
    if not np.isfinite(left) and np.isfinite(unlinked) and unlinked > chance:  # a run checkpointed before `left`
        return (f"warning: lambda_GC = {overall:.2f}, and {unlinked:.2f} at sites in weak LD (r² < {UNLINKED_R2}) with "
                f"every hit: inflation far from the hits looks like population stratification.{advice}")
    where = (f" (sites in weak LD with every hit: {unlinked:.2f}"
             + (f"; {left:.2f} with {given}, up to {max(1.1, left_chance):.2f} "
                f"there {how}" if np.isfinite(left) else "") + ")") if np.isfinite(unlinked) else ""
    if hits:
        caveat = ("" if structure else " If the individuals come from several populations, differences between them "
                  "raise many sites of one region in the same way and only genome-wide markers tell the two apart: "
                  "give ancestry covariates or --structure-genotypes VCF to rule stratification out.")
        return (f"lambda_GC = {overall:.2f}{where}: in one small region most sites are in LD with the associated sites, "
                "so their statistics rise with them: lambda_GC here mostly measures LD with the hits; the credible "
                f"sets say which sites carry the effect.{caveat}")
    return (f"warning: lambda_GC = {overall:.2f} with no site at q < 0.05 (up to {chance:.2f} is expected {how} "
            f"over about {effective:.0f} independent signals): inflation without a hit suggests population "
            "stratification or a polygenic background; consider ancestry covariates or --structure-genotypes.")


def _f(value) -> str:
    return "" if not np.isfinite(value) else f"{float(value):.4g}"


def _g(value) -> str:
    return "" if not np.isfinite(value) else f"{float(value):.3e}"


def bootstrap_scores(kind: str, y: np.ndarray, predicted: np.ndarray) -> np.ndarray:
    """AUC (binary) or R^2 of each bootstrap draw (rows of y and predicted, draws x individuals) at once: the same
    values as scikit-learn's `roc_auc_score` (Mann-Whitney's U from mid-ranks: ties count half, as its trapezoids
    do) and `r2_score`, without 3,000 calls that took 4 s of a 1,000-individual run (docs/performance.md,
    session 55)."""
    from scipy.stats import rankdata

    if kind == "binary":
        positive = y == 1
        cases = positive.sum(1)
        ranks = rankdata(predicted, axis=1)
        u = np.where(positive, ranks, 0).sum(1) - cases * (cases + 1) / 2
        return u / (cases * (y.shape[1] - cases))
    residual = ((y - predicted) ** 2).sum(1)
    total = ((y - y.mean(1, keepdims=True)) ** 2).sum(1)
    return 1 - residual / total


def prediction_metrics(data: _Data, crossval: dict, seed: int, claimed_pairs: int | None = None) -> dict:
    """Out-of-fold AUC or R^2 of the deep model, the additive model and the additive + dominance model, with 95%
    bootstrap CIs, and the deep model's paired differences from both.

    A deep model above the additive one may only have learned dominance (carrier or homozygote effects), which a
    classical model with each site's dominance code captures as well; and in one region other sites' dominance can
    describe much of a pair's interaction (a one-carrier pair cohort of benchmarks/association_foreign.py, seed 5003:
    deep 0.108, additive 0.018, additive + dominance 0.085). The gain is read as interactions only when the deep model
    beats that model too; otherwise the verdict says prediction cannot tell the two apart, and how many pairs the
    pair tests claim (`claimed_pairs`, when known; stand-ins and the deep test's tags not counted: they are other
    pairs the data cannot tell from a claim, or that a claim explains, not more interactions).
    """
    name = "auc" if data.kind == "binary" else "r2"
    y = data.y_model
    predictions = {"deep": crossval["oof_deep"], "additive": crossval["oof_additive"],
                   "main_effects": crossval["oof_main_effects"]}
    rng = np.random.default_rng(seed)
    draws, rows = [], max(1, 2_000_000 // len(y))  # draws scored at once: memory bounded for large cohorts
    for start in range(0, 1000, rows):
        idx = rng.integers(0, len(y), (min(rows, 1000 - start), len(y)))  # the same draws as one at a time
        if data.kind == "binary":
            idx = idx[~(y[idx] == y[idx][:, :1]).all(1)]  # a draw of one class has no AUC
        draws.append(np.stack([bootstrap_scores(data.kind, y[idx], predicted[idx])
                               for predicted in predictions.values()], 1))
    draws = np.concatenate(draws)
    ci = lambda v: [round(float(np.percentile(v, 2.5)), 4), round(float(np.percentile(v, 97.5)), 4)]  # noqa: E731
    value = {model: float(bootstrap_scores(data.kind, y[None], predicted[None])[0])  # the whole sample, one "draw"
             for model, predicted in predictions.items()}
    metrics = {}
    for k, model in enumerate(predictions):
        metrics |= {f"{name}_{model}": round(value[model], 4), f"{name}_{model}_ci95": ci(draws[:, k])}
    metrics |= {f"{name}_difference": round(value["deep"] - value["additive"], 4),
                f"{name}_difference_ci95": ci(draws[:, 0] - draws[:, 1]),
                f"{name}_beyond_main_effects": round(value["deep"] - value["main_effects"], 4),
                f"{name}_beyond_main_effects_ci95": ci(draws[:, 0] - draws[:, 2]),
                f"{name}_dominance_over_additive": round(value["main_effects"] - value["additive"], 4),
                f"{name}_dominance_over_additive_ci95": ci(draws[:, 2] - draws[:, 1]), "metric": name}
    label = "AUC" if name == "auc" else "R²"

    def compared(other: str, key: str, first: str = "deep") -> str:
        low, high = metrics[f"{name}_{key}_ci95"]
        return (f"{label} {value[first]:.3f} vs {value[other]:.3f}, difference {value[first] - value[other]:+.3f} "
                f"(95% CI {low:+.3f} to {high:+.3f})")

    # the deep model no better than the additive one, yet single sites' dominance predicts beyond additive effects:
    # non-additive effects exist, and the deep model did not use them better than a classical model does
    dominance_seen = (f" A classical model with every site's dominance as well as its additive effect does predict "
                      f"better than the additive one ({compared('additive', 'dominance_over_additive', 'main_effects')}): "
                      f"some sites act through dominance (a carrier or a homozygote effect), not additively."
                      if metrics[f"{name}_dominance_over_additive_ci95"][0] > 0 else "")

    low, high = metrics[f"{name}_difference_ci95"]
    numbers = f"{compared('additive', 'difference')}, {crossval['fold'].max() + 1}-fold cross-validation"
    if low > 0:
        dominance = compared("main_effects", "beyond_main_effects")
        pair_tests = ("the pair tests below say whether any pair acts together." if claimed_pairs is None else
                      f"the pair tests below claim {claimed_pairs} pair(s) at q < 0.05: where this study sees "
                      "interactions." if claimed_pairs else "no pair reaches q < 0.05 in the pair tests below.")
        haploid = data.ploidy == 1  # no dominance: the additive model is the main effects'
        metrics["verdict"] = (
            f"The deep model predicts the trait better than the additive model ({numbers}). "
            + ("With one allele per individual there is no dominance, so the additive model holds every site's own "
               "effect: the gain is sites acting together, which no site's own effect describes; "
               f"{pair_tests}" if haploid else
               f"It also beats a classical model with every site's dominance as well as its additive effect "
               f"({dominance}): part of its gain is interactions between sites, which no site's own effects describe."
               if metrics[f"{name}_beyond_main_effects_ci95"][0] > 0 else
               f"A classical model with every site's dominance as well as its additive effect predicts as well or "
               f"better ({dominance}): single sites' dominance (a carrier or a homozygote effect) describes the same gain, "
               f"so prediction alone cannot tell dominance from interactions here (in one region other sites' "
               f"dominance can stand in for a pair); {pair_tests}"))
    elif high < 0:
        metrics["verdict"] = (f"The additive model predicts the trait better than the deep model ({numbers})" + (
            f": the deep model found no effects beyond additive ones that it could use.{dominance_seen}" if dominance_seen
            else ": there is no sign of effects beyond additive ones that the deep model could use."))
    else:
        metrics["verdict"] = (f"The deep and additive models predict the trait equally well within uncertainty ({numbers})" + (
            f": the deep model adds no predictive power.{dominance_seen}" if dominance_seen else
            ": no evidence that non-additive effects add predictive power at this sample size."))
    return metrics
