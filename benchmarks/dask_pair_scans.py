"""The classical pair scans of `biolens associate` in process vs on a local Dask cluster (same numbers, time).

    .venv/bin/python benchmarks/dask_pair_scans.py [--individuals 2000] [--sites 500] [--workers 2]
"""
from __future__ import annotations

import argparse
import time

import numpy as np


def main() -> None:
    from dask.distributed import Client, LocalCluster

    from biolens.engine.dask_scans import pair_scans

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--individuals", type=int, default=2000)
    parser.add_argument("--sites", type=int, default=500)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    dosage = rng.binomial(2, rng.uniform(0.05, 0.5, args.sites), size=(args.individuals, args.sites)).astype(float)
    y = rng.normal(size=args.individuals)
    covariates = rng.normal(size=(args.individuals, 2))
    pairs = np.stack(np.triu_indices(args.sites, 1), axis=1)
    started = time.perf_counter()
    here = pair_scans(dosage, y, covariates, "quantitative", pairs)
    in_process = time.perf_counter() - started
    with LocalCluster(n_workers=args.workers, threads_per_worker=1, dashboard_address=None) as cluster, \
            Client(cluster) as client:
        started = time.perf_counter()
        there = pair_scans(dosage, y, covariates, "quantitative", pairs, client, pairs_per_task=20_000)
        on_dask = time.perf_counter() - started
    same = all(np.allclose(here[k], there[k], equal_nan=True, rtol=1e-10) for k in here)
    print(f"{args.individuals} individuals x {args.sites} sites = {len(pairs):,} pairs: in process {in_process:.1f} s, "
          f"local Dask cluster of {args.workers} workers {on_dask:.1f} s (cluster start not counted); identical: {same}")


if __name__ == "__main__":
    main()
