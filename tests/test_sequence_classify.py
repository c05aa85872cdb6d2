"""Sequence classification end to end: generated sequences with planted transcription-factor motifs, the real CLI,
real TensorFlow. What a user relies on: an honest held-out score, the planted motifs among the learned ones, and
predictions for new FASTA files."""
from __future__ import annotations

import csv
import json
import signal
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest

from biolens.errors import InputError
from biolens.explain.motifs import consensus, similarity
from biolens.readers.sequences import one_hot
from biolens.simulate import PLANTED_MOTIFS, reverse_complement, simulate_labelled_sequences
from conftest import ENV, ROOT, biolens, one_line_error

IUPAC = {"A": "A", "C": "C", "G": "G", "T": "T", "R": "AG", "Y": "CT", "S": "CG", "W": "AT", "K": "GT", "M": "AC",
         "N": "ACGT"}


def contains_motif(found: str, planted: str, mismatches: int = 1) -> bool:
    """True when the planted motif (either strand) fits inside the IUPAC consensus with at most `mismatches`."""
    for target in (planted, reverse_complement(planted)):
        for start in range(-2, len(found) - len(target) + 3):  # the consensus may clip a flank base
            misses = sum(1 for k, base in enumerate(target)
                         if not (0 <= start + k < len(found)) or base not in IUPAC[found[start + k]])
            if misses <= mismatches:
                return True
    return False


def read_tsv(path) -> list[dict]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle, delimiter="\t"))


def test_held_out_score_is_honest_and_high(sequence_run):
    metrics = json.loads((sequence_run / "metrics.json").read_text())
    info = json.loads((sequence_run / "run.json").read_text())
    assert info["status"] == "complete" and info["task"] == "sequence_classify"
    assert metrics["balanced_accuracy"] >= 0.8, metrics["balanced_accuracy"]  # chance is 1/3; 0.85-0.96 measured over seeds
    low, high = metrics["balanced_accuracy_ci95"]
    assert low < metrics["balanced_accuracy"] < high
    base = metrics["classical_baseline"]  # the k-mer comparator, on the same test sequences
    assert base["balanced_accuracy"] > 0.5 and base["n_train"] == metrics["n_train"]
    assert base["network_minus_this"] == pytest.approx(metrics["balanced_accuracy"] - base["balanced_accuracy"])
    report = (sequence_run / "report.html").read_text()
    assert 'id="classical-baseline"' in report and metrics["baseline_reading"] in report and "Result on sequences" in report
    splits = pd.read_csv(sequence_run / "splits.csv")
    assert metrics["n_test"] == (splits.split == "test").sum()
    predictions = pd.read_csv(sequence_run / "predictions.csv")
    assert set(predictions.id) == set(splits.id[splits.split == "test"])
    # exact copies never straddle the split, and the run says so; unlabelled records are named, not dropped silently
    sequences = {}
    lines = iter(open(info["config"]["data"]).read().splitlines())
    for header, sequence in zip(lines, lines):
        sequences[header[1:]] = sequence
    splits["sequence"] = splits.id.map(sequences)
    assert (splits.groupby("sequence").split.nunique() == 1).all()
    assert any("exact copies" in w for w in info["warnings"])
    assert any("3 FASTA records have no label" in w for w in info["warnings"])


def test_planted_motifs_are_recovered_as_distinct_motifs(sequence_run):
    motifs = read_tsv(sequence_run / "motifs.tsv")
    assert list(motifs[0])[:4] == ["motif", "consensus", "n_sites", "importance"]
    def beyond_composition(m):
        return m["beyond_composition"] == "True"

    for m in motifs:  # the rule, read from the columns (written rounded)
        clear = float(m["background_z"]) >= 3.2 and float(m["beats_random"]) >= 0.557
        assert beyond_composition(m) or not clear, m

    for label in {m["favours"] for m in motifs}:  # within each class: motifs beyond composition first, best first
        ours = [m for m in motifs if m["favours"] == label]
        order = [(not beyond_composition(m), -float(m["importance"])) for m in ours]
        assert order == sorted(order)
        assert [int(m["rank_in_class"]) for m in ours] == list(range(1, len(ours) + 1))
    assert [int(m["rank_in_class"]) for m in motifs] == sorted(int(m["rank_in_class"]) for m in motifs)
    top = motifs[:6]
    for label, planted in PLANTED_MOTIFS.items():
        hits = [m for m in top if contains_motif(m["consensus"], planted)]
        assert hits, f"{planted} not among {[m['consensus'] for m in top]}"
        assert hits[0]["favours"] == label
        # a planted site is matched far better in its class's sequences than in random ones of their composition
        assert float(hits[0]["beats_random"]) > 0.8 and beyond_composition(hits[0])
    composition = [m for m in motifs if not beyond_composition(m)]  # most filters only read composition
    assert composition and np.median([float(m["beats_random"]) for m in composition]) < 0.58
    assert (sequence_run / "figures" / "motifs.png").stat().st_size > 10_000
    report = (sequence_run / "report.html").read_text()
    assert "Motifs the network learned" in report and top[0]["consensus"] in report
    from Bio import motifs as biopython_motifs

    with open(sequence_run / "motifs.meme") as handle:  # a file Tomtom/MEME tools read
        parsed = biopython_motifs.parse(handle, "minimal")
    assert len(parsed) == len(motifs)
    matrices = [np.array([parsed_motif.pwm[b] for b in "ACGT"]).T for parsed_motif in parsed]
    for i in range(len(matrices)):  # repeats were merged: no two rows are the same motif
        for j in range(i + 1, len(matrices)):
            assert similarity(matrices[i], matrices[j]) < 0.6, (motifs[i]["consensus"], motifs[j]["consensus"])
    merged = sum(len(m["same_as"].split(",")) for m in motifs if m["same_as"])
    assert json.loads((sequence_run / "metrics.json").read_text())["motifs"]["repeats_merged"] == merged


def test_motif_sites_say_where_each_motif_sits_in_every_sequence(sequence_run, sequence_data):
    """motif_sites.tsv, as FIMO lists sites: the bases at start-end (1-based, inclusive; reverse-complemented on
    '-') are the site column, the planted motif's learned copy sits on its planted site in nearly every sequence of
    its class and in few of the others', and the report gives those shares."""
    sites = pd.read_csv(sequence_run / "motif_sites.tsv", sep="\t")
    assert list(sites.columns) == ["motif", "known_motif", "favours", "id", "label", "split", "start", "end", "strand",
                                   "score", "site"]
    lines = sequence_data["sequences"].read_text().splitlines()
    sequence_of = {header[1:]: sequence for header, sequence in zip(lines[0::2], lines[1::2])}
    for row in sites.itertuples():
        bases = sequence_of[row.id][row.start - 1:row.end]
        assert row.site == (reverse_complement(bases) if row.strand == "-" else bases)
    assert (sites.score >= 1).all() and set(sites.split) == {"train", "val", "test"}
    motifs = read_tsv(sequence_run / "motifs.tsv")
    labels = pd.read_csv(sequence_data["labels"], sep="\t").set_index("id").label
    per_class = labels.value_counts()
    top = json.loads((sequence_run / "metrics.json").read_text())["motifs"]["top"]
    for label, planted in PLANTED_MOTIFS.items():
        learned = next(m for m in motifs if contains_motif(m["consensus"], planted))["motif"]
        ours = sites[sites.motif == learned]
        share = ours.label.value_counts() / per_class
        assert share[label] >= 0.8 and share.drop(label).max() < 0.25, share
        own = ours[ours.label == label]
        def near_planted(text):  # the planted site, each base mutated at 5%: within two mismatches
            return any(sum(a != b for a, b in zip(text[i:i + len(planted)], word)) <= 2
                       for word in (planted, reverse_complement(planted)) for i in range(len(text) - len(planted) + 1))

        on_planted = [near_planted(sequence_of[r.id][max(r.start - 11, 0):r.end + 10]) for r in own.itertuples()]
        assert np.mean(on_planted) >= 0.9
        entry = next(m for m in top if m["motif"] == learned)
        assert entry["with_site"][label] == pytest.approx(share[label], abs=1e-4)
        # planted anywhere in the sequence: no crowding of the middle
        assert abs(entry["central_share"] - entry["central_expected"]) < 0.12 and entry["central_p"] > 1e-3
    report = (sequence_run / "report.html").read_text()
    assert "Sequences with a site, by class" in report and "Sites in the middle fifth" in report


def test_predict_new_fasta(sequence_run, tmp_path):
    fresh = simulate_labelled_sequences(tmp_path / "new", n_per_class=30, seed=11, length=260)
    text = fresh["sequences"].read_text().replace("A", "R", 1)  # an IUPAC code is read as N
    fresh["sequences"].write_text(text)
    out = tmp_path / "results" / "today" / "preds.csv"  # folders that do not exist yet are made
    biolens("predict", sequence_run, fresh["sequences"], "--out", out)
    table = pd.read_csv(out)
    assert list(table.columns) == ["id", "predicted", "confidence", "unsure", "prob_background", "prob_ebox", "prob_nfkb"]
    truth = pd.read_csv(fresh["labels"], sep="\t").set_index("id").label
    assert (table.predicted == table.id.map(truth)).mean() >= 0.8
    assert np.allclose(table.filter(like="prob_").sum(axis=1), 1, atol=1e-3)
    sure = table[~table.unsure]
    assert (sure.predicted == sure.id.map(truth)).mean() >= (table.predicted == table.id.map(truth)).mean()
    # the learned motifs' sites in the new sequences, beside the predictions; longer than the model reads, so
    # positions are mapped back through the cut ends
    sites = pd.read_csv(out.with_name("preds_motif_sites.tsv"), sep="\t")
    assert list(sites.columns) == ["motif", "known_motif", "favours", "id", "start", "end", "strand", "score", "site"]
    lines = fresh["sequences"].read_text().splitlines()
    sequence_of = {header[1:]: sequence.replace("R", "N") for header, sequence in zip(lines[0::2], lines[1::2])}
    for row in sites.itertuples():
        bases = sequence_of[row.id][row.start - 1:row.end]
        assert row.site == (reverse_complement(bases) if row.strand == "-" else bases)
    motifs = read_tsv(sequence_run / "motifs.tsv")
    for label, planted in PLANTED_MOTIFS.items():
        learned = next(m for m in motifs if contains_motif(m["consensus"], planted))["motif"]
        holding = set(sites.id[sites.motif == learned])
        assert np.mean([i in holding for i in truth.index[truth == label]]) >= 0.6
        assert np.mean([i in holding for i in truth.index[truth != label]]) < 0.25


@pytest.mark.slow  # a longer end-to-end run: pytest -m slow (keeps the default suite under 15 minutes)
def test_bad_inputs_give_one_line(sequence_data, sequence_run, tmp_path):
    fasta, labels = sequence_data["sequences"], sequence_data["labels"]
    out = tmp_path / "never"
    assert "--labels" in one_line_error(biolens("train", fasta, "--out", out, check=False))
    no_label = tmp_path / "no_label.tsv"
    no_label.write_text("id\tcell_type\tbatch\nx\ty\t1\n")
    assert "no label column" in one_line_error(biolens("train", fasta, "--labels", no_label, "--out", out, check=False))
    missing = tmp_path / "missing.tsv"
    missing.write_text(labels.read_text() + "ghost_1\tnfkb\nghost_2\tebox\n")
    message = one_line_error(biolens("train", fasta, "--labels", missing, "--out", out, check=False))
    assert "2 of" in message and "ghost_1" in message
    twice = tmp_path / "twice.tsv"
    twice.write_text(labels.read_text() + labels.read_text().splitlines()[1] + "\n")
    assert "more than once" in one_line_error(biolens("train", fasta, "--labels", twice, "--out", out, check=False))
    protein = tmp_path / "protein.fasta"
    protein.write_text(">p1\nMKTAYIAKQR\n")
    message = one_line_error(biolens("train", protein, "--labels", labels, "--out", out, check=False))
    assert "record 1 ('p1')" in message and "'E'" not in message and "protein" in message
    rare = tmp_path / "rare.tsv"
    table = pd.read_csv(labels, sep="\t")
    table.loc[table.index[:3], "label"] = "rare"
    table.to_csv(rare, sep="\t", index=False)
    assert "class 'rare' has 3" in one_line_error(biolens("train", fasta, "--labels", rare, "--out", out, check=False))
    assert "--image-size applies to images" in one_line_error(
        biolens("train", fasta, "--labels", labels, "--image-size", "64", "--out", out, check=False))
    image = ROOT / "examples" / "blood_cells_slice"
    assert "not a FASTA file" in one_line_error(biolens("predict", sequence_run, image, "--out", tmp_path / "p.csv", check=False))
    assert not out.exists()


@pytest.mark.slow  # a longer end-to-end run: pytest -m slow (keeps the default suite under 15 minutes)
def test_kill_then_resume_finishes(sequence_data, tmp_path):
    out = tmp_path / "resumed"
    command = [sys.executable, "-m", "biolens", "train", str(sequence_data["sequences"]), "--labels",
               str(sequence_data["labels"]), "--out", str(out), "--epochs", "12", "--patience", "12"]
    process = subprocess.Popen(command, env=ENV, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    state = out / "checkpoints" / "state.json"
    deadline = time.time() + 120
    while time.time() < deadline and not (state.exists() and json.loads(state.read_text()).get("epoch", 0) >= 3):
        time.sleep(0.2)
    process.send_signal(signal.SIGKILL)
    process.wait()
    stopped_at = json.loads(state.read_text())["epoch"]
    assert stopped_at < 12
    result = biolens("train", "--resume", out)
    assert f"resuming after epoch {stopped_at}" in result.stderr
    history = pd.read_csv(out / "history.csv")
    assert list(history.epoch) == list(range(1, len(history) + 1))
    assert json.loads((out / "run.json").read_text())["status"] == "complete"


def test_one_hot_centres_and_pads():
    encoded = one_hot(["ACGTA", "AC", "NNACGTACGTNN"], 6, centred=True, dtype=np.uint8)
    assert encoded.shape == (3, 6, 4)
    assert "".join("ACGT"[k] if row.any() else "." for row, k in zip(encoded[1], encoded[1].argmax(1))) == "..AC.."
    assert "".join("ACGT"[k] if row.any() else "." for row, k in zip(encoded[2], encoded[2].argmax(1))) == "CGTACG"
    assert encoded[0, :5].sum() == 5 and encoded[0, 5].sum() == 0


def test_each_class_gets_its_turn_at_the_top_of_the_motif_list():
    from biolens.explain.motifs import Motif, interleave_classes

    def motif(name, importance, favours):
        return Motif(name, np.zeros((10, 4)), 20, importance, favours)

    strong_a = [motif(f"a{k}", 0.1 - k * 0.01, "A") for k in range(5)]   # one factor's site, learned 5 ways
    weak_b = [motif("b0", 0.02, "B"), motif("b1", 0.001, "B")]
    ordered = interleave_classes(strong_a + weak_b)
    assert [m.name for m in ordered[:4]] == ["a0", "b0", "a1", "b1"]
    assert [m.rank_in_class for m in ordered[:4]] == [1, 1, 2, 2]
    assert [m.name for m in ordered[4:]] == ["a2", "a3", "a4"]


def test_motif_consensus_and_similarity_rules():
    def matrix(text: str) -> np.ndarray:
        rows = np.full((len(text), 4), 0.02)
        for i, base in enumerate(text):
            rows[i, "ACGT".index(base)] = 0.94
        return rows

    assert consensus(matrix("GGGAATTTCC")) == "GGGAATTTCC"
    assert consensus(np.array([[0.45, 0.05, 0.45, 0.05], [0.25] * 4])) == "RN"
    assert similarity(matrix("GGGAATTTCC"), matrix(reverse_complement("GGGAATTTCC"))) > 0.95
    assert similarity(matrix("GGGAATTTCC"), matrix("GCCACGTGGC")) < 0.4


def test_a_filter_that_read_part_of_a_site_merges_into_it_only_where_both_fire_on_the_same_bases():
    """Two filters seeded from the two halves of one long site (CTCF's 14 bases) read it as two motifs whose matrices
    agree only in part; a 6,000-sequence CTCF set ranked such a half first and third. They are one motif when they
    fire on the same bases; a different motif is not merged however its sites lie."""
    from biolens.explain import motifs
    from biolens.explain.motifs import Motif, mark_repeats, sites_together

    def counts(text: str) -> np.ndarray:
        rows = np.full((len(text), 4), 2.0)
        for i, base in enumerate(text):
            rows[i, "ACGT".index(base)] = 94.0
        return rows

    site = "CTGCCACCAGCGGG"
    whole = Motif("whole", counts(site), 100, 0.2, "A", stop=14)
    half = Motif("half", counts(site[6:] + "TATATA"), 100, 0.01, "A", stop=14)  # its second half, then other bases
    other = Motif("other", counts("GGGAATTTCC"), 100, 0.005, "A", stop=10)
    alike = similarity(whole.probabilities, half.probabilities)
    assert motifs.PART_OF_MOTIF <= alike < motifs.SAME_MOTIF  # in part: not merged on the matrices alone
    assert similarity(whole.probabilities, other.probabilities) < motifs.PART_OF_MOTIF

    rng = np.random.default_rng(0)
    n, length, width = 300, 500, 15
    has_site = rng.random((n, 3)) < 0.7
    centre = np.empty((n, 3))
    centre[:, 0] = rng.uniform(width, length - width, n)
    centre[:, 1] = np.where(rng.random(n) < 0.8, centre[:, 0] + 3, rng.uniform(0, length, n))  # on the same bases
    centre[:, 2] = centre[:, 0]  # a distinct motif always beside it (a composite element)
    for motif, f in ((whole, 0), (half, 1), (other, 2)):
        motif.filters = [f]
    lengths = np.full(n, length)
    lengths[:100] = 60  # short sequences: windows overlap by chance more often
    shared, chance = sites_together(has_site, centre, width, lengths, 0, 1)
    assert 0.75 < shared < 0.9 and 0.05 < chance < 0.15

    def together(a, b):
        return sites_together(has_site, centre, width, lengths, a.filters[0], b.filters[0])

    mark_repeats([whole, half, other], together)
    assert (half.same_as, other.same_as) == ("whole", "")

    centre[:, 1] = rng.uniform(0, length, n)  # the same matrices, sites anywhere: two motifs
    assert sites_together(has_site, centre, width, lengths, 0, 1)[0] < 0.1
    half.same_as = ""
    mark_repeats([whole, half, other], together)
    assert half.same_as == ""
    lengths[:] = 40  # in sequences this short, 15-base windows overlap by chance more than half the time
    centre[:, 1] = np.where(rng.random(n) < 0.8, centre[:, 0] + 3, centre[:, 0] + 10)
    assert sites_together(has_site, centre, width, lengths, 0, 1)[1] > 0.5  # 80% is not 3 times that
    mark_repeats([whole, half, other], together)
    assert half.same_as == ""
    few = np.zeros_like(has_site)
    few[:motifs.MIN_SHARED_SEQUENCES - 1] = True
    assert sites_together(few, centre, width, lengths, 0, 2) == (0.0, 1.0)  # too few shared sequences to say


def _two_class_set(rng, n: int = 150, length: int = 120):
    """Class A holds AGATAA (a short GATA-like site) in 60% of its sequences, class B CACGTG in 60%, each on a random
    strand; otherwise the same random background."""
    sequences, labels = [], []
    for label, site in (("A", "AGATAA"), ("B", "CACGTG")):
        for _ in range(n):
            seq = list(rng.choice(list("ACGT"), length))
            if rng.random() < 0.6:
                word = site if rng.random() < 0.5 else reverse_complement(site)
                start = int(rng.integers(0, length - 6))
                seq[start:start + 6] = list(word)
            sequences.append("".join(seq))
            labels.append(label)
    return sequences, np.array([0] * n + [1] * n)


def test_words_enriched_in_each_class_are_found_on_either_strand_and_shared_words_are_not():
    from biolens.stats.kmers import IUPAC, enriched_words
    from biolens.stats.kmers import reverse_complement as kmer_reverse_complement

    rng = np.random.default_rng(0)
    sequences, y = _two_class_set(rng)
    shared = "TTGACCAT"  # in half of every class's sequences: not enriched anywhere
    sequences = [s[:50] + shared + s[58:] if k % 2 else s for k, s in enumerate(sequences)]
    sequences[0] = "N" * 10 + sequences[0][10:]  # N columns are no base
    words = enriched_words(one_hot(sequences, 120, centred=True), y, 2)
    by_class = {c: [w.word for w in words if w.favours == c] for c in (0, 1)}

    def stands_for(word: str, site: str) -> bool:  # an IUPAC word matching the site on either strand
        return any(len(w) == len(site) and all(b in IUPAC[letter] for letter, b in zip(w, site))
                   for w in (word, kmer_reverse_complement(word)))

    assert stands_for(by_class[0][0], "AGATAA") and stands_for(by_class[1][0], "CACGTG")
    assert all(w.z >= 5 and w.share_in > w.share_out for w in words)
    assert not any(stands_for(w.word, shared[i:i + len(w.word)]) for w in words for i in range(9 - len(w.word)))


def test_a_seeded_filter_fires_on_its_word_with_one_mismatch_at_most():
    import keras

    from biolens.models.sequence import motif_layer, seed_motif_filters, sequence_cnn

    model = sequence_cnn(2, filters=8, width=15, length=40)
    assert seed_motif_filters(model, ["CACGTG", "A" * 20]) == 1  # a word wider than the filter is skipped
    kernel, bias = (keras.ops.convert_to_numpy(w) for w in motif_layer(model).weights)
    for text, expected in (("CACGTG", 1.5), ("CACGTA", 0.5), ("CAGGTA", -0.5)):
        window = one_hot(["NNNN" + text + "NNNNN"], 15)[0].astype(np.float32)  # centred in the filter
        response = float((window * kernel[:, :, 0]).sum() + bias[0])
        assert response == pytest.approx(expected * 0.3, abs=1e-6)
    seed_motif_filters(model, ["WGATAR"])  # IUPAC letters: every base they allow is a full match
    kernel, bias = (keras.ops.convert_to_numpy(w) for w in motif_layer(model).weights)
    for text, expected in (("AGATAA", 1.5), ("TGATAG", 1.5), ("AGCTAA", 0.5)):
        window = one_hot(["NNNN" + text + "NNNNN"], 15)[0].astype(np.float32)
        assert float((window * kernel[:, :, 0]).sum() + bias[0]) == pytest.approx(expected * 0.3, abs=1e-6)


def test_a_run_seeds_filters_from_its_training_sequences_and_says_so_in_methods(sequence_run, sequence_data):
    import re

    from biolens.stats.kmers import IUPAC as CODES
    from biolens.stats.kmers import reverse_complement as kmer_reverse_complement

    info = json.loads((sequence_run / "run.json").read_text())
    seeds = info["kmer_seeds"]
    assert seeds and all(s["z"] >= 5 and s["share_in_class"] > s["share_in_others"] for s in seeds)
    fasta = sequence_data["sequences"].read_text().splitlines()
    records = {name[1:]: seq for name, seq in zip(fasta[0::2], fasta[1::2])}
    splits = pd.read_csv(sequence_run / "splits.csv")
    first = seeds[0]
    in_class = splits[(splits["split"] == "train") & (splits["label"] == first["favours"])]["id"]
    pattern = re.compile("|".join("".join(f"[{CODES[letter]}]" for letter in w)
                                  for w in (first["word"], kmer_reverse_complement(first["word"]))))
    # counted on the training sequences only: the share is that of the training split
    share = np.mean([bool(pattern.search(records[i].upper())) for i in in_class])
    assert first["share_in_class"] == pytest.approx(share, abs=1e-4)
    report = (sequence_run / "report.html").read_text()
    assert "first-layer filters started from words" in report
    assert "held as they started for the first 6 epochs" in report
    state = json.loads((sequence_run / "checkpoints" / "state.json").read_text())  # held, and a resume would hold them
    assert state["held_filters"] == {"layer": ["trunk", "motif_conv"], "filters": len(seeds), "epochs": 6}


def test_a_checkpoint_with_biolens_layers_loads_in_a_fresh_process(tmp_path):
    """--resume starts a new process that builds no model before loading its checkpoint: the strand-symmetric
    network's own layer must be registered by the loader itself (a resumed sequence run failed on it)."""
    import keras

    from biolens.models.sequence import sequence_cnn

    model = sequence_cnn(2, filters=4, width=7, length=30)
    model.compile(optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.save(tmp_path / "last.keras")
    code = ("import sys; from biolens.models.io import load_checkpoint; "
            "m = load_checkpoint(sys.argv[1]); print(m.optimizer.__class__.__name__, len(m.layers))")
    result = subprocess.run([sys.executable, "-c", code, str(tmp_path / "last.keras")], env=ENV, cwd=ROOT,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split()[0] == "Adam"


def test_seeded_filters_are_held_as_they_started_for_the_first_epochs_only():
    """Real Keras training: the seeded filters stay their seeds to the bit through the held epoch, while the others
    learn; once released they learn too."""
    import keras

    from biolens.engine.callbacks import HoldFilters
    from biolens.models.sequence import motif_layer, seed_hold, seed_motif_filters, sequence_cnn

    rng = np.random.default_rng(0)
    x = one_hot(["".join(rng.choice(list("ACGT"), 60)) for _ in range(64)], 60).astype(np.float32)
    y = rng.integers(0, 2, 64)
    keras.utils.set_random_seed(0)
    model = sequence_cnn(2, filters=8, width=15, length=60)
    assert seed_motif_filters(model, ["CACGTG", "GGAATTTCC"]) == 2
    hold = seed_hold(2)
    start = keras.ops.convert_to_numpy(motif_layer(model).kernel).copy()
    model.compile(optimizer=keras.optimizers.Adam(1e-2),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(x, y, batch_size=16, epochs=1, verbose=0, callbacks=[HoldFilters(hold["layer"], 2, epochs=1)])
    held = keras.ops.convert_to_numpy(motif_layer(model).kernel)
    np.testing.assert_array_equal(held[..., :2], start[..., :2])
    assert np.abs(held[..., 2:] - start[..., 2:]).max() > 1e-3
    model.fit(x, y, batch_size=16, epochs=2, initial_epoch=1, verbose=0,
              callbacks=[HoldFilters(hold["layer"], 2, epochs=1)])  # epoch 2 of a resumed run: released
    assert np.abs(keras.ops.convert_to_numpy(motif_layer(model).kernel)[..., :2] - start[..., :2]).max() > 1e-3


def test_a_degenerate_site_is_found_as_its_iupac_word_and_composition_alone_is_not_a_word():
    """WGATAR in 60% of class A (any of its four forms): no exact 6-mer is enriched enough, the generalised word is.
    Class B is only GC-richer: words that merely follow composition are not reported for it."""
    from biolens.stats.kmers import enriched_words

    rng = np.random.default_rng(3)
    sequences, labels = [], []
    for label, at in ((0, 0.5), (1, 0.4)):
        for _ in range(300):
            seq = list(rng.choice(list("ACGT"), 300, p=[at / 2, (1 - at) / 2, (1 - at) / 2, at / 2]))
            if label == 0 and rng.random() < 0.6:
                site = rng.choice(list("AT")) + "GATA" + rng.choice(list("AG"))
                site = site if rng.random() < 0.5 else reverse_complement(site)
                start = int(rng.integers(0, 294))
                seq[start:start + 6] = list(site)
            sequences.append("".join(seq))
            labels.append(label)
    words = enriched_words(one_hot(sequences, 300), np.array(labels), 2)
    assert [w.word for w in words if w.favours == 0][:1] in (["WGATAR"], ["YTATCW"])
    assert not [w for w in words if w.favours == 1]


def test_words_on_the_given_strand_only_when_the_run_reads_one_strand():
    """A site planted on the forward strand only (an RNA motif, say) is reported as written when one strand is
    read, never as its reverse complement."""
    from biolens.stats.kmers import IUPAC, enriched_words

    def in_site(word: str, site: str) -> bool:
        return any(all(b in IUPAC[letter] for letter, b in zip(word, site[i:i + len(word)]))
                   for i in range(len(site) - len(word) + 1))

    rng = np.random.default_rng(5)
    y = np.array([0] * 150 + [1] * 150)
    sequences = ["".join(rng.choice(list("ACGT"), 150)) for _ in y]
    sequences = [s[:60] + "GATTACAG" + s[68:] if y[k] == 0 and k % 3 else s for k, s in enumerate(sequences)]
    first = [w.word for w in enriched_words(one_hot(sequences, 150), y, 2, both_strands=False) if w.favours == 0][0]
    assert in_site(first, "GATTACAG") and not in_site(first, reverse_complement("GATTACAG"))


def test_beats_random_is_the_mann_whitney_auc_and_its_z():
    from scipy import stats

    from biolens.explain.motifs import _beats

    rng = np.random.default_rng(0)
    motif, random = np.round(rng.normal(0.3, 1, 300), 1), np.round(rng.normal(0, 1, 600), 1)  # ties included
    auc, z = _beats(motif, random)
    test = stats.mannwhitneyu(motif, random, alternative="greater", method="asymptotic", use_continuity=False)
    assert auc == pytest.approx(test.statistic / (300 * 600)) and z == pytest.approx(stats.norm.isf(test.pvalue))
    assert z > 3.1 and auc > 0.556
    composition_only = _beats(random[:300], random[300:])
    assert abs(composition_only[0] - 0.5) < 0.06 and composition_only[1] < 3.1
    assert _beats(np.ones(50), np.ones(80)) == (0.5, 0.0)  # a filter that never fires reads nothing


def test_the_kmer_baseline_reads_planted_words_and_length_alone_is_pointed_out():
    """The classical comparator (logistic regression on k-mer frequencies) separates classes that differ by a
    planted word, scored on the test sequences only and paired with the network's predictions; classes that differ
    only in length get no k-mer signal but a length-only model that tells them apart, and the warning that says so."""
    from biolens.stats.baselines import reading
    from biolens.stats.sequence_baseline import compare, length_warning

    rng = np.random.default_rng(0)

    def random_bases(length):
        return "".join(rng.choice(list("ACGT"), length))

    word = "GGGAATTTCC"
    planted = [random_bases(90) + word + random_bases(100) for _ in range(150)]
    plain = [random_bases(200) for _ in range(150)]
    y = np.repeat([0, 1], 150)
    order = rng.permutation(300)
    parts = {"train": order[:180], "val": order[180:240], "test": order[240:]}
    x = one_hot(planted + plain, 200, centred=True, dtype=np.uint8)
    result = compare(x, y, parts, ["site", "none"], y[parts["test"]], both_strands=True)  # a perfect network
    base = result["classical_baseline"]
    assert base["balanced_accuracy"] > 0.8 and result["length_only"] is None  # every sequence is 200 bases
    assert base["network_minus_this"] == pytest.approx(1 - base["balanced_accuracy"])
    assert base["balanced_accuracy_ci95"][0] <= base["balanced_accuracy"] <= base["balanced_accuracy_ci95"][1]
    assert reading(base).startswith("The network beats") and not length_warning(result, 2)

    long_and_short = [random_bases(300) for _ in range(150)] + [random_bases(150) for _ in range(150)]
    x = one_hot(long_and_short, 300, centred=True, dtype=np.uint8)
    result = compare(x, y, parts, ["long", "short"], y[parts["test"]], both_strands=True)
    assert result["length_only"]["balanced_accuracy"] == 1.0
    assert result["length_only"]["median_length"] == {"long": 300.0, "short": 150.0}
    assert result["classical_baseline"]["balanced_accuracy"] < 0.75  # word frequencies of random bases say little
    warnings = length_warning(result, 2)
    assert len(warnings) == 1 and "length alone predicts the class" in warnings[0] and "--length 150" in warnings[0]
    same = {**result["classical_baseline"], "network_minus_this": 0.01, "network_minus_this_ci95": [-0.03, 0.05]}
    assert reading(same).startswith("The network is no better than a classical model, logistic")


def _class_files(sequence_data, folder):
    """The labelled set written as peak sets usually arrive: one FASTA per class (one gzipped, suffixes mixed),
    beside a README that is not a FASTA."""
    import gzip

    folder.mkdir()
    labels = pd.read_csv(sequence_data["labels"], sep="\t").set_index("id").label
    lines = sequence_data["sequences"].read_text().splitlines()
    records = {header[1:]: sequence for header, sequence in zip(lines[0::2], lines[1::2])}
    names = {"nfkb": "nfkb.fa", "ebox": "ebox.fasta.gz", "background": "background.fna"}
    for label, name in names.items():
        text = "".join(f">{i}\n{records[i]}\n" for i in labels.index if labels[i] == label)
        (folder / name).write_bytes(gzip.compress(text.encode()) if name.endswith(".gz") else text.encode())
    (folder / "README.txt").write_text("peaks called with MACS2, 200 bp around the summit\n")
    return labels


def test_a_folder_with_one_fasta_per_class_trains_and_predicts_without_a_label_table(sequence_data, tmp_path):
    from biolens.readers.sequences import read_class_files, read_labelled

    labels = _class_files(sequence_data, tmp_path / "peaks")
    found = read_class_files(tmp_path / "peaks")
    table = read_labelled(sequence_data["sequences"], sequence_data["labels"])
    assert sorted(zip(found.ids, found.labels, found.sequences)) == sorted(zip(table.ids, table.labels, table.sequences))
    assert any("README.txt" in note for note in found.notes)

    out = tmp_path / "runs" / "peaks"
    biolens("train", tmp_path / "peaks", "--out", out, "--epochs", "4", "--seed", "0")
    splits = pd.read_csv(out / "splits.csv")
    assert (splits.label == splits.id.map(labels)).all() and set(splits.label) == {"nfkb", "ebox", "background"}
    info = json.loads((out / "run.json").read_text())
    assert info["config"]["labels"] == "" and any("README.txt" in w for w in info.get("warnings", []))
    assert "labelled by the names of its files, one per class" in (out / "report.html").read_text()
    assert (out / "motifs.tsv").exists()
    biolens("predict", out, tmp_path / "peaks", "--out", tmp_path / "preds.csv")  # the folder's FASTA files again
    predicted = pd.read_csv(tmp_path / "preds.csv")
    assert sorted(predicted.id) == sorted(labels.index)

    files = [tmp_path / "peaks" / name for name in ("nfkb.fa", "ebox.fasta.gz", "background.fna")]
    listed = tmp_path / "runs" / "listed"  # the same files named one by one: the same sequences, classes and split
    biolens("train", *files, "--out", listed, "--epochs", "1", "--seed", "0", "--no-learning-curve",
            "--known-motifs", "none")
    pd.testing.assert_frame_equal(pd.read_csv(listed / "splits.csv"), splits)
    assert json.loads((listed / "run.json").read_text())["config"]["data"] == [str(f) for f in files]
    assert f"biolens train {' '.join(map(str, files))} --epochs 1" in (listed / "report.html").read_text()


def test_label_tables_as_they_come_meet_record_ids_as_bedtools_getfasta_writes_them(tmp_path):
    """bedtools getfasta -name writes '>peak0::chr1:0-100' (and '(+)' with -s), while the label table, made from the
    BED file, says 'peak0' or 'chr1:0-100': the ids are read as the table writes them, with a note; ids that meet
    no reading still stop the run. Label tables name their columns in several ways, or have no header row."""
    from biolens.readers.sequences import read_labelled

    rng = np.random.default_rng(1)
    sequences = ["".join(rng.choice(list("ACGTacgt"), 60)) for _ in range(24)]
    (tmp_path / "peaks.fa").write_text("".join(  # Windows line ends and a wrapped sequence, as some tools write
        f">peak{k}::chr1:{100 * k}-{100 * k + 60}(+)\r\n{s[:30]}\r\n{s[30:]}\r\n" for k, s in enumerate(sequences)))
    for column in ("peak{k}", "chr1:{start}-{end}"):
        rows = [column.format(k=k, start=100 * k, end=100 * k + 60) for k in range(24)]
        (tmp_path / "labels.tsv").write_text("id\tlabel\n" + "".join(f"{r}\t{'AB'[k % 2]}\n" for k, r in enumerate(rows)))
        found = read_labelled(tmp_path / "peaks.fa", tmp_path / "labels.tsv")
        assert found.ids == rows and found.sequences == [s.upper() for s in sequences]
        assert found.labels == ["AB"[k % 2] for k in range(24)] and "'::'" in found.notes[0]
    (tmp_path / "labels.tsv").write_text("id\tlabel\n" + "".join(f"peak_{k}\t{'AB'[k % 2]}\n" for k in range(24)))
    with pytest.raises(InputError, match="24 of 24 labelled ids have no sequence"):
        read_labelled(tmp_path / "peaks.fa", tmp_path / "labels.tsv")

    # label tables as they come: other column names, no header row, an id column and one other
    expected = ["AB"[k % 2] for k in range(24)]
    for header, note in (("sequence_id,class\n", None), ("", "no header row"), ("Name,cell_type\n", "cell_type")):
        (tmp_path / "labels.csv").write_text(header + "".join(f"peak{k},{'AB'[k % 2]}\n" for k in range(24)))
        found = read_labelled(tmp_path / "peaks.fa", tmp_path / "labels.csv")
        assert found.ids == [f"peak{k}" for k in range(24)] and found.labels == expected
        assert note is None or any(note in n for n in found.notes)
    (tmp_path / "labels.csv").write_text("Name,cell_type,batch\n" + "".join(f"peak{k},A,1\n" for k in range(24)))
    with pytest.raises(InputError, match=r"labels\.csv: no label column \(columns: Name, cell_type, batch\)"):
        read_labelled(tmp_path / "peaks.fa", tmp_path / "labels.csv")


def test_class_files_name_their_classes_and_mixed_labelling_is_refused_in_one_line(sequence_data, tmp_path):
    from biolens.readers.sequences import read_class_files

    peaks = tmp_path / "peaks"
    peaks.mkdir()
    rng = np.random.default_rng(0)
    for name in ("GATA1.fa", "TAL1.fa"):  # each caller numbers its own peaks: the ids repeat across files
        (peaks / name).write_text("".join(f">peak_{k}\n{''.join(rng.choice(list('ACGT'), 50))}\n" for k in range(12)))
    found = read_class_files(peaks)
    assert found.ids[:2] == ["GATA1:peak_0", "GATA1:peak_1"] and found.ids[12] == "TAL1:peak_0"
    assert set(found.labels) == {"GATA1", "TAL1"} and any("class:id" in note for note in found.notes)

    labelled = one_line_error(biolens("train", peaks, "--labels", sequence_data["labels"], "--out", tmp_path / "r",
                                      check=False))
    assert "folder of FASTA files, one per class" in labelled and "Give one or the other" in labelled
    grouped = one_line_error(biolens("train", peaks, "--group-column", "family", "--out", tmp_path / "r", check=False))
    assert "--group-column" in grouped and "label table" in grouped
    listed = [peaks / "GATA1.fa", peaks / "TAL1.fa"]
    labelled = one_line_error(biolens("train", *listed, "--labels", sequence_data["labels"], "--out", tmp_path / "r",
                                      check=False))
    assert "2 FASTA files were given, one per class" in labelled and "Give one or the other" in labelled
    (tmp_path / "notes.txt").write_text("GATA1 and TAL1 peaks\n")
    other = one_line_error(biolens("train", *listed, tmp_path / "notes.txt", "--out", tmp_path / "r", check=False))
    assert other.startswith(f"error: {tmp_path / 'notes.txt'}: not a FASTA file") and "one FASTA file per class" in other
    (peaks / "TAL1.fa").unlink()
    single = one_line_error(biolens("train", peaks, "--out", tmp_path / "r", check=False))
    assert "one FASTA file (GATA1.fa), so one class" in single
    assert not (tmp_path / "r").exists()


def _matrix(consensus: str, strength: float = 0.85) -> np.ndarray:
    rows = []
    for base in consensus:
        letters = IUPAC[base]
        row = np.full(4, (1 - strength) / (4 - len(letters)) if len(letters) < 4 else 0.25)
        for letter in letters:
            row["ACGT".index(letter)] = strength / len(letters) if len(letters) < 4 else 0.25
        rows.append(row / row.sum())
    return np.array(rows)


def _meme(path, matrices: dict) -> None:
    lines = ["MEME version 4", "", "ALPHABET= ACGT", "", "strands: + -", ""]
    for name, matrix in matrices.items():
        lines += [f"MOTIF {name}", f"letter-probability matrix: alength= 4 w= {len(matrix)} nsites= 20 E= 0"]
        lines += [" ".join(f"{v:.4f}" for v in row) for row in matrix] + [""]
    path.write_text("\n".join(lines))


def test_learned_motifs_are_named_by_the_known_motifs_they_match_and_noise_is_not(tmp_path):
    """A user's MEME database of known sites among 40 random decoys: a learned E-box and GATA site (on the other
    strand, in a longer window) are named and a random soft matrix is not; against JASPAR, a soft matrix Tomtom alone
    would call is not named either."""
    from biolens.explain import known_motifs

    rng = np.random.default_rng(0)
    known = {"MA0001.1 EBOX1": _matrix("CACGTG", 0.95), "MA0002.1 GATA1": _matrix("WGATAR", 0.9),
             "MA0003.1 CTCF": _matrix("NNCCGCGNGGNGGCAGNNN"), "MA0004.1 NFKB1": _matrix("GGGAATTTCC")}
    known.update({f"DECOY{k} decoy{k}": rng.dirichlet(np.full(4, 0.5), int(rng.integers(6, 16))) for k in range(40)})
    _meme(tmp_path / "known.meme", known)
    database, description = known_motifs.load(str(tmp_path / "known.meme"))
    assert len(database) == 44 and database[1].id == "MA0002.1" and database[1].name == "GATA1"
    assert "known.meme" in description

    gata_reverse = _matrix(reverse_complement("NNAGATAAGNN"), 0.8)
    queries = [_matrix("NGCCACGTGGCN", 0.8), gata_reverse, rng.dirichlet(np.full(4, 3.0), 14)]
    matches = known_motifs.best_matches(queries, database)
    assert matches[0] and matches[0][0].known.name == "EBOX1" and matches[0][0].q <= 0.05
    assert matches[1] and matches[1][0].known.name == "GATA1"
    assert not matches[2]
    assert known_motifs.describe(matches[0][0]) == "EBOX1 (MA0001.1)"

    jaspar, about = known_motifs.load("jaspar-vertebrates")  # the database pyjaspar ships: no download
    assert len(jaspar) > 500 and "CORE (vertebrates" in about and {m.taxon for m in jaspar} == {"vertebrates"}
    soft = rng.dirichlet(np.full(4, 3.0), 15)  # what a filter that learned nothing looks like
    named, nothing = known_motifs.best_matches([_matrix("NNAGATAAGNN", 0.9), soft], jaspar)
    assert named and named[0].known.name.upper().startswith("GATA") and "GATA" in named[0].known.family
    assert not nothing
    from memelite import tomtom
    from scipy.stats import false_discovery_control

    tomtom_alone = tomtom([soft.T], [k.probabilities.T for k in jaspar], n_jobs=1)[0][0]
    assert false_discovery_control(tomtom_alone).min() < 0.05  # Tomtom's Euclidean scores alone would name it

    with pytest.raises(known_motifs.InputError, match="--known-motifs"):
        known_motifs.check_choice("jaspar-mammals")
    (tmp_path / "bad.meme").write_text("MOTIF x\nletter-probability matrix: alength= 4 w= 2\n0.1 0.2\n")
    with pytest.raises(known_motifs.InputError, match=r"bad\.meme: not a readable MEME motif file"):
        known_motifs.check_choice(str(tmp_path / "bad.meme"))  # at the start of a run, not after its training


def test_a_motif_matched_in_several_taxa_is_named_first_by_the_taxon_of_the_sets_other_motifs():
    """With every JASPAR taxon a GATA site can match a plant's GATA factor best and the human one next; where most of
    the set's named motifs are vertebrate factors, the vertebrate factor names it first; a set split one to one keeps
    Tomtom's order."""
    from types import SimpleNamespace

    from biolens.explain import known_motifs

    rng = np.random.default_rng(1)
    gata = _matrix("NNAGATAAGNN", 0.9)
    database = [known_motifs.KnownMotif("P1", "GATA_PLANT", "plants", gata),
                known_motifs.KnownMotif("V1", "GATA1", "vertebrates", _matrix("NCAGATAAGNN", 0.8)),
                known_motifs.KnownMotif("V2", "EBOX", "vertebrates", _matrix("CACGTG", 0.95)),
                known_motifs.KnownMotif("V3", "NFKB1", "vertebrates", _matrix("GGGAATTTCC")),
                *(known_motifs.KnownMotif(f"D{k}", f"decoy{k}", "insects",
                                          rng.dirichlet(np.full(4, 0.5), int(rng.integers(6, 16)))) for k in range(40))]

    def motifs(*matrices):
        return [SimpleNamespace(probabilities=m, beyond_composition=True, known=[]) for m in matrices]

    (by_tomtom,) = known_motifs.best_matches([gata], database)
    assert [m.known.name for m in by_tomtom[:2]] == ["GATA_PLANT", "GATA1"]
    three = motifs(gata, _matrix("NGCCACGTGGCN", 0.85), _matrix("NGGGAATTTCCN", 0.85))
    notes = known_motifs.name_motifs(three, database, "test")
    assert notes["taxon_first"] == "vertebrates"
    assert [m.known.name for m in three[0].known[:2]] == ["GATA1", "GATA_PLANT"]
    assert three[1].known[0].known.name == "EBOX" and three[2].known[0].known.name == "NFKB1"
    two = motifs(gata, _matrix("NGCCACGTGGCN", 0.85))
    assert known_motifs.name_motifs(two, database, "test")["taxon_first"] is None
    assert two[0].known[0].known.name == "GATA_PLANT"


def test_the_planted_sites_are_named_by_factors_that_bind_them(sequence_run):
    """The run names its learned NF-kB site by a Rel-family factor and its E-box (CACGTG) by a factor known to bind
    it, from JASPAR as pyjaspar ships it; motifs that are only composition carry no name."""
    motifs = read_tsv(sequence_run / "motifs.tsv")
    assert {"known_motif", "known_id", "known_family", "known_q", "known_agreement", "also_like"} <= set(motifs[0])

    def names(row):
        return {row["known_motif"].upper(), *(n.split(" (")[0].upper() for n in row["also_like"].split("; ") if n)}

    rel = {"RELA", "REL", "RELB", "NFKB1", "NFKB2", "DIF", "DL", "REL"}
    ebox = ("USF", "MAX", "MYC", "MNT", "TFE", "MITF", "ARNT", "BHLHE", "HEY", "CLOCK", "NPAS", "MLX", "SREBF", "CREB3",
            "TCFL5", "HES")
    first = {}
    for row in motifs:
        first.setdefault(row["favours"], row)
    assert names(first["nfkb"]) & rel, first["nfkb"]
    assert any(n.startswith(ebox) for n in names(first["ebox"])), first["ebox"]
    assert float(first["nfkb"]["known_q"]) <= 0.05 and float(first["ebox"]["known_agreement"]) >= 0.9
    assert all(not row["known_motif"] for row in motifs if row["beyond_composition"] != "True")
    metrics = json.loads((sequence_run / "metrics.json").read_text())
    assert metrics["motifs"]["known"]["database"].startswith("JASPAR") and metrics["motifs"]["known"]["named"] >= 2
    report = (sequence_run / "report.html").read_text()
    assert "Known motif" in report and "Tomtom (Gupta et al. 2007" in report


def test_enriched_words_stand_beside_the_learned_motifs_and_say_which_the_network_did_not_learn(sequence_run):
    """The classical reading of the motifs: each class's enriched word, named, and the learned motif that holds its
    site; a word no learned motif beyond composition holds is said to be missed."""
    from biolens.explain.motifs import Motif
    from biolens.stats.kmers import word_matrix
    from biolens.tasks.sequence_classify import _enriched_words

    words = read_tsv(sequence_run / "enriched_words.tsv")
    assert {w["favours"] for w in words} == {"nfkb", "ebox"} and all(float(w["z"]) >= 5 for w in words)
    motifs = read_tsv(sequence_run / "motifs.tsv")
    for word in words:
        learned = next(m for m in motifs if m["motif"] == word["learned_as"])
        assert learned["favours"] == word["favours"] and learned["beyond_composition"] == "True"
        assert contains_motif(learned["consensus"], PLANTED_MOTIFS[word["favours"]][2:8], 2) or \
            contains_motif(learned["consensus"], reverse_complement(PLANTED_MOTIFS[word["favours"]])[2:8], 2)
    assert "Beside them: words enriched in each class" in (sequence_run / "report.html").read_text()

    gata = Motif("filter01", word_matrix("AGATAAG") * 50, 50, 0.2, "A")
    gata.background_z, gata.beats_random, gata.stop = 8.0, 0.8, 7
    composition = Motif("filter02", word_matrix("WWWWWWWW") * 50, 300, 0.5, "B", stop=8)  # AT-richness only
    words = [{"word": "WGATAR", "favours": "A", "z": 9.1, "share_in_class": 0.5, "share_in_others": 0.1},
             {"word": "GCGCATGCGC", "favours": "B", "z": 7.7, "share_in_class": 0.3, "share_in_others": 0.01}]
    read = _enriched_words(words, [word_matrix(w["word"]) for w in words], [[], []], [gata, composition])
    assert [w["learned_as"] for w in read] == ["filter01", ""]


def test_a_sequence_run_says_whether_more_sequences_would_help(sequence_run):
    """The learning curve, as for images: the same network retrained on nested eighths, quarters and halves of the
    training sequences (each counting its own filter seeds), scored on the same test sequences."""
    metrics = json.loads((sequence_run / "metrics.json").read_text())
    curve = metrics["learning_curve"]
    train = int((pd.read_csv(sequence_run / "splits.csv")["split"] == "train").sum())
    assert curve["fractions"][-1] == 1.0 and curve["sizes"][-1] == train and len(curve["sizes"]) == 7
    assert curve["sizes"][0] < train / 6 and all(0 <= s <= 1 for s in curve["scores"])
    assert "sequences" in curve["advice"] and "images" not in curve["advice"]
    assert (sequence_run / "figures" / "learning_curve.png").exists()
    assert "Is the data enough?" in (sequence_run / "report.html").read_text()
    again = biolens("learning-curve", sequence_run)
    assert "has its learning curve already" in again.stdout + again.stderr


def _sequence_table(sequence_data, path, *, with_ids: bool):
    """The labelled set as benchmark sets and supplementary tables often come: one row per sequence, the sequence in
    a column, the class in another (and here a column of notes that is not a sequence)."""
    labels = pd.read_csv(sequence_data["labels"], sep="\t").set_index("id").label
    lines = sequence_data["sequences"].read_text().splitlines()
    records = {header[1:]: sequence for header, sequence in zip(lines[0::2], lines[1::2])}
    table = pd.DataFrame({"name": list(records), "notes": "peak", "seq": [s.lower() for s in records.values()],
                          "Class": [labels.get(i, "") for i in records]})
    table = table if with_ids else table.drop(columns="name")
    table.to_csv(path, index=False)
    return table


def test_a_table_of_sequences_and_labels_trains_and_predicts(sequence_data, sequence_run, tmp_path):
    from biolens.readers.sequences import read_labelled, read_training_sequences

    table = _sequence_table(sequence_data, tmp_path / "peaks.csv", with_ids=True)
    found = read_training_sequences(tmp_path / "peaks.csv", None)
    fasta = read_labelled(sequence_data["sequences"], sequence_data["labels"])
    assert sorted(zip(found.ids, found.labels, found.sequences)) == sorted(zip(fasta.ids, fasta.labels, fasta.sequences))
    assert any("3 rows have no label" in note for note in found.notes)  # the unlabelled records, as from FASTA

    out = tmp_path / "runs" / "peaks"
    biolens("train", tmp_path / "peaks.csv", "--out", out, "--epochs", "1", "--seed", "0", "--no-learning-curve",
            "--known-motifs", "none")
    splits = pd.read_csv(out / "splits.csv")
    assert set(splits.id) == set(found.ids) and (out / "motifs.tsv").exists()
    info = json.loads((out / "run.json").read_text())
    assert info["config"]["data"].endswith("peaks.csv") and info["config"]["labels"] == ""
    report = (out / "report.html").read_text()
    assert "labelled by its label column" in report and "--labels" not in report

    # predicting from a table reads each row as the same FASTA record would be read
    _sequence_table(sequence_data, tmp_path / "new.csv", with_ids=False)  # no ids: rows are named by their line
    biolens("predict", sequence_run, tmp_path / "new.csv", "--out", tmp_path / "from_table.csv")
    biolens("predict", sequence_run, sequence_data["sequences"], "--out", tmp_path / "from_fasta.csv")
    from_table, from_fasta = pd.read_csv(tmp_path / "from_table.csv"), pd.read_csv(tmp_path / "from_fasta.csv")
    assert list(from_table.id) == [f"line_{k + 2}" for k in range(len(table))]
    assert list(from_fasta.id) == list(table.name)
    np.testing.assert_allclose(from_table.filter(like="prob_").to_numpy(), from_fasta.filter(like="prob_").to_numpy(),
                               atol=1e-6)
    assert (from_table.predicted == from_fasta.predicted).all()


def test_a_sequence_table_with_protein_no_label_or_a_label_table_is_refused_in_one_line(sequence_data, sequence_run,
                                                                                      tmp_path):
    from biolens.readers.sequences import read_sequence_table, sequence_table

    protein = pd.DataFrame({"sequence": ["MKTAYIAKQRQISFVKSHFSRQ"] * 12 + ["ACGTACGTAC"] * 12, "label": ["a", "b"] * 12})
    protein.to_csv(tmp_path / "protein.csv", index=False)
    said = one_line_error(biolens("train", tmp_path / "protein.csv", "--out", tmp_path / "r", check=False))
    assert "protein.csv, line 2" in said and "'I'" in said and "column 'sequence'" in said
    protein_read = one_line_error(biolens("predict", sequence_run, tmp_path / "protein.csv", "--out", tmp_path / "p.csv",
                                        check=False))
    assert "protein.csv, line 2" in protein_read and "'I'" in protein_read  # predict reads a table's letters alike
    (tmp_path / "notes.md").write_text("# peaks\nnothing here\n")
    neither = one_line_error(biolens("predict", sequence_run, tmp_path / "notes.md", "--out", tmp_path / "p.csv",
                                     check=False))
    assert "not a FASTA file, nor a table with a column of sequences" in neither
    protein.assign(sequence=["ACGTTGCAAC"] * 24).drop(columns="label").to_csv(tmp_path / "nolabel.csv", index=False)
    said = one_line_error(biolens("train", tmp_path / "nolabel.csv", "--out", tmp_path / "r", check=False))
    assert "no column is named label" in said and "columns: sequence" in said
    # one column beside the sequences is the label whatever its name; a column of distinct notes is not
    factors = protein.assign(sequence=["ACGTTGCAAC"] * 24).rename(columns={"label": "factor"})
    factors.to_csv(tmp_path / "factor.csv", index=False)
    found = read_sequence_table(tmp_path / "factor.csv")
    assert found.labels == list(factors.factor) and "the column 'factor'" in found.notes[0]
    factors.assign(factor=[f"peak {k}" for k in range(24)]).to_csv(tmp_path / "notes.csv", index=False)
    said = one_line_error(biolens("train", tmp_path / "notes.csv", "--out", tmp_path / "r", check=False))
    assert "no column is named label" in said and "columns: sequence, factor" in said
    said = one_line_error(biolens("train", tmp_path / "protein.csv", "--labels", sequence_data["labels"], "--out",
                                  tmp_path / "r", check=False))
    assert "one table" in said and "--labels is for a FASTA" in said
    # an image manifest is not a sequence table (its paths are not nucleotide letters), nor are short codes
    pd.DataFrame({"path": ["a/cell_1.png"] * 3, "label": ["x"] * 3}).to_csv(tmp_path / "manifest.csv", index=False)
    pd.DataFrame({"well": ["ACG", "TTA", "GAC"], "label": ["x"] * 3}).to_csv(tmp_path / "wells.csv", index=False)
    assert sequence_table(tmp_path / "manifest.csv") is None and sequence_table(tmp_path / "wells.csv") is None
    assert not (tmp_path / "r").exists()


def test_a_few_very_long_sequences_do_not_set_the_length_every_sequence_is_read_at():
    from biolens.tasks.sequence_classify import default_length

    rng = np.random.default_rng(0)
    peaks = ["A" * int(n) for n in rng.integers(200, 501, 500)]
    assert default_length(peaks) == max(map(len, peaks))  # ordinary spread: every base read
    broad = peaks + ["C" * 12_000, "G" * 6_000]  # two broad peaks among 500 narrow ones
    length = default_length(broad)
    assert 490 <= length <= 500 and sum(len(s) > length for s in broad) <= 0.01 * len(broad)
    assert default_length(["A" * 100] * 50 + ["A" * 190]) == 190  # under twice the percentile: the longest


def _peaks_and_genome(folder, rng):
    """A small genome (chr1, chr2) and two factors' peaks as MACS2 writes them (narrowPeak, the summit in column
    10): GATA1 peaks hold an E-box-like site under the summit, TAL1 peaks an NF-kB site; some on the '-' strand."""
    folder.mkdir()
    chromosomes = {"chr1": 60_000, "chr2": 40_000}
    genome = {name: rng.choice(list("ACGT"), size) for name, size in chromosomes.items()}
    rows = {"GATA1": [], "TAL1": []}
    sites = {"GATA1": "GCCACGTGGC", "TAL1": "GGGAATTTCC"}
    for k in range(120):
        factor = "GATA1" if k % 2 == 0 else "TAL1"
        chrom = "chr1" if k < 70 else "chr2"
        start = 300 + 480 * (k if k < 70 else k - 70)
        summit = int(rng.integers(60, 140))
        genome[chrom][start + summit - 5:start + summit + 5] = list(sites[factor])
        strand = "-" if k % 5 == 0 else "+"
        rows[factor].append(f"{chrom}\t{start}\t{start + 200}\t{factor}_peak_{k}\t500\t{strand}\t8.1\t-1\t6.2\t{summit}\n")
    text = "".join(f">{name}\n" + "\n".join("".join(seq[i:i + 60]) for i in range(0, len(seq), 60)) + "\n"
                   for name, seq in genome.items())
    (folder / "genome.fa").write_text(text)
    peaks = folder / "peaks"
    peaks.mkdir()
    for factor, lines in rows.items():
        (peaks / f"{factor}.narrowPeak").write_text("track name=peaks\n" + "".join(lines))
    return folder / "genome.fa", peaks, {name: "".join(seq) for name, seq in genome.items()}


def _write_2bit(path, sequences: dict) -> None:
    """UCSC's .2bit format written from its specification (kent's twoBit.h): T C A G as 00 01 10 11, four bases a
    byte, runs of N and of lower-case bases as blocks beside the packed bases."""
    import struct

    def blocks(flags):
        starts = np.flatnonzero(np.diff(np.concatenate([[0], flags.astype(np.int8)])) == 1)
        ends = np.flatnonzero(np.diff(np.concatenate([flags.astype(np.int8), [0]])) == -1) + 1
        return [len(starts), *starts, *(ends - starts)]

    names = list(sequences)
    index_size = sum(1 + len(n.encode()) + 4 for n in names)
    records, offset = [], 16 + index_size
    for name in names:
        text = np.frombuffer(sequences[name].encode(), dtype="S1")
        upper = np.char.upper(text)
        n_blocks, mask_blocks = blocks(upper == b"N"), blocks(text != upper)
        codes = np.select([upper == b"C", upper == b"A", upper == b"G"], [1, 2, 3], 0).astype(np.uint8)
        codes = np.concatenate([codes, np.zeros(-len(codes) % 4, np.uint8)]).reshape(-1, 4)
        packed = (codes[:, 0] << 6 | codes[:, 1] << 4 | codes[:, 2] << 2 | codes[:, 3]).astype(np.uint8).tobytes()
        head = struct.pack(f"<I{len(n_blocks)}I{len(mask_blocks)}II", len(text), *n_blocks, *mask_blocks, 0)
        records.append(head + packed)
    index = b""
    for name, record in zip(names, records):
        index += struct.pack("<B", len(name.encode())) + name.encode() + struct.pack("<I", offset)
        offset += len(record)
    path.write_bytes(struct.pack("<4I", 0x1A412743, 0, len(names), 0) + index + b"".join(records))


def test_peaks_cut_from_a_2bit_genome_equal_those_from_its_fasta(tmp_path):
    """UCSC serves genomes as .2bit (hg38.2bit): read through py2bit, no index needed, soft-masked bases in upper
    case as from the FASTA, runs of N kept."""
    from biolens.readers.genome import cut_sequences, open_genome

    fasta, peaks, sequence_of = _peaks_and_genome(tmp_path / "data", np.random.default_rng(5))
    masked = dict(sequence_of)
    chr2 = masked["chr2"]
    masked["chr2"] = chr2[:30_000] + chr2[30_000:31_000].lower() + "N" * 500 + chr2[31_500:]  # beyond every peak
    _write_2bit(tmp_path / "genome.2bit", masked)
    (tmp_path / "genome.fa").write_text("".join(f">{n}\n{s.upper()}\n" for n, s in masked.items()))
    two_bit, plain = open_genome(tmp_path / "genome.2bit"), open_genome(tmp_path / "genome.fa")
    assert sorted(two_bit.keys()) == ["chr1", "chr2"] and len(two_bit["chr2"]) == 40_000
    assert two_bit["chr2"][29_990:31_510] == plain["chr2"][29_990:31_510] == masked["chr2"][29_990:31_510].upper()
    for factor in ("GATA1", "TAL1"):
        path = peaks / f"{factor}.narrowPeak"
        assert cut_sequences(path, two_bit, "genome.2bit") == cut_sequences(path, plain, "genome.fa")
    (tmp_path / "broken.2bit").write_bytes(b"\x43\x27\x41\x1a" + bytes(12))
    with pytest.raises(InputError, match=r"broken\.2bit: not a readable \.2bit file"):
        open_genome(tmp_path / "broken.2bit")
    whole = (tmp_path / "genome.2bit").read_bytes()
    (tmp_path / "cut.2bit").write_bytes(whole[:-2000])  # a download that stopped short of the last bases
    with pytest.raises(InputError, match=r"cut\.2bit: chr2:39700-39900 cannot be read \(a truncated"):
        open_genome(tmp_path / "cut.2bit")["chr2"][39_700:39_900]


def test_peaks_as_narrowpeak_files_are_cut_from_the_genome_centred_on_their_summits(tmp_path):
    from biolens.readers.sequences import read_training_sequences

    genome, peaks, sequence_of = _peaks_and_genome(tmp_path / "data", np.random.default_rng(5))
    found = read_training_sequences(peaks, None, genome=str(genome))
    assert len(found.ids) == 120 and set(found.labels) == {"GATA1", "TAL1"}
    complement = str.maketrans("ACGT", "TGCA")
    for line in (peaks / "TAL1.narrowPeak").read_text().splitlines()[1:4]:
        chrom, start, end, name, _, strand, *_, summit = line.split("\t")
        centre = int(start) + int(summit)
        expected = sequence_of[chrom][centre - 100:centre + 100]
        expected = expected.translate(complement)[::-1] if strand == "-" else expected
        assert found.sequences[found.ids.index(name)] == expected
        assert "GGGAATTTCC" in expected or "GGAAATTCCC" in expected  # the site sits under the summit
    listed = read_training_sequences([peaks / "TAL1.narrowPeak", peaks / "GATA1.narrowPeak"], None, genome=str(genome))
    assert (listed.ids, listed.labels, listed.sequences) == (found.ids, found.labels, found.sequences)

    out = tmp_path / "run"
    biolens("train", peaks, "--genome", genome, "--out", out, "--epochs", "2", "--seed", "0", "--no-learning-curve",
            "--known-motifs", "none")
    info = json.loads((out / "run.json").read_text())
    assert info["config"]["genome"] == str(genome.resolve()) and info["length"] == 200
    # the sites planted under the summits crowd the middle fifth of the peaks (as CentriMo would read them)
    ebox = next(m for m in read_tsv(out / "motifs.tsv") if "CACGTG" in m["consensus"])
    assert ebox["favours"] == "GATA1" and float(ebox["central_share"]) >= 0.9
    assert float(ebox["central_expected"]) < 0.3 and float(ebox["central_p"]) < 1e-10
    assert f"--genome {genome.resolve()}" in (out / "report.html").read_text()
    # predict cuts new peaks from the run's genome unless told another; the same as from their FASTA
    (tmp_path / "cut.fa").write_text("".join(f">{i}\n{s}\n" for i, s in zip(found.ids, found.sequences)))
    biolens("predict", out, peaks / "TAL1.narrowPeak", "--out", tmp_path / "from_bed.csv")
    biolens("predict", out, tmp_path / "cut.fa", "--out", tmp_path / "from_fasta.csv")
    from_bed = pd.read_csv(tmp_path / "from_bed.csv")
    from_fasta = pd.read_csv(tmp_path / "from_fasta.csv").set_index("id").loc[from_bed.id]
    np.testing.assert_allclose(from_bed.filter(like="prob_").to_numpy(), from_fasta.filter(like="prob_").to_numpy(),
                               atol=1e-6)


def test_peaks_and_a_genome_that_do_not_fit_are_refused_in_one_line(sequence_data, tmp_path):
    import gzip

    genome, peaks, _ = _peaks_and_genome(tmp_path / "data", np.random.default_rng(6))
    renamed = tmp_path / "ensembl.fa"  # the same genome named 1, 2 (Ensembl) against chr1, chr2 peaks (UCSC)
    renamed.write_text(genome.read_text().replace(">chr", ">"))
    said = one_line_error(biolens("train", peaks, "--genome", renamed, "--out", tmp_path / "r", check=False))
    assert "chromosome 'chr1' is not in ensembl.fa" in said and "it has '1'" in said
    short = tmp_path / "short.fa"
    short.write_text(">chr1\n" + "ACGT" * 100 + "\n>chr2\n" + "ACGT" * 100 + "\n")
    said = one_line_error(biolens("train", peaks, "--genome", short, "--out", tmp_path / "r", check=False))
    assert "GATA1.narrowPeak, line 2" in said and "runs past the end of chr1" in said
    zipped = tmp_path / "genome.fa.gz"
    zipped.write_bytes(gzip.compress(genome.read_bytes()))
    said = one_line_error(biolens("train", peaks, "--genome", zipped, "--out", tmp_path / "r", check=False))
    assert "gzip" in said and "bgzip" in said and ".2bit" in said
    said = one_line_error(biolens("train", sequence_data["sequences"], "--labels", sequence_data["labels"],
                                  "--genome", genome, "--out", tmp_path / "r", check=False))
    assert "holds the sequences already" in said
    said = one_line_error(biolens("train", peaks, "--out", tmp_path / "r", check=False))  # no genome
    assert "holds BED files of intervals" in said and "--genome" in said
    said = one_line_error(biolens("train", peaks / "GATA1.narrowPeak", "--labels", sequence_data["labels"], "--out",
                                  tmp_path / "r", check=False))
    assert "is a BED file of intervals" in said and "--genome" in said
    (peaks / "TAL1.narrowPeak").write_text("chr1\t500\t400\tbad\n")
    said = one_line_error(biolens("train", peaks, "--genome", genome, "--out", tmp_path / "r", check=False))
    assert "TAL1.narrowPeak, line 1" in said and "the end (400) must be after the start (500)" in said
    assert not (tmp_path / "r").exists()
