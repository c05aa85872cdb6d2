"""Few cases: a binary trait made from a grid cohort's quantitative one at its top 5-10%.

    PYTHONPATH=src .venv/bin/python benchmarks/association_rare_cases.py runs/rare_cases \
        null:product:0.05:2600 null:product:0.1:2601 additive:product:0.05:2602 pair:one_carrier:0.1:2603 \
        pair:product:0.1:2604 null:product:0.05:2605

The grid's binary cohorts are balanced and the foreign ones hold 20-50% cases; a disease study may have 5%. Each job
`scenario:form:cases:seed` simulates a grid cohort (1,000 x 2 kb, quantitative), calls the individuals above the
trait's 1 - cases quantile cases, runs `biolens associate --trait status` and scores the run as association_grid.py
does. One JSON line per cohort in <out>/results.jsonl.
"""
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from association_grid import run_and_record  # noqa: E402

from biolens.simulate import simulate_cohort  # noqa: E402


def main() -> None:
    out = Path(sys.argv[1])
    for job in sys.argv[2:]:
        scenario, form, cases, seed = job.split(":")
        cohort = simulate_cohort(scenario, trait="quantitative", seed=int(seed), form=form)
        y = cohort.phenotypes["yield"].to_numpy(float)
        cohort.phenotypes["status"] = np.where(y > np.quantile(y, 1 - float(cases)), "case", "control")
        cohort.phenotypes = cohort.phenotypes.drop(columns=["yield"])
        run_and_record(cohort, out / job.replace(":", "_"), "status", out / "results.jsonl", job)


if __name__ == "__main__":
    main()
