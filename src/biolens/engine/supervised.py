"""What every supervised classifier shares (images, sequences): a resumable fit in a run folder and the one
look at the held-out test set.

The task modules decide what the data and the model are; this module makes sure that every classifier is
trained, stopped, calibrated, tested and saved by the same rules, so their reports can be trusted alike.
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from biolens import console
from biolens.engine import evaluation, training
from biolens.engine.registry import quoted_figures
from biolens.runs import Run, atomic_path, write_json


def class_balance_notes(y: np.ndarray, class_names: list[str]) -> list[str]:
    """Warnings a reader of the metrics needs: imbalance (accuracy flatters) and small classes (wide CIs)."""
    notes = []
    counts = np.bincount(y, minlength=len(class_names))
    if counts.max() >= 3 * counts.min():
        notes.append(f"classes are imbalanced ({counts.max() / counts.min():.0f}:1, "
                     f"'{class_names[counts.argmax()]}' {counts.max()} vs '{class_names[counts.argmin()]}' {counts.min()}); "
                     "judge the model by balanced accuracy and per-class recall, not accuracy. Class weights were used.")
    small = [f"'{class_names[c]}' ({n})" for c, n in enumerate(counts) if n < 30]
    if small:
        notes.append(f"small classes: {', '.join(small)}; their per-class figures have wide confidence intervals.")
    return notes


def fit_in_run(run: Run, x: np.ndarray, y: np.ndarray, parts: dict[str, np.ndarray], *,
               build_model: Callable[[], tuple[object, str]], train_data: Callable[[int], object],
               batch_size: int, epochs: int, patience: int, time_budget: float, learning_rate: float,
               class_weights: bool, mixed_precision: str, seed: int,
               start_head: Callable[[object, np.ndarray], str] | None = None) -> dict:
    """Train (or continue training) the run's model; returns the training state (history, best epoch, stop reason).

    `build_model()` returns (uncompiled model, note on its weights) or (model, note, hold): `hold`, when not None,
    names filters kept as they started for the first epochs ({"layer": [names], "filters": n, "epochs": k}; kept in
    the training state, so a resumed run holds them too). `train_data(batch_size)` is the training tf.data
    pipeline. The best epoch by validation balanced accuracy lands in checkpoints/best.keras.
    `start_head(model, train_rows)`, when given, prepares a new model's head from these training rows before
    training (LP-FT for a pretrained body) and returns a note on it.
    """
    import keras

    from biolens import hardware
    from biolens.engine import distributed
    from biolens.engine.callbacks import AveragedWeights, HoldFilters, RichProgress, RunMonitor
    from biolens.models.io import load_checkpoint

    device, strategy = hardware.setup(mixed_precision)
    multi_worker = device.strategy == "MultiWorkerMirrored"
    keras.utils.set_random_seed(seed)
    steps = int(np.ceil(len(parts["train"]) / batch_size))
    run.update_info(device=device.describe(), versions=hardware.library_versions(), batch_size=batch_size,
                    learning_rate=learning_rate, weight_average_momentum=round(weight_average_momentum(steps), 4))
    checkpoints = distributed.checkpoint_folder(run.path)  # every worker resumes from the chief's checkpoint
    state = training.load_state(checkpoints)
    initial_epoch = int(state.get("epoch", 0))
    weights_note = ""
    with strategy.scope():
        if initial_epoch > 0 and (checkpoints / "checkpoints" / "last.keras").exists():
            model = load_checkpoint(checkpoints / "checkpoints" / "last.keras")
            console.say(f"resuming after epoch {initial_epoch}")
        else:
            initial_epoch, state = 0, {}
            model, weights_note, *hold = build_model()
            if hold and hold[0]:
                state["held_filters"] = hold[0]
            head_note = start_head(model, parts["train"]) if start_head is not None else ""
            weights_note = "; ".join(n for n in (weights_note, head_note) if n)
            schedule = keras.optimizers.schedules.CosineDecay(
                learning_rate * 0.1, decay_steps=max(1, steps * epochs - steps),
                warmup_target=learning_rate, warmup_steps=steps)
            model.compile(optimizer=keras.optimizers.AdamW(schedule, weight_decay=1e-4, use_ema=True,
                                                           ema_momentum=weight_average_momentum(steps)),
                          loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    if weights_note:
        run.update_info(weights=weights_note)

    n_classes = int(y.max()) + 1
    counts = np.bincount(y[parts["train"]], minlength=n_classes)
    weights = ({c: float(len(parts["train"]) / (n_classes * max(n, 1))) for c, n in enumerate(counts)}
               if class_weights else None)
    if not state.get("training_done") and initial_epoch < epochs:
        monitor = RunMonitor(run.path, x, y, parts["val"], patience=patience, time_budget=time_budget, state=state)
        callbacks = [monitor, RichProgress(epochs, steps, initial_epoch)]
        optimizer = getattr(model.optimizer, "inner_optimizer", model.optimizer)  # under mixed precision: wrapped
        if getattr(optimizer, "use_ema", False):  # a run resumed from before 2026-12-04 has no averages
            callbacks.insert(0, AveragedWeights(x, parts["train"], resumed=initial_epoch > 0))
        if state.get("held_filters"):
            callbacks.insert(0, HoldFilters(**state["held_filters"]))
        if multi_worker:  # Keras 3 fit cannot run this strategy (distributed.py); TensorBoard needs fit's counters
            distributed.fit(model, train_data(batch_size), strategy=strategy,
                            steps=max(1, len(parts["train"]) // batch_size),
                            epochs=epochs, initial_epoch=initial_epoch, class_weight=weights, callbacks=callbacks,
                            global_batch=batch_size)
        else:
            callbacks.append(keras.callbacks.TensorBoard(run.path / "tensorboard", write_graph=False, profile_batch=0))
            model.fit(train_data(batch_size), epochs=epochs, initial_epoch=initial_epoch, class_weight=weights,
                      callbacks=callbacks, verbose=0)
        state = monitor.state
    state.setdefault("stopped_by", "all epochs done")
    state["training_done"] = True
    write_json(run.path / training.STATE_FILE, state)
    return state


def weight_average_momentum(steps_per_epoch: int) -> float:
    """Momentum of the exponential moving average of the weights that is validated and kept (Polyak averaging):
    about the last two epochs' steps. Why: on small sets the weights at any one epoch are noisy, and the epoch
    picked on a validation part with 2-4 images of a rare class was often a poor one; on the few-label blood-cell
    splits the averaged weights scored 0.98-0.99 where the raw ones scored 0.89-0.99 (docs/performance.md)."""
    return float(np.clip(1 - 1 / (2 * max(steps_per_epoch, 1)), 0.9, 0.999))


def at_chance(metrics: dict, n_classes: int) -> bool:
    """The quoted balanced accuracy's 95% CI reaches within 2 points of guessing among `n_classes` classes."""
    return quoted_figures(metrics)["balanced_accuracy_ci95"][0] <= 1 / n_classes + 0.02


def honesty_warnings(metrics: dict, n_classes: int) -> list[str]:
    """Plain-words warnings a reader must see beside the headline: a model at chance level (or a figure too
    uncertain to tell it from one), calibration that the temperature made worse, or a temperature so extreme that
    the validation set was too easy or too small."""
    warnings = []
    chance = 1 / n_classes
    quoted = quoted_figures(metrics)
    value, (low, high) = quoted["balanced_accuracy"], quoted["balanced_accuracy_ci95"]
    figure = (f"balanced accuracy {value:.1%} (95% CI {low:.1%}-{high:.1%}) {quoted['where']}, against {chance:.1%} "
              f"for guessing among {n_classes} classes")
    reaches_chance = at_chance(metrics, n_classes)
    unit = metrics.get("unit", "images")
    if reaches_chance and value >= (1 + chance) / 2:
        warnings.append(f"Too few {unit} to show that the model is better than guessing: {figure}. Its predictions "
                        f"may well be right, but nothing here shows it; label more {unit} per class before relying "
                        "on them.")
    elif reaches_chance:
        warnings.append(f"The model is not clearly better than guessing: {figure}. Do not use its predictions; more "
                        f"{unit} per class, cleaner labels or "
                        f"{'another image size' if unit == 'images' else 'another --length'} may help.")
    if metrics["ece"] > metrics["ece_before_calibration"] + 0.01:
        warnings.append(f"Calibration on the validation set made the test probabilities worse (expected calibration "
                        f"error {metrics['ece_before_calibration']:.3f} -> {metrics['ece']:.3f}): the validation set is "
                        "probably too small to calibrate on; read the confidences with care.")
    temperature = metrics["temperature"]
    if not 0.2 <= temperature <= 5:
        warnings.append(f"The calibration temperature is extreme (T = {temperature:.3g}): the validation set was "
                        f"{'too easy (nearly every image right with a margin)' if temperature < 0.2 else 'too hard'} "
                        "to calibrate on, so the confidences are less reliable than the accuracy.")
    return warnings


def settle_warnings(metrics: dict) -> None:
    """(Re)write `warnings` and `at_chance` from the figures as they now stand: after the test set, and again once
    a small-data cross-validated estimate has become the quoted figure."""
    n_classes = len(metrics["class_names"])
    metrics["warnings"] = honesty_warnings(metrics, n_classes)
    metrics["at_chance"] = at_chance(metrics, n_classes)


def evaluate_held_out(run: Run, x: np.ndarray, y: np.ndarray, parts: dict[str, np.ndarray], class_names: list[str],
                      state: dict, *, alpha: float, groups: np.ndarray | None, seed: int, unit: str = "images"):
    """Calibrate the best model on validation data, then score it once on the test set.

    Returns (model, metrics, test probabilities, unsure flags) and writes the figures every classifier has:
    training curves, confusion matrix, reliability diagram, class counts per split.
    """
    from biolens.models.io import load_trusted
    from biolens.report import figures

    model = load_trusted(run.path / "checkpoints" / "best.keras")
    val_logits = training.predict_logits(model, x, parts["val"])
    temperature = evaluation.fit_temperature(val_logits, y[parts["val"]])
    val_probs = evaluation.softmax(val_logits, temperature)
    threshold = evaluation.conformal_threshold(val_probs, y[parts["val"]], alpha)

    test = parts["test"]  # the only time the test set is touched
    test_logits = training.predict_logits(model, x, test)
    probs = evaluation.softmax(test_logits, temperature)
    metrics = evaluation.classification_metrics(y[test], probs, class_names, groups=groups, seed=seed)
    ece_raw, table_raw = evaluation.expected_calibration_error(evaluation.softmax(test_logits), y[test])
    ece, table = evaluation.expected_calibration_error(probs, y[test])
    sets = evaluation.prediction_sets(probs, threshold)
    unsure = sets.sum(axis=1) != 1
    metrics.update(ece=ece, ece_before_calibration=ece_raw, temperature=temperature,
                   conformal={"alpha": alpha, "threshold": threshold,
                              "coverage_test": float(sets[np.arange(len(test)), y[test]].mean()),
                              "unsure_fraction_test": float(unsure.mean()),
                              "accuracy_when_sure": float(np.mean(probs.argmax(1)[~unsure] == y[test][~unsure])) if (~unsure).any() else None},
                   n_train=int(len(parts["train"])), n_val=int(len(parts["val"])), n_test=int(len(test)),
                   class_names=class_names, unit=unit, best_epoch=state.get("best_epoch"),
                   epochs_run=state.get("epoch"),
                   stopped_by=state.get("stopped_by"), train_seconds=round(float(state.get("elapsed", 0.0)), 1))

    settle_warnings(metrics)  # printed once the run's figures are final (save_results)

    fig = run.path / "figures"
    figures.training_curves(state.get("history", []), fig / "training_curves.png", state.get("best_epoch"))
    figures.confusion(metrics["confusion_matrix"], class_names, fig / "confusion_matrix.png")
    figures.reliability(table_raw, table, fig / "calibration.png")
    split_counts = {part: {name: int((y[idx] == c).sum()) for c, name in enumerate(class_names)}
                    for part, idx in parts.items()}
    figures.class_counts(split_counts, fig / "class_counts.png", unit)
    return model, metrics, probs, unsure


def save_results(run: Run, model, metrics: dict, seconds: float) -> None:
    """Save model.keras and metrics.json and record what the network is (for the Methods text) and how long it
    took; the lifecycle then marks the run complete and writes the report."""
    from biolens.models.describe import describe_model

    for line in metrics.get("warnings", []):
        console.say(f"warning: {line}")
    with atomic_path(run.path / "model.keras") as tmp:
        model.save(tmp)
    write_json(run.path / "metrics.json", metrics)
    timings = dict(run.info.get("timings") or {})
    timings.update(training_seconds=metrics["train_seconds"], train_and_evaluate_seconds=round(seconds, 1))
    run.update_info(model_summary=describe_model(model), timings=timings)


LEARNING_CURVE_FRACTIONS = (0.125, 0.25, 0.5)
LEARNING_CURVE_SEEDS = 2
LEARNING_CURVE_MIN_PER_CLASS = 8    # training examples per class at the smallest fraction for "auto" to run
LEARNING_CURVE_AUTO_SECONDS = 600   # "auto" runs it when the extra training is expected to take less than this


def learning_curve_seconds(train_seconds: float) -> float:
    """The learning curve's extra training time, from the main model's."""
    return train_seconds * sum(LEARNING_CURVE_FRACTIONS) * LEARNING_CURVE_SEEDS


def learning_curve_plan(mode: str, y: np.ndarray, parts: dict[str, np.ndarray], train_seconds: float,
                        unit: str = "images") -> str | None:
    """None when the learning curve should run, else the reason it does not (said in the report and the CLI)."""
    expected = learning_curve_seconds(train_seconds)
    if mode == "off":
        minutes = max(1, round(expected / 60))
        return (f"turned off (--no-learning-curve). To see whether more {unit} would help, add it to this run with "
                f"biolens learning-curve: it retrains on 1/8, 1/4 and 1/2 of the training {unit}, about "
                f"{minutes} more minute{'s' if minutes > 1 else ''} here")
    if mode == "on":
        return None
    smallest = int(np.bincount(y[parts["train"]]).min())
    if smallest * LEARNING_CURVE_FRACTIONS[0] < LEARNING_CURVE_MIN_PER_CLASS:
        return (f"not run: the smallest class has {smallest} training examples, too few to train on an eighth of them "
                "(--learning-curve forces it)")
    if expected > LEARNING_CURVE_AUTO_SECONDS:
        return (f"not run: it would add about {expected / 60:.0f} minutes of training (add it to this run with "
                "biolens learning-curve, or train with --learning-curve)")
    return None


def nested_subsets(y: np.ndarray, train: np.ndarray, fractions, seed: int) -> list[np.ndarray]:
    """Stratified, nested subsets of the training rows: each fraction holds every smaller one (at least one
    example per class), so the curve measures more data, not different data."""
    rng = np.random.default_rng(seed)
    orders = {c: rng.permutation(train[y[train] == c]) for c in np.unique(y[train])}
    return [np.sort(np.concatenate([rows[:max(1, int(round(f * len(rows))))] for rows in orders.values()]))
            for f in fractions]


def side_model(run: Run, name: str, x: np.ndarray, y: np.ndarray, train: np.ndarray, val: np.ndarray,
               score: np.ndarray, *, fit_options: dict, batch_size_for: Callable[[int], int],
               train_data_for: Callable[[np.ndarray, int], object],
               build_model: Callable[[np.ndarray], tuple[object, str]], seed: int) -> np.ndarray:
    """Train one more model by the run's own rules (learning-curve fractions, cross-validation folds) in
    checkpoints/<name>/ and return its softmax probabilities for the `score` rows. `build_model(train)` builds it
    from its own training rows only (a sequence model's filter seeds are counted on them). Only the probabilities
    are kept (probabilities.npy), not the weights; an interrupted series resumes at the first model not finished."""
    import shutil

    from biolens.models.io import load_trusted

    folder = run.path / "checkpoints" / name
    saved = folder / "probabilities.npy"
    if saved.exists():
        return np.load(saved)
    (folder / "checkpoints").mkdir(parents=True, exist_ok=True)
    batch_size = batch_size_for(len(train))
    options = dict(fit_options)
    if callable(options.get("learning_rate")):  # a rate that follows the batch size, as the main model's did
        options["learning_rate"] = options["learning_rate"](batch_size)
    fit_in_run(Run(folder), x, y, {"train": train, "val": val}, build_model=lambda: build_model(train),
               train_data=lambda size: train_data_for(train, size), batch_size=batch_size, seed=seed, **options)
    probs = evaluation.softmax(training.predict_logits(load_trusted(folder / "checkpoints" / "best.keras"), x, score))
    for leftover in folder.iterdir():
        shutil.rmtree(leftover) if leftover.is_dir() else leftover.unlink()
    with atomic_path(saved) as tmp:
        with open(tmp, "wb") as handle:
            np.save(handle, probs)
    return probs


def learning_curve_in_run(run: Run, x: np.ndarray, y: np.ndarray, parts: dict[str, np.ndarray], class_names: list[str],
                          metrics: dict, *, seed: int, unit: str = "images", **model_options) -> dict:
    """Train the same model by the same rules on nested fractions of the training set (several seeds), score
    each on the same held-out test set, and fit the curve (stats/learning_curve.py). `model_options`: those
    of `side_model`."""
    from biolens.stats.learning_curve import advice, learning_curve

    truth = y[parts["test"]]
    points = []
    for repeat in range(LEARNING_CURVE_SEEDS):
        subsets = nested_subsets(y, parts["train"], LEARNING_CURVE_FRACTIONS, seed + 1000 * (repeat + 1))
        for fraction, rows in zip(LEARNING_CURVE_FRACTIONS, subsets):
            console.say(f"learning curve: {fraction:.1%} of the training set ({len(rows)}), repeat {repeat + 1}")
            predicted = side_model(run, f"learning_curve/{fraction:g}_{repeat}", x, y, rows, parts["val"],
                                   parts["test"], seed=seed + repeat + 1, **model_options).argmax(1)
            recall = {name: float(np.mean(predicted[truth == c] == c)) if (truth == c).any() else None
                      for c, name in enumerate(class_names)}
            points.append({"fraction": fraction, "n_train": int(len(rows)), "recall": recall,
                           "balanced_accuracy": training.balanced_accuracy(truth, predicted)})
    points.append({"fraction": 1.0, "n_train": int(len(parts["train"])), "balanced_accuracy": metrics["balanced_accuracy"],
                   "recall": {name: metrics["per_class"][name]["recall"] for name in class_names}})
    sizes = [p["n_train"] for p in points]
    overall = learning_curve(sizes, [p["balanced_accuracy"] for p in points], seed=seed)
    per_class = {name: learning_curve(sizes, [np.nan if p["recall"][name] is None else p["recall"][name] for p in points],
                                      seed=seed) for name in class_names}
    counts = {name: int((y[parts["train"]] == c).sum()) for c, name in enumerate(class_names)}
    return {"fractions": [p["fraction"] for p in points], "sizes": sizes,
            "scores": [round(p["balanced_accuracy"], 4) for p in points], "metric": "balanced_accuracy",
            "predicted": overall["predicted"], "plateau": overall["plateau"], "rate": overall["rate"],
            "scale": overall["scale"],
            "per_class": {name: {"scores": [p["recall"][name] for p in points], "predicted": fit["predicted"],
                                 "plateau": fit["plateau"]} for name, fit in per_class.items()},
            "advice": advice(overall, per_class, counts, unit=unit)}


def learning_curve_step(run: Run, x: np.ndarray, y: np.ndarray, parts: dict[str, np.ndarray], class_names: list[str],
                        metrics: dict, *, mode: str, train_seconds: float, seed: int, unit: str = "images",
                        **model_options) -> None:
    """Is my data enough? The task's learning curve in metrics["learning_curve"] with its figure, or the reason it
    was not run (metrics["learning_curve_skipped"], with what the second step would add). `model_options`: those
    of `side_model`."""
    from biolens.engine import distributed
    from biolens.report import figures

    skipped = (distributed.ACROSS_MACHINES_NOTE if distributed.cluster() is not None
               else learning_curve_plan(mode, y, parts, train_seconds, unit=unit))
    if skipped:
        metrics["learning_curve_skipped"] = skipped
        metrics["learning_curve_expected_seconds"] = round(learning_curve_seconds(train_seconds), 1)
        console.say(f"learning curve {skipped}")
        return
    with console.step(f"learning curve (1/8, 1/4, 1/2 of the training {unit}, 2 repeats)"):
        curve = learning_curve_in_run(run, x, y, parts, class_names, metrics, seed=seed, unit=unit, **model_options)
    metrics["learning_curve"] = curve
    figures.learning_curve(curve, run.path / "figures" / "learning_curve.png")
    console.say(curve["advice"])


SMALL_DATA_PER_CLASS = 30
CROSS_VALIDATION_FOLDS = 5


def is_small_data(y: np.ndarray) -> bool:
    return int(np.bincount(y).min()) < SMALL_DATA_PER_CLASS


def cross_validated_estimate(run: Run, x: np.ndarray, y: np.ndarray, class_names: list[str],
                             groups: np.ndarray | None, *, seed: int, **model_options) -> dict:
    """Small data: a single test set of a few images per class says little, so every image is scored once by a
    model that did not see it (stratified, grouped k-fold; each fold's model stops early on a validation part of
    its own training folds). Balanced accuracy of the pooled out-of-fold predictions, with a bootstrap CI (over
    groups when given) that reflects all n images rather than the test set's few."""
    from sklearn.model_selection import StratifiedGroupKFold

    k = max(2, min(CROSS_VALIDATION_FOLDS, int(np.bincount(y).min())))
    units = groups if groups is not None else np.arange(len(y))
    probs = np.zeros((len(y), len(class_names)))
    folds = StratifiedGroupKFold(k, shuffle=True, random_state=seed).split(np.zeros(len(y)), y, units)
    for fold, (rest, held_out) in enumerate(folds):
        inner = StratifiedGroupKFold(max(2, min(4, int(np.bincount(y[rest]).min()))), shuffle=True, random_state=seed)
        fit_rows, val_rows = next(inner.split(np.zeros(len(rest)), y[rest], units[rest]))
        console.say(f"small data: cross-validation fold {fold + 1} of {k}")
        probs[held_out] = side_model(run, f"cross_validation/fold{fold}", x, y, rest[fit_rows], rest[val_rows],
                                     held_out, seed=seed + fold + 1, **model_options)
    scored = evaluation.classification_metrics(y, probs, class_names, groups=groups, seed=seed)
    return {"folds": k, "balanced_accuracy": scored["balanced_accuracy"],
            "balanced_accuracy_ci95": scored["balanced_accuracy_ci95"], "accuracy": scored["accuracy"],
            "per_class_recall": {name: scored["per_class"][name]["recall"] for name in class_names}}
