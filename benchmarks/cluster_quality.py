"""Cluster quality of `biolens cluster` on the shared real data, against the classical reference in the same run.

- pbmc68k_reduced (700 cells, scaled expression): ARI/NMI against `bulk_labels` for the autoencoder embedding
  and the PCA reference, beside the `louvain` clustering shipped with the data.
- blood_cells images (4,886 crops, 3 classes): NMI/ARI against the folder labels for the convolutional
  autoencoder and for k-means on PCA of the raw pixels with the same number of clusters.

    .venv/bin/python benchmarks/cluster_quality.py [--shared ../shared/data] [--work /tmp/cluster_quality] [--seed 0]
"""
from __future__ import annotations

import argparse
import shutil
from pathlib import Path

import biolens


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", default=str(Path(__file__).resolve().parents[2] / "shared" / "data"))
    parser.add_argument("--work", default="/tmp/cluster_quality")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    shared, work = Path(args.shared), Path(args.work)
    if work.exists():
        shutil.rmtree(work)
    rows = []
    pbmc = shared / "pbmc68k_reduced" / "pbmc68k_reduced.h5ad"
    if pbmc.exists():
        import anndata
        from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

        run = biolens.cluster(pbmc, out=work / "pbmc", compare_with="bulk_labels", seed=args.seed)
        shipped = anndata.read_h5ad(pbmc).obs
        rows.append(("pbmc68k_reduced vs bulk_labels", run))
        louvain = (adjusted_rand_score(shipped.bulk_labels, shipped.louvain),
                   normalized_mutual_info_score(shipped.bulk_labels, shipped.louvain))
    images = shared / "blood_cells" / "images"
    if images.exists():
        rows.append(("blood_cells images vs folder", biolens.cluster(images, out=work / "blood", compare_with="folder",
                                                                     seed=args.seed)))
    print(f"{'data':32s} {'embedding':34s} {'clusters':>8s} {'ARI':>6s} {'NMI':>6s} {'seconds':>8s}")
    for name, run in rows:
        m = run.metrics
        print(f"{name:32s} {'autoencoder (biolens)':34s} {m['deep']['n_clusters']:8d} {m['compare']['deep']['ari']:6.3f} "
              f"{m['compare']['deep']['nmi']:6.3f} {m['seconds']:8.0f}")
        print(f"{'':32s} {m['reference']['name'][:34]:34s} {m['reference']['n_clusters']:8d} "
              f"{m['compare']['reference']['ari']:6.3f} {m['compare']['reference']['nmi']:6.3f}")
        if name.startswith("pbmc"):
            print(f"{'':32s} {'louvain shipped with the data':34s} {'':8s} {louvain[0]:6.3f} {louvain[1]:6.3f}")


if __name__ == "__main__":
    main()
