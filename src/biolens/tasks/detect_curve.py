"""Is my annotation enough? The object network trained by the run's own rules on nested parts of the training
units (images or regions), each scored on the same held-out test units, and a learning curve in annotated objects.

Same recipe as the run (network, schedule, early stopping and threshold chosen on the same validation units);
only the training units differ, and each part holds the smaller ones, so the curve measures more annotation, not
different annotation. The curve and the advice are stats/learning_curve.py's, as for image classification.
"""
from __future__ import annotations

import dataclasses
import shutil

import numpy as np

from biolens import console
from biolens.engine import lifecycle
from biolens.runs import Run, read_json, write_json
from biolens.tasks.detect import MIN_STEPS, _in_box

FRACTIONS = (0.25, 0.5)
REPEATS = 2
MIN_OBJECTS_PER_CLASS = 10   # annotated training objects per class at the smallest part for "auto" to run
AUTO_SECONDS = 600           # "auto" runs it when the extra training is expected to take less than this
PLATEAU_HINT = ("Look at the worst held-out unit in this report: missed objects that are annotated, or found ones "
                "that are not, often mean an annotation to correct (biolens review shows the uncertain regions).")


def plan(mode: str, data, state: dict, run: Run, time_budget: float) -> str | None:
    """None when the learning curve should run, else the reason it does not (said in the report and the CLI)."""
    train = [u for u in data.units if u.split == "train"]
    expected = expected_seconds(state)
    again = (f"To see whether more annotation would help, add it to this run with biolens learning-curve: it "
             f"retrains on a quarter and a half of the training {_unit_words(data)}, about "
             f"{max(1, round(expected / 60))} more minutes here")
    if mode == "off":
        return f"turned off (--no-learning-curve). {again}"
    if len(train) < 4:
        return (f"not run: {len(train)} training {_unit_words(data)}, too few to train on a quarter of them "
                "(annotate more images)")
    if time_budget and lifecycle.elapsed_seconds(run) + expected > time_budget:
        return "not run: --time-budget leaves no time for it"
    if mode == "on":
        return None
    per_class = objects_per_class(data, train)
    smallest = min(per_class.values()) if per_class else 0
    if smallest * FRACTIONS[0] < MIN_OBJECTS_PER_CLASS:
        return (f"not run: the rarest class has {smallest} annotated training objects, too few to train on a quarter "
                "of them (--learning-curve forces it)")
    if expected > AUTO_SECONDS:
        return (f"not run: it would add about {expected / 60:.0f} minutes of training (add it to this run with biolens "
                f"learning-curve, or run with --learning-curve: it retrains on a quarter and a half of the training "
                f"{_unit_words(data)})")
    return None


def expected_seconds(state: dict) -> float:
    """Extra training time: every part is trained as the full run was (a part's epochs take at least MIN_STEPS
    steps, as every detection run's do)."""
    steps = max(int(state.get("steps_per_epoch", MIN_STEPS)), 1)
    return float(state.get("train_seconds", 0.0)) * REPEATS * sum(max(f, MIN_STEPS / steps) for f in FRACTIONS)


def _unit_words(data) -> str:
    return "regions" if data.region_split else "images"


def objects_per_class(data, units) -> dict[str, int]:
    classes = data.annotations.class_names
    counts = dict.fromkeys(classes, 0)
    for unit in units:
        item = data.annotations.items[unit.item]
        inside = _in_box(item.points, unit.box)
        for label in np.asarray(item.labels)[inside]:
            counts[label] += 1
    return counts


def nested_parts(units: list, seed: int) -> list[list[int]]:
    """Indices (into `units`) of the training units in each part, nested: each part holds the smaller ones."""
    train = [k for k, u in enumerate(units) if u.split == "train"]
    order = list(np.random.default_rng(seed).permutation(train))
    return [sorted(order[:max(1, round(f * len(train)))]) for f in FRACTIONS]


def learning_curve(run: Run, config, data, metrics: dict) -> dict:
    """Train and score the parts (resumable: each finished part leaves its scores in checkpoints/learning_curve/)."""
    from biolens.stats.learning_curve import advice
    from biolens.stats.learning_curve import learning_curve as fit
    from biolens.tasks import detect

    classes = data.annotations.class_names
    radius = 0.5 * data.size
    test = [u for u in data.units if u.split == "test"]
    points = []
    for repeat in range(REPEATS):
        for fraction, keep in zip(FRACTIONS, nested_parts(data.units, config.seed + 1000 * (repeat + 1))):
            name = f"learning_curve/{fraction:g}_{repeat}"
            folder = run.path / "checkpoints" / name
            saved = folder / "scores.json"
            if saved.exists():
                points.append(read_json(saved))
                continue
            units = [dataclasses.replace(u, split="train" if k in keep else "off") if u.split == "train" else u
                     for k, u in enumerate(data.units)]
            part = dataclasses.replace(data, units=units)
            n_objects = sum(objects_per_class(part, [units[k] for k in keep]).values())
            console.say(f"learning curve: {fraction:.0%} of the training {_unit_words(data)} ({n_objects} objects), "
                        f"repeat {repeat + 1} of {REPEATS}")
            # as many averaged networks as the run itself (the same recipe; only the training units differ)
            model, _ = detect._train_networks(run, config, part, int(metrics.get("networks", 1)), name=name,
                                              seed=config.seed + repeat + 1)
            # found as the run's own figures were (with flip averaging where the run kept it), so the 100% point
            # differs from the parts by the data only
            peaks, min_distance = detect._all_peaks(model, part, flips=bool(metrics.get("flips")))
            _, _, found = detect.calibrated_objects(part, peaks, min_distance, radius)
            rows = detect._unit_scores(part, found, test, radius)
            point = {"fraction": fraction, "n_objects": n_objects, "f1": detect._pooled(rows)["f1"],
                     "per_class": {name_: detect._pooled(rows, c)["f1"] for c, name_ in enumerate(classes)}}
            shutil.rmtree(folder, ignore_errors=True)  # the weights are not kept, only the scores
            folder.mkdir(parents=True)
            write_json(saved, point)
            points.append(point)
    train_units = [u for u in data.units if u.split == "train"]
    per_class_now = objects_per_class(data, train_units)
    points.append({"fraction": 1.0, "n_objects": sum(per_class_now.values()), "f1": metrics["f1"],
                   "per_class": {name: metrics["per_class"][name]["f1"] for name in classes}})
    sizes = [p["n_objects"] for p in points]
    overall = fit(sizes, [p["f1"] for p in points], seed=config.seed)
    per_class = {name: fit(sizes, [p["per_class"][name] for p in points], seed=config.seed) for name in classes}
    return {"fractions": [p["fraction"] for p in points], "sizes": sizes, "unit": "annotated objects",
            "scores": [round(p["f1"], 4) for p in points], "metric": "f1",
            "predicted": overall["predicted"], "plateau": overall["plateau"], "rate": overall["rate"],
            "scale": overall["scale"],
            "per_class": {name: {"scores": [p["per_class"][name] for p in points], "predicted": f["predicted"],
                                 "plateau": f["plateau"]} for name, f in per_class.items()},
            "advice": advice(overall, per_class, per_class_now, metric="object F1", unit="annotated objects",
                             class_metric="F1", plateau_hint=PLATEAU_HINT)}
