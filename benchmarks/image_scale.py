"""Peak memory of `biolens train` on a generated folder of 100,000 images (issue 7: data larger than memory).

Generates --n images (random textures with a class-dependent colour, --source px) in two class folders, then runs
`biolens train FOLDER --image-size 128 --epochs 1 --time-budget T --no-learning-curve` in a child process and samples
its memory every 50 ms: RssAnon (the process's own memory) and VmHWM (which also counts the memory-mapped cache
pages that happen to be resident, reclaimable by the kernel). At 128 px the decoded set is n x 49 kB (4.9 GB for
100,000), above the 2 GiB in-memory limit, so the pixels go to a memory-mapped cache file.

    .venv/bin/python benchmarks/image_scale.py [--n 100000] [--time-budget 120] [--work /tmp/image_scale]
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np


def write_images(args):
    folder, label, start, count, side, seed = args
    from PIL import Image

    rng = np.random.default_rng(seed)
    tint = np.array([40, 0, 0] if label == "pink" else [0, 0, 40], dtype=np.int16)
    for k in range(start, start + count):
        pixels = np.clip(rng.integers(60, 200, (side, side, 3)) + tint, 0, 255).astype(np.uint8)
        Image.fromarray(pixels).save(folder / label / f"{k:06d}.png", compress_level=1)


def status_kb(pid: int, field: str) -> int:
    with open(f"/proc/{pid}/status") as handle:
        for line in handle:
            if line.startswith(field):
                return int(line.split()[1])
    return 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--source", type=int, default=48)
    parser.add_argument("--time-budget", type=float, default=120)
    parser.add_argument("--work", default="/tmp/image_scale")
    args = parser.parse_args()
    work = Path(args.work)
    folder = work / "images"
    if not folder.exists() or sum(1 for _ in folder.rglob("*.png")) != args.n:
        shutil.rmtree(work, ignore_errors=True)
        jobs = []
        for c, label in enumerate(("pink", "blue")):
            (folder / label).mkdir(parents=True)
            per = args.n // 2
            chunk = 5000
            jobs += [(folder, label, s, min(chunk, per - s), args.source, 1000 * c + s) for s in range(0, per, chunk)]
        started = time.time()
        with ProcessPoolExecutor(os.cpu_count()) as pool:
            list(pool.map(write_images, jobs))
        print(f"generated {args.n} images in {time.time() - started:.0f} s")
    out = work / "run"
    shutil.rmtree(out, ignore_errors=True)
    command = [sys.executable, "-m", "biolens", "train", str(folder), "--out", str(out), "--image-size", "128",
               "--epochs", "1", "--time-budget", str(args.time_budget), "--no-learning-curve"]
    started = time.time()
    child = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    peak_anon = peak_hwm = 0
    while child.poll() is None:
        try:
            peak_anon = max(peak_anon, status_kb(child.pid, "RssAnon"))
            peak_hwm = max(peak_hwm, status_kb(child.pid, "VmHWM"))
        except (FileNotFoundError, ProcessLookupError):
            break
        time.sleep(0.05)
    seconds = time.time() - started
    if child.wait() != 0:
        print(child.stderr.read()[-3000:])
        raise SystemExit("biolens train failed")
    metrics = json.loads((out / "metrics.json").read_text())
    decoded_gb = args.n * 128 * 128 * 3 / 2**30
    print(json.dumps({"images": args.n, "decoded_gb_at_128px": round(decoded_gb, 2),
                      "cache_file": (out / "cache" / "pixels_128.npy").exists(),
                      "peak_anonymous_gb": round(peak_anon / 2**20, 2), "peak_vmhwm_gb": round(peak_hwm / 2**20, 2),
                      "seconds": round(seconds), "test_balanced_accuracy": metrics["balanced_accuracy"]}, indent=2))


if __name__ == "__main__":
    main()
