"""Words enriched in one class of sequences against the others: the classical discriminative scan (DREME's: exact
6- and 8-mers, generalised one position at a time into IUPAC words while that raises their enrichment, the sites of
each word found erased before the next is sought) that seeds the sequence network's first-layer filters.

Why seed: a network trained from random filters learns a strong, long site readily but can miss a short or
degenerate one (WGATAR, an E-box) that a simple count of 6-mers sees at once (docs/sequences.md). A seeded filter
starts on that word and training refines it into a weight matrix, or leaves it if it does not help.
"""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np

MAX_SEQUENCES = 4_000    # sequences counted (an even spread beyond this: shares, not counts, are compared)
MIN_Z = 5.0              # two-proportion z of a word kept (about p < 3e-7: some 10^5 words are tried per class)
MIN_Z_BACKGROUND = 5.0   # ...and its z against the class's own Markov background (composition alone is no motif;
                         # the search tries thousands of words, so this line is as strict as the other)
SHARED = 5               # a word sharing this many bases in a row with a kept one (either strand) is the same site
MAX_EXPANSIONS = 8       # exact words a generalised word may stand for (WGATAR: 4); wider ones read composition
BEAM, BEAM_SLACK = 4, 1.0  # widenings kept per step, within this much z of the best word so far
STARTS = 40              # exact words, best z first, that are generalised into degenerate words each round
IUPAC = {"A": "A", "C": "C", "G": "G", "T": "T", "R": "AG", "Y": "CT", "S": "CG", "W": "AT", "K": "GT", "M": "AC",
         "N": "ACGT"}
WIDER = {"A": "RWMN", "C": "YSMN", "G": "RSKN", "T": "YWKN", "R": "N", "Y": "N", "S": "N", "W": "N", "K": "N",
         "M": "N", "N": ""}  # the codes one step wider than each letter


@dataclass(frozen=True)
class Word:
    word: str
    favours: int          # the class index it is enriched in
    z: float              # two-proportion z of "sequences holding it", this class against the others
    share_in: float       # share of this class's sequences holding it (either strand)
    share_out: float      # ...and of the other classes'


def word_matrix(word: str) -> np.ndarray:
    """An IUPAC word as a (width, 4) probability matrix, its letters' bases equally likely: to compare a word with
    learned or known motifs."""
    return np.array([[1.0 / len(IUPAC[letter]) if base in IUPAC[letter] else 0.0 for base in "ACGT"]
                     for letter in word])


def base_codes(one_hot: np.ndarray) -> np.ndarray:
    """(n, length) base codes 0-3 (ACGT), -1 where the column is all zero (N or padding)."""
    codes = one_hot.argmax(axis=2).astype(np.int64)
    codes[one_hot.max(axis=2) == 0] = -1
    return codes


def word_ids(codes: np.ndarray, k: int, both_strands: bool = True) -> np.ndarray:
    """(n, length - k + 1) ids of each k-long word (with `both_strands`, the smaller of the word's and its reverse
    complement's); -1 where the word holds an N."""
    n, length = codes.shape
    width = length - k + 1
    forward = np.zeros((n, width), np.int64)
    reverse = np.zeros((n, width), np.int64)
    bad = np.zeros((n, width), bool)
    for j in range(k):
        part = codes[:, j:j + width]
        bad |= part < 0
        forward = forward * 4 + np.maximum(part, 0)
        reverse += (3 - np.maximum(part, 0)) * 4**j  # complement, read backwards
    ids = np.minimum(forward, reverse) if both_strands else forward
    ids[bad] = -1
    return ids


def _decode(index: int, k: int) -> str:
    return "".join("ACGT"[(index >> (2 * (k - 1 - j))) & 3] for j in range(k))


def reverse_complement(word: str) -> str:
    """Reverse complement of a DNA word, IUPAC codes included."""
    return word.translate(str.maketrans("ACGTRYSWKMN", "TGCAYRSWMKN"))[::-1]


def _presence(codes: np.ndarray, k: int, both_strands: bool):
    """Sparse (sequences x 4**k) matrix, column-compressed: 1 where the sequence holds the word."""
    from scipy import sparse

    ids = word_ids(codes, k, both_strands)
    ordered = np.sort(ids, axis=1)
    first = np.ones_like(ordered, bool)
    first[:, 1:] = ordered[:, 1:] != ordered[:, :-1]
    keep = first & (ordered >= 0)
    rows = np.broadcast_to(np.arange(len(codes))[:, None], ordered.shape)[keep]
    return sparse.csc_matrix((np.ones(len(rows), np.int8), (rows, ordered[keep])), shape=(len(codes), 4**k))


_BASES = {letter: np.array(["ACGT".index(b) for b in bases]) for letter, bases in IUPAC.items()}


@functools.lru_cache(maxsize=65536)
def _columns(word: str, both_strands: bool = True) -> np.ndarray:
    """Ids of every exact word an IUPAC word stands for (canonical with `both_strands`); kept, since the beams of
    one search meet the same words again (read-only: the array is shared)."""
    ids = np.zeros(1, np.int64)
    for letter in word:
        ids = (ids[:, None] * 4 + _BASES[letter][None, :]).ravel()
    if not both_strands:
        ids = np.unique(ids)
        ids.flags.writeable = False
        return ids
    k = len(word)
    reverse = np.zeros_like(ids)
    for j in range(k):
        reverse += (3 - ((ids >> (2 * (k - 1 - j))) & 3)) << (2 * j)
    ids = np.unique(np.minimum(ids, reverse))
    ids.flags.writeable = False
    return ids


def _z(a: float, n_a: int, b: float, n_b: int) -> np.ndarray:
    """Two-proportion z of a/n_a against b/n_b (arrays or numbers; positive: more often in a)."""
    pooled = (a + b) / (n_a + n_b)
    return (a / n_a - b / n_b) / np.sqrt(np.maximum(pooled * (1 - pooled) * (1 / n_a + 1 / n_b), 1e-12))


def markov_background(codes: np.ndarray, rng: np.random.Generator, copies: int = 2) -> np.ndarray:
    """`copies` random sequences per sequence of `codes`, drawn from their own first-order Markov chain (base and
    dinucleotide frequencies), with the same lengths and N positions: what these sequences look like without motifs.
    A word enriched in a class only because that class is AT- or GC-rich is not enriched against this."""
    valid = codes >= 0
    first = np.bincount(codes[valid], minlength=4) + 1.0
    pairs = valid[:, 1:] & valid[:, :-1]
    transitions = np.bincount(codes[:, :-1][pairs] * 4 + codes[:, 1:][pairs], minlength=16).reshape(4, 4) + 1.0
    transitions /= transitions.sum(axis=1, keepdims=True)
    cumulative = transitions.cumsum(axis=1)
    out = np.repeat(codes, copies, axis=0)
    mask = out >= 0
    current = rng.choice(4, size=len(out), p=first / first.sum())
    draws = rng.random(out.shape)
    for j in range(out.shape[1]):
        if j:
            current = np.minimum((draws[:, j, None] > cumulative[current]).sum(axis=1), 3)
        out[:, j] = np.where(mask[:, j], current, -1)
    return out


def _holders(matrix, columns: np.ndarray) -> np.ndarray:
    """Which rows of a column-compressed presence matrix hold any of `columns`, read from its index arrays: the
    generalisation asks this some 10^4 times a class, and scipy's column slicing and sum cost 0.3 ms a call."""
    starts = matrix.indptr[columns]
    lengths = matrix.indptr[columns + 1] - starts
    offsets = np.repeat(starts - (np.cumsum(lengths) - lengths), lengths)
    held = np.zeros(matrix.shape[0], bool)
    held[matrix.indices[offsets + np.arange(int(lengths.sum()))]] = True
    return held


class _Counts:
    """Presence of words in this class's sequences, the other classes' and this class's Markov background; the
    score of a word is the smaller of its z against the others and against the background."""

    def __init__(self, codes: np.ndarray, background: np.ndarray, in_class: np.ndarray, k: int, both_strands: bool):
        self.both_strands = both_strands
        self.matrix, self.background = _presence(codes, k, both_strands), _presence(background, k, both_strands)
        self.in_class = in_class
        self.n_in, self.n_out, self.n_bg = int(in_class.sum()), int((~in_class).sum()), len(background)

    def all_words(self) -> np.ndarray:
        inside = np.asarray(self.matrix[self.in_class].sum(axis=0)).ravel().astype(float)
        outside = np.asarray(self.matrix[~self.in_class].sum(axis=0)).ravel().astype(float)
        shuffled = np.asarray(self.background.sum(axis=0)).ravel().astype(float)
        return np.minimum(_z(inside, self.n_in, outside, self.n_out),
                          _z(inside, self.n_in, shuffled, self.n_bg))

    def word(self, word: str) -> tuple[float, float, np.ndarray]:
        """(score, z against the other classes, which sequences hold it)."""
        columns = _columns(word, self.both_strands)
        held = _holders(self.matrix, columns)
        in_bg = float(_holders(self.background, columns).sum())
        inside, outside = float(held[self.in_class].sum()), float(held[~self.in_class].sum())
        z_others = float(_z(inside, self.n_in, outside, self.n_out))
        return min(z_others, float(_z(inside, self.n_in, in_bg, self.n_bg))), z_others, held


def _generalised(word: str, counts: _Counts) -> tuple[float, float, str, np.ndarray]:
    """The word widened one position at a time (a base to a two-base code, a two-base code to N), keeping the
    BEAM best widenings at each step, as long as that raises the score: DREME's generalisation, which turns AGATAA
    into WGATAR (a greedy single path misses it when the first widening alone gains little)."""
    score, z, held = counts.word(word)
    best = (score, z, word, held)
    beam, seen = [best], {word}
    while beam:
        wider_words = []
        for _, _, current, _ in beam:
            for j, letter in enumerate(current):
                for wider in WIDER[letter]:
                    candidate = current[:j] + wider + current[j + 1:]
                    if candidate in seen or candidate[0] == "N" or candidate[-1] == "N" \
                            or math.prod(len(IUPAC[b]) for b in candidate) > MAX_EXPANSIONS:
                        continue
                    seen.add(candidate)
                    score, z, held = counts.word(candidate)
                    wider_words.append((score, z, candidate, held))
        wider_words.sort(key=lambda t: -t[0])
        beam = [w for w in wider_words[:BEAM] if w[0] > best[0] - BEAM_SLACK]
        if wider_words and wider_words[0][0] > best[0]:
            best = wider_words[0]
    return best


def _erase(codes: np.ndarray, word: str, flank: int, both_strands: bool) -> None:
    """Set to N every site of `word` (either strand, any base its codes allow) and `flank` bases either side, in
    place: the next word is then sought beyond this site, so fragments of one long site are not taken for further
    sites (DREME's erasing)."""
    k = len(word)
    ids = word_ids(codes, k, both_strands)
    rows, starts = np.nonzero(np.isin(ids, _columns(word, both_strands)))
    length = codes.shape[1]
    for row, start in zip(rows, starts):
        codes[row, max(0, start - flank):min(length, start + k + flank)] = -1


def _overlaps(word: str, kept: list[str]) -> bool:
    """Whether the word shares SHARED bases in a row with a kept word on either strand (on one strand too: a
    reverse-complement fragment is still the same site's neighbourhood)."""
    for other in kept:
        for candidate in (other, reverse_complement(other)):
            for i in range(len(word) - SHARED + 1):
                if word[i:i + SHARED] in candidate:
                    return True
    return False


def enriched_words(one_hot: np.ndarray, y: np.ndarray, n_classes: int, *, per_class: int = 4,
                   lengths: tuple[int, ...] = (6, 8), flank: int = 4, seed: int = 0,
                   both_strands: bool = True) -> list[Word]:
    """Up to `per_class` distinct words per class, each held by a larger share of that class's sequences than of
    the others' (z >= MIN_Z) and than of a Markov background of the class's own composition (z >= MIN_Z_BACKGROUND),
    on either strand (or the given one), found one at a time: the best exact words of each length are generalised into IUPAC words,
    the best of all is kept, and its sites and `flank` bases around them are erased before the next is sought."""
    if len(y) > MAX_SEQUENCES:
        keep = np.linspace(0, len(y) - 1, MAX_SEQUENCES).astype(int)
        one_hot, y = one_hot[keep], y[keep]
    sizes = np.bincount(y, minlength=n_classes)
    rng = np.random.default_rng(seed)
    found: list[Word] = []
    all_codes = base_codes(one_hot)
    for c in range(n_classes):
        in_class = y == c
        if sizes[c] < 5 or len(y) - sizes[c] < 5:
            continue
        codes = all_codes.copy()  # each class erases its own words
        background = markov_background(codes[in_class], rng)
        kept: list[str] = []
        while len(kept) < per_class:
            best = None
            for k in lengths:
                if codes.shape[1] < k:
                    continue
                counts = _Counts(codes, background, in_class, k, both_strands)
                order = np.argsort(-counts.all_words())[:4 * STARTS]
                starts = [w for w in (_decode(int(i), k) for i in order) if not _overlaps(w, kept)]
                for word in starts[:STARTS]:
                    candidate = _generalised(word, counts)
                    qualifies = candidate[1] >= MIN_Z and candidate[0] >= MIN_Z_BACKGROUND
                    if qualifies and (best is None or candidate[0] > best[0]):
                        best = candidate
            if best is None or _overlaps(best[2], kept):
                break
            _, z_others, word, held = best
            kept.append(word)
            found.append(Word(word, c, round(z_others, 2), round(float(held[in_class].mean()), 4),
                              round(float(held[~in_class].mean()), 4)))
            _erase(codes, word, flank, both_strands)
            _erase(background, word, flank, both_strands)
    return found
