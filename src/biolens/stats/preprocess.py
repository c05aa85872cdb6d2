"""Preprocessing chosen from the data, every step written down (run.json) so nothing is hidden.

Counts (non-negative integers): library-size normalisation to 10,000 per sample, log1p, and the 2,000 most
highly variable features (scanpy, Seurat flavour) — the standard single-cell recipe. The autoencoder reads the
log values of those features and reconstructs their raw counts (negative binomial); PCA reads them scaled.
Continuous values: each feature centred and scaled to unit variance (features beyond 5,000 reduced to the
5,000 most variable). Sparse matrices stay sparse until a minibatch or the chosen features need them dense.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import sparse

N_TOP_FEATURES = 2000
MAX_CONTINUOUS_FEATURES = 5000
NEIGHBOURS, MAX_DONORS = 5, 2000  # missing values: filled from the 5 most alike of at most 2,000 rows


def knn_fill(values: np.ndarray, seed: int = 0) -> np.ndarray:
    """`values` (rows x columns, NaN missing; every column with a value) with each missing value replaced by the mean
    of the NEIGHBOURS rows most alike over the columns both have (scikit-learn's KNNImputer), the donors drawn once,
    at most MAX_DONORS, with a fixed seed so a run is reproducible. Shared by the genotype reader (missing calls) and
    the assay reader (missing measurements)."""
    from sklearn.impute import KNNImputer

    donors = values
    if len(donors) > MAX_DONORS:
        donors = donors[np.random.default_rng(seed).choice(len(donors), MAX_DONORS, replace=False)]
    return KNNImputer(n_neighbors=NEIGHBOURS).fit(donors).transform(values)


@dataclass
class Prepared:
    model_input: object          # (n, f) CSR or dense float32: what the autoencoder reads
    counts: object | None        # (n, f) CSR raw counts of the same features (counts only): what it reconstructs
    library: np.ndarray | None   # (n,) total counts per sample (counts only)
    features: list[str]
    analysis: object             # AnnData, all features, on the scale markers are tested on
    keep_samples: np.ndarray     # boolean over the input samples
    steps: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def prepare(data, kind: str) -> Prepared:
    """Normalise `data` (AnnData, samples x features) for embedding and marker tests; see the module docstring."""
    import anndata
    import scanpy as sc

    if kind == "counts":
        matrix = sparse.csr_matrix(data.X, dtype=np.float32)
        library = np.asarray(matrix.sum(axis=1)).ravel()
        keep = library > 0
        notes = []
        if not keep.all():
            notes.append(f"{int((~keep).sum())} samples have no counts at all and were left out "
                         f"(e.g. {', '.join(data.obs_names[~keep][:3])}).")
            matrix = matrix[keep]
        # one working copy of the whole matrix (normalised in place); the raw counts stay in `matrix`
        analysis = anndata.AnnData(matrix.copy(), obs=data.obs[keep].copy(), var=data.var.copy())
        sc.pp.normalize_total(analysis, target_sum=1e4)
        sc.pp.log1p(analysis)
        n_top = min(N_TOP_FEATURES, analysis.n_vars)
        if n_top < analysis.n_vars:
            sc.pp.highly_variable_genes(analysis, n_top_genes=n_top, flavor="seurat")
            chosen = np.flatnonzero(analysis.var["highly_variable"].to_numpy())
        else:
            chosen = np.arange(analysis.n_vars)
        steps = ["counts per sample scaled to 10,000 (normalize_total)", "log1p",
                 f"{len(chosen)} highly variable features (scanpy, Seurat flavour) for the embedding"
                 if len(chosen) < analysis.n_vars else f"all {len(chosen)} features for the embedding"]
        return Prepared(sparse.csr_matrix(analysis.X[:, chosen], dtype=np.float32), matrix[:, chosen].tocsr(),
                        library[keep], list(analysis.var_names[chosen]), analysis, keep, steps, notes)

    matrix = data.X
    if sparse.issparse(matrix):  # never densify all features: pick first, then densify the chosen ones
        mean = np.asarray(matrix.mean(axis=0)).ravel()
        variance = np.asarray(matrix.multiply(matrix).mean(axis=0)).ravel() - mean ** 2
    else:
        variance = np.asarray(matrix).var(axis=0)
    chosen = np.arange(matrix.shape[1])
    steps = []
    if matrix.shape[1] > MAX_CONTINUOUS_FEATURES:
        chosen = np.sort(np.argsort(-variance)[:MAX_CONTINUOUS_FEATURES])
        steps.append(f"the {MAX_CONTINUOUS_FEATURES} most variable of {matrix.shape[1]} features for the embedding")
    selected = matrix[:, chosen]
    selected = selected.toarray() if sparse.issparse(selected) else np.asarray(selected, dtype=np.float32)
    scaled = (selected - selected.mean(axis=0)) / np.maximum(selected.std(axis=0), 1e-8)
    steps.append("each feature centred and scaled to unit variance (values used as given: no log, no normalisation)")
    return Prepared(scaled.astype(np.float32), None, None, list(data.var_names[chosen]), data,
                    np.ones(data.n_obs, dtype=bool), steps, [])


def pca_reference(prepared: Prepared, n_components: int = 50, seed: int = 0) -> np.ndarray:
    """The classical embedding beside the deep one: PCA of the embedding features, scaled (max 10) for counts."""
    from sklearn.decomposition import PCA

    x = prepared.model_input
    if prepared.counts is not None:
        x = x.toarray() if sparse.issparse(x) else np.array(x)
        x = np.clip((x - x.mean(axis=0)) / np.maximum(x.std(axis=0), 1e-8), -10, 10)  # scanpy pp.scale(max_value=10)
    components = max(2, min(n_components, x.shape[0] - 1, x.shape[1] - 1))
    return PCA(components, random_state=seed, svd_solver="randomized" if min(x.shape) > 500 else "full").fit_transform(
        x).astype(np.float32)
