"""Supervised image classification: `train` a model on labelled images, `predict` new ones.

train: read + check images -> grouped stratified split -> Keras fit (resumable) -> best epoch kept ->
calibrate on validation (temperature + conformal) -> test set used once -> metrics with CIs, Grad-CAM,
report. Everything lands in the run folder.
"""
from __future__ import annotations

import csv
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from biolens import console
from biolens.config import ClassifyConfig
from biolens.errors import InputError
from biolens.readers import images as image_reader
from biolens.runs import Run, write_csv
from biolens.engine import distributed, lifecycle, splits, supervised, training

TASK = "classify"

# the extra models of the learning curve and of small-data cross-validation train on one machine only
IN_MEMORY_LIMIT = 2 << 30  # decoded pixels above this go to a memory-mapped cache file in the run folder


def train(data: str | Path | None = None, out: str | Path | None = None, *, resume: str | Path | None = None,
          **options) -> Run:
    """Train an image classifier and evaluate it once on a held-out test set.

    Args:
        data: a folder with one sub-folder per class, or a manifest CSV with columns path,label[,group].
        out: the run folder to create.
        resume: an interrupted run folder to continue instead (data and out are then taken from it).
        **options: any field of `ClassifyConfig` (epochs, group_column, backbone, seed, time_budget, ...).

    Example:
        >>> run = biolens.train("cells/", out="runs/cells", epochs=20)     # doctest: +SKIP
        >>> run.metrics["balanced_accuracy"], run.metrics["balanced_accuracy_ci95"]   # doctest: +SKIP
    """
    if resume is None:
        if data is None:
            raise InputError("Give the images to train on (a folder of class sub-folders or a manifest CSV), or --resume RUN.")
        options["data"] = str(Path(data).resolve())  # resumable from any folder
    return lifecycle.execute(TASK, out=out, resume=resume, options=options, prepare=_prepare, body=_body)


def _prepare(config: ClassifyConfig, run: Run | None, out: Path) -> lifecycle.Prepared:
    """Find and read the images, and (for a new run) split them, all before the run folder exists."""
    found = image_reader.find_labelled(config.data, config.group_column, config.skip_bad)
    n_base = len(found)
    if config.add_labels:
        added = image_reader.read_added_labels(Path(config.add_labels), sorted(set(found.labels)))
        console.say(f"adding {len(added[0])} labelled images from {config.add_labels} to the training set")
        found = found.with_added(*added)
    size = int(run.info["image_size"]) if run is not None else (config.image_size or image_reader.auto_image_size(found))
    fingerprint = data_fingerprint(found)
    if run is not None and run.info.get("data_fingerprint") != fingerprint:
        return lifecycle.Prepared(None, fingerprint)  # the lifecycle refuses the resume before anything is read
    estimated = len(found) * size * size * 3
    cache = None
    if estimated > IN_MEMORY_LIMIT:
        cache = out / "cache" / f"pixels_{size}.npy"
        cache.parent.mkdir(parents=True, exist_ok=True)
    with console.progress_bar(f"reading {len(found)} images at {size}x{size}", len(found)) as advance:
        loaded = image_reader.load(found, size, skip_bad=config.skip_bad, min_per_class=config.min_per_class,
                                   cache=cache, progress=advance, stack=config.stack)
    images = loaded.images
    class_names = sorted(set(images.labels))
    y = np.array([class_names.index(label) for label in images.labels], dtype=np.int64)
    if run is None:
        # the split is made on the base data alone (the same test set as a run without --add-labels, so the two
        # compare); added images only ever train
        added_files = {str(f) for f in found.files[n_base:]}
        added = np.array([str(f) in added_files for f in images.files]) if config.add_labels else np.zeros(len(y), bool)
        assignment = np.full(len(y), "train", dtype=object)
        base = np.flatnonzero(~added)
        assignment[base] = splits.split([images.labels[i] for i in base],
                                        None if images.groups is None else [images.groups[i] for i in base],
                                        test_fraction=config.test_fraction, val_fraction=config.val_fraction,
                                        seed=config.seed, group_column=config.group_column)
    else:
        assignment = _read_splits(run, images)
    unlabelled = None
    if config.unlabelled:  # images without labels, only for self-supervised pretraining (--pretrain)
        extra = image_reader.find_unlabelled([Path(config.unlabelled)])
        with console.progress_bar(f"reading {len(extra)} unlabelled images at {size}x{size}", len(extra)) as advance:
            unlabelled = image_reader.load(extra, size, allow_duplicates=True, progress=advance, stack=config.stack).pixels
    return lifecycle.Prepared((loaded, y, class_names, assignment, unlabelled), fingerprint,
                              {"image_size": size, "class_names": class_names})


def _body(run: Run, config: ClassifyConfig, data) -> bool:
    loaded, y, class_names, assignment, unlabelled = data
    if not (run.path / "splits.csv").exists():
        _write_splits(run, loaded.images, assignment)
    return _train_in_run(run, config, loaded, y, class_names, assignment, unlabelled)


MISCLASSIFIED_SHOWN = 32     # the report's gallery of mistakes: the most confident ones first
PRETRAIN_SMALL_CLASS = 100   # --pretrain auto suggests pretraining when some class has fewer images than this...
PRETRAIN_MIN_IMAGES = 200    # ...and there are at least this many images to learn from (fewer teach an encoder little)
PRETRAIN_MEASURED = ("on blood_cells with the labels of 5% of the smear photos, a classifier started from an encoder "
                     "pretrained on 1,726 images scored 0.975 held-out balanced accuracy and one trained from scratch "
                     "0.980 (docs/performance.md)")


def pretrain_plan(config: ClassifyConfig, y: np.ndarray, parts: dict, n_unlabelled: int) -> tuple[bool, str]:
    """Whether this run pretrains its encoder without labels first, and why (said in the report). `auto` does not
    pretrain: where it would apply it was measured to add nothing over training from scratch (PRETRAIN_MEASURED)
    for minutes of extra time, so it only says when to try it."""
    known = np.concatenate([parts["train"], parts["val"]])
    n_images = len(known) + n_unlabelled
    smallest = int(np.bincount(y[known]).min()) if len(known) else 0
    if config.init_from:
        return False, f"started from the encoder of run {config.init_from}"
    if config.pretrain == "off":
        return False, "--pretrain off"
    if config.pretrain == "on":
        return True, f"--pretrain on: {n_images} training, validation and unlabelled images"
    if config.backbone != "compact":
        return False, f"--pretrain auto: the {config.backbone} backbone has its own weights"
    if smallest >= PRETRAIN_SMALL_CLASS:
        return False, f"--pretrain auto: every class has at least {PRETRAIN_SMALL_CLASS} labelled images"
    if n_images < PRETRAIN_MIN_IMAGES:
        return False, (f"--pretrain auto: only {n_images} images to learn from (at least {PRETRAIN_MIN_IMAGES}; add "
                       "--unlabelled DIR, or --pretrain on)")
    return False, (f"--pretrain auto: the smallest class has {smallest} labelled images and {n_images} images could "
                   f"be learned from without labels; --pretrain on may help, but it is not the default because "
                   f"{PRETRAIN_MEASURED}: compare both runs")


def _starting_encoder(run: Run, config: ClassifyConfig, pixels, y, parts, unlabelled):
    """(model whose convolutional layers start the classifier, or None; what the report says about it)."""
    from biolens.engine import pretraining

    if config.init_from:
        model, source = pretraining.transferable_model(Path(config.init_from))
        return model, {"source": "init_from", "run": config.init_from, "task": source.get("task"),
                       "why": f"--init-from {config.init_from}"}
    wanted, why = pretrain_plan(config, y, parts, 0 if unlabelled is None else len(unlabelled))
    if not wanted:
        return None, {"source": "none", "why": why}
    known = np.sort(np.concatenate([parts["train"], parts["val"]]))  # never the test images
    images = pixels[known] if unlabelled is None else np.concatenate([pixels[known], unlabelled])
    console.say(f"self-supervised pretraining: {why}")
    encoder, summary = pretraining.encoder_in_run(run, images, seed=config.seed, label="self-supervised pretraining")
    return encoder, {"source": "pretrained here", "why": why, **summary,
                     "n_unlabelled": 0 if unlabelled is None else int(len(unlabelled))}


def _run_recipe(run: Run, config: ClassifyConfig, pixels, y, n_classes: int, parts, unlabelled):
    """(this run's Recipe, what the report says about its starting encoder): pretrained here (or read back from
    checkpoints/ once it was), taken from --init-from, or none."""
    start, pretraining = _starting_encoder(run, config, pixels, y, parts, unlabelled)
    note = ("self-supervised encoder pretrained in this run" if pretraining["source"] == "pretrained here"
            else f"encoder of run {config.init_from}")
    return classifier_recipe(config, pixels, y, n_classes, start, note), pretraining


@dataclass
class Recipe:
    """How this run's classifiers are built and trained: the main model and its side models (learning curve,
    cross-validation) alike."""
    build: Callable[[], tuple[object, str]]
    learning_rate: Callable[[int], float]   # peak learning rate for a batch size
    start_head: Callable[[object, np.ndarray], str] | None = None


def classifier_recipe(config: ClassifyConfig, pixels, y, n_classes: int, start=None, note: str = "") -> Recipe:
    """`model_for`, then the starting encoder's weights. A classifier that starts from an encoder has its head
    fitted on the frozen features first (LP-FT), then all of it is fine-tuned at the usual rate."""
    from biolens.engine.pretraining import copy_encoder_weights, fit_head_on_frozen_features

    def build():
        model, weights = model_for(config, pixels.shape[1:], n_classes)
        if start is not None:
            copied = copy_encoder_weights(start, model)
            if not copied:
                raise InputError(f"--init-from {config.init_from}: none of its layers fit this classifier; give a "
                                 "pretrain run or a compact image classification run on images with as many channels.")
            weights = f"{note} ({len(copied)} layers copied)"
        return model, weights

    if start is None:
        return Recipe(build, config.auto_learning_rate)
    return Recipe(build, config.auto_learning_rate,
                  lambda model, rows: fit_head_on_frozen_features(model, pixels, y, rows, seed=config.seed))


def _train_in_run(run: Run, config: ClassifyConfig, loaded, y, class_names, assignment, unlabelled=None) -> bool:
    pixels = loaded.pixels
    warnings = _data_warnings(run, loaded, y, class_names, assignment)
    for warning in warnings:
        console.say(f"warning: {warning}")
    parts = {name: np.flatnonzero(assignment == name) for name in ("train", "val", "test")}
    batch_size = config.auto_batch_size(len(parts["train"]))
    run.update_info(warnings=warnings, n_skipped=len(loaded.bad))
    started = time.perf_counter()
    recipe, pretraining = _run_recipe(run, config, pixels, y, len(class_names), parts, unlabelled)
    run.update_info(pretraining=pretraining)
    state = supervised.fit_in_run(
        run, pixels, y, parts, build_model=recipe.build, start_head=recipe.start_head,
        train_data=lambda size: training.image_batches(pixels, y, parts["train"], size, shuffle=True,
                                                        augment=config.augment, seed=config.seed),
        batch_size=batch_size, epochs=config.epochs, patience=config.patience, time_budget=config.time_budget,
        learning_rate=recipe.learning_rate(batch_size), class_weights=config.class_weights,
        mixed_precision=config.mixed_precision, seed=config.seed)
    if not distributed.is_chief():  # several machines: worker 0 evaluates and writes the results
        console.say("this worker's part of training is done; worker 0 writes the run folder.")
        return False
    return _finish(run, config, loaded, y, class_names, parts, state, time.perf_counter() - started, recipe)


def model_for(config: ClassifyConfig, input_shape, n_classes):
    """The (uncompiled) model `train` builds for these settings, and a note on its weights (also what
    `biolens doctor --estimate` times)."""
    from biolens.models import image as image_models

    if config.backbone == "compact":
        return (image_models.compact_cnn(tuple(input_shape), n_classes,
                                         synchronized_batchnorm=distributed.cluster() is not None),
                "none (compact CNN trained from scratch)")
    if input_shape[-1] != 3:
        raise InputError(f"--backbone {config.backbone} needs 3-channel images but these have {input_shape[-1]}; "
                         "use the default compact model.")
    weights = None if config.weights == "none" else config.weights
    if weights not in (None, "imagenet") and not Path(weights).exists():
        raise InputError(f"--weights {weights}: file not found. Give a backbone weights file, 'imagenet' or 'none'.")
    try:
        model = image_models.backbone_classifier(config.backbone, tuple(input_shape), n_classes, weights=weights)
        return model, f"{weights or 'random initialisation'}"
    except Exception as exc:  # download failures surface as several exception types
        if weights != "imagenet":
            raise InputError(f"--weights {weights}: cannot be loaded into {config.backbone} ({str(exc).splitlines()[0]}).") from None
        console.say(f"ImageNet weights for {config.backbone} are unavailable (no internet and not in ~/.keras/models); "
                    "training it from random initialisation instead.")
        model = image_models.backbone_classifier(config.backbone, tuple(input_shape), n_classes, weights=None)
        return model, "random initialisation (ImageNet weights unavailable offline)"


def _finish(run: Run, config, loaded, y, class_names, parts, state, seconds, recipe: Recipe) -> bool:
    from biolens.explain.gradcam import gradcam
    from biolens.report import figures

    pixels, images = loaded.pixels, loaded.images
    test = parts["test"]
    groups = np.asarray(images.groups)[test] if images.groups else None
    model, metrics, probs, unsure = supervised.evaluate_held_out(
        run, pixels, y, parts, class_names, state, alpha=config.conformal_alpha, groups=groups, seed=config.seed)
    _write_predictions(run, images, test, y, probs, class_names, unsure)
    _classical_baseline(config, pixels, y, class_names, parts, probs, groups, metrics)
    _small_data_estimate(run, config, pixels, images, y, class_names, metrics, recipe)
    supervised.settle_warnings(metrics)  # the cross-validated estimate, when there is one, is the figure to judge
    _possible_label_errors(run, model, pixels, images, y, parts, probs, class_names, metrics)
    _learning_curve(run, config, pixels, y, class_names, parts, state, metrics, recipe)
    figures.class_examples(pixels, y, parts["train"], class_names, run.path / "figures" / "class_examples.png",
                           seed=config.seed)
    wrong = np.flatnonzero(probs.argmax(1) != y[test])
    metrics["misclassified_total"] = int(len(wrong))
    wrong = wrong[np.argsort(-probs[wrong].max(1))][:MISCLASSIFIED_SHOWN]
    metrics["misclassified_shown"] = int(len(wrong))
    if len(wrong):
        titles = [f"{class_names[y[test[r]]]} -> {class_names[probs[r].argmax()]} ({probs[r].max():.2f})" for r in wrong]
        figures.misclassified(pixels[test[wrong]], titles, run.path / "figures" / "misclassified.png")
    chosen, titles = _gradcam_examples(y[test], probs, class_names)
    if chosen:
        rows, predicted = test[chosen], probs.argmax(1)[chosen]
        heat = np.concatenate([gradcam(model, pixels[rows[i:i + 16]], predicted[i:i + 16])
                               for i in range(0, len(rows), 16)])
        figures.gradcam_grid(np.asarray(pixels[rows]), heat, titles, run.path / "figures" / "gradcam.png")
    supervised.save_results(run, model, metrics, seconds)
    return True


def _classical_baseline(config, pixels, y, class_names, parts, probs, groups, metrics) -> None:
    """A logistic regression on colour histograms and HOG beside the network, on the same splits (stats/)."""
    from biolens.stats import baselines, image_baseline

    with console.step("fitting the classical baseline (logistic regression on colour and HOG features)"):
        metrics.update(image_baseline.compare(pixels, y, parts, class_names, probs.argmax(1), groups=groups,
                                              seed=config.seed))
    metrics["baseline_reading"] = baselines.reading(metrics["classical_baseline"])
    console.say(metrics["baseline_reading"])


def _possible_label_errors(run: Run, model, pixels, images, y, parts, test_probs, class_names, metrics) -> None:
    """Validation and test images whose label the model's held-out predictions contradict, found by confident
    learning (cleanlab: per-class confidence thresholds, so a model trained on noisy labels, which is never very
    sure, still points at them). Training images are left out: the model has fitted their labels, right or wrong.
    Written to possible_label_errors.csv, most suspicious first."""
    from cleanlab.filter import find_label_issues

    from biolens.engine import evaluation

    val_probs = evaluation.softmax(training.predict_logits(model, pixels, parts["val"]), metrics["temperature"])
    indices = np.concatenate([parts["val"], parts["test"]])
    probs = np.concatenate([val_probs, test_probs])
    split = ["validation"] * len(parts["val"]) + ["test"] * len(parts["test"])
    labels = y[indices]
    if metrics.get("at_chance"):  # a guessing model contradicts labels at random: its list would mislead
        metrics["possible_label_errors"] = {"count": None, "note": "not checked: the model is at chance level"}
        return
    if len(np.unique(labels)) < len(class_names):  # cleanlab needs every class among the labels it checks
        metrics["possible_label_errors"] = {"count": None, "note": "not checked: a class is missing from validation/test"}
        return
    flagged = find_label_issues(labels, probs, return_indices_ranked_by="self_confidence", n_jobs=1)
    rows = [[str(images.files[indices[k]]), split[k], class_names[labels[k]], class_names[probs[k].argmax()],
             round(float(probs[k].max()), 4), round(float(probs[k, labels[k]]), 4)] for k in flagged]
    columns = ["file", "split", "label", "predicted", "confidence", "probability_of_label"]
    write_csv(run.path / "possible_label_errors.csv", columns, rows)
    metrics["possible_label_errors"] = {"count": len(rows), "method": "confident learning (cleanlab)",
                                        "first": [dict(zip(columns, r)) for r in rows[:20]]}
    if rows:
        console.say(f"{len(rows)} validation/test images have a label the model contradicts: check them first "
                    "(possible_label_errors.csv)")


def _learning_curve(run: Run, config: ClassifyConfig, pixels, y, class_names, parts, state, metrics,
                    recipe: Recipe) -> None:
    """Is my data enough? metrics["learning_curve"] and its figure, or the reason it was not run."""
    supervised.learning_curve_step(run, pixels, y, parts, class_names, metrics, mode=config.learning_curve,
                                   train_seconds=float(state.get("elapsed", 0.0)), seed=config.seed,
                                   **_side_model_options(config, pixels, y, recipe))


def add_learning_curve(run: Run, config: ClassifyConfig, metrics: dict) -> dict:
    """The learning curve of a finished run (`biolens learning-curve RUN`): the run's own split and recipe (its
    pretrained encoder is read back from checkpoints/), each part trained as the main model was."""
    import dataclasses

    if distributed.cluster() is not None:
        raise InputError(f"{run.path}: {distributed.ACROSS_MACHINES_NOTE}.")
    loaded, y, class_names, assignment, unlabelled = lifecycle.prepared_again(_prepare, config, run)
    parts = {name: np.flatnonzero(assignment == name) for name in ("train", "val", "test")}
    recipe, _ = _run_recipe(run, config, loaded.pixels, y, len(class_names), parts, unlabelled)
    _learning_curve(run, dataclasses.replace(config, learning_curve="on"), loaded.pixels, y, class_names, parts, {},
                    metrics, recipe)
    return metrics["learning_curve"]


def _side_model_options(config: ClassifyConfig, pixels, y, recipe: Recipe) -> dict:
    """How supervised.side_model trains extra models of this run: exactly like the main one."""
    return dict(fit_options=dict(epochs=config.epochs, patience=config.patience, time_budget=config.time_budget,
                                 learning_rate=recipe.learning_rate, class_weights=config.class_weights,
                                 mixed_precision=config.mixed_precision, start_head=recipe.start_head),
                batch_size_for=config.auto_batch_size,
                train_data_for=lambda rows, size: training.image_batches(pixels, y, rows, size, shuffle=True,
                                                                         augment=config.augment, seed=config.seed),
                build_model=lambda rows: recipe.build())


def _small_data_estimate(run: Run, config: ClassifyConfig, pixels, images, y, class_names, metrics,
                         recipe: Recipe) -> None:
    """Fewer than 30 images in some class: say so, and add the cross-validated estimate over all images."""
    if not supervised.is_small_data(y):
        return
    if distributed.cluster() is not None:
        metrics["small_data"] = {"smallest_class": int(np.bincount(y).min()), "threshold": supervised.SMALL_DATA_PER_CLASS,
                                 "cross_validation": None, "note": distributed.ACROSS_MACHINES_NOTE}
        console.say(f"small data: cross-validation {distributed.ACROSS_MACHINES_NOTE}")
        return
    groups = np.asarray(images.groups) if images.groups else None
    with console.step(f"small data: {supervised.CROSS_VALIDATION_FOLDS}-fold cross-validation over all images"):
        estimate = supervised.cross_validated_estimate(run, pixels, y, class_names, groups, seed=config.seed,
                                                       **_side_model_options(config, pixels, y, recipe))
    metrics["small_data"] = {"smallest_class": int(np.bincount(y).min()), "threshold": supervised.SMALL_DATA_PER_CLASS,
                             "cross_validation": estimate}
    low, high = estimate["balanced_accuracy_ci95"]
    console.say(f"small data: cross-validated balanced accuracy {estimate['balanced_accuracy']:.3f} "
                f"(95% CI {low:.3f}-{high:.3f}) over all {len(y)} images; trust this over the small test set")


def _gradcam_examples(y_true, probs, class_names, per_kind: int = 2):
    predicted = probs.argmax(1)
    chosen, titles = [], []
    for c, name in enumerate(class_names):
        for correct in (True, False):
            rows = np.flatnonzero((y_true == c) & ((predicted == c) == correct))
            rows = rows[np.argsort(-probs[rows, predicted[rows]])][:per_kind]
            for r in rows:
                chosen.append(int(r))
                verdict = "right" if correct else f"wrong: {class_names[predicted[r]]}"
                titles.append(f"{name} ({verdict}, {probs[r, predicted[r]]:.2f})")
    return chosen, titles


def _write_predictions(run, images, test, y, probs, class_names, unsure) -> None:
    rows = [[str(images.files[i]), class_names[y[i]], class_names[probs[row].argmax()], f"{probs[row].max():.4f}",
             bool(unsure[row]), *[f"{p:.4f}" for p in probs[row]]] for row, i in enumerate(test)]
    write_csv(run.path / "predictions.csv",
               ["file", "true", "predicted", "confidence", "unsure", *[f"prob_{c}" for c in class_names]], rows)


def _data_warnings(run: Run, loaded, y, class_names, assignment) -> list[str]:
    images = loaded.images
    notes = supervised.class_balance_notes(y, class_names)
    if images.groups is None:
        notes.append("no group column: images were split at random. If several images come from one patient, plate "
                     "or photo, give a manifest with a group column (--group-column) so the test set is honest.")
    pairs = image_reader.near_duplicates(loaded.phash, assignment)
    if pairs:
        notes.append(f"{len(pairs)} pairs of near-identical images sit in different splits (listed in duplicates.csv); "
                     "the test score may be optimistic. Group them (--group-column) or remove copies.")
    files = images.files
    write_csv(run.path / "duplicates.csv", ["file_a", "split_a", "file_b", "split_b", "hash_distance"],
               [[str(files[i]), assignment[i], str(files[j]), assignment[j], d] for i, j, d in pairs])
    write_csv(run.path / "skipped.csv", ["file", "reason"], [list(row) for row in loaded.bad])
    notes += splits.missing_classes(images.labels, assignment)
    for note, count in loaded.notes.items():
        notes.append(f"{count} images: {note}.")
    if loaded.bad:
        notes.append(f"{len(loaded.bad)} files were skipped (--skip-bad); see skipped.csv.")
    sizes = np.array(loaded.original_sizes)
    if len(sizes) and (sizes.min(axis=0) != sizes.max(axis=0)).any():
        notes.append(f"image sizes vary ({sizes[:, 0].min()}-{sizes[:, 0].max()} x {sizes[:, 1].min()}-{sizes[:, 1].max()} px); "
                     f"all were resized to {loaded.pixels.shape[1]}x{loaded.pixels.shape[2]}.")
    return notes


def data_fingerprint(images: image_reader.ImageSet) -> str:
    """The lifecycle's fingerprint over the image files plus their labels and groups."""
    rows = [f"{images.labels[i] if images.labels else ''}\t{images.groups[i] if images.groups else ''}"
            for i in range(len(images.files))]
    return lifecycle.data_fingerprint(images.files, root=images.root, rows=rows)


def _write_splits(run: Run, images, assignment) -> None:
    write_csv(run.path / "splits.csv", ["file", "label", "group", "split"],
               [[str(path), images.labels[i], images.groups[i] if images.groups else "", assignment[i]]
                for i, path in enumerate(images.files)])


def _read_splits(run: Run, images) -> np.ndarray:
    with open(run.path / "splits.csv", newline="", encoding="utf-8") as handle:
        stored = {row["file"]: row["split"] for row in csv.DictReader(handle)}
    try:
        return np.array([stored[str(path)] for path in images.files], dtype=object)
    except KeyError as missing:
        raise InputError(f"{missing} is not in {run.path / 'splits.csv'}; the data changed, start a new run.") from None
