"""Predict new images with a trained run: calibrated probabilities and a conformal "unsure" flag."""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from biolens import console
from biolens.errors import InputError
from biolens.readers import images as image_reader
from biolens.runs import Run, load_run, write_text
from biolens.tasks import evaluation, training


def predict(run: str | Path | Run, inputs: list[str | Path] | str | Path, out: str | Path | None = None, *,
            skip_bad: bool = False) -> pd.DataFrame:
    """Classify images with the model of a finished run.

    `unsure` is True when the conformal prediction set (calibrated on the run's validation images at
    the run's alpha) holds zero or several classes: then the model cannot single out one class with the
    promised coverage, and a person should look.

    Args:
        run: a finished classification run folder (or `Run`).
        inputs: a folder (searched recursively), a file, or a list of either.
        out: CSV to write (columns file, predicted, confidence, unsure, prob_<class>...).
        skip_bad: leave unreadable files out (listed with their reason in the `error` column) instead of stopping.

    Example:
        >>> table = biolens.predict("runs/cells", "new_images/", out="preds.csv")   # doctest: +SKIP
    """
    from biolens.models.io import load_trusted

    run = run if isinstance(run, Run) else load_run(run)
    info = run.info
    if info.get("task") != "classify":
        raise InputError(f"{run.path} is a '{info.get('task')}' run; predict needs a classification run.")
    if info.get("status") != "complete":
        raise InputError(f"{run.path} has not finished (status: {info.get('status')}); resume it with biolens train --resume {run.path}.")
    model = load_trusted(run.model_path, info.get("model_sha256"))
    metrics = run.metrics
    class_names = info["class_names"]
    size = int(info["image_size"])

    found = image_reader.find_unlabelled([inputs] if isinstance(inputs, (str, Path)) else list(inputs))
    with console.progress_bar(f"reading {len(found)} images", len(found)) as advance:
        loaded = image_reader.load(found, size, skip_bad=skip_bad, allow_duplicates=True, progress=advance)
    expected_channels = model.input_shape[-1]
    if loaded.pixels.shape[-1] != expected_channels:
        raise InputError(f"these images have {loaded.pixels.shape[-1]} channels but the model of {run.path} "
                         f"was trained on {expected_channels}.")
    probs = evaluation.softmax(training.predict_logits(model, loaded.pixels), metrics.get("temperature", 1.0))
    sets = evaluation.prediction_sets(probs, metrics["conformal"]["threshold"])
    table = pd.DataFrame({
        "file": [str(f) for f in loaded.images.files],
        "predicted": [class_names[k] for k in probs.argmax(1)],
        "confidence": probs.max(1).round(4),
        "unsure": sets.sum(1) != 1,
        **{f"prob_{c}": probs[:, k].round(4) for k, c in enumerate(class_names)},
    })
    if loaded.bad:
        failed = pd.DataFrame({"file": [name for name, _ in loaded.bad], "error": [why for _, why in loaded.bad]})
        table = pd.concat([table, failed], ignore_index=True)
    if out is not None:
        write_text(out, table.to_csv(index=False))
        console.say(f"{len(loaded.images)} predictions ({int(table['unsure'].eq(True).sum())} unsure) written to {out}")
    return table
