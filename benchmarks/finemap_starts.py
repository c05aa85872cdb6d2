"""Fine-mapping with and without the configuration starts (stats/finemap.susie `search_sites`), on simulated cohorts.

    .venv/bin/python benchmarks/finemap_starts.py --out runs/finemap_starts.jsonl            # 50 cohorts, ~10 min
    .venv/bin/python benchmarks/finemap_starts.py --covariates --demographies demes --seeds 8   # demes, population given

Each cohort (msprime, 1,000 diploid x 2 kb, three planted additive sites) is fine-mapped twice, IBSS from nothing
(search 0, the old default) and also from the best 1-5 site configurations (search 5, the default), and ranked as
`variants.tsv` ranks (credible-set sites by PIP, then the per-site p; clumped at r^2 >= 0.8). Only the per-site
least-squares p stands in for the run's smaller of the classical and the deep p, so no network is trained here.
Scored as the association grid scores: planted sites (or an r^2 >= 0.8 tag) in the first 10 rows; planted sites in a
95% credible set of at most 5 sites. Results are appended to --out (JSON lines) and summarised per cell.
"""
from __future__ import annotations

import argparse
import collections
import json
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from biolens.readers.variants import read_vcf
from biolens.simulate import simulate_cohort
from biolens.stats import finemap
from biolens.stats.linkage import BLOCK_R2, clump

CELLS = [(demography, "0.3-0.5", "quantitative") for demography in ("constant", "bottleneck", "expansion", "demes")] + \
    [("constant", "0.1-0.5", "quantitative"), ("constant", "0.1-0.5", "binary"), ("expansion", "0.05-0.5", "binary")]


def cell_name(demography: str, maf: str, trait: str, covariates: bool) -> str:
    return f"{demography} maf {maf} {trait}" + (" +population" if covariates else "")


def cohort_data(demography: str, maf: str, trait: str, seed: int, covariates: bool, scenario: str = "additive"):
    """(x, y, planted column indices, r^2 between sites, per-site p) of one simulated cohort, sites at MAF >= 0.01 as
    `associate` keeps them; None where the genealogy has no three common, unlinked sites at these frequencies."""
    low, high = map(float, maf.split("-"))
    try:
        cohort = simulate_cohort(scenario, trait=trait, seed=seed, maf=(low, high), demography=demography)
    except RuntimeError:
        return None
    with tempfile.TemporaryDirectory() as folder:
        paths = cohort.write(folder)
        genotypes = read_vcf(paths["genotypes"])
        table = pd.read_csv(paths["phenotypes"], sep="\t")
    dosage, _ = genotypes.imputed()
    frequency = dosage.mean(0) / 2
    keep = (np.minimum(frequency, 1 - frequency) >= 0.01) & (dosage.std(0) > 0)
    x, positions = dosage[:, keep], np.asarray(genotypes.pos)[keep]
    y = table["status" if trait == "binary" else "yield"].to_numpy(float)
    if covariates and "population" in table:
        design = np.column_stack([np.ones(len(y)), pd.get_dummies(table["population"], drop_first=True).to_numpy(float)])
        x = x - design @ np.linalg.lstsq(design, x, rcond=None)[0]
        y = y - design @ np.linalg.lstsq(design, y, rcond=None)[0]
    x, y = x - x.mean(0), y - y.mean()
    beta = x.T @ y / (x ** 2).sum(0)
    residual_ss = ((y[:, None] - x * beta) ** 2).sum(0)
    p_site = 2 * stats.t.sf(np.abs(beta) / np.sqrt(residual_ss / (len(y) - 2) / (x ** 2).sum(0)), len(y) - 2)
    r2 = np.corrcoef(x.T) ** 2
    planted = [int(np.nonzero(positions == p)[0][0]) for p in cohort.truth["additive"]]
    return x, y, planted, r2, p_site


def top10_and_small_sets(found, planted: list[int], r2: np.ndarray, p_site: np.ndarray) -> tuple[float, float]:
    """Share of planted sites (or an r^2 >= 0.8 tag) in the first 10 clumped rows; share in a set of <= 5 sites."""
    in_set = found.set_of_each_site()
    order, _ = clump(np.lexsort((p_site, -np.where(in_set > 0, found.pip, 0.0))), r2, BLOCK_R2)
    return (float(np.mean([(r2[order[:10], c] >= BLOCK_R2).any() for c in planted])),
            float(np.mean([any(len(s) <= 5 and c in s for s in found.credible_sets) for c in planted])))


def one_cohort(demography: str, maf: str, trait: str, seed: int, covariates: bool) -> dict | None:
    data = cohort_data(demography, maf, trait, seed, covariates)
    if data is None:
        return None
    x, y, planted, r2, p_site = data
    record = {"cell": cell_name(demography, maf, trait, covariates), "seed": seed}
    for search in (0, 5):
        found = finemap.susie(x, y, search_sites=search, starts_per_size=1, average=False)  # as it was measured
        record[f"top10_{search}"], record[f"small_set_{search}"] = top10_and_small_sets(found, planted, r2, p_site)
    return record


def append_records(done: list[dict], out: Path, name: str, seeds, make) -> None:
    """`make(seed)` for each seed of cell `name` not yet in `done` (records of earlier runs), each record appended to
    `out` as it comes: a long benchmark resumes where it stopped."""
    for seed in seeds:
        if any(r["cell"] == name and r["seed"] == seed for r in done):
            continue
        record = make(seed)
        if record is None:
            continue
        done.append(record)
        with open(out, "a") as handle:
            handle.write(json.dumps(record) + "\n")
        print(record, flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("runs/finemap_starts.jsonl"))
    parser.add_argument("--seeds", type=int, default=8, help="cohorts per cell")
    parser.add_argument("--demographies", nargs="*", help="only the cells of these demographies")
    parser.add_argument("--covariates", action="store_true", help="regress the deme out (what --covariates does)")
    args = parser.parse_args()
    done = [json.loads(line) for line in args.out.read_text().splitlines()] if args.out.exists() else []
    for demography, maf, trait in CELLS:
        if args.demographies and demography not in args.demographies:
            continue
        name = cell_name(demography, maf, trait, args.covariates)
        append_records(done, args.out, name, range(1000, 1000 + args.seeds),
                       lambda seed: one_cohort(demography, maf, trait, seed, args.covariates))  # noqa: B023 (called now)
    cells = collections.defaultdict(list)
    for record in done:
        cells[record["cell"]].append(record)
    print("| cell | cohorts | planted in top 10: IBSS / + starts | in a set of <= 5: IBSS / + starts |")
    print("|---|---|---|---|")
    for cell, rows in cells.items():
        mean = {k: np.mean([r[k] for r in rows]) for k in ("top10_0", "top10_5", "small_set_0", "small_set_5")}
        print(f"| {cell} | {len(rows)} | {mean['top10_0']:.2f} / {mean['top10_5']:.2f} | "
              f"{mean['small_set_0']:.2f} / {mean['small_set_5']:.2f} |")


if __name__ == "__main__":
    main()
