"""The classical baseline beside the sequence network, and what length alone says.

A spectrum model, logistic regression on the frequencies of every word of 1 to 6 bases (a word and its reverse
complement one feature when the network reads both strands), is how DNA sequences were classified before
convolutional networks (gkm-SVM's simpler kin). The network's motifs are worth reading as what sets the classes apart
when it does at least as well. Both are fitted on the training sequences, their strength (the baseline's L2, the
network's epoch) chosen on the validation sequences, and scored once on the same test sequences, so their difference
is paired.

Length is read on its own too: where the classes' sequences differ in length, every model can tell them apart by
length (the network sees the padding), which is no motif.
"""
from __future__ import annotations

import numpy as np

from biolens.engine.evaluation import classification_metrics, paired_difference
from biolens.stats.kmers import base_codes, word_ids

K_MAX = 6
STRENGTHS = (0.001, 0.01, 0.1, 1.0, 10.0)  # inverse L2 strengths tried, the best on validation kept
MAX_TRAIN = 20_000  # training sequences the baseline reads (an even spread beyond this)
CHUNK = 2_000       # sequences counted at a time (bounded memory for long sequences)


def kmer_frequencies(one_hot: np.ndarray, rows: np.ndarray, both_strands: bool):
    """Sparse (rows x words) frequencies of every word of 1..K_MAX bases: counts over the sequence's windows of
    that length without N."""
    from scipy import sparse

    blocks = []
    for start in range(0, len(rows), CHUNK):
        codes = base_codes(np.asarray(one_hot[rows[start:start + CHUNK]]))
        parts = []
        for k in range(1, K_MAX + 1):
            ids = word_ids(codes, k, both_strands)
            keep = ids >= 0
            at = np.nonzero(keep)
            counts = sparse.csr_matrix((np.ones(len(at[0]), np.float32), (at[0], ids[keep])),
                                       shape=(len(codes), 4**k))
            windows = np.maximum(keep.sum(1), 1).astype(np.float32)
            parts.append(sparse.diags(1 / windows) @ counts)
        blocks.append(sparse.hstack(parts, format="csr"))
    return sparse.vstack(blocks, format="csr")


def _fit_on_train_pick_on_val(features, y: np.ndarray, parts: dict, strengths) -> tuple[object, float]:
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import balanced_accuracy_score

    best = None
    for strength in strengths:
        model = LogisticRegression(C=strength, class_weight="balanced", max_iter=3000)
        model.fit(features(parts["train"]), y[parts["train"]])
        score = balanced_accuracy_score(y[parts["val"]], model.predict(features(parts["val"])))
        if best is None or score > best[1] + 1e-12:
            best = (model, score, strength)
    return best[0], best[2]


def _read(y_test: np.ndarray, probs: np.ndarray, network: np.ndarray, class_names: list[str],
          groups: np.ndarray | None, seed: int) -> dict:
    own = classification_metrics(y_test, probs, class_names, groups=groups, n_boot=1000, seed=seed)
    paired = paired_difference(y_test, network, probs.argmax(1), seed=seed)
    return {"balanced_accuracy": own["balanced_accuracy"], "balanced_accuracy_ci95": own["balanced_accuracy_ci95"],
            "network_minus_this": paired["difference"], "network_minus_this_ci95": paired["ci95"]}


def compare(one_hot: np.ndarray, y: np.ndarray, parts: dict[str, np.ndarray], class_names: list[str],
            network_predicted: np.ndarray, *, both_strands: bool, groups: np.ndarray | None = None,
            seed: int = 0) -> dict:
    """The k-mer baseline and the length-only model, each against the network's test predictions (`network_predicted`,
    class indices of parts["test"] in order)."""
    from sklearn.preprocessing import MaxAbsScaler

    parts = dict(parts)
    if len(parts["train"]) > MAX_TRAIN:
        parts["train"] = parts["train"][np.linspace(0, len(parts["train"]) - 1, MAX_TRAIN).round().astype(int)]
    rows = np.concatenate([parts["train"], parts["val"], parts["test"]])
    where = {int(r): k for k, r in enumerate(rows)}
    table = kmer_frequencies(one_hot, rows, both_strands)
    scaler = MaxAbsScaler().fit(table[:len(parts["train"])])  # scaled by the training sequences only

    def features(subset: np.ndarray):
        return scaler.transform(table[[where[int(r)] for r in subset]])

    model, strength = _fit_on_train_pick_on_val(features, y, parts, STRENGTHS)
    test = parts["test"]
    result = {"kmer_baseline": {
        "model": f"logistic regression (L2, class-balanced) on the frequencies of words of 1-{K_MAX} bases"
                 + (", a word and its reverse complement as one" if both_strands else ""),
        "strength_c": strength, "n_train": int(len(parts["train"])),
        "features": int((table[:len(parts["train"])].getnnz(axis=0) > 0).sum()),  # words seen in training
        **_read(y[test], model.predict_proba(features(test)), network_predicted, class_names, groups, seed)}}
    lengths = np.asarray(one_hot).max(axis=2).sum(axis=1).astype(float)  # called bases: what the network can see
    if np.ptp(lengths) == 0:
        result["length_only"] = None
        return result
    log_length = np.log1p(lengths)[:, None]
    length_model, _ = _fit_on_train_pick_on_val(lambda subset: log_length[subset], y, parts, (1.0,))
    result["length_only"] = {
        "median_length": {name: float(np.median(lengths[y == c])) for c, name in enumerate(class_names)},
        "fifth_percentile_length": float(np.percentile(lengths, 5)),
        **_read(y[test], length_model.predict_proba(log_length[test]), network_predicted, class_names, groups, seed)}
    return result


def reading(result: dict, n_classes: int) -> tuple[str, list[str]]:
    """The plain-words comparison for the report and console, and a warning when length alone tells the classes."""
    base = result["kmer_baseline"]
    difference, (low, high) = base["network_minus_this"], base["network_minus_this_ci95"]
    figures = (f"balanced accuracy {100 * base['balanced_accuracy']:.1f}% for the k-mer baseline; the network "
               f"{'+' if difference >= 0 else '-'}{100 * abs(difference):.1f} points (95% CI {100 * low:+.1f} to "
               f"{100 * high:+.1f})")
    if low > 0:
        text = f"The network beats a logistic regression on k-mer frequencies ({figures})."
    elif high < 0:
        text = (f"A logistic regression on k-mer frequencies does better than the network ({figures}): word counts "
                "separate these classes better than the motifs the network learned; read its motifs with that in mind.")
    else:
        text = (f"The network is no better than a logistic regression on k-mer frequencies ({figures}): its motifs "
                "are one reading of what sets the classes apart, not evidence that a convolutional network is needed.")
    warnings = []
    length = result.get("length_only")
    if length and length["balanced_accuracy_ci95"][0] > 1 / n_classes + 0.05:
        medians = ", ".join(f"{name} {value:.0f}" for name, value in length["median_length"].items())
        warnings.append(
            f"Sequence length alone predicts the class (balanced accuracy {100 * length['balanced_accuracy']:.1f}%, "
            f"95% CI {100 * length['balanced_accuracy_ci95'][0]:.1f}-{100 * length['balanced_accuracy_ci95'][1]:.1f}%;"
            f" median bases: {medians}). Any model can read length (the network sees the padding), which is no motif: "
            f"give --length {int(length['fifth_percentile_length'])} (the 5th percentile of the lengths) so that "
            "every sequence is read over the same window, or make the classes' sequences the same length.")
    return text, warnings
