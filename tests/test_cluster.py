"""Unsupervised clustering end to end: the real pbmc68k_reduced table, generated count tables (CSV and a sparse h5ad
larger than a dense copy could be), a slice of real blood-cell images, and every bad-input case."""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from scipy import sparse

from conftest import ENV, PBMC, ROOT, biolens, one_line_error
B_CELL_MARKERS = {"CD79A", "CD79B", "MS4A1", "CD74", "HLA-DRA", "HLA-DQA1", "HLA-DQB1", "TCL1A"}


def count_table(n_per_group: int = 100, n_genes: int = 400, groups: int = 3, seed: int = 0):
    """Negative binomial counts of `groups` cell types, each with 20 genes raised 6-fold; returns (counts, truth)."""
    rng = np.random.default_rng(seed)
    base = rng.gamma(0.6, 1.0, n_genes)
    rows, truth = [], []
    for g in range(groups):
        means = base.copy()
        means[g * 20:(g + 1) * 20] *= 6
        library = rng.lognormal(0, 0.3, (n_per_group, 1))
        mu = means * library
        rows.append(rng.negative_binomial(2, 2 / (2 + mu)))
        truth += [f"type{g}"] * n_per_group
    return np.vstack(rows).astype(np.int64), np.array(truth)


def test_pbmc_clusters_match_cell_types_as_well_as_the_shipped_louvain(pbmc_run):
    import anndata

    metrics = json.loads((pbmc_run / "metrics.json").read_text())
    reference = anndata.read_h5ad(PBMC)
    from sklearn.metrics import adjusted_rand_score

    louvain = adjusted_rand_score(reference.obs.bulk_labels, reference.obs.louvain)  # 0.415
    assert metrics["compare"]["deep"]["ari"] >= louvain - 0.05, metrics["compare"]
    assert metrics["compare"]["reference"]["ari"] >= louvain - 0.05, metrics["compare"]
    assert metrics["choice"]["chosen_by"] == "stability" and len(metrics["choice"]["stability"]) == 8
    assert sum(metrics["cluster_sizes"].values()) == 700 and metrics["silhouette"] > 0
    table = metrics["contingency"]  # known label x cluster, every sample once
    assert set(table) == set(reference.obs.bulk_labels.astype(str))
    assert sum(sum(row.values()) for row in table.values()) == 700
    assert "PCA" in metrics["embedding_verdict"]
    report = (pbmc_run / "report.html").read_text()
    assert 'id="contingency"' in report and 'id="embedding-verdict"' in report
    clusters = pd.read_csv(pbmc_run / "clusters.csv")
    assert list(clusters.columns) == ["id", "cluster"] and list(clusters.id) == list(reference.obs_names)
    embedding = pd.read_parquet(pbmc_run / "embedding.parquet")
    assert embedding.shape == (700, 17) and list(embedding.id) == list(reference.obs_names)
    result = anndata.read_h5ad(pbmc_run / "result.h5ad")
    assert result.obsm["X_biolens"].shape == (700, 16) and result.obsm["X_umap"].shape == (700, 2)
    assert (result.obs["biolens_cluster"].astype(int).to_numpy() == clusters.cluster.to_numpy()).all()


def test_pbmc_markers_name_b_cell_genes_for_the_b_cell_cluster(pbmc_run):
    import anndata

    truth = anndata.read_h5ad(PBMC).obs.bulk_labels.astype(str).to_numpy()
    clusters = pd.read_csv(pbmc_run / "clusters.csv").cluster.to_numpy()
    b_cluster = pd.Series(clusters[truth == "CD19+ B"]).mode()[0]
    markers = pd.read_csv(pbmc_run / "markers.tsv", sep="\t")
    assert {"cluster", "feature", "auroc", "mean_difference", "p_value", "q_value"} <= set(markers.columns)
    top = markers[(markers.cluster == b_cluster) & (markers["rank"] <= 10)]
    assert B_CELL_MARKERS & set(top.feature), top.feature.tolist()
    assert (top.q_value < 0.05).all() and (top[top["rank"] <= 5].auroc > 0.7).all()
    # p from the rank-sum z-score in float64: strong markers are not printed as p = 0 (scanpy keeps float32)
    assert (markers.p_value > 0).all() and (markers.q_value > 0).all() and markers.p_value.min() < 1e-45
    from scipy import stats
    assert np.allclose(markers.p_value, 2 * stats.norm.sf(markers.score.abs()), rtol=1e-6)
    report = (pbmc_run / "report.html").read_text()
    assert "Methods" in report and "bulk_labels" in report and "data:image/png;base64" in report


@pytest.mark.slow  # a longer end-to-end run: pytest -m slow (keeps the default suite under 15 minutes)
def test_count_csv_with_genes_as_rows_is_detected_and_clustered(tmp_path):
    import biolens

    counts, truth = count_table()
    table = pd.DataFrame(counts.T, columns=[f"cell{i}" for i in range(len(truth))])
    table.insert(0, "gene", [f"g{i}" for i in range(counts.shape[1])])
    table.to_csv(tmp_path / "counts.csv", index=False)
    run = biolens.cluster(tmp_path / "counts.csv", out=tmp_path / "run", seed=0)
    info, metrics = run.info, run.metrics
    assert info["input_kind"] == "counts" and "transposed" in info["preprocessing"][0]
    assert metrics["embedding"]["likelihood"] == "negative binomial"
    from sklearn.metrics import adjusted_rand_score

    clusters = pd.read_csv(run.path / "clusters.csv")
    assert adjusted_rand_score(truth, clusters.cluster) >= 0.8
    markers = pd.read_csv(run.path / "markers.tsv", sep="\t")
    assert "log2_fold_change" in markers.columns and (markers.pct_in >= 0).all()
    # each cluster's best marker is one of the 20 genes raised in the cell type it mostly holds
    for cluster, rows in markers[markers["rank"] == 1].groupby("cluster"):
        kind = pd.Series(truth[clusters.cluster == cluster]).mode()[0]
        raised = {f"g{i}" for i in range(int(kind[-1]) * 20, int(kind[-1]) * 20 + 20)}
        assert rows.feature.iloc[0] in raised


@pytest.mark.slow  # a longer end-to-end run: pytest -m slow (keeps the default suite under 15 minutes)
def test_parquet_with_kmeans_and_10x_folder_with_hdbscan(tmp_path):
    import gzip

    from scipy import io as scipy_io
    from sklearn.metrics import adjusted_rand_score

    import biolens

    counts, truth = count_table(n_per_group=60, n_genes=200)
    cells = [f"AAAC{i:04d}-1" for i in range(len(truth))]
    genes = [f"g{i}" for i in range(counts.shape[1])]
    table = pd.DataFrame(counts, columns=genes)
    table.insert(0, "cell", cells)
    table.to_parquet(tmp_path / "counts.parquet", index=False)
    run = biolens.cluster(tmp_path / "counts.parquet", out=tmp_path / "kmeans", method="kmeans", epochs=20, seed=0)
    assert run.metrics["choice"]["method"] == "kmeans" and run.metrics["choice"]["chosen_by"] == "stability"
    clusters = pd.read_csv(run.path / "clusters.csv")
    assert list(clusters.id) == cells and adjusted_rand_score(truth, clusters.cluster) >= 0.8

    folder = tmp_path / "filtered_feature_bc_matrix"  # what Cell Ranger writes: genes x cells, gzipped
    folder.mkdir()
    with gzip.open(folder / "matrix.mtx.gz", "wb") as handle:
        scipy_io.mmwrite(handle, sparse.coo_matrix(counts.T))
    with gzip.open(folder / "features.tsv.gz", "wt") as handle:
        handle.writelines(f"ENSG{i:011d}\t{g}\tGene Expression\n" for i, g in enumerate(genes))
    with gzip.open(folder / "barcodes.tsv.gz", "wt") as handle:
        handle.writelines(f"{c}\n" for c in cells)
    run = biolens.cluster(folder, out=tmp_path / "hdbscan", method="hdbscan", epochs=20, seed=0)
    clusters = pd.read_csv(run.path / "clusters.csv")
    assert list(clusters.id) == cells and run.metrics["choice"]["method"] == "hdbscan"
    assigned = clusters.cluster.to_numpy() >= 0
    assert assigned.mean() > 0.5 and adjusted_rand_score(truth[assigned], clusters.cluster[assigned]) >= 0.8


@pytest.mark.slow  # a resumed real run (resume of every task is also in test_lifecycle's slow kill test)
def test_interrupted_cluster_run_resumes_from_its_embedding_with_the_same_result(tmp_path):
    import biolens

    counts, _ = count_table(n_per_group=20, n_genes=60)
    pd.DataFrame(counts, index=[f"c{i}" for i in range(len(counts))]).to_csv(tmp_path / "counts.csv", index_label="id")
    run = biolens.cluster(tmp_path / "counts.csv", out=tmp_path / "run", seed=3, epochs=5)
    first = (run.path / "clusters.csv").read_text()
    embedding_checkpoint = run.path / "checkpoints" / "embedding.npz"
    trained_at = embedding_checkpoint.stat().st_mtime_ns
    # as if killed after the embedding: the later stage and outputs are gone, the run is marked interrupted
    (run.path / "checkpoints" / "clusters.npz").unlink()
    (run.path / "clusters.csv").unlink()
    run.update_info(status="interrupted")
    resumed = biolens.cluster(resume=run.path)
    assert resumed.info["status"] == "complete"
    assert embedding_checkpoint.stat().st_mtime_ns == trained_at  # the autoencoder was not trained again
    assert (run.path / "clusters.csv").read_text() == first


@pytest.mark.slow  # a longer end-to-end run: pytest -m slow (keeps the default suite under 15 minutes)
def test_sparse_h5ad_larger_than_a_dense_copy_stays_within_memory(tmp_path):
    """4,000 cells x 250,000 features: a dense float32 copy alone would take 4 GB; the whole run (TensorFlow
    included) must peak below that. The limit checked is the child process's own high-water mark (VmHWM)."""
    import anndata

    rng = np.random.default_rng(1)
    n_cells, n_genes, per_cell = 4_000, 250_000, 500  # 0.2% non-zero, like a shallow single-cell library
    columns = np.sort(rng.integers(0, n_genes, size=(n_cells, per_cell)), axis=1).ravel()
    matrix = sparse.csr_matrix((rng.poisson(2, n_cells * per_cell).astype(np.float32) + 1, columns,
                                np.arange(0, n_cells * per_cell + 1, per_cell)), shape=(n_cells, n_genes))
    matrix.sum_duplicates()
    anndata.AnnData(matrix).write_h5ad(tmp_path / "big.h5ad")
    dense_bytes = n_cells * n_genes * 4
    code = (f"import biolens; biolens.cluster({str(tmp_path / 'big.h5ad')!r}, {str(tmp_path / 'run')!r}, "
            "epochs=2, resolution=1.0); print(open('/proc/self/status').read().split('VmHWM:')[1].split()[0])")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=ENV, cwd=ROOT, timeout=900)
    assert result.returncode == 0, result.stderr[-2000:]
    peak_bytes = int(result.stdout.strip().splitlines()[-1]) * 1024
    assert peak_bytes < dense_bytes, f"peak {peak_bytes / 2**20:.0f} MB"
    clusters = pd.read_csv(tmp_path / "run" / "clusters.csv")
    assert len(clusters) == n_cells and clusters.cluster.nunique() >= 2


@pytest.mark.slow  # a longer end-to-end run: pytest -m slow (keeps the default suite under 15 minutes)
def test_image_folder_clusters_with_exemplars(tmp_path):
    slice_images = ROOT / "examples" / "blood_cells_slice" / "images"
    out = tmp_path / "img"
    biolens("cluster", slice_images, "--compare-with", "folder", "--out", out, "--epochs", "15")
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["input"] == "images" and set(metrics["compare"]) == {"deep", "autoencoder", "reference"}
    assert metrics["embedding"]["self_supervised"]["epochs_run"] == 15 and (out / "encoder.keras").exists()
    # k-means on raw pixels separates this slice's three cell types well (NMI 0.5-0.56 measured): only true when
    # every image is scored against its own folder; the autoencoder needs more than 216 images (docs/performance.md)
    assert metrics["compare"]["reference"]["nmi"] > 0.3, metrics["compare"]
    assert metrics["reference"]["n_clusters"] == metrics["deep"]["n_clusters"]
    exemplars = pd.read_csv(out / "exemplars.csv")
    assert set(exemplars.cluster) == set(range(metrics["n_clusters"]))
    cluster_of = dict(pd.read_csv(out / "clusters.csv").values)
    assert all(cluster_of[f] == c for f, c in zip(exemplars.file, exemplars.cluster))  # exemplars are members
    assert (out / "figures" / "cluster_images.png").exists() and not (out / "markers.tsv").exists()


@pytest.mark.slow  # a longer end-to-end run: pytest -m slow (keeps the default suite under 15 minutes)
def test_bad_inputs_give_one_line(tmp_path):
    counts, _ = count_table(n_per_group=10, n_genes=30)
    table = pd.DataFrame(counts, columns=[f"g{i}" for i in range(30)], index=[f"c{i}" for i in range(30)])
    out = tmp_path / "never"

    infinite = table.astype(float)
    infinite.iloc[4, 7] = np.inf
    infinite.to_csv(tmp_path / "inf.csv", index_label="id")
    message = one_line_error(biolens("cluster", tmp_path / "inf.csv", "--out", out, check=False))
    assert "'c4'" in message and "'g7'" in message and "infinite" in message

    negative = table.copy()
    negative.iloc[2, 3] = -5
    negative.to_csv(tmp_path / "neg.csv", index_label="id")
    message = one_line_error(biolens("cluster", tmp_path / "neg.csv", "--data-type", "counts", "--out", out, check=False))
    assert "negative" in message and "'c2'" in message

    table.to_csv(tmp_path / "ok.csv", index_label="id")
    message = one_line_error(biolens("cluster", tmp_path / "ok.csv", "--compare-with", "cell_type", "--out", out, check=False))
    assert "cell_type" in message

    table.head(5).to_csv(tmp_path / "few.csv", index_label="id")
    assert "only 5 samples" in one_line_error(biolens("cluster", tmp_path / "few.csv", "--out", out, check=False))

    if PBMC.exists():
        message = one_line_error(biolens("cluster", PBMC, "--layer", "counts", "--out", out, check=False))
        assert "no layer 'counts'" in message
    assert "--method" in one_line_error(biolens("cluster", tmp_path / "ok.csv", "--method", "dbscan", "--out", out, check=False))
    assert not out.exists()


def test_missing_values_of_a_measurement_table_are_filled_from_alike_samples_and_said(tmp_path):
    """A metabolomics-like table (three groups of samples, 4% of the cells missing at random, one feature and one
    sample mostly missing): the mostly-missing feature and sample are left out, the rest filled from the samples most
    alike, closer to the hidden values than each feature's mean would be, and every step said; counts stay whole."""
    from biolens.readers.assays import read_assay

    rng = np.random.default_rng(3)
    groups = np.repeat(np.arange(3), 40)
    # measurements driven by a few shared processes (pathways), as metabolite levels are, plus the groups and noise
    truth = (rng.normal(size=(120, 3)) @ rng.normal(size=(3, 20)) + 0.5 * rng.normal(size=(120, 20))
             + 2.0 * (groups[:, None] == np.arange(20)[None, :] % 3))
    values = truth.copy()
    hidden = rng.random(values.shape) < 0.04
    values[hidden] = np.nan
    values[:, 5][rng.random(120) < 0.7] = np.nan  # a feature measured in under half of the samples
    values[17, :15] = np.nan                       # a sample with most of its values missing
    table = pd.DataFrame(values, columns=[f"m{i}" for i in range(20)], index=[f"s{i}" for i in range(120)])
    table.to_csv(tmp_path / "assay.csv", index_label="sample")
    assay = read_assay(tmp_path / "assay.csv")
    data = assay.data
    assert "m5" not in data.var_names and "s17" not in data.obs_names and np.isfinite(data.X).all()
    assert any("m5" in note and "more than half of the samples" in note for note in assay.notes)
    assert any("s17" in note and "more than half of their values" in note for note in assay.notes)
    assert any("were filled with the mean of the 5 samples most alike" in note for note in assay.notes)
    rows = [int(name[1:]) for name in data.obs_names]
    columns = [int(name[1:]) for name in data.var_names]
    gaps = hidden[np.ix_(rows, columns)]
    filled, hidden_values = np.asarray(data.X)[gaps], truth[np.ix_(rows, columns)][gaps]
    feature_means = np.broadcast_to(np.nanmean(values[np.ix_(rows, columns)], 0), gaps.shape)[gaps]
    assert np.abs(filled - hidden_values).mean() < 0.7 * np.abs(feature_means - hidden_values).mean()

    from biolens.errors import InputError

    worded = table.astype(object)
    worded.iloc[9, 2] = "<LOD"  # a word where a number belongs: the two ways on, not a dead end
    worded.to_csv(tmp_path / "worded.csv", index_label="sample")
    with pytest.raises(InputError, match=r"sample 's9' holds '<LOD'.*half the detection limit.*leave the cell empty"):
        read_assay(tmp_path / "worded.csv")

    counts = pd.DataFrame(rng.poisson(5, (30, 8)).astype(float), columns=[f"g{i}" for i in range(8)],
                          index=[f"c{i}" for i in range(30)])
    counts.iloc[3, 2] = np.nan
    counts.to_csv(tmp_path / "counts.csv", index_label="id")
    counted = read_assay(tmp_path / "counts.csv")
    assert counted.kind == "counts" and np.all(counted.data.X == np.round(counted.data.X))

    import biolens

    run = biolens.cluster(tmp_path / "assay.csv", out=tmp_path / "run", seed=0)
    clusters = pd.read_csv(run.path / "clusters.csv")
    assert len(clusters) == 119 and "s17" not in set(clusters.iloc[:, 0].astype(str))
    assert any("were filled" in warning for warning in run.info["warnings"])
    assert "were filled with the mean of the 5 samples most alike" in (run.path / "report.html").read_text()


def test_a_number_of_clusters_or_a_resolution_the_method_would_ignore_is_refused(tmp_path):
    """--k is k-means' and --resolution Leiden's: given with another method they were silently ignored (a biologist
    asking for 5 groups got however many Leiden found); now one line says which method takes them."""
    from biolens.config import ClusterConfig
    from biolens.errors import InputError

    for options, said in (({"k": 5}, "--k 5 sets the number of k-means clusters; add --method kmeans"),
                          ({"k": 5, "method": "hdbscan"}, "follows the density of the data"),
                          ({"resolution": 1.5, "method": "kmeans"}, "--resolution 1.5 is Leiden's")):
        with pytest.raises(InputError, match=said):
            ClusterConfig.build(data=str(tmp_path), **options).validate()
    ClusterConfig.build(data=str(tmp_path), k=5, method="kmeans").validate()
    ClusterConfig.build(data=str(tmp_path), resolution=1.5).validate()

    import anndata

    from biolens.readers.assays import read_assay

    anndata.AnnData(np.ones((12, 3), np.float32)).write_h5ad(tmp_path / "cells.h5ad")
    with pytest.raises(InputError, match="--transpose/--no-transpose applies to tables"):
        read_assay(tmp_path / "cells.h5ad", transpose=True)  # an h5ad says which axis holds the samples itself
