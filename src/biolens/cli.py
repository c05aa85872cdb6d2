"""The `biolens` command: a thin face over the engine (tasks, run folders, reports); no analysis here."""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import List, Optional

import typer

from biolens.errors import InputError

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Deep learning for biologists: train, predict, report. Every command has --help with an example.")


def _print_version(value: bool) -> None:
    if value:
        from biolens import __version__

        typer.echo(f"biolens {__version__}")
        raise typer.Exit()


@app.callback()
def _options_of_every_command(
    version: bool = typer.Option(False, "--version", callback=_print_version, is_eager=True,
                                 help="Print biolens's version (for a bug report or a methods section) and stop."),
) -> None:
    """Options before the command name (`biolens --version`)."""


def _given(**values) -> dict:
    """Only the options the user gave: every default lives in the config classes (biolens/config.py)."""
    return {k: v for k, v in values.items() if v is not None}


@app.command()
def train(
    data: Optional[List[Path]] = typer.Argument(None, help="Images: a folder with one sub-folder per class, or a manifest CSV (path,label[,group]). Sequences: a FASTA file with --labels, a folder with one FASTA file per class (GATA1.fa, TAL1.fa) or those files themselves, a table with a sequence column and a label column, or BED/narrowPeak files with --genome."),
    out: Optional[Path] = typer.Option(None, "--out", help="Run folder to create (default runs/classify_<data name>)."),
    labels: Optional[Path] = typer.Option(None, "--labels", help="Sequences: TSV/CSV with columns id (FASTA record id) and label."),
    resume: Optional[Path] = typer.Option(None, "--resume", help="Continue an interrupted run folder."),
    group_column: Optional[str] = typer.Option(None, "--group-column", help="Manifest or labels column naming the patient, plate, source image or gene family; no group is split across train/validation/test."),
    backbone: Optional[str] = typer.Option(None, "--backbone", help="Images: 'compact' (default; trains from scratch, fast on CPU) or a keras.applications name: EfficientNetB0, MobileNetV3Small, ResNet50, ..."),
    weights: Optional[str] = typer.Option(None, "--weights", help="Images: backbone weights: imagenet (default), none, or a weights file."),
    epochs: Optional[int] = typer.Option(None, "--epochs", help="Maximum epochs (default 30; early stopping may end sooner)."),
    patience: Optional[int] = typer.Option(None, "--patience", help="Stop after this many epochs without a better validation score (default 8)."),
    time_budget: Optional[float] = typer.Option(None, "--time-budget", help="Stop training after this many seconds (default: no limit)."),
    image_size: Optional[int] = typer.Option(None, "--image-size", help="Images: model input side in pixels (default: chosen from the data)."),
    stack: Optional[str] = typer.Option(None, "--stack", help="Images: multi-page TIFFs: refuse (default); max, mean or first (z-stack or time series -> one plane); channels (a page per channel)."),
    length: Optional[int] = typer.Option(None, "--length", help="Sequences: bases the model reads (default: the longest, or the 99th percentile of the lengths when the longest is over twice it); longer ones keep their centre."),
    filters: Optional[int] = typer.Option(None, "--filters", help="Sequences: first-layer filters, i.e. candidate motifs (default 64)."),
    filter_width: Optional[int] = typer.Option(None, "--filter-width", help="Sequences: motif window in bases (default 15)."),
    single_strand: bool = typer.Option(False, "--single-strand", help="Sequences: read only the given strand (RNA, mRNA, strand-specific data); default both."),
    genome: Optional[Path] = typer.Option(None, "--genome", help="Sequences: the genome's FASTA (or UCSC .2bit), for peaks given as BED/narrowPeak (one file with --labels, or a folder with one per class): their sequences are cut from it (a narrowPeak centred on its summit)."),
    known_motifs: Optional[str] = typer.Option(None, "--known-motifs", help="Sequences: known motifs that name the learned ones: jaspar (JASPAR CORE, all taxa; default), jaspar-vertebrates, jaspar-plants, jaspar-insects, jaspar-fungi, jaspar-nematodes, jaspar-urochordates, a MEME file, or none."),
    kmer_seeds: Optional[int] = typer.Option(None, "--kmer-seeds", help="Sequences: words per class, enriched in its training sequences, that first-layer filters start from (default 4; 0 = random filters only)."),
    batch_size: Optional[int] = typer.Option(None, "--batch-size", help="Examples per step (default: chosen by training-set size)."),
    learning_rate: Optional[float] = typer.Option(None, "--learning-rate", help="Peak learning rate (AdamW, cosine decay; default for images 0.003 x batch size / 32, for sequences 0.003)."),
    min_per_class: Optional[int] = typer.Option(None, "--min-per-class", help="Refuse classes with fewer usable examples than this (default 10)."),
    skip_bad: bool = typer.Option(False, "--skip-bad", help="Images: leave unreadable or duplicated files out (listed in skipped.csv) instead of stopping."),
    no_augment: bool = typer.Option(False, "--no-augment", help="Images: turn off flips, rotations and colour jitter."),
    add_labels: Optional[Path] = typer.Option(None, "--add-labels", help="Images: a review.csv (from biolens review) with the 'label' column filled in; those images are added to training, the test set stays the same."),
    init_from: Optional[Path] = typer.Option(None, "--init-from", help="Images: start from the encoder of an earlier run (a `biolens pretrain` run, or an image classification run of another project)."),
    pretrain: Optional[str] = typer.Option(None, "--pretrain", help="Images: on: first learn the encoder without labels from the training and --unlabelled images; off; auto (default) does not pretrain (measured to add nothing over training from scratch) but says when on is worth a try."),
    unlabelled: Optional[Path] = typer.Option(None, "--unlabelled", help="Images: a folder of unlabelled images for --pretrain to learn from too."),
    learning_curve: Optional[bool] = typer.Option(None, "--learning-curve/--no-learning-curve", help="Retrain on 1/8, 1/4 and 1/2 of the training images or sequences to predict what more data would give (default: when it adds under 10 minutes)."),
    seed: Optional[int] = typer.Option(None, "--seed", help="Random seed (default 0): the same seed gives the same result on the same machine."),
    workers: Optional[str] = typer.Option(None, "--workers", help="Several machines: every worker as host:port, comma-separated, the same list on each (sets TF_CONFIG; see docs/scaling.md)."),
    worker_index: int = typer.Option(0, "--worker-index", help="With --workers: this machine's position in the list (0 = the chief, which writes the run folder)."),
):
    """Train a classifier on labelled images or DNA sequences and test it on held-out data.

    Examples: biolens train cells/ --out runs/cells --epochs 20
              biolens train promoters.fasta --labels labels.tsv --out runs/seqclass
              biolens train peaks/ --out runs/peaks      (peaks/GATA1.fa, peaks/TAL1.fa: one FASTA per class)
              biolens train GATA1.fa TAL1.fa --out runs/peaks   (the same, the files named one by one)
              biolens train peaks/ --genome hg38.fa --out runs/peaks   (peaks/GATA1.narrowPeak, peaks/TAL1.narrowPeak)
              biolens train cells/ --out /shared/runs/cells --workers node1:23456,node2:23456 --worker-index 0
    """
    import biolens
    from biolens.readers.sequences import are_sequences
    from biolens.runs import load_run
    from biolens.engine import distributed

    data = (data[0] if len(data) == 1 else data) if data else None  # several paths: one class file each
    if data is not None and out is None:
        out = Path(biolens._default_out("sequences" if are_sequences(data, labels, genome) else "classify", data))
    if workers:  # several machines: --workers/--worker-index, or TF_CONFIG set by a scheduler
        distributed.configure(workers, worker_index, chief_run=resume or out or Path("."))
    elif distributed.cluster() is not None:
        os.environ.setdefault(distributed.CHIEF_RUN_ENV, str(Path(resume or out or ".").resolve()))
    if not distributed.is_chief():
        if resume is not None:  # restart in scratch with the chief's settings; its last checkpoint is loaded
            config = dict(load_run(resume).info["config"])
            biolens.train(config.pop("data"), out=distributed.output_folder(resume), **config)
            return
        if data is None:
            raise InputError("give the data (or --resume RUN) on every worker.")
        out = distributed.output_folder(out)
    if resume is not None:
        biolens.train(resume=resume)
        return
    if data is None:
        raise InputError("Give the data to train on (a folder of class sub-folders, a manifest CSV, or a FASTA file "
                         "with --labels), or --resume RUN.")
    shared = _given(group_column=group_column, epochs=epochs, patience=patience, time_budget=time_budget,
                    batch_size=batch_size, learning_rate=learning_rate, min_per_class=min_per_class, seed=seed,
                    learning_curve=None if learning_curve is None else ("on" if learning_curve else "off"))
    image_only = _given(backbone=backbone, weights=weights, image_size=image_size, stack=stack,
                        skip_bad=skip_bad or None, augment=False if no_augment else None,
                        add_labels=str(add_labels.resolve()) if add_labels else None,
                        init_from=str(init_from.resolve()) if init_from else None, pretrain=pretrain,
                        unlabelled=str(unlabelled.resolve()) if unlabelled else None)
    sequence_only = _given(length=length, filters=filters, filter_width=filter_width, kmer_seeds=kmer_seeds,
                           known_motifs=known_motifs, genome=str(genome.resolve()) if genome else None,
                           both_strands=False if single_strand else None)
    if are_sequences(data, labels, genome):
        if image_only:
            raise InputError(f"{', '.join(_flags(image_only))} applies to images, not to sequences.")
        biolens.train(data, out, labels=labels, **sequence_only, **shared)
        return
    if sequence_only:
        raise InputError(f"{', '.join(_flags(sequence_only))} applies to sequences (FASTA with --labels), not to images.")
    biolens.train(data, out, **image_only, **shared)


def _flags(options: dict) -> list[str]:
    names = {"augment": "--no-augment", "both_strands": "--single-strand"}
    return [names.get(k, "--" + k.replace("_", "-")) for k in options]


@app.command()
def detect(
    annotations: Optional[Path] = typer.Argument(None, help="Points or boxes CSV/TSV (image,x,y[,label] or image,xmin,ymin,xmax,ymax[,label]), a folder of images with Pascal VOC XML, a COCO JSON, or a folder with images/ and masks/ (or dots/)."),
    out: Optional[Path] = typer.Option(None, "--out", help="Run folder to create (default runs/detect_<annotations name>)."),
    images: Optional[Path] = typer.Option(None, "--images", help="Folder the annotation's image names are relative to (default: the annotation's folder)."),
    kind: Optional[str] = typer.Option(None, "--kind", help="auto (default), points, boxes or masks."),
    object_size: Optional[float] = typer.Option(None, "--object-size", help="Typical object diameter in pixels (default: measured from the annotations)."),
    group_column: Optional[str] = typer.Option(None, "--group-column", help="CSV column naming the plate, slide or site; no group is split across train/validation/test."),
    epochs: Optional[int] = typer.Option(None, "--epochs", help="Maximum epochs (default: 80 with 1,000 or more annotated training objects, else 40; early stopping may end sooner)."),
    time_budget: Optional[float] = typer.Option(None, "--time-budget", help="Stop training after this many seconds (default: no limit)."),
    seed: Optional[int] = typer.Option(None, "--seed", help="Random seed (default 0)."),
    add_labels: Optional[Path] = typer.Option(None, "--add-labels", help="A corrected objects.csv from `biolens review` on a detection run: its regions are added to training; the test images stay the same."),
    learning_curve: Optional[bool] = typer.Option(None, "--learning-curve/--no-learning-curve", help="Retrain on a quarter and a half of the training images (or regions) to predict what more annotation would give (default: when it adds under 10 minutes)."),
    networks: Optional[int] = typer.Option(None, "--networks", help="Networks trained from different random starts and averaged (default: 3 with fewer than 300 annotated training objects, else 1)."),
    stack: Optional[str] = typer.Option(None, "--stack", help="Multi-page TIFFs: refuse (default); max, mean or first (z-stack or time series -> one plane); channels (a page per channel)."),
    resume: Optional[Path] = typer.Option(None, "--resume", help="Continue an interrupted detection run folder."),
):
    """Find, count and outline objects (colonies, cells, plants, trees) in whole images.

    Examples: biolens detect colonies.csv --images plates/ --out runs/colonies
              biolens detect annotations.json --kind boxes --out runs/cells --epochs 40
              biolens predict runs/colonies new_plates/ --out objects.csv --overlays overlays/
    """
    import biolens

    if resume is None and annotations is None:
        raise InputError("give the annotations (CSV, VOC folder, COCO JSON or images/ + masks/ folder), or --resume RUN.")
    run = biolens.detect(annotations, out, resume=resume, **_given(
        images=str(images.resolve()) if images else None, kind=kind, object_size=object_size,
        group_column=group_column, epochs=epochs, time_budget=time_budget, seed=seed, networks=networks, stack=stack,
        add_labels=str(add_labels.resolve()) if add_labels else None,
        learning_curve=None if learning_curve is None else ("on" if learning_curve else "off")))
    typer.echo(f"report: {run.report_path}")


@app.command()
def predict(
    run: Path = typer.Argument(..., help="A finished run folder: image or sequence classification, or detection."),
    inputs: list[Path] = typer.Argument(..., help="Images (a folder, files, or both); for a sequence run FASTA file(s), tables with a sequence column, or BED/narrowPeak files (cut from --genome)."),
    out: Path = typer.Option(Path("predictions.csv"), "--out", help="CSV to write (detection: objects.csv, with counts.csv beside it)."),
    skip_bad: bool = typer.Option(False, "--skip-bad", help="Images: list unreadable files in the CSV instead of stopping."),
    stack: Optional[str] = typer.Option(None, "--stack", help="Images: multi-page TIFFs: refuse, max, mean, first or channels (default: as in training)."),
    overlays: Optional[Path] = typer.Option(None, "--overlays", help="Detection: a folder to draw the objects found on each image into."),
    genome: Optional[Path] = typer.Option(None, "--genome", help="Sequences: the genome's FASTA (or .2bit) for BED/narrowPeak inputs (default: the one the run was trained with)."),
    force: bool = typer.Option(False, "--force", help="Replace --out (and overlays) if they exist already."),
):
    """Predict new images or sequences with a finished run; 'unsure' marks the ones a person should check.

    Examples: biolens predict runs/cells new_images/ --out preds.csv
              biolens predict runs/seqclass new.fasta --out preds.csv
              biolens predict runs/colonies plates/ --out objects.csv --overlays overlays/
    """
    from biolens.engine import lifecycle
    from biolens.runs import load_run
    from biolens.tasks.predict import predict as run_predict

    from biolens.config import STACK_CHOICES

    if stack is not None and stack not in STACK_CHOICES:
        raise InputError(f"Invalid value for --stack. Received: {stack!r}. Expected one of: {', '.join(STACK_CHOICES)}.")
    task = lifecycle.read_run_info(load_run(run)).get("task")
    options = _given(stack=stack) if task in ("classify", "detect") else {}
    if task in ("classify", "detect"):
        options["skip_bad"] = skip_bad
    if overlays is not None:
        if task != "detect":
            raise InputError(f"--overlays draws objects of a detection run; {run} is a '{task}' run.")
        options["overlays"] = overlays
    if genome is not None:
        if task != "sequence_classify":
            raise InputError(f"--genome cuts sequences for a sequence classification run; {run} is a '{task}' run.")
        options["genome"] = genome
    run_predict(run, inputs, out, force=force, **options)
    typer.echo(f"predictions: {out}")


@app.command()
def review(
    run: Path = typer.Argument(..., help="A finished image classification or detection run folder."),
    unlabelled: Path = typer.Argument(..., help="A folder of unlabelled images (searched recursively)."),
    n: int = typer.Option(50, "--n", help="How many images (detection: image regions) to pick for labelling."),
    out: Optional[Path] = typer.Option(None, "--out", help="Folder for review.csv and review.html (default RUN/review)."),
    force: bool = typer.Option(False, "--force", help="Replace an existing review.csv (its filled-in labels are lost)."),
):
    """Pick the unlabelled images whose labels would help most (uncertain and diverse) for a person to label.

    Example: biolens review runs/cells unlabelled/ --n 50
             (fill in the 'label' column of review.csv, then: biolens train cells/ --add-labels runs/cells/review/review.csv --out runs/cells2)
             biolens review runs/colonies new_plates/ --n 20
             (correct review/objects.csv, then: biolens detect colonies.csv --add-labels runs/colonies/review/objects.csv --out runs/colonies2)
    """
    from biolens.tasks.review import review as run_review

    run_review(run, unlabelled, out, n=n, force=force)


@app.command()
def export(
    run: Path = typer.Argument(..., help="A finished image classification run folder."),
    format: str = typer.Option("savedmodel", "--format", help="savedmodel or tfjs (a folder: TensorFlow.js graph model.json + weights), tflite or onnx (a file, or a folder to hold model.tflite/model.onnx)."),
    out: Path = typer.Option(..., "--out", help="Where to write the exported model."),
    force: bool = typer.Option(False, "--force", help="Replace an existing export at --out."),
):
    """Export a trained image classifier for phones, Fiji/QuPath or scripts: raw pixels 0-255 in, class probabilities out.

    Example: biolens export runs/cells --format tflite --out cells.tflite
    """
    import biolens

    biolens.export(run, out, format=format, force=force)


@app.command()
def report(run: Path = typer.Argument(..., help="A run folder.")):
    """(Re)write RUN/report.html from the run folder.

    Example: biolens report runs/cells
    """
    from biolens.report.html import write_report
    from biolens.runs import load_run

    typer.echo(f"report: {write_report(load_run(run))}")


@app.command("learning-curve")
def learning_curve(run: Path = typer.Argument(..., help="A finished image or sequence classification or detection run.")):
    """Is my data enough? Add the learning curve to a finished run: the model is trained again by the run's own
    rules on parts of its training data, each scored on the same test set; the report gains the curve and advice.

    Example: biolens learning-curve runs/demo
    """
    from biolens.engine.lifecycle import add_learning_curve

    add_learning_curve(run)


@app.command()
def associate(
    phenotypes: Optional[Path] = typer.Option(None, "--phenotypes", help="TSV/CSV/Excel with a sample column, the trait and any covariates (or a PLINK .fam/.psam)."),
    trait: Optional[str] = typer.Option(None, "--trait", help="Trait column: two values = binary (case/control), numbers = quantitative."),
    genotypes: Optional[Path] = typer.Option(None, "--genotypes", help="VCF, VCF.gz or BCF with one column per individual, a PLINK .bed (with its .bim and .fam) or PLINK 2 .pgen (with its .pvar and .psam; for either the prefix works too), or a BGEN (with its .sample where the ids are not in the file)."),
    sequences: Optional[Path] = typer.Option(None, "--sequences", help="Aligned FASTA: <sample>_h1/_h2 haplotypes, or one sequence per individual."),
    out: Optional[Path] = typer.Option(None, "--out", help="Run folder to create (default runs/associate_<trait>)."),
    covariates: Optional[str] = typer.Option(None, "--covariates", help="Comma-separated covariate columns, e.g. age,sex (categorical ones are one-hot coded)."),
    sample_column: Optional[str] = typer.Option(None, "--sample-column", help="Column of sample ids (default: sample/id/iid, else the first)."),
    sample_map: Optional[Path] = typer.Option(None, "--sample-map", help="TSV sequence_id -> sample for FASTA haplotypes with other names."),
    structure_genotypes: Optional[Path] = typer.Option(None, "--structure-genotypes", help="VCF, PLINK .bed or .pgen, or BGEN of genome-wide markers of the same individuals: its principal components join the covariates (against stratification)."),
    structure_pcs: Optional[int] = typer.Option(None, "--structure-pcs", help="How many principal components of --structure-genotypes (default 5)."),
    region: Optional[List[str]] = typer.Option(None, "--region", help="Study only the --genotypes sites in CHROM or CHROM:START-END (1-based, inclusive; chr2 and 2 alike), e.g. a gene's region of a whole-chromosome VCF. Repeat it (or separate with ';') for several loci, e.g. two candidate genes whose sites may act together."),
    regions: Optional[Path] = typer.Option(None, "--regions", help="A BED file of regions (chrom, start, end[, name]): each is its own run in OUT/<name>/, and OUT/regions.tsv reads them side by side. Running the command again completes an interrupted list."),
    min_maf: Optional[float] = typer.Option(None, "--min-maf", help="Leave out sites with a lower minor allele frequency (default 0.01)."),
    trait_transform: Optional[str] = typer.Option(None, "--trait-transform", help="A quantitative trait's scale: none (as measured, default), log (values above 0) or rank (rank-based inverse normal). Interactions depend on the scale: use log where effects multiply."),
    candidate_pairs: Optional[int] = typer.Option(None, "--candidate-pairs", help="Pairs per network given explicit interaction terms after screening all pairs (default 32)."),
    permutations: Optional[int] = typer.Option(None, "--permutations", help="Null refits per test (default 20; more = finer p-values)."),
    folds: Optional[int] = typer.Option(None, "--folds", help="Cross-validation folds for deep vs additive (default 5)."),
    dask: Optional[str] = typer.Option(None, "--dask", help="Run the classical pair scans on a Dask cluster: 'local' (worker processes here) or a scheduler address tcp://HOST:8786 (docs/scaling.md)."),
    resume: Optional[Path] = typer.Option(None, "--resume", help="Continue an interrupted association run folder."),
    seed: Optional[int] = typer.Option(None, "--seed", help="Random seed (default 0)."),
):
    """Find the variant sites and site pairs that drive a trait: classical tests beside a deep model.

    Example: biolens associate --genotypes cohort.vcf.gz --phenotypes traits.tsv --trait status --out runs/assoc
    """
    import biolens

    if resume is None and (phenotypes is None or trait is None):
        raise InputError("give --phenotypes FILE and --trait COLUMN (or --resume RUN to continue a run).")
    if regions is not None:
        from biolens.tasks.associate_regions import associate_regions

        if sequences is not None or resume is not None:
            raise InputError("--regions reads several regions of one --genotypes file; it takes neither --sequences "
                             "nor --resume (run the same command again to complete an interrupted list).")
        table = associate_regions(phenotypes, trait, out, genotypes=genotypes, regions=regions, **_given(
            covariates=covariates, sample_column=sample_column, sample_map=sample_map, min_maf=min_maf,
            trait_transform=trait_transform, region=";".join(region) if region else None,
            structure_genotypes=structure_genotypes, structure_pcs=structure_pcs, candidate_pairs=candidate_pairs,
            permutations=permutations, folds=folds, dask=dask, seed=seed))
        typer.echo(f"regions: {table}")
        return
    run = biolens.associate(phenotypes, trait, out, genotypes=genotypes, sequences=sequences, resume=resume, **_given(
        covariates=covariates, sample_column=sample_column, sample_map=sample_map, min_maf=min_maf,
        trait_transform=trait_transform, region=";".join(region) if region else None,
        structure_genotypes=structure_genotypes, structure_pcs=structure_pcs, candidate_pairs=candidate_pairs,
        permutations=permutations, folds=folds, dask=dask, seed=seed))
    metrics = run.metrics
    typer.echo(metrics.get("verdict", ""))
    if metrics.get("detectable_reading"):
        typer.echo(metrics["detectable_reading"])
    typer.echo(f"variants: {run.file('variants.tsv')}  interactions: {run.file('interactions.tsv')}")
    typer.echo(f"report: {run.report_path}")


@app.command()
def cluster(
    data: Optional[Path] = typer.Argument(None, help="A table (CSV/TSV/Parquet), an AnnData .h5ad, a 10x matrix (.h5 or folder with matrix.mtx), or a folder of images."),
    out: Optional[Path] = typer.Option(None, "--out", help="Run folder to create (default runs/cluster_<data name>)."),
    compare_with: Optional[str] = typer.Option(None, "--compare-with", help="A known label to score the clusters against (a table/obs column, or 'folder' for image sub-folders); never used as input."),
    method: Optional[str] = typer.Option(None, "--method", help="leiden (default; kNN graph), kmeans or hdbscan."),
    resolution: Optional[float] = typer.Option(None, "--resolution", help="Leiden resolution (default: chosen by stability)."),
    k: Optional[int] = typer.Option(None, "--k", help="k-means clusters (default: chosen by stability)."),
    embedding: Optional[str] = typer.Option(None, "--embedding", help="Which embedding to cluster: deep (default: tables the autoencoder, images the self-supervised encoder), autoencoder (images) or pca."),
    transpose: Optional[bool] = typer.Option(None, "--transpose/--no-transpose", help="Tables: rows are features (genes) / rows are samples (default: detected)."),
    layer: Optional[str] = typer.Option(None, "--layer", help="h5ad: the layer to use, or 'raw' for .raw.X (default .X)."),
    data_type: Optional[str] = typer.Option(None, "--data-type", help="auto (default), counts (raw counts: normalise, log, negative binomial) or continuous (scale, Gaussian)."),
    latent: Optional[int] = typer.Option(None, "--latent", help="Embedding dimensions (default 16 for tables, 32 for images)."),
    epochs: Optional[int] = typer.Option(None, "--epochs", help="Epochs of the autoencoder and, for images, the self-supervised encoder (default: chosen from the data size)."),
    init_from: Optional[Path] = typer.Option(None, "--init-from", help="Images: embed with the encoder of a `biolens pretrain` run (or an earlier image run) instead of learning one here."),
    stack: Optional[str] = typer.Option(None, "--stack", help="Images: multi-page TIFFs: refuse (default); max, mean or first (z-stack or time series -> one plane); channels (a page per channel)."),
    resume: Optional[Path] = typer.Option(None, "--resume", help="Continue an interrupted cluster run folder."),
    seed: Optional[int] = typer.Option(None, "--seed", help="Random seed (default 0)."),
):
    """Find groups in unlabelled data: embed, cluster, draw, and say what sets each group apart.

    Examples: biolens cluster data.h5ad --out runs/clu --seed 0
              biolens cluster data.h5ad --compare-with cell_type
              biolens cluster IMAGES/ --out runs/clu_img
    """
    import biolens

    if resume is None and data is None:
        raise InputError("give the data to cluster (a table, h5ad, 10x matrix or image folder), or --resume RUN.")
    run = biolens.cluster(data, out, resume=resume, **_given(
        compare_with=compare_with, method=method, resolution=resolution, k=k, embedding=embedding,
        transpose=transpose, layer=layer, data_type=data_type, latent=latent, epochs=epochs, seed=seed, stack=stack,
        init_from=str(init_from.resolve()) if init_from else None))
    typer.echo(f"clusters: {run.file('clusters.csv')}")


@app.command()
def pretrain(
    images: Optional[list[Path]] = typer.Argument(None, help="Folders and/or image files, labelled or not (class sub-folder names are only used to score the result)."),
    out: Optional[Path] = typer.Option(None, "--out", help="Run folder to create (default runs/pretrain_<first input name>)."),
    image_size: Optional[int] = typer.Option(None, "--image-size", help="Model input side in pixels (default: chosen from the data, at most 64)."),
    epochs: Optional[int] = typer.Option(None, "--epochs", help="Training epochs (default: about 20,000 images seen in all, 10 to 200 epochs)."),
    batch_size: Optional[int] = typer.Option(None, "--batch-size", help="Images per step (default up to 128: each image is contrasted with the others of its batch)."),
    time_budget: Optional[float] = typer.Option(None, "--time-budget", help="Stop training after this many seconds (default: no limit)."),
    labels: Optional[str] = typer.Option(None, "--labels", help="auto (default: class sub-folder names when there are two or more), folder or none; only used to score."),
    seed: Optional[int] = typer.Option(None, "--seed", help="Random seed (default 0)."),
    stack: Optional[str] = typer.Option(None, "--stack", help="Images: multi-page TIFFs: refuse (default); max, mean or first (z-stack or time series -> one plane); channels (a page per channel)."),
    resume: Optional[Path] = typer.Option(None, "--resume", help="Continue an interrupted pretrain run folder."),
):
    """Learn an image representation from your own images, without labels (self-supervised, SimCLR).

    Examples: biolens pretrain cells/ unlabelled/ --out runs/pre
              biolens train cells/ --init-from runs/pre --out runs/cells
              biolens cluster unlabelled/ --out runs/groups
    """
    import biolens

    if resume is None and not images:
        raise InputError("give the images to learn from (folders or files), or --resume RUN.")
    run = biolens.pretrain([str(p) for p in images] if images else None, out, resume=resume, **_given(
        image_size=image_size, epochs=epochs, batch_size=batch_size, time_budget=time_budget, labels=labels, seed=seed,
        stack=stack))
    typer.echo(f"encoder: {run.model_path}")


def detect_estimate_lines(facts: dict) -> list[str]:
    """`biolens doctor --estimate ANNOTATIONS --task detect` in words."""
    lines = [f"data: {facts['n_objects']} annotated objects ({facts['kind']}) in {facts['n_images']} image(s), "
             f"{facts['units']} held-out units, scale {facts['scale']}; {facts['steps_per_epoch']} steps of "
             f"{facts['batch_size']} tiles per epoch, on {facts['device']}",
             f"time per epoch: about {facts['epoch_seconds']:.1f} s; {facts['epochs']} epochs"
             + (f" for each of {facts['networks']} networks averaged (few annotated objects)"
                if facts.get("networks", 1) > 1 else "")
             + f": at most about {facts['training_minutes']:.1f} min (early stopping often ends sooner)"]
    if facts["region_split"]:
        lines.append(f"the delivered network{'s' if facts.get('networks', 1) > 1 else ''} trained again on every "
                     f"region: at most {facts['final_network_minutes']:.1f} min")
    lines.append(f"learning curve: about {facts['learning_curve_minutes']:.1f} min"
                 + ("" if facts["learning_curve_runs"] else " (not run by default: over 10 min)"))
    lines.append(f"advice: {facts['advice']}")
    return lines


@app.command()
def doctor(
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of text."),
    estimate: Optional[Path] = typer.Option(None, "--estimate", help="Labelled images (classify) or annotations (detect) to estimate a run's time for, on this machine (a short measured probe)."),
    task: str = typer.Option("classify", "--task", help="The task to estimate: classify or detect."),
    epochs: Optional[int] = typer.Option(None, "--epochs", help="Epochs of the run being estimated (default: the task's own: 30 for train, automatic for detect)."),
    images: Optional[Path] = typer.Option(None, "--images", help="detect: the folder the annotations' image names are relative to."),
    kind: str = typer.Option("auto", "--kind", help="detect: auto, points, boxes or masks, as in biolens detect."),
    object_size: float = typer.Option(0.0, "--object-size", help="detect: typical object size in pixels (0 = measured)."),
    group_column: Optional[str] = typer.Option(None, "--group-column", help="detect: the annotation column naming plates or slides."),
    image_size: int = typer.Option(0, "--image-size", help="Model input side as in biolens train (0 = chosen from the data)."),
    batch_size: int = typer.Option(0, "--batch-size", help="As in biolens train (0 = chosen by training-set size)."),
):
    """Show this machine as biolens sees it, with a measured speed figure; --estimate DATA predicts a run's cost.

    Examples: biolens doctor
              biolens doctor --estimate cells/ --task classify
              biolens doctor --estimate colonies.csv --task detect
    """
    from biolens.hardware import doctor as probe

    if estimate is not None:
        from biolens.estimate import estimate as measure

        facts = measure(estimate, task, epochs=epochs, image_size=image_size, batch_size=batch_size, images=images,
                        kind=kind, object_size=object_size, group_column=group_column)
        if as_json:
            typer.echo(json.dumps(facts, indent=2))
            return
        if task == "detect":
            typer.echo("\n".join(detect_estimate_lines(facts)))
            return
        typer.echo(f"data: {facts['n_images']} images at {facts['image_size']}x{facts['image_size']}x{facts['channels']}, "
                   f"batch {facts['batch_size']}, {facts['steps_per_epoch']} steps per epoch, on {facts['device']}")
        typer.echo(f"reading the images once: about {facts['read_seconds']:.0f} s")
        typer.echo(f"time per epoch: about {facts['epoch_seconds']:.1f} s; {facts['epochs']} epochs: at most about "
                   f"{facts['total_minutes_at_most']:.1f} min (early stopping often ends sooner)")
        where = "in memory" if facts["pixels_in_memory"] else "memory-mapped from a cache file on disk"
        typer.echo(f"memory: about {facts['memory_gb']:.1f} GB (decoded images {facts['pixels_gb']:.2f} GB, {where})")
        typer.echo(f"advice: {facts['advice']}")
        return
    facts = probe()
    if as_json:
        typer.echo(json.dumps(facts, indent=2))
        return
    typer.echo(f"CPU: {facts['cpu']} ({facts['cores']} cores), memory {facts['memory_gb']} GB")
    typer.echo(f"device: {facts['device']}")
    typer.echo(f"CUDA: {facts['cuda']}, cuDNN: {facts['cudnn']}")
    typer.echo(f"speed: {facts['matmul_gflops']} GFLOP/s (float32 matmul, measured)")
    typer.echo("versions: " + ", ".join(f"{k} {v}" for k, v in facts["versions"].items()))


@app.command()
def demo(
    out: Path = typer.Option(Path("runs/demo"), "--out", help="Run folder for the demo."),
    data: Optional[Path] = typer.Option(None, "--data", help="Labelled images (default ../shared/data/blood_cells, else the bundled examples)."),
    epochs: int = typer.Option(5, "--epochs", help="Training epochs (the demo trains on a sample of the photos to finish in minutes)."),
):
    """A full workflow on example data: train, predict, report.

    Example: biolens demo --out runs/demo
    """
    from biolens.demo import run_demo

    run_demo(out, data, epochs)


@app.command()
def serve(
    port: int = typer.Option(8765, "--port", help="Port on this machine."),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on; anything but this machine needs --allow-remote."),
    allow_remote: bool = typer.Option(False, "--allow-remote", help="Allow --host 0.0.0.0 (other machines, with the token)."),
    runs: Path = typer.Option(Path("runs"), "--runs", help="Folder of run folders the app lists and writes."),
    root: list[Path] = typer.Option([], "--root", help="A folder whose data may be named by path in the app (repeat; default: this folder and your home)."),
    no_browser: bool = typer.Option(False, "--no-browser", help="Only print the address; do not open a browser."),
    max_upload_mb: int = typer.Option(2048, "--max-upload-mb", help="Largest upload accepted, in MB."),
):
    """Start the web app on this machine: train, watch, read reports, predict and compare in a browser.

    Example: biolens serve --port 8765
    """
    from biolens.web.serve import serve as run_server

    run_server(port=port, host=host, allow_remote=allow_remote, runs_dir=runs, roots=list(root) or None,
               open_browser=not no_browser, max_upload_mb=max_upload_mb)


def main() -> None:
    """Entry point: every user error ends as one line starting with 'error:' and exit code 2, never a traceback."""
    usage_errors, aborts = _parser_exceptions()
    from biolens.hardware import import_tensorflow_quietly_when_needed

    import_tensorflow_quietly_when_needed()
    try:
        code = app(standalone_mode=False)
    except InputError as error:
        _fail(str(error))
    except usage_errors as error:
        if type(error).__name__ == "NoArgsIsHelpError":  # plain `biolens`: the help was printed
            sys.exit(0)
        context = getattr(error, "ctx", None)  # the program is named "biolens" however it was started (python -m too)
        path, program = (context.command_path, context.find_root().info_name or "") if context else ("", "")
        command = " ".join(["biolens", path[len(program):].strip()]).strip() if path.startswith(program) else "biolens"
        _fail(f"{error.format_message()} (see {command} --help)")
    except (KeyboardInterrupt, *aborts):
        typer.secho("interrupted; continue with the same command and --resume RUN", err=True)
        sys.exit(130)
    except OSError as error:  # the disk, not biolens: full, read-only, missing, name too long
        where = f"{error.filename}: " if error.filename else ""
        _fail(f"{where}{error.strerror or error}. Check the path, free space and permissions, then run the command again.")
    except Exception as error:  # a fault in biolens or a library under it, not in the input: one line, trace kept
        _internal_fault(error)
    sys.exit(code if isinstance(code, int) else 0)


def _internal_fault(error: Exception) -> None:
    """One line for the user (exit code 1: not their input), the full trace in a file they can send."""
    import tempfile
    import traceback

    from biolens import __version__

    handle, path = tempfile.mkstemp(prefix="biolens-fault-", suffix=".txt")
    with os.fdopen(handle, "w", encoding="utf-8") as trace:
        trace.write(f"biolens {__version__}\ncommand: {' '.join(sys.argv)}\n\n")
        trace.write("".join(traceback.format_exception(error)))
    message = " ".join(f"{type(error).__name__}: {error}".split())[:300]
    typer.secho(f"error: biolens stopped on an internal fault ({message}). This is not something to fix in your "
                f"data; the full trace is in {path}: please send it with the command. A run folder keeps its finished "
                "stages: the same command with --resume RUN continues from them.", err=True, fg=typer.colors.RED)
    sys.exit(1)


def _parser_exceptions() -> tuple[tuple, tuple]:
    """Command-line parsing errors and aborts, from click and from the copy of click that newer typer vendors."""
    import click

    usage, aborts = [click.exceptions.UsageError], [click.exceptions.Abort]
    try:
        from typer._click import exceptions as vendored

        usage.append(vendored.UsageError)
        aborts += [getattr(vendored, "Abort")] if hasattr(vendored, "Abort") else []
    except ImportError:
        pass
    return tuple(usage), tuple(aborts)


def _fail(message: str) -> None:
    line = " ".join(message.split())  # one line, whatever the message held
    typer.secho(f"error: {line}", err=True, fg=typer.colors.RED)
    sys.exit(2)
