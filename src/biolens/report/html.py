"""The self-contained HTML report of a run (figures embedded), rebuilt from the run folder alone."""
from __future__ import annotations

import base64
import math
from pathlib import Path

from jinja2 import Environment, PackageLoader, select_autoescape

from biolens.readers.tables import is_table
from biolens.runs import Run, write_text

_env = Environment(loader=PackageLoader("biolens", "report/templates"), autoescape=select_autoescape(["html", "j2"]))
_env.filters["pct"] = lambda v: "–" if v is None else f"{100 * v:.1f}%"
_env.filters["ci"] = lambda v: "–" if not v else f"{100 * v[0]:.1f}–{100 * v[1]:.1f}%"


def _embed(path: Path) -> str | None:
    if not path.exists():
        return None
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode("ascii")


def _network(info: dict, fallback: str) -> str:
    """What the trained network is, as read off the saved model (models/describe.py), else `fallback`."""
    summary = info.get("model_summary") or {}
    return f"a network of {summary['text']}" if summary.get("text") else fallback


def image_methods(info: dict, metrics: dict) -> str:
    """A Methods paragraph with the exact settings, versions and seed, ready to adapt for a paper."""
    config, versions = info["config"], info.get("versions", {})
    pre = info.get("pretraining") or {}
    start = (f" whose convolutional layers started from the encoder of the earlier biolens run {pre.get('run')}"
             if pre.get("source") == "init_from" else
             f" whose convolutional layers were first trained without labels by SimCLR self-supervised learning on "
             f"{pre.get('n_images')} training, validation and unlabelled images (never the test images; "
             f"{pre.get('epochs_run')} epochs, NT-Xent temperature {pre.get('temperature')})"
             if pre.get("source") == "pretrained here" else " trained from random initialisation")
    model = (_network(info, "a compact convolutional network") + start
             if config["backbone"] == "compact" else f"a {config['backbone']} backbone (weights: {info.get('weights')}) "
             "with a new classification head (" + _network(info, "").removeprefix("a network of ") + ")")
    grouping = (f"grouped by '{config['group_column']}' so that no group appears in two splits"
                if config.get("group_column") else "at random (no grouping information was given)")
    return (
        f"Images were classified with biolens {versions.get('biolens', '')} (TensorFlow {versions.get('tensorflow', '')}, "
        f"Keras {versions.get('keras', '')}). Images were resized to {info['image_size']}x{info['image_size']} pixels. "
        f"Data were split into training ({metrics.get('n_train')} images), validation ({metrics.get('n_val')}) and test "
        f"({metrics.get('n_test')}) sets, stratified by class and {grouping}. We used {model}, optimised with AdamW "
        f"(peak learning rate {info.get('learning_rate') or config['learning_rate']:.2g}, one warm-up epoch then cosine decay, weight decay 1e-4, batch size "
        f"{info.get('batch_size', config['batch_size'])}) for at most {config['epochs']} epochs"
        f"{' with class-balanced loss weights' if config['class_weights'] else ''}{_averaging(info)}"
        f"{'; training images were augmented with random flips, 90-degree rotations and small brightness, contrast and colour changes' if config['augment'] else ''}. "
        f"The epoch with the best validation balanced accuracy was kept (epoch {metrics.get('best_epoch')}; early stopping "
        f"patience {config['patience']}). Probabilities were calibrated by temperature scaling on the validation set "
        f"(T = {metrics.get('temperature', 1):.2f}) and predictions flagged as unsure by split-conformal prediction "
        f"(alpha = {config['conformal_alpha']}). The test set was used once, after training. Confidence intervals are "
        f"95% percentile bootstrap intervals ({metrics.get('bootstrap', {}).get('resamples', 1000)} resamples of "
        f"{'groups' if metrics.get('bootstrap', {}).get('unit') == 'group' else 'images'}){_exact_note(metrics)}."
        f"{_classical_baseline(metrics, 'images')} Random seed {info['seed']}."
    )


def _exact_note(metrics: dict) -> str:
    """Where the test set held no error the bootstrap interval is a point; evaluation then gave exact intervals."""
    blind = metrics.get("bootstrap", {}).get("exact_intervals")
    if not blind:
        return ""
    return ("; where the test set held no error, so that every resample scores the same, the interval is the exact "
            f"Clopper-Pearson one instead ({', '.join(blind)}; balanced accuracy: the mean of the classes' bounds)")


def _fits_averaged(metrics: dict) -> str:
    weights = metrics.get("fine_mapping_fit_weights") or [1.0]
    if len(weights) == 1:
        return "; here one fit held all the weight"
    return f"; here {len(weights)} fits, the best weighted {weights[0]:.2f}"


def _scan_engine(metrics: dict) -> str:
    engine = metrics.get("pair_scans") or {}
    if engine.get("engine") != "dask":
        return ""
    return (f" (both scans in blocks of pairs on a Dask cluster: {engine.get('workers')} workers, "
            f"{engine.get('threads')} threads)")


def sequence_methods(info: dict, metrics: dict) -> str:
    """Methods paragraph of a sequence classification run."""
    config, versions = info["config"], info.get("versions", {})
    grouping = (f"grouped by '{config['group_column']}' so that no group appears in two splits"
                if config.get("group_column") else "keeping identical sequences in one split")
    strands = ("both strands (the network reads the sequence and its reverse complement with shared weights and keeps "
               "the stronger response)" if config["both_strands"] else "the given strand only")
    seeds = info.get("kmer_seeds") or []
    seeding = (f" {len(seeds)} first-layer filters started from words enriched in one class's training sequences "
               "(DREME-style: exact 6- and 8-mers widened into IUPAC words; sequences holding a word compared with the "
               "other classes' and with a first-order Markov background of the class's own composition, "
               f"two-proportion z >= 5 for both, {'either strand' if config['both_strands'] else 'the given strand'}; "
               "each word's sites and 4 bases around them erased before the next was sought; up to "
               f"{config.get('kmer_seeds')} per class: " + ", ".join(f"{s['word']} ({s['favours']})" for s in seeds)
               + ")" + (f", held as they started for the first {info['seeds_held_epochs']} epochs while the layers "
                        "above learned to read them" if info.get("seeds_held_epochs") else "")
               + "; the other filters started random." if seeds else "")
    return (
        f"Sequences were classified with biolens {versions.get('biolens', '')} (TensorFlow {versions.get('tensorflow', '')}, "
        f"Keras {versions.get('keras', '')}). Sequences were one-hot encoded (ambiguous bases as zeros) over their central "
        f"{info['length']} bases, shorter ones padded equally on both sides. Data were split into training "
        f"({metrics.get('n_train')} sequences), validation ({metrics.get('n_val')}) and test ({metrics.get('n_test')}) sets, "
        f"stratified by class and {grouping}. A 1-D convolutional network ({config['filters']} first-layer filters of "
        f"{config['filter_width']} bases; {_network(info, 'see model.keras').removeprefix('a network of ')}) read {strands}.{seeding} It was trained from random "
        f"initialisation with AdamW (peak learning rate {info.get('learning_rate') or config['learning_rate']:.2g}, one warm-up epoch then cosine decay, "
        f"weight decay 1e-4, batch size {info.get('batch_size', config['batch_size'])}) for at most {config['epochs']} "
        f"epochs{' with class-balanced loss weights' if config['class_weights'] else ''}{_averaging(info)}; the epoch with the best "
        f"validation balanced accuracy was kept (epoch {metrics.get('best_epoch')}; early stopping patience "
        f"{config['patience']}). Probabilities were calibrated by temperature scaling on the validation set (T = "
        f"{metrics.get('temperature', 1):.2f}) and predictions flagged as unsure by split-conformal prediction (alpha = "
        f"{config['conformal_alpha']}). The test set was used once, after training. Confidence intervals are 95% "
        f"percentile bootstrap intervals ({metrics.get('bootstrap', {}).get('resamples', 1000)} resamples"
        f"{_exact_note(metrics)}). Motifs: for "
        f"each first-layer filter, the strongest window of every training and validation sequence on either strand was "
        f"kept when it reached half of the filter's maximum activation, and the bases of these windows form the motif's "
        f"frequency matrix (flanks under 0.3 bits trimmed); importance is the rise in cross-entropy when the filter's output "
        f"is replaced by its mean; filters that learned the same motif were merged and knocked out together. Each motif "
        f"was also scanned over random sequences drawn from its class's own first-order Markov chain (same base and "
        f"dinucleotide frequencies); motifs whose best match per sequence was stronger in the class's sequences than in "
        f"the random ones (one-sided Mann-Whitney z >= 3.1 and AUC >= 0.556) are listed first within their class."
        f"{_known_motifs(metrics)}{_classical_baseline(metrics, 'sequences')} Random seed {info['seed']}."
    )


def _known_motifs(metrics: dict) -> str:
    """The Methods sentence on naming learned motifs by known ones (runs since 2026-12-07, session 62)."""
    known = metrics.get("motifs", {}).get("known")
    if not known or known.get("database", "none") == "none":
        return ""
    return (f" Motifs beyond composition were compared with {known['database']} by Tomtom (Gupta et al. 2007; "
            f"memelite, Euclidean distance, complete scores, either strand); a known motif names a learned one when "
            f"Tomtom's q-value (Benjamini-Hochberg over the database) is at most {known['max_q']} and, at the best shift "
            f"and strand, the aligned columns' base distributions correlate at {known['min_agreement']} or more on "
            f"average (weighted by information) over an overlap holding at least {known['min_coverage']:.0%} of the "
            f"less informative matrix's information ({known['named']} of {known['compared']} named)"
            + (f"; as most named motifs' best matches are factors of {known['taxon_first']}, a motif that also "
               f"matches other taxa's factors is named first by its best match among those of {known['taxon_first']}"
               if known.get("taxon_first") else "") + ".")


def _classical_baseline(metrics: dict, unit: str) -> str:
    """The Methods sentence on the classical comparator (runs since 2026-12-07)."""
    base = metrics.get("classical_baseline")
    if not base:
        return ""
    length = (" A logistic regression on the log of each sequence's length (called bases) measured what length "
              "alone tells." if unit == "sequences" else "")
    return (f" As a classical baseline, {base['model']} ({base['features']} features; L2, class-balanced, strength "
            f"C = {base['strength_c']:g} chosen by validation balanced accuracy among 0.001-10) was fitted on the same "
            f"training {unit} and scored on the same test {unit}; the difference in balanced accuracy has a paired "
            f"bootstrap interval over the test "
            f"{'groups' if base.get('resampled') == 'group' else unit}.{length}")


def _averaging(info: dict) -> str:
    """The Methods clause on the weight averages that were validated and kept (runs since 2026-12-04)."""
    momentum = info.get("weight_average_momentum")
    return (f"; the exponential moving average of the weights (momentum {momentum:g}), with batch-normalisation "
            "statistics re-estimated for it on 256 training inputs, was validated after each epoch and kept"
            if momentum else "")


def _discovery_epochs(metrics: dict) -> str:
    chosen, trained = metrics["epochs"], metrics.get("discovery_epochs")  # runs before 2026-12-06 lack the second
    if trained is None or trained == chosen:
        return f"{chosen} epochs"
    return f"{trained} epochs (the cross-validated {chosen}, raised to the floor at which the pair terms grow)"


def _discovery_additive_penalty(metrics: dict) -> str:
    shrinkage = metrics.get("discovery_additive_shrinkage", 1)  # runs before 2026-12-06 lack it: they used 1
    if shrinkage == 1:
        return ""
    part = "main part" if metrics.get("network_dominance") else "additive part"
    return (f", its {part} penalised {shrinkage:g} times as strongly, so that the sites tagging an "
            f"interaction's carriers do not take it from the pair term")


def _network_main_part(metrics: dict) -> str:
    if metrics.get("network_dominance"):  # runs before session 56 (2026-12-06) lack it: their main part was additive
        return ("an additive term for every site and a dominance term for every site with at least "
                f"{metrics['network_dominance']} individuals in each genotype class")
    return "additive term"


def _network_penalty_source(metrics: dict) -> str:
    if metrics.get("network_dominance"):
        return ("additive and dominance terms set by the cross-validated additive model and the model of every "
                "site's additive and dominance effects")
    return "additive part set by the cross-validated additive model"


def _settled_pairs(metrics: dict) -> str:
    if not metrics.get("pair_weights_settled"):
        # runs before 2026-12-06 lack it: a quantitative trait's weights were settled since session 47, a binary
        # trait's were not, and the clause is left out rather than guessed
        return ""
    return ("; after each refit its pair weights were set to the exact group-lasso solution of its loss given the "
            "rest of the network (block coordinate descent), so a pair the penalty drops scores exactly zero")


def _imputation(notes: dict) -> str:
    if not notes.get("imputed_calls"):
        return ""
    how = notes.get("imputation", "the site mean")  # runs before 2026-12-07 imputed with the site mean
    return f" ({notes['imputed_calls']} missing calls imputed with {how})"


def _region(config: dict) -> str:
    return f" in {config['region']} of {Path(config['genotypes']).name}" if config.get("region") else ""


def _dosage(notes: dict) -> str:
    if str(notes.get("format", "")).startswith("PLINK 2"):
        return "ALT dosage of the PLINK 2 .pgen (each ALT allele of a multi-allelic variant its own site)"
    if str(notes.get("format", "")).startswith("PLINK"):
        return "dosage of allele 1 of the PLINK .bim (the alt column of variants.tsv)"
    if str(notes.get("format", "")).startswith("BGEN"):
        return "expected dosage of each allele after the first, from the BGEN's genotype probabilities"
    return "alt-allele dosage"


def association_methods(info: dict, metrics: dict) -> str:
    config, versions = info["config"], info.get("versions", {})
    kind = metrics.get("trait_kind", info.get("trait_kind"))
    test = "logistic" if kind == "binary" else "linear"
    adjusted = list(config.get("covariates") or [])
    if config.get("structure_genotypes"):
        markers = info.get("data_notes", {}).get("structure_markers", "")
        adjusted.append(f"the top {config.get('structure_pcs', 5)} principal components of genome-wide markers "
                        f"({Path(config['structure_genotypes']).name}{': ' + markers if markers else ''})")
    covariates = f" adjusted for {', '.join(adjusted)}" if adjusted else ""
    return (
        f"Association with {config['trait']} was analysed with biolens {versions.get('biolens', '')} (TensorFlow "
        f"{versions.get('tensorflow', '')}, Keras {versions.get('keras', '')}, scikit-learn {versions.get('scikit-learn', '')}) "
        f"in {metrics['n_samples']} individuals and {metrics['n_sites']} variant sites with minor allele frequency >= "
        f"{config['min_maf']}{_region(config)}{_imputation(info.get('data_notes', {}))}. Each site was tested by {test} regression of the "
        f"trait on the {_dosage(info.get('data_notes', {}))}{covariates} (Wald test); q-values are "
        f"Benjamini-Hochberg; genomic inflation "
        f"lambda_GC = {metrics['lambda_gc']:.2f}. Linkage disequilibrium was measured as the squared dosage correlation; "
        f"LD blocks join sites connected by r^2 >= 0.8. Fine-mapping used SuSiE (sum of single effects, L = 10, prior "
        f"variances estimated, IBSS with refinement and also started from the three best-fitting distinct sets of each "
        f"size 1-5; Wang et al. 2020) on the covariate-adjusted trait, the distinct fits reached averaged by their "
        f"evidence lower bounds (as varbvs averages its fits; Carbonetto & Stephens 2012"
        f"{_fits_averaged(metrics)}): 95% credible sets with purity |r| >= 0.5 and posterior inclusion probabilities. "
        f"Sites were ranked by PIP within credible sets, "
        f"then by the smaller of the classical and the deep site p-value, and the ranking was clumped at r^2 >= 0.8 as "
        f"PLINK --clump does (index sites first, their tags after). All {metrics['n_pairs']} site pairs were tested "
        f"for epistasis with a dosage-product term (y ~ covariates + a + b + a*b, as PLINK --epistasis) and with the "
        f"saturated two-locus test (F test of the full 3 x 3 genotype table against both sites' main effects, up to "
        f"4 df, on the covariate-adjusted trait), which detects interactions of any form{_scan_engine(metrics)}; its "
        f"p-values were read against the same test on {config['permutations']} traits simulated from the main-effects "
        f"model below (every pair per trait; each pair against the null pairs of its LD class, r^2 between its two "
        f"sites below 0.05, 0.05-0.2, 0.2-0.5, 0.5-0.8 or above, since linked sites can together mimic a causal "
        f"site's main effect and unlinked ones cannot; pairs of sites with identical genotypes tested and counted by "
        f"Benjamini-Hochberg once), because in one region the F "
        f"distribution's own p-value also counts pairs that merely tag a causal site (reported as p_saturated_f); "
        f"the product term was read the same way (its linear Wald test on the covariate-adjusted trait, p_product; "
        f"PLINK's own p is p_epistasis). "
        f"A genotype network ({_network_main_part(metrics)}; for each of {config['candidate_pairs']} candidate "
        f"site pairs, an orthonormal basis of what its 3 x 3 genotype table adds to both sites' additive and "
        f"dominance effects (the four Cockerham interaction terms made orthogonal to them), with a group-lasso "
        f"penalty per pair; candidates were the pairs with the smallest "
        f"saturated-test p-value read within their LD class against the main-effects traits, screened over all pairs "
        f"and pruned so that no two candidates tag each other's sites at r^2 >= 0.5 or fit the same part of the trait "
        f"at r^2 >= 0.5; a "
        f"16-unit tanh layer, which its L1 penalty keeps near zero, so the learned interactions are the pair terms; "
        f"L2 penalty of the {_network_penalty_source(metrics)}, Adam) was compared with a "
        f"penalised additive {test} model, and with one given every site's dominance code as well (the classical "
        f"model of main effects), on the same {config['folds']} cross-validation folds (the epoch count minimising "
        f"the validation loss averaged over folds, on inner 15% validation splits); confidence intervals are 95% "
        f"percentile bootstrap intervals over individuals. The network was then refitted on all individuals for "
        f"{_discovery_epochs(metrics)}{_discovery_additive_penalty(metrics)}{_settled_pairs(metrics)}. "
        f"Site importance is the mean absolute "
        f"change of the prediction for a one-SD change of the dosage (in-silico mutagenesis) plus the site's learned "
        f"interaction terms; a pair's score is the standard deviation over individuals of its learned interaction "
        f"term. "
        f"Significance: site importances against {config['permutations']} refits with the phenotype (and covariates) "
        f"permuted; pair scores against {config['permutations']} refits on phenotypes simulated from the main-effects "
        f"model (additive and dominance codes; parametric bootstrap for a binary trait, permuted residuals for a "
        f"quantitative one), so that main effects do not masquerade as interactions; candidate-pair screening was "
        f"repeated inside every refit. Empirical p-values pool "
        f"the null scores of all sites (pairs) and refits; p-values beyond their resolution come from a generalised "
        f"Pareto fit to the 250 largest null scores when a Cramer-von Mises test accepts it (Knijnenburg et al. 2009); "
        f"q-values are Benjamini-Hochberg. The saturated and the product readings counted their claims once per "
        f"signal by stepwise conditional testing: the strongest pair that no other strong pair explains led a signal, "
        f"its whole 3 x 3 genotype table was added as a covariate, every pair was tested again, and so on until no "
        f"pair was left at q < 0.05; the deep test's claims led one signal each, except a claim with evidence of "
        f"its own in the saturated test (p < 0.05) and none left given another claim's table (or the other way "
        f"round), or one the saturated reading claimed on its own but not given the other deep leads' tables, "
        f"which was counted as a tag of that claim's signal; a pair significant on its own in the "
        f"saturated test with whose table in a saturated or deep lead's place that lead had nothing left (p >= 0.05) "
        f"was claimed as a stand-in for its signal. "
        f"Pairs claimed at q < 0.05 by the deep, saturated or product test were "
        f"listed first (stand-ins and tags after the leads), then pairs at q < 0.05 on their own reading but not given the claims, then the rest, each "
        f"tier by the smallest of the three p-values (the reading on its own for the second tier), and clumped at "
        f"r^2 >= 0.8 (a pair whose two sites tag the two sites of a better-ranked pair joins "
        f"its signal). Random seed {info['seed']}."
    )


def cluster_methods(info: dict, metrics: dict) -> str:
    """Methods paragraph of a clustering run."""
    config, versions = info["config"], info.get("versions", {})
    embedding = metrics["embedding"]
    choice = metrics["choice"]
    if choice["method"] == "leiden":
        clustering = (f"Leiden community detection (igraph, through scanpy) on a {config['n_neighbors']}-nearest-neighbour "
                      f"graph, resolution {choice['resolution']}")
    elif choice["method"] == "kmeans":
        clustering = f"k-means (scikit-learn, k = {choice['k']})"
    else:
        clustering = f"HDBSCAN (scikit-learn, minimum cluster size {choice['min_cluster_size']})"
    chosen = (f"; the setting was chosen among {choice['candidates']} as the finest whose mean stability (adjusted Rand "
              "index between the full-data clustering and re-clusterings of three 80% subsamples) was within 0.05 of the "
              "best" if choice.get("chosen_by") == "stability" else "")
    steps = "; ".join(info.get("preprocessing", []))
    images = metrics["input"] == "images"
    head = (f"Data were analysed with biolens {versions.get('biolens', '')} (TensorFlow {versions.get('tensorflow', '')}, "
            f"Keras {versions.get('keras', '')}, scanpy {versions.get('scanpy', '')}, scikit-learn "
            f"{versions.get('scikit-learn', '')}). {metrics['n_samples']} samples; preprocessing: {steps}. ")
    used = {"deep": "self-supervised" if images and "autoencoder" in embedding else "autoencoder",
            "autoencoder": "autoencoder", "pca": "PCA"}[metrics["embedding_used"]]
    if images and "autoencoder" in embedding:  # images: a self-supervised encoder, the autoencoder as a peer
        from biolens.engine.pretraining import representation_methods

        ss, ae = embedding["self_supervised"], embedding["autoencoder"]
        source = (f"The image representation was the encoder of the earlier biolens run {ss['from_run']} "
                  f"({ss.get('from_task')}). " if ss.get("from_run") else
                  representation_methods(info, ss).split(" Random seed")[0] + " ")
        body = (source + f"As peers, a convolutional autoencoder ({ae['latent']}-dimensional bottleneck, trained for "
                f"{ae['epochs_run']} epochs with early stopping on 10% held-out images) and PCA of the raw pixels were "
                f"each clustered by k-means with the same number of clusters. Clusters of the {used} embedding (each "
                f"dimension standardised) were found by {clustering}{chosen}. ")
    else:
        body = (f"An autoencoder ({'convolutional' if images else 'dense, 256-128 hidden units'}, "
                f"{embedding['latent']}-dimensional bottleneck, {embedding['likelihood']} reconstruction) was trained with "
                f"AdamW in minibatches of {embedding['batch_size']} for {embedding['epochs_run']} epochs, stopping when the "
                f"loss on 10% held-out samples stopped improving (patience 10, best weights kept). Clusters of the {used} "
                f"embedding were found by {clustering}{chosen}. As the classical reference, "
                + ("the raw pixels were reduced by PCA and clustered by k-means with the same number of clusters. "
                   if images else "PCA (50 components of the same features, scaled) was clustered the same way. ")
                + ("" if images else "Marker features: Wilcoxon rank-sum test of each cluster against all other samples "
                   "(scanpy, tie corrected), Benjamini-Hochberg q-values, AUROC as effect size. "))
    return head + body + f"Maps are UMAP projections of the embeddings. Random seed {info['seed']}."


def _top_rows(path: Path, count: int) -> list[dict]:
    """The first rows of a TSV output (best first), for the report's tables."""
    import csv

    if not path.exists():
        return []
    with open(path, newline="") as handle:
        return [row for _, row in zip(range(count), csv.DictReader(handle, delimiter="\t"))]


def _association_context(run: Run) -> dict:
    metrics = run.metrics
    listed = _top_rows(run.path / "interactions.tsv", CLAIMS_READ)
    for row in listed:  # chromosome:position, as the variants table names sites (positions repeat across chromosomes)
        for end in ("a", "b"):
            row[f"site_{end}"] = (f"{row[f'chrom_{end}']}:{row[f'pos_{end}']}" if row.get(f"chrom_{end}")
                                  else row[f"pos_{end}"])
    interactions = listed[:10]
    return {"variants": _top_rows(run.path / "variants.tsv", 15), "interactions": interactions,
            "few_individuals": _claims_on_few_individuals(interactions),
            "deep_only": deep_claims_classical_tests_miss(listed),
            "m": metrics.get("metric", "auc"), "label": "AUC" if metrics.get("metric") == "auc" else "R²"}


def _number(value) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return float("nan")


def _claims_on_few_individuals(rows: list[dict]) -> list[dict]:
    """Claimed pairs (q < 0.05 by any test) whose named form rests on fewer than FEW_INDIVIDUALS individuals."""
    from biolens.stats.interaction_forms import FEW_INDIVIDUALS

    return [row for row in rows
            if min(_number(row.get(q)) for q in ("q_perm", "q_saturated", "q_product")) < 0.05
            and 0 < _number(row.get("form_individuals")) < FEW_INDIVIDUALS]


CLAIMS_READ = 200  # rows of interactions.tsv read for claims (claims are listed first)
UNSEEN_Q = 0.5  # a classical reading of a pair on its own at q >= this sees nothing there, even leniently


def deep_claims_classical_tests_miss(rows: list[dict]) -> list[dict]:
    """Pairs the deep test claims (q < 0.05) that neither classical reading of the pair on its own (the saturated
    test and the product term, each against the main-effects traits, before any conditioning on other signals) sees
    even at q < UNSEEN_Q.

    Why: at q < 0.05 a calibrated test still claims a pair in about one region in twenty where nothing acts together.
    On a null cohort simulated unlike biolens's own (docs/performance.md, session 44) the deep test claimed a pair
    whose saturated test read q 0.81 and whose learned term varied by 0.002 log-odds: a reader should be told that
    such a claim stands alone. A planted pair the deep test found and the stepwise readings missed (grid product
    cohort 1021) still read marginal q 0.063 (saturated) and 0.042 (product), so it is not flagged.
    """
    def own(row: dict, name: str) -> float:
        value = _number(row.get(f"q_{name}_marginal"))
        return value if not math.isnan(value) else _number(row.get(f"q_{name}"))  # runs before the marginal columns

    return [row for row in rows
            if _number(row.get("q_perm")) < 0.05 and row.get("role_deep") != "tag"  # a tag is another claim's signal
            and all(not own(row, name) < UNSEEN_Q for name in ("saturated", "product"))]


def detect_methods(info: dict, metrics: dict) -> str:
    """Methods paragraph of an object-detection run."""
    from biolens.tasks.detect import methods_text

    return methods_text(info, metrics, _network(info, "a fully convolutional network"))


def pretrain_methods(info: dict, metrics: dict) -> str:
    """Methods paragraph of a self-supervised pretraining run."""
    from biolens.engine.pretraining import representation_methods

    return representation_methods(info, metrics["pretraining"], metrics.get("probe"))


def _context(run: Run, info: dict, metrics: dict) -> dict:
    """Template variables beyond the shared ones, per task."""
    task = info.get("task")
    if task == "cluster":
        counts = info.get("input_kind") == "counts"
        return {"markers": [row for row in _top_rows(run.path / "markers.tsv", 10_000) if int(row["rank"]) <= 3],
                "effect_key": "log2_fold_change" if counts else "mean_difference",
                "effect_name": "log2 fold change" if counts else "difference of means"}
    if task == "associate":
        return _association_context(run)
    if task == "detect":
        return {"per_image": _top_rows(run.path / "test_counts.tsv", 50)}
    sequences = task == "sequence_classify"
    labelled_by = ""
    data = info.get("config", {}).get("data", "")
    given = " ".join(map(str, data)) if isinstance(data, list) else str(data)  # several class files, or one path
    if sequences and not info.get("config", {}).get("labels"):  # one FASTA per class, or one table
        labelled_by = ("its label column" if not isinstance(data, list) and is_table(data)
                       else "the names of its files, one per class")
    return {"sequences": sequences, "unit": "sequences" if sequences else "images", "labelled_by": labelled_by,
            "data_given": given}


def write_report(run: Run) -> Path:
    """(Re)write `report.html` in the run folder from its run.json, metrics.json and figures; the task's registry
    entry names the template and the Methods text."""
    from biolens.engine import lifecycle, registry

    info, metrics = lifecycle.read_run_info(run), run.metrics
    spec = registry.get(info.get("task"))
    figures = {p.stem: _embed(p) for p in sorted((run.path / "figures").glob("*.png"))}
    methods = globals()[spec.methods](info, metrics) if metrics else ""
    html = _env.get_template(spec.template).render(
        info=info, metrics=metrics, config=info.get("config", {}), figures=figures, run_path=str(run.path),
        methods=methods, title=spec.title, headline=spec.summary(metrics), **_context(run, info, metrics))
    write_text(run.report_path, html)
    return run.report_path
