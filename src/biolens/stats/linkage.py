"""Linkage disequilibrium between sites: r^2 and the blocks of sites a study cannot tell apart."""
from __future__ import annotations

import numpy as np
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import connected_components

BLOCK_R2 = 0.8
SAME_GENOTYPES_R2 = 0.99  # sites this correlated carry one genotype pattern: no study of these individuals parts them


def r_squared(dosage: np.ndarray) -> np.ndarray:
    """Squared Pearson correlation of dosages between every pair of sites (sites x sites, float32)."""
    standard = _unit_columns(dosage).astype(np.float32)
    return np.clip((standard.T @ standard) ** 2, 0, 1)


def _unit_columns(dosage: np.ndarray) -> np.ndarray:
    """Each site's dosages centred and scaled to unit length (a site without variation stays zero)."""
    centred = dosage - dosage.mean(0)
    scale = np.sqrt((centred**2).sum(0))
    return centred / np.where(scale > 0, scale, 1)


def pair_r_squared(dosage: np.ndarray, pairs: np.ndarray, block: int = 4096) -> np.ndarray:
    """r^2 between the two sites of each pair (K x 2 site indices), without the sites x sites matrix."""
    standard = _unit_columns(dosage)
    out = np.empty(len(pairs), dtype=np.float64)
    for start in range(0, len(pairs), block):
        a, b = pairs[start:start + block, 0], pairs[start:start + block, 1]
        out[start:start + block] = np.einsum("ik,ik->k", standard[:, a], standard[:, b]) ** 2
    return np.clip(out, 0, 1)


def blocks(r2: np.ndarray, threshold: float = BLOCK_R2) -> np.ndarray:
    """Block id per site (1-based): sites joined by any chain of r^2 >= threshold share a block.

    A hit's block lists its statistically indistinguishable neighbours; ids are numbered in site order.
    """
    _, labels = connected_components(csr_matrix(r2 >= threshold), directed=False)
    first_seen = {label: i for i, label in reversed(list(enumerate(labels)))}
    order = {label: rank for rank, label in enumerate(sorted(first_seen, key=first_seen.get), start=1)}
    return np.asarray([order[label] for label in labels])


def clump(order: np.ndarray, r2: np.ndarray, threshold: float = BLOCK_R2) -> tuple[np.ndarray, np.ndarray]:
    """PLINK --clump on a ranking: walking `order` (best evidence first), a site opens a new clump unless it is in
    r^2 >= threshold with the index site of an earlier one, which it joins. Returns the new order (every index site
    in the order of its evidence, then every tag in the order of its own) and the 1-based clump number per site.

    Why: in a region without recombination one signal is carried by dozens of sites; a list ranked by evidence alone
    shows that signal ten times in its first ten rows and pushes the second and third signals out of sight."""
    order = np.asarray(order)
    number = np.zeros(len(order), dtype=int)
    leaders: list[int] = []
    for site in order:
        if number[site]:
            continue  # already in the clump of an earlier index site
        leaders.append(int(site))
        joins = (number == 0) & (r2[site] >= threshold)  # vectorised: each index site claims its untaken tags
        joins[site] = True
        number[joins] = len(leaders)
    is_leader = np.zeros(len(order), dtype=bool)
    is_leader[leaders] = True
    return np.concatenate([order[is_leader[order]], order[~is_leader[order]]]), number


def clump_pairs(order: np.ndarray, pairs: np.ndarray, r2: np.ndarray, threshold: float = BLOCK_R2,
                head: int = 5000) -> tuple[np.ndarray, np.ndarray]:
    """`clump` for site pairs: walking the first `head` pairs of `order`, a pair joins the clump of an earlier index
    pair when each of its two sites is in r^2 >= threshold with a different site of that index pair; otherwise it
    opens a new clump. Returns the new order (index pairs of the head first, their tags after, then the rest of
    `order` unchanged) and the 1-based clump number per pair (0 past the head).

    Why: one interaction in a region without recombination is seen through every pair that tags its two sites; a
    table ranked by evidence alone shows it in its first twenty rows and hides a second one."""
    order = np.asarray(order)
    top = order[:head]
    a, b = pairs[top, 0], pairs[top, 1]
    number = np.zeros(len(pairs), dtype=int)
    taken = np.zeros(len(top), dtype=bool)
    leaders: list[int] = []
    for i in range(len(top)):
        if taken[i]:
            continue
        leaders.append(i)
        row_a, row_b = r2[a[i]], r2[b[i]]
        joins = ~taken & (((row_a[a] >= threshold) & (row_b[b] >= threshold))
                          | ((row_a[b] >= threshold) & (row_b[a] >= threshold)))
        joins[i] = True
        taken |= joins
        number[top[joins]] = len(leaders)
    is_leader = np.zeros(len(top), dtype=bool)
    is_leader[leaders] = True
    return np.concatenate([top[is_leader], top[~is_leader], order[head:]]), number


def distinct_patterns(members: np.ndarray, r2: np.ndarray) -> int:
    """How many of `members` (site indices) the genotypes can tell apart: sites clumped at r^2 >= SAME_GENOTYPES_R2
    count once. Why: in a region without recombination a credible set often holds 10-20 sites with the same
    genotypes; its size then says nothing about how precisely the signal was placed, its distinct patterns do."""
    members = np.asarray(members)
    if len(members) == 0:
        return 0
    _, number = clump(np.arange(len(members)), r2[np.ix_(members, members)], SAME_GENOTYPES_R2)
    return int(number.max())
