"""A quantitative trait with heavy tails: do the pair tests stay calibrated when the noise is not normal?

    PYTHONPATH=src .venv/bin/python benchmarks/association_heavy_tails.py runs/heavy_tails \
        null:t3:2500 null:outlier:2501 null:t3:2502 null:outlier:2503 additive:t3:2504 additive:outlier:2505

Each job `scenario:noise:seed` takes a grid cohort (1,000 x 2 kb, quantitative), standardises its trait and adds
Student's t noise with 3 degrees of freedom (`t3`) or, for 1% of individuals, an outlier of +-8 SD (`outlier`), runs
`biolens associate` and scores the run as association_grid.py does (pairs claimed on null and additive cohorts are
false). One JSON line per cohort in <out>/results.jsonl, with the run's warnings.
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
        scenario, noise, seed = job.split(":")
        cohort = simulate_cohort(scenario, trait="quantitative", seed=int(seed))
        rng = np.random.default_rng(int(seed) + 1)
        y = cohort.phenotypes["yield"].to_numpy(float)
        n = len(y)
        extra = (rng.standard_t(3, n) if noise == "t3"
                 else np.where(rng.random(n) < 0.01, rng.choice([-8, 8], n), 0.0))
        cohort.phenotypes["yield"] = np.round(10 + (y - y.mean()) / y.std() + extra, 4)
        run_and_record(cohort, out / f"{scenario}_{noise}_{seed}", "yield", out / "results.jsonl", job)


if __name__ == "__main__":
    main()
