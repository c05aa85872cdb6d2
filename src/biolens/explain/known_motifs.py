"""Learned motifs named by the known motifs they match, as a biologist would with Tomtom and JASPAR.

The database is JASPAR's CORE collection (the pyjaspar package ships its releases as SQLite files, so this works
offline; all taxa by default, or one taxon group), or the user's own MEME file (HOCOMOCO, CIS-BP, a lab's
collection). Each learned motif beyond composition (explain/motifs.py) is compared with every matrix by Tomtom
(Gupta et al. 2007; memelite's implementation: Euclidean column distances, complete scores, either strand), and
q-values are Benjamini-Hochberg over the database. A known matrix names a learned motif when q <= MAX_Q *and* the
two agree where they overlap (`agreement`: at the best shift and strand, the base distributions of the aligned
columns correlate at MIN_AGREEMENT or more on average, weighted by the smaller information of each pair, and the
overlap holds at least MIN_COVERAGE of the less informative matrix's information): Tomtom's Euclidean scores alone
call random low-information filters 'CTCF' at q ~ 0.003 (long matrices with soft flanks absorb anything), which the
agreement test does not let through. A learned matrix is often fuzzier than the database's, so agreement is a
correlation, not a share of bits. Composition
filters are not named: a match of "AT-rich" to an AT-rich homeobox site says nothing about a factor.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from biolens.errors import InputError

JASPAR_TAXA = ("vertebrates", "plants", "insects", "fungi", "nematodes", "urochordates")
CHOICES = ("jaspar", *(f"jaspar-{taxon}" for taxon in JASPAR_TAXA), "none")
MAX_Q = 0.05
MIN_AGREEMENT = 0.9    # mean column correlation over the overlap, weighted by information
MIN_COVERAGE = 0.5     # share of the less informative matrix's information inside the overlap
CANDIDATES = 25      # Tomtom's best matches per motif that the information test looks at
NAMES_KEPT = 3       # the best match and up to two more, of other names


@dataclass(frozen=True)
class KnownMotif:
    id: str
    name: str
    taxon: str
    probabilities: np.ndarray   # (width, 4), ACGT
    family: str = ""            # JASPAR's TF family (factors of one family share sites)


@dataclass(frozen=True)
class Match:
    known: KnownMotif
    q: float
    agreement: float


def check_choice(value: str) -> None:
    """`--known-motifs`: one of CHOICES or a readable MEME file (read now, not after training)."""
    if value in CHOICES:
        return
    if not Path(value).is_file():
        raise InputError(f"Invalid value for --known-motifs. Received: '{value}'. Expected {', '.join(CHOICES)}, or "
                         "a MEME motif file that exists (e.g. JASPAR or HOCOMOCO downloaded as MEME).")
    _meme_file(Path(value))


def load(choice: str) -> tuple[list[KnownMotif], str]:
    """The known motifs and a description for Methods ('' and [] for 'none')."""
    if choice == "none":
        return [], ""
    if choice in CHOICES:
        return _jaspar(choice.removeprefix("jaspar").removeprefix("-") or None)
    return _meme_file(Path(choice)), f"{Path(choice).name} (the user's MEME file)"


def _jaspar(taxon: str | None) -> tuple[list[KnownMotif], str]:
    try:
        from pyjaspar import jaspardb
    except ImportError:
        raise InputError("--known-motifs jaspar needs the pyjaspar package (pip install pyjaspar), or give "
                         "--known-motifs none.") from None
    database = jaspardb()  # the newest release the installed package ships
    found = database.fetch_motifs(collection="CORE", tax_group=[taxon] if taxon else None)
    motifs = []
    for motif in found:
        counts = np.array([motif.counts[base] for base in "ACGT"], dtype=float).T
        motifs.append(KnownMotif(motif.matrix_id, motif.name, str(motif.tax_group or ""),
                                 counts / np.maximum(counts.sum(axis=1, keepdims=True), 1e-9),
                                 "; ".join(motif.tf_family or [])))
    return motifs, f"{database.release} CORE ({taxon or 'all taxa'}; {len(motifs):,} matrices)"


def _meme_file(path: Path) -> list[KnownMotif]:
    from memelite.io import read_meme

    try:
        read = read_meme(str(path))
    except (ValueError, AttributeError, IndexError, UnicodeDecodeError) as error:
        raise InputError(f"{path}: not a readable MEME motif file ({type(error).__name__}: {error}); give the "
                         "'MEME version 4' text format (MOTIF lines, each with a letter-probability matrix).") from None
    if not read:
        raise InputError(f"{path}: no motifs found (no 'MOTIF' line followed by a letter-probability matrix).")
    motifs = []
    for header, matrix in read.items():
        fields = header.split()
        probabilities = np.clip(np.asarray(matrix, dtype=float).T, 0, None)
        if probabilities.shape[1] != 4:
            raise InputError(f"{path}: motif '{header}' has {probabilities.shape[1]} letters; DNA motifs have 4.")
        probabilities /= np.maximum(probabilities.sum(axis=1, keepdims=True), 1e-9)
        motifs.append(KnownMotif(fields[0], fields[1] if len(fields) > 1 else fields[0], "", probabilities))
    return motifs


def best_matches(queries: list[np.ndarray], known: list[KnownMotif], keep: int = NAMES_KEPT) -> list[list[Match]]:
    """For each query matrix (width, 4): the known motifs that match it, best first (Tomtom's p), one per name and at
    most `keep`; empty when none passes both bars."""
    from memelite import tomtom
    from scipy.stats import false_discovery_control

    if not queries or not known:
        return [[] for _ in queries]
    p = tomtom([q.T for q in queries], [k.probabilities.T for k in known], n_jobs=1)[0]
    out = []
    for row, query in zip(p, queries):
        q = false_discovery_control(np.clip(row, 0, 1))
        kept, names = [], set()
        for j in np.argsort(row)[:CANDIDATES]:
            if q[j] > MAX_Q or known[j].name.upper() in names:
                continue
            agree = agreement(query, known[j].probabilities)
            if agree >= MIN_AGREEMENT:
                kept.append(Match(known[j], float(q[j]), agree))
                names.add(known[j].name.upper())
            if len(kept) == keep:
                break
        out.append(kept)
    return out


def warm_up() -> None:
    """Compile Tomtom now (memelite's numba code, cached in its package): the first comparison in a fresh environment
    takes 35-45 s of compiling on 2 cores and later ones a few, so `make install` calls this once and a biologist's
    first sequence run does not pay it. Random matrices against a small random database take every compiled path
    the naming takes."""
    rng = np.random.default_rng(0)
    known = [KnownMotif(f"m{k}", f"m{k}", "", rng.dirichlet(np.ones(4), 6 + k % 8)) for k in range(30)]
    best_matches([rng.dirichlet(np.ones(4), 10), rng.dirichlet(np.ones(4), 6)], known)


def agreement(a: np.ndarray, b: np.ndarray) -> float:
    """How well two matrices (width, 4) agree where they overlap, at the best shift and on either strand of `b`:
    the mean correlation of the aligned columns' base distributions, weighted by the smaller information of each
    pair; alignments whose overlap holds less than MIN_COVERAGE of the less informative matrix's information do not
    count (0 when none qualifies)."""
    from biolens.explain.motifs import information_content

    def centred(m):
        return m - m.mean(axis=1, keepdims=True)

    bits_a = information_content(a)
    best = 0.0
    for other in (b, b[::-1, ::-1]):
        bits_b = information_content(other)
        total = min(bits_a.sum(), bits_b.sum())
        for shift in range(1 - len(other), len(a)):
            lo, hi = max(0, shift), min(len(a), shift + len(other))
            weight = np.minimum(bits_a[lo:hi], bits_b[lo - shift:hi - shift])
            if weight.sum() <= 0 or weight.sum() < MIN_COVERAGE * total:
                continue
            x, y = centred(a[lo:hi]), centred(other[lo - shift:hi - shift])
            r = (x * y).sum(axis=1) / np.sqrt((x * x).sum(axis=1) * (y * y).sum(axis=1) + 1e-12)
            best = max(best, float((r * weight).sum() / weight.sum()))
    return best


def name_motifs(motifs: list, known: list[KnownMotif], description: str) -> dict:
    """Set `known` (a list of Match) on each motif beyond composition, the set's own taxon's factors first
    (`set_taxon`); returns notes for metrics.json."""
    named = [m for m in motifs if m.beyond_composition]
    every = best_matches([m.probabilities for m in named], known, keep=CANDIDATES)
    taxon = set_taxon(every)
    for motif, matches in zip(named, every):
        motif.known = taxon_first(matches, taxon)
    return {"database": description or "none", "compared": len(named) if known else 0,
            "named": sum(bool(m.known) for m in named) if known else 0, "max_q": MAX_Q,
            "min_agreement": MIN_AGREEMENT, "min_coverage": MIN_COVERAGE, "taxon_first": taxon}


def set_taxon(matches: list[list[Match]]) -> str | None:
    """The taxon that most named motifs' best match belongs to, where it is at least two of them and more than half:
    a set's motifs come from one organism. Why: with all of JASPAR's taxa a human GATA1 site's best Tomtom match was a
    soybean GATA factor (equal agreement), beside human CTCF, SPI1 and HNF4A named by their own (docs/decisions.md)."""
    from collections import Counter

    votes = Counter(found[0].known.taxon for found in matches if found and found[0].known.taxon)
    if not votes:
        return None
    taxon, count = votes.most_common(1)[0]
    return taxon if count >= 2 and 2 * count > sum(votes.values()) else None


def taxon_first(matches: list[Match], taxon: str | None, keep: int = NAMES_KEPT) -> list[Match]:
    """The first `keep` matches, those of `taxon` ahead of the others (each group in Tomtom's order)."""
    return sorted(matches, key=lambda m: m.known.taxon != taxon)[:keep] if taxon else matches[:keep]


def describe(match: Match) -> str:
    """'GATA1 (MA0035.5, vertebrates)'."""
    where = ", ".join(x for x in (match.known.id if match.known.id != match.known.name else "", match.known.taxon) if x)
    return f"{match.known.name} ({where})" if where else match.known.name
