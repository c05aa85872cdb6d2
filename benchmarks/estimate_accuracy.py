"""Is `biolens doctor --estimate` within a factor of 1.5 of the epoch time a real run measures?

For each labelled image set: the estimate (a probe of a few seconds), then a real `biolens train` of --epochs epochs
on the same machine, and the ratio of the estimate to the run's median epoch time (epochs after the first, which
builds the graph). Run alone: other processes on the cores distort both figures.

    .venv/bin/python benchmarks/estimate_accuracy.py [DATA ...] [--epochs 4]
"""
from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", nargs="*", default=[str(ROOT.parent / "shared/data/blood_cells/manifest.csv"),
                                                    str(ROOT / "examples/blood_cells_slice/manifest.csv")])
    parser.add_argument("--epochs", type=int, default=4)
    args = parser.parse_args()
    rows = []
    for data in args.data:
        estimate = json.loads(subprocess.run([sys.executable, "-m", "biolens", "doctor", "--estimate", data, "--json"],
                                             capture_output=True, text=True, check=True).stdout)
        out = Path(tempfile.mkdtemp()) / "run"
        subprocess.run([sys.executable, "-m", "biolens", "train", data, "--out", str(out), "--epochs", str(args.epochs),
                        "--no-learning-curve", "--patience", str(args.epochs)], capture_output=True, check=True)
        history = pd.read_csv(out / "history.csv")
        measured = float(history.elapsed_s.diff().dropna().median())
        name = Path(data).parent.name if Path(data).suffix == ".csv" else Path(data).name
        rows.append({"data": name, "images": estimate["n_images"], "size": estimate["image_size"],
                     "batch": estimate["batch_size"], "estimated_epoch_s": estimate["epoch_seconds"],
                     "measured_epoch_s": round(measured, 1), "ratio": round(estimate["epoch_seconds"] / measured, 2),
                     "estimated_memory_gb": estimate["memory_gb"]})
        shutil.rmtree(out.parent)
    table = pd.DataFrame(rows)
    print(table.to_string(index=False))
    print("within a factor of 1.5:", bool(((table.ratio >= 1 / 1.5) & (table.ratio <= 1.5)).all()))


if __name__ == "__main__":
    main()
