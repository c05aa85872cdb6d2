"""Training images/s of the default compact CNN on a GPU: float32 vs mixed_float16, XLA (jit_compile) on vs off.

Backend-neutral (plain `keras` fit on in-memory arrays; the matmul peak measured with keras.ops), so it also runs on
a GPU machine that has Keras and JAX but no TensorFlow (`KERAS_BACKEND=jax`); the backend is printed with the
figures. The share of peak uses 3 x the forward FLOPs of a training step, against the measured matmul rate of the
same dtype policy (float32 matmul for float32, float16 for mixed_float16).

    KERAS_BACKEND=jax python benchmarks/gpu_throughput.py [--size 64] [--batches 32,256] [--images 20000]
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))


def matmul_tflops(dtype: str, n: int = 8192, repeats: int = 20) -> float:
    from keras import ops, random

    a = random.normal((n, n), dtype=dtype)
    b = random.normal((n, n), dtype=dtype)
    float(ops.convert_to_numpy(ops.sum(ops.matmul(a, b))))  # warm-up (and compilation)
    start = time.perf_counter()
    total = a
    for _ in range(repeats):
        total = ops.matmul(total, b) * 1e-4
    float(ops.convert_to_numpy(ops.sum(total)))  # waits for the device
    return 2.0 * n**3 * repeats / (time.perf_counter() - start) / 1e12


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--batches", default="32,256")
    parser.add_argument("--images", type=int, default=20000)
    parser.add_argument("--matmul-n", type=int, default=8192)
    parser.add_argument("--jit", default="off,on", help="XLA settings to time (on JAX, 'off' runs op by op: very slow)")
    args = parser.parse_args()

    import keras

    from biolens.models.image import compact_cnn, forward_flops

    rng = np.random.default_rng(0)
    x = rng.uniform(0, 255, (args.images, args.size, args.size, 3)).astype("float32")
    y = rng.integers(0, 3, args.images)
    peaks = {"float32": matmul_tflops("float32", args.matmul_n), "mixed_float16": matmul_tflops("float16", args.matmul_n)}
    rows = []
    for policy in ("float32", "mixed_float16"):
        for jit in [mode == "on" for mode in args.jit.split(",")]:
            for batch in map(int, args.batches.split(",")):
                keras.mixed_precision.set_global_policy(policy)
                keras.utils.set_random_seed(0)
                model = compact_cnn((args.size, args.size, 3), 3)
                model.compile(optimizer=keras.optimizers.AdamW(1e-3), jit_compile=jit,
                              loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
                model.fit(x[: batch * 5], y[: batch * 5], batch_size=batch, epochs=1, verbose=0)  # warm-up, compile
                start = time.perf_counter()
                model.fit(x, y, batch_size=batch, epochs=1, verbose=0)
                per_s = args.images / (time.perf_counter() - start)
                achieved = 3 * forward_flops(model) * per_s / 1e12
                rows.append({"policy": policy, "jit_compile": jit, "batch": batch, "train_images_per_s": round(per_s),
                             "achieved_tflops": round(achieved, 2), "share_of_matmul_peak": round(achieved / peaks[policy], 3)})
                print(json.dumps(rows[-1]), flush=True)
    keras.mixed_precision.set_global_policy("float32")
    print(json.dumps({"backend": keras.backend.backend(), "devices": _devices(), "image_size": args.size,
                      "matmul_peak_tflops": {k: round(v, 1) for k, v in peaks.items()}}, indent=1))


def _devices() -> str:
    import keras

    if keras.backend.backend() == "jax":
        import jax

        return ", ".join(d.device_kind for d in jax.devices())
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        return ", ".join(d.name for d in tf.config.list_physical_devices()) or "cpu"
    return "?"


if __name__ == "__main__":
    main()
