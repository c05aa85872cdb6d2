"""The `biolens` command: a thin face over the engine (tasks, run folders, reports); no analysis here."""
from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Optional

import typer

from biolens.errors import InputError

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Deep learning for biologists: train, predict, report. Every command has --help with an example.")


@app.command()
def train(
    data: Optional[Path] = typer.Argument(None, help="Folder with one sub-folder per class, or a manifest CSV (path,label[,group])."),
    out: Optional[Path] = typer.Option(None, "--out", help="Run folder to create (default runs/<data name>)."),
    resume: Optional[Path] = typer.Option(None, "--resume", help="Continue an interrupted run folder."),
    group_column: Optional[str] = typer.Option(None, "--group-column", help="Manifest column naming the patient, plate or source image; no group is split across train/validation/test."),
    backbone: str = typer.Option("compact", "--backbone", help="'compact' (trains from scratch, fast on CPU) or a keras.applications name: EfficientNetB0, MobileNetV3Small, ResNet50, ..."),
    weights: str = typer.Option("imagenet", "--weights", help="Backbone weights: imagenet, none, or a weights file."),
    epochs: int = typer.Option(30, "--epochs", help="Maximum epochs (early stopping may end sooner)."),
    patience: int = typer.Option(8, "--patience", help="Stop after this many epochs without a better validation score."),
    time_budget: float = typer.Option(0, "--time-budget", help="Stop training after this many seconds (0 = no limit)."),
    image_size: int = typer.Option(0, "--image-size", help="Model input side in pixels (0 = chosen from the data)."),
    batch_size: int = typer.Option(0, "--batch-size", help="Images per step (0 = 8, 16 or 32 by training-set size)."),
    learning_rate: float = typer.Option(3e-3, "--learning-rate", help="Peak learning rate (AdamW, cosine decay)."),
    min_per_class: int = typer.Option(10, "--min-per-class", help="Refuse classes with fewer usable images than this."),
    skip_bad: bool = typer.Option(False, "--skip-bad", help="Leave unreadable or duplicated files out (listed in skipped.csv) instead of stopping."),
    no_augment: bool = typer.Option(False, "--no-augment", help="Turn off flips, rotations and colour jitter."),
    seed: int = typer.Option(0, "--seed", help="Random seed: the same seed gives the same result on the same machine."),
):
    """Train an image classifier and test it on held-out images.

    Example: biolens train cells/ --out runs/cells --epochs 20
    """
    from biolens.tasks.classify import train as run_train

    if resume is not None:
        run_train(resume=resume)
    else:
        if data is None:
            raise InputError("Give the images to train on (a folder of class sub-folders or a manifest CSV), or --resume RUN.")
        run_train(data, out or Path("runs") / data.stem, group_column=group_column, backbone=backbone,
                        weights=weights, epochs=epochs, patience=patience, time_budget=time_budget, image_size=image_size,
                        batch_size=batch_size, learning_rate=learning_rate, min_per_class=min_per_class,
                        skip_bad=skip_bad, augment=not no_augment, seed=seed)


@app.command()
def predict(
    run: Path = typer.Argument(..., help="A finished classification run folder."),
    inputs: list[Path] = typer.Argument(..., help="Images: a folder, files, or both."),
    out: Path = typer.Option(Path("predictions.csv"), "--out", help="CSV to write."),
    skip_bad: bool = typer.Option(False, "--skip-bad", help="List unreadable files in the CSV instead of stopping."),
):
    """Predict new images; 'unsure' marks the ones a person should check.

    Example: biolens predict runs/cells new_images/ --out preds.csv
    """
    from biolens.tasks.predict import predict as run_predict

    run_predict(run, inputs, out, skip_bad=skip_bad)
    typer.echo(f"predictions: {out}")


@app.command()
def report(run: Path = typer.Argument(..., help="A run folder.")):
    """(Re)write RUN/report.html from the run folder.

    Example: biolens report runs/cells
    """
    from biolens.report.html import write_report
    from biolens.runs import load_run

    typer.echo(f"report: {write_report(load_run(run))}")


@app.command()
def associate(
    phenotypes: Optional[Path] = typer.Option(None, "--phenotypes", help="TSV/CSV with a sample column, the trait and any covariates."),
    trait: Optional[str] = typer.Option(None, "--trait", help="Trait column: two values = binary (case/control), numbers = quantitative."),
    genotypes: Optional[Path] = typer.Option(None, "--genotypes", help="VCF, VCF.gz or BCF with one column per individual."),
    sequences: Optional[Path] = typer.Option(None, "--sequences", help="Aligned FASTA: <sample>_h1/_h2 haplotypes, or one sequence per individual."),
    out: Optional[Path] = typer.Option(None, "--out", help="Run folder to create (default runs/associate_<trait>)."),
    covariates: str = typer.Option("", "--covariates", help="Comma-separated covariate columns, e.g. age,sex (categorical ones are one-hot coded)."),
    sample_column: Optional[str] = typer.Option(None, "--sample-column", help="Column of sample ids (default: sample/id/iid, else the first)."),
    sample_map: Optional[Path] = typer.Option(None, "--sample-map", help="TSV sequence_id -> sample for FASTA haplotypes with other names."),
    min_maf: float = typer.Option(0.01, "--min-maf", help="Leave out sites with a lower minor allele frequency."),
    permutations: int = typer.Option(20, "--permutations", help="Null refits per test (20 reach q < 0.05 over all pairs; more = finer p-values)."),
    folds: int = typer.Option(5, "--folds", help="Cross-validation folds for deep vs additive."),
    resume: Optional[Path] = typer.Option(None, "--resume", help="Continue an interrupted association run folder."),
    seed: int = typer.Option(0, "--seed", help="Random seed."),
):
    """Find the variant sites and site pairs that drive a trait: classical tests beside a deep model.

    Example: biolens associate --genotypes cohort.vcf.gz --phenotypes traits.tsv --trait status --out runs/assoc
    """
    from biolens.tasks.associate import associate as run_associate

    if resume is None and (phenotypes is None or trait is None):
        raise InputError("give --phenotypes FILE and --trait COLUMN (or --resume RUN to continue a run).")
    run = run_associate(phenotypes, trait, out or Path(f"runs/associate_{trait}"), genotypes=genotypes,
                        sequences=sequences, covariates=covariates, sample_column=sample_column,
                        sample_map=sample_map, resume=resume, min_maf=min_maf, permutations=permutations,
                        folds=folds, seed=seed)
    metrics = run.metrics
    typer.echo(metrics.get("verdict", ""))
    typer.echo(f"variants: {run.file('variants.tsv')}  interactions: {run.file('interactions.tsv')}")
    typer.echo(f"report: {run.report_path}")


@app.command()
def doctor(as_json: bool = typer.Option(False, "--json", help="Print JSON instead of text.")):
    """Show this machine as biolens sees it, with a measured speed figure.

    Example: biolens doctor
    """
    from biolens.hardware import doctor as probe

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
    epochs: int = typer.Option(12, "--epochs"),
):
    """A full workflow on example data: train, predict, report.

    Example: biolens demo --out runs/demo
    """
    from biolens.demo import run_demo

    run_demo(out, data, epochs)


def main() -> None:
    if len(sys.argv) > 1 and "--help" not in sys.argv:
        from biolens.hardware import import_tensorflow

        import_tensorflow()
    try:
        app()
    except InputError as error:
        typer.secho(f"error: {error}", err=True, fg=typer.colors.RED)
        sys.exit(2)
    except KeyboardInterrupt:
        typer.secho("interrupted; continue with the same command and --resume RUN", err=True)
        sys.exit(130)
