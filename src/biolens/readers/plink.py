"""Genotypes from PLINK 1 binary filesets (`.bed` with its `.bim` and `.fam`), read with bed-reader.

PLINK's own convention is kept: the dosage counts allele 1 of the `.bim` (PLINK 1.9's A1, usually the minor allele),
so `alt` is allele 1 and `ref` allele 2. Individuals are named by their IID; where an IID occurs in two families,
every individual is named `FID_IID` (as `plink --recode vcf` writes them). The `.bim` and `.fam` are read here, line
by line, so a malformed line is named; bed-reader reads the packed genotypes and checks the `.bed`'s header and size.
"""
from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np

from biolens.errors import InputError

COMPANIONS = (".bim", ".fam")


def plink_files(path: Path | str) -> list[Path]:
    """The fileset of a `.bed`: itself, its `.bim` and its `.fam` (what a run's data fingerprint must cover)."""
    path = Path(path)
    return [path] + [path.with_suffix(suffix) for suffix in COMPANIONS]


def read_plink(path: Path | str, max_sites: int | None = None, region=None):
    """Dosages of allele 1 for every individual and site (of `region`, if given); `max_sites` reads that many,
    evenly spaced (markers)."""
    from bed_reader import open_bed

    from biolens.readers.regions import region_index
    from biolens.readers.variants import Genotypes, region_note, spread

    path = Path(path)
    for companion in plink_files(path)[1:]:
        if not companion.is_file():
            raise InputError(f"{path}: its {companion.suffix} file {companion.name} is missing beside it; a PLINK "
                             "fileset is the .bed with a .bim (sites) and a .fam (individuals) of the same name.")
    fid, iid = _read_fam(path.with_suffix(".fam"))
    chrom, pos, allele_1, allele_2 = _read_bim(path.with_suffix(".bim"))
    if not iid:
        raise InputError(f"{path.with_suffix('.fam')}: no individuals; biolens needs one line per individual.")
    if not pos.size:
        raise InputError(f"{path.with_suffix('.bim')}: no sites; biolens needs at least one line per site.")
    samples, warnings = individual_names(fid, iid, path.with_suffix(".fam"))
    in_region = region_index(region, chrom, pos, path.with_suffix(".bim"))
    index = spread(in_region, max_sites)
    try:
        with open_bed(path, iid_count=len(iid), sid_count=len(pos), count_A1=True, num_threads=1,
                      properties={"fid": fid, "iid": iid, "chromosome": chrom, "bp_position": pos,
                                  "allele_1": allele_1, "allele_2": allele_2}) as bed:
            dosage = bed.read(index=np.s_[:, index], dtype="float32", order="C")
    except (ValueError, OSError) as error:
        raise InputError(f"{path}: not a readable PLINK .bed for the {len(iid)} individuals of its .fam and "
                         f"{len(pos)} sites of its .bim ({error}). Re-export it with plink --make-bed.") from None
    notes = {"records": len(pos), "multiallelic_split": 0, "ploidy": 2, "missing_calls": int(np.isnan(dosage).sum()),
             "format": "PLINK .bed (allele 1 counted)", **region_note(region, len(in_region), len(pos))}
    if len(index) < len(in_region):
        notes["sites_read"] = f"{len(index)} of {len(in_region)}, evenly spaced"
    if warnings:
        notes["warnings"] = warnings
    return Genotypes(samples, [chrom[j] for j in index], pos[index], [allele_2[j] for j in index],
                     [allele_1[j] for j in index], dosage, str(path), notes)


def individual_names(fid: list[str] | None, iid: list[str], path: Path) -> tuple[list[str], list[str]]:
    """Individuals named by IID, or every one `FID_IID` where an IID occurs in two families (the name
    `plink --recode vcf` writes), with the warning that says so; one line where even that repeats."""
    duplicated = sorted(s for s, n in Counter(iid).items() if n > 1)
    if not duplicated:
        return list(iid), []
    if fid is None:
        raise InputError(f"{path}: individual(s) {', '.join(duplicated[:5])} appear more than once and there is no "
                         "FID column to tell them apart; rename or remove the duplicates.")
    samples = [f"{f}_{i}" for f, i in zip(fid, iid)]
    twice = sorted(s for s, n in Counter(samples).items() if n > 1)
    if twice:
        raise InputError(f"{path}: individual(s) {', '.join(twice[:5])} appear more than once (same family and "
                         "individual id); remove or rename the duplicates.")
    return samples, [f"{path}: IID(s) {', '.join(duplicated[:3])} occur in more than one family, so individuals are "
                     "named FID_IID; name them so in the phenotype table."]


def _columns(path: Path, expected: int, what: str) -> list[tuple[int, list[str]]]:
    """The whitespace-separated fields of every non-blank line, with its line number."""
    rows = []
    with open(path, encoding="utf-8", errors="replace") as handle:
        for number, line in enumerate(handle, start=1):
            fields = line.split()
            if not fields:
                continue
            if len(fields) != expected:
                raise InputError(f"{path}, line {number}: {len(fields)} column(s), expected {expected} ({what}). "
                                 "Fix that line or re-export the fileset with plink --make-bed.")
            rows.append((number, fields))
    return rows


def fam_rows(path: Path) -> list[tuple[int, list[str]]]:
    """The .fam's six fields a line, with line numbers (the genotype reader's and the phenotype reader's)."""
    return _columns(path, 6, "family id, individual id, father, mother, sex, phenotype")


def _read_fam(path: Path) -> tuple[list[str], list[str]]:
    rows = fam_rows(path)
    return [r[0] for _, r in rows], [r[1] for _, r in rows]


def _read_bim(path: Path) -> tuple[list[str], np.ndarray, list[str], list[str]]:
    rows = _columns(path, 6, "chromosome, site id, centimorgans, position, allele 1, allele 2")
    positions = []
    for number, row in rows:
        try:
            positions.append(int(row[3]))
        except ValueError:
            raise InputError(f"{path}, line {number}: site {row[1]} has position {row[3]!r}; expected a whole "
                             "number of base pairs in the fourth column.") from None
    fields = [r for _, r in rows]
    return ([r[0] for r in fields], np.asarray(positions, dtype=np.int64), [r[4] for r in fields],
            [r[5] for r in fields])
