#!/usr/bin/env python3
"""Training throughput of the default compact CNN (images/s) and its share of this machine's matmul peak.

FLOPs are counted from the layer shapes (2 x multiply-adds of every Conv2D and Dense), times 3 for a training
step (forward, and backward for inputs and weights). The peak is the measured float32 matmul GFLOP/s of
`biolens doctor`, so the share says how well convolutions use the machine, not a vendor's number.

Timed in the same process: the biolens path (uint8 pixels gathered by tf.data, augmented on the fly, class
weights), the same path without augmentation (the like-for-like comparison), and a plain Keras loop of the same
model (model.fit / model.predict on a float32 array in memory, no augmentation).

usage: python benchmarks/throughput.py [--size 64] [--batch 32] [--steps 60] [--mixed-precision auto|on|off]
                                       [--jit auto|on|off]
"""
from __future__ import annotations

import argparse
import json
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--mixed-precision", choices=["auto", "on", "off"], default="auto")
    parser.add_argument("--jit", choices=["auto", "on", "off"], default="auto",
                        help="XLA for the train step: Keras' default 'auto' (on when every layer supports it), on, off")
    args = parser.parse_args()

    import keras
    import numpy as np

    from biolens import hardware
    from biolens.models.image import compact_cnn, forward_flops
    from biolens.engine import training

    device, _ = hardware.setup(args.mixed_precision)
    peak = hardware.measure_matmul_gflops(seconds=2.0)
    n = args.batch * args.steps
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, (n, args.size, args.size, 3), dtype=np.uint8)
    labels = rng.integers(0, 3, n)

    jit = {"auto": "auto", "on": True, "off": False}[args.jit]

    def fresh_model():
        keras.utils.set_random_seed(0)
        model = compact_cnn((args.size, args.size, 3), 3)
        model.compile(optimizer=keras.optimizers.AdamW(1e-3), jit_compile=jit,
                      loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        return model

    def timed(run) -> float:
        start = time.perf_counter()
        run(warm_up=False)
        return n / (time.perf_counter() - start)

    # biolens: the uint8 array gathered batch by batch through tf.data, augmented on the fly, class weights
    biolens_model = fresh_model()
    weights = {c: 1.0 for c in range(3)}

    def biolens_fit(warm_up, augment=True):
        rows = np.arange(args.batch * 5 if warm_up else n)
        data = training.image_batches(pixels, labels, rows, args.batch, shuffle=True, augment=augment, seed=0)
        biolens_model.fit(data, epochs=1, class_weight=weights, verbose=0)

    # plain Keras: the same model fitted on a float32 array already in memory, no augmentation
    plain_model = fresh_model()
    floats = pixels.astype("float32")

    def plain_fit(warm_up):
        rows = slice(0, args.batch * 5) if warm_up else slice(None)
        plain_model.fit(floats[rows], labels[rows], batch_size=args.batch, epochs=1, verbose=0)

    def biolens_predict(warm_up):
        training.predict_logits(biolens_model, pixels[: 256] if warm_up else pixels)

    def plain_predict(warm_up):
        plain_model.predict(floats[: 256] if warm_up else floats, batch_size=64, verbose=0)

    contenders = {"train_biolens": biolens_fit, "train_plain_keras": plain_fit,
                  "train_biolens_no_augmentation": lambda warm_up: biolens_fit(warm_up, augment=False),
                  "inference_biolens": biolens_predict, "inference_plain_keras": plain_predict}
    for run in contenders.values():
        run(warm_up=True)
    figures = {name: 0.0 for name in contenders}
    for _ in range(args.rounds):  # interleaved rounds, best of each: order and frequency changes even out
        for name, run in contenders.items():
            figures[name] = max(figures[name], timed(run))
        peak = max(peak, hardware.measure_matmul_gflops(seconds=2.0))
    flops = forward_flops(biolens_model)
    print(json.dumps({"device": device.describe(), "mixed_precision": device.mixed_precision, "jit_compile": args.jit,
                      "image_size": args.size, "batch": args.batch, "cores": os.cpu_count(),
                      "forward_mflop_per_image": round(flops / 1e6, 1), "matmul_peak_gflops": round(peak, 1),
                      **{f"{k}_images_per_s": round(v, 1) for k, v in figures.items()},
                      "train_share_of_peak_biolens": round(3 * flops * figures["train_biolens"] / 1e9 / peak, 3),
                      "train_share_of_peak_plain": round(3 * flops * figures["train_plain_keras"] / 1e9 / peak, 3),
                      "train_biolens_vs_plain": round(figures["train_biolens"] / figures["train_plain_keras"], 2),
                      "train_biolens_no_augmentation_vs_plain": round(
                          figures["train_biolens_no_augmentation"] / figures["train_plain_keras"], 2)},
                     indent=2))


if __name__ == "__main__":
    main()
