"""Memory held per object network trained in one process. A default detection run on few objects trains up to 18
networks (3 averaged x held-out, 4 learning-curve parts, final); each newly compiled XLA training step stays in
TensorFlow's compilation cache until the process ends. `tasks.detect.compiled_network` reuses one compiled model
per architecture; the baseline, in the same script, compiles a new model for every network (as biolens did
before 2026-12-03). Each way runs in its own process: `--networks` trainings of a few steps on 128 px tiles, each
followed by a detached copy searched once with the XLA inference pass, as a run does. Reported: resident memory
after each network and the growth per network after the first.

    python benchmarks/detect_network_memory.py [--networks 8] [--steps 6]
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys

CHILD = """
import gc, json, os, sys
import numpy as np
import keras
from biolens.engine.training import compiled_forward
from biolens.models.objects import detached_copy
from biolens.tasks import detect

reuse, networks, steps = sys.argv[1] == "reuse", int(sys.argv[2]), int(sys.argv[3])
rng = np.random.default_rng(0)
x = rng.uniform(0, 255, (detect.TRAIN_BATCH * steps, detect.TRAIN_TILE, detect.TRAIN_TILE, 3)).astype("float32")
y = np.zeros(x.shape[:3] + (6,), "float32")
y[..., -1] = 1.0
rows = []
for k in range(networks):
    if not reuse:
        detect._NETWORKS.clear()  # the baseline: a model compiled anew for every network
    keras.utils.set_random_seed(k)
    model = detect.compiled_network(1, 3, "points", 2e-3, steps, 2)
    model.fit(x, y, batch_size=detect.TRAIN_BATCH, epochs=2, verbose=0)
    copy = detached_copy(model)
    compiled_forward(copy, xla=True)(np.zeros((4, 576, 576, 3), "float32"))
    del model, copy
    gc.collect()
    rows.append(int(open("/proc/self/statm").read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20)
print(json.dumps(rows))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--networks", type=int, default=8)
    parser.add_argument("--steps", type=int, default=6)
    args = parser.parse_args()
    results = {}
    for way in ("new model each time", "reuse"):
        done = subprocess.run([sys.executable, "-c", CHILD, "reuse" if way == "reuse" else "new", str(args.networks),
                               str(args.steps)], capture_output=True, text=True, check=True)
        rows = json.loads(done.stdout.strip().splitlines()[-1])
        results[way] = rows
        growth = (rows[-1] - rows[0]) / max(1, len(rows) - 1)
        print(f"{way:>20}: MB after each network {[round(r) for r in rows]}; growth per network after the first "
              f"{growth:.0f} MB", flush=True)
    print(json.dumps(results))


if __name__ == "__main__":
    main()
