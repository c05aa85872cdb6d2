"""Memory and time to predict one very large image (issue 15: a 20,000 x 20,000 RGB image in under 4 GB).

Makes a `--side` x `--side` RGB TIFF by tiling real vgg_cells images (tiled TIFF, written band by band), then runs
`biolens predict RUN big.tif --out objects.csv` in a child process and reports its peak resident memory (the
kernel's ru_maxrss of that child) and wall time, with the count against the known number of cells per copy.
The run must be a detection run on vgg_cells (benchmarks/detect_vgg_cells.py makes one).

    .venv/bin/python benchmarks/detect_large_image.py --run runs/bench_vgg [--side 20000]
"""
from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "vgg_cells"


def write_big_tiff(path: Path, side: int) -> int:
    """A side x side mosaic of vgg_cells images 1-16 (256 px each); returns the number of annotated cells in it."""
    import tifffile
    from PIL import Image

    names = [f"{k:03d}.png" for k in range(1, 17)]
    tiles = [np.asarray(Image.open(DATA / "images" / name).convert("RGB")) for name in names]
    cells = [int((np.asarray(Image.open(DATA / "dots" / name)).reshape(256, 256, -1).max(-1) > 0).sum()) for name in names]
    n = side // 256
    total = 0

    def bands():
        nonlocal total
        for row in range(n):
            band = np.concatenate([tiles[(row * n + col) % 16] for col in range(n)], axis=1)
            total += sum(cells[(row * n + col) % 16] for col in range(n))
            yield band

    tifffile.imwrite(path, bands(), shape=(n * 256, n * 256, 3), dtype=np.uint8, photometric="rgb",
                     rowsperstrip=256, bigtiff=True)
    return total


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--run", default="runs/bench_vgg")
    parser.add_argument("--side", type=int, default=20000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        image = Path(folder) / "big.tif"
        started = time.time()
        cells = write_big_tiff(image, args.side)
        made = time.time() - started
        out = Path(folder) / "out" / "objects.csv"
        out.parent.mkdir()
        started = time.time()
        done = subprocess.run([sys.executable, "-m", "biolens", "predict", args.run, str(image), "--out", str(out)],
                              capture_output=True, text=True)
        seconds = time.time() - started
        peak_gb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024**2
        if done.returncode:
            print(done.stderr[-3000:])
            raise SystemExit(done.returncode)
        counts = (out.parent / "counts.csv").read_text().splitlines()[1].split(",")
        print(json.dumps({"side_px": (args.side // 256) * 256, "image_gb_uint8": round((args.side // 256 * 256) ** 2 * 3 / 1e9, 2),
                          "peak_resident_gb": round(peak_gb, 2), "predict_seconds": round(seconds),
                          "mosaic_seconds": round(made), "true_cells": cells, "count": int(counts[2]),
                          "objects_found": int(counts[3])}, indent=1))


if __name__ == "__main__":
    main()
