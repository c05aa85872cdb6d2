"""The shared training loop's parts: tf.data batches, compiled inference, batch-norm statistics, atomic model
files and the resumable per-epoch state in the run folder (the Keras callbacks that use them: engine/callbacks.py).

Keras and TensorFlow are imported where they are used, not with this module, so that a command refused for its
input (a missing folder, a bad option) answers before TensorFlow's start-up (about 6 s on 2 cores).
"""
from __future__ import annotations

import weakref
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from biolens.runs import atomic_path, read_json, write_csv

if TYPE_CHECKING:
    import keras

STATE_FILE = "checkpoints/state.json"


def image_batches(pixels: np.ndarray, labels: np.ndarray, indices: np.ndarray, batch_size: int, *,
                  shuffle: bool, augment: bool, seed: int):
    """Image batches; augmentation suits microscopy, where orientation carries no meaning: the 8
    flips/90-degree rotations, and small brightness, contrast and colour jitter."""
    return array_batches(pixels, labels, indices, batch_size, shuffle=shuffle, seed=seed,
                         transform=_augment if augment else None)


def array_batches(x: np.ndarray, labels: np.ndarray, indices: np.ndarray, batch_size: int, *,
                  shuffle: bool, seed: int, transform=None):
    """tf.data pipeline over a uint8 array held in memory or memory-mapped (pixels, one-hot sequences).

    Indices are shuffled and batched first, then each batch is gathered from the array, so a cache
    larger than memory streams from disk. `transform(batch, seed_pair)` augments batches when given.
    """
    import tensorflow as tf

    item_shape = tuple(x.shape[1:])
    data = tf.data.Dataset.from_tensor_slices(np.asarray(indices, dtype=np.int64))
    if shuffle:
        data = data.shuffle(len(indices), seed=seed, reshuffle_each_iteration=True)
    data = data.batch(batch_size)

    def gather(batch_index):
        def take(idx):
            order = np.argsort(idx)
            out = np.empty((len(idx), *item_shape), np.uint8)
            out[order] = x[idx[order]]  # sorted reads are fast on a memory map
            return out, labels[idx].astype(np.int32)

        batch, y = tf.numpy_function(take, [batch_index], (tf.uint8, tf.int32))
        batch.set_shape((None, *item_shape))
        y.set_shape((None,))
        return tf.cast(batch, tf.float32), y

    data = data.map(gather, num_parallel_calls=tf.data.AUTOTUNE)
    if transform is not None:
        seeds = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True).batch(2)
        data = tf.data.Dataset.zip(data, seeds).map(transform, num_parallel_calls=tf.data.AUTOTUNE)
    return data.prefetch(tf.data.AUTOTUNE)


def _augment(batch, seed):
    import tensorflow as tf

    x, y = batch
    n = tf.shape(x)[0]
    keys = [tf.stack([seed[0], seed[1] + k]) for k in range(5)]
    transpose = tf.random.stateless_uniform([n, 1, 1, 1], keys[0]) < 0.5
    x = tf.where(transpose, tf.transpose(x, [0, 2, 1, 3]), x)   # with the two flips: all 8 dihedral views
    x = tf.image.stateless_random_flip_left_right(x, keys[1])
    x = tf.image.stateless_random_flip_up_down(x, keys[2])
    gain = tf.random.stateless_uniform([n, 1, 1, tf.shape(x)[3]], keys[3], 0.93, 1.07)   # colour / stain
    shift = tf.random.stateless_uniform([n, 1, 1, 1], keys[4], -12.0, 12.0)             # brightness
    mean = tf.reduce_mean(x, axis=[1, 2, 3], keepdims=True)
    contrast = tf.random.stateless_uniform([n, 1, 1, 1], keys[4] + 7, 0.9, 1.1)
    x = (x - mean) * contrast + mean
    return tf.clip_by_value(x * gain + shift, 0.0, 255.0), y


def predict_logits(model: keras.Model, x: np.ndarray, indices: np.ndarray | None = None,
                   batch_size: int = 64) -> np.ndarray:
    """Logits for the given rows, batch by batch (never the whole array as floats at once)."""
    rows = np.arange(len(x)) if indices is None else np.asarray(indices)
    forward = compiled_forward(model)
    out = []
    for start in range(0, len(rows), batch_size):
        chunk = np.sort(rows[start:start + batch_size])
        order = np.argsort(np.argsort(rows[start:start + batch_size]))
        logits = np.asarray(forward(np.asarray(x[chunk], dtype=np.float32)), dtype=np.float64)
        out.append(logits[order])
    return np.concatenate(out) if out else np.zeros((0, model.output_shape[-1]))


_FORWARD: dict[bool, "weakref.WeakKeyDictionary"] = {False: weakref.WeakKeyDictionary(), True: weakref.WeakKeyDictionary()}


def compiled_forward(model: keras.Model, *, xla: bool = False):
    """The model's inference pass as one compiled graph (op-by-op eager calls ran at 2/3 of model.predict's
    speed, benchmarks/throughput.py); a plain graph, not model.predict, so it is the same under any strategy.
    xla: compiled by XLA as well, for inputs of few fixed shapes (object tiles: a batch of 4 tiles of 576 px took
    2.36 GB resident eagerly, 1.08 GB through XLA, and 25% less time)."""
    forward = _FORWARD[xla].get(model)
    if forward is None:
        import tensorflow as tf

        network = weakref.ref(model)  # a strong reference here would keep every model ever searched alive
        forward = tf.function(lambda batch: network()(batch, training=False), reduce_retracing=True, jit_compile=xla)
        _FORWARD[xla][model] = forward
    return forward


def balanced_accuracy(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    recalls = [np.mean(y_pred[y_true == c] == c) for c in np.unique(y_true)]
    return float(np.mean(recalls)) if recalls else float("nan")


def _batch_norm_layers(layer) -> list:
    import keras

    found = [layer] if isinstance(layer, keras.layers.BatchNormalization) else []
    for inner in getattr(layer, "layers", []):
        found += _batch_norm_layers(inner)
    return found


def recalibrate_batch_norm(model: keras.Model, x: np.ndarray, rows: np.ndarray, batch_size: int = 256) -> None:
    """Batch-norm running statistics re-read for the model's current weights: the plain mean over batches of
    `rows` of each layer's batch statistics (momentum set per batch, then restored). Weights are not touched.
    One large batch by default: eager calls are slow, and 256 inputs x positions give steady statistics."""
    norms = _batch_norm_layers(model)
    if not norms or not len(rows):
        return
    momenta = [layer.momentum for layer in norms]
    try:
        for k, start in enumerate(range(0, len(rows), batch_size)):
            for layer in norms:
                layer.momentum = k / (k + 1)  # running mean of the per-batch statistics
            model(np.asarray(x[rows[start:start + batch_size]], dtype=np.float32), training=True)
    finally:
        for layer, momentum in zip(norms, momenta):
            layer.momentum = momentum


def save_model(model: keras.Model, path: Path) -> None:
    """`model` as a .keras file at `path`, atomically (the temporary file beside it keeps the .keras suffix)."""
    with atomic_path(path) as tmp:
        model.save(tmp)


def write_history(path: Path, rows: list[dict]) -> None:
    columns = list(dict.fromkeys(key for row in rows for key in row))
    write_csv(path, columns, [[row.get(key, "") for key in columns] for row in rows])


def load_state(run_path: Path) -> dict:
    path = Path(run_path) / STATE_FILE
    return read_json(path) if path.exists() else {}
