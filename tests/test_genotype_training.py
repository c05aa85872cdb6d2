"""How the replicated genotype networks are trained: the batches they see and the epochs they run."""
from __future__ import annotations

import keras
import numpy as np

from biolens.engine.genotype_training import _shuffled_batches, fit_copies, predict_copies
from biolens.models.genotype import build_genotype_model, packed_loss


def _data(n: int = 150, sites: int = 6, copies: int = 3):
    rng = np.random.default_rng(11)
    x = rng.standard_normal((n, sites)).astype(np.float32)
    products = rng.standard_normal((n, copies, 8)).astype(np.float32)
    covariates = np.zeros((n, copies, 1), np.float32)
    targets = x[:, :1] + 0.5 * products[:, :, 0] + rng.standard_normal((n, copies))
    return x, products, covariates, targets


def test_every_epoch_holds_every_row_once_in_batches_of_the_asked_size():
    n, batch_size = 150, 64
    rows = np.arange(n, dtype=np.float32)[:, None]
    keras.utils.set_random_seed(4)
    batches = iter(_shuffled_batches([rows], rows, batch_size))
    epochs = []
    for _ in range(3):
        seen = [next(batches) for _ in range(-(-n // batch_size))]
        assert [len(labels) for _, labels in seen] == [64, 64, 22]
        for (inputs,), labels in seen:
            np.testing.assert_array_equal(inputs.numpy(), labels.numpy())  # inputs and targets stay paired
        order = np.concatenate([labels.numpy()[:, 0] for _, labels in seen]).astype(int)
        assert sorted(order) == list(range(n))
        epochs.append(order)
    assert not np.array_equal(epochs[0], np.arange(n))  # shuffled
    np.testing.assert_array_equal(epochs[0], epochs[1])  # one permutation kept, as Keras's fit on arrays does
    np.testing.assert_array_equal(epochs[0], epochs[2])


def test_the_copies_train_to_the_weights_keras_s_fit_on_arrays_gives():
    """The pipeline replaced `fit(arrays, shuffle=True)` for speed; the grid's earlier records must reproduce."""
    x, products, covariates, targets = _data()
    n, copies = targets.shape
    network = {"hidden": 4, "l2": 1e-2, "pair_penalty": 0.05, "l1": 1e-2}
    model, _ = fit_copies(x, products, covariates, targets, np.ones((n, copies)), kind="binary", seed=7, epochs=12,
                          batch_size=64, learning_rate=1e-3, **network)

    keras.utils.set_random_seed(7)
    reference = build_genotype_model(x.shape[1], products.shape[2], covariates.shape[2], copies, **network)
    reference.compile(optimizer=keras.optimizers.Adam(1e-3), loss=packed_loss("binary"))
    packed = np.concatenate([targets, np.ones((n, copies))], axis=1).astype(np.float32)
    reference.fit([x, products, covariates], packed, batch_size=64, epochs=12, shuffle=True, verbose=0)

    for mine, theirs in zip(model.get_layer("networks").weights, reference.get_layer("networks").weights):
        # identical on a CPU; the tolerance leaves room for a GPU's reduction order, far below what another batch
        # order gives (the hidden layer's L1 norm 15-30% apart)
        np.testing.assert_allclose(keras.ops.convert_to_numpy(mine), keras.ops.convert_to_numpy(theirs), rtol=1e-4,
                                   atol=1e-5, err_msg=mine.path)


def test_cross_validation_gives_one_epoch_count_and_weights_that_predict_held_out_rows():
    x, products, covariates, targets = _data(n=300)
    n, copies = targets.shape
    rng = np.random.default_rng(2)
    inner = rng.random((n, copies)) < 0.2
    model, epochs = fit_copies(x, products, covariates, targets, (~inner).astype(float), kind="quantitative", seed=3,
                               epochs=60, val_weight=inner.astype(float), patience=15, batch_size=64,
                               learning_rate=3e-3, hidden=4, l2=1e-2, pair_penalty=0.01, l1=1e-3)
    assert len(set(epochs)) == 1 and 1 <= epochs[0] <= 60
    pred = predict_copies(model, x, products, covariates)
    validation = ((pred - targets) ** 2 * inner).sum(0) / inner.sum(0)
    baseline = ((targets - targets[~inner].mean()) ** 2 * inner).sum(0) / inner.sum(0)
    assert (validation < baseline).all(), (validation, baseline)  # the kept weights predict held-out rows
