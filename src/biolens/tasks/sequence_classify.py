"""Sequence classification: train a 1-D CNN on labelled DNA sequences and read the motifs it learned.

Same rules as images (tasks/supervised.py): stratified split that keeps identical sequences (or a named group)
together, a resumable fit, calibration and conformal 'unsure' on validation, the test set used once. Then the
first-layer filters become motifs (explain/motifs.py): logos, motifs.tsv and motifs.meme.
"""
from __future__ import annotations

import csv
import dataclasses
import hashlib
import time
from pathlib import Path

import numpy as np

from biolens import console
from biolens.config import SequenceConfig
from biolens.errors import InputError
from biolens.explain import known_motifs
from biolens.readers.sequences import (LabelledSequences, check_training_inputs, class_files, is_fasta, one_hot,
                                      read_training_sequences, sequence_records, sequence_table, several_files,
                                      table_records)
from biolens.runs import Run, write_csv
from biolens.stats import kmers
from biolens.engine import distributed, lifecycle, splits, supervised, training

TASK = "sequence_classify"
MAX_ONE_HOT_BYTES = 4 << 30  # one-hot bytes held in memory; beyond this ask for --length


def train(data: str | Path | None = None, out: str | Path | None = None, *, labels: str | Path | None = None,
          resume: str | Path | None = None, **options) -> Run:
    """Train a sequence classifier, test it once on held-out sequences and extract its motifs.

    Args:
        data: FASTA or FASTA.gz (DNA or RNA; IUPAC ambiguity codes are read as N) with `labels`, a folder of
            FASTA files, one per class, the file name being the class (GATA1.fa, TAL1.fa), a list of such files, or a
            table (CSV, TSV, Excel) with a sequence column and a label column (and optionally an id column). With the
            option `genome` (the genome's FASTA): a BED/narrowPeak file with `labels`, or a folder of them, one per
            class.
        out: the run folder to create.
        labels: TSV/CSV with columns `id` (the FASTA record id) and `label`, optionally a group column; not with a
            folder of class files.
        resume: an interrupted run folder to continue instead.
        **options: any field of `SequenceConfig` (epochs, length, filters, both_strands, group_column, seed, ...).

    Example:
        >>> run = biolens.train("promoters.fasta", out="runs/prom", labels="labels.tsv")   # doctest: +SKIP
        >>> run.metrics["balanced_accuracy_ci95"]                                          # doctest: +SKIP
    """
    if resume is None:
        genome = options.get("genome") or ""
        check_training_inputs(data, labels, options.get("group_column"), genome)
        files = several_files(data)
        options.update(data=[str(f.resolve()) for f in files] if files else str(Path(data).resolve()),
                       labels=str(Path(labels).resolve()) if labels else "",
                       genome=str(Path(genome).resolve()) if genome else "")
    return lifecycle.execute(TASK, out=out, resume=resume, options=options, prepare=_prepare, body=_body)


def _prepare(config: SequenceConfig, run: Run | None, out: Path) -> lifecycle.Prepared:
    files = several_files(config.data)
    what = (f"{Path(config.data).name} and {Path(config.labels).name}" if config.labels
            else ", ".join(f.name for f in files) + " (one file per class)" if files
            else Path(config.data).name if sequence_table(config.data) is not None
            else f"{Path(config.data).name}/ (one {'BED' if config.genome else 'FASTA'} file per class)")
    what += f", cut from {Path(config.genome).name}" if config.genome else ""
    with console.step(f"reading {what}"):
        found = read_training_sequences(config.data, config.labels, group_column=config.group_column,
                                        min_per_class=config.min_per_class, genome=config.genome or None)
    fingerprint = data_fingerprint(config)
    longest = max(map(len, found.sequences))
    length = int(run.info["length"]) if run is not None else (config.length or default_length(found.sequences))
    if len(found.sequences) * length * 4 > MAX_ONE_HOT_BYTES:
        raise InputError(f"{what}: {len(found.sequences)} sequences of up to {longest:,} bases need more than "
                         f"{MAX_ONE_HOT_BYTES >> 30} GB as one-hot; give --length N to keep the central N bases.")
    class_names = sorted(set(found.labels))
    y = np.array([class_names.index(label) for label in found.labels], dtype=np.int64)
    groups, duplicate_note = _split_groups(found)
    if run is None:
        assignment = splits.split(found.labels, groups, test_fraction=config.test_fraction,
                                  val_fraction=config.val_fraction, seed=config.seed, group_column=config.group_column)
    else:
        assignment = _read_splits(run, found)
    notes = found.notes + ([duplicate_note] if duplicate_note else [])
    if longest > length:
        cut = sum(len(s) > length for s in found.sequences)
        notes.append(f"{cut} sequences are longer than {length} bases; the model reads their central {length} bases"
                     + ("" if config.length or run is not None else
                        f" (the longest has {longest:,}: reading every sequence at that length would make the run "
                        f"{longest / length:.0f} times slower for the few it lengthens; --length {longest} reads them "
                        "whole)") + ".")
    x = one_hot(found.sequences, length, centred=True, dtype=np.uint8)
    return lifecycle.Prepared((found, x, y, class_names, assignment, groups, notes), fingerprint,
                              {"length": length, "class_names": class_names, "n_sequences": len(found.ids)})


def _body(run: Run, config: SequenceConfig, data) -> bool:
    found, x, y, class_names, assignment, groups, notes = data
    if not (run.path / "splits.csv").exists():
        write_csv(run.path / "splits.csv", ["id", "label", "group", "split"],
                  [[i, found.labels[k], groups[k] if groups else "", assignment[k]] for k, i in enumerate(found.ids)])
    return _train_in_run(run, config, found, x, y, class_names, assignment, groups, notes)


def _split_groups(found: LabelledSequences) -> tuple[list[str] | None, str]:
    """The user's groups, or else identical sequences grouped so that no copy sits on both sides of a split."""
    if found.groups is not None:
        return found.groups, ""
    digests = [hashlib.sha1(s.encode()).hexdigest() for s in found.sequences]
    copies = len(digests) - len(set(digests))
    if not copies:
        return None, ""
    labels_of: dict[str, set] = {}
    for digest, label in zip(digests, found.labels):
        labels_of.setdefault(digest, set()).add(label)
    conflicting = sum(len(v) > 1 for v in labels_of.values())
    note = (f"{copies} sequences are exact copies of others; copies were kept in one split so the test set holds no "
            "sequence the model trained on.")
    if conflicting:
        note += f" {conflicting} of those sequences carry different labels; check them."
    return digests, note


def _train_in_run(run: Run, config: SequenceConfig, found, x, y, class_names, assignment, groups, notes) -> bool:
    warnings = notes + supervised.class_balance_notes(y, class_names) + splits.missing_classes(found.labels, assignment)
    for warning in warnings:
        console.say(f"warning: {warning}")
    parts = {name: np.flatnonzero(assignment == name) for name in ("train", "val", "test")}
    batch_size = config.auto_batch_size(len(parts["train"]))
    run.update_info(warnings=warnings)
    started = time.perf_counter()
    def build_model():  # only for a fresh start: a resumed run loads its checkpoint and needs no seeds
        model, note, hold, words = _seeded_model(config, x, y, parts["train"], class_names)
        run.update_info(kmer_seeds=[{"word": w.word, "favours": class_names[w.favours], "z": w.z,
                                     "share_in_class": w.share_in, "share_in_others": w.share_out} for w in words],
                        seeds_held_epochs=hold["epochs"] if hold else 0)
        return model, note, hold

    state = supervised.fit_in_run(
        run, x, y, parts,
        build_model=build_model,
        train_data=lambda size: training.array_batches(x, y, parts["train"], size, shuffle=True, seed=config.seed),
        batch_size=batch_size, epochs=config.epochs, patience=config.patience, time_budget=config.time_budget,
        learning_rate=config.auto_learning_rate(batch_size), class_weights=config.class_weights,
        mixed_precision=config.mixed_precision, seed=config.seed)
    if not distributed.is_chief():  # several machines: worker 0 evaluates and writes the results
        console.say("this worker's part of training is done; worker 0 writes the run folder.")
        return False
    return _finish(run, config, found, x, y, class_names, parts, groups, state, time.perf_counter() - started)


def _seeded_model(config: SequenceConfig, x, y, train: np.ndarray, class_names: list[str]):
    """A new network, its first-layer filters partly started from words enriched in each class of the `train` rows
    (never validation or test) and held so for the first epochs: (model, note on its weights, hold, words)."""
    from biolens.models.sequence import SEED_HOLD_EPOCHS, seed_hold, seed_motif_filters, sequence_cnn

    words = []
    if config.kmer_seeds:
        with console.step("counting words enriched in each class (filter seeds)"):
            words = kmers.enriched_words(x[train], y[train], len(class_names), per_class=config.kmer_seeds,
                                         seed=config.seed, both_strands=config.both_strands)
    model = sequence_cnn(len(class_names), filters=config.filters, width=config.filter_width,
                         both_strands=config.both_strands)
    seeded = seed_motif_filters(model, [w.word for w in words])
    return model, ("none (trained from scratch" + (f"; {seeded} first-layer filters started from words enriched "
                                                   f"in one class, held for the first {SEED_HOLD_EPOCHS} epochs)"
                                                   if seeded else ")")), seed_hold(seeded), words


def _learning_curve(run: Run, config: SequenceConfig, x, y, class_names, parts, state, metrics) -> None:
    """Would more sequences help? metrics["learning_curve"] and its figure, or the reason it was not run. Each
    smaller model counts its own filter seeds on its own part of the training set."""
    supervised.learning_curve_step(
        run, x, y, parts, class_names, metrics, mode=config.learning_curve,
        train_seconds=float(state.get("elapsed", 0.0)), seed=config.seed, unit="sequences",
        fit_options=dict(epochs=config.epochs, patience=config.patience, time_budget=config.time_budget,
                         learning_rate=config.auto_learning_rate, class_weights=config.class_weights,
                         mixed_precision=config.mixed_precision),
        batch_size_for=config.auto_batch_size,
        train_data_for=lambda rows, size: training.array_batches(x, y, rows, size, shuffle=True, seed=config.seed),
        build_model=lambda rows: _seeded_model(config, x, y, rows, class_names)[:3])


def add_learning_curve(run: Run, config: SequenceConfig, metrics: dict) -> dict:
    """The learning curve of a finished run (`biolens learning-curve RUN`), on the run's own split."""
    found, x, y, class_names, assignment, _, _ = lifecycle.prepared_again(_prepare, config, run)
    parts = {name: np.flatnonzero(assignment == name) for name in ("train", "val", "test")}
    _learning_curve(run, dataclasses.replace(config, learning_curve="on"), x, y, class_names, parts, {}, metrics)
    return metrics["learning_curve"]


def _finish(run: Run, config, found, x, y, class_names, parts, groups, state, seconds) -> bool:
    from biolens.stats import baselines, sequence_baseline

    test = parts["test"]
    model, metrics, probs, unsure = supervised.evaluate_held_out(
        run, x, y, parts, class_names, state, alpha=config.conformal_alpha,
        groups=np.asarray(groups)[test] if groups else None, seed=config.seed, unit="sequences")
    write_csv(run.path / "predictions.csv", ["id", "true", "predicted", "confidence", "unsure",
                                             *[f"prob_{c}" for c in class_names]],
              [[found.ids[i], class_names[y[i]], class_names[probs[row].argmax()], f"{probs[row].max():.4f}",
                bool(unsure[row]), *[f"{p:.4f}" for p in probs[row]]] for row, i in enumerate(test)])
    with console.step("fitting the classical baseline (logistic regression on k-mer frequencies)"):
        compared = sequence_baseline.compare(x, y, parts, class_names, probs.argmax(1),
                                             both_strands=config.both_strands,
                                             groups=np.asarray(groups)[test] if groups else None, seed=config.seed)
    reading = baselines.reading(compared["classical_baseline"])
    metrics.update(compared, baseline_reading=reading)
    metrics["warnings"] = metrics.get("warnings", []) + sequence_baseline.length_warning(compared, len(class_names))
    console.say(reading)
    motifs = _write_motifs(run, config, model, x, y, class_names, parts, metrics)
    _write_motif_sites(run, model, found, x, y, class_names, parts, motifs, metrics)
    _write_motif_table(run, motifs)
    metrics["length"] = int(x.shape[1])
    _learning_curve(run, config, x, y, class_names, parts, state, metrics)
    supervised.save_results(run, model, metrics, seconds)
    return True


def _write_motifs(run: Run, config: SequenceConfig, model, x, y, class_names, parts, metrics: dict) -> list:
    """motifs.meme, the motifs' logos and names, and enriched_words.tsv beside them; metrics["motifs"]. Returns the
    motifs (motifs.tsv is written once their sites are read: `_write_motif_table`)."""
    from biolens.explain.motifs import learned_motifs, write_meme
    from biolens.report import figures

    with console.step("reading the motifs the network learned"):
        motifs, notes = learned_motifs(model, x, y, np.concatenate([parts["train"], parts["val"]]), class_names,
                                       seed=config.seed)
    words = run.info.get("kmer_seeds") or []
    word_matrices = [kmers.word_matrix(w["word"]) for w in words]
    with console.step(f"naming the motifs by the known motifs they match ({config.known_motifs})"):
        try:
            known, description = known_motifs.load(config.known_motifs)
            naming = known_motifs.name_motifs(motifs, known, description)
            word_names = [known_motifs.taxon_first(found, naming["taxon_first"])
                          for found in known_motifs.best_matches(word_matrices, known, keep=known_motifs.CANDIDATES)]
        except Exception as error:  # noqa: BLE001 - names are a reading aid; a library failure must not cost the run
            naming = {"database": "none", "failed": f"{type(error).__name__}: {error}"}
            word_names = [[] for _ in words]
            metrics["warnings"] = metrics.get("warnings", []) + [
                f"The learned motifs were not named by known ones ({naming['failed']}); motifs.meme can be compared "
                "with JASPAR by Tomtom instead."]
    enriched = _enriched_words(words, word_matrices, word_names, motifs)
    write_csv(run.path / "enriched_words.tsv", ["word", "favours", "share_in_class", "share_in_others", "z",
                                                "known_motif", "known_id", "known_q", "learned_as"],
              [[w["word"], w["favours"], w["share_in_class"], w["share_in_others"], w["z"], w["known_motif"],
                w["known_id"], w["known_q"], w["learned_as"]] for w in enriched], delimiter="\t")
    write_meme(motifs, run.path / "motifs.meme")
    if motifs:
        figures.motif_logos(motifs, run.path / "figures" / "motifs.png")
    metrics["motifs"] = {**notes, "reported": len(motifs), "distinct": len(motifs), "known": naming,
                         "enriched_words": enriched,
                         "top": [{"motif": m.name, "consensus": m.consensus, "favours": m.favours,
                                  "importance": round(m.importance, 5), "n_sites": m.n_sites,
                                  "repeats": len(m.repeats), "beats_random": round(m.beats_random, 3),
                                  "background_z": round(m.background_z, 1),
                                  "beyond_composition": m.beyond_composition,
                                  "known": [{"name": k.known.name, "id": k.known.id, "taxon": k.known.taxon,
                                             "family": k.known.family, "q": float(f"{k.q:.3g}"),
                                             "agreement": round(k.agreement, 3)}
                                            for k in m.known]}
                                 for m in motifs[:10]]}
    return motifs


def _write_motif_sites(run: Run, model, found, x, y, class_names, parts, motifs: list, metrics: dict) -> None:
    """motif_sites.tsv: where each motif beyond composition sits in every sequence (training, validation and test
    alike: a description of the data, not a score); the share of each class's sequences holding a site on the
    report's motifs (metrics["motifs"]["top"][i]["with_site"]) and whether the sites crowd the sequences' middle
    (each motif's `central`); the site readers, for `predict`."""
    from biolens.explain.motifs import central_enrichment, motif_sites, site_readers, site_rows

    readers = site_readers(motifs)
    with console.step("finding each motif's sites in every sequence"):
        lengths = np.fromiter(map(len, found.sequences), dtype=np.int64, count=len(found.sequences))
        sites = motif_sites(model, x, readers, lengths)
    split = np.empty(len(y), dtype=object)
    for name, rows in parts.items():
        split[rows] = name
    described = {m.name: (_known_columns(m)[0], m.favours) for m in motifs}
    write_csv(run.path / "motif_sites.tsv", SITE_COLUMNS[:4] + ["label", "split"] + SITE_COLUMNS[4:],
              site_rows(sites, readers, described, found.ids, found.sequences,
                        lambda row: [class_names[y[row]], split[row]]), delimiter="\t")
    per_class = np.maximum(np.bincount(y, minlength=len(class_names)), 1)
    by_name = {m.name: m for m in motifs}
    with_site = {}
    table = np.array([(k, row, start, end) for k, row, start, end, *_ in sites], dtype=np.int64).reshape(-1, 4)
    for k, reader in enumerate(readers):
        mine = table[table[:, 0] == k]
        if len(mine):
            holding = np.bincount(y[mine[:, 1]], minlength=len(class_names)) / per_class
            with_site[reader.motif] = {c: round(float(share), 4) for c, share in zip(class_names, holding)}
        motif = by_name[reader.motif]  # in its own class's sequences: do its sites crowd their middle?
        own = mine[y[mine[:, 1]] == class_names.index(motif.favours)]
        motif.central = central_enrichment(own[:, 2], own[:, 3], lengths[own[:, 1]],
                                           np.minimum(lengths[own[:, 1]], x.shape[1]))
    for entry in metrics.get("motifs", {}).get("top", []):
        if entry["motif"] in with_site:
            entry["with_site"] = with_site[entry["motif"]]
        entry.update(by_name[entry["motif"]].central)
    metrics["motifs"]["sites_listed"] = len(sites)
    metrics["motifs"]["site_readers"] = [{**dataclasses.asdict(r), "known_motif": described[r.motif][0],
                                          "favours": described[r.motif][1]} for r in readers]


def _write_motif_table(run: Run, motifs: list) -> None:
    """motifs.tsv, one row per distinct motif in the report's order."""
    write_csv(run.path / "motifs.tsv", ["motif", "consensus", "n_sites", "importance", "favours", "same_as", "bits",
                                        "rank_in_class", "beats_random", "background_z", "beyond_composition",
                                        "known_motif", "known_id", "known_taxon", "known_family", "known_q",
                                        "known_agreement", "also_like", "central_share", "central_expected",
                                        "central_p"],
              [[m.name, m.consensus, m.n_sites, f"{m.importance:.5f}", m.favours, ",".join(m.repeats),
                f"{_bits(m):.2f}", m.rank_in_class, f"{m.beats_random:.3f}", f"{m.background_z:.1f}",
                m.beyond_composition, *_known_columns(m),
                *[m.central.get(k, "") for k in ("central_share", "central_expected", "central_p")]]
               for m in motifs], delimiter="\t")


SITE_COLUMNS = ["motif", "known_motif", "favours", "id", "start", "end", "strand", "score", "site"]


def write_new_sites(run: Run, model, x, ids: list[str], sequences: list[str], out: Path) -> Path | None:
    """For `predict`: the learned motifs' sites in new sequences, written beside the predictions
    (<name>_motif_sites.tsv); None for runs made before site readers were kept."""
    from biolens.explain.motifs import SiteReader, motif_sites, site_rows

    kept = run.metrics.get("motifs", {}).get("site_readers")
    if kept is None:
        return None
    readers = [SiteReader(r["motif"], r["filter"], r["start"], r["stop"], r["threshold"]) for r in kept]
    described = {r["motif"]: (r["known_motif"], r["favours"]) for r in kept}
    lengths = np.fromiter(map(len, sequences), dtype=np.int64, count=len(sequences))
    path = Path(out).with_name(Path(out).stem + "_motif_sites.tsv")
    write_csv(path, SITE_COLUMNS, site_rows(motif_sites(model, x, readers, lengths), readers, described, ids,
                                            sequences), delimiter="\t")
    return path


WORD_LEARNED = 0.5   # similarity of a word and a learned motif at which the network learned the word's site


def _enriched_words(words: list[dict], matrices: list[np.ndarray], names: list, motifs: list) -> list[dict]:
    """The classical side of the motifs: the words enriched in each class beyond its composition (the filter
    seeds, counted on the training sequences), each with the known motif it matches and the learned motif beyond
    composition that holds its site (`learned_as`, '' when the network learned no such motif)."""
    from biolens.explain.motifs import similarity

    out = []
    for word, matrix, matches in zip(words, matrices, names):
        learned = next((m.name for m in motifs if m.beyond_composition and m.favours == word["favours"]
                        and similarity(matrix, m.probabilities) >= WORD_LEARNED), "")
        best = matches[0] if matches else None
        out.append({**word, "known_motif": best.known.name if best else "", "known_id": best.known.id if best else "",
                    "known_q": float(f"{best.q:.2g}") if best else "", "learned_as": learned})
    return out


def _known_columns(motif) -> list[str]:
    """known_motif, known_id, known_taxon, known_family, known_q, known_agreement and also_like (the other names it
    matches), '' when none."""
    if not motif.known:
        return [""] * 7
    best = motif.known[0]
    return [best.known.name, best.known.id, best.known.taxon, best.known.family, f"{best.q:.2g}",
            f"{best.agreement:.2f}",
            "; ".join(known_motifs.describe(k) for k in motif.known[1:])]


def _bits(motif) -> float:
    from biolens.explain.motifs import information_content

    return float(information_content(motif.probabilities).sum())


def default_length(sequences: list[str]) -> int:
    """The bases the model reads when --length is not given: the longest sequence, unless it is more than twice the
    99th percentile of the lengths (a few broad peaks or unspliced transcripts among short ones); then that
    percentile, so 99% of the sequences are read whole and the rest keep their centre."""
    lengths = np.fromiter(map(len, sequences), dtype=np.int64, count=len(sequences))
    typical = int(np.ceil(np.percentile(lengths, 99)))
    return int(lengths.max()) if lengths.max() <= 2 * typical else typical


def data_fingerprint(config: SequenceConfig) -> str:
    """The lifecycle's fingerprint over the FASTA (or BED and genome) and the label table, plus the group column."""
    data = several_files(config.data) or [config.data]
    return lifecycle.data_fingerprint(data + [p for p in (config.labels, config.genome) if p],
                                      rows=[config.group_column or ""])


def _read_splits(run: Run, found) -> np.ndarray:
    with open(run.path / "splits.csv", newline="", encoding="utf-8") as handle:
        stored = {row["id"]: row["split"] for row in csv.DictReader(handle)}
    try:
        return np.array([stored[i] for i in found.ids], dtype=object)
    except KeyError as missing:
        raise InputError(f"{missing} is not in {run.path / 'splits.csv'}; the data changed, start a new run.") from None


def encode_for_prediction(run: Run, inputs: list[Path], genome: str | Path | None = None
                          ) -> tuple[list[str], np.ndarray, list[str], list[str]]:
    """Ids, one-hot array at the run's length (centred, as in training), notes and the sequences as read, from one
    or more FASTA files (a folder: the FASTA files in it), tables with a sequence column, or BED/narrowPeak files
    cut from `genome` (default: the genome the run was trained with, where it is still there)."""
    from biolens.readers.genome import is_bed

    files = [f for path in inputs for f in ((class_files(path) or class_files(path, bed=True) or [path])
                                            if Path(path).is_dir() else [path])]
    beds = [f for f in files if is_bed(f)]
    if beds and not genome:
        trained_on = run.info.get("config", {}).get("genome", "")
        if not trained_on or not Path(trained_on).is_file():
            raise InputError(f"{beds[0]} is a BED file: give --genome GENOME.fa to cut its sequences from"
                             + (f" ({trained_on}, which the run was trained with, is not there)." if trained_on else "."))
        genome = trained_on
    tables = [f for f in files if f not in beds and sequence_table(f) is not None]
    fasta = [f for f in files if f not in tables and f not in beds]
    other = next((f for f in fasta if not is_fasta(f)), None)
    if other is not None:
        raise InputError(f"{other}: not a FASTA file, nor a table with a column of sequences; {run.path} classifies DNA "
                         "sequences, so give FASTA (records starting with '>'), a table with a 'sequence' column, or "
                         "BED files with --genome.")
    records = [record for f in files for record in (table_records(f) if f in tables else
                                                    sequence_records(f, str(genome) if f in beds else None))]
    ids = [i for i, _ in records]
    if len(set(ids)) < len(ids):
        seen: set[str] = set()
        repeated = next(i for i in ids if i in seen or seen.add(i))
        raise InputError(f"sequence id '{repeated}' appears more than once in {', '.join(map(str, files))}; ids must "
                         "be unique.")
    length = int(run.info["length"])
    notes = []
    cut = sum(len(s) > length for _, s in records)
    if cut:
        notes.append(f"{cut} sequences are longer than the model's {length} bases; their central {length} bases were read.")
    sequences = [s for _, s in records]
    return ids, one_hot(sequences, length, centred=True, dtype=np.uint8), notes, sequences
