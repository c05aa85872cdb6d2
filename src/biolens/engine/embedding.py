"""Training the autoencoders of models/autoencoder.py in minibatches, and reading out the embedding.

Batches are gathered row by row from the (sparse) matrix and made dense one batch at a time, so a table of
100,000 samples never needs to be dense in memory. 10% of samples are held out to stop training when the
reconstruction of unseen samples no longer improves (the best weights are kept).
"""
from __future__ import annotations

import numpy as np
from scipy import sparse

from biolens.stats.preprocess import Prepared


def _dense(matrix, rows: np.ndarray) -> np.ndarray:
    block = matrix[rows]
    return (block.toarray() if sparse.issparse(block) else np.asarray(block)).astype(np.float32)


def auto_epochs(n_train: int, batch_size: int, target_steps: int = 6000) -> int:
    """About `target_steps` optimiser steps in all, between 5 and 300 epochs: small tables get many passes,
    large ones few (each pass is already many steps)."""
    steps = int(np.ceil(n_train / batch_size))
    return int(np.clip(round(target_steps / steps), 5, 300))


def _held_out_split(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(training rows, the 10% held out to stop training), both sorted."""
    order = np.random.default_rng(seed).permutation(n)
    n_val = max(1, int(round(0.1 * n)))
    return np.sort(order[n_val:]), np.sort(order[:n_val])


def _fit(model, train_data, val_data, *, epochs: int, steps: int) -> dict:
    """Fit until the held-out loss stops improving (patience 10, best weights kept); the training summary."""
    import keras

    from biolens.engine.callbacks import RichProgress

    history = model.fit(train_data, validation_data=val_data, epochs=epochs, verbose=0,
                        callbacks=[keras.callbacks.EarlyStopping(patience=10, restore_best_weights=True),
                                   RichProgress(epochs, steps, metric="val_loss", label="held-out loss", stage="training the autoencoder")])
    losses = history.history
    return {"epochs_run": len(losses["loss"]), "max_epochs": epochs, "best_val_loss": float(min(losses["val_loss"]))}


def _table_batches(prepared: Prepared, rows: np.ndarray, batch_size: int, *, shuffle: bool, seed: int):
    import tensorflow as tf

    nb = prepared.counts is not None
    width = prepared.model_input.shape[1]
    data = tf.data.Dataset.from_tensor_slices(rows.astype(np.int64))
    if shuffle:
        data = data.shuffle(len(rows), seed=seed, reshuffle_each_iteration=True)

    def gather(index):
        def take(idx):
            order = np.sort(idx)
            x = _dense(prepared.model_input, order)
            if not nb:
                return x, x
            return x, prepared.library[order, None].astype(np.float32), _dense(prepared.counts, order)

        if nb:
            x, library, counts = tf.numpy_function(take, [index], (tf.float32, tf.float32, tf.float32))
            x.set_shape((None, width)); library.set_shape((None, 1)); counts.set_shape((None, width))
            return (x, library), counts
        x, target = tf.numpy_function(take, [index], (tf.float32, tf.float32))
        x.set_shape((None, width)); target.set_shape((None, width))
        return x, target

    return data.batch(batch_size).map(gather, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)


def train_table_embedding(prepared: Prepared, *, latent: int = 16, epochs: int = 0, batch_size: int = 128,
                          seed: int = 0) -> tuple[np.ndarray, dict]:
    """Fit the table autoencoder and return (embedding of every sample, training summary)."""
    import keras

    from biolens.models.autoencoder import negative_binomial_loss, table_autoencoder

    keras.utils.set_random_seed(seed)
    n = prepared.model_input.shape[0]
    train_rows, val_rows = _held_out_split(n, seed)
    batch_size = min(batch_size, max(16, len(train_rows) // 4))
    epochs = epochs or auto_epochs(len(train_rows), batch_size)
    likelihood = "nb" if prepared.counts is not None else "gaussian"
    model, encoder = table_autoencoder(prepared.model_input.shape[1], latent=latent, likelihood=likelihood)
    model.compile(optimizer=keras.optimizers.AdamW(1e-3, weight_decay=1e-4),
                  loss=negative_binomial_loss if likelihood == "nb" else "mse")
    summary = _fit(model, _table_batches(prepared, train_rows, batch_size, shuffle=True, seed=seed),
                   _table_batches(prepared, val_rows, 512, shuffle=False, seed=seed), epochs=epochs,
                   steps=int(np.ceil(len(train_rows) / batch_size)))
    embedding = np.concatenate([np.asarray(encoder(_dense(prepared.model_input, np.arange(s, min(n, s + 1024))),
                                                   training=False)) for s in range(0, n, 1024)])
    return embedding.astype(np.float32), {
        "likelihood": "negative binomial" if likelihood == "nb" else "Gaussian (mean squared error)",
        "latent": latent, "batch_size": batch_size, "n_val": int(len(val_rows)), **summary}


def train_image_embedding(pixels: np.ndarray, *, latent: int = 32, epochs: int = 0, batch_size: int = 64,
                          seed: int = 0) -> tuple[np.ndarray, dict]:
    """Fit the convolutional autoencoder on uint8 pixels and return (embedding of every image, summary)."""
    import keras

    from biolens.models.autoencoder import image_autoencoder
    from biolens.engine.training import array_batches

    keras.utils.set_random_seed(seed)
    n, size, _, channels = pixels.shape
    train_rows, val_rows = _held_out_split(n, seed)
    batch_size = min(batch_size, max(8, len(train_rows) // 4))
    epochs = epochs or auto_epochs(len(train_rows), batch_size, target_steps=3000)
    model, encoder = image_autoencoder(size, channels, latent=latent)
    model.compile(optimizer=keras.optimizers.AdamW(1e-3, weight_decay=1e-4), loss="mse")
    dummy = np.zeros(n, dtype=np.int32)

    def unit_scale(batch, seed_pair):
        scaled = batch[0] / 255.0
        return scaled, scaled

    def batches(rows, shuffle):
        return array_batches(pixels, dummy, rows, batch_size, shuffle=shuffle, seed=seed, transform=unit_scale)

    summary = _fit(model, batches(train_rows, True), batches(val_rows, False), epochs=epochs,
                   steps=int(np.ceil(len(train_rows) / batch_size)))
    embedding = np.concatenate([np.asarray(encoder(np.asarray(pixels[s:s + 256], dtype=np.float32) / 255.0,
                                                   training=False)) for s in range(0, n, 256)])
    return embedding.astype(np.float32), {"likelihood": "Gaussian on pixels (mean squared error)", "latent": latent,
                                          "batch_size": batch_size, "n_val": int(len(val_rows)), **summary}
