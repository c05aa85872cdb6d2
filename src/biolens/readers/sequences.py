"""FASTA / FASTA.gz: checked records, variant sites called from an alignment, and one-hot encoding.

Two uses: `--sequences` for association (an alignment with one or two haplotypes per individual, from which the
variant sites are called) and sequence classification (unaligned sequences of any length with a label each).
"""
from __future__ import annotations

import gzip
import re
from pathlib import Path

import numpy as np
import pandas as pd

from biolens.errors import InputError
from biolens.readers.variants import Genotypes

ALPHABET = "ACGT"
_ALLOWED = re.compile(r"[^ACGTN\-]")
_HAPLOTYPE_SUFFIX = re.compile(r"^(?P<sample>.+?)[_.-](?:h|hap)(?P<copy>[12])$", re.IGNORECASE)


def read_fasta(path: Path | str) -> list[tuple[str, str]]:
    """(id, upper-case sequence) per record; refuses empty files, duplicate ids and non-ACGTN letters.

    A gap '-' in an aligned FASTA is read as missing (like N).
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
                bad = _ALLOWED.search(sequence)
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
    if not records:
        raise InputError(f"{path}: no FASTA records (lines starting with '>') found.")
    return records


def haplotype_owners(ids: list[str], sample_map: Path | str | None = None) -> list[str]:
    """Which individual each haplotype belongs to: from `--sample-map` (sequence_id, sample) or `<sample>_h1/_h2`."""
    if sample_map is not None:
        table = pd.read_csv(sample_map, sep=None, engine="python", dtype=str)
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
        match = _HAPLOTYPE_SUFFIX.match(sequence_id)
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


def one_hot(sequences: list[str], length: int) -> np.ndarray:
    """Sequences as (n, length, 4) float32 one-hot; N, gaps and positions past a sequence's end are all-zero."""
    table = np.zeros((256, 4), dtype=np.float32)
    for k, letter in enumerate(ALPHABET):
        table[ord(letter)] = table[ord(letter.lower())] = np.eye(4, dtype=np.float32)[k]
    encoded = np.zeros((len(sequences), length, 4), dtype=np.float32)
    for row, sequence in enumerate(sequences):
        codes = np.frombuffer(sequence[:length].encode("ascii"), dtype=np.uint8)
        encoded[row, : len(codes)] = table[codes]
    return encoded
