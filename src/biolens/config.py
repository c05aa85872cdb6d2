"""Configuration as data: the only way options enter the engine.

CLI flags, web forms and the Python API all build these dataclasses and call `validate()` before any folder is
created. Every numeric option carries its range in its field metadata, so one gate checks them all (NaN and
infinity included). A run is fully described by its config (stored in run.json); `from_dict` reads the config of a
run written by an older biolens (unknown keys ignored, missing keys take today's default).
"""
from __future__ import annotations

import math
from pathlib import Path
from dataclasses import MISSING, asdict, dataclass, field, fields

from biolens.errors import InputError

# what a multi-page TIFF's pages are (readers/image_decode): refused until said, one plane made of them, or channels
STACK_CHOICES = ("refuse", "max", "mean", "first", "channels")


def option(default, *, low=None, high=None, choices=None, integer=False):
    """A config field with the range or choices `validate()` enforces."""
    meta = {"low": low, "high": high, "choices": choices, "integer": integer}
    if isinstance(default, list):
        return field(default_factory=lambda: list(default), metadata=meta)
    return field(default=default, metadata=meta)


def flag_name(name: str) -> str:
    return "--" + name.replace("_", "-")


@dataclass
class TaskConfig:
    """Shared machinery: range checks, tolerant reading of older run.json files, plain dicts."""

    def validate(self):
        for spec in fields(self):
            meta = spec.metadata
            if not meta:
                continue
            value = getattr(self, spec.name)
            if value is None:
                continue
            received = f"Invalid value for {flag_name(spec.name)}. Received: {value!r}."
            if meta.get("choices") is not None:
                if value not in meta["choices"]:
                    raise InputError(f"{received} Expected one of: {', '.join(map(str, meta['choices']))}.")
                continue
            if meta.get("low") is None and meta.get("high") is None:
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise InputError(f"{received} Expected a number.")
            if meta.get("integer") and float(value) != int(value):
                raise InputError(f"{received} Expected a whole number.")
            low, high = meta.get("low"), meta.get("high")
            if not math.isfinite(value) or (low is not None and value < low) or (high is not None and value > high):
                span = (f"from {low:g} to {high:g}" if low is not None and high is not None
                        else f">= {low:g}" if low is not None else f"<= {high:g}")
                raise InputError(f"{received} Expected a {'whole ' if meta.get('integer') else ''}number {span}.")
        self.check()
        return self

    def check(self) -> None:
        """Rules that tie several options together (subclasses)."""

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict):
        """Tolerant of older run.json files: unknown keys are ignored, missing ones take today's default."""
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in (values or {}).items() if k in known})

    @classmethod
    def build(cls, **options):
        """The config from keyword options; an unknown option is a user error naming what is accepted."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(options) - known)
        if unknown:
            raise InputError(f"unknown option(s) {', '.join(unknown)} for this task; accepted: {', '.join(sorted(known))}.")
        return cls(**{k: v for k, v in options.items() if v is not None or _default(cls, k) is None})

    @classmethod
    def option_names(cls) -> list[str]:
        return [f.name for f in fields(cls)]


def _default(cls, name):
    spec = next(f for f in fields(cls) if f.name == name)
    if spec.default is not MISSING:
        return spec.default
    return spec.default_factory() if spec.default_factory is not MISSING else None


@dataclass
class SupervisedConfig(TaskConfig):
    """What every classifier shares.

    Options:
        data: the labelled data (folder, manifest or FASTA), stored as an absolute path.
        group_column: a column naming the patient, plate or photo; no group is split across train/validation/test.
        epochs: most epochs (early stopping may end sooner).
        batch_size: examples per step; 0 = chosen from the training-set size.
        learning_rate: peak learning rate of AdamW with warm-up and cosine decay; 0 = automatic
            (`auto_learning_rate`).
        patience: epochs without a better validation score before stopping.
        time_budget: seconds of training; 0 = no limit.
        test_fraction, val_fraction: shares of the data held out for testing and for validation.
        min_per_class: classes with fewer usable examples are refused.
        class_weights: class-balanced loss weights.
        conformal_alpha: predictions are "unsure" unless the (1 - alpha) conformal set holds one class.
        mixed_precision: auto, on or off (float16 compute on GPUs).
        seed: random seed.
    """
    data: str = ""
    group_column: str | None = None
    epochs: int = option(30, low=1, high=10_000, integer=True)
    batch_size: int = option(0, low=0, high=4096, integer=True)
    learning_rate: float = option(0.0, low=0, high=1.0)
    patience: int = option(8, low=1, high=10_000, integer=True)
    time_budget: float = option(0.0, low=0, high=30 * 24 * 3600)
    test_fraction: float = option(0.15, low=0.05, high=0.5)
    val_fraction: float = option(0.15, low=0.05, high=0.5)
    min_per_class: int = option(10, low=2, high=100_000, integer=True)
    class_weights: bool = True
    conformal_alpha: float = option(0.1, low=0.01, high=0.5)
    mixed_precision: str = option("auto", choices=("auto", "on", "off"))
    seed: int = option(0, low=0, high=2**31 - 1, integer=True)

    def auto_batch_size(self, n_train: int) -> int:
        """Small data needs small batches: enough optimiser steps per epoch, and BatchNorm statistics that settle."""
        if self.batch_size:
            return self.batch_size
        return 8 if n_train < 500 else 16 if n_train < 2000 else 32

    def auto_learning_rate(self, batch_size: int) -> float:
        """The given rate, else 0.003 at a batch of 32 scaled with the batch (the linear scaling rule, Goyal et al.
        2017): 0.0015 at 16, 0.00075 at the batch of 8 that sets under 500 training images get. Measured on
        blood_cells with the labels of 5% of the photos (254 crops, batch 8): 0.003 gave a held-out balanced
        accuracy of 0.82, 0.0009 gave 0.98 (docs/performance.md)."""
        return self.learning_rate or 3e-3 * batch_size / 32


@dataclass
class ClassifyConfig(SupervisedConfig):
    """Image classification (`biolens train IMAGES`).

    Options (besides those of SupervisedConfig):
        backbone: "compact" (trains from scratch, fast on CPU) or a keras.applications name.
        weights: backbone weights: imagenet, none, or a weights file.
        image_size: model input side in pixels; 0 = chosen from the data.
        augment: flips, rotations and colour jitter while training.
        skip_bad: leave unreadable files out (listed in skipped.csv) instead of stopping.
        learning_curve: auto, on or off: retrain on parts of the data to say whether more would help.
        add_labels: a review.csv with a filled-in label column: extra training images.
        stack: multi-page TIFFs: refuse (default); max, mean or first (a z-stack or time series made into one
            plane); or channels (each page one channel).
        init_from: a run whose image encoder starts the classifier (a `biolens pretrain` run or an earlier compact
            image classification run: transfer from one project to the next).
        pretrain: auto, on or off: first learn the encoder without labels from the training, validation and
            --unlabelled images. auto does not pretrain (measured to add nothing, docs/self_supervised.md); it says in the
            report when --pretrain on is worth a try (a class under 100 images, 200 images or more to learn from).
        unlabelled: a folder of images without labels, used only by --pretrain.
    """
    backbone: str = "compact"
    weights: str = "imagenet"
    image_size: int = option(0, low=0, high=1024, integer=True)
    augment: bool = True
    skip_bad: bool = False
    learning_curve: str = option("auto", choices=("auto", "on", "off"))
    add_labels: str = ""
    stack: str = option("refuse", choices=STACK_CHOICES)
    init_from: str = ""
    pretrain: str = option("auto", choices=("auto", "on", "off"))
    unlabelled: str = ""

    def check(self) -> None:
        if self.init_from:
            from biolens.engine.pretraining import check_init_from

            check_init_from(self.init_from)
            if self.pretrain == "on":
                raise InputError("--init-from and --pretrain on both choose where the encoder starts; give one.")
            if self.backbone != "compact":
                raise InputError(f"--init-from starts the compact network; it cannot be combined with --backbone "
                                 f"{self.backbone} (use --weights for a backbone).")
        if self.unlabelled and not Path(self.unlabelled).is_dir():
            raise InputError(f"--unlabelled {self.unlabelled}: no such folder. Give a folder of images without labels.")

        if self.backbone != "compact":
            from biolens.models.image import BACKBONES  # Keras comes with it: only for a backbone asked for

            if self.backbone not in BACKBONES:
                raise InputError(f"Invalid value for --backbone. Received: {self.backbone}. Expected 'compact' or "
                                 f"one of: {', '.join(BACKBONES)}.")
        if self.image_size and self.image_size < 16:
            raise InputError(f"Invalid value for --image-size. Received: {self.image_size}. Expected 16 to 1024 pixels "
                             "(0 = chosen from the data).")


@dataclass
class SequenceConfig(SupervisedConfig):
    """Sequence classification (`biolens train SEQS.fasta --labels TABLE`).

    Options (besides those of SupervisedConfig):
        labels: TSV/CSV with columns id (the FASTA record id) and label (and the group column if one is named).
        length: bases the model reads; 0 = the longest sequence, or the 99th percentile of the lengths when
            the longest is over twice it (others centred and padded with N, or cut).
        filters: first-layer filters, i.e. candidate motifs.
        filter_width: bases per motif window.
        both_strands: read both strands (off for strand-specific data such as RNA).
        kmer_seeds: words per class, enriched in that class's training sequences, that first-layer filters start
            from (stats/kmers.py); 0 = every filter starts random.
        known_motifs: the known motifs that name learned ones: jaspar (JASPAR CORE, all taxa), jaspar-<taxon>
            (vertebrates, plants, insects, fungi, nematodes, urochordates), a MEME file, or none.
        learning_curve: auto, on or off: retrain on parts of the training sequences to say whether more would help.
        genome: the genome's FASTA, for peaks given as BED/narrowPeak files (their sequences are cut from it).
    """
    labels: str = ""
    genome: str = ""
    length: int = option(0, low=0, high=1_000_000, integer=True)
    filters: int = option(64, low=4, high=512, integer=True)
    filter_width: int = option(15, low=4, high=50, integer=True)
    both_strands: bool = True
    kmer_seeds: int = option(4, low=0, high=64, integer=True)
    known_motifs: str = "jaspar"
    learning_curve: str = option("auto", choices=("auto", "on", "off"))

    def check(self) -> None:
        from biolens.explain.known_motifs import check_choice

        check_choice(self.known_motifs)
        if self.genome and not Path(self.genome).is_file():
            raise InputError(f"--genome {self.genome}: no such file; give the genome's FASTA (e.g. hg38.fa).")
        if self.length and self.length < 8:
            raise InputError(f"Invalid value for --length. Received: {self.length}. Expected 8 to 1,000,000 bases "
                             "(0 = the longest sequence).")

    def auto_batch_size(self, n_train: int) -> int:
        """One-hot sequences are small: 16 for small sets (enough steps per epoch; measured steadier than 32
        over seeds on 300 training sequences), then 32 and 64."""
        if self.batch_size:
            return self.batch_size
        return 16 if n_train < 1000 else 32 if n_train < 5000 else 64

    def auto_learning_rate(self, batch_size: int) -> float:
        """The given rate, else 0.003 at every batch size (what the sequence defaults were measured with,
        docs/sequences.md)."""
        return self.learning_rate or 3e-3


@dataclass
class ClusterConfig(TaskConfig):
    """Unsupervised learning (`biolens cluster DATA`).

    Options:
        data: a table, h5ad, 10x matrix or image folder, stored as an absolute path.
        compare_with: a known label (column, obs column, or 'folder' for images): only scored, never used.
        method: leiden, kmeans or hdbscan.
        resolution: Leiden resolution; 0 = chosen by stability.
        k: k-means clusters; 0 = chosen by stability.
        embedding: which embedding clusters.csv comes from: deep (tables: the autoencoder; images: the
            self-supervised encoder), autoencoder (images: the convolutional autoencoder) or pca.
        init_from: images: a `biolens pretrain` run (or earlier image run) whose encoder embeds the images instead
            of one trained in this run.
        latent: embedding dimensions; 0 = 16 for tables, 32 for images.
        epochs: epochs of the autoencoder (and, for images, of the self-supervised encoder); 0 = chosen from the
            data size (the autoencoder also stops early on held-out samples).
        transpose: tables: True = rows are features; None = detected.
        layer: h5ad: a layer name or 'raw' (default .X).
        data_type: auto, counts or continuous.
        image_size: images: 0 = chosen from the data.
        stack: images: what a multi-page TIFF's pages are (refuse, max, mean, first or channels), as for train.
        n_neighbors: neighbours of the kNN graph.
        seed: random seed.
    """
    data: str = ""
    compare_with: str | None = None
    method: str = option("leiden", choices=("leiden", "kmeans", "hdbscan"))
    resolution: float = option(0.0, low=0, high=50)
    k: int = option(0, low=0, high=200, integer=True)
    embedding: str = option("deep", choices=("deep", "autoencoder", "pca"))
    init_from: str = ""
    latent: int = option(0, low=0, high=512, integer=True)
    epochs: int = option(0, low=0, high=10_000, integer=True)
    transpose: bool | None = None
    layer: str | None = None
    data_type: str = option("auto", choices=("auto", "counts", "continuous"))
    image_size: int = option(0, low=0, high=512, integer=True)
    n_neighbors: int = option(15, low=2, high=200, integer=True)
    seed: int = option(0, low=0, high=2**31 - 1, integer=True)
    stack: str = option("refuse", choices=STACK_CHOICES)

    def check(self) -> None:
        if self.data and not Path(self.data).exists():
            raise InputError(f"{self.data}: no such file or folder. Give a table, an h5ad file, a 10x matrix or a "
                             "folder of images.")
        if self.k == 1:
            raise InputError("Invalid value for --k. Received: 1. Expected k >= 2 (0 = chosen by stability).")
        if self.k and self.method != "kmeans":  # silently ignored before: a biologist asking for 5 groups got Leiden's
            raise InputError(f"--k {self.k} sets the number of k-means clusters; add --method kmeans (with "
                             f"{self.method} the number of clusters follows "
                             + ("--resolution)." if self.method == "leiden" else "the density of the data)."))
        if self.resolution and self.method != "leiden":
            raise InputError(f"--resolution {self.resolution:g} is Leiden's; add --method leiden, or with "
                             f"{self.method} leave it out" + (" (--k sets the number of clusters)."
                                                              if self.method == "kmeans" else "."))
        if self.init_from:
            from biolens.engine.pretraining import check_init_from

            check_init_from(self.init_from)
        if self.latent and self.latent < 2:
            raise InputError(f"Invalid value for --latent. Received: {self.latent}. Expected 2 to 512 (0 = automatic).")


@dataclass
class PretrainConfig(TaskConfig):
    """Self-supervised image representation (`biolens pretrain IMAGES... --out RUN`).

    Options:
        images: folders and/or image files (labelled class folders welcome: labels are only used to score).
        image_size: model input side; 0 = chosen from the data, at most 64 px.
        stack: what a multi-page TIFF's pages are (refuse, max, mean, first or channels), as for train.
        epochs: training epochs; 0 = about 20,000 images seen in all (10 to 200 epochs).
        batch_size: images per step; 0 = up to 128 (a quarter of the images at most).
        temperature: NT-Xent temperature.
        learning_rate: peak learning rate (AdamW, warm-up then cosine decay).
        time_budget: seconds of training; 0 = no limit.
        labels: auto (class sub-folder names when the images lie in two or more), folder (require them) or none:
            only ever used to score the representation (linear probe, kNN), never to train it.
        seed: random seed.
    """
    images: list[str] = option([])
    image_size: int = option(0, low=0, high=512, integer=True)
    epochs: int = option(0, low=0, high=10_000, integer=True)
    batch_size: int = option(0, low=0, high=4096, integer=True)
    temperature: float = option(0.2, low=0.01, high=10.0)
    learning_rate: float = option(2e-3, low=1e-7, high=1.0)
    time_budget: float = option(0.0, low=0, high=30 * 24 * 3600)
    labels: str = option("auto", choices=("auto", "folder", "none"))
    seed: int = option(0, low=0, high=2**31 - 1, integer=True)
    stack: str = option("refuse", choices=STACK_CHOICES)

    def check(self) -> None:
        if self.image_size and self.image_size < 16:
            raise InputError(f"Invalid value for --image-size. Received: {self.image_size}. Expected 16 to 512 pixels "
                             "(0 = chosen from the data).")
        if self.batch_size == 1 or 0 < self.batch_size < 8:
            raise InputError(f"Invalid value for --batch-size. Received: {self.batch_size}. Expected at least 8 (the "
                             "other images of a batch are what each image is contrasted with), or 0 = automatic.")
        for path in self.images:
            if not Path(path).exists():
                raise InputError(f"{path}: no such file or folder. Give folders or files of images.")


TRAIT_TRANSFORMS = ("none", "log", "rank")  # a quantitative trait's scales (`readers.phenotypes.transform_trait`)


@dataclass
class AssociateConfig(TaskConfig):
    """Association (`biolens associate`).

    Options:
        phenotypes: the trait table (TSV/CSV), stored as an absolute path.
        trait: its trait column.
        genotypes: VCF/VCF.gz/BCF, a PLINK 1 or 2 fileset (the .bed or .pgen, a companion file, or their common
            prefix) or a BGEN (with its .sample beside it where the ids are not in the file); or
        sequences: an aligned FASTA of haplotypes (exactly one of the two).
        covariates: covariate columns.
        sample_column: the sample-id column (default: sample/id/iid, else the first).
        sample_map: TSV sequence_id -> sample for FASTA haplotypes with other names.
        structure_genotypes: a VCF, PLINK 1 or 2 fileset or BGEN of genome-wide markers of the same individuals;
            its top principal components join the covariates (against population stratification).
        structure_pcs: how many principal components of it.
        region: CHROM or CHROM:START-END (1-based, inclusive), several separated by ';': study only the
            --genotypes sites in them.
        trait_transform: the quantitative trait's scale: none (as measured), log (values above 0) or rank (rank-based
            inverse normal); interactions depend on the scale.
        min_maf: sites with a lower minor allele frequency are left out.
        folds: cross-validation folds for deep vs additive.
        permutations: null refits per test.
        candidate_pairs: pairs given explicit terms in the network.
        pairs_written: rows of interactions.tsv.
        explain_samples: individuals used for in-silico mutagenesis.
        dask: run the classical pair scans on a Dask cluster: "local" (worker processes on this machine) or a
            scheduler address (tcp://host:8786); none = in this process.
        seed: random seed.
    """
    phenotypes: str = ""
    trait: str = ""
    genotypes: str | None = None
    sequences: str | None = None
    covariates: list = option([])
    sample_column: str | None = None
    sample_map: str | None = None
    structure_genotypes: str | None = None
    structure_pcs: int = option(5, low=1, high=50, integer=True)
    region: str | None = None
    trait_transform: str = option("none", choices=list(TRAIT_TRANSFORMS))
    min_maf: float = option(0.01, low=0, high=0.49)
    folds: int = option(5, low=2, high=20, integer=True)
    permutations: int = option(20, low=1, high=100_000, integer=True)
    candidate_pairs: int = option(32, low=1, high=10_000, integer=True)
    pairs_written: int = option(1000, low=1, high=10_000_000, integer=True)
    explain_samples: int = option(512, low=16, high=1_000_000, integer=True)
    dask: str | None = None
    seed: int = option(0, low=0, high=2**31 - 1, integer=True)

    def check(self) -> None:
        if self.dask and self.dask != "local" and "://" not in self.dask:
            raise InputError(f"--dask {self.dask}: expected 'local' or a scheduler address such as tcp://host:8786.")
        if isinstance(self.covariates, str):
            self.covariates = [c.strip() for c in self.covariates.split(",") if c.strip()]
        if (self.genotypes is None) == (self.sequences is None):
            raise InputError("give exactly one of --genotypes (VCF/BCF, PLINK .bed or .pgen, BGEN) or --sequences "
                             "(aligned FASTA).")
        if not self.phenotypes or not self.trait:
            raise InputError("give --phenotypes FILE and --trait COLUMN (or --resume RUN to continue a run).")
        for name in ("genotypes", "structure_genotypes"):
            setattr(self, name, _fileset_main(getattr(self, name)))
        if self.structure_pcs != _default(type(self), "structure_pcs") and not self.structure_genotypes:
            raise InputError(f"--structure-pcs {self.structure_pcs} counts principal components of genome-wide "
                             "markers: give them with --structure-genotypes FILE (or ancestry columns with "
                             "--covariates).")
        if self.region:
            from biolens.readers.regions import Region

            if self.sequences:
                raise InputError("--region reads part of a --genotypes file; an aligned FASTA is one region already.")
            self.region = str(Region.parse(self.region))
        for name in ("genotypes", "sequences", "phenotypes", "sample_map", "structure_genotypes"):
            value = getattr(self, name)
            if value and not Path(value).is_file():
                raise InputError(f"{flag_name(name)} {value}: no such file.")


def _fileset_main(value: str | None) -> str | None:
    """A PLINK fileset named as PLINK users do (its prefix, as --bfile and --pfile take, or one of its companion
    files) is its .bed (PLINK 1) or .pgen (PLINK 2)."""
    if not value:
        return value
    path = Path(value)
    if path.suffix.lower() in (".bim", ".fam"):
        return str(path.with_suffix(".bed"))
    if path.suffix.lower() in (".pvar", ".psam") or path.name.lower().endswith(".pvar.zst"):
        return str(path.parent / (path.name.split(".pvar")[0] if ".pvar" in path.name else path.stem)) + ".pgen"
    if not path.is_file():
        for suffix in (".bed", ".pgen"):
            if Path(f"{value}{suffix}").is_file():
                return f"{value}{suffix}"
    return value


@dataclass
class DetectConfig(TaskConfig):
    """Objects in whole images (`biolens detect ANNOTATIONS`).

    Options:
        annotations: points/boxes CSV, Pascal VOC folder, COCO JSON, or a folder with images/ and masks/ or dots/.
        images: the folder the annotation's image names are relative to (default: the annotation's folder).
        kind: auto, points, boxes or masks.
        object_size: typical object diameter in pixels; 0 = measured from the annotations.
        group_column: a column of a CSV naming the plate, slide or site; no group is split across splits.
        epochs: most epochs (early stopping may end sooner); 0 = automatic: 80 when the training units hold at least
            1,000 annotated objects, else 40.
        time_budget: seconds of training; 0 = no limit.
        learning_rate: peak learning rate.
        patience: epochs without a better validation loss before stopping.
        test_fraction, val_fraction: shares of the images held out for testing and for validation.
        add_labels: a corrected objects.csv from `biolens review` on a detection run (regions.csv beside it): those
            regions train too; the split of the main annotations is unchanged.
        learning_curve: auto, on or off: retrain on parts of the training units to say whether more annotation
            would help (auto: when it adds under 10 minutes).
        networks: networks trained alike from different random seeds and averaged; 0 = automatic: 3 when the
            training units hold fewer than 300 annotated objects, else 1.
        seed: random seed.
        stack: multi-page TIFFs: refuse (default); max, mean or first (a z-stack or time series made into one
            plane); or channels (each page one channel). Predicting on the run reads new images the same way.
    """
    annotations: str = ""
    images: str | None = None
    add_labels: str = ""
    kind: str = option("auto", choices=("auto", "points", "boxes", "masks"))
    object_size: float = option(0.0, low=0, high=2000)
    group_column: str | None = None
    epochs: int = option(0, low=0, high=10_000, integer=True)
    time_budget: float = option(0.0, low=0, high=30 * 24 * 3600)
    learning_rate: float = option(2e-3, low=1e-7, high=1.0)
    patience: int = option(12, low=1, high=10_000, integer=True)
    test_fraction: float = option(0.2, low=0.05, high=0.5)
    val_fraction: float = option(0.15, low=0.05, high=0.5)
    learning_curve: str = option("auto", choices=("auto", "on", "off"))
    networks: int = option(0, low=0, high=9, integer=True)
    seed: int = option(0, low=0, high=2**31 - 1, integer=True)
    stack: str = option("refuse", choices=STACK_CHOICES)

    def check(self) -> None:
        if self.object_size and self.object_size < 2:
            raise InputError(f"Invalid value for --object-size. Received: {self.object_size}. Expected at least 2 "
                             "pixels (0 = measured from the annotations).")
