"""Supervised image classification: `train` a model on labelled images, `predict` new ones.

train: read + check images -> grouped stratified split -> Keras fit (resumable) -> best epoch kept ->
calibrate on validation (temperature + conformal) -> test set used once -> metrics with CIs, Grad-CAM,
report. Everything lands in the run folder.
"""
from __future__ import annotations

import csv
import hashlib
import time
from pathlib import Path

import numpy as np

from biolens import console
from biolens.config import ClassifyConfig
from biolens.errors import InputError
from biolens.readers import images as image_reader
from biolens.runs import Run, atomic_path, create_run, ensure_new_run_folder, load_run, remove_orphans, sha256_file, write_csv, write_json
from biolens.tasks import evaluation, splits, training

IN_MEMORY_LIMIT = 2 << 30  # decoded pixels above this go to a memory-mapped cache file in the run folder


def train(data: str | Path | None = None, out: str | Path = "runs/classify", *, resume: str | Path | None = None,
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
    if resume is not None:
        run = load_run(resume)
        if run.status == "complete":
            raise InputError(f"{resume} has already finished; nothing to resume. Start a new run with another --out.")
        config = ClassifyConfig.from_dict(run.info["config"])
        remove_orphans(run)
    else:
        if data is None:
            raise InputError("Give the images to train on (a folder of class sub-folders or a manifest CSV), or --resume RUN.")
        config = ClassifyConfig(data=str(Path(data).resolve()), **options).validate()  # resumable from any folder
        ensure_new_run_folder(out)  # before minutes of reading, not after
        run = None

    found = image_reader.find_labelled(config.data, config.group_column, config.skip_bad)
    size = config.image_size or image_reader.auto_image_size(found)
    fingerprint = data_fingerprint(found)
    if run is not None and run.info.get("data_fingerprint") != fingerprint:
        raise InputError(f"the images in {config.data} changed since {run.path} started (data fingerprint differs); "
                         "start a new run instead of resuming.")
    estimated = len(found) * size * size * 3
    cache = None
    if estimated > IN_MEMORY_LIMIT:
        cache = (run.path if run else Path(out)) / "cache" / f"pixels_{size}.npy"
        cache.parent.mkdir(parents=True, exist_ok=True)
    with console.progress_bar(f"reading {len(found)} images at {size}x{size}", len(found)) as advance:
        loaded = image_reader.load(found, size, skip_bad=config.skip_bad, min_per_class=config.min_per_class,
                                   cache=cache, progress=advance)
    images = loaded.images
    class_names = sorted(set(images.labels))
    y = np.array([class_names.index(label) for label in images.labels], dtype=np.int64)

    if run is None:
        run = create_run(out)
        assignment = splits.split(images.labels, images.groups, test_fraction=config.test_fraction,
                                  val_fraction=config.val_fraction, seed=config.seed)
        _write_splits(run, images, assignment)
        run.update_info(task="classify", status="running", config=config.to_dict(), seed=config.seed,
                        image_size=size, class_names=class_names, data_fingerprint=fingerprint,
                        created=time.strftime("%Y-%m-%dT%H:%M:%S%z"))
    else:
        assignment = _read_splits(run, images)
        run.update_info(status="running")
    console.say(f"run folder: {run.path}")
    try:
        return _train_in_run(run, config, loaded, y, class_names, assignment)
    except KeyboardInterrupt:
        run.update_info(status="interrupted")
        raise
    except Exception as exc:
        run.update_info(status="failed", error=str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
        raise


def _train_in_run(run: Run, config: ClassifyConfig, loaded, y, class_names, assignment) -> Run:
    import keras

    from biolens import hardware

    pixels = loaded.pixels
    warnings = _data_warnings(run, loaded, y, class_names, assignment)
    for warning in warnings:
        console.say(f"warning: {warning}")
    device, strategy = hardware.setup(config.mixed_precision)
    keras.utils.set_random_seed(config.seed)
    parts = {name: np.flatnonzero(assignment == name) for name in ("train", "val", "test")}
    batch_size = config.auto_batch_size(len(parts["train"]))
    run.update_info(device=device.describe(), versions=hardware.library_versions(), warnings=warnings,
                    n_skipped=len(loaded.bad), batch_size=batch_size)
    steps = int(np.ceil(len(parts["train"]) / batch_size))
    state = training.load_state(run.path)
    initial_epoch = int(state.get("epoch", 0))
    weights_note = ""
    with strategy.scope():
        if initial_epoch > 0 and (run.path / "checkpoints" / "last.keras").exists():
            model = keras.saving.load_model(run.path / "checkpoints" / "last.keras", safe_mode=True)
            console.say(f"resuming after epoch {initial_epoch}")
        else:
            initial_epoch, state = 0, {}
            model, weights_note = _build_model(config, pixels.shape[1:], len(class_names))
            schedule = keras.optimizers.schedules.CosineDecay(
                config.learning_rate * 0.1, decay_steps=max(1, steps * config.epochs - steps),
                warmup_target=config.learning_rate, warmup_steps=steps)
            model.compile(optimizer=keras.optimizers.AdamW(schedule, weight_decay=1e-4),
                          loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    if weights_note:
        run.update_info(weights=weights_note)

    counts = np.bincount(y[parts["train"]], minlength=len(class_names))
    class_weight = ({c: float(len(parts["train"]) / (len(class_names) * max(n, 1))) for c, n in enumerate(counts)}
                    if config.class_weights else None)
    started = time.perf_counter()
    if not state.get("training_done") and initial_epoch < config.epochs:
        train_data = training.image_batches(pixels, y, parts["train"], batch_size, shuffle=True,
                                            augment=config.augment, seed=config.seed)
        monitor = training.RunMonitor(run.path, pixels, y, parts["val"], patience=config.patience,
                                      time_budget=config.time_budget, state=state)
        callbacks = [monitor, training.RichProgress(config.epochs, steps, initial_epoch),
                     keras.callbacks.TensorBoard(run.path / "tensorboard", write_graph=False, profile_batch=0)]
        model.fit(train_data, epochs=config.epochs, initial_epoch=initial_epoch, class_weight=class_weight,
                  callbacks=callbacks, verbose=0)
        state = monitor.state
    state.setdefault("stopped_by", "all epochs done")
    state["training_done"] = True
    write_json(run.path / training.STATE_FILE, state)
    return _finish(run, config, loaded, y, class_names, parts, state, time.perf_counter() - started)


def _build_model(config: ClassifyConfig, input_shape, n_classes):
    from biolens.models import image as image_models

    if config.backbone == "compact":
        return image_models.compact_cnn(tuple(input_shape), n_classes), "none (compact CNN trained from scratch)"
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


def _finish(run: Run, config, loaded, y, class_names, parts, state, train_seconds) -> Run:
    from biolens.explain.gradcam import gradcam
    from biolens.models.io import load_trusted
    from biolens.report import figures
    from biolens.report.html import write_report

    pixels, images = loaded.pixels, loaded.images
    model = load_trusted(run.path / "checkpoints" / "best.keras")
    val_logits = training.predict_logits(model, pixels, parts["val"])
    temperature = evaluation.fit_temperature(val_logits, y[parts["val"]])
    val_probs = evaluation.softmax(val_logits, temperature)
    threshold = evaluation.conformal_threshold(val_probs, y[parts["val"]], config.conformal_alpha)

    test = parts["test"]  # the only time the test set is touched
    test_logits = training.predict_logits(model, pixels, test)
    probs = evaluation.softmax(test_logits, temperature)
    groups = np.asarray(images.groups)[test] if images.groups else None
    metrics = evaluation.classification_metrics(y[test], probs, class_names, groups=groups, seed=config.seed)
    ece_raw, table_raw = evaluation.expected_calibration_error(evaluation.softmax(test_logits), y[test])
    ece, table = evaluation.expected_calibration_error(probs, y[test])
    sets = evaluation.prediction_sets(probs, threshold)
    unsure = sets.sum(axis=1) != 1
    metrics.update(ece=ece, ece_before_calibration=ece_raw, temperature=temperature,
                   conformal={"alpha": config.conformal_alpha, "threshold": threshold,
                              "coverage_test": float(sets[np.arange(len(test)), y[test]].mean()),
                              "unsure_fraction_test": float(unsure.mean()),
                              "accuracy_when_sure": float(np.mean(probs.argmax(1)[~unsure] == y[test][~unsure])) if (~unsure).any() else None},
                   n_train=int(len(parts["train"])), n_val=int(len(parts["val"])), n_test=int(len(test)),
                   class_names=class_names, best_epoch=state.get("best_epoch"), epochs_run=state.get("epoch"),
                   stopped_by=state.get("stopped_by"), train_seconds=round(float(state.get("elapsed", 0.0)), 1))

    _write_predictions(run, images, test, y, probs, class_names, unsure)
    fig = run.path / "figures"
    figures.training_curves(state.get("history", []), fig / "training_curves.png", state.get("best_epoch"))
    figures.confusion(metrics["confusion_matrix"], class_names, fig / "confusion_matrix.png")
    figures.reliability(table_raw, table, fig / "calibration.png")
    labels = np.asarray(images.labels)
    split_counts = {part: {n: int((labels[idx] == n).sum()) for n in class_names} for part, idx in parts.items()}
    figures.class_counts(split_counts, fig / "class_counts.png")
    chosen, titles = _gradcam_examples(y[test], probs, class_names)
    if chosen:
        rows, predicted = test[chosen], probs.argmax(1)[chosen]
        heat = np.concatenate([gradcam(model, pixels[rows[i:i + 16]], predicted[i:i + 16])
                               for i in range(0, len(rows), 16)])
        figures.gradcam_grid(np.asarray(pixels[rows]), heat, titles, fig / "gradcam.png")

    with_model = run.path / "model.keras"
    with atomic_path(with_model) as tmp:
        model.save(tmp)
    write_json(run.path / "metrics.json", metrics)
    run.update_info(status="complete", model_sha256=sha256_file(with_model), finished=time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                    timings={"training_seconds": metrics["train_seconds"], "train_and_evaluate_seconds": round(train_seconds, 1)})
    write_report(run)
    console.say(f"test balanced accuracy {metrics['balanced_accuracy']:.3f} "
                f"(95% CI {metrics['balanced_accuracy_ci95'][0]:.3f}-{metrics['balanced_accuracy_ci95'][1]:.3f}) "
                f"on {len(test)} held-out images")
    console.say(f"report: {run.report_path}")
    return run


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
    notes: list[str] = []
    counts = np.bincount(y, minlength=len(class_names))
    if counts.max() >= 3 * counts.min():
        notes.append(f"classes are imbalanced ({counts.max() / counts.min():.0f}:1, "
                     f"'{class_names[counts.argmax()]}' {counts.max()} vs '{class_names[counts.argmin()]}' {counts.min()}); "
                     "judge the model by balanced accuracy and per-class recall, not accuracy. Class weights were used.")
    small = [f"'{class_names[c]}' ({n})" for c, n in enumerate(counts) if n < 30]
    if small:
        notes.append(f"small classes: {', '.join(small)}; their per-class figures have wide confidence intervals.")
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
    """sha256 over (relative path, size, mtime, label, group): changes when any file or label changes."""
    digest = hashlib.sha256()
    for i, path in enumerate(images.files):
        stat = path.stat() if path.exists() else None
        rel = path.relative_to(images.root) if images.root and path.is_relative_to(images.root) else path
        parts = [str(rel), str(stat.st_size if stat else -1), str(int(stat.st_mtime) if stat else -1),
                 images.labels[i] if images.labels else "", images.groups[i] if images.groups else ""]
        digest.update("\t".join(parts).encode() + b"\n")
    return digest.hexdigest()


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
