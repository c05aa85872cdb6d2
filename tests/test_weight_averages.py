"""The weights a run validates and keeps are averaged ones, and batch norm must describe them: its running
statistics are re-read on training inputs (engine/training.recalibrate_batch_norm). Real Keras layers."""
from __future__ import annotations

import keras
import numpy as np
import pytest

from biolens.engine.training import recalibrate_batch_norm


def test_batch_norm_statistics_become_the_mean_of_the_batches_statistics():
    inner = keras.Sequential([keras.Input((6, 6, 3)), keras.layers.BatchNormalization(momentum=0.9, name="inner")])
    model = keras.Sequential([keras.Input((6, 6, 3)), keras.layers.BatchNormalization(momentum=0.9, name="outer"),
                              inner])  # a nested model (a backbone) is reached too
    rng = np.random.default_rng(0)
    x = rng.normal(3.0, 2.0, (40, 6, 6, 3)).astype(np.float32) * np.array([1, 5, 0.2], np.float32)
    rows = np.arange(40)
    recalibrate_batch_norm(model, x, rows, batch_size=16)  # batches of 16, 16 and 8
    outer = model.get_layer("outer")
    batches = [x[0:16], x[16:32], x[32:40]]
    expected_mean = np.mean([b.mean(axis=(0, 1, 2)) for b in batches], axis=0)
    expected_var = np.mean([b.var(axis=(0, 1, 2)) for b in batches], axis=0)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(outer.moving_mean), expected_mean, rtol=1e-4)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(outer.moving_variance), expected_var, rtol=1e-3)
    # the inner layer sees normalised inputs: its statistics are those of the outer layer's training output
    inner_mean = keras.ops.convert_to_numpy(inner.get_layer("inner").moving_mean)
    assert np.all(np.abs(inner_mean) < 0.05)
    assert outer.momentum == pytest.approx(0.9) and inner.get_layer("inner").momentum == pytest.approx(0.9)


def test_weights_are_left_alone_and_a_model_without_batch_norm_is_a_no_op():
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3), keras.layers.BatchNormalization(),
                              keras.layers.Dense(2)])
    before = [w.copy() for w in model.get_weights()]
    x = np.random.default_rng(1).normal(size=(32, 4)).astype(np.float32)
    recalibrate_batch_norm(model, x, np.arange(32))
    after = model.get_weights()
    for b, a, w in zip(before, after, model.weights):
        if "moving" not in w.path:
            np.testing.assert_array_equal(a, b)
    plain = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    weights = [w.copy() for w in plain.get_weights()]
    recalibrate_batch_norm(plain, x, np.arange(32))
    for a, b in zip(plain.get_weights(), weights):
        np.testing.assert_array_equal(a, b)
