"""Peaks as BED or narrowPeak plus the genome's FASTA: the sequences cut out here, as `bedtools getfasta` would.

ChIP-seq and ATAC-seq peaks arrive as BED files (MACS2 writes narrowPeak); turning them into FASTA is a command-line
step a biologist should not need. The genome is read through pyfaidx (an index beside it, .fai, written on first
use as `samtools faidx` would; bgzip-compressed genomes work with their .gzi), or through py2bit where it is UCSC's
.2bit file. A narrowPeak's summit (column 10)
becomes the centre of the window, which keeps the interval's width, so the motif under the summit sits where the
network's centred reading expects it; a '-' strand (column 6) is read reverse-complemented.
"""
from __future__ import annotations

import gzip
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from biolens.errors import InputError

BED_SUFFIXES = (".bed", ".narrowpeak", ".broadpeak", ".bed3", ".bed4", ".bed6")
_COMPLEMENT = str.maketrans("ACGTNacgtn", "TGCANtgcan")


def is_bed(path: Path | str) -> bool:
    """A file named like BED or narrowPeak (optionally .gz)."""
    return Path(path).name.lower().removesuffix(".gz").endswith(BED_SUFFIXES)


@dataclass(frozen=True)
class Interval:
    line: int
    name: str
    chrom: str
    start: int
    end: int
    strand: str
    summit: int | None   # offset from start (narrowPeak column 10), None when not given


def bed_rows(path: Path | str) -> Iterator[tuple[int, list[str], int, int]]:
    """(line number, fields, start, end) per interval line of a BED file (optionally .gz; tab- or space-separated);
    blank, `#`, `track` and `browser` lines skipped; a line without chrom, start and end, or with an empty or
    negative interval, is one error naming it. Shared by `--regions` and the peaks read here."""
    path = Path(path)
    opener = gzip.open if path.suffix.lower() == ".gz" else open
    try:
        with opener(path, "rt", encoding="utf-8", errors="replace") as handle:
            for number, line in enumerate(handle, start=1):
                fields = line.rstrip("\n").split("\t") if "\t" in line else line.split()
                if not fields or not fields[0] or fields[0].startswith(("#", "track", "browser")):
                    continue
                if len(fields) < 3:
                    raise InputError(f"{path}, line {number}: {len(fields)} column(s); a BED line is chrom, start, "
                                     "end, tab-separated, then optionally name, score, strand.")
                try:
                    start, end = int(fields[1]), int(fields[2])
                except ValueError:
                    raise InputError(f"{path}, line {number}: start '{fields[1]}' and end '{fields[2]}' must be whole "
                                     "numbers (BED: 0-based start, end not included).") from None
                if end <= start or start < 0:
                    raise InputError(f"{path}, line {number}: the end ({end}) must be after the start ({start}).")
                yield number, fields, start, end
    except (OSError, EOFError) as error:
        raise InputError(f"{path}: not a readable BED file ({error}).") from None


def read_intervals(path: Path | str) -> list[Interval]:
    """The intervals of a BED/narrowPeak file (0-based, end exclusive), with name, strand and summit where given."""
    intervals = []
    for number, fields, start, end in bed_rows(path):
        summit = None
        if len(fields) >= 10 and fields[9].lstrip("-").isdigit() and int(fields[9]) >= 0:
            summit = int(fields[9])
        name = fields[3].strip() if len(fields) >= 4 and fields[3].strip() not in ("", ".") else ""
        strand = fields[5].strip() if len(fields) >= 6 and fields[5].strip() in ("+", "-") else "+"
        intervals.append(Interval(number, name, fields[0], start, end, strand, summit))
    if not intervals:
        raise InputError(f"{path}: no intervals (lines of chrom, start, end).")
    return intervals


class TwoBitGenome:
    """A UCSC .2bit genome (hg38.2bit, as UCSC serves it) through py2bit, read as a pyfaidx.Fasta is here:
    `keys()`, and `genome[chrom][start:end]` in upper case."""

    def __init__(self, path: Path):
        import py2bit

        from biolens.hardware import quiet_native_stderr

        try:
            with quiet_native_stderr():  # libtwobit prints its own complaint; the error below says it
                self._file = py2bit.open(str(path))
        except RuntimeError:
            self._file = None
        if self._file is None:
            raise InputError(f"--genome {path}: not a readable .2bit file; download it again, or give the genome as "
                             "FASTA.")
        self._lengths, self._path = self._file.chroms(), path

    def keys(self):
        return self._lengths.keys()

    def __getitem__(self, chrom: str) -> "_TwoBitChromosome":
        return _TwoBitChromosome(self._file, self._path, chrom, self._lengths[chrom])


@dataclass(frozen=True)
class _TwoBitChromosome:
    file: object
    path: Path
    chrom: str
    size: int

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, window: slice) -> str:
        start, end, _ = window.indices(self.size)
        if end <= start:
            return ""
        try:
            return self.file.sequence(self.chrom, start, end).upper()
        except RuntimeError:  # a truncated download: the index promises bases the file does not hold
            raise InputError(f"--genome {self.path}: {self.chrom}:{start}-{end} cannot be read (a truncated or damaged "
                             ".2bit file); download it again.") from None


def open_genome(path: Path | str):
    """The genome as a pyfaidx.Fasta, its index written beside it when missing, or a UCSC .2bit file (no index
    needed); errors that say what to do."""
    import pyfaidx

    path = Path(path)
    if not path.is_file():
        raise InputError(f"--genome {path}: no such file; give the genome's FASTA (e.g. hg38.fa) or .2bit file.")
    if path.suffix.lower() == ".2bit":
        return TwoBitGenome(path)
    try:
        return pyfaidx.Fasta(str(path), as_raw=True, sequence_always_upper=True, rebuild=False)
    except pyfaidx.UnsupportedCompressionFormat:
        raise InputError(f"--genome {path}: compressed with gzip, which cannot be read at a position; decompress it "
                         "(gunzip) or compress it with bgzip, or give UCSC's .2bit file of the same genome.") from None
    except PermissionError:
        raise InputError(f"--genome {path}: its index ({path.name}.fai) cannot be written beside it; run `samtools "
                         "faidx` there once, or copy the genome to a folder you can write to.") from None
    except (pyfaidx.FastaIndexingError, ValueError, OSError) as error:
        raise InputError(f"--genome {path}: cannot be read as FASTA ({str(error).splitlines()[0]}).") from None


def cut_sequences(path: Path | str, genome, genome_path: Path | str) -> list[tuple[str, str]]:
    """(id, sequence) for every interval of a BED file: the interval, or for a narrowPeak the same width centred on
    its summit; ids are the name column where every line has a distinct one, else chrom:start-end."""
    intervals = read_intervals(path)
    names = [i.name for i in intervals]
    use_names = all(names) and len(set(names)) == len(names)
    lengths = {name: len(genome[name]) for name in genome.keys()}
    records, seen = [], {}
    for interval in intervals:
        if interval.chrom not in lengths:
            other = ("chr" + interval.chrom) if ("chr" + interval.chrom) in lengths else interval.chrom.removeprefix("chr")
            hint = (f" (it has '{other}': the BED and the genome name chromosomes differently)" if other in lengths
                    else f" (it has {', '.join(list(lengths)[:4])}{', ...' if len(lengths) > 4 else ''})")
            raise InputError(f"{path}, line {interval.line}: chromosome '{interval.chrom}' is not in {Path(genome_path).name}"
                             f"{hint}; give the genome the peaks were called on.")
        size = lengths[interval.chrom]
        if interval.end > size:
            raise InputError(f"{path}, line {interval.line}: {interval.chrom}:{interval.start}-{interval.end} runs past "
                             f"the end of {interval.chrom} ({size:,} bases in {Path(genome_path).name}); is it the genome "
                             "the peaks were called on?")
        start, end = interval.start, interval.end
        if interval.summit is not None:
            width, centre = end - start, start + interval.summit
            start = min(max(0, centre - width // 2), size - width)
            end = start + width
        sequence = genome[interval.chrom][start:end]
        if interval.strand == "-":
            sequence = sequence.translate(_COMPLEMENT)[::-1]
        record_id = interval.name if use_names else f"{interval.chrom}:{interval.start}-{interval.end}"
        if record_id in seen:
            raise InputError(f"{path}: the interval {record_id} is on lines {seen[record_id]} and {interval.line}; keep "
                             "each peak once.")
        seen[record_id] = interval.line
        records.append((record_id, sequence))
    return records
