"""Scale of `biolens cluster` on a large sparse count matrix, against a plain scanpy pipeline on the same data.

Generates single-cell-like counts (default 100,000 cells x 20,000 genes, 10 cell types, about 2,000 UMIs and
~4% non-zero per cell: gene proportions log-normal, each type raising 50 genes), writes them as a sparse h5ad,
then runs, each in its own process so peak memory is that run's own high-water mark (VmHWM):
  1. the full biolens run (read, preprocess, NB autoencoder, PCA reference, stability-chosen Leiden for both,
     UMAP for both, markers, figures, report);
  2. plain scanpy: normalize_total -> log1p -> 2,000 HVG -> scale -> PCA(50) -> neighbours -> Leiden(1.0).
Prints time, peak memory and ARI against the simulated types for both, and the targets (under 8 GB, under
10 minutes on 2 cores). Figures go to docs/performance.md.

    .venv/bin/python benchmarks/cluster_scale.py [--cells 100000] [--genes 20000] [--work /tmp/cluster_scale]
"""
from __future__ import annotations

import argparse
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from scipy import sparse

SCANPY_PIPELINE = """
import sys, time, anndata, scanpy as sc, pandas as pd
from sklearn.metrics import adjusted_rand_score
started = time.time()
data = anndata.read_h5ad(sys.argv[1])
sc.pp.normalize_total(data, target_sum=1e4)
sc.pp.log1p(data)
sc.pp.highly_variable_genes(data, n_top_genes=2000, flavor="seurat", subset=True)
sc.pp.scale(data, max_value=10)
sc.tl.pca(data, n_comps=50)
sc.pp.neighbors(data, n_neighbors=15)
sc.tl.leiden(data, resolution=1.0, flavor="igraph", n_iterations=2, directed=False)
seconds = time.time() - started
truth = pd.read_csv(sys.argv[2])["type"].astype(str).to_numpy()
print(seconds, adjusted_rand_score(truth, data.obs["leiden"]), data.obs["leiden"].nunique())
print(open("/proc/self/status").read().split("VmHWM:")[1].split()[0])
"""

BIOLENS_RUN = """
import sys, time, biolens, pandas as pd
from sklearn.metrics import adjusted_rand_score
started = time.time()
run = biolens.cluster(sys.argv[1], sys.argv[3], seed=0)
seconds = time.time() - started
truth = pd.read_csv(sys.argv[2])["type"].astype(str).to_numpy()
clusters = pd.read_csv(run.path / "clusters.csv")["cluster"].to_numpy()
print(seconds, adjusted_rand_score(truth, clusters), run.metrics["n_clusters"])
print(open("/proc/self/status").read().split("VmHWM:")[1].split()[0])
"""


def simulate(n_cells: int, n_genes: int, n_types: int = 10, mean_umis: float = 2000, seed: int = 0):
    """Counts drawn cell type by cell type: each UMI picks a gene from the type's proportions (multinomial)."""
    rng = np.random.default_rng(seed)
    base = rng.lognormal(0, 2.0, n_genes)
    types = rng.integers(0, n_types, n_cells)
    blocks, order = [], []
    for t in range(n_types):
        proportions = base.copy()
        raised = rng.choice(n_genes, 50, replace=False)
        proportions[raised] *= rng.uniform(4, 16, 50)
        proportions /= proportions.sum()
        cells = np.flatnonzero(types == t)
        for start in range(0, len(cells), 5000):
            chunk = cells[start:start + 5000]
            umis = np.maximum(200, rng.lognormal(np.log(mean_umis), 0.5, len(chunk))).astype(np.int64)
            genes = np.searchsorted(np.cumsum(proportions), rng.random(umis.sum()))
            genes = np.minimum(genes, n_genes - 1)
            rows = np.repeat(np.arange(len(chunk)), umis)
            block = sparse.csr_matrix((np.ones(len(genes), dtype=np.float32), (rows, genes)), shape=(len(chunk), n_genes))
            block.sum_duplicates()
            blocks.append(block)
            order.append(chunk)
    matrix = sparse.vstack(blocks, format="csr")
    order = np.concatenate(order)
    inverse = np.empty_like(order)
    inverse[order] = np.arange(len(order))
    return matrix[inverse], types


def run_child(code: str, *args: str) -> tuple[float, float, int, float]:
    result = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True)
    if result.returncode != 0:
        sys.exit(result.stderr[-3000:])
    for line in (result.stdout + result.stderr).splitlines():  # the stage timings biolens prints
        if re.match(r"^\s+\S.*: [0-9.]+ s$", line):
            print(line)
    lines = result.stdout.strip().splitlines()
    seconds, ari, n_clusters = lines[-2].split()
    return float(seconds), float(ari), int(n_clusters), int(lines[-1]) / 2**20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cells", type=int, default=100_000)
    parser.add_argument("--genes", type=int, default=20_000)
    parser.add_argument("--work", default="/tmp/cluster_scale")
    args = parser.parse_args()
    import anndata
    import pandas as pd

    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    data_path = work / f"counts_{args.cells}x{args.genes}.h5ad"
    truth_path = work / f"types_{args.cells}.csv"
    if not data_path.exists():
        started = time.time()
        matrix, types = simulate(args.cells, args.genes)
        data = anndata.AnnData(matrix)
        data.obs_names = [f"cell{i}" for i in range(args.cells)]
        data.var_names = [f"gene{i}" for i in range(args.genes)]
        data.write_h5ad(data_path)
        pd.DataFrame({"id": data.obs_names, "type": types}).to_csv(truth_path, index=False)
        print(f"simulated in {time.time() - started:.0f} s")
    import h5py

    with h5py.File(data_path) as handle:
        nnz = handle["X"]["data"].shape[0]
    print(f"{args.cells} cells x {args.genes} genes, {nnz:,} non-zero ({nnz / args.cells / args.genes:.1%}); "
          f"a dense float32 copy would take {args.cells * args.genes * 4 / 2**30:.1f} GB")
    run_folder = work / "run"
    if run_folder.exists():
        import shutil

        shutil.rmtree(run_folder)
    ours = run_child(BIOLENS_RUN, str(data_path), str(truth_path), str(run_folder))
    plain = run_child(SCANPY_PIPELINE, str(data_path), str(truth_path))
    print(f"{'pipeline':56s} {'time':>8s} {'peak memory':>12s} {'ARI':>6s} {'clusters':>9s}")
    for name, (seconds, ari, n_clusters, peak) in (
            ("biolens cluster (NB AE + PCA reference, both clustered)", ours),
            ("plain scanpy (PCA -> neighbours -> Leiden 1.0)", plain)):
        print(f"{name:56s} {seconds:7.0f}s {peak:10.2f} GB {ari:6.3f} {n_clusters:9d}")
    print(f"targets: peak < 8 GB: {'met' if ours[3] < 8 else 'MISSED'}; time < 10 min: "
          f"{'met' if ours[0] < 600 else 'MISSED'}; time vs plain scanpy: {ours[0] / plain[0]:.1f}x")


if __name__ == "__main__":
    main()
