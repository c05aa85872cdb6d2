"""Which named form a pair's interaction takes, read from its 3 x 3 genotype table.

The saturated test says that two sites act together, not how. A biologist asks: do both need the minor allele
(dominant x dominant), both two copies (recessive x recessive), is it a product of dosages, a threshold on the
number of minor alleles? Each named form is one direction in the table's interaction space (what the 3 x 3 cell
means add to both sites' three genotype means); the form that explains most of the pair's interaction sum of
squares is reported with that share, its effect and how many individuals it rests on. Computed for the pairs a
table shows, from minor-allele counts.

Haploid individuals (bacteria, haploid phases of fungi and plants, a FASTA of bare ids) have a 2 x 2 table: one
interaction direction, on which the product, "dominant x dominant", "heterozygote x heterozygote" and "2+ minor
alleles" all coincide. Its name there is HAPLOID_FORM; no heterozygote is named where none can exist.
"""
from __future__ import annotations

import numpy as np

from biolens.stats.two_locus import MAIN_DESIGN, table_fits

# name -> the pattern's value in cell (a, b), a and b the two sites' minor-allele counts
FORMS = {
    "product": lambda a, b: a * b,
    "dominant x dominant": lambda a, b: (a > 0) & (b > 0),
    "recessive x recessive": lambda a, b: (a == 2) & (b == 2),
    "dominant x recessive": lambda a, b: (a > 0) & (b == 2),
    "recessive x dominant": lambda a, b: (a == 2) & (b > 0),
    "heterozygote x heterozygote": lambda a, b: (a == 1) & (b == 1),
    "3+ minor alleles": lambda a, b: a + b >= 3,
    "2+ minor alleles": lambda a, b: a + b >= 2,
}
HAPLOID_FORM = "both carry"  # the one form of a 2 x 2 table; a negative effect: the sites act when exactly one carries
_CELLS = np.array([(a, b) for a in range(3) for b in range(3)])
_PATTERNS = np.stack([np.asarray(f(_CELLS[:, 0], _CELLS[:, 1]), dtype=np.float64) for f in FORMS.values()], axis=1)


def minor_counts(dosage: np.ndarray, ploidy: int = 2) -> np.ndarray:
    """Copies of each site's minor allele per individual (0, 1, 2; a polyploid's 2 or more as 2): the allele at most
    half of the ploidy x individuals copies carry (for haploids, the alt allele only where fewer than half carry it)."""
    copies = np.clip(np.rint(dosage), 0, ploidy)
    minor = np.where(copies.mean(0) <= ploidy / 2, copies, ploidy - copies)
    return np.minimum(minor, 2).astype(np.int8)  # a polyploid's 2+ copies are one class, as in the pair tables


FEW_INDIVIDUALS = 10  # a claim whose form's evidence is half held by fewer individuals is pointed out in the report


def interaction_forms(minor: np.ndarray, y: np.ndarray, pairs: np.ndarray,
                      ploidy: int = 2) -> list[tuple[str, float, float, int]]:
    """(form, effect, share, individuals) per pair: the named form whose direction explains most of the pair's
    interaction sum of squares (several joined by " = " where the table's filled cells cannot tell them apart); its
    coefficient given both sites' genotype means, in trait units (a binary trait: the share of cases), i.e. how far
    individuals in the form's cells sit from what the two sites' own effects predict ("dominant x dominant" with a
    negative effect is the "exactly one carries the minor allele" form); the share of the interaction sum of
    squares it explains (1: the table's whole departure from main effects is this form); and the individuals it
    rests on: the fewest individuals that hold half the information about its effect beside both sites' genotype
    means (`_half_the_evidence`): 3 when the form is five double homozygotes, 50-90 for a product of two common
    sites, whose double homozygotes hold the most.
    Why: a form resting on a handful of individuals is also fitted by any other pair whose table singles out the
    same individuals, and in a region with little recombination there are often several (docs/association.md).
    ("", nan, nan, 0) where there is no interaction.

    minor: individuals x sites (`minor_counts`); y: the trait with covariates already regressed out; ploidy 1: the
    one form is named HAPLOID_FORM.
    """
    y = np.asarray(y, dtype=np.float64) - np.mean(y)
    found = []
    for a, b in pairs:
        cell = 3 * minor[:, a].astype(np.int64) + minor[:, b]
        counts = np.bincount(cell, minlength=9).astype(np.float64)
        sums = np.bincount(cell, weights=y, minlength=9)
        form = _best_form(counts, sums)
        found.append((HAPLOID_FORM, *form[1:]) if ploidy == 1 and form[0] else form)
    return found


def _best_form(counts: np.ndarray, sums: np.ndarray) -> tuple[str, float, float, int]:
    cell_ss, main_ss, gram = table_fits(counts[None], sums[None, :, None])  # one pair, one trait
    cell_ss, interaction_ss, gram = float(cell_ss[0, 0]), float(cell_ss[0, 0] - main_ss[0, 0]), gram[0]
    # each pattern with the main effects taken out, in the metric of the cell counts
    residual = _PATTERNS - MAIN_DESIGN @ np.linalg.solve(gram, (MAIN_DESIGN * counts[:, None]).T @ _PATTERNS)
    size = (residual ** 2 * counts[:, None]).sum(0)
    usable = size > 1e-9 * max(counts.sum(), 1.0)
    if interaction_ss <= 1e-12 * max(cell_ss, 1e-300) or not usable.any():
        return "", float("nan"), float("nan"), 0
    along = residual.T @ sums
    explained = np.where(usable, along ** 2 / np.where(usable, size, 1.0), -np.inf)
    # forms that coincide on this table's filled cells (rare sites leave cells empty: with no homozygote, a product
    # and "both carry" are one pattern) are all named, joined by " = "
    tied = np.flatnonzero(explained >= explained.max() * (1 - 1e-6))
    best = int(tied[0])
    return (" = ".join(list(FORMS)[t] for t in tied), float(along[best] / size[best]),
            float(min(explained[best] / interaction_ss, 1.0)), _half_the_evidence(counts, residual[:, best]))


def _half_the_evidence(counts: np.ndarray, residual: np.ndarray) -> int:
    """The fewest individuals that hold half the information about a form's effect: each individual holds the square
    of the form's pattern minus its fit by both sites' genotype means (what it adds to 1 / SE^2), taken largest first.
    """
    held = residual ** 2
    order = np.argsort(-held)
    total = float((counts * held).sum())
    taken, individuals = 0.0, 0
    for cell in order:
        if counts[cell] == 0 or held[cell] == 0:
            continue
        need = int(np.ceil((total / 2 - taken) / held[cell] - 1e-9))
        if need <= counts[cell]:
            return individuals + max(need, 1)
        taken += counts[cell] * held[cell]
        individuals += int(counts[cell])
    return individuals
