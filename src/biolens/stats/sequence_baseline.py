"""The classical baseline beside the sequence network, and what length alone says.

A spectrum model, logistic regression on the frequencies of every word of 1 to 6 bases (a word and its reverse
complement one feature when the network reads both strands), is how DNA sequences were classified before
convolutional networks (gkm-SVM's simpler kin). The network's motifs are worth reading as what sets the classes apart
when it does at least as well. Fitted, chosen and scored as the network is (`baselines.py`).

Length is read on its own too: where the classes' sequences differ in length, every model can tell them apart by
length (the network sees the padding), which is no motif.
"""
from __future__ import annotations

import numpy as np

from biolens.stats import baselines
from biolens.stats.kmers import base_codes, word_ids

K_MAX = 6
CHUNK = 2_000  # sequences counted at a time (bounded memory for long sequences)


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


def compare(one_hot: np.ndarray, y: np.ndarray, parts: dict[str, np.ndarray], class_names: list[str],
            network_predicted: np.ndarray, *, both_strands: bool, groups: np.ndarray | None = None,
            seed: int = 0) -> dict:
    """The k-mer baseline (`classical_baseline`) and the length-only model (`length_only`), each against the
    network's test predictions (`network_predicted`, class indices of parts["test"] in order)."""
    from sklearn.preprocessing import MaxAbsScaler

    parts = baselines.fewer_training_rows(parts)
    table = kmer_frequencies(one_hot, np.concatenate([parts["train"], parts["val"], parts["test"]]), both_strands)
    model, strength, features = baselines.fit_table(table, y, parts, MaxAbsScaler())  # sparse: scaled, not centred
    test = parts["test"]
    result = {"classical_baseline": {
        "name": "k-mer baseline",
        "model": f"logistic regression on the frequencies of words of 1-{K_MAX} bases"
                 + (" (a word and its reverse complement as one)" if both_strands else ""),
        "strength_c": strength, "n_train": int(len(parts["train"])),
        "features": int((table[:len(parts["train"])].getnnz(axis=0) > 0).sum()),  # words seen in training
        **baselines.scored(y[test], model.predict_proba(features(test)), network_predicted, class_names, groups,
                           seed)}}
    lengths = np.asarray(one_hot).max(axis=2).sum(axis=1).astype(float)  # called bases: what the network can see
    if np.ptp(lengths) == 0:
        result["length_only"] = None
        return result
    log_length = np.log1p(lengths)[:, None]
    length_model, _ = baselines.fit_on_train_pick_on_val(lambda subset: log_length[subset], y, parts, (1.0,))
    result["length_only"] = {
        "median_length": {name: float(np.median(lengths[y == c])) for c, name in enumerate(class_names)},
        "fifth_percentile_length": float(np.percentile(lengths, 5)),
        **baselines.scored(y[test], length_model.predict_proba(log_length[test]), network_predicted, class_names,
                           groups, seed)}
    return result


def length_warning(result: dict, n_classes: int) -> list[str]:
    """A warning when length alone tells the classes apart clearly above chance."""
    length = result.get("length_only")
    if not length or length["balanced_accuracy_ci95"][0] <= 1 / n_classes + 0.05:
        return []
    medians = ", ".join(f"{name} {value:.0f}" for name, value in length["median_length"].items())
    low, high = length["balanced_accuracy_ci95"]
    return [f"Sequence length alone predicts the class (balanced accuracy {100 * length['balanced_accuracy']:.1f}%, "
            f"95% CI {100 * low:.1f}-{100 * high:.1f}%; median bases: {medians}). Any model can read length (the "
            f"network sees the padding), which is no motif: give --length {int(length['fifth_percentile_length'])} "
            "(the 5th percentile of the lengths) so that every sequence is read over the same window, or make the "
            "classes' sequences the same length."]
