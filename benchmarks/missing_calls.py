"""Missing genotype calls: the site mean against the individuals most alike, on the same masked cohorts.

    PYTHONPATH=src:benchmarks .venv/bin/python benchmarks/missing_calls.py --rate 0.08 --out runs/missing_calls \
        pair:one_carrier:2300:quantitative null:product:2302:quantitative additive:product:2303:binary ...

Each job `scenario:form:seed:trait` simulates a grid cohort (1,000 diploid x 2 kb), hides `--rate` of its calls at
random (written `./.` in a VCF, as a user's file holds them), runs `biolens associate` twice, once with every
missing call imputed by the site mean (`Genotypes.imputed("mean")`, the code before 2026-12-07) and once as the
product does now (`"neighbours"`), and reads both runs as association_grid.py does, against the complete
cohort's LD. One JSON line per run in <out>/results.jsonl (resumes); the summary is printed at the end.
"""
from __future__ import annotations

import argparse
import gzip
import json
import time
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np

from biolens.readers import variants
from biolens.simulate import simulate_cohort
from biolens.tasks.associate import associate

from association_grid import score

NEIGHBOURS = variants.Genotypes.imputed


def _site_mean(self, method: str = "mean"):
    return NEIGHBOURS(self, "mean")


def hide_calls(source: Path, target: Path, rate: float, seed: int) -> None:
    rng = np.random.default_rng(seed)
    with gzip.open(source, "rt") as complete, gzip.open(target, "wt") as masked:
        for line in complete:
            if not line.startswith("#"):
                fields = line.rstrip("\n").split("\t")
                calls = np.asarray(fields[9:], dtype=object)
                calls[rng.random(len(calls)) < rate] = "./."
                line = "\t".join(fields[:9] + list(calls)) + "\n"
            masked.write(line)


def summary(records: list[dict]) -> None:
    counts: dict[str, Counter] = defaultdict(Counter)
    for r in records:
        c, scenario = counts[r["imputation"]], r["job"].split(":")[0]
        if scenario == "pair":
            c["pair cohorts"] += 1
            c["planted pair in the first 10 rows"] += (r.get("table_rank") or 99) <= 10
            for test in ("deep", "saturated", "product"):
                c[f"{test}: found"] += bool(r.get(f"{test}_found"))
                c[f"{test}: cohorts with a lead beside the planted pair"] += r.get(f"{test}_false_leads", 0) > 0
        else:
            c["null and additive cohorts"] += 1
            for test in ("deep", "saturated", "product"):
                c[f"{test}: cohorts with a false lead"] += r.get(f"{test}_false_leads", 0) > 0
        if scenario == "additive":
            c["additive sites"] += 3
            for key in ("additive_top10", "additive_in_set", "additive_small_set"):
                c[key] += round(3 * r[key])
    for imputation, c in counts.items():
        print(imputation, dict(c))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("jobs", nargs="+", help="scenario:form:seed:trait, e.g. pair:one_carrier:2300:quantitative")
    parser.add_argument("--rate", type=float, default=0.08)
    parser.add_argument("--out", type=Path, default=Path("runs/missing_calls"))
    args = parser.parse_args()
    results = args.out / "results.jsonl"
    done = [json.loads(line) for line in results.read_text().splitlines()] if results.exists() else []
    for job in args.jobs:
        scenario, form, seed, trait = job.split(":")
        cohort = simulate_cohort(scenario, trait=trait, seed=int(seed), form=form)
        folder = args.out / job.replace(":", "_")
        paths = cohort.write(folder)
        hide_calls(paths["genotypes"], folder / "masked.vcf.gz", args.rate, int(seed))
        for imputation, method in (("site mean", _site_mean), ("neighbours", NEIGHBOURS)):
            if any(r["job"] == job and r["imputation"] == imputation for r in done):
                continue
            variants.Genotypes.imputed = method
            run = folder / imputation.replace(" ", "_")
            started = time.perf_counter()
            associate(paths["phenotypes"], "status" if trait == "binary" else "yield", run,
                      genotypes=folder / "masked.vcf.gz")
            record = {"job": job, "imputation": imputation, "rate": args.rate,
                      "wall_s": round(time.perf_counter() - started, 1),
                      **score(run, paths["genotypes"], cohort.truth)}
            variants.Genotypes.imputed = NEIGHBOURS
            done.append(record)
            with open(results, "a") as handle:
                handle.write(json.dumps(record) + "\n")
            print(record, flush=True)
    summary(done)


if __name__ == "__main__":
    main()
