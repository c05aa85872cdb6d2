"""A large aerial tile boxed on one corner, the way a user meets it: the crowns of the left half of
../shared/data/trees/2019_YELL_2_541000_4977000_image_crop.png (133 crowns) are given as a boxes CSV on an image
that holds that crop in its top-left corner and mirrored copies of it around (10,350 x 9,992 px). `biolens detect`
(defaults, `--epochs` short: the cost outside training is what is measured) runs once on the large tile and once on
the crop alone, each in its own process; the figures are wall time and peak resident memory of each, side by side.
The large tile should cost about what its annotated corner costs (the rest is only predicted on).

    python benchmarks/detect_partial_tile.py [--epochs 1] [--out runs/bench_partial_tile]
"""
from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from detect_trees import (  # benchmarks/detect_trees.py: the same tile and crowns
    DATA,
    TILE,
    crowns,
)
from PIL import Image


def left_half_crowns() -> np.ndarray:
    boxes = crowns()
    return boxes[(boxes[:, 0] + boxes[:, 2]) / 2 < 1249 / 2]  # detect_trees.py's training half


def write_case(folder: Path, image: np.ndarray, boxes: np.ndarray) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    Image.fromarray(image).save(folder / "tile.png")
    rows = ["image,xmin,ymin,xmax,ymax,label"] + [f"tile.png,{a:.0f},{b:.0f},{c:.0f},{d:.0f},Tree" for a, b, c, d in boxes]
    (folder / "crowns.csv").write_text("\n".join(rows) + "\n")
    return folder / "crowns.csv"


CHILD = """
import resource, sys
from biolens.cli import main
try:
    main()
finally:
    sys.stderr.write(f"peak_kb {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}\\n")
"""


def run_detect(annotations: Path, out: Path, epochs: int) -> dict:
    """One `biolens detect` in a child process: its wall time and its own peak resident memory."""
    shutil.rmtree(out, ignore_errors=True)
    started = time.time()
    done = subprocess.run([sys.executable, "-c", CHILD, "detect", str(annotations), "--out", str(out),
                           "--epochs", str(epochs)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                           check=False)
    peak = [line for line in done.stderr.splitlines() if line.startswith("peak_kb")]
    if done.returncode or not peak:
        raise SystemExit(f"biolens detect failed:\n{done.stderr[-2000:]}")
    metrics = json.loads((out / "metrics.json").read_text())
    return {"seconds": round(time.time() - started, 1), "peak_gb": round(int(peak[-1].split()[1]) / 1e6, 2),
            "f1": metrics.get("f1"), "networks": metrics.get("networks")}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--out", default="runs/bench_partial_tile")
    args = parser.parse_args()
    out = Path(args.out)
    crop = np.asarray(Image.open(DATA / f"{TILE}.png").convert("RGB"))
    row = np.concatenate([crop, crop[:, ::-1]] * 4, axis=1)
    large = np.concatenate([row, row[::-1]] * 5, axis=0)
    boxes = left_half_crowns()
    results = {}
    for name, image in (("corner alone", crop), ("large tile", large)):
        annotations = write_case(out / f"{name.replace(' ', '_')}_data", image, boxes)
        results[name] = {"pixels": f"{image.shape[1]} x {image.shape[0]}",
                         **run_detect(annotations, out / name.replace(" ", "_"), args.epochs)}
        print(name, results[name], flush=True)
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
