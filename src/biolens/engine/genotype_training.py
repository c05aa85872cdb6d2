"""Training the replicated genotype networks: per-copy early stopping, then fixed-length refits.

Cross-validation copies pick their epoch on an inner validation slice of their own training fold. The final copy and
every permutation copy then train for the median of those epochs on all samples, so the real fit and its nulls follow
exactly the same procedure (a null that stopped earlier would have smaller scores and inflate significance).
"""
from __future__ import annotations

import keras
import numpy as np

from biolens.models.genotype import build_genotype_model, packed_loss


def screen_pairs(x: np.ndarray, target: np.ndarray, k: int, allowed: np.ndarray) -> np.ndarray:
    """The k site pairs (i < j) whose dosage product correlates most with `target` (sure independence screening).

    allowed: sites x sites boolean mask (pairs in strong LD are left out: their product mimics dominance).
    """
    centred = target - target.mean()
    strength = np.abs((x * centred[:, None]).T @ x) / len(x)
    strength[~allowed] = -1
    upper = np.triu_indices(x.shape[1], 1)
    values = strength[upper]
    k = min(k, int((values >= 0).sum()))
    best = np.argpartition(-values, k - 1)[:k] if k else np.zeros(0, dtype=int)
    best = best[np.argsort(-values[best])]
    return np.stack([upper[0][best], upper[1][best]], axis=1)


def pair_products(x: np.ndarray, pairs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Standardised products x_i * x_j of the given pairs (n x K) and the SD of each raw product."""
    raw = x[:, pairs[:, 0]] * x[:, pairs[:, 1]]
    scale = raw.std(0)
    scale[scale == 0] = 1
    return (raw - raw.mean(0)) / scale, scale


class _BestPerCopy(keras.callbacks.Callback):
    """Keep each copy's weights from the epoch with its lowest validation loss; stop when none has improved."""

    def __init__(self, inputs, targets, val_weight, kind: str, patience: int):
        super().__init__()
        self.inputs, self.targets, self.val_weight = inputs, targets, val_weight
        self.kind, self.patience = kind, patience
        self.best = np.full(targets.shape[1], np.inf)
        self.best_epoch = np.zeros(targets.shape[1], dtype=int)
        self.saved: dict[str, np.ndarray] = {}

    def _val_loss(self) -> np.ndarray:
        pred = self.model.predict(self.inputs, batch_size=4096, verbose=0)
        if self.kind == "binary":
            per = np.maximum(pred, 0) - pred * self.targets + np.log1p(np.exp(-np.abs(pred)))
        else:
            per = (pred - self.targets) ** 2
        return (per * self.val_weight).sum(0) / np.maximum(self.val_weight.sum(0), 1)

    def on_epoch_end(self, epoch, logs=None):
        loss = self._val_loss()
        improved = loss < self.best - 1e-6
        layer = self.model.get_layer("networks")
        for variable in layer.weights:
            value = keras.ops.convert_to_numpy(variable)
            if variable.path not in self.saved:
                self.saved[variable.path] = value.copy()
            self.saved[variable.path][improved] = value[improved]
        self.best[improved] = loss[improved]
        self.best_epoch[improved] = epoch + 1
        if (epoch + 1 - self.best_epoch).min() >= self.patience:
            self.model.stop_training = True

    def restore(self):
        for variable in self.model.get_layer("networks").weights:
            variable.assign(self.saved[variable.path])


def fit_copies(x: np.ndarray, products: np.ndarray, covariates: np.ndarray, targets: np.ndarray,
               train_weight: np.ndarray, *, kind: str,
               seed: int, epochs: int, val_weight: np.ndarray | None = None, patience: int = 10,
               batch_size: int = 64, learning_rate: float = 3e-3, **network) -> tuple[keras.Model, np.ndarray]:
    """Train one model holding `targets.shape[1]` copies; return it and each copy's chosen epoch.

    x: n x sites (standardised); products: n x copies x K; covariates: n x copies x c;
    targets, train_weight, val_weight: n x copies.
    With val_weight, each copy keeps its best-validation epoch; without, all copies train exactly `epochs` epochs.
    """
    keras.utils.set_random_seed(seed)
    model = build_genotype_model(x.shape[1], products.shape[2], covariates.shape[2], targets.shape[1], **network)
    model.compile(optimizer=keras.optimizers.Adam(learning_rate), loss=packed_loss(kind))
    inputs = [x.astype(np.float32), products.astype(np.float32), covariates.astype(np.float32)]
    packed = np.concatenate([targets, train_weight], axis=1).astype(np.float32)
    callbacks = []
    if val_weight is not None:
        tracker = _BestPerCopy(inputs, targets, val_weight, kind, patience)
        callbacks.append(tracker)
    model.fit(inputs, packed, batch_size=batch_size, epochs=epochs, shuffle=True, verbose=0, callbacks=callbacks)
    if val_weight is not None:
        tracker.restore()
        return model, tracker.best_epoch
    return model, np.full(targets.shape[1], epochs)


def predict_copies(model: keras.Model, x: np.ndarray, products: np.ndarray, covariates: np.ndarray) -> np.ndarray:
    inputs = [x.astype(np.float32), products.astype(np.float32), covariates.astype(np.float32)]
    return model.predict(inputs, batch_size=4096, verbose=0)
