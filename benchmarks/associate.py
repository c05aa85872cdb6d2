"""Power, false discoveries and time of `biolens associate` on msprime cohorts with a known truth.

    .venv/bin/python benchmarks/associate.py --seeds 20            # 1,000 diploid x 2 kb, three scenarios
    .venv/bin/python benchmarks/associate.py --seeds 1 --length 10000 --individuals 10000   # how time grows

A scenario's planted site (or pair) counts as found when a discovery at q < 0.05 is the site itself or in LD
r^2 >= 0.8 with it (for a pair: each of its two sites). A discovery is false when it is linked (r^2 >= 0.8) to no planted
site; on null cohorts every discovery is false. Prints one row per scenario and test, classical beside deep.
"""
from __future__ import annotations

import argparse
import csv
import json
import tempfile
import time
from pathlib import Path

import numpy as np

from biolens.readers.variants import read_vcf
from biolens.simulate import simulate_cohort
from biolens.tasks.associate import associate


def _rows(path: Path) -> list[dict]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle, delimiter="\t"))


def linkage_test(vcf: Path):
    """linked(a, b, r2=0.8): positions a and b are the same site or in LD r^2 >= `r2` in this cohort (0.8: what
    counts as found; 0.99: sites no genotype data can tell apart).

    A position may hold several sites (a multi-allelic record split into one site per ALT allele): the positions are
    linked when any site at one is in r^2 >= 0.8 with any site at the other. (Until 2026-12-03 only the first site
    at a position was looked at, so a row naming the second allele of a position could be scored as unlinked.)"""
    genotypes = read_vcf(vcf)
    dosage, _ = genotypes.imputed()
    columns: dict[int, list[int]] = {}
    for i, p in enumerate(genotypes.pos):
        columns.setdefault(int(p), []).append(i)

    def linked(a: int, b: int, r2: float = 0.8) -> bool:
        return a == b or any(np.corrcoef(dosage[:, i], dosage[:, j])[0, 1] ** 2 >= r2
                             for i in columns[a] for j in columns[b])

    return linked


def score(run: Path, vcf: Path, truth: dict) -> dict:
    linked = linkage_test(vcf)
    causal = truth["additive"] + truth["pair"]
    result = {}
    variants = _rows(run / "variants.tsv")
    for test, column_name in (("classical", "q_site"), ("deep", "q_perm")):
        hits = [int(r["pos"]) for r in variants if r[column_name] and float(r[column_name]) < 0.05]
        result[f"sites_{test}_found"] = sum(any(linked(h, c) for h in hits) for c in truth["additive"])
        result[f"sites_{test}_false"] = sum(not any(linked(h, c) for c in causal) for h in hits)
        result[f"sites_{test}_any"] = len(hits)
    pairs = _rows(run / "interactions.tsv")
    for test, column_name in (("classical", "q_epistasis"), ("deep", "q_perm")):
        hits = [(int(r["pos_a"]), int(r["pos_b"])) for r in pairs if r[column_name] and float(r[column_name]) < 0.05]
        if truth["pair"]:
            a, b = truth["pair"]
            good = [(x, y) for x, y in hits if (linked(x, a) and linked(y, b)) or (linked(x, b) and linked(y, a))]
        else:
            good = []
        result[f"pairs_{test}_found"] = int(bool(good)) if truth["pair"] else 0
        result[f"pairs_{test}_false"] = len(hits) - len(good)
        result[f"pairs_{test}_any"] = len(hits)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--individuals", type=int, default=1000)
    parser.add_argument("--length", type=int, default=2000)
    parser.add_argument("--scenarios", default="additive,pair,null")
    parser.add_argument("--trait", default="binary")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/associate_results.jsonl"))
    args = parser.parse_args()
    setting = {"individuals": args.individuals, "length": args.length, "trait": args.trait}
    done = []  # results already in --out for these settings: the benchmark resumes after an interruption
    if args.out.exists():
        done = [r for r in map(json.loads, args.out.read_text().splitlines())
                if all(r.get(k) == v for k, v in setting.items())]
    records = [r for r in done if r["scenario"] in args.scenarios.split(",") and r["seed"] < args.seeds]
    for scenario in args.scenarios.split(","):
        for seed in range(args.seeds):
            if any(r["scenario"] == scenario and r["seed"] == seed for r in records):
                continue
            with tempfile.TemporaryDirectory() as folder:
                cohort = simulate_cohort(scenario, trait=args.trait, seed=100 + seed, n_individuals=args.individuals,
                                         length=args.length)
                paths = cohort.write(folder)
                trait = "status" if args.trait == "binary" else "yield"
                started = time.time()
                run = associate(paths["phenotypes"], trait, Path(folder) / "run", genotypes=paths["genotypes"], seed=seed)
                seconds = time.time() - started
                record = {"scenario": scenario, "seed": seed, **setting, "seconds": round(seconds, 1), **run.metrics,
                          **score(run.path, paths["genotypes"], cohort.truth)}
            records.append(record)
            with open(args.out, "a") as handle:
                handle.write(json.dumps(record) + "\n")
            print(f"{scenario} seed {seed}: {seconds:.0f} s, {record['n_sites']} sites, "
                  f"deep {record.get('auc_deep', record.get('r2_deep'))} vs additive "
                  f"{record.get('auc_additive', record.get('r2_additive'))}", flush=True)
    print("\nscenario  test       cohorts  power(sites)  power(pair)  cohorts with a false site  with a false pair  median s")
    for scenario in args.scenarios.split(","):
        rows = [r for r in records if r["scenario"] == scenario]
        for test in ("classical", "deep"):
            power_sites = np.mean([r[f"sites_{test}_found"] / 3 for r in rows]) if scenario == "additive" else float("nan")
            power_pair = np.mean([r[f"pairs_{test}_found"] for r in rows]) if scenario == "pair" else float("nan")
            false_site = np.mean([r[f"sites_{test}_false"] > 0 for r in rows])
            false_pair = np.mean([r[f"pairs_{test}_false"] > 0 for r in rows])
            print(f"{scenario:9} {test:10} {len(rows):7} {power_sites:13.2f} {power_pair:12.2f} {false_site:26.2f} "
                  f"{false_pair:17.2f} {np.median([r['seconds'] for r in rows]):9.0f}")


if __name__ == "__main__":
    main()
