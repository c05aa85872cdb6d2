"""PLINK-style logistic epistasis scan (`stats.regression.pair_tests`, binary trait): this source against another
copy of regression.py (e.g. the code before a change, taken with `git show REV:src/biolens/stats/regression.py`),
same pairs, same process, alternating; prints seconds and the largest difference of log10 p. Then the same for the
per-site logistic test behind lambda_GC's 100 shuffles of the trait (`regression.inflation_by_permutation`).

    .venv/bin/python benchmarks/logistic_pair_scan.py /tmp/old_regression.py [--pairs 30000] [--covariates]

--covariates: the cohort's age and sex (standardised, as `associate` gives them) in every fit, which is the path that
fits each pair on its individuals.
"""
import argparse
import importlib.util
import tempfile
import time

import numpy as np
import pandas as pd

from biolens.readers.variants import read_vcf
from biolens.simulate import simulate_cohort
from biolens.stats import regression as new

parser = argparse.ArgumentParser()
parser.add_argument("reference")
parser.add_argument("--pairs", type=int, default=30000)
parser.add_argument("--covariates", action="store_true")
args = parser.parse_args()
spec = importlib.util.spec_from_file_location("reference_regression", args.reference)
old = importlib.util.module_from_spec(spec)
spec.loader.exec_module(old)
with tempfile.TemporaryDirectory() as folder:
    paths = simulate_cohort("pair", trait="binary", seed=1001, n_individuals=1000, length=2000,
                            covariates=args.covariates).write(folder)
    dosage, _ = read_vcf(paths["genotypes"]).imputed()
    table = pd.read_csv(paths["phenotypes"], sep="\t")
    y = table["status"].to_numpy(float)
i, j = np.triu_indices(dosage.shape[1], 1)
pairs = np.stack([i, j], 1)[: args.pairs]
covariates = np.zeros((len(y), 0))
if args.covariates:
    covariates = np.column_stack([table["age"], table["sex"] == "M"]).astype(float)
    covariates = (covariates - covariates.mean(0)) / covariates.std(0)
for name, module in (("reference", old), ("this source", new)) * 2:
    started = time.perf_counter()
    _, p = module.pair_tests(dosage, y, covariates, "binary", pairs)
    print(f"{name}: {time.perf_counter() - started:.1f} s for {len(pairs)} pairs", flush=True)
    if name == "reference":
        reference = p
    else:
        print("largest |difference of log10 p|:", float(np.nanmax(np.abs(np.log10(p) - np.log10(reference)))),
              "; the same degenerate fits:", bool(np.array_equal(np.isnan(p), np.isnan(reference))))
for name, module in (("reference", old), ("this source", new)) * 2:
    started = time.perf_counter()
    bound = module.inflation_by_permutation(dosage, y, covariates, "binary", permutations=100)
    print(f"{name}: lambda_GC bound over 100 shuffles {bound:.6f}, {time.perf_counter() - started:.1f} s for "
          f"{dosage.shape[1]} sites", flush=True)
