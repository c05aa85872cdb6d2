"""Checks of a run's inputs that take seconds, made before a job is queued (the web app's New run form), so that a
mistake is said while the person is still at the form instead of when the job's turn comes.

The same readers as the run itself (readers/*), on headers, file lists and small tables only: a wrong trait name (with the column
whose case differs), genotype and phenotype files given the wrong way round, a label column that is not there, a
file that is not training data. The run itself still checks everything again.
"""
from __future__ import annotations

import gzip
from pathlib import Path

from biolens.errors import InputError

VCF_MAGIC = b"##fileformat=VCF"
PLINK_BED_MAGIC = b"\x6c\x1b\x01"  # a PLINK 1 .bed in SNP-major order
BGEN_MAGIC = (b"bgen", b"\x00\x00\x00\x00")  # bytes 16-20 of a BGEN header (older writers leave them zero)


def check(task: str, params: dict) -> None:
    """Raise the run's own one-line InputError now, for the mistakes that can be seen without training."""
    if task == "associate":
        _check_association(params)
    elif task in ("classify",):
        from biolens.readers.images import find_labelled

        found = find_labelled(params["data"], params.get("group_column"))
        if params.get("stack", "refuse") == "refuse":
            _check_stacks(found.files)
    elif task == "sequence_classify":  # the label table against the FASTA's record ids, classes and groups
        from biolens.readers.sequences import read_training_sequences

        read_training_sequences(params["data"], params.get("labels"), group_column=params.get("group_column"),
                                genome=params.get("genome") or None)
    elif task == "cluster":
        if params.get("compare_with"):
            _check_columns(Path(params["data"]), [params["compare_with"]], "known-label column")
        if Path(params["data"]).is_dir() and params.get("stack", "refuse") == "refuse":
            _check_stacks(sorted(Path(params["data"]).rglob("*.tif*")))  # a folder of images (10x folders hold none)
    elif task == "pretrain" and params.get("stack", "refuse") == "refuse":
        _check_stacks([f for folder in params["images"] for f in sorted(Path(folder).rglob("*.tif*"))])
    elif task == "detect":  # the annotations' format, images, kind and group column (reads tables and image headers)
        from biolens.readers.annotations import read_annotations

        annotations = read_annotations(params["annotations"], params.get("images"), params.get("kind", "auto"),
                                       params.get("group_column"))
        if params.get("stack", "refuse") == "refuse":
            _check_stacks([Path(item.image) for item in annotations.items])


def looks_like_vcf(path: Path) -> bool:
    """VCF text, gzip/bgzip VCF or BCF, by the first bytes (not by the name)."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(4)
        if head[:3] == b"BCF":
            return True
        opener = gzip.open if head[:2] == b"\x1f\x8b" else open
        with opener(path, "rb") as handle:
            first = handle.read(len(VCF_MAGIC))
        return first == VCF_MAGIC or first[:4] == b"BCF\x02"
    except OSError:
        return False


def looks_like_plink(path: Path) -> bool:
    """A PLINK 1 .bed, by its name and first bytes."""
    try:
        with open(path, "rb") as handle:
            return path.suffix.lower() == ".bed" and handle.read(3) == PLINK_BED_MAGIC
    except OSError:
        return False


def looks_like_pgen(path: Path) -> bool:
    """A PLINK 2 .pgen (or a PLINK 1 .bed renamed), by its name and first bytes."""
    try:
        with open(path, "rb") as handle:
            return path.suffix.lower() == ".pgen" and handle.read(2) == PLINK_BED_MAGIC[:2]
    except OSError:
        return False


def looks_like_bgen(path: Path) -> bool:
    """A BGEN, by its name and the magic number of its header."""
    try:
        with open(path, "rb") as handle:
            return path.suffix.lower() == ".bgen" and handle.read(20)[16:20] in BGEN_MAGIC
    except OSError:
        return False


def _check_association(params: dict) -> None:
    from biolens.readers.phenotypes import read_phenotypes

    phenotypes = Path(params["phenotypes"])
    genotypes = params.get("genotypes")
    if looks_like_vcf(phenotypes):
        raise InputError(f"{phenotypes.name} is a VCF (genotypes), not the trait table: the genotype and phenotype "
                         "files look swapped.")
    if genotypes:
        _check_genotype_file(Path(genotypes), "genotypes")
    if params.get("structure_genotypes"):
        _check_genotype_file(Path(params["structure_genotypes"]), "structure markers")
    if params.get("region"):
        from biolens.readers.regions import Region

        Region.parse(params["region"])  # its syntax now; whether the file holds sites there, when the run reads it
    if params.get("regions"):
        from biolens.tasks.associate_regions import read_bed

        read_bed(params["regions"])  # every line and name now; whether the file holds sites there, region by region
    covariates = [c.strip() for c in str(params.get("covariates") or "").split(",") if c.strip()]
    read_phenotypes(phenotypes, params["trait"], covariates, params.get("sample_column"))


STACK_HEADERS_READ = 500  # TIFF headers read at the form for pages that need --stack (the run reads them all)


def _check_stacks(files: list[Path]) -> None:
    """A multi-page TIFF among the images, when the form left what its pages are at "stop and ask": said now, in
    the words the run would use, instead of when the job's turn comes."""
    from biolens.readers.image_decode import stack_refusal

    for path in [f for f in files if f.suffix.lower() in (".tif", ".tiff")][:STACK_HEADERS_READ]:
        reason = stack_refusal(path)
        if reason:
            raise InputError(f"{path}: {reason}.")


def _check_genotype_file(path: Path, role: str) -> None:
    """A genotype input (the region's genotypes, or the genome-wide markers for principal components) is one of the
    formats the readers take, with its companion files."""
    if looks_like_plink(path) or looks_like_pgen(path):
        from biolens.readers.variants import genotype_files

        absent = [f.name for f in genotype_files(path)[1:] if not f.is_file()]
        if absent:
            kind, trio = (("PLINK .bed", ".bed, .bim and .fam") if path.suffix.lower() == ".bed"
                          else ("PLINK 2 .pgen", ".pgen, .pvar and .psam"))
            raise InputError(f"{path.name} is a {kind} without its {' and '.join(absent)}: give the {trio} of one "
                             "fileset together.")
    elif path.suffix.lower() == ".bgen":
        if not looks_like_bgen(path):
            raise InputError(f"{path.name} is named .bgen but holds no BGEN header; upload the original file (or "
                             "export it again: plink2 --export bgen-1.2).")
    elif not looks_like_vcf(path):
        from biolens.readers.tables import is_table

        formats = "a VCF, VCF.gz, BCF, a PLINK .bed with its .bim and .fam, a PLINK 2 .pgen with its .pvar and .psam"
        if role == "genotypes":
            swapped = is_table(path)
            raise InputError(f"{path.name} is not a VCF/BCF" + (
                ": it looks like a table, so the genotype and phenotype files may be swapped." if swapped
                else f"; give {formats}, a BGEN, or an aligned FASTA."))
        raise InputError(f"{path.name} (the {role}) is not a VCF/BCF; give the genome-wide markers as {formats}, or a "
                         "BGEN.")


def _check_columns(path: Path, names: list[str], what: str) -> None:
    """Each name is a column of the table at `path`; a name that differs only in case is pointed at."""
    from biolens.readers.tables import column_hint, is_table, read_table

    if not is_table(path):
        return  # a folder of images or an AnnData file: the run reads and checks it
    columns = list(read_table(path, path.name).columns)
    for name in names:
        if name in columns:
            continue
        hint = column_hint(name, columns)
        raise InputError(f"{path.name} has no {what} '{name}'.{hint} Its columns: {', '.join(map(str, columns[:20]))}"
                         + (" ..." if len(columns) > 20 else "") + ".")
