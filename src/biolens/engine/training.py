"""The shared training loop: Keras `fit` over tf.data, with resumable per-epoch state in the run folder.

`RunMonitor` does what a biologist's run needs at each epoch end, in one place so that it survives a
kill: validation scores (balanced accuracy, which class imbalance cannot flatter), the best model so
far, early stopping, the time budget, history.csv, and an atomic checkpoint to resume from.
"""
from __future__ import annotations

import time
import weakref
from pathlib import Path

import keras
import numpy as np

from biolens.runs import atomic_path, read_json, write_csv, write_json

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


class RunMonitor(keras.callbacks.Callback):
    """Per-epoch validation, best-model keeping, early stopping, time budget and resumable state."""

    def __init__(self, run_path: Path, val_x: np.ndarray, val_labels: np.ndarray, val_indices: np.ndarray,
                 *, patience: int, time_budget: float, state: dict):
        super().__init__()
        self.run_path = Path(run_path)
        self.val = (val_x, val_labels, val_indices)
        self.patience = patience
        self.time_budget = time_budget
        self.state = state
        self._started = time.perf_counter()
        self._epoch_started = self._started
        self._elapsed_before = float(state.get("elapsed", 0.0))

    def elapsed(self) -> float:
        return self._elapsed_before + time.perf_counter() - self._started

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch_started = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        if self.time_budget and self.elapsed() > self.time_budget:
            self.model.stop_training = True
            self.state["stopped_by"] = "time budget"

    def on_epoch_end(self, epoch, logs=None):
        logs = logs if logs is not None else {}
        x, labels, indices = self.val
        logits = predict_logits(self.model, x, indices)
        truth = labels[indices]
        shifted = logits - logits.max(axis=1, keepdims=True)
        log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
        logs["val_loss"] = float(-log_probs[np.arange(len(truth)), truth].mean())
        logs["val_accuracy"] = float(np.mean(logits.argmax(1) == truth))
        logs["val_balanced_accuracy"] = balanced_accuracy(truth, logits.argmax(1))
        row = {"epoch": epoch + 1, "elapsed_s": round(self.elapsed(), 2),
               "learning_rate": float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate)),
               **{k: round(float(v), 5) for k, v in logs.items() if k != "learning_rate"}}
        state = self.state
        state["history"] = [r for r in state.get("history", []) if r["epoch"] < epoch + 1] + [row]
        score = logs["val_balanced_accuracy"] - 1e-3 * logs["val_loss"]  # ties broken by lower loss
        if score > state.get("best_score", -np.inf):
            state.update(best_score=score, best_epoch=epoch + 1, wait=0)
            save_model(self.model, self.run_path / "checkpoints" / "best.keras")
        else:
            state["wait"] = state.get("wait", 0) + 1
        if state["wait"] >= self.patience:
            self.model.stop_training = True
            state["stopped_by"] = f"early stopping (no better validation score for {self.patience} epochs)"
        epoch_seconds = time.perf_counter() - self._epoch_started
        if self.time_budget and self.elapsed() + epoch_seconds > self.time_budget:
            self.model.stop_training = True
            state["stopped_by"] = "time budget"
        state["elapsed"] = self.elapsed()
        state["epoch"] = epoch + 1
        save_model(self.model, self.run_path / "checkpoints" / "last.keras")
        write_json(self.run_path / STATE_FILE, state)
        write_history(self.run_path / "history.csv", state["history"])


class AveragedWeights(keras.callbacks.SwapEMAWeights):
    """At each epoch end, swap the optimiser's moving average of the weights into the model (Keras `use_ema`) and
    re-estimate the batch-norm statistics for them on a fixed sample of training inputs, before the monitor
    validates and saves; swap the raw weights back to train on. Must come before RunMonitor in the callbacks.

    Why the statistics: batch norm's running mean and variance follow the raw weights of the last few batches, and
    with averaged weights they no longer match; at a batch of 32 and a peak rate of 0.003 on 3,564 blood-cell crops
    the averaged model validated at 0.33-0.98 balanced accuracy from one epoch to the next until they were re-read
    (precise batch norm, as for SWA: Izmailov et al. 2018)."""

    def __init__(self, x: np.ndarray, rows: np.ndarray, *, resumed: bool, inputs: int = 256):
        super().__init__(swap_on_epoch=True)
        self._ema_weights_in_model = resumed  # last.keras was saved with the averages in the model
        rows = np.sort(rows)
        if len(rows) > inputs:  # an even spread, the same every epoch
            rows = rows[np.linspace(0, len(rows) - 1, inputs).astype(int)]
        self.x, self.rows, self.inputs = x, rows, inputs

    def on_epoch_end(self, epoch, logs=None):
        super().on_epoch_end(epoch, logs)
        recalibrate_batch_norm(self.model, self.x, self.rows, self.inputs)


def _batch_norm_layers(layer) -> list:
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


class RichProgress(keras.callbacks.Callback):
    """Rich progress bars (epochs and batches, with ETA) on a terminal; one line per epoch otherwise."""

    def __init__(self, epochs: int, steps: int, initial_epoch: int = 0, *, metric: str = "val_balanced_accuracy",
                 label: str = "val balanced acc", stage: str = "training"):
        super().__init__()
        self.metric, self.label, self.stage = metric, label, stage
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        self.console = Console(stderr=True)
        self.progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                 TimeRemainingColumn(), TextColumn("{task.fields[info]}"),
                                 console=self.console, transient=False, disable=not self.console.is_terminal)
        self.epochs, self.steps, self.initial_epoch = epochs, steps, initial_epoch

    def on_train_begin(self, logs=None):
        from biolens import console

        console.stage_started(self.stage, self.epochs, "epochs", self.initial_epoch)
        self.progress.start()
        self.epoch_task = self.progress.add_task("epochs", total=self.epochs, completed=self.initial_epoch, info="")
        self.batch_task = self.progress.add_task("batches", total=self.steps, info="")

    def on_epoch_begin(self, epoch, logs=None):
        self.progress.reset(self.batch_task, total=self.steps, info="")

    def on_train_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        self.progress.update(self.batch_task, completed=batch + 1, info=f"loss {float(loss):.3f}" if loss is not None else "")

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        info = f"{self.label} {logs.get(self.metric, float('nan')):.3f}"
        self.progress.update(self.epoch_task, completed=epoch + 1, info=info)
        from biolens import console

        console.stage_advanced(epoch + 1, force=True)
        if not self.console.is_terminal:
            held_out = f"val_loss {logs['val_loss']:.4f}  " if "val_loss" in logs else ""
            self.console.print(f"epoch {epoch + 1}/{self.epochs}  loss {logs.get('loss', float('nan')):.4f}  "
                               f"{held_out}{info if self.metric not in ('loss', 'val_loss') else ''}".rstrip(),
                               highlight=False)

    def on_train_end(self, logs=None):
        from biolens import console

        console.stage_finished()
        self.progress.stop()
