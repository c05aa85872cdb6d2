"""Does the allele a PLINK fileset counts change what an association run finds?

PLINK 1.9 calls the minor allele A1 and counts it, so a fileset may code a site the other way from the cohort's
VCF. Each cohort is run by the CLI as its VCF and as a PLINK fileset with about half the sites coded the other way
(allele 1 = REF, dosage 2 - d), and the two runs' outputs are compared. The alleles of a multi-allelic record keep
their coding (flipped, both would be named by the REF), so every site and pair has one name in both runs.

    PYTHONPATH=src .venv/bin/python benchmarks/plink_coding.py --out runs/plink_coding \
        pair:one_carrier:quantitative:2950 pair:both_dominant:binary:2951 additive:product:quantitative:2952
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
from bed_reader import to_bed

from biolens.readers.variants import read_vcf
from biolens.simulate import simulate_cohort

TESTS = {"deep": "perm", "saturated": "saturated", "product": "product", "plink": "epistasis"}


def flipped_fileset(vcf: Path, prefix: Path, seed: int) -> None:
    genotypes = read_vcf(vcf)
    positions, counts = np.unique(genotypes.pos, return_counts=True)
    single = np.isin(genotypes.pos, positions[counts == 1])
    flip = (np.random.default_rng(seed).random(genotypes.n_sites) < 0.5) & single
    alleles = list(zip(genotypes.alt, genotypes.ref))
    to_bed(f"{prefix}.bed", np.where(flip, 2 - genotypes.dosage, genotypes.dosage), properties={
        "iid": genotypes.samples, "chromosome": genotypes.chrom, "bp_position": genotypes.pos,
        "allele_1": [r if f else a for f, (a, r) in zip(flip, alleles)],
        "allele_2": [a if f else r for f, (a, r) in zip(flip, alleles)]})


def reading(run: Path) -> dict:
    variants = pd.read_csv(run / "variants.tsv", sep="\t")
    pairs = pd.read_csv(run / "interactions.tsv", sep="\t")
    variants.index = variants.pos.astype(str) + ":" + ["/".join(sorted(map(str, a))) for a in
                                                      zip(variants.ref, variants.alt)]
    name = dict(zip(zip(variants.pos, variants.alt.astype(str)), variants.index))  # (pos, alt) -> pos:allele set
    pairs["key"] = [tuple(sorted((name[(a, str(x))], name[(b, str(y))]))) for a, x, b, y in
                    zip(pairs.pos_a, pairs.alt_a, pairs.pos_b, pairs.alt_b)]
    return {"variants": variants,
            "claims": {t: sorted(pairs.key[pairs[f"q_{c}"] < 0.05]) for t, c in TESTS.items()},
            "metrics": json.loads((run / "metrics.json").read_text())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("cohorts", nargs="+", help="scenario:form:trait:seed")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    for spec in args.cohorts:
        scenario, form, trait, seed = spec.split(":")
        folder = args.out / spec.replace(":", "_")
        paths = simulate_cohort(scenario, trait=trait, seed=int(seed), form=form).write(folder)
        flipped_fileset(paths["genotypes"], folder / "flipped", int(seed))
        runs = {}
        for name, genotypes in (("vcf", paths["genotypes"]), ("plink", folder / "flipped")):
            subprocess.run([sys.executable, "-m", "biolens", "associate", "--genotypes", str(genotypes),
                            "--phenotypes", str(paths["phenotypes"]), "--trait",
                            "status" if trait == "binary" else "yield", "--out", str(folder / name)],
                           check=True, capture_output=True)
            runs[name] = reading(folder / name)
        a, b = runs["vcf"]["variants"], runs["plink"]["variants"].reindex(runs["vcf"]["variants"].index)
        relative = np.abs(a.importance - b.importance) / np.maximum(a.importance, 1e-12)
        print(json.dumps({
            "cohort": spec,
            "same_claims": {t: runs["vcf"]["claims"][t] == runs["plink"]["claims"][t] for t in TESTS},
            "claims": {t: len(runs["vcf"]["claims"][t]) for t in TESTS},
            "p_site_max_log10_difference": float(np.nanmax(np.abs(np.log10(a.p_site) - np.log10(b.p_site)))),
            "pip_max_difference": float(np.nanmax(np.abs(a.pip - b.pip))),
            "same_credible_sets": bool((a.credible_set.fillna(0) == b.credible_set.fillna(0)).all()),
            "credible_set_sites_differing": int((a.credible_set.fillna(0) != b.credible_set.fillna(0)).sum()),
            "importance_median_relative_difference_top20": float(relative.loc[a.index[:20]].median()),
            "same_first_5_rows": list(a.index[:5]) == list(runs["plink"]["variants"].index[:5]),
            "deep_metric": {k: round(v, 4) for k, v in runs["vcf"]["metrics"].items() if k in ("r2_deep", "auc_deep")},
            "deep_metric_plink": {k: round(v, 4) for k, v in runs["plink"]["metrics"].items()
                                  if k in ("r2_deep", "auc_deep")}}), flush=True)


if __name__ == "__main__":
    main()
