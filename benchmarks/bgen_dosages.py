"""Does reading a cohort from a BGEN change what an association run finds, with sure calls and with imputed ones?

Each grid cohort is run by the CLI three times: as its VCF; as a BGEN of the same hard calls (probabilities 0/1,
ids in a .sample beside it), which should find exactly the same; and as a BGEN of "imputed" calls. In the default
model, as imputation behaves, most calls are near-sure: each call gives `--blur` x U^3 of its certainty to a
neighbouring genotype (median 0.04 at 0.3; the nearest genotype stays right), and `--errors` of the minor-allele
carriers' calls are mostly (60-90%) put on a neighbouring genotype (imputation misses rare carriers more than it
invents them). `--uniform` blurs every call by `--blur` x U and puts `--errors` of all calls on a neighbouring
genotype, which also gives sites without carriers a few, so more sites pass --min-maf. Each run is scored as the
grid scores it (planted pair found by each test, planted additive sites in the top 10 and in credible sets)
against the cohort's truth.

    PYTHONPATH=src:benchmarks .venv/bin/python benchmarks/bgen_dosages.py --out runs/bgen_dosages \
        pair:one_carrier:quantitative:3000 pair:threshold:quantitative:3001 additive:product:quantitative:3002 \
        pair:product:binary:3003
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import numpy as np

from biolens.readers.variants import read_vcf
from biolens.simulate import simulate_cohort

from association_grid import score

KEEP = ("deep_found", "saturated_found", "product_found", "plink_found", "deep_false_leads", "saturated_false_leads",
        "table_rank", "additive_top10", "additive_in_set", "additive_small_set", "seconds")


def write_bgen(vcf: Path, path: Path, *, blur: float, errors: float, seed: int, uniform: bool = False) -> dict:
    """The VCF's diploid calls as BGEN probabilities (see the module docstring); ids in a .sample beside it."""
    import bgen

    genotypes = read_vcf(vcf)
    rng = np.random.default_rng(seed)
    n = len(genotypes.samples)
    moved = wrong = 0
    with bgen.BgenWriter(str(path), n_samples=n) as writer:
        for j in range(genotypes.n_sites):
            called = np.nan_to_num(genotypes.dosage[:, j]).astype(int).clip(0, 2)
            neighbour = np.where(called == 1, rng.choice([0, 2], n), 1)
            shift = blur * rng.random(n) ** (1 if uniform else 3)
            minor = called if called.mean() <= 1 else 2 - called
            mistaken = (rng.random(n) < errors) & (uniform | (minor > 0))
            shift[mistaken] = rng.uniform(0.6, 0.9, mistaken.sum())
            p = (1 - shift)[:, None] * np.eye(3)[called] + shift[:, None] * np.eye(3)[neighbour]
            p[np.isnan(genotypes.dosage[:, j])] = np.nan
            moved += int((shift > 0.05).sum())
            wrong += int(mistaken.sum())
            writer.add_variant(varid=f"v{j}", rsid=f"v{j}", chrom=genotypes.chrom[j], pos=int(genotypes.pos[j]),
                               alleles=[genotypes.ref[j], genotypes.alt[j]], genotypes=p)
    path.with_suffix(".sample").write_text("ID_1 ID_2 missing\n0 0 0\n" + "".join(f"{s} {s} 0\n"
                                                                                for s in genotypes.samples))
    return {"calls": int(genotypes.dosage.size), "blurred": moved, "wrong_genotype": wrong}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("cohorts", nargs="+", help="scenario:form:trait:seed")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--blur", type=float, default=0.3)
    parser.add_argument("--errors", type=float, default=0.02)
    parser.add_argument("--uniform", action="store_true", help="blur and errors on every call alike")
    args = parser.parse_args()
    for spec in args.cohorts:
        scenario, form, trait, seed = spec.split(":")
        folder = args.out / spec.replace(":", "_")
        cohort = simulate_cohort(scenario, trait=trait, seed=int(seed), form=form)
        paths = cohort.write(folder)
        inputs = {"vcf": paths["genotypes"]}
        made = {}
        for name, blur, errors in (("bgen_sure", 0.0, 0.0), ("bgen_imputed", args.blur, args.errors)):
            inputs[name] = folder / f"{name}.bgen"
            made[name] = write_bgen(paths["genotypes"], inputs[name], blur=blur, errors=errors, seed=int(seed),
                                    uniform=args.uniform)
        record = {"cohort": spec, "model": "uniform" if args.uniform else "carriers", "blur": args.blur,
                  "errors": args.errors, "bgen_imputed_calls": made["bgen_imputed"]}
        for name, genotypes in inputs.items():
            subprocess.run([sys.executable, "-m", "biolens", "associate", "--genotypes", str(genotypes),
                            "--phenotypes", str(paths["phenotypes"]), "--trait",
                            "status" if trait == "binary" else "yield", "--out", str(folder / name)],
                           check=True, capture_output=True)
            scored = score(folder / name, paths["genotypes"], cohort.truth)
            record[name] = {k: v for k, v in scored.items() if k in KEEP}
        record["bgen_sure_identical_tables"] = all(
            (folder / "vcf" / table).read_text() == (folder / "bgen_sure" / table).read_text()
            for table in ("variants.tsv", "interactions.tsv"))
        print(json.dumps(record), flush=True)
        with open(args.out / "results.jsonl", "a") as handle:
            handle.write(json.dumps(record) + "\n")


if __name__ == "__main__":
    main()
