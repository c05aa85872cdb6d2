"""Genotypes from BGEN files (v1.1-1.3, the format of imputed biobank data), read with the `bgen` package.

A BGEN site holds genotype probabilities; biolens reads each allele's expected dosage from them (a fractional dosage
where imputation was unsure), the first allele counted as `ref` and every other allele as one `alt` site, as a
multi-allelic VCF record is split. Individuals are named by the ids the file holds, or by the Oxford `.sample` file
of the same name beside it (which wins, as it does for PLINK 2 and qctool).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from biolens.errors import InputError


def bgen_files(path: Path | str) -> list[Path]:
    """The .bgen and, where there is one, its .sample (what a run's data fingerprint must cover)."""
    path = Path(path)
    sample = path.with_suffix(".sample")
    return [path, sample] if sample.is_file() else [path]


def read_bgen(path: Path | str, max_sites: int | None = None, region=None):
    """Expected dosage of each non-first allele for every individual and site (of `region`, if given);
    `max_sites`: that many sites, evenly spaced (markers for --structure-genotypes)."""
    import bgen

    from biolens.readers.regions import region_index
    from biolens.readers.variants import Genotypes, fractional_note, mixed_ploidy, region_note, spread

    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such file. Give the BGEN with --genotypes.")
    files = bgen_files(path)
    sample_path = str(files[1]) if len(files) > 1 else ""
    try:
        reader = bgen.BgenReader(str(path), sample_path=sample_path, delay_parsing=True)
    except (ValueError, OSError, RuntimeError, IndexError) as error:
        raise InputError(f"{path}: not a readable BGEN file ({error}). Re-export it (plink2 --export bgen-1.2, or "
                         "qctool).") from None
    samples = [str(s) for s in reader.samples]
    if not sample_path and not reader.header.has_sample_ids:
        raise InputError(f"{path}: the file holds no sample ids and no {path.with_suffix('.sample').name} lies "
                         "beside it; give the Oxford .sample file of the same name (ID_1 ID_2 missing ...).")
    if len(set(samples)) < len(samples):
        raise InputError(f"{path}: sample ids repeat; each individual needs its own id.")
    count = len(reader)
    if not count:
        raise InputError(f"{path}: no variants; biolens needs at least one site.")
    if region is None:
        in_region = np.arange(count)
    else:
        in_region = region_index(region, [str(c) for c in reader.chroms()], np.asarray(reader.positions()), path)
    index = spread(in_region, max_sites)
    chrom, pos, ref, alt, columns = [], [], [], [], []
    ploidy_seen, n_split = 1, 0
    haploid = np.zeros(len(samples), dtype=bool)  # individuals with one-allele calls where others have two
    for number in index:
        try:
            variant = reader[int(number)]
            alleles = list(variant.alleles)
            ploidy = np.asarray(variant.ploidy)
            doses = _allele_doses(variant, alleles, ploidy)
        except InputError as error:
            raise InputError(f"{path}, variant {number + 1} ({_name(variant)}): {error}") from None
        except (ValueError, OSError, RuntimeError, IndexError) as error:
            raise InputError(f"{path}, variant {number + 1}: unreadable ({error}). Re-export the file.") from None
        ploidy_seen = max(ploidy_seen, int(ploidy.max(initial=0)))
        if (ploidy == 1).any() and (ploidy >= 2).any():  # one site, both ploidies: males' X among females'
            haploid |= ploidy == 1
        n_split += max(len(alleles) - 2, 0)
        for allele, dose in zip(alleles[1:], doses):
            chrom.append(str(variant.chrom))
            pos.append(int(variant.pos))
            ref.append(alleles[0])
            alt.append(allele)
            columns.append(dose.astype(np.float32))
    dosage = np.stack(columns, axis=1)
    notes = {"records": int(count), "multiallelic_split": n_split, "ploidy": ploidy_seen,
             "missing_calls": int(np.isnan(dosage).sum()),
             "format": "BGEN (expected dosage of each allele after the first, from genotype probabilities)",
             **fractional_note(path, dosage), **region_note(region, len(in_region), count)}
    if len(index) < len(in_region):
        notes["sites_read"] = f"{len(index)} of {len(in_region)}, evenly spaced"
    copies = mixed_ploidy(path, samples, haploid, ploidy_seen, notes)
    return Genotypes(samples, chrom, np.asarray(pos), ref, alt, dosage, str(path), notes, copies)


def _name(variant) -> str:
    try:
        return f"{variant.rsid or variant.varid} at {variant.chrom}:{variant.pos}"
    except Exception:  # a variant that failed to parse has no fields to name
        return "unparsed"


def _allele_doses(variant, alleles: list[str], ploidy: np.ndarray) -> list[np.ndarray]:
    """Expected copies of each allele after the first, per individual (NaN where the probabilities are missing)."""
    if len(alleles) < 2:
        raise InputError(f"{len(alleles)} allele(s); a site needs a reference and at least one other allele.")
    if len(alleles) == 2:
        return [np.asarray(variant.alt_dosage, dtype=np.float64)]
    probabilities = np.asarray(variant.probabilities, dtype=np.float64)
    k = len(alleles)
    if variant.is_phased:  # one probability per haplotype and allele
        haplotypes = probabilities.shape[1] // k
        return [np.nansum(probabilities[:, [h * k + a for h in range(haplotypes)]], axis=1)
                + np.where(np.isnan(probabilities).all(1), np.nan, 0) for a in range(1, k)]
    if not np.isin(ploidy, (1, 2)).all():
        raise InputError(f"{k} alleles with unphased calls of ploidy {sorted(set(ploidy.tolist()))}; biolens reads "
                         "multi-allelic BGEN sites of haploid or diploid calls. Split them (plink2 --make-pgen "
                         "multiallelics=-) or keep biallelic sites.")
    doses = np.full((len(ploidy), k - 1), np.nan)
    for calls in (1, 2):  # males' one-allele X calls beside females' two: each ploidy has its own genotype order
        rows = ploidy == calls
        if calls == 1:
            genotypes = [(a,) for a in range(k)]
        else:  # BGEN orders unphased diploid genotypes colex: 0/0, 0/1, 1/1, 0/2, 1/2, 2/2, ...
            genotypes = [(a, b) for b in range(k) for a in range(b + 1)]
        copies = np.array([[g.count(a) for a in range(1, k)] for g in genotypes], dtype=np.float64)
        doses[rows] = probabilities[rows, :len(genotypes)] @ copies
    return list(doses.T)
