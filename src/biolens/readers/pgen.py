"""Genotypes from PLINK 2 filesets (`.pgen` with its `.pvar` and `.psam`), read with pgenlib, plink-ng's own library.

PLINK 2 keeps the VCF's alleles (REF stays REF), so each ALT allele is a site whose dosage counts it, as a split
multi-allelic VCF record is; a `.pgen` that stores dosages (imputed data) gives them as they are. The `.psam` names
the individuals (IID; `FID_IID` where an IID occurs in two families, as for a PLINK 1 `.fam`). The `.psam` and a
plain `.pvar` are read here, line by line, so a malformed line is named (pgenlib's own `.pvar` parser reads `4x0` as
position 4); pgenlib reads the packed genotypes, and a zstd-compressed `.pvar.zst`.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from biolens.errors import InputError
from biolens.readers.plink import individual_names


def pvar_path(path: Path) -> Path:
    """A .pgen's variant file: its .pvar, or the zstd-compressed .pvar.zst PLINK 2 may write instead."""
    plain = path.with_suffix(".pvar")
    packed = path.with_suffix(".pvar.zst")
    return packed if packed.is_file() and not plain.is_file() else plain


def pgen_files(path: Path | str) -> list[Path]:
    """The fileset of a `.pgen`: itself, its `.pvar` and its `.psam` (what a run's data fingerprint must cover)."""
    path = Path(path)
    return [path, pvar_path(path), path.with_suffix(".psam")]


def read_pgen(path: Path | str, max_sites: int | None = None, region=None):
    """ALT-allele dosages for every individual and site (of `region`, if given); `max_sites` reads that many, evenly
    spaced (markers)."""
    import pgenlib

    from biolens.readers.regions import region_index
    from biolens.readers.variants import Genotypes, fractional_note, region_note, spread

    path = Path(path)
    _, variants_file, samples_file = pgen_files(path)
    for companion in (variants_file, samples_file):
        if not companion.is_file():
            raise InputError(f"{path}: its {companion.suffix} file {companion.name} is missing beside it; a PLINK 2 "
                             "fileset is the .pgen with a .pvar (variants) and a .psam (individuals) of the same name.")
    samples, warnings = read_psam(samples_file)
    sites = read_pvar(variants_file)
    count = len(sites)
    offsets = np.concatenate([[0], np.cumsum([len(alleles) for *_, alleles in sites])]).astype(np.uintp)
    try:
        reader = pgenlib.PgenReader(str(path).encode(), raw_sample_ct=len(samples), variant_ct=count,
                                    allele_idx_offsets=offsets if offsets[-1] > 2 * count else None)
    except RuntimeError as error:
        raise InputError(f"{path}: not a readable .pgen for the {len(samples)} individuals of its .psam and {count} "
                         f"variants of its .pvar ({_said(error)}). Re-export it with plink2 --make-pgen.") from None
    in_region = region_index(region, [c for c, _, _ in sites], np.array([p for _, p, _ in sites]), variants_file)
    index = spread(in_region, max_sites)
    chrom, pos, ref, alt, columns = [], [], [], [], []
    buffer = np.empty(len(samples), dtype=np.float64)
    n_split = 0
    try:
        for i in index:
            i = int(i)
            name, position, alleles = sites[i]
            n_split += max(len(alleles) - 2, 0)
            for k in range(1, len(alleles)):
                reader.read_dosages(i, buffer, k)
                columns.append(np.where(buffer == -9, np.nan, buffer).astype(np.float32))
                chrom.append(name)
                pos.append(position)
                ref.append(alleles[0])
                alt.append(alleles[k])
    except RuntimeError as error:
        raise InputError(f"{path}: variant {i + 1} could not be read ({_said(error)}). Re-export the fileset with "
                         "plink2 --make-pgen.") from None
    finally:
        reader.close()
    dosage = np.stack(columns, axis=1)
    notes = {"records": int(count), "multiallelic_split": n_split, "ploidy": 2,
             "missing_calls": int(np.isnan(dosage).sum()), "format": "PLINK 2 .pgen (ALT dosages)",
             **fractional_note(path, dosage, warnings), **region_note(region, len(in_region), count)}
    if len(index) < len(in_region):
        notes["sites_read"] = f"{len(index)} of {len(in_region)}, evenly spaced"
    return Genotypes(samples, chrom, np.asarray(pos), ref, alt, dosage, str(path), notes)


def _said(error: Exception) -> str:
    """pgenlib's message, which it may raise as the repr of bytes."""
    text = str(error.args[0] if error.args else error)
    if text.startswith(("b'", 'b"')):
        text = text[2:-1]
    return text.replace("\\n", " ").strip().rstrip(".")


def read_pvar(path: Path) -> list[tuple[str, int, list[str]]]:
    """Each variant's chromosome, position and alleles (REF first). A plain .pvar is read here, line by line, so a
    malformed line is named; a .pvar.zst through pgenlib, which decompresses it."""
    if path.name.lower().endswith(".zst"):
        import pgenlib

        try:
            pvar = pgenlib.PvarReader(str(path).encode())
        except RuntimeError as error:
            raise InputError(f"{path}: not a readable .pvar ({_said(error)}). Re-export it with plink2 "
                             "--make-pgen.") from None
        sites = [(pvar.get_variant_chrom(i).decode(), int(pvar.get_variant_pos(i)),
                  [pvar.get_allele_code(i, k).decode() for k in range(pvar.get_allele_ct(i))])
                 for i in range(pvar.get_variant_ct())]
        pvar.close()
    else:
        sites = _plain_pvar(path)
    if not sites:
        raise InputError(f"{path}: no variants; biolens needs at least one site.")
    return sites


def _plain_pvar(path: Path) -> list[tuple[str, int, list[str]]]:
    header = None
    sites = []
    with open(path, encoding="utf-8", errors="replace") as handle:
        for number, line in enumerate(handle, start=1):
            if line.startswith("##") or not line.strip():
                continue
            fields = line.split()
            if line.startswith("#"):
                header = [f.lstrip("#").upper() for f in fields]
                missing = [c for c in ("CHROM", "POS", "REF", "ALT") if c not in header]
                if missing:
                    raise InputError(f"{path}, line {number}: the header lacks {', '.join(missing)}; a .pvar's header "
                                     "is #CHROM POS ID REF ALT (as plink2 --make-pgen writes it).")
                continue
            # no header: a .bim's layout, with or without its centimorgan column
            columns = header or (["CHROM", "ID", "POS", "ALT", "REF"] if len(fields) == 5
                                 else ["CHROM", "ID", "CM", "POS", "ALT", "REF"])
            if len(fields) < len(columns):
                raise InputError(f"{path}, line {number}: {len(fields)} column(s), expected {len(columns)} "
                                 f"({' '.join(columns)}). Fix the line or re-export the fileset with plink2.")
            value = dict(zip(columns, fields))
            try:
                position = int(value["POS"])
            except ValueError:
                raise InputError(f"{path}, line {number}: position '{value['POS']}' is not a whole number.") from None
            sites.append((value["CHROM"], position, [value["REF"], *value["ALT"].split(",")]))
    return sites


def read_psam(path: Path) -> tuple[list[str], list[str]]:
    """Individual ids of a .psam (a header line starting `#FID` or `#IID`; without one, a .fam's six columns), and
    any warning about how they were named."""
    lines = []
    with open(path, encoding="utf-8", errors="replace") as handle:
        for number, line in enumerate(handle, start=1):
            if line.strip():
                lines.append((number, line.split()))
    if not lines:
        raise InputError(f"{path}: no individuals; a .psam holds one line per individual.")
    header = [name.lstrip("#").upper() for name in lines[0][1]] if lines[0][1][0].startswith("#") else None
    rows = lines[1:] if header else lines
    header = header or ["FID", "IID", "PAT", "MAT", "SEX", "PHENO1"]
    if "IID" not in header:
        raise InputError(f"{path}, line {lines[0][0]}: the header names no IID column ({' '.join(header)}).")
    for number, fields in rows:
        if len(fields) != len(header):
            raise InputError(f"{path}, line {number}: {len(fields)} column(s), expected {len(header)} "
                             f"({' '.join(header)}). Fix the line or re-export the fileset with plink2.")
    iid = [fields[header.index("IID")] for _, fields in rows]
    if not iid:
        raise InputError(f"{path}: no individuals; a .psam holds one line per individual.")
    fid = [fields[header.index("FID")] for _, fields in rows] if "FID" in header else None
    return individual_names(fid, iid, path)
