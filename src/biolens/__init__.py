"""biolens: deep learning for biologists who do not program.

The Python API is the same engine the CLI and the web app call:

    import biolens
    run = biolens.train("cells/", out="runs/cells")          # labelled images -> Run
    table = biolens.predict(run, "new_images/", out="preds.csv")
    run = biolens.load_run("runs/cells"); run.metrics
    run = biolens.associate("traits.tsv", "status", out="runs/assoc", genotypes="cohort.vcf.gz")
"""
import os as _os
import warnings as _warnings

_os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # keep TensorFlow's C++ start-up chatter off a biologist's screen
_warnings.filterwarnings("ignore", message=".*`shuffle=True` was passed.*")

from biolens.errors import InputError  # noqa: E402
from biolens.runs import Run, load_run  # noqa: E402

__version__ = "0.1.0"
__all__ = ["InputError", "Run", "load_run", "train", "predict", "report", "associate"]


def train(data=None, out="runs/classify", **options) -> Run:
    """Train an image classifier; see `biolens.tasks.classify.train`."""
    from biolens.tasks.classify import train as _train

    return _train(data, out, **options)


def predict(run, inputs, out=None, **options):
    """Predict images with a finished run; see `biolens.tasks.predict.predict`."""
    from biolens.tasks.predict import predict as _predict

    return _predict(run, inputs, out, **options)


def associate(phenotypes, trait, out="runs/associate", **options) -> Run:
    """Variant sites and pairs driving a trait; see `biolens.tasks.associate.associate`."""
    from biolens.tasks.associate import associate as _associate

    return _associate(phenotypes, trait, out, **options)


def report(run) -> "Path":  # noqa: F821
    """(Re)write the HTML report of a run folder and return its path."""
    from biolens.report.html import write_report

    return write_report(run if isinstance(run, Run) else load_run(run))
