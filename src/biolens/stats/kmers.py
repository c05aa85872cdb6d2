"""Words enriched in one class of sequences against the others: the classical discriminative scan (as DREME and
HOMER's known-free search start) that seeds the sequence network's first-layer filters.

Why seed: a network trained from random filters learns a strong, long site readily but can miss a short or
degenerate one (WGATAR, an E-box) that a simple count of 6-mers sees at once (docs/sequences.md). A seeded filter
starts on that word and training refines it into a weight matrix, or leaves it if it does not help.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

MAX_SEQUENCES = 20_000   # sequences counted (an even spread beyond this: the counts are proportions)
MIN_Z = 5.0              # two-proportion z of a word kept (about p < 3e-7: some 10^4 words are tried per length)
SHARED = 5               # a word sharing this many bases in a row with a kept one (either strand) is the same site


@dataclass(frozen=True)
class Word:
    word: str
    favours: int          # the class index it is enriched in
    z: float              # two-proportion z of "sequences holding it", this class against the others
    share_in: float       # share of this class's sequences holding it (either strand)
    share_out: float      # ...and of the other classes'


def _codes(one_hot: np.ndarray) -> np.ndarray:
    """(n, length) base codes 0-3 (ACGT), -1 where the column is all zero (N or padding)."""
    codes = one_hot.argmax(axis=2).astype(np.int64)
    codes[one_hot.max(axis=2) == 0] = -1
    return codes


def _word_ids(codes: np.ndarray, k: int) -> np.ndarray:
    """(n, length - k + 1) ids of each k-long word, the smaller of the word's and its reverse complement's;
    -1 where the word holds an N."""
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
    ids = np.minimum(forward, reverse)
    ids[bad] = -1
    return ids


def _decode(index: int, k: int) -> str:
    return "".join("ACGT"[(index >> (2 * (k - 1 - j))) & 3] for j in range(k))


def _reverse_complement(word: str) -> str:
    return word.translate(str.maketrans("ACGT", "TGCA"))[::-1]


def _presence_counts(ids: np.ndarray, y: np.ndarray, n_classes: int, k: int) -> np.ndarray:
    """(n_classes, 4**k) number of sequences of each class holding each word at least once."""
    ordered = np.sort(ids, axis=1)
    first = np.ones_like(ordered, bool)
    first[:, 1:] = ordered[:, 1:] != ordered[:, :-1]
    keep = first & (ordered >= 0)
    rows = np.broadcast_to(y[:, None], ordered.shape)[keep]
    return np.bincount(rows * 4**k + ordered[keep], minlength=n_classes * 4**k).reshape(n_classes, 4**k)


def _overlaps(word: str, kept: list[str]) -> bool:
    for other in kept:
        for candidate in (other, _reverse_complement(other)):
            for i in range(len(word) - SHARED + 1):
                if word[i:i + SHARED] in candidate:
                    return True
    return False


def _erase(codes: np.ndarray, word: str, flank: int) -> None:
    """Set to N every occurrence of `word` (either strand) and `flank` bases either side, in place: the next word
    is then looked for beyond this site, so fragments of one long site are not taken for further sites (DREME's
    erasing)."""
    k = len(word)
    target = _word_ids(np.array([["ACGT".index(b) for b in word]]), k)[0, 0]
    ids = _word_ids(codes, k)
    rows, starts = np.nonzero(ids == target)
    length = codes.shape[1]
    for row, start in zip(rows, starts):
        codes[row, max(0, start - flank):min(length, start + k + flank)] = -1


def enriched_words(one_hot: np.ndarray, y: np.ndarray, n_classes: int, *, per_class: int = 4,
                   lengths: tuple[int, ...] = (6, 8), flank: int = 4) -> list[Word]:
    """Up to `per_class` distinct words per class, each held by a larger share of that class's sequences than of
    the others' at z >= MIN_Z (either strand; words of every length compete), found one at a time: after each,
    its sites and `flank` bases around them are erased before the next is looked for."""
    if len(y) > MAX_SEQUENCES:
        keep = np.linspace(0, len(y) - 1, MAX_SEQUENCES).astype(int)
        one_hot, y = one_hot[keep], y[keep]
    sizes = np.bincount(y, minlength=n_classes).astype(float)
    found: list[Word] = []
    for c in range(n_classes):
        n_in, n_out = sizes[c], sizes.sum() - sizes[c]
        if n_in < 5 or n_out < 5:
            continue
        codes = _codes(one_hot)
        kept: list[str] = []
        while len(kept) < per_class:
            best = None
            for k in lengths:
                if codes.shape[1] < k:
                    continue
                counts = _presence_counts(_word_ids(codes, k), y, n_classes, k)
                inside, outside = counts[c].astype(float), counts.sum(axis=0) - counts[c]
                p_in, p_out = inside / n_in, outside / n_out
                pooled = (inside + outside) / (n_in + n_out)
                z = (p_in - p_out) / np.sqrt(np.maximum(pooled * (1 - pooled) * (1 / n_in + 1 / n_out), 1e-12))
                for i in np.argsort(-z):
                    if z[i] < MIN_Z:
                        break
                    word = _decode(int(i), k)
                    if not _overlaps(word, kept):
                        if best is None or z[i] > best[0]:
                            best = (float(z[i]), word, float(p_in[i]), float(p_out[i]))
                        break
            if best is None:
                break
            z_best, word, share_in, share_out = best
            kept.append(word)
            found.append(Word(word, c, round(z_best, 2), round(share_in, 4), round(share_out, 4)))
            _erase(codes, word, flank)
    return found
