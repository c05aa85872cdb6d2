"""A pair acting across two regions: two genealogies written as chromosomes 1 and 2 of one VCF.

    PYTHONPATH=src .venv/bin/python benchmarks/association_two_regions.py --share 0.12 --out runs/two_regions \
        one_carrier:2410 product:2411 threshold:2412 both_dominant:2413 product:2414 one_carrier:2415

The grid plants its pair inside one 2-kb region; epistasis between unlinked loci on different chromosomes is the
classical case, and a user's VCF may hold several regions whose positions repeat. Each job `form:seed` simulates two
1.5-kb null cohorts (seeds s and s + 500) of the same 1,000 individuals, writes the second as chromosome 2, plants
one site of minor allele frequency 0.3-0.5 from each region acting together in `form` (explaining `--share` of a
quantitative trait), runs `biolens associate` and reads interactions.tsv: is the planted pair (or tags of both
sites at r^2 >= 0.8, matched by chromosome, position and allele) claimed at q < 0.05 by each test, how many leads
are claimed beside it, and its first row. One JSON line per cohort in <out>/results.jsonl.
"""
from __future__ import annotations

import argparse
import csv
import gzip
import json
import time
from pathlib import Path

import numpy as np

from biolens.readers.variants import read_vcf
from biolens.simulate import interaction_values, simulate_cohort
from biolens.tasks.associate import associate

TESTS = {"deep": ("q_perm", "role_deep"), "saturated": ("q_saturated", "role_saturated"),
         "product": ("q_product", "role_product"), "plink": ("q_epistasis", None)}


def cohort(form: str, seed: int, share: float, folder: Path) -> tuple[Path, Path, dict]:
    regions = {}
    for chrom, region_seed in (("1", seed), ("2", seed + 500)):
        paths = simulate_cohort("null", trait="quantitative", seed=region_seed, length=1500).write(folder / chrom)
        regions[chrom] = (read_vcf(paths["genotypes"]), gzip.open(paths["genotypes"], "rt").read().splitlines())
    vcf = folder / "cohort.vcf.gz"
    body = [line for line in regions["2"][1] if not line.startswith("#")]
    with gzip.open(vcf, "wt") as handle:
        handle.write("\n".join(regions["1"][1] + ["2\t" + line.split("\t", 1)[1] for line in body]) + "\n")
    rng = np.random.default_rng(seed)
    planted = {}
    for chrom, (genotypes, _) in regions.items():
        maf = genotypes.minor_allele_frequency()
        planted[chrom] = int(rng.choice(np.flatnonzero((maf >= 0.3) & (maf <= 0.5))))
    first, second = regions["1"][0], regions["2"][0]
    value = interaction_values(form, first.dosage[:, planted["1"]].astype(float),
                               second.dosage[:, planted["2"]].astype(float))
    trait = np.sqrt(share) * (value - value.mean()) / value.std() + np.sqrt(1 - share) * rng.standard_normal(len(value))
    traits = folder / "traits.tsv"
    traits.write_text("sample\tyield\n" + "".join(f"{s}\t{v:.5f}\n" for s, v in zip(first.samples, trait)))
    return vcf, traits, {chrom: (regions[chrom][0], planted[chrom]) for chrom in regions}


def read(run: Path, truth: dict) -> dict:
    def tags(chrom: str, pos: int, alt: str) -> bool:
        genotypes, site = truth[chrom]
        return any(np.corrcoef(genotypes.dosage[:, k], genotypes.dosage[:, site])[0, 1] ** 2 >= 0.8
                   for k in np.flatnonzero(genotypes.pos == pos) if genotypes.alt[k] == alt)

    def planted(row: dict) -> bool:
        a, b = (row["chrom_a"], int(row["pos_a"]), row["alt_a"]), (row["chrom_b"], int(row["pos_b"]), row["alt_b"])
        return a[0] != b[0] and tags(*a) and tags(*b)

    rows = list(csv.DictReader(open(run / "interactions.tsv"), delimiter="\t"))
    result = {}
    for test, (q, role) in TESTS.items():
        claims = [(planted(r), bool(role) and r.get(role) == "stand-in") for r in rows if r[q] and float(r[q]) < 0.05]
        result[f"{test}_found"] = any(p for p, _ in claims)
        result[f"{test}_leads_beside"] = sum(not p and not stand_in for p, stand_in in claims)
    ranks = [int(r["rank"]) for r in rows if planted(r)]
    result["table_rank"] = min(ranks) if ranks else None
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("jobs", nargs="+", help="form:seed, e.g. one_carrier:2410")
    parser.add_argument("--share", type=float, default=0.12,
                        help="trait variance the pair explains (the grid's default)")
    parser.add_argument("--out", type=Path, default=Path("runs/two_regions"))
    args = parser.parse_args()
    for job in args.jobs:
        form, seed = job.split(":")
        folder = args.out / f"{form}_{seed}"
        vcf, traits, truth = cohort(form, int(seed), args.share, folder)
        started = time.perf_counter()
        associate(traits, "yield", folder / "run", genotypes=vcf)
        record = {"job": job, "share": args.share, "wall_s": round(time.perf_counter() - started, 1),
                  **read(folder / "run", truth)}
        with open(args.out / "results.jsonl", "a") as handle:
            handle.write(json.dumps(record) + "\n")
        print(json.dumps(record), flush=True)


if __name__ == "__main__":
    main()
