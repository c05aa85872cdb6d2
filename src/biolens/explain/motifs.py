"""The motifs a sequence CNN learned: each first-layer filter turned into a position frequency matrix (PFM),
ranked by how much the trained model loses without it.

Sites (as in Basset, Kelley et al. 2016): in each sequence the filter's strongest window on either strand,
kept when it reaches half of the filter's strongest activation over all sequences; the PFM counts the bases
of those windows. Importance: the rise in cross-entropy (nats per sequence) when the filter's output is
replaced by its mean (the filter 'knocked out'); `favours` is the class whose logit falls most without it.
Filters that learned the same motif (or its reverse complement) are merged into one motif, knocked out
together: their matrices agree, or they agree in part (one read part of a longer site, or a shifted window of
it) and their sites sit on the same bases far more often than chance in the sequences that hold both. Each
motif is also matched against random sequences of its class's own composition (first-order Markov chain): a
filter that reads AT- or GC-richness matches them as well as the real ones. The list is best first within each
class, the motifs beyond composition before the others, the classes taking turns.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from biolens.readers.sequences import ALPHABET

_PAIRS = {frozenset("AG"): "R", frozenset("CT"): "Y", frozenset("CG"): "S", frozenset("AT"): "W",
          frozenset("GT"): "K", frozenset("AC"): "M"}


@dataclass
class Motif:
    name: str
    counts: np.ndarray        # (width, 4) base counts at the sites, ACGT
    n_sites: int
    importance: float
    favours: str
    start: int = 0            # informative core: counts[start:stop]
    stop: int = 0
    same_as: str = ""         # the more important motif this one repeats (either strand), "" when distinct
    filters: list = field(default_factory=list)   # first-layer filters (0-based) that learned this motif
    repeats: list = field(default_factory=list)   # names of the filters merged into this one
    rank_in_class: int = 0
    beats_random: float = 0.5  # P(best match in a sequence of its class > best match in a random sequence of
    #                            that class's composition): 0.5 for a filter that reads composition only
    background_z: float = 0.0  # one-sided Mann-Whitney z of the same comparison
    known: list = field(default_factory=list)  # known motifs it matches, best first (explain/known_motifs.Match)
    central: dict = field(default_factory=dict)  # its sites' crowding of the sequences' middle (central_enrichment)
    site_threshold: float = 0.0  # its filter's activation at which a sequence holds a site (half its strongest)

    @property
    def beyond_composition(self) -> bool:
        """Matched better in the class's sequences than in random ones of the same composition: clearly (z) and by
        at least a small effect."""
        return self.background_z >= MIN_BACKGROUND_Z and self.beats_random >= MIN_BEATS_RANDOM

    @property
    def probabilities(self) -> np.ndarray:
        counts = self.counts[self.start:self.stop] + 0.25  # small pseudocount per base
        return counts / counts.sum(axis=1, keepdims=True)

    @property
    def consensus(self) -> str:
        return consensus(self.probabilities)


def information_content(probabilities: np.ndarray) -> np.ndarray:
    """Bits per position (2 = one base only, 0 = uniform)."""
    p = np.clip(probabilities, 1e-9, 1.0)
    return 2.0 + (p * np.log2(p)).sum(axis=1)


def consensus(probabilities: np.ndarray) -> str:
    """IUPAC consensus (Cavener's rules): a base when it has half the weight and twice the next; a two-base
    code when the top two hold three quarters; N otherwise."""
    letters = []
    for column in probabilities:
        order = np.argsort(-column)
        first, second = column[order[0]], column[order[1]]
        if first >= 0.5 and first >= 2 * second:
            letters.append(ALPHABET[order[0]])
        elif first + second >= 0.75:
            letters.append(_PAIRS[frozenset(ALPHABET[order[0]] + ALPHABET[order[1]])])
        else:
            letters.append("N")
    return "".join(letters)


def _core(counts: np.ndarray, min_bits: float = 0.3) -> tuple[int, int]:
    """Trim flanks that carry less than `min_bits` of information."""
    probabilities = (counts + 0.25) / (counts + 0.25).sum(axis=1, keepdims=True)
    informative = np.flatnonzero(information_content(probabilities) >= min_bits)
    if not len(informative):
        return 0, len(counts)
    return int(informative[0]), int(informative[-1]) + 1


def _strands(batch: np.ndarray, both: bool) -> list[np.ndarray]:
    return [batch, batch[:, ::-1, ::-1]] if both else [batch]


def _strongest(layer, kernel: np.ndarray, bias: np.ndarray, batch: np.ndarray, both: bool):
    """Each filter's strongest activation per sequence of `batch` (either strand), where (in that strand's
    reading), on which strand (0 forward, 1 reverse); and the sum and count of all activations."""
    import keras

    n_filters = kernel.shape[-1]
    top = np.full((len(batch), n_filters), -np.inf, dtype=np.float32)
    at_top = np.zeros((len(batch), n_filters), dtype=np.int64)
    on = np.zeros((len(batch), n_filters), dtype=np.int8)
    total, positions = np.zeros(n_filters), 0
    for s, view in enumerate(_strands(batch, both)):
        act = keras.ops.convert_to_numpy(layer.activation(keras.ops.conv(view, kernel, padding="valid") + bias))
        total += act.sum(axis=(0, 1))
        positions += act.shape[0] * act.shape[1]
        peak, at = act.max(axis=1), act.argmax(axis=1)
        better = peak > top
        top, at_top, on = np.where(better, peak, top), np.where(better, at, at_top), np.where(better, s, on)
    return top, at_top, on, total, positions


BACKGROUND_SEQUENCES = 2_000   # per class, an even spread, drawn twice each from their Markov chain
MIN_BACKGROUND_Z = 3.1         # one-sided p ~ 0.001: about 0.05 over 64 filters
MIN_BEATS_RANDOM = 0.556       # ...and at least a small effect (Cohen's d = 0.2; large sets make any z large)
SAME_MOTIF = 0.6               # similarity at which two filters' matrices are one motif
PART_OF_MOTIF = 0.4            # ...or at which they agree in part, when their sites also sit together:
MIN_SITES_TOGETHER = 0.25      # the share of sequences holding both sites where the two overlap,
TIMES_CHANCE = 3               # ...and at least 3 times what independent positions give (~width / length)
MIN_SHARED_SEQUENCES = 20


def _markov_peaks(peaks, x: np.ndarray, y: np.ndarray, rows: np.ndarray, seed: int) -> dict:
    """Each filter's strongest activation in random sequences drawn from each class's own first-order Markov
    chain (stats/kmers.markov_background: same composition, dinucleotides, lengths and N positions): what the
    filter sees in that class's sequences without their motifs. Keyed by class index."""
    from biolens.stats import kmers

    rng = np.random.default_rng(seed)
    out = {}
    for c in np.unique(y[rows]):
        members = np.sort(rows[y[rows] == c])
        if len(members) > BACKGROUND_SEQUENCES:
            members = members[np.linspace(0, len(members) - 1, BACKGROUND_SEQUENCES).astype(int)]
        codes = kmers.markov_background(kmers.base_codes(np.asarray(x[members])), rng)
        one_hot = np.zeros((*codes.shape, 4), np.float32)
        valid = codes >= 0
        one_hot[valid, codes[valid]] = 1.0
        out[int(c)] = peaks(one_hot[i:i + 256] for i in range(0, len(one_hot), 256))[0]
    return out


def _beats(real: np.ndarray, drawn: np.ndarray) -> tuple[float, float]:
    """How often a filter's best match in a real sequence beats its best match in a random one (the Mann-Whitney
    AUC, ties half), and the one-sided z of that against 0.5. Ranks, not a site threshold: a fixed threshold
    saturates (every sequence 'has a site') for short or degenerate motifs in a background that nearly matches
    them, which hid FOXA's learned site in an AT-rich class."""
    from scipy import stats

    n1, n2 = len(real), len(drawn)
    if n1 < 2 or n2 < 2:
        return 0.5, 0.0
    ranks = stats.rankdata(np.concatenate([real, drawn]))
    u = float(ranks[:n1].sum()) - n1 * (n1 + 1) / 2
    _, ties = np.unique(ranks, return_counts=True)
    n = n1 + n2
    variance = n1 * n2 / 12 * ((n + 1) - float((ties ** 3 - ties).sum()) / (n * (n - 1)))
    return u / (n1 * n2), float((u - n1 * n2 / 2) / np.sqrt(variance)) if variance > 0 else 0.0


def learned_motifs(model, x: np.ndarray, y: np.ndarray, rows: np.ndarray, class_names: list[str], *,
                   min_sites: int = 10, max_importance_rows: int = 1000, seed: int = 0) -> tuple[list[Motif], dict]:
    """The distinct motifs of the model's first layer over `rows` of one-hot `x` (never the test set): repeats
    merged, best first within each class, classes taking turns (`interleave_classes`).

    Returns the motifs and notes (how many filters were left out as unused, how many repeats were merged).
    """
    from biolens.engine.training import predict_logits
    from biolens.models.sequence import motif_layer

    layer = motif_layer(model)
    kernel, bias = (np.asarray(w, dtype=np.float32) for w in layer.get_weights())
    width, _, n_filters = kernel.shape
    both = any(l.name == "either_strand" for l in model.layers)
    length = x.shape[1]

    def peaks(batches):
        """Each filter's strongest activation per sequence (either strand), where, on which strand; and the sum
        and count of all activations."""
        best, where, strand = [], [], []
        total, positions = np.zeros(n_filters), 0
        for batch in batches:
            top, at_top, on, summed, counted = _strongest(layer, kernel, bias, batch, both)
            total += summed
            positions += counted
            best.append(top), where.append(at_top), strand.append(on)
        return np.concatenate(best), np.concatenate(where), np.concatenate(strand), total, positions

    def read_rows():
        for start in range(0, len(rows), 256):
            chunk = rows[start:start + 256]
            yield np.asarray(x[np.sort(chunk)], dtype=np.float32)[np.argsort(np.argsort(chunk))]

    best, where, strand, total, positions = peaks(read_rows())
    background = _markov_peaks(peaks, x, y, rows, seed)
    mean_activation = total / max(positions, 1)

    rng = np.random.default_rng(seed)
    scored = np.sort(rng.choice(rows, min(len(rows), max_importance_rows), replace=False))
    full = predict_logits(model, x, scored)
    truth = y[scored]

    def cross_entropy(logits):
        shifted = logits - logits.max(axis=1, keepdims=True)
        log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
        return float(-log_probs[np.arange(len(truth)), truth].mean())

    def centred(logits):
        return logits - logits.mean(axis=1, keepdims=True)

    base_loss = cross_entropy(full)

    def knock_out(filters: list[int]) -> tuple[np.ndarray, float]:
        """The filters' outputs replaced by their mean: (fall of each class's centred logit, cross-entropy)."""
        ablated_kernel, ablated_bias = kernel.copy(), bias.copy()
        ablated_kernel[:, :, filters], ablated_bias[filters] = 0.0, mean_activation[filters]
        layer.set_weights([ablated_kernel, ablated_bias])
        try:
            knocked = predict_logits(model, x, scored)
        finally:
            layer.set_weights([kernel, bias])
        return (centred(full) - centred(knocked)).mean(axis=0), cross_entropy(knocked)

    motifs, unused = [], 0
    offsets = np.arange(width)
    has_site = (best > 0.5 * best.max(axis=0)) & (best > 0)
    centre = np.where(strand == 0, where + width / 2, length - where - width / 2)  # forward-strand coordinates

    for f in range(n_filters):
        strongest = best[:, f].max()
        sites = np.flatnonzero(has_site[:, f])
        if strongest <= 0 or len(sites) < min_sites:
            unused += 1
            continue
        forward = strand[sites, f] == 0
        index = np.where(forward[:, None], where[sites, f][:, None] + offsets, length - 1 - where[sites, f][:, None] - offsets)
        windows = np.asarray(x[rows[sites][:, None], index], dtype=np.float64)
        windows[~forward] = windows[~forward][:, :, ::-1]
        counts = windows.sum(axis=0)

        drop, loss = knock_out([f])
        motif = Motif(f"filter{f + 1:02d}", counts, len(sites), loss - base_loss, class_names[int(np.argmax(drop))])
        motif.start, motif.stop = _core(counts)
        motif.filters = [f]
        motif.site_threshold = float(0.5 * strongest)
        motifs.append(motif)
    motifs.sort(key=lambda m: -m.importance)
    lengths = np.concatenate([chunk.any(axis=2).sum(axis=1) for chunk in read_rows()])  # bases, N-padding left out
    mark_repeats(motifs, lambda a, b: sites_together(has_site, centre, width, lengths, a.filters[0], b.filters[0]))
    distinct = [m for m in motifs if not m.same_as]
    for leader in distinct:  # a motif learned by several filters: knocking one out leaves the others to stand in
        members = [m for m in motifs if m is leader or m.same_as == leader.name]
        if len(members) > 1:
            leader.filters = [m.filters[0] for m in members]
            drop, loss = knock_out(leader.filters)
            leader.importance, leader.favours = loss - base_loss, class_names[int(np.argmax(drop))]
            leader.repeats = [m.name for m in members[1:]]
    for motif in distinct:  # is it a motif, or what any sequence of this composition holds?
        c, f = class_names.index(motif.favours), motif.filters[0]  # the most important of its filters
        motif.beats_random, motif.background_z = _beats(best[y[rows] == c, f], background[c][:, f])
    distinct = interleave_classes(distinct)
    return distinct, {"filters": int(n_filters), "unused_filters": unused, "repeats_merged": len(motifs) - len(distinct),
                      "importance_sequences": int(len(scored)), "site_sequences": int(len(rows)), "both_strands": both,
                      "order": "classes interleaved; beyond composition first",
                      "min_background_z": MIN_BACKGROUND_Z, "min_beats_random": MIN_BEATS_RANDOM}


@dataclass(frozen=True)
class SiteReader:
    """What finds a learned motif's sites in any sequence: its filter, its informative core within the filter's
    window, and the activation that counts as a site (half the filter's strongest in training). Kept in
    metrics.json so that `predict` lists the sites of new sequences too."""
    motif: str
    filter: int
    start: int
    stop: int
    threshold: float


def site_readers(motifs: list[Motif]) -> list[SiteReader]:
    """The readers of the motifs beyond composition (composition filters' "sites" are wherever the sequence is AT-
    or GC-rich)."""
    return [SiteReader(m.name, int(m.filters[0]), int(m.start), int(m.stop), float(m.site_threshold))
            for m in motifs if m.beyond_composition and m.site_threshold > 0]


def motif_sites(model, x: np.ndarray, readers: list[SiteReader], lengths: np.ndarray
                ) -> list[tuple[int, int, int, int, str, float]]:
    """Where each motif sits in each sequence, as FIMO lists sites: (reader index, sequence row, start, end,
    strand, score) with start and end 1-based and inclusive in the sequence as given (the model reads it centred:
    padded or cut at both ends), the motif's informative core, and score = the filter's best activation in the
    sequence over the reader's threshold (>= 1 is a site). One site per motif and sequence: the best one."""
    from biolens.models.sequence import motif_layer

    if not readers:
        return []
    layer = motif_layer(model)
    kernel, bias = (np.asarray(w, dtype=np.float32) for w in layer.get_weights())
    filters = [r.filter for r in readers]
    kernel, bias = kernel[:, :, filters], bias[filters]
    both = any(l.name == "either_strand" for l in model.layers)
    length = x.shape[1]
    rows = []
    for first in range(0, len(x), 256):
        top, at, on, _, _ = _strongest(layer, kernel, bias, np.asarray(x[first:first + 256], dtype=np.float32), both)
        for column, reader in enumerate(readers):
            score = top[:, column] / reader.threshold
            for r in np.flatnonzero(score >= 1):
                row, where = first + r, int(at[r, column])
                lo, hi = ((where + reader.start, where + reader.stop) if on[r, column] == 0 else
                          (length - where - reader.stop, length - where - reader.start))  # forward-strand positions
                n = int(lengths[row])
                shift = max(0, (n - length) // 2) - (length - min(n, length)) // 2  # model position -> sequence
                start, end = max(lo + shift, 0), min(hi + shift, n)
                if end > start:
                    rows.append((column, int(row), start + 1, end, "+-"[int(on[r, column])], float(score[r])))
    return rows


CENTRAL_SHARE = 0.2   # the central fifth of each sequence: where a directly bound site sits in summit-centred peaks
MIN_CENTRAL_SITES = 10


def central_enrichment(starts: np.ndarray, ends: np.ndarray, lengths: np.ndarray, readable: np.ndarray) -> dict:
    """Whether a motif's sites crowd the middle of the sequences, as CentriMo asks of ChIP-seq peaks centred on
    their summits (a directly bound factor's site sits under the summit; a partner's or chance's anywhere): the share
    of sites (1-based `starts`, `ends` in sequences of `lengths` bases) whose centre lies in the central fifth of
    the part of each sequence the model reads (`readable` bases, centred), the share expected if each site sat
    anywhere it fits there, and the one-sided p of the excess (normal approximation to the sum of the sites' own
    chances). Empty with fewer than MIN_CENTRAL_SITES sites."""
    from scipy.stats import norm

    if len(starts) < MIN_CENTRAL_SITES:
        return {}
    width = ends - starts + 1
    offset = (starts - 1 + ends) / 2 - lengths / 2  # from the sequence's middle, which is the read part's middle
    central = np.abs(offset) <= CENTRAL_SHARE * readable / 2
    chance = np.clip((CENTRAL_SHARE * readable + 1) / np.maximum(readable - width + 1, 1), 0, 1)
    spread = np.sqrt(max(float((chance * (1 - chance)).sum()), 1e-12))
    return {"central_share": round(float(central.mean()), 4), "central_expected": round(float(chance.mean()), 4),
            "central_p": float(f"{norm.sf((central.sum() - chance.sum()) / spread):.3g}")}


def site_rows(sites, readers: list[SiteReader], described: dict, ids: list[str], sequences: list[str],
              extra=lambda row: []) -> list[list]:
    """motif_sites.tsv's rows: motif, its known name and class (`described`: motif -> (known_motif, favours)), the
    sequence id, `extra(row)` columns, start, end, strand, score and the site's bases read on the motif's strand."""
    from biolens.stats.kmers import reverse_complement

    out = []
    for k, row, start, end, strand, score in sites:
        bases = sequences[row][start - 1:end].upper()
        known, favours = described.get(readers[k].motif, ("", ""))
        out.append([readers[k].motif, known, favours, ids[row], *extra(row), start, end, strand, f"{score:.3f}",
                    reverse_complement(bases) if strand == "-" else bases])
    return out


def interleave_classes(motifs: list[Motif]) -> list[Motif]:
    """Best first within each class, the classes taking turns (the class of the single most important motif
    first): in a two-factor set one factor's strong site must not push the other factor's motif out of the top
    of the list. Within a class, motifs found beyond the class's composition come first, by importance, then
    the others (composition filters: a network may separate AT- from GC-rich classes with them and rank them
    above the factors' sites). Each motif's `rank_in_class` is set."""
    by_class: dict[str, list[Motif]] = {}
    for motif in sorted(motifs, key=lambda m: (not m.beyond_composition, -m.importance)):
        by_class.setdefault(motif.favours, []).append(motif)
        motif.rank_in_class = len(by_class[motif.favours])
    order = list(by_class)  # classes in the order of their best motif
    return sorted(motifs, key=lambda m: (m.rank_in_class, order.index(m.favours)))


def similarity(a: np.ndarray, b: np.ndarray) -> float:
    """How much of two motifs' information agrees, at the best shift and on either strand of `b` (0 to 1).

    Column agreement is the correlation of the two base distributions, weighted by the smaller information
    content of the pair, and divided by the information of the less informative motif; uninformative
    flanks therefore cannot make two different motifs look alike.
    """
    def centred(m):
        return m - m.mean(axis=1, keepdims=True)

    bits_a, bits_b = information_content(a), information_content(b)
    total = min(bits_a.sum(), bits_b.sum())
    best = 0.0
    for other, bits in ((b, bits_b), (b[::-1, ::-1], bits_b[::-1])):
        for shift in range(1 - len(other), len(a)):
            lo, hi = max(0, shift), min(len(a), shift + len(other))
            x, y = centred(a[lo:hi]), centred(other[lo - shift:hi - shift])
            r = (x * y).sum(axis=1) / np.sqrt((x * x).sum(axis=1) * (y * y).sum(axis=1) + 1e-12)
            agreement = float((r * np.minimum(bits_a[lo:hi], bits[lo - shift:hi - shift])).sum()) / max(total, 1e-9)
            best = max(best, agreement)
    return best


def sites_together(has_site: np.ndarray, centre: np.ndarray, width: int, lengths: np.ndarray, a: int,
                   b: int) -> tuple[float, float]:
    """Among the sequences where filters `a` and `b` both have a site (`has_site`, sequences x filters), the share
    where their windows (`centre`: forward-strand position of each filter's best window) overlap by at least half
    the width, and the share independent positions would give in sequences of these `lengths`. Filters that fire on
    the same bases read the same site. (0, 1) when fewer than MIN_SHARED_SEQUENCES hold both."""
    shared = has_site[:, a] & has_site[:, b]
    if shared.sum() < MIN_SHARED_SEQUENCES:
        return 0.0, 1.0
    together = float((np.abs(centre[shared, a] - centre[shared, b]) <= width / 2).mean())
    offsets = 2 * (width // 2) + 1  # the differences of position that count as overlapping
    chance = float(np.minimum(1.0, offsets / np.maximum(lengths[shared] - width + 1, 1)).mean())
    return together, chance


def mark_repeats(motifs: list[Motif], sites_together=None) -> None:
    """Filters often learn one motif several times (or its reverse complement, or a part or shifted window of
    it): point each repeat, in importance order, at the first distinct motif it matches. A match is a similarity
    of `SAME_MOTIF`, or of `PART_OF_MOTIF` when `sites_together(leader, motif)` says both fire on the same bases in
    at least MIN_SITES_TOGETHER of the sequences holding both, and TIMES_CHANCE what chance gives."""
    leaders: list[Motif] = []

    def same(leader: Motif, motif: Motif) -> bool:
        alike = similarity(leader.probabilities, motif.probabilities)
        if alike >= SAME_MOTIF:
            return True
        if alike < PART_OF_MOTIF or sites_together is None:
            return False
        together, chance = sites_together(leader, motif)
        return together >= max(MIN_SITES_TOGETHER, TIMES_CHANCE * chance)

    for motif in motifs:
        match = next((m for m in leaders if same(m, motif)), None)
        if match is None:
            leaders.append(motif)
        else:
            motif.same_as = match.name


def write_meme(motifs: list[Motif], path) -> None:
    """MEME minimal motif format, so the motifs can be matched against JASPAR with Tomtom."""
    from biolens.runs import write_text

    lines = ["MEME version 4", "", f"ALPHABET= {ALPHABET}", "", "strands: + -", "",
             "Background letter frequencies", "A 0.25 C 0.25 G 0.25 T 0.25", ""]
    for motif in motifs:
        p = motif.probabilities
        lines += [f"MOTIF {motif.name} {motif.consensus}",
                  f"letter-probability matrix: alength= 4 w= {len(p)} nsites= {motif.n_sites} E= 0"]
        lines += [" ".join(f"{v:.4f}" for v in row) for row in p] + [""]
    write_text(path, "\n".join(lines))
