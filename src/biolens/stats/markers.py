"""What sets each cluster apart: per-feature rank-sum tests, one cluster against all other samples.

The Wilcoxon rank-sum test with tie correction and Benjamini-Hochberg q-values comes from scanpy
(`rank_genes_groups`). Effect sizes are what a biologist can read: for counts the log2 fold change of normalised
expression (scanpy) and the fraction of samples expressing the feature inside and outside the cluster; for
continuous values the difference of means; for both the AUROC (0.5 = no separation, 1 = perfect), computed
exactly for the reported features. For counts, as Seurat's FindAllMarkers (min.pct = 0.1), only features detected
in at least 10% of the samples of some cluster are tested: the others cannot mark a cluster, and skipping them
keeps the test fast on tables with tens of thousands of features. q-values are over the features tested.
As Seurat's `max.cells.per.ident`, a cluster larger than 2,000 samples is represented by 2,000 drawn at random
(seeded): with that many, p-values are already far below any threshold, and the test stays minutes, not hours,
on 100,000 cells.
"""
from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
from scipy import sparse

MIN_DETECTED = 0.1
MAX_PER_CLUSTER = 2000
COLUMNS = ["cluster", "rank", "feature", "auroc", "effect_size", "pct_in", "pct_out", "score", "p_value", "q_value"]


def cluster_markers(analysis, labels: np.ndarray, *, kind: str, per_cluster: int = 25, seed: int = 0) -> pd.DataFrame:
    """Top `per_cluster` features per cluster by rank-sum score (HDBSCAN noise, -1, is not a cluster)."""
    import scanpy as sc
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(seed)
    drawn = []
    for c in np.unique(labels[labels >= 0]):
        members = np.flatnonzero(labels == c)
        drawn.append(rng.choice(members, MAX_PER_CLUSTER, replace=False) if len(members) > MAX_PER_CLUSTER else members)
    keep = np.sort(np.concatenate(drawn))
    groups = labels[keep]
    if kind == "counts":
        detected = analysis.X[keep] > 0
        fractions = np.vstack([np.asarray(detected[groups == c].mean(axis=0)).ravel() for c in np.unique(groups)])
        tested = fractions.max(axis=0) >= MIN_DETECTED
        if not tested.any():
            return pd.DataFrame(columns=COLUMNS)
        data = analysis[keep][:, tested].copy()
    else:
        data = analysis[keep].copy()
    data.obs["cluster"] = pd.Categorical(groups.astype(str))
    if data.obs["cluster"].nunique() < 2:
        return pd.DataFrame(columns=COLUMNS)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sc.tl.rank_genes_groups(data, "cluster", method="wilcoxon", tie_correct=True, corr_method="benjamini-hochberg",
                                n_genes=data.n_vars, pts=True, use_raw=False)
    result = data.uns["rank_genes_groups"]
    p_values, q_values = _exact_p(result)
    matrix = data.X
    column = {name: i for i, name in enumerate(data.var_names)}
    rows = []
    for name in sorted(result["names"].dtype.names, key=int):
        inside = groups == int(name)
        for rank, feature in enumerate(result["names"][name][:per_cluster], start=1):
            values = matrix[:, column[feature]]
            values = values.toarray().ravel() if sparse.issparse(values) else np.asarray(values).ravel()
            if kind == "counts":
                effect = float(result["logfoldchanges"][name][rank - 1])
            else:
                effect = float(values[inside].mean() - values[~inside].mean())
            rows.append([int(name), rank, feature, float(roc_auc_score(inside, values)), effect,
                         float((values[inside] != 0).mean()), float((values[~inside] != 0).mean()),
                         float(result["scores"][name][rank - 1]), float(p_values[name][rank - 1]),
                         float(q_values[name][rank - 1])])
    return pd.DataFrame(rows, columns=COLUMNS)


def _exact_p(result) -> tuple[dict, dict]:
    """Two-sided p-values from scanpy's rank-sum z-scores in float64, and BH q-values over every feature tested.

    scanpy keeps p-values in float32, so any p below ~1e-45 (a z-score above ~14, common for a cluster's markers on a
    few hundred cells) was stored and printed as 0; the same normal approximation in float64 reaches ~1e-308."""
    from scipy import stats

    from biolens.stats.significance import bh_qvalues

    p_values, q_values = {}, {}
    for name in result["names"].dtype.names:
        scores = np.asarray(result["scores"][name], dtype=np.float64)
        p_values[name] = 2 * stats.norm.sf(np.abs(scores))
        q_values[name] = bh_qvalues(p_values[name])
    return p_values, q_values
