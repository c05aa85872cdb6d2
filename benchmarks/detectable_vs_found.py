"""Does the report's "what this cohort can detect" match what the tests then find?

Each pair cohort plants one interaction; the share of the trait's variance it explains beyond both sites' own
effects is measured on the cohort itself (the planted form's term, and the whole 3 x 3 table, each against both
sites' genotype-class means), and set beside the shares the run's report calls detectable and beside what the
saturated and the deep test found. Pairs above the detectable share should mostly be found, those well below mostly
not; the permutation tests are expected a little below the formula (their nulls cost power).

    PYTHONPATH=src:benchmarks .venv/bin/python benchmarks/detectable_vs_found.py --out runs/detectable \
        product:0.04:3100 one_carrier:0.04:3101 threshold:0.04:3102 product:0.12:3103 one_carrier:0.12:3104 \
        both_dominant:0.12:3105 both_recessive:0.12:3106 threshold:0.2:3107
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from biolens.readers.variants import read_vcf
from biolens.simulate import interaction_values, simulate_cohort
from biolens.stats.two_locus import genotype_classes
from biolens.tasks.associate import associate

from association_grid import score


def beyond_main_effects(vcf: Path, cohort) -> dict:
    """The planted interaction's share of the trait variance beyond both sites' genotype-class means: of its form's
    one term, and of the whole 3 x 3 table."""
    genotypes = read_vcf(vcf)
    dosage, _ = genotypes.imputed()
    positions = np.asarray(genotypes.pos)
    a, b = (int(np.flatnonzero(positions == site)[0]) for site in cohort.truth["pair"])
    classes = genotype_classes(dosage[:, [a, b]])
    trait = cohort.phenotypes["yield"].to_numpy(float)
    total = float(((trait - trait.mean()) ** 2).sum())

    def residual(design: np.ndarray) -> float:
        fitted = design @ np.linalg.lstsq(design, trait, rcond=None)[0]
        return float(((trait - fitted) ** 2).sum())

    main = np.column_stack([np.ones(len(trait))] + [classes[:, k] == c for k in (0, 1) for c in (1, 2)]).astype(float)
    form = interaction_values(cohort.truth["form"], dosage[:, a], dosage[:, b])
    table = np.column_stack([(classes[:, 0] == i) & (classes[:, 1] == j) for i in range(3) for j in range(3)])
    return {"share_one_form": (residual(main) - residual(np.column_stack([main, form]))) / total,
            "share_any_form": (residual(main) - residual(table.astype(float))) / total}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("cohorts", nargs="+", help="form:variance_explained:seed")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    for spec in args.cohorts:
        form, share, seed = spec.split(":")
        folder = args.out / spec.replace(":", "_")
        cohort = simulate_cohort("pair", trait="quantitative", seed=int(seed), form=form,
                                 variance_explained=float(share))
        paths = cohort.write(folder)
        associate(paths["phenotypes"], "yield", folder / "run", genotypes=paths["genotypes"])
        found = score(folder / "run", paths["genotypes"], cohort.truth)
        detectable = json.loads((folder / "run" / "metrics.json").read_text())["detectable"]
        record = {"cohort": spec, **{k: round(v, 4) for k, v in beyond_main_effects(paths["genotypes"], cohort).items()},
                  "detectable_one_form": round(detectable["pair_share_one_form"], 4),
                  "detectable_any_form": round(detectable["pair_share_any_form"], 4),
                  **{k: found.get(k) for k in ("deep_found", "saturated_found", "product_found", "table_rank")}}
        print(json.dumps(record), flush=True)
        with open(args.out / "results.jsonl", "a") as handle:
            handle.write(json.dumps(record) + "\n")


if __name__ == "__main__":
    main()
