"""How often the lambda_GC reading calls a null region inflated: null cohorts (1,000 x 2 kb, msprime, trait
independent of genotype; three demes with the trait shifted by deme as the positive control), lambda_GC of the
per-site test against two chance bounds: the 95% quantile for the region's effective number of independent sites
(`regression.inflation_by_chance`, the reading until 2026-12-03) and the 95% quantile with the trait shuffled
against the genotypes (`regression.inflation_by_permutation`, the reading now). On a null region a calibrated bound
is exceeded in about 5% of cohorts.

    .venv/bin/python benchmarks/lambda_calibration.py --trait quantitative --demography constant --seeds 1000-1030
"""
import argparse
import tempfile
import time

import numpy as np

from biolens.readers.variants import read_vcf
from biolens.simulate import simulate_cohort
from biolens.stats import regression

parser = argparse.ArgumentParser()
parser.add_argument("--trait", default="quantitative", choices=["quantitative", "binary"])
parser.add_argument("--demography", default="constant")
parser.add_argument("--seeds", default="1000-1020")
args = parser.parse_args()
low, high = map(int, args.seeds.split("-"))
kind, column = ("binary", "status") if args.trait == "binary" else ("quantitative", "yield")
over_sites = over_shuffled = 0
for seed in range(low, high):
    cohort = simulate_cohort("null", trait=args.trait, seed=seed, n_individuals=1000, length=2000,
                             demography=args.demography)
    with tempfile.TemporaryDirectory() as folder:
        dosage, _ = read_vcf(cohort.write(folder)["genotypes"]).imputed()
    frequency = dosage.mean(0) / 2
    dosage = dosage[:, np.minimum(frequency, 1 - frequency) >= 0.01]  # associate's default --min-maf
    y, none = cohort.phenotypes[column].to_numpy(float), np.zeros((len(dosage), 0))
    observed = regression.genomic_inflation(regression.site_tests(dosage, y, none, kind)[1])
    by_sites = max(1.1, regression.inflation_by_chance(regression.effective_tests(dosage)))
    started = time.perf_counter()
    shuffled = max(1.1, regression.inflation_by_permutation(dosage, y, none, kind))
    over_sites += observed > by_sites
    over_shuffled += observed > shuffled
    print(f"seed {seed}: lambda {observed:.2f}; bound by independent sites {by_sites:.2f}, by shuffling "
          f"{shuffled:.2f} ({time.perf_counter() - started:.1f} s)", flush=True)
print(f"{args.trait}, {args.demography}: {high - low} cohorts; lambda over the bound by independent sites in "
      f"{over_sites}, over the shuffled bound in {over_shuffled}")
