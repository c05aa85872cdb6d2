"""Predict new data with a trained run (images or sequences): calibrated probabilities and a conformal
"unsure" flag."""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from biolens import console
from biolens.errors import InputError
from biolens.readers import images as image_reader
from biolens.runs import Run, load_run, write_text
from biolens.tasks import evaluation, training

CLASSIFIERS = ("classify", "sequence_classify")


def predict(run: str | Path | Run, inputs: list[str | Path] | str | Path, out: str | Path | None = None, *,
            skip_bad: bool = False) -> pd.DataFrame:
    """Classify images (image run) or FASTA sequences (sequence run) with the model of a finished run.

    `unsure` is True when the conformal prediction set (calibrated on the run's validation data at the
    run's alpha) holds zero or several classes: then the model cannot single out one class with the
    promised coverage, and a person should look.

    Args:
        run: a finished classification run folder (or `Run`).
        inputs: images (a folder searched recursively, files, or a list of either) or FASTA file(s).
        out: CSV to write: file (or id), predicted, confidence, unsure, prob_<class>...
        skip_bad: images only: leave unreadable files out (listed with their reason in the `error` column).

    Example:
        >>> table = biolens.predict("runs/cells", "new_images/", out="preds.csv")   # doctest: +SKIP
        >>> table = biolens.predict("runs/seqclass", "new.fasta", out="preds.csv")  # doctest: +SKIP
    """
    from biolens.models.io import load_trusted

    run = run if isinstance(run, Run) else load_run(run)
    info = run.info
    if info.get("task") not in CLASSIFIERS:
        raise InputError(f"{run.path} is a '{info.get('task')}' run; predict needs a classification run (images or sequences).")
    if info.get("status") != "complete":
        raise InputError(f"{run.path} has not finished (status: {info.get('status')}); resume it with biolens train --resume {run.path}.")
    model = load_trusted(run.model_path, info.get("model_sha256"))
    paths = [Path(inputs)] if isinstance(inputs, (str, Path)) else [Path(p) for p in inputs]
    bad: list[tuple[str, str]] = []
    if info["task"] == "sequence_classify":
        from biolens.tasks.sequence_classify import encode_for_prediction

        key, (names, x, notes) = "id", encode_for_prediction(run, paths)
        for note in notes:
            console.say(f"note: {note}")
    else:
        key, (names, x, bad) = "file", _read_images(run, model, paths, skip_bad)
    metrics = run.metrics
    class_names = info["class_names"]
    probs = evaluation.softmax(training.predict_logits(model, x), metrics.get("temperature", 1.0))
    sets = evaluation.prediction_sets(probs, metrics["conformal"]["threshold"])
    table = pd.DataFrame({
        key: names,
        "predicted": [class_names[k] for k in probs.argmax(1)],
        "confidence": probs.max(1).round(4),
        "unsure": sets.sum(1) != 1,
        **{f"prob_{c}": probs[:, k].round(4) for k, c in enumerate(class_names)},
    })
    if bad:
        failed = pd.DataFrame({key: [name for name, _ in bad], "error": [why for _, why in bad]})
        table = pd.concat([table, failed], ignore_index=True)
    if out is not None:
        write_text(out, table.to_csv(index=False))
        console.say(f"{len(names)} predictions ({int(table['unsure'].eq(True).sum())} unsure) written to {out}")
    return table


def _read_images(run: Run, model, paths: list[Path], skip_bad: bool):
    found = image_reader.find_unlabelled(paths)
    with console.progress_bar(f"reading {len(found)} images", len(found)) as advance:
        loaded = image_reader.load(found, int(run.info["image_size"]), skip_bad=skip_bad, allow_duplicates=True,
                                   progress=advance)
    expected_channels = model.input_shape[-1]
    if loaded.pixels.shape[-1] != expected_channels:
        raise InputError(f"these images have {loaded.pixels.shape[-1]} channels but the model of {run.path} "
                         f"was trained on {expected_channels}.")
    return [str(f) for f in loaded.images.files], loaded.pixels, loaded.bad
