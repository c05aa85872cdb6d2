"""Genotypes from VCF / VCF.gz / BCF (cyvcf2), a PLINK 1 or 2 fileset or a BGEN: alt-allele dosages per individual
and site.

Multi-allelic records are split into one biallelic site per ALT allele (dosage = copies of that allele), the usual
`bcftools norm -m-` convention. Haploid and diploid calls, phased or not, all become dosages (0..ploidy). Missing calls
are kept as NaN here and imputed (with a count) by `Genotypes.imputed`, from the individuals most alike.
"""
from __future__ import annotations

import warnings
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from biolens.errors import InputError
from biolens.readers.regions import Region

# also .vcf.gz / .vcf.bgz; .bed with its .bim and .fam; .pgen with its .pvar and .psam; .bgen with its .sample
VARIANT_SUFFIXES = (".vcf", ".bcf", ".bed", ".bim", ".fam", ".pgen", ".pvar", ".psam", ".bgen", ".sample")
MAX_STRUCTURE_MARKERS = 100_000  # --structure-genotypes from a .bed: at most this many markers, evenly spaced


@dataclass
class Genotypes:
    """Alt-allele dosages (individuals x sites, NaN = missing) with the site table and where they came from."""

    samples: list[str]
    chrom: list[str]
    pos: np.ndarray
    ref: list[str]
    alt: list[str]
    dosage: np.ndarray  # float32, individuals x sites
    source: str
    notes: dict = field(default_factory=dict)
    copies: np.ndarray | None = None  # allele copies each individual carries where ploidies mix (males' X); else None

    @property
    def n_sites(self) -> int:
        return self.dosage.shape[1]

    def subset(self, rows: np.ndarray | None = None, sites: np.ndarray | None = None) -> "Genotypes":
        rows = np.arange(len(self.samples)) if rows is None else np.asarray(rows)
        sites = np.arange(self.n_sites) if sites is None else np.asarray(sites)
        return Genotypes([self.samples[i] for i in rows], [self.chrom[j] for j in sites], self.pos[sites],
                         [self.ref[j] for j in sites], [self.alt[j] for j in sites],
                         self.dosage[np.ix_(rows, sites)], self.source, dict(self.notes),
                         None if self.copies is None else self.copies[rows])

    def imputed(self, method: str = "neighbours") -> tuple[np.ndarray, int]:
        """Dosages with every missing call filled, and how many calls were filled.

        `neighbours` (for the sites analysed): the mean call of the 5 individuals most alike at the sites both have
        called (scikit-learn's KNNImputer; donors drawn once, at most 2,000, with a fixed seed). In one region of
        strong LD that is what the individual's haplotypes carry; the site mean puts a carrier's missing call near
        0 and blurs the genotype classes the pair tests read. `mean` (the site mean): for genome-wide markers, where
        principal components need no more. An individual with no call shared with a donor gets the site mean.
        """
        if method not in ("neighbours", "mean"):
            raise ValueError(f"method must be 'neighbours' or 'mean', not {method!r}")
        dosage = self.dosage.astype(np.float64, copy=True)
        missing = np.isnan(dosage)
        if not missing.any():
            return dosage, 0
        called = ~missing.all(0)
        if method == "neighbours" and called.sum() > 1:
            from biolens.stats.preprocess import knn_fill

            dosage[:, called] = knn_fill(dosage[:, called])
        means = np.nanmean(np.where(missing.all(0), 0, dosage), axis=0)
        still = np.isnan(dosage)
        dosage[still] = np.take(means, np.nonzero(still)[1])
        return dosage, int(missing.sum())

    def allele_frequency(self) -> np.ndarray:
        """Alt-allele frequency per site: the alt copies called over the allele copies called (where ploidies mix, a
        man's one-allele X call counts one copy and a woman's call two), else the mean dosage over the ploidy seen."""
        if self.copies is None:
            return np.nanmean(self.dosage, axis=0) / np.maximum(self.notes.get("ploidy", 2), 1)
        called = ~np.isnan(self.dosage)
        copies = (called * self.copies[:, None]).sum(0)
        return np.nansum(self.dosage, axis=0) / np.maximum(copies, 1)

    def minor_allele_frequency(self) -> np.ndarray:
        frequency = self.allele_frequency()
        return np.minimum(frequency, 1 - frequency)


def is_plink(path: Path | str) -> bool:
    return Path(path).suffix.lower() == ".bed"


def is_bgen(path: Path | str) -> bool:
    return Path(path).suffix.lower() == ".bgen"


def is_pgen(path: Path | str) -> bool:
    return Path(path).suffix.lower() == ".pgen"


def genotype_files(path: Path | str) -> list[Path]:
    """Every file a genotype input consists of: a .bed brings its .bim and .fam, a .pgen its .pvar and .psam, a
    .bgen its .sample."""
    from biolens.readers.bgen import bgen_files
    from biolens.readers.pgen import pgen_files
    from biolens.readers.plink import plink_files

    for test, files in ((is_plink, plink_files), (is_pgen, pgen_files), (is_bgen, bgen_files)):
        if test(path):
            return files(path)
    return [Path(path)]


def read_genotypes(path: Path | str, max_sites: int | None = None, region: Region | None = None) -> Genotypes:
    """A VCF/VCF.gz/BCF, a PLINK 1 or 2 fileset or a BGEN (`max_sites`: the markers of any but a VCF, evenly spaced,
    at most that many; `region`: only the sites in it, readers/regions.py)."""
    if is_plink(path):
        from biolens.readers.plink import read_plink

        return read_plink(path, max_sites=max_sites, region=region)
    if is_pgen(path):
        from biolens.readers.pgen import read_pgen

        return read_pgen(path, max_sites=max_sites, region=region)
    if is_bgen(path):
        from biolens.readers.bgen import read_bgen

        return read_bgen(path, max_sites=max_sites, region=region)
    return read_vcf(path, region=region)


def spread(index: np.ndarray, max_sites: int | None) -> np.ndarray:
    """At most `max_sites` of `index`, evenly spaced along it (genome-wide markers)."""
    if max_sites is None or len(index) <= max_sites:
        return index
    return index[np.unique(np.linspace(0, len(index) - 1, max_sites).round().astype(int))]


def region_note(region: Region | None, kept: int, total: int | None) -> dict:
    """run.json's record of the region read: how many records it held, of how many in the file where known."""
    if region is None:
        return {}
    return {"region": f"{region} ({kept} records" + (f" of {total})" if total is not None else ")")}


def fractional_note(path: Path, dosage: np.ndarray, warnings: list[str] | None = None) -> dict:
    """How many dosages are not whole genotypes (imputed data), with a warning saying how the tests read them."""
    called = dosage[np.isfinite(dosage)]
    fractional = int((np.abs(called - np.rint(called)) > 0.05).sum())
    warnings = list(warnings or [])
    if fractional:
        warnings.append(
            f"{path}: {fractional} of {called.size} dosages ({100 * fractional / max(called.size, 1):.1f}%) are "
            "more than 0.05 from a whole number (imputed genotypes): the per-site tests and the network read them "
            "as they are, the pair tests' genotype tables round them to the nearest genotype.")
    return {"fractional_dosages": fractional, **({"warnings": warnings} if warnings else {})}


def read_vcf(path: Path | str, region: Region | None = None) -> Genotypes:
    """Read every record of a VCF/VCF.gz/BCF (in `region`, if given) into dosages; one clear line on any malformed
    input. A region is read through the file's .tbi/.csi index where it has one, else by skipping the records
    outside it."""
    import cyvcf2

    from biolens.hardware import quiet_native_stderr

    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: no such file. Give the VCF/BCF with --genotypes.")
    try:
        with quiet_native_stderr():
            vcf = cyvcf2.VCF(str(path), gts012=False, lazy=True, threads=1)
    except Exception as error:  # cyvcf2 raises bare Exception/OSError for unreadable headers
        raise InputError(f"{path}: not a readable VCF/BCF ({error}). Check the file is VCF text, bgzip/gzip VCF or BCF.") from None
    samples = list(vcf.samples)
    if not samples:
        raise InputError(f"{path}: the VCF has no sample columns; biolens needs one genotype column per individual.")
    duplicated = sorted(s for s, n in Counter(samples).items() if n > 1)
    if duplicated:
        raise InputError(f"{path}: sample(s) {', '.join(duplicated[:5])} appear more than once in the header; "
                         "rename or remove the duplicates (e.g. bcftools query -l).")
    # a header without ##FORMAT=<ID=GT> (hand-made or older tools' files) is read as htslib reads it, GT a string;
    # a record without GT stops below, naming its line
    header_lines = _header_lines(path)
    chrom, pos, ref, alt, columns = [], [], [], [], []
    ploidy_seen = 1
    haploid = np.zeros(len(samples), dtype=bool)  # individuals with a one-allele call where others have two
    n_split = 0
    records = 0
    failed_filters: Counter = Counter()  # filter name -> records that failed it
    n_failed = 0
    in_region = 0
    seen: dict[str, list[int]] = {}  # with a region: each chromosome's first and last position read, for the error
    indexed = _region_records(vcf, path, region) if region is not None else None  # None: read every record
    iterator = iter(vcf) if indexed is None else indexed
    while True:
        try:
            with quiet_native_stderr():
                variant = next(iterator)
        except StopIteration:
            break
        except Exception:
            line = header_lines + records + 1
            where = (f"line {line}" if path.suffix != ".bcf" and indexed is None else
                     f"record {records + 1}" + (f" of --region {region}" if indexed is not None else ""))
            raise InputError(f"{path}, {where}: malformed or truncated VCF record (wrong number of columns or "
                             "unparsable genotype). Fix or remove that line, or re-export the file.") from None
        records += 1
        where = (f"line {header_lines + records}" if path.suffix != ".bcf" and indexed is None else
                 f"record at {variant.CHROM}:{variant.POS}")
        if region is not None:
            span = seen.setdefault(str(variant.CHROM), [int(variant.POS), int(variant.POS)])
            span[1] = int(variant.POS)
            if not region.holds(str(variant.CHROM), int(variant.POS)):
                continue
        in_region += 1
        try:
            genotype = variant.genotype
        except Exception:  # cyvcf2 raises a bare Exception where neither the record nor the header has GT
            genotype = None
        if genotype is None:
            raise InputError(f"{path}, {where}: the record has no GT (genotype) field; biolens reads called genotypes.")
        calls = genotype.array()[:, :-1]  # drop the phased flag; -1 = missing, -2 = shorter ploidy
        alts = variant.ALT or []
        beyond = calls > len(alts)
        if beyond.any():
            row, column = np.argwhere(beyond)[0]
            raise InputError(f"{path}, {where}: sample {samples[row]} has allele {calls[row, column]} but the record "
                             f"has only {len(alts)} ALT allele(s). Fix the record or remove it.")
        present = calls >= 0
        missing = ((calls == -1).any(1)) | (~present).all(1)
        called = (calls != -2).sum(1)  # alleles a call has (missing ones included), whatever its ploidy
        ploidy_seen = max(ploidy_seen, int(present.sum(1).max(initial=0)))
        one, more = (called == 1) & present.any(1), (called >= 2) & present.any(1)  # a missing call: no ploidy
        if one.any() and more.any():  # one record, both ploidies: males' X among females'
            haploid |= one
        if len(alts) > 1:
            n_split += len(alts) - 1
        if variant.FILTER:  # cyvcf2 gives None for PASS and '.'
            failed_filters.update(str(variant.FILTER).split(";"))
            n_failed += 1
        for k, allele in enumerate(alts, start=1):
            dose = (calls == k).sum(1).astype(np.float32)
            dose[missing] = np.nan
            chrom.append(str(variant.CHROM))
            pos.append(int(variant.POS))
            ref.append(variant.REF)
            alt.append(allele)
            columns.append(dose)
    if not columns and region is not None:
        if indexed is not None:  # only the header's chromosome names are known
            raise region.nothing_in(path, list(vcf.seqnames), None)
        names = [name for name, span in seen.items() for _ in span]  # each chromosome's first and last position
        raise region.nothing_in(path, names, np.array([p for span in seen.values() for p in span]))
    if not columns:
        raise InputError(f"{path}: no variant records after the header; biolens needs at least one site.")
    dosage = np.stack(columns, axis=1)
    notes = {"records": records, "multiallelic_split": n_split, "ploidy": ploidy_seen,
             "missing_calls": int(np.isnan(dosage).sum()), **_filter_notes(path, in_region, n_failed, failed_filters),
             **region_note(region, in_region, records if indexed is None else None)}
    copies = mixed_ploidy(path, samples, haploid, ploidy_seen, notes)
    return Genotypes(samples, chrom, np.asarray(pos), ref, alt, dosage, str(path), notes, copies)


def mixed_ploidy(path: Path, samples: list[str], haploid: np.ndarray, ploidy: int, notes: dict) -> np.ndarray | None:
    """Each individual's allele copies where some have one-allele calls beside others' `ploidy` (males' X in a VCF
    or a BGEN), with the count and a warning added to `notes`; None where ploidies do not mix."""
    if not haploid.any():
        return None
    first = samples[int(np.argmax(haploid))]
    notes["haploid_individuals"] = int(haploid.sum())
    notes.setdefault("warnings", []).append(
        f"{path}: {int(haploid.sum())} individuals have one-allele (haploid) calls beside others' two (e.g. "
        f"{first}; males on chromosome X): they count 0 or 1 alt copy, as PLINK 2 counts them by default, so their "
        "dosages are on half the scale; give sex as a covariate (--covariates sex) so the copy number is not read "
        "as an effect.")
    return np.where(haploid, 1, ploidy).astype(np.float32)


# cyvcf2 warns when an indexed query finds nothing; biolens says so itself, naming what the file holds
warnings.filterwarnings("ignore", message="no intervals found", category=UserWarning)


def _region_records(vcf, path: Path, region: Region):
    """The records of `region` through the file's .tbi/.csi index (htslib's region query), or None where the file
    has no index (the caller then reads every record and skips those outside). Files name chromosomes with or
    without `chr`: the query tries the name as given and the other spelling."""
    if not any(Path(f"{path}{suffix}").is_file() for suffix in (".tbi", ".csi")):
        return None
    import itertools

    from biolens.readers.regions import bare

    names = set(vcf.seqnames)
    queries = []
    for stretch in region.stretches:  # they do not overlap (Region.parse), so no record is read twice
        chrom = next((c for c in (stretch.chrom, bare(stretch.chrom), f"chr{bare(stretch.chrom)}") if c in names),
                     stretch.chrom)
        queries.append(chrom if stretch.start is None and stretch.end is None else
                       f"{chrom}:{stretch.start or 1}-{stretch.end if stretch.end is not None else 2**31 - 1}")
    try:
        return itertools.chain.from_iterable(vcf(query) for query in queries)
    except Exception:  # an index that does not fit the file: read every record instead
        return None


def _header_lines(path: Path) -> int:
    """Lines of the file's own header (counted in the file: htslib adds lines such as ##FILTER=<ID=PASS> to the
    header it gives back, which would put every error's line number off)."""
    import gzip

    with open(path, "rb") as handle:
        compressed = handle.read(2) == b"\x1f\x8b"
    if path.suffix.lower() == ".bcf":
        return 0  # records are named by number, not line
    count = 0
    with (gzip.open(path, "rb") if compressed else open(path, "rb")) as handle:
        for line in handle:
            if not line.startswith(b"#"):
                break
            count += 1
    return count


def _filter_notes(path: Path, records: int, n_failed: int, failed: Counter) -> dict:
    """Records the variant caller's filters failed are read like the others (as PLINK and regenie do), but said."""
    if not n_failed:
        return {}
    named = ", ".join(f"{name} {n}" for name, n in failed.most_common(5))
    return {"records_failing_filter": n_failed, "failed_filters": dict(failed.most_common()),
            "warnings": [f"{path}: {n_failed} of {records} records failed the variant caller's filters (FILTER "
                         f"{named}) and were read like the others; to leave them out, give the file passed through "
                         f"'bcftools view -f PASS,. {path.name} -Oz -o passed.vcf.gz'."]}


def structure_components(path: Path | str, samples: list[str], count: int, notes: dict | None = None) -> np.ndarray:
    """Top `count` principal components of genome-wide markers (`--structure-genotypes`) for `samples`, in order.

    Population structure is estimated from markers across the genome, not from the tested region (whose LD with the
    causal sites would be absorbed too). Sites are standardised by their allele frequency (as in EIGENSTRAT); every
    analysed individual must be in the file. A PLINK .bed gives at most 100,000 markers, evenly spaced (the leading
    components of ancestry need far fewer); `notes` gets `structure_markers` saying how many were used.
    """
    from sklearn.decomposition import PCA

    markers = read_genotypes(path, max_sites=MAX_STRUCTURE_MARKERS)
    position = {sample: i for i, sample in enumerate(markers.samples)}
    missing = [s for s in samples if s not in position]
    if missing:
        raise InputError(f"{path}: {len(missing)} analysed individual(s) are not in the structure genotypes "
                         f"(e.g. {', '.join(missing[:3])}); it must hold every individual of the association.")
    dosage, _ = markers.subset(rows=np.asarray([position[s] for s in samples])).imputed("mean")
    freq = dosage.mean(0) / 2
    keep = (freq > 0.01) & (freq < 0.99)
    if keep.sum() < 2 * count:
        raise InputError(f"{path}: only {int(keep.sum())} common marker(s) (allele frequency 1-99%); principal "
                         f"components of structure need at least {2 * count}, ideally thousands across the genome.")
    standard = (dosage[:, keep] - 2 * freq[keep]) / np.sqrt(2 * freq[keep] * (1 - freq[keep]))
    if notes is not None:
        thinned = f", read evenly spaced from {markers.notes['records']}" if "sites_read" in markers.notes else ""
        notes["structure_markers"] = f"{int(keep.sum())} common markers of {markers.n_sites}{thinned}"
    count = min(count, len(samples) - 1, int(keep.sum()))
    components = PCA(n_components=count, random_state=0).fit_transform(standard)
    return (components - components.mean(0)) / np.where(components.std(0) > 0, components.std(0), 1)
