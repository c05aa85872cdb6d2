"""Counting cells in ../shared/data/vgg_cells with the standard protocol: train on the first 32 images, test on the
last 100 (published count MAE: FCRN 2.9, Count-ception 2.3). The dots are turned into a points CSV with a `split`
column, so biolens detect uses exactly that split; the Laplacian-of-Gaussian baseline runs in the same run.

    python benchmarks/detect_vgg_cells.py [--train 32] [--epochs 0] [--out runs/bench_vgg] [--density-weight W]
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
from PIL import Image

import biolens

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "vgg_cells"


def points_csv(folder: Path, n_train: int, n_test: int = 100) -> Path:
    names = sorted(p.name for p in (DATA / "images").glob("*.png"))
    rows = ["image,x,y,split"]
    for k, name in enumerate(names):
        split = "train" if k < n_train else "test" if k >= len(names) - n_test else None
        if split is None:
            continue
        dots = np.asarray(Image.open(DATA / "dots" / name).convert("RGB"))[..., 0] > 0
        ys, xs = np.nonzero(dots)
        rows += [f"{name},{x + 0.5},{y + 0.5},{split}" for x, y in zip(xs, ys)]
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "vgg_points.csv"
    path.write_text("\n".join(rows) + "\n")
    return path


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--train", type=int, default=32)
    parser.add_argument("--epochs", type=int, default=0, help="most epochs (0: biolens chooses from the annotations)")
    parser.add_argument("--out", default="runs/bench_vgg")
    parser.add_argument("--density-weight", type=float, default=None,
                        help="override biolens.models.objects.DENSITY_WEIGHT (the density loss's weight)")
    args = parser.parse_args()
    if args.density_weight is not None:
        from biolens.models import objects as object_models  # (importing `biolens.` here would shadow the module)

        object_models.DENSITY_WEIGHT = args.density_weight
    csv = points_csv(Path(args.out + "_data"), args.train)
    started = time.time()
    run = biolens.detect(csv, out=args.out, images=str(DATA / "images"), epochs=args.epochs, learning_curve="off")
    metrics = run.metrics
    print(json.dumps({"seconds": round(time.time() - started), "count_mae": metrics["count_mae"],
                      "count_mae_ci95": metrics["count_mae_ci95"], "f1": metrics["f1"],
                      "count_method": metrics.get("count_method"), "count_mae_peaks": metrics.get("count_mae_peaks"),
                      "count_mae_density": metrics.get("count_mae_density"),
                      "baseline_count_mae": metrics["baseline"]["count_mae"], "baseline_f1": metrics["baseline"]["f1"],
                      "epochs_run": metrics["epochs_run"], "train_seconds": metrics["train_seconds"]}, indent=1))


if __name__ == "__main__":
    main()
