"""biolens: deep learning for biologists who do not program.

The Python API is the same engine the CLI and the web app call:

    import biolens
    run = biolens.train("cells/", out="runs/cells")          # labelled images -> Run
    table = biolens.predict(run, "new_images/", out="preds.csv")
    run = biolens.train("seqs.fasta", out="runs/seq", labels="labels.tsv")   # labelled DNA sequences -> Run
    run = biolens.load_run("runs/cells"); run.metrics
    run = biolens.associate("traits.tsv", "status", out="runs/assoc", genotypes="cohort.vcf.gz")
    table = biolens.associate_regions("traits.tsv", "status", "runs/genes", genotypes="genome.vcf.gz", regions="genes.bed")
    run = biolens.cluster("cells.h5ad", out="runs/clu", compare_with="cell_type")
    table = biolens.review(run, "unlabelled/", n=50)            # images to label next -> review.csv
    run = biolens.pretrain(["cells/", "unlabelled/"], out="runs/pre")   # self-supervised image representation
"""
import os as _os
import warnings as _warnings

_os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # keep TensorFlow's C++ start-up chatter off a biologist's screen
_warnings.filterwarnings("ignore", message=".*`shuffle=True` was passed.*")

from biolens.errors import InputError  # noqa: E402
from biolens.runs import Run, load_run  # noqa: E402

__version__ = "0.1.0"
__all__ = ["InputError", "Run", "load_run", "train", "predict", "review", "report", "associate", "associate_regions",
           "cluster", "detect", "export", "pretrain", "add_learning_curve"]


def _default_out(task: str, data) -> str:
    """The run folder the CLI and the API choose alike when none is given: runs/<task>_<data name>."""
    from pathlib import Path

    if isinstance(data, (list, tuple)):  # several class files: named after the first
        data = data[0] if data else None
    name = Path(str(data)).name.split(".")[0] if data is not None else "run"
    return str(Path("runs") / f"{task}_{name}")


def train(data=None, out=None, *, resume=None, labels=None, **options) -> Run:
    """Train a classifier: labelled images (folder of class folders or manifest CSV), or DNA sequences (FASTA)
    with `labels` (a table with columns id and label), a folder of FASTA files, one per class (or a list of such
    files), or one table with a sequence column and a label column. `resume` continues an interrupted run of either kind.

    See `biolens.tasks.classify.train` and `biolens.tasks.sequence_classify.train` for the options.
    """
    from biolens.engine import lifecycle
    from biolens.readers.genome import is_bed
    from biolens.readers.sequences import are_sequences, class_files, is_fasta, sequence_table
    from biolens.tasks import classify, sequence_classify

    if resume is not None:
        task = lifecycle.read_run_info(load_run(resume)).get("task")
        if task not in ("classify", "sequence_classify"):
            raise InputError(f"{resume} is a '{task}' run; train --resume continues image or sequence classification runs.")
        return (sequence_classify if task == "sequence_classify" else classify).train(resume=resume)
    if isinstance(data, (list, tuple)):  # the CLI's paths: one, or several class files
        data = [str(p) for p in data] if len(data) > 1 else (str(data[0]) if data else None)
    if data is None:
        raise InputError("Give the data to train on: a folder of class sub-folders, a manifest CSV, or a FASTA file "
                         "with --labels.")
    if isinstance(data, list):  # several files: one FASTA (or, with a genome, one BED) file per class
        return sequence_classify.train(data, out or _default_out("sequences", data), labels=labels, **options)
    if are_sequences(data, labels, options.get("genome")):
        if labels is None and is_fasta(data):
            raise InputError(f"{data} is a FASTA file: give --labels TABLE with the columns id and label (or a folder "
                             "with one FASTA file per class).")
        if (labels is not None and not options.get("genome") and not is_fasta(data) and not is_bed(data)
                and class_files(data) is None and sequence_table(data) is None):
            raise InputError(f"--labels is for sequence classification, but {data} is not a FASTA file. Images are "
                             "labelled by their class folders or a manifest CSV.")
        return sequence_classify.train(data, out or _default_out("sequences", data), labels=labels, **options)
    return classify.train(data, out or _default_out("classify", data), **options)


def detect(annotations=None, out=None, *, resume=None, **options) -> Run:
    """Find, count and outline objects in whole images; see `biolens.tasks.detect.detect`."""
    from biolens.tasks.detect import detect as _detect

    return _detect(annotations, out or (None if resume else _default_out("detect", annotations)), resume=resume,
                   **options)


def add_learning_curve(run) -> Run:
    """Is my data enough? The learning curve added to a finished image classification or detection run (a second
    step after a quick first run); see `biolens.engine.lifecycle.add_learning_curve`."""
    from biolens.engine.lifecycle import add_learning_curve as _add

    return _add(run)


def predict(run, inputs, out=None, **options):
    """Predict images with a finished run; see `biolens.tasks.predict.predict`."""
    from biolens.tasks.predict import predict as _predict

    return _predict(run, inputs, out, **options)


def export(run, out, *, format="savedmodel", force=False):  # noqa: A002
    """Export an image classifier as savedmodel, tflite or onnx (see biolens.tasks.export)."""
    from biolens.tasks.export import export as _export

    return _export(run, out, format=format, force=force)


def review(run, unlabelled, out=None, n=50):
    """Unlabelled images worth labelling next (uncertain and diverse); see `biolens.tasks.review.review`."""
    from biolens.tasks.review import review as _review

    return _review(run, unlabelled, out, n=n)


def associate(phenotypes=None, trait=None, out=None, *, resume=None, **options) -> Run:
    """Variant sites and pairs driving a trait; see `biolens.tasks.associate.associate`."""
    from biolens.tasks.associate import associate as _associate

    return _associate(phenotypes, trait, out or (None if resume else _default_out("associate", trait)), resume=resume,
                      **options)


def associate_regions(phenotypes, trait, out, *, genotypes, regions, **options):
    """Each region of a BED file its own association run (OUT/<name>/) and OUT/regions.tsv reading them side by
    side; returns the table's path. See `biolens.tasks.associate_regions`."""
    from biolens.tasks.associate_regions import associate_regions as _associate_regions

    return _associate_regions(phenotypes, trait, out, genotypes=genotypes, regions=regions, **options)


def cluster(data=None, out=None, *, resume=None, **options) -> Run:
    """Embed, cluster and explain unlabelled tables or images; see `biolens.tasks.cluster.cluster`."""
    from biolens.tasks.cluster import cluster as _cluster

    return _cluster(data, out or (None if resume else _default_out("cluster", data)), resume=resume, **options)


def pretrain(images=None, out=None, *, resume=None, **options) -> Run:
    """Learn an image representation from the user's own images, without labels; see
    `biolens.tasks.pretrain.pretrain`."""
    from biolens.tasks.pretrain import pretrain as _pretrain

    first = images[0] if isinstance(images, (list, tuple)) and images else images
    return _pretrain(images, out or (None if resume else _default_out("pretrain", first)), resume=resume, **options)


def report(run) -> "Path":  # noqa: F821
    """(Re)write the HTML report of a run folder and return its path."""
    from biolens.report.html import write_report

    return write_report(run if isinstance(run, Run) else load_run(run))
