"""Do 95% credible sets hold the planted sites? The best IBSS fit alone against fits averaged by their evidence.

    .venv/bin/python benchmarks/finemap_calibration.py --first-seed 1020 --seeds 15 --out runs/finemap_calibration.jsonl

Each cohort (msprime, 1,000 diploid x 2 kb, three planted additive sites of 4% each, or none) is fine-mapped twice:
`best` keeps the fit of highest ELBO among IBSS from nothing, from the best configuration of 1-5 sites and from
susieR's refinement (stats/finemap.susie before 2026-12-05); `averaged` (the default) also starts from the next two
configurations of each size that are not tags of the first, and averages the distinct fits by exp(ELBO). Scored:
planted sites in any set (`covered`), sets holding a planted site (`sets_hit` of `sets`: what a set's 95% promises),
planted sites in a set of <= 5 sites (`small`), and in the first 10 clumped rows (`top10`, as
benchmarks/finemap_starts.py ranks them). Null cohorts count sets, all false. Nothing is tuned to these cohorts.
"""
from __future__ import annotations

import argparse
import collections
import json
import time
from pathlib import Path

import numpy as np
from finemap_starts import append_records, cohort_data, top10_and_small_sets

from biolens.stats import finemap

CELLS = [("additive", "constant", "0.3-0.5"), ("additive", "constant", "0.01-0.5"), ("additive", "bottleneck", "0.3-0.5"),
         ("additive", "demes", "0.3-0.5"), ("null", "constant", "0.3-0.5"), ("null", "demes", "0.3-0.5")]
ARMS = {"best": {"starts_per_size": 1, "average": False}, "averaged": {}}


def one_cohort(scenario: str, demography: str, maf: str, seed: int) -> dict | None:
    data = cohort_data(demography, maf, "quantitative", seed, covariates=False, scenario=scenario)
    if data is None:
        return None
    x, y, planted, r2, p_site = data
    record = {"cell": f"{scenario} {demography} maf {maf}", "seed": seed}
    for arm, options in ARMS.items():
        started = time.perf_counter()
        found = finemap.susie(x, y, **options)
        sets = [set(members.tolist()) for members in found.credible_sets]
        record[arm] = {"sets": len(sets), "sizes": [len(s) for s in sets],
                       "sets_hit": sum(any(c in s for c in planted) for s in sets),
                       "sets_tagging": sum(any(r2[c, k] >= 0.8 for c in planted for k in s) for s in sets),
                       "covered": [any(c in s for s in sets) for c in planted],
                       "modes": len(found.mode_weights or [1.0]), "seconds": round(time.perf_counter() - started, 2)}
        if planted:
            record[arm]["top10"], record[arm]["small"] = top10_and_small_sets(found, planted, r2, p_site)
    return record


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("runs/finemap_calibration.jsonl"))
    parser.add_argument("--seeds", type=int, default=15, help="cohorts per cell")
    parser.add_argument("--first-seed", type=int, default=1020)
    args = parser.parse_args()
    done = [json.loads(line) for line in args.out.read_text().splitlines()] if args.out.exists() else []
    for scenario, demography, maf in CELLS:
        append_records(done, args.out, f"{scenario} {demography} maf {maf}",
                       range(args.first_seed, args.first_seed + args.seeds),
                       lambda seed: one_cohort(scenario, demography, maf, seed))  # noqa: B023 (called now)
    table(done)


def table(records: list[dict]) -> None:
    cells = collections.defaultdict(list)
    for record in records:
        cells[record["cell"]].append(record)
    print("| cell | cohorts | sets holding a planted site: best / averaged | holding it or an r² >= 0.8 tag | planted "
          "sites in a set | in a set of <= 5 | in the first 10 rows | median set size | s |")
    print("|---|---|---|---|---|---|---|---|---|")
    for cell, rows in cells.items():
        def share(arm, key, rows=rows):
            hit, sets = sum(r[arm][key] for r in rows), sum(r[arm]["sets"] for r in rows)
            return f"{hit}/{sets}" + (f" ({hit / sets:.0%})" if sets else "")

        def mean(arm, key, rows=rows):
            values = [v for r in rows for v in np.atleast_1d(r[arm].get(key, []))]
            return f"{np.mean(values):.0%}" if values else "-"

        def median_size(arm, rows=rows):
            sizes = [s for r in rows for s in r[arm]["sizes"]]
            return f"{np.median(sizes):g}" if sizes else "-"

        cols = [" / ".join(f(arm, *a) for arm in ARMS) for f, *a in
                ((share, "sets_hit"), (share, "sets_tagging"), (mean, "covered"), (mean, "small"), (mean, "top10"),
                 (median_size,))]
        seconds = " / ".join(f"{np.mean([r[arm]['seconds'] for r in rows]):.1f}" for arm in ARMS)
        print(f"| {cell} | {len(rows)} | " + " | ".join(cols) + f" | {seconds} |")


if __name__ == "__main__":
    main()
