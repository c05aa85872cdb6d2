#!/usr/bin/env python3
"""biolens train against TensorFlow's image-classification tutorial recipe, same data, same machine, one run.

1. biolens trains on the data with its grouped split (train / validation / test).
2. The tutorial script (../shared/baselines/keras_tutorial.py, run unmodified in this process with runpy)
   trains on the same train + validation images, with its own random 80/20 split.
3. Reported: seconds for biolens to reach the tutorial's best validation accuracy, and the held-out
   balanced accuracy of both models on the same test images (the tutorial never sees them).

usage: python benchmarks/images_vs_tutorial.py [MANIFEST_OR_FOLDER] [--group-column source_image]
       [--tutorial-epochs 10] [--epochs 30] [--out runs/bench_tutorial]
"""
from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import runpy
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
ROOT = Path(__file__).resolve().parents[1]
BASELINE = ROOT.parent / "shared" / "baselines" / "keras_tutorial.py"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("data", nargs="?", default=str(ROOT.parent / "shared/data/blood_cells/manifest.csv"))
    parser.add_argument("--group-column", default="source_image")
    parser.add_argument("--tutorial-epochs", type=int, default=10)
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--out", default=str(ROOT / "runs" / "bench_tutorial"))
    args = parser.parse_args()

    import numpy as np
    import pandas as pd

    import biolens
    from biolens.hardware import measure_matmul_gflops

    gflops = measure_matmul_gflops()
    group = args.group_column if args.data.endswith(".csv") else None
    out = Path(args.out)
    if out.exists():
        import shutil
        shutil.rmtree(out)
    start = time.perf_counter()
    run = biolens.train(args.data, out, group_column=group, epochs=args.epochs, seed=0)
    biolens_wall = time.perf_counter() - start
    history = pd.read_csv(run.path / "history.csv")
    splits = pd.read_csv(run.path / "splits.csv")
    metrics = run.metrics

    # The tutorial sees exactly biolens' train + validation images, as a folder of class folders.
    with tempfile.TemporaryDirectory() as tmp:
        for row in splits[splits.split != "test"].itertuples():
            target = Path(tmp) / row.label / f"{row.Index}_{Path(row.file).name}"
            target.parent.mkdir(exist_ok=True)
            target.symlink_to(Path(row.file).resolve())
        log = io.StringIO()
        sys.argv = ["keras_tutorial.py", tmp, "--epochs", str(args.tutorial_epochs)]
        with contextlib.redirect_stdout(log):
            tutorial = runpy.run_path(str(BASELINE), run_name="__main__")
    lines = [json.loads(line) for line in log.getvalue().splitlines() if line.startswith("{")]
    epochs = [line for line in lines if "epoch" in line]
    summary = lines[-1]
    target = summary["best_val_accuracy"]
    tutorial_time_to_best = next(e["seconds"] for e in epochs if e["val_accuracy"] >= target)
    reached = history[history.val_accuracy >= target]
    biolens_time_to_target = float(reached.elapsed_s.iloc[0]) if len(reached) else None

    # Held-out test: the same images for both models, each preprocessed as its own recipe does.
    import keras
    from biolens.engine.evaluation import classification_metrics, softmax

    test = splits[splits.split == "test"]
    size = 180
    class_names = sorted(splits.label.unique())
    pixels = np.stack([keras.utils.img_to_array(keras.utils.load_img(f, target_size=(size, size))) for f in test.file])
    logits = tutorial["model"].predict(pixels, verbose=0)
    truth = np.array([class_names.index(label) for label in test.label])
    groups = test.group.astype(str).to_numpy() if group else None
    tutorial_metrics = classification_metrics(truth, softmax(logits), class_names, groups=groups)

    train_images = int(metrics["n_train"]) * int(metrics["epochs_run"])
    report = {
        "machine_matmul_gflops": round(gflops, 1),
        "tutorial": {"epochs": args.tutorial_epochs, "seconds": summary["seconds"],
                     "best_val_accuracy": target, "seconds_to_best": tutorial_time_to_best,
                     "test_balanced_accuracy": round(tutorial_metrics["balanced_accuracy"], 4),
                     "test_balanced_accuracy_ci95": [round(v, 4) for v in tutorial_metrics["balanced_accuracy_ci95"]]},
        "biolens": {"epochs_run": int(metrics["epochs_run"]), "training_seconds": metrics["train_seconds"],
                    "wall_seconds_including_reading_and_report": round(biolens_wall, 1),
                    "seconds_to_tutorial_best_val_accuracy": biolens_time_to_target,
                    "test_balanced_accuracy": round(metrics["balanced_accuracy"], 4),
                    "test_balanced_accuracy_ci95": [round(v, 4) for v in metrics["balanced_accuracy_ci95"]],
                    "training_images_per_second": round(train_images / metrics["train_seconds"], 1)},
    }
    if biolens_time_to_target is not None:
        report["speedup_to_tutorial_accuracy"] = round(tutorial_time_to_best / max(biolens_time_to_target, 1e-9), 2)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
