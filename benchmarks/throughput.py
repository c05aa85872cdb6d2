#!/usr/bin/env python3
"""Training throughput of the default compact CNN (images/s) and its share of this machine's matmul peak.

FLOPs are counted from the layer shapes (2 x multiply-adds of every Conv2D and Dense), times 3 for a training
step (forward, and backward for inputs and weights). The peak is the measured float32 matmul GFLOP/s of
`biolens doctor`, so the share says how well convolutions use the machine, not a vendor's number.

usage: python benchmarks/throughput.py [--size 64] [--batch 32] [--steps 60]
"""
from __future__ import annotations

import argparse
import json
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def forward_flops(model) -> float:
    import keras

    total = 0.0
    for layer in model.layers:
        if isinstance(layer, keras.layers.Conv2D):
            _, h, w, c_out = layer.output.shape
            kh, kw = layer.kernel_size
            total += 2.0 * h * w * kh * kw * layer.input.shape[-1] * c_out
        elif isinstance(layer, keras.layers.Dense):
            total += 2.0 * layer.input.shape[-1] * layer.units
    return total


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--steps", type=int, default=60)
    args = parser.parse_args()

    import keras
    import numpy as np

    from biolens.hardware import measure_matmul_gflops
    from biolens.models.image import compact_cnn

    peak = measure_matmul_gflops(seconds=2.0)
    model = compact_cnn((args.size, args.size, 3), 3)
    model.compile(optimizer=keras.optimizers.AdamW(1e-3),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    n = args.batch * args.steps
    x = np.random.default_rng(0).uniform(0, 255, (n, args.size, args.size, 3)).astype("float32")
    y = np.random.default_rng(1).integers(0, 3, n)
    model.fit(x[: args.batch * 5], y[: args.batch * 5], batch_size=args.batch, epochs=1, verbose=0)  # warm-up
    start = time.perf_counter()
    model.fit(x, y, batch_size=args.batch, epochs=1, verbose=0)
    seconds = time.perf_counter() - start
    images_per_s = n / seconds
    train_gflops = 3 * forward_flops(model) * images_per_s / 1e9
    print(json.dumps({"image_size": args.size, "batch": args.batch, "cores": os.cpu_count(),
                      "forward_mflop_per_image": round(forward_flops(model) / 1e6, 1),
                      "training_images_per_s": round(images_per_s, 1),
                      "achieved_gflops": round(train_gflops, 1), "matmul_peak_gflops": round(peak, 1),
                      "share_of_peak": round(train_gflops / peak, 3)}, indent=2))


if __name__ == "__main__":
    main()
