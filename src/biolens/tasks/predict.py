"""Predict new data with a finished run: dispatched through the task registry to the task's predictor.

Classifiers (images, sequences) give calibrated probabilities and a conformal "unsure" flag; detection runs give
one row per object (tasks/detect.py).
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from biolens import console
from biolens.engine import lifecycle, registry
from biolens.errors import InputError
from biolens.readers import images as image_reader
from biolens.runs import Run, guard_output_file, load_run, write_text
from biolens.engine import evaluation, training


def predict(run: str | Path | Run, inputs: list[str | Path] | str | Path, out: str | Path | None = None, *,
            force: bool = False, **options) -> pd.DataFrame:
    """Apply the model of a finished run to new data; returns the table also written to `out`.

    Args:
        run: a finished run folder (or `Run`) of a task that predicts (classify, sequence_classify, detect).
        inputs: images (a folder searched recursively, files, or a list of either) or FASTA file(s).
        out: CSV to write; an existing file is replaced only with `force`, and never one inside the run or the inputs.
        **options: the predictor's options (images: skip_bad, stack; detection: overlays).

    Example:
        >>> table = biolens.predict("runs/cells", "new_images/", out="preds.csv")   # doctest: +SKIP
    """
    run = run if isinstance(run, Run) else load_run(run)
    info = lifecycle.read_run_info(run)
    spec = registry.of_run(info)
    if spec is None or not spec.predictor:
        predicting = [s.name for s in registry.TASKS.values() if s.predictor]
        raise InputError(f"{run.path} is a '{info.get('task')}' run; predict needs a run of: {', '.join(predicting)}.")
    if info.get("status") != "complete":
        raise InputError(f"{run.path} has not finished (status: {info.get('status')}); resume it with --resume {run.path}.")
    if not run.model_path.exists() or not (run.path / "metrics.json").exists():
        raise InputError(f"{run.path} is missing model.keras or metrics.json; the run folder is incomplete. Train again.")
    paths = [Path(inputs)] if isinstance(inputs, (str, Path)) else [Path(p) for p in inputs]
    if out is not None:
        guard_output_file(out, protected=[run.path, *paths], force=force)
    return spec.function("predictor")(run, info, paths, out, force=force, **options)


def predict_classes(run: Run, info: dict, paths: list[Path], out, *, skip_bad: bool = False,
                    stack: str | None = None, force: bool = False, genome: str | Path | None = None) -> pd.DataFrame:
    """Classify images (image run) or FASTA sequences (sequence run).

    `unsure` is True when the conformal prediction set (calibrated on the run's validation data at the run's alpha)
    holds zero or several classes: then the model cannot single out one class with the promised coverage. A model
    at chance level on its test set (metrics `at_chance`) marks every prediction unsure."""
    from biolens.models.io import load_trusted

    model = load_trusted(run.model_path, info.get("model_sha256"))
    bad: list[tuple[str, str]] = []
    if info["task"] == "sequence_classify":
        from biolens.tasks.sequence_classify import encode_for_prediction

        key, (names, x, notes, sequences) = "id", encode_for_prediction(run, paths, genome)
        for note in notes:
            console.say(f"note: {note}")
    else:
        stack = stack or info.get("config", {}).get("stack", "refuse")
        key, (names, x, bad) = "file", _read_images(run, model, paths, skip_bad, stack)
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
    if metrics.get("at_chance"):  # a guessing model's labels are not predictions: every one needs a person
        table["unsure"] = True
        console.say("warning: this model was not clearly better than guessing on its test set (its report says "
                    "why); every prediction is marked unsure.")
    if bad:
        failed = pd.DataFrame({key: [name for name, _ in bad], "error": [why for _, why in bad]})
        table = pd.concat([table, failed], ignore_index=True)
        console.say(f"{len(bad)} file(s) could not be predicted; each is listed with its reason in the 'error' column"
                    f" (first: {bad[0][0]}: {bad[0][1]})")
    if out is not None:
        write_text(out, table.to_csv(index=False))
        console.say(f"{len(names)} predictions ({int(table['unsure'].eq(True).sum())} unsure) written to {out}")
        if info["task"] == "sequence_classify":
            from biolens.tasks.sequence_classify import write_new_sites

            sites = write_new_sites(run, model, x, names, sequences, Path(out))
            if sites is not None:
                console.say(f"where the run's learned motifs sit in these sequences: {sites}")
    return table


def _read_images(run: Run, model, paths: list[Path], skip_bad: bool, stack: str | None = None):
    found = image_reader.find_unlabelled(paths)
    stack = stack or run.info.get("config", {}).get("stack", "refuse")
    with console.progress_bar(f"reading {len(found)} images", len(found)) as advance:
        loaded = image_reader.load(found, int(run.info["image_size"]), skip_bad=skip_bad, allow_duplicates=True,
                                   progress=advance, stack=stack)
    expected_channels = model.input_shape[-1]
    if loaded.pixels.shape[-1] != expected_channels:
        raise InputError(f"these images have {loaded.pixels.shape[-1]} channels but the model of {run.path} "
                         f"was trained on {expected_channels}.")
    return [str(f) for f in loaded.images.files], loaded.pixels, loaded.bad
