"""The human in the loop: which unlabelled images should a biologist label next?

`review(run, folder, n)` scores every image with the run's calibrated model and picks `n` by uncertainty plus
diversity: the candidates are the 4n most uncertain (entropy of the calibrated probabilities), and from them the
pick is greedy, each next image maximising uncertainty x distance (in the network's feature space) to the images
already picked. So the batch does not spend labels on twenty near-copies of one confusing image (Kirsch et al.
2019; Citovsky et al. 2021 use the same two ingredients). Writes review.csv (file, suggested_label, confidence,
uncertainty, label: empty, for the biologist) and review.html, a contact sheet to label from.
`biolens train ... --add-labels review.csv` then adds the filled-in rows to the training set only.
A detection run is reviewed by regions of images instead (tasks/review_objects.py).
"""
from __future__ import annotations

import base64
import html
import io
from pathlib import Path

import numpy as np
import pandas as pd

from biolens import console
from biolens.errors import InputError
from biolens.runs import Run, load_run, write_text
from biolens.engine import evaluation, training

CANDIDATES_PER_PICK = 4
COLUMNS = ["file", "suggested_label", "confidence", "uncertainty", "label"]


def review(run: str | Path | Run, unlabelled: str | Path, out: str | Path | None = None, *, n: int = 50,
           force: bool = False) -> pd.DataFrame:
    """Pick the `n` unlabelled images whose labels would help the model most; write review.csv and review.html.

    Example:
        >>> table = biolens.review("runs/cells", "unlabelled/", n=50)   # doctest: +SKIP
    """
    run = run if isinstance(run, Run) else load_run(run)
    task = run.info.get("task")
    if task not in ("classify", "detect"):
        raise InputError(f"{run.path} is a '{task}' run; review needs an image classification or detection run.")
    if run.info.get("status") != "complete":
        raise InputError(f"{run.path} has not finished (status: {run.info.get('status')}); finish it first.")
    if n < 1:
        raise InputError(f"Invalid value for --n. Received: {n}. Expected at least 1 image (or region) to review.")
    out = Path(out) if out else run.path / "review"
    if out.exists() and not out.is_dir():
        raise InputError(f"--out {out} is a file; give a folder for the review files.")
    sheet = out / ("objects.csv" if task == "detect" else "review.csv")
    if sheet.exists() and not force:  # a filled-in sheet is a person's work: never replaced unasked
        raise InputError(f"{sheet} exists already (perhaps with corrections in it); choose another --out or pass "
                         "--force to replace it.")
    if out.resolve().is_relative_to(Path(unlabelled).resolve()):
        raise InputError(f"--out {out} is inside {unlabelled}, which review reads; write it somewhere else.")
    if task == "detect":
        from biolens.tasks.review_objects import review_objects

        return review_objects(run, unlabelled, out, n)
    import keras

    from biolens.models.io import load_trusted
    from biolens.tasks.predict import _read_images

    model = load_trusted(run.model_path, run.info.get("model_sha256"))
    files, pixels, bad = _read_images(run, model, [Path(unlabelled)], skip_bad=True)
    for name, why in bad:
        console.say(f"skipped {name}: {why}")
    if not files:
        raise InputError(f"{unlabelled}: no readable images to review.")
    class_names = run.info["class_names"]
    probs = evaluation.softmax(training.predict_logits(model, pixels), run.metrics.get("temperature", 1.0))
    features = training.predict_logits(keras.Model(model.inputs, model.get_layer("logits").input), pixels)
    chosen = select_for_review(probs, features, n)
    entropy = _entropy(probs)
    table = pd.DataFrame({"file": [files[i] for i in chosen],
                          "suggested_label": [class_names[probs[i].argmax()] for i in chosen],
                          "confidence": probs[chosen].max(1).round(4), "uncertainty": entropy[chosen].round(4),
                          "label": ""})
    out.mkdir(parents=True, exist_ok=True)
    write_text(out / "review.csv", table.to_csv(index=False))
    write_text(out / "review.html", _contact_sheet(table, pixels[chosen], class_names, run.path))
    console.say(f"{len(table)} of {len(files)} images picked for labelling: fill in the 'label' column of "
                f"{out / 'review.csv'} (or accept suggested_label), then: biolens train DATA --add-labels "
                f"{out / 'review.csv'} --out NEW_RUN")
    return table


def _entropy(probs: np.ndarray) -> np.ndarray:
    return -(probs * np.log(np.clip(probs, 1e-12, 1.0))).sum(axis=1) / np.log(probs.shape[1])


def select_for_review(probs: np.ndarray, features: np.ndarray, n: int) -> list[int]:
    """Indices of `n` images: uncertain ones (normalised entropy), spread over the feature space."""
    uncertainty = _entropy(probs)
    n = min(n, len(probs))
    candidates = np.argsort(-uncertainty, kind="stable")[:max(n, CANDIDATES_PER_PICK * n)]
    points = features[candidates] / np.maximum(np.linalg.norm(features[candidates], axis=1, keepdims=True), 1e-12)
    picked = [0]  # the most uncertain image first
    nearest = np.linalg.norm(points - points[0], axis=1)
    while len(picked) < n:
        spread = nearest / max(nearest.max(), 1e-12)
        score = uncertainty[candidates] * spread
        score[picked] = -1.0
        best = int(np.argmax(score))
        picked.append(best)
        nearest = np.minimum(nearest, np.linalg.norm(points - points[best], axis=1))
    return [int(candidates[i]) for i in picked]


def _thumbnail(pixels: np.ndarray) -> str:
    from PIL import Image

    buffer = io.BytesIO()
    image = Image.fromarray(np.asarray(pixels, dtype=np.uint8).squeeze())
    image.resize((96, 96), Image.NEAREST).save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode()


def _contact_sheet(table: pd.DataFrame, pixels: np.ndarray, class_names: list[str], run_path: Path) -> str:
    cards = "\n".join(
        f'<figure><img src="data:image/png;base64,{_thumbnail(p)}" alt="image {k + 1} to label: {html.escape(Path(row.file).name)}">'
        f'<figcaption><b>{k + 1}.</b> {html.escape(Path(row.file).name)}<br>suggested: {html.escape(row.suggested_label)} '
        f'({row.confidence:.2f})</figcaption></figure>'
        for k, (row, p) in enumerate(zip(table.itertuples(), pixels)))
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>biolens review: images to label</title>
<style>body{{font-family:system-ui,sans-serif;margin:1.5rem;color:#1a1a1a}}
.grid{{display:flex;flex-wrap:wrap;gap:.8rem}} figure{{margin:0;width:130px;font-size:.8rem}}
img{{width:96px;height:96px;image-rendering:pixelated;border:1px solid #999}}</style></head>
<body><h1>Images to label next</h1>
<p>Picked from the unlabelled images by the model of <code>{html.escape(str(run_path))}</code>: the ones it is least
sure about, spread over what it has seen, so each label teaches it something new. Classes:
{html.escape(", ".join(class_names))}. Write the right class in the <code>label</code> column of
<code>review.csv</code> (same order as here), then retrain with <code>biolens train DATA --add-labels review.csv</code>.</p>
<div class="grid">
{cards}
</div></body></html>
"""
