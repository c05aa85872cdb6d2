"""FASTA / FASTA.gz: checked records, variant sites called from an alignment, and one-hot encoding.

Two uses: `--sequences` for association (an alignment with one or two haplotypes per individual, from which the
variant sites are called) and sequence classification (unaligned sequences of any length with a label each).
"""
from __future__ import annotations

import functools
import gzip
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from biolens.errors import InputError
from biolens.readers.variants import Genotypes

ALPHABET = "ACGT"
_ALLOWED = re.compile(r"[^ACGTN\-]")
_AMBIGUOUS = str.maketrans({**{code: "N" for code in "RYKMSWBDHV"}, "U": "T"})
FASTA_SUFFIXES = (".fa", ".fasta", ".fna", ".fas", ".ffn", ".frn", ".seq")


def is_fasta(path: Path | str) -> bool:
    """True for a file named like FASTA (optionally .gz) or whose first non-blank character is '>'."""
    path = Path(path)
    name = path.name.lower().removesuffix(".gz")
    if name.endswith(FASTA_SUFFIXES):
        return True
    if not path.is_file():
        return False
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rt") as handle:
            return handle.read(1024).lstrip().startswith(">")
    except (OSError, UnicodeDecodeError, EOFError):
        return False
_HAPLOTYPE_SUFFIX = re.compile(r"^(?P<sample>.+?)[_.-](?:h|hap)(?P<copy>[12])$", re.IGNORECASE)
_PANSN = re.compile(r"^(?P<sample>[^#]+)#(?P<copy>[12])(?:#.*)?$")  # PanSN: sample#haplotype#contig (HG002#1#chr20)


def read_fasta(path: Path | str, *, ambiguous_as_n: bool = False) -> list[tuple[str, str]]:
    """(id, upper-case sequence) per record; refuses empty files, duplicate ids and non-ACGTN letters.

    A gap '-' in an aligned FASTA is read as missing (like N). With `ambiguous_as_n` (classification), IUPAC
    ambiguity codes become N and RNA's U becomes T; variant calling keeps them refused.
    """
    from Bio import SeqIO

    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: no such file.")
    opener = gzip.open if path.suffix == ".gz" else open
    records: list[tuple[str, str]] = []
    seen: set[str] = set()
    try:
        with opener(path, "rt") as handle:
            for number, record in enumerate(SeqIO.parse(handle, "fasta"), start=1):
                sequence = str(record.seq).upper()
                if ambiguous_as_n:
                    sequence = sequence.translate(_AMBIGUOUS)
                bad = _ALLOWED.search(sequence)
                if bad and ambiguous_as_n:
                    raise InputError(f"{path}, record {number} ('{record.id}'): character '{bad.group()}' at position "
                                     f"{bad.start() + 1} is not a DNA letter (A, C, G, T, N or an IUPAC code). "
                                     "biolens classifies DNA/RNA; protein sequences are not supported.")
                if bad:
                    raise InputError(f"{path}, record {number} ('{record.id}'): character '{bad.group()}' at position "
                                     f"{bad.start() + 1} is not A, C, G, T or N. Replace ambiguity codes with N.")
                if record.id in seen:
                    raise InputError(f"{path}: sequence id '{record.id}' appears twice; ids must be unique.")
                if not sequence:
                    raise InputError(f"{path}, record {number} ('{record.id}'): empty sequence; remove the record.")
                seen.add(record.id)
                records.append((record.id, sequence))
    except (UnicodeDecodeError, OSError, EOFError) as error:
        raise InputError(f"{path}: not a readable FASTA file ({error}).") from None
    except ValueError:  # Biopython: text before the first '>' record
        raise InputError(f"{path}: does not start with a '>' header line; a FASTA file is '>id' lines, each followed "
                         "by its sequence.") from None
    if not records:
        raise InputError(f"{path}: no FASTA records (lines starting with '>') found.")
    return records


def haplotype_owners(ids: list[str], sample_map: Path | str | None = None) -> list[str]:
    """Which individual each haplotype belongs to: from `--sample-map` (sequence_id, sample), `<sample>_h1/_h2` or
    the pangenome naming (PanSN) `<sample>#1#<contig>` / `<sample>#2#<contig>`."""
    if sample_map is not None:
        from biolens.readers.tables import read_table

        table = read_table(Path(sample_map), "--sample-map", missing=[]).fillna("")
        if table.shape[1] < 2:
            raise InputError(f"{sample_map}: needs two columns, sequence id and sample.")
        mapping = dict(zip(table.iloc[:, 0].str.strip(), table.iloc[:, 1].str.strip()))
        unmapped = [i for i in ids if i not in mapping]
        if unmapped:
            raise InputError(f"{sample_map}: {len(unmapped)} sequence(s) have no sample (e.g. {', '.join(unmapped[:3])}); "
                             "add a row for each sequence id.")
        return [mapping[i] for i in ids]
    owners = []
    for sequence_id in ids:
        match = _HAPLOTYPE_SUFFIX.match(sequence_id) or _PANSN.match(sequence_id)
        owners.append(match.group("sample") if match else sequence_id)
    return owners


def call_variants(path: Path | str, *, sample_map: Path | str | None = None, chrom: str | None = None) -> Genotypes:
    """Variant sites of an alignment: every column with two or more bases, split per non-reference base.

    REF is the most common base of the column; each other base becomes one biallelic site (dosage = copies of it).
    An individual with one haplotype is haploid, with two diploid; N or '-' makes that individual's call missing.
    """
    records = read_fasta(path)
    lengths = {len(seq) for _, seq in records}
    if len(lengths) > 1:
        expected = len(records[0][1])
        odd = next((i, s) for i, s in records if len(s) != expected)
        raise InputError(f"{path}: sequences are not aligned: '{records[0][0]}' has {expected} bases but '{odd[0]}' has "
                         f"{len(odd[1])}. Align them first (e.g. MAFFT) so every sequence has the same length.")
    ids = [i for i, _ in records]
    owners = haplotype_owners(ids, sample_map)
    samples = list(dict.fromkeys(owners))
    copies = pd.Series(owners).value_counts()
    if (copies > 2).any():
        bad = copies[copies > 2].index[0]
        raise InputError(f"{path}: sample '{bad}' has {copies[bad]} sequences; give at most two haplotypes per "
                         "individual (<sample>_h1, <sample>_h2) or a --sample-map.")
    matrix = np.frombuffer("".join(s for _, s in records).encode("ascii"), dtype=np.uint8).reshape(len(records), -1)
    owner_index = pd.Index(samples).get_indexer(owners)
    letters = np.frombuffer(ALPHABET.encode(), dtype=np.uint8)
    counts = np.stack([(matrix == letter).sum(0) for letter in letters], axis=1)  # columns x 4
    variable = np.nonzero((counts > 0).sum(1) >= 2)[0]
    chrom_name = chrom or Path(path).name.split(".")[0]
    out_chrom, out_pos, out_ref, out_alt, columns = [], [], [], [], []
    missing_hap = np.isin(matrix, np.frombuffer(b"N-", dtype=np.uint8))
    for column in variable:
        order = np.argsort(-counts[column], kind="stable")
        reference = letters[order[0]]
        individual_missing = np.zeros(len(samples), dtype=bool)
        np.logical_or.at(individual_missing, owner_index, missing_hap[:, column])
        for k in order[1:]:
            if counts[column, k] == 0:
                continue
            dose = np.zeros(len(samples), dtype=np.float32)
            np.add.at(dose, owner_index, (matrix[:, column] == letters[k]).astype(np.float32))
            dose[individual_missing] = np.nan
            out_chrom.append(chrom_name)
            out_pos.append(int(column) + 1)
            out_ref.append(chr(reference))
            out_alt.append(chr(letters[k]))
            columns.append(dose)
    if not columns:
        raise InputError(f"{path}: all {len(records)} sequences are identical at every position; there is no variant site.")
    dosage = np.stack(columns, axis=1)
    notes = {"records": len(records), "alignment_length": matrix.shape[1], "ploidy": int(copies.max()),
             "multiallelic_split": int(sum(((counts[c] > 0).sum() - 2) for c in variable)),
             "missing_calls": int(np.isnan(dosage).sum())}
    return Genotypes(samples, out_chrom, np.asarray(out_pos), out_ref, out_alt, dosage, str(path), notes)


def one_hot(sequences: list[str], length: int, *, centred: bool = False, dtype=np.float32) -> np.ndarray:
    """Sequences as (n, length, 4) one-hot; N, gaps and padding are all-zero.

    By default sequences start at position 0 and are cut at `length`. `centred` keeps the middle instead:
    shorter ones are padded equally on both sides and longer ones lose equal parts of both ends, which
    keeps a peak summit or a window centre where the model saw it in training.
    """
    table = np.zeros((256, 4), dtype=dtype)
    for k, letter in enumerate(ALPHABET):
        table[ord(letter)] = table[ord(letter.lower())] = np.eye(4, dtype=dtype)[k]
    encoded = np.zeros((len(sequences), length, 4), dtype=dtype)
    for row, sequence in enumerate(sequences):
        start = max(0, (len(sequence) - length) // 2) if centred else 0
        codes = np.frombuffer(sequence[start:start + length].encode("ascii"), dtype=np.uint8)
        offset = (length - len(codes)) // 2 if centred else 0
        encoded[row, offset: offset + len(codes)] = table[codes]
    return encoded


@dataclass
class LabelledSequences:
    ids: list[str]
    sequences: list[str]
    labels: list[str]
    groups: list[str] | None
    notes: list[str] = field(default_factory=list)   # what the reader left out or changed, for run warnings


def read_labelled(fasta: Path | str, labels: Path | str, *, group_column: str | None = None,
                  min_per_class: int = 10, genome: str | None = None) -> LabelledSequences:
    """Sequences of a FASTA (or of a BED file's intervals in `genome`) joined to a label table (columns `id`,
    `label`, optionally a group column).

    Labels for ids missing from the FASTA stop the run (a typo or a wrong file would otherwise shrink the data
    silently); FASTA records without a label are left out and said so in the notes.
    """
    from biolens.readers.phenotypes import read_table

    fasta, labels = Path(fasta), Path(labels)
    records = sequence_records(fasta, genome)
    notes = []
    table, id_column, label_column = _label_table_columns(read_table(labels, "--labels"), [i for i, _ in records],
                                                          labels, group_column, notes)
    if group_column and group_column not in table.columns:
        raise InputError(f"{labels}: no column '{group_column}' for --group-column (columns: {', '.join(table.columns)}).")
    ids = table[id_column].str.strip()
    duplicated = ids[ids.duplicated(keep=False)]
    if len(duplicated):
        lines = [str(i + 2) for i in duplicated.index[:4]]  # +2: header line, 1-based
        raise InputError(f"{labels}: id '{duplicated.iloc[0]}' is labelled more than once (lines {', '.join(lines)}); "
                         "keep one row per sequence.")
    label_of = dict(zip(ids, table[label_column].str.strip()))
    group_of = dict(zip(ids, table[group_column].str.strip())) if group_column else None
    records = _records_read_as(records, set(ids), notes)
    sequence_of = dict(records)
    absent = [i for i in ids if i not in sequence_of]
    if absent:
        raise InputError(f"{labels}: {len(absent)} of {len(ids)} labelled ids have no sequence in {fasta} "
                         f"(e.g. {', '.join(absent[:3])}); the ids must equal the FASTA record ids (the text after '>' "
                         "up to the first space).")
    unlabelled = [i for i, _ in records if i not in label_of or pd.isna(label_of[i]) or not label_of[i]]
    if unlabelled:
        notes.append(f"{len(unlabelled)} FASTA records have no label and were left out (e.g. {', '.join(unlabelled[:3])}).")
    left_out = set(unlabelled)
    keep = [i for i, _ in records if i not in left_out]
    sequences = [sequence_of[i] for i in keep]
    _check_classes([label_of[i] for i in keep], sequences, labels, min_per_class, notes)
    if group_of is not None and any(pd.isna(group_of[i]) or not group_of[i] for i in keep):
        missing = next(i for i in keep if pd.isna(group_of[i]) or not group_of[i])
        raise InputError(f"{labels}: sequence '{missing}' has no value in the group column '{group_column}'; "
                         "fill it in for every labelled sequence.")
    return LabelledSequences(keep, sequences, [label_of[i] for i in keep],
                             [group_of[i] for i in keep] if group_of else None, notes)


def _label_beside(table: pd.DataFrame, taken) -> str | None:
    """The one column of `table` beside those `taken` (sequences, ids, groups) when its values repeat, as classes
    do (a column of distinct notes is not one); else None."""
    others = [c for c in table.columns if c not in taken]
    return others[0] if len(others) == 1 and table[others[0]].nunique() <= len(table) / 2 else None


def _label_table_columns(table: pd.DataFrame, record_ids: list[str], path: Path, group_column: str | None,
                         notes: list[str]) -> tuple[pd.DataFrame, str, str]:
    """(table, id column, label column) of a label table: columns named as ID_COLUMNS and LABEL_COLUMNS say (any
    case); a table without a header row whose first line is a record id and its label; or, beside a named id
    column, the one other column when its values repeat (`_label_beside`, said in a note). Anything else stops the
    run naming what it has."""
    id_column, label_column = _named(table, ID_COLUMNS), _named(table, LABEL_COLUMNS)
    if id_column is not None and label_column is not None:
        return table, id_column, label_column
    readings = set(record_ids) | {read(i) for i in record_ids for _, read in ID_READINGS}
    if id_column is None and label_column is None and len(table.columns) >= 2 and str(table.columns[0]) in readings:
        first = pd.DataFrame([list(table.columns)], columns=table.columns)
        names = ["id", "label"] + [f"column_{k + 3}" for k in range(len(table.columns) - 2)]
        notes.append(f"{path.name} has no header row (its first line is {table.columns[0]}, a record id): read as "
                     "the columns id and label.")
        return pd.concat([first, table], ignore_index=True).set_axis(names, axis=1), "id", "label"
    beside = _label_beside(table, (id_column, group_column)) if id_column is not None else None
    if beside is not None:
        notes.append(f"{path.name}: the labels were read from its column '{beside}' (beside the id column).")
        return table, id_column, beside
    raise InputError(f"{path}: no {'id' if id_column is None else 'label'} column (columns: "
                     f"{', '.join(map(str, table.columns))}). The label table needs an id column (the FASTA record "
                     f"id; named {', '.join(ID_COLUMNS)}) and a label column ({', '.join(LABEL_COLUMNS)}).")


_STRAND_SUFFIX = re.compile(r"\([+.-]\)$")
ID_READINGS = (  # how bedtools getfasta writes record ids, against the names a label table holds
    ("the name before '::' (bedtools getfasta -name adds ::chrom:start-end)", lambda i: i.split("::")[0]),
    ("the interval after '::'", lambda i: _STRAND_SUFFIX.sub("", i.split("::")[-1])),
    ("without the strand bedtools getfasta -s adds, e.g. (+)", lambda i: _STRAND_SUFFIX.sub("", i)),
)


def _records_read_as(records: list[tuple[str, str]], labelled: set[str], notes: list[str]) -> list[tuple[str, str]]:
    """The FASTA records with ids as the label table writes them: as they are when any labelled id is among them,
    else the first of bedtools' readings (ID_READINGS) that gives every record its own id and finds every labelled
    one (said in a note); else as they are, for the caller's error."""
    ids = [i for i, _ in records]
    if labelled & set(ids):
        return records
    for reading, read in ID_READINGS:
        read_ids = [read(i) for i in ids]
        if len(set(read_ids)) == len(read_ids) and labelled <= set(read_ids):
            notes.append(f"The label table's ids match the FASTA record ids read as {reading} (e.g. {ids[0]} -> "
                         f"{read_ids[0]}); the run's tables use those.")
            return [(i, sequence) for i, (_, sequence) in zip(read_ids, records)]
    return records


def _check_classes(labels: list[str], sequences: list[str], source: Path, min_per_class: int, notes: list[str]) -> None:
    """At least two classes of `min_per_class` sequences each; a note when many bases are unknown."""
    classes = pd.Series(labels).value_counts()
    if len(classes) < 2:
        raise InputError(f"{source}: a single class ('{classes.index[0] if len(classes) else '?'}'); a classifier needs "
                         "at least two labels.")
    rare = classes[classes < min_per_class]
    if len(rare):
        raise InputError(f"{source}: class '{rare.index[-1]}' has {rare.iloc[-1]} sequences; at least {min_per_class} are "
                         "needed to train, validate and test. Add sequences, merge classes, or lower --min-per-class.")
    unknown = sum(s.count("N") for s in sequences) / max(1, sum(map(len, sequences)))
    if unknown > 0.01:
        notes.append(f"{unknown:.1%} of bases are N or IUPAC ambiguity codes; the model reads them as unknown.")


SEQUENCE_COLUMNS = ("sequence", "seq", "sequences", "dna", "rna", "dna_sequence", "nucleotide_sequence")
LABEL_COLUMNS = ("label", "class", "labels", "target", "y")
ID_COLUMNS = ("id", "name", "sequence_id", "seq_id", "record")
_SEQUENCE_TEXT = re.compile(r"^[ACGTUNRYKMSWBDHV]+$", re.IGNORECASE)
_MIN_SEQUENCE_TEXT = 8   # shorter strings of these letters are codes or words, not sequences


def _named(table: pd.DataFrame, names: tuple[str, ...]) -> str | None:
    columns = {str(c).strip().casefold(): c for c in table.columns}
    return next((columns[n] for n in names if n in columns), None)


def sequence_column(table: pd.DataFrame) -> str | None:
    """The column of a table that holds DNA/RNA sequences: one named sequence (seq, dna, ...) whose values are 8
    characters or more at the median (its letters are checked when read, so a protein column is refused by name),
    else, of the columns whose every filled value is nucleotide letters, 8 or more at the median, the longest (so
    a column of 8-base barcodes beside the sequences is not taken for them)."""
    def texts(column):
        values = table[column].dropna().astype(str).str.strip()
        return values[values != ""]

    named = _named(table, SEQUENCE_COLUMNS)
    if named is not None and len(texts(named)) and texts(named).str.len().median() >= _MIN_SEQUENCE_TEXT:
        return named
    lengths = {}
    for column in table.columns:
        values = texts(column)
        if len(values) and values.str.len().median() >= _MIN_SEQUENCE_TEXT and values.str.match(_SEQUENCE_TEXT).all():
            lengths[column] = values.str.len().median()
    return max(lengths, key=lengths.get) if lengths else None


# two: a run asks of its data and its label table several times; a long-running server should not hold more
@functools.lru_cache(maxsize=2)
def _sequence_table(path: str, modified: float, size: int) -> tuple[pd.DataFrame, str] | None:
    from biolens.readers.tables import read_table

    try:
        table = read_table(Path(path), "sequence table")
    except InputError:
        return None
    column = sequence_column(table)
    return (table, column) if column is not None else None


def sequence_table(path) -> tuple[pd.DataFrame, str] | None:
    """(table, its sequence column) when `path` is a table (CSV, TSV, Excel, optionally compressed) with a column of
    sequences, else None: how sequence sets downloaded from benchmarks and papers often arrive (sequence,label)."""
    from biolens.readers.tables import is_table

    if path is None or not is_table(path) or not Path(path).is_file() or is_fasta(path):
        return None
    stat = Path(path).stat()
    return _sequence_table(str(Path(path).resolve()), stat.st_mtime, stat.st_size)


def table_records(path) -> list[tuple[str, str]]:
    """(id, upper-case sequence) per row of a sequence table, IUPAC codes as N and U as T; ids from an id column
    (id, name, sequence_id, ...) or, without one, 'line_N' (N the row's line in the file)."""
    from biolens.readers.tables import line_of

    found = sequence_table(path)
    if found is None:
        raise InputError(f"{path}: no column of DNA sequences (A, C, G, T, N, at least {_MIN_SEQUENCE_TEXT} letters in "
                         "every row); name it 'sequence'.")
    table, column = found
    id_column = _named(table, ID_COLUMNS)
    records, seen = [], {}
    for row, (value, name) in enumerate(zip(table[column], table[id_column] if id_column is not None
                                            else [None] * len(table))):
        given = "" if name is None or pd.isna(name) else str(name).strip()
        record_id = given or f"line_{line_of(row)}"
        sequence = "" if pd.isna(value) else str(value).strip().upper().translate(_AMBIGUOUS)
        if not sequence:
            raise InputError(f"{path}, line {line_of(row)} ('{record_id}'): no sequence in the column '{column}'; fill it "
                             "in or remove the row.")
        if record_id in seen:
            raise InputError(f"{path}: the id '{record_id}' is on lines {seen[record_id]} and {line_of(row)}; ids in the "
                             f"column '{id_column}' must be unique.")
        bad = _ALLOWED.search(sequence)
        if bad:
            raise InputError(f"{path}, line {line_of(row)} ('{record_id}'): character '{bad.group()}' at position "
                             f"{bad.start() + 1} of the column '{column}' is not a DNA letter (A, C, G, T, N or an IUPAC "
                             "code). biolens classifies DNA/RNA; protein sequences are not supported.")
        seen[record_id] = line_of(row)
        records.append((record_id, sequence))
    return records


def read_sequence_table(path, *, group_column: str | None = None, min_per_class: int = 10) -> LabelledSequences:
    """Labelled sequences of one table: a sequence column and a label column (label, class, target, ..., or the one
    column beside the sequences and ids, whatever its name), optionally the group column. Rows without a label are
    left out and said so, as FASTA records without one are."""
    from biolens.readers.tables import line_of

    path = Path(path)
    table, column = sequence_table(path)
    label_column = _named(table, LABEL_COLUMNS)
    notes = []
    if label_column is None:  # one column beside the sequences (and ids, groups) is the label, whatever its name
        label_column = _label_beside(table, (column, _named(table, ID_COLUMNS), group_column))
        if label_column is None:
            raise InputError(f"{path}: the sequences are in the column '{column}' but no column is named label (or "
                             f"class, target; columns: {', '.join(map(str, table.columns))}); name the column of "
                             "classes 'label'.")
        notes.append(f"The classes were read from the column '{label_column}', the one column beside the sequences.")
    if group_column and group_column not in table.columns:
        raise InputError(f"{path}: no column '{group_column}' for --group-column (columns: "
                         f"{', '.join(map(str, table.columns))}).")
    records = table_records(path)
    labels = table[label_column].astype("string").str.strip()
    labelled = labels.notna() & (labels.fillna("") != "")
    keep = np.flatnonzero(labelled.to_numpy()).tolist()
    if len(keep) < len(records):
        unlabelled = [records[i][0] for i in np.flatnonzero(~labelled.to_numpy())]
        notes.append(f"{len(unlabelled)} rows have no label and were left out (e.g. {', '.join(unlabelled[:3])}).")
    groups = None
    if group_column:
        values = table[group_column].astype("string").str.strip()
        empty = next((i for i in keep if pd.isna(values.iloc[i]) or not values.iloc[i]), None)
        if empty is not None:
            raise InputError(f"{path}, line {line_of(empty)} ('{records[empty][0]}'): no value in the group column "
                             f"'{group_column}'; fill it in for every labelled sequence.")
        groups = [str(values.iloc[i]) for i in keep]
    sequences = [records[i][1] for i in keep]
    _check_classes([str(labels.iloc[i]) for i in keep], sequences, path, min_per_class, notes)
    return LabelledSequences([records[i][0] for i in keep], sequences, [str(labels.iloc[i]) for i in keep], groups,
                             notes)


def sequence_records(path: Path | str, genome: str | None = None) -> list[tuple[str, str]]:
    """(id, sequence) of one input file: a FASTA's records (IUPAC codes as N), or with `genome` a BED file's
    intervals cut from it."""
    from biolens.readers.genome import cut_sequences, is_bed, open_genome

    if not genome:
        if is_bed(path):
            raise InputError(f"{path} is a BED file of intervals, not their sequences: give --genome GENOME.fa (the "
                             "genome the peaks were called on) to cut them from it.")
        return read_fasta(path, ambiguous_as_n=True)

    if not is_bed(path):
        raise InputError(f"{path}: --genome cuts the sequences of peaks given as BED or narrowPeak (.bed, "
                         ".narrowPeak, optionally .gz); without --genome give the sequences as FASTA.")
    return [(i, s.translate(_AMBIGUOUS)) for i, s in cut_sequences(path, open_genome(genome), genome)]


def several_files(data) -> list[Path] | None:
    """The files of `data` when it names several (`biolens train GATA1.fa TAL1.fa`), else None."""
    return [Path(p) for p in data] if isinstance(data, (list, tuple)) and len(data) > 1 else None


def _check_several(files: list[Path], genome: str | None) -> None:
    """Several files given as the data are one class file each: FASTA, or BED/narrowPeak with a genome."""
    from biolens.readers.genome import is_bed

    kind = "BED" if genome else "FASTA"
    for path in files:
        if not path.is_file():
            raise InputError(f"{path}: no such file; several files given as the data are one {kind} file per class "
                             "(e.g. GATA1.fa TAL1.fa), each named after its class.")
        if not (is_bed(path) if genome else is_fasta(path)):
            example = "GATA1.narrowPeak TAL1.narrowPeak with --genome" if genome else "GATA1.fa TAL1.fa"
            raise InputError(f"{path}: not a {kind} file; several files given as the data are one {kind} file per "
                             f"class, each named after its class (e.g. {example}). Images are given as one folder "
                             "of class sub-folders or one manifest CSV.")


def check_training_inputs(data, labels, group_column: str | None, genome: str | None = None) -> None:
    """The ways to label sequences for training, told apart: one FASTA (or, with a genome, one BED) with a label
    table, a folder of class files (or several class files) without one (never both, and a group column only with
    the table), or one table holding the sequences and their labels."""
    kind = "BED" if genome else "FASTA"
    files = several_files(data)
    if files is not None:
        _check_several(files, genome)
        given = f"{len(files)} {kind} files were given"
    else:
        if genome and data is not None and (is_fasta(data) or sequence_table(data) is not None):
            raise InputError(f"{data} holds the sequences already; --genome is for peaks given as BED or narrowPeak "
                             "files, whose sequences it cuts from the genome. Leave --genome out.")
        if data is not None and sequence_table(data) is not None:
            if labels is not None:
                raise InputError(f"{data} holds the sequences and their labels in one table; --labels is for a FASTA "
                                 "file. Give the table alone.")
            return
        if not genome and data is not None and class_files(data) is None and class_files(data, bed=True) is not None:
            raise InputError(f"{data} holds BED files of intervals, not their sequences: give --genome GENOME.fa (the "
                             "genome the peaks were called on) to cut them from it.")
        if data is None or class_files(data, bed=bool(genome)) is None:
            if data is None or labels is None:
                raise InputError(f"give the sequences ({kind}) and --labels TABLE with the columns id and label, a "
                                 f"folder with one {kind} file per class, or one table with a sequence and a label "
                                 "column.")
            return  # one FASTA (or BED) file with its label table
        given = f"{data} is a folder of {kind} files"
    if labels is not None:  # class files label their sequences: no table beside them, and so no group column
        raise InputError(f"{given}, one per class, which labels their sequences; --labels is for one {kind} file. "
                         "Give one or the other.")
    if group_column:
        raise InputError(f"--group-column names a column of the --labels table, and {given}, one per class, without "
                         f"one. Give one {kind} file with a label table holding the group column.")


def read_training_sequences(data, labels, *, group_column: str | None = None,
                            min_per_class: int = 10, genome: str | None = None) -> LabelledSequences:
    """Labelled sequences from either form `check_training_inputs` accepts."""
    check_training_inputs(data, labels or None, group_column, genome)
    if several_files(data) is not None:
        return read_class_files(data, min_per_class=min_per_class, genome=genome)
    if sequence_table(data) is not None:
        return read_sequence_table(data, group_column=group_column, min_per_class=min_per_class)
    if labels:
        return read_labelled(data, labels, group_column=group_column, min_per_class=min_per_class, genome=genome)
    return read_class_files(data, min_per_class=min_per_class, genome=genome)


def are_sequences(data, labels=None, genome=None) -> bool:
    """Whether `train` was given sequences: a label table, a genome (for peaks as BED), a FASTA file, a folder of
    class FASTA (or BED) files or several such files, or a table with a column of sequences."""
    if several_files(data) is not None:  # only sequences come as several files (one per class)
        return True
    return labels is not None or bool(genome) or (data is not None and (
        is_fasta(data) or class_files(data) is not None or sequence_table(data) is not None
        or class_files(data, bed=True) is not None))


def class_name(path: Path) -> str:
    """A class file's class: its file name without the FASTA or BED suffix (and .gz)."""
    from biolens.readers.genome import BED_SUFFIXES

    name = path.name.removesuffix(".gz").removesuffix(".GZ")
    suffix = next((s for s in FASTA_SUFFIXES + BED_SUFFIXES if name.lower().endswith(s)), "")
    return name[:len(name) - len(suffix)] if suffix else Path(name).stem


def class_files(folder: Path | str, bed: bool = False) -> list[Path] | None:
    """The FASTA files of a folder that holds one per class (GATA1.fa, TAL1.fa.gz: the file name is the class),
    or None when the folder is not one: it has sub-folders (image classes) or no FASTA file. With `bed`, the
    BED/narrowPeak files instead (GATA1.narrowPeak, TAL1.bed.gz), whose sequences a genome gives."""
    from biolens.readers.genome import is_bed

    folder = Path(folder)
    if not folder.is_dir():
        return None
    entries = [p for p in sorted(folder.iterdir()) if not p.name.startswith(".")]
    if any(p.is_dir() for p in entries):
        return None
    files = [p for p in entries if p.is_file() and (is_bed(p) if bed else is_fasta(p))]
    return files or None


def read_class_files(folder, *, min_per_class: int = 10, genome: str | None = None) -> LabelledSequences:
    """Sequences labelled by the FASTA file that holds them: one file per class in `folder`, or the several files
    `folder` lists (how peak sets of two factors, or promoters and enhancers, usually arrive); with `genome`,
    BED/narrowPeak files whose intervals are cut from it. Ids repeated across files (peak_1 in each) become
    'class:id'; other files in the folder are left out and said so."""
    kind = "BED" if genome else "FASTA"
    notes = []
    files = several_files(folder)
    if files is None:
        folder = Path(folder)
        files = class_files(folder, bed=bool(genome))
        if files is None:
            example = "GATA1.narrowPeak and TAL1.bed" if genome else "GATA1.fa and TAL1.fa"
            raise InputError(f"{folder}: no {kind} files; give a folder with one {kind} file per class (e.g. "
                             f"{example}), or one {kind} file with --labels.")
        others = [p.name for p in sorted(folder.iterdir())
                  if p.is_file() and not p.name.startswith(".") and p not in files]
        if others:
            notes.append(f"{len(others)} files in {folder.name}/ are not {kind} and were left out "
                         f"({', '.join(others[:3])}).")
    else:  # in the folder's order, so the files named in any order make the same run as their folder
        files, folder = sorted(files, key=lambda p: p.name), "the files given"
    names = [class_name(p) for p in files]
    if len(files) < 2:
        raise InputError(f"{folder}: one {kind} file ({files[0].name}), so one class; a classifier needs one {kind} "
                         f"file per class (two or more), or one {kind} file with --labels.")
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        clash = [p.name for p, n in zip(files, names) if n == repeated[0]]
        raise InputError(f"{folder}: {' and '.join(clash)} both name the class '{repeated[0]}'; keep one file per "
                         "class.")
    per_file = [sequence_records(p, genome) for p in files]
    all_ids = [i for records in per_file for i, _ in records]
    clash = len(set(all_ids)) < len(all_ids)
    if clash:
        notes.append("Some record ids appear in more than one file; every id is written 'class:id' in this run's "
                     "tables.")
    ids, sequences, labels = [], [], []
    for name, records in zip(names, per_file):
        for record_id, sequence in records:
            ids.append(f"{name}:{record_id}" if clash else record_id)
            sequences.append(sequence)
            labels.append(name)
    _check_classes(labels, sequences, folder, min_per_class, notes)
    return LabelledSequences(ids, sequences, labels, None, notes)
