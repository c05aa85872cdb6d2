"""Training the replicated genotype networks: per-copy early stopping, then fixed-length refits.

Cross-validation copies pick their epoch on an inner validation slice of their own training fold. The final copy and
every permutation copy then train for the median of those epochs on all samples, so the real fit and its nulls follow
exactly the same procedure (a null that stopped earlier would have smaller scores and inflate significance).
"""
from __future__ import annotations

import keras
import numpy as np

from biolens.models.genotype import build_genotype_model, packed_loss
from biolens.stats.linkage import r_squared


CLUMP_R2 = 0.5  # candidate pairs whose sites both tag an already chosen pair's sites at this r^2 are skipped
PAIR_TERMS = 4  # additive x additive, additive x dominance, dominance x additive, dominance x dominance


class PairCodes:
    """Cockerham codes of every site and the interaction terms of any pair of sites built from them.

    Per site: a = standardised dosage, d = heterozygote indicator made orthogonal to a and standardised. For sites i
    and j the four products a_i a_j, a_i d_j, d_i a_j, d_i d_j span every departure of the 3 x 3 genotype table from
    main effects, so a network given these four terms can represent any two-site function (a product, exactly one
    carrier, both dominant, both recessive, a threshold) and not only the dosage product PLINK tests.
    """

    def __init__(self, dosage: np.ndarray):
        classes = np.clip(np.rint(dosage), 0, 2)
        a = dosage - dosage.mean(0)
        a /= np.where(a.std(0) > 0, a.std(0), 1)
        d = (classes == 1).astype(np.float64)
        d -= d.mean(0)
        d -= a * (a * d).mean(0)  # orthogonal to a within each site
        spread = d.std(0)
        self.has_dominance = spread > 1e-6
        self.a, self.d = a, d / np.where(self.has_dominance, spread, 1)
        n = len(dosage)
        self.r2 = r_squared(dosage)
        codes = (self.a, self.d)
        # mean and variance of every product term, for all pairs (target-independent, computed once)
        self._moments = []
        for u in codes:
            for v in codes:
                mean = u.T @ v / n
                second = (u ** 2).T @ (v ** 2) / n
                self._moments.append((mean, np.sqrt(np.maximum(second - mean ** 2, 0))))

    def screen(self, target: np.ndarray, k: int, allowed: np.ndarray, rows: np.ndarray | None = None) -> np.ndarray:
        """The k pairs (i < j, `allowed`) whose four interaction terms explain most of `target` (sum of squared
        correlations: sure independence screening, Fan & Lv 2008, on all four terms)."""
        rows = np.arange(len(self.a)) if rows is None else rows
        centred = target[rows] - target[rows].mean()
        centred = centred / max(centred.std(), 1e-12)
        strength = np.zeros((self.a.shape[1],) * 2)
        codes = (self.a[rows], self.d[rows])
        for (u, v), (mean, spread) in zip(((u, v) for u in codes for v in codes), self._moments):
            covariance = (u * centred[:, None]).T @ v / len(rows)
            strength += np.where(spread > 1e-9, covariance / np.maximum(spread, 1e-9), 0.0) ** 2
        strength = strength + strength.T  # (i, j) and (j, i) hold the a_i d_j and d_i a_j terms of one pair
        upper = np.triu(np.ones(strength.shape, bool), 1)  # each pair once, as (i < j)
        return self._clumped(np.where(upper & allowed, strength, -1.0), k)

    def _clumped(self, strength: np.ndarray, k: int) -> np.ndarray:
        """The k strongest pairs (upper triangle of `strength`; negative = not a candidate), best first, skipping a
        pair whose two sites both tag (r^2 >= 0.5) an accepted pair's.

        In a region without recombination one interaction is seen through dozens of tagging pairs; given them all,
        the network spreads the effect thinly over them. One pair per signal keeps the effect in one place. Every
        pair stays in the running (a first version clumped a pool of the 1,600 strongest, which the tags of one or
        two strong signals could fill entirely: a real interaction further down then never became a candidate).
        """
        strength = strength.copy()
        tags = self.r2 >= CLUMP_R2
        chosen: list[tuple[int, int]] = []
        while len(chosen) < k:
            best = int(np.argmax(strength))
            i, j = divmod(best, strength.shape[1])
            if strength[i, j] < 0:
                break
            chosen.append((i, j))
            tagged = np.outer(tags[i], tags[j]) | np.outer(tags[j], tags[i])  # (a, b) with a~i, b~j or a~j, b~i
            strength[tagged] = -1
        return np.asarray(chosen, dtype=np.int64).reshape(-1, 2)

    def terms(self, pairs: np.ndarray) -> np.ndarray:
        """The four standardised interaction terms of each pair: rows x (K * 4), pair-major."""
        i, j = pairs[:, 0], pairs[:, 1]
        a, d = self.a, self.d
        full = np.stack([a[:, i] * a[:, j], a[:, i] * d[:, j], d[:, i] * a[:, j], d[:, i] * d[:, j]], axis=2)
        spread = full.std(0)
        standard = (full - full.mean(0)) / np.where(spread > 1e-9, spread, 1)
        standard[:, spread <= 1e-9] = 0.0  # a term without variation (a site without heterozygotes) carries nothing
        return standard.reshape(len(standard), -1)


class _BestPerCopy(keras.callbacks.Callback):
    """Keep each copy's weights from the epoch with its lowest validation loss, and record every copy's curve.

    Training stops when the mean validation curve over copies has not improved for `patience` epochs; the epoch count
    for later refits is that mean curve's minimum (one cross-validated choice, as for a penalty, rather than the
    median of per-fold minima, which with small validation slices jumped between 1 and 150 epochs).
    """

    def __init__(self, inputs, targets, val_weight, kind: str, patience: int):
        super().__init__()
        self.inputs, self.targets, self.val_weight = inputs, targets, val_weight
        self.kind, self.patience = kind, patience
        self.best = np.full(targets.shape[1], np.inf)
        self.best_epoch = np.zeros(targets.shape[1], dtype=int)
        self.curve: list[np.ndarray] = []
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
        self.curve.append(loss)
        improved = loss < self.best - 1e-6
        layer = self.model.get_layer("networks")
        for variable in layer.weights:
            value = keras.ops.convert_to_numpy(variable)
            if variable.path not in self.saved:
                self.saved[variable.path] = value.copy()
            self.saved[variable.path][improved] = value[improved]
        self.best[improved] = loss[improved]
        self.best_epoch[improved] = epoch + 1
        if epoch + 1 - self.common_epoch >= self.patience:
            self.model.stop_training = True

    @property
    def common_epoch(self) -> int:
        """The epoch (1-based) where the validation loss averaged over copies is lowest."""
        return int(np.argmin(np.mean(self.curve, axis=1))) + 1 if self.curve else 0

    def restore(self):
        for variable in self.model.get_layer("networks").weights:
            variable.assign(self.saved[variable.path])


def fit_copies(x: np.ndarray, products: np.ndarray, covariates: np.ndarray, targets: np.ndarray,
               train_weight: np.ndarray, *, kind: str,
               seed: int, epochs: int, val_weight: np.ndarray | None = None, patience: int = 10,
               batch_size: int = 64, learning_rate: float = 3e-3, **network) -> tuple[keras.Model, np.ndarray]:
    """Train one model holding `targets.shape[1]` copies; return it and the epoch count chosen for refits.

    x: n x sites (standardised); products: n x copies x K; covariates: n x copies x c;
    targets, train_weight, val_weight: n x copies.
    With val_weight, each copy keeps its best-validation weights and the returned epoch count is where the mean
    validation curve is lowest; without, all copies train exactly `epochs` epochs.
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
        return model, np.full(targets.shape[1], tracker.common_epoch)
    return model, np.full(targets.shape[1], epochs)


def predict_copies(model: keras.Model, x: np.ndarray, products: np.ndarray, covariates: np.ndarray) -> np.ndarray:
    inputs = [x.astype(np.float32), products.astype(np.float32), covariates.astype(np.float32)]
    return model.predict(inputs, batch_size=4096, verbose=0)
