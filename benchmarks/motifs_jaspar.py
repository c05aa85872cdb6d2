"""Two-factor sets planted with real factors' JASPAR matrices: is each factor in the top 10 of motifs.tsv, and is it
named by its own factor (or a factor of its family)?

Each class is the 'peaks' of one vertebrate factor: sites sampled from the factor's JASPAR CORE probability matrix
(pyjaspar, the newest release it ships) in a share of the sequences, sometimes twice, either strand, in a background
of the class's GC. A factor is *found* at the first motifs.tsv row whose matrix matches the generating one
(explain.motifs.similarity >= 0.5, and more than the other factor's); it is *named* when that row's known_motif or
also_like holds the factor's name, *named in family* when one of them is a factor of the same JASPAR family (and
`named_in_top10` lists the factors some row of the first 10 is named by). A row
beyond composition that matches neither factor but carries a name is a *stray name*. The agreement of every row
with its best JASPAR candidates is saved (`candidates`) to read the naming bars against. Default settings of
`biolens train`; the pairs were chosen from JASPAR's vertebrate CORE for variety of length and information, before
any run.

    PYTHONPATH=src .venv/bin/python benchmarks/motifs_jaspar.py [--pairs first|fresh|sparse] [--seeds 1]
        [--per-class 400] [--out /tmp/motifs_jaspar] [--background genome-like] [--summits 25]
    PYTHONPATH=src .venv/bin/python benchmarks/motifs_jaspar.py --classes four|four-b|six [--share 0.5]

With `--summits SD` each class's own sites sit near the middle of its sequences (a normal offset of SD bases), as in
peaks centred on their summits; the found factors' central enrichment (motifs.tsv central_*) is then read against
the same sets with sites anywhere.
"""
from __future__ import annotations

import argparse
import csv
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
from motifs_two_factor import plant, read_meme  # noqa: E402

# (factor A, factor B, share of A sequences with a site, share of B, GC of A background, GC of B background)
PAIRS = {"first": [("GATA1", "TAL1::TCF3", 0.6, 0.6, 0.45, 0.45), ("CTCF", "REST", 0.6, 0.6, 0.50, 0.50),
                   ("FOXA2", "HNF4A", 0.6, 0.6, 0.42, 0.45), ("SPI1", "CEBPB", 0.6, 0.6, 0.45, 0.45),
                   ("TP53", "MEF2C", 0.6, 0.6, 0.45, 0.42), ("SOX2", "POU5F1", 0.6, 0.6, 0.42, 0.42)],
         "fresh": [("YY1", "NRF1", 0.5, 0.5, 0.50, 0.55), ("IRF4", "STAT3", 0.5, 0.5, 0.45, 0.45),
                   ("NFYA", "ELK1", 0.5, 0.5, 0.48, 0.50), ("RUNX1", "ESR1", 0.5, 0.5, 0.45, 0.48)],
         # sites in a third of the sequences (run with --per-class 250): where the network's reach ends
         "sparse": [("GATA1", "SPI1", 0.35, 0.35, 0.45, 0.45), ("FOXA2", "CEBPB", 0.35, 0.35, 0.42, 0.45),
                    ("SOX2", "TP53", 0.35, 0.35, 0.42, 0.45), ("REST", "MEF2C", 0.35, 0.35, 0.50, 0.42),
                    ("CTCF", "HNF4A", 0.35, 0.35, 0.50, 0.45), ("IRF4", "NRF1", 0.35, 0.35, 0.45, 0.55)]}


# More than two classes, one factor each (--classes): pairs of factors planted as above (sites in --share of each
# class, GC 0.45) and then pooled, each class named by its factor; chosen before any run
CLASS_SETS = {"four": [("CTCF", "GATA1"), ("HNF4A", "SPI1")], "four-b": [("TP53", "SOX2"), ("NRF1", "MEF2C")],
              "six": [("CTCF", "GATA1"), ("HNF4A", "SPI1"), ("REST", "FOXA2")]}


# Human dinucleotide frequencies (per 100 dinucleotides, rows the first base ACGT; CpG depleted to ~1/4 of its
# expectation), the first-order chain the genome-like background draws from
HUMAN_DINUCLEOTIDES = np.array([[9.8, 5.0, 7.0, 7.6], [7.3, 5.2, 1.0, 7.0], [6.0, 4.2, 5.2, 5.0], [6.5, 6.0, 7.3, 9.8]])


class GenomeLike:
    """Backgrounds with what real peak sets share and plain random bases lack: a CpG-depleted first-order chain;
    CpG-island stretches (GC 0.65, CpG not depleted) in a share of each class's sequences that differs between the
    classes, as promoter-bound and distal factors' peaks differ; copies of one interspersed repeat (a 280-base
    consensus, 12% of bases changed per copy) and simple repeats in both classes alike; and sites of a third factor
    (AP-1, FOS::JUN) in 15% of both classes, which tells the classes nothing apart. With `partners` (class ->
    the other factor's matrix) and `partner_share`, each class also holds the other factor's sites in that share of
    its sequences, as factors that bind together (GATA1 and TAL1) share peaks."""

    def __init__(self, islands: dict[str, float], seed: int = 12345, partners: dict | None = None,
                 partner_share: float = 0.0):
        rng = np.random.default_rng(seed)
        self.islands, self.partners, self.partner_share = islands, partners or {}, partner_share
        self.transitions = HUMAN_DINUCLEOTIDES / HUMAN_DINUCLEOTIDES.sum(axis=1, keepdims=True)
        self.start = HUMAN_DINUCLEOTIDES.sum(axis=1) / HUMAN_DINUCLEOTIDES.sum()
        self.repeat = rng.choice(4, 280, p=[0.24, 0.26, 0.26, 0.24])
        self.shared_factor = jaspar_matrix("FOS::JUN")[0]

    def __call__(self, rng, size: int, gc: float, label: str) -> np.ndarray:
        codes = np.empty(size, dtype=int)
        codes[0] = rng.choice(4, p=self.start)
        draws = rng.random(size)
        cumulative = np.cumsum(self.transitions, axis=1)
        for i in range(1, size):
            codes[i] = min(int(np.searchsorted(cumulative[codes[i - 1]], draws[i])), 3)
        if rng.random() < self.islands[label]:
            width = min(size, int(rng.integers(200, 400)))
            start = int(rng.integers(0, size - width + 1))
            codes[start:start + width] = rng.choice(4, width, p=[0.175, 0.325, 0.325, 0.175])
        if rng.random() < 0.15:
            copy = self.repeat.copy()
            changed = rng.random(copy.size) < 0.12
            copy[changed] = rng.integers(0, 4, changed.sum())
            cut = int(rng.integers(0, 120))
            copy = copy[cut:][:size]
            start = int(rng.integers(0, size - copy.size + 1))
            codes[start:start + copy.size] = copy
        if rng.random() < 0.10:
            unit = [[0, 1], [0], [1, 0, 2]][int(rng.integers(0, 3))]  # (AC)n, poly-A, (CAG)n
            tract = np.array((unit * 40)[:int(rng.integers(16, 40))])
            start = int(rng.integers(0, size - tract.size + 1))
            codes[start:start + tract.size] = tract
        for matrix, share in ((self.shared_factor, 0.15), (self.partners.get(label), self.partner_share)):
            if matrix is None or share <= 0 or rng.random() >= share:
                continue
            site = np.array([rng.choice(4, p=row) for row in matrix])
            if rng.random() < 0.5:
                site = 3 - site[::-1]
            start = int(rng.integers(0, size - site.size + 1))
            codes[start:start + site.size] = site
        return np.array(list("ACGT"))[codes]


def jaspar_matrix(name: str):
    """The vertebrate CORE matrix of `name` (the first JASPAR lists), as (width, 4) probabilities, its id, family."""
    from pyjaspar import jaspardb

    found = [m for m in jaspardb().fetch_motifs_by_name(name)
             if m.collection == "CORE" and m.tax_group == "vertebrates"]
    motif = found[0]
    counts = np.array([motif.counts[b] for b in "ACGT"], dtype=float).T
    return counts / counts.sum(axis=1, keepdims=True), motif.matrix_id, "; ".join(motif.tf_family or [])


def _tomtom_best(matrix: np.ndarray, database, keep: int = 8) -> list:
    """The database's best Tomtom matches of one learned matrix, with q and agreement, before any bar."""
    from memelite import tomtom
    from scipy.stats import false_discovery_control

    from biolens.explain.known_motifs import agreement

    p = tomtom([matrix.T], [k.probabilities.T for k in database], n_jobs=1)[0][0]
    q = false_discovery_control(np.clip(p, 0, 1))
    return [{"name": database[j].name, "id": database[j].id, "family": database[j].family, "q": float(f"{q[j]:.3g}"),
             "agreement": round(agreement(matrix, database[j].probabilities), 3)} for j in np.argsort(p)[:keep]]


def score_run(run: Path, planted: dict, database, family_of: dict) -> dict:
    """Where each planted factor (name -> (matrix, id, family)) is found and named in the run's motifs.tsv."""
    from biolens.explain import known_motifs
    from biolens.explain.motifs import similarity

    rows = list(csv.DictReader(open(run / "motifs.tsv"), delimiter="\t"))
    learned = read_meme(run / "motifs.meme")
    likeness = [{f: similarity(v[0], learned[r["motif"]]) for f, v in planted.items()} for r in rows]
    found, stray, named_in_top10 = {}, 0, set()
    for i, (row, like) in enumerate(zip(rows, likeness)):
        ids = [row["known_id"]] + re.findall(r"\((MA\d+\.\d+)", row["also_like"])
        names = [row["known_motif"].upper()] + [n.split(" (")[0].upper() for n in row["also_like"].split("; ")]
        best = max(like, key=like.get)
        if like[best] < 0.5:
            stray += bool(row["known_motif"]) and row["beyond_composition"] == "True"
            continue
        if i < 10 and best.upper() in names:
            named_in_top10.add(best)
        if best in found:
            continue
        family = planted[best][2]
        found[best] = {"rank": i + 1, "favours": row["favours"], "named": best.upper() in names,
                       "named_in_family": any(family_of.get(x) == family for x in ids if x),
                       "known_motif": row["known_motif"], "also_like": row["also_like"],
                       "beyond_composition": row["beyond_composition"] == "True",
                       **{k: float(row[k]) for k in ("central_share", "central_expected", "central_p") if row.get(k)}}
    candidates = []
    for row in rows[:10]:
        if row["beyond_composition"] != "True":
            continue
        matrix = learned[row["motif"]]
        like = likeness[rows.index(row)]
        planted_here = max(like, key=like.get) if max(like.values()) >= 0.5 else None
        candidates.append({"motif": row["motif"], "planted": planted_here, "agreement_with_planted": {
                               f: round(known_motifs.agreement(matrix, v[0]), 3) for f, v in planted.items()},
                           "tomtom_best": _tomtom_best(matrix, database)})
    metrics = json.loads((run / "metrics.json").read_text())
    return {"balanced_accuracy": round(metrics["balanced_accuracy"], 3),
            "factors": {f: found.get(f) for f in planted}, "stray_names": stray,
            "named_in_top10": sorted(named_in_top10), "candidates": candidates}


def trained_and_scored(name: str, data: Path, run: Path, seed: int, planted: dict, database, family_of) -> dict:
    """`biolens train` on data/seqs.fasta with data/labels.tsv (unless the run is there already), scored and printed."""
    if not (run / "motifs.tsv").exists():
        subprocess.run([sys.executable, "-m", "biolens", "train", str(data / "seqs.fasta"), "--labels",
                        str(data / "labels.tsv"), "--out", str(run), "--seed", str(seed)], check=True,
                       capture_output=True, cwd=ROOT)
    result = {"set": name, "planted_ids": {f: v[1] for f, v in planted.items()},
              **score_run(run, planted, database, family_of)}
    print(json.dumps({k: v for k, v in result.items() if k != "candidates"}), flush=True)
    return result


def several_classes(args, database, family_of) -> list[dict]:
    """--classes: each pair of CLASS_SETS[args.classes] planted as a two-class set, then pooled, a class per factor."""
    results = []
    for seed in range(args.seeds):
        name = f"{args.classes}_{args.background}_s{seed}"
        folder, run = Path(args.out) / name / "data", Path(args.out) / name / "run"
        planted = {}
        fasta, labels = [], ["id\tlabel\n"]
        for k, (a, b) in enumerate(CLASS_SETS[args.classes]):
            planted.update({f: jaspar_matrix(f) for f in (a, b)})
            part = folder / f"part{k}"
            plant(part, (a, b, args.share, args.share, 0.45, 0.45), {f: planted[f][0] for f in (a, b)},
                  args.per_class, 100 * seed + k, summit_sd=args.summits,
                  background=GenomeLike({"A": 0.2, "B": 0.2}) if args.background == "genome-like" else None)
            fasta.append((part / "seqs.fasta").read_text().replace(">", f">p{k}_"))
            for row in list(csv.reader(open(part / "labels.tsv"), delimiter="\t"))[1:]:
                labels.append(f"p{k}_{row[0]}\t{a if row[1] == 'A' else b}\n")
        (folder / "seqs.fasta").write_text("".join(fasta))
        (folder / "labels.tsv").write_text("".join(labels))
        results.append(trained_and_scored(name, folder, run, seed, planted, database, family_of))
        own = [f for f, v in results[-1]["factors"].items() if v and v["rank"] <= 10 and v["favours"] == f]
        print(f"{name}: {len(own)} of {len(planted)} factors in the top 10 favouring their own class", flush=True)
    return results


def main() -> None:
    from biolens.explain import known_motifs

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", choices=tuple(PAIRS), default="first")
    parser.add_argument("--seeds", type=int, default=1)
    parser.add_argument("--per-class", type=int, default=400)
    parser.add_argument("--out", default="/tmp/motifs_jaspar")
    parser.add_argument("--background", choices=("random", "genome-like"), default="random",
                        help="genome-like: CpG-depleted chain, CpG islands in 30%% of class A and 10%% of B, "
                             "shared repeats and a shared third factor (GenomeLike)")
    parser.add_argument("--per-class-b", type=int, default=None,
                        help="sequences in class B (default --per-class): classes of unequal size")
    parser.add_argument("--only", default=None, help="run only the pairs that hold this factor (e.g. GATA1)")
    parser.add_argument("--summits", type=float, default=None,
                        help="each class's own sites at the middle of its sequences, give or take a normal offset of "
                             "this SD in bases (peaks centred on their summits; partners' sites stay anywhere)")
    parser.add_argument("--partner-share", type=float, default=0.0,
                        help="with --background genome-like: each class also holds the other factor's sites in "
                             "this share of its sequences (factors that bind together)")
    parser.add_argument("--classes", choices=tuple(CLASS_SETS), default=None,
                        help="instead of pairs: one set of four or six classes, a factor each (CLASS_SETS)")
    parser.add_argument("--share", type=float, default=0.5, help="with --classes: share of each class with a site")
    args = parser.parse_args()
    out = Path(args.out)
    database, _ = known_motifs.load("jaspar")
    family_of = {m.id: m.family for m in database}
    results = several_classes(args, database, family_of) if args.classes else []
    for pair in PAIRS[args.pairs] if not args.classes else []:
        if args.only and args.only not in pair[:2]:
            continue
        planted = {f: jaspar_matrix(f) for f in pair[:2]}
        for seed in range(args.seeds):
            name = f"{pair[0]}_{pair[1]}_s{seed}".replace("::", "-")
            data, run = out / name / "data", out / name / "run"
            partners = {"A": planted[pair[1]][0], "B": planted[pair[0]][0]}
            plant(data, pair, {f: v[0] for f, v in planted.items()}, args.per_class, seed,
                  background=GenomeLike({"A": 0.3, "B": 0.1}, partners=partners, partner_share=args.partner_share)
                  if args.background == "genome-like" else None, n_b=args.per_class_b, summit_sd=args.summits)
            results.append(trained_and_scored(name, data, run, seed, planted, database, family_of))
    factors = [v for r in results for v in r["factors"].values()]
    top = [v for v in factors if v and v["rank"] <= 10]
    print(f"factors in the top 10: {len(top)} of {len(factors)}; at that row named by their own name: "
          f"{sum(v['named'] for v in top)}, by a factor of their family: {sum(v['named_in_family'] for v in top)}; "
          f"named by their own name on some row of the top 10: {sum(len(r['named_in_top10']) for r in results)}; "
          f"stray names: {sum(r['stray_names'] for r in results)}")
    read = [v for v in top if "central_p" in v]
    print(f"central enrichment (middle fifth) of the factors in the top 10: {len(read)} read, "
          f"{sum(v['central_p'] < 1e-3 for v in read)} at p < 0.001; shares "
          + ", ".join(f"{v['central_share']:.2f}/{v['central_expected']:.2f}" for v in read))
    (out / "result.json").write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
