"""Device decisions in one place: strategy selection, the mixed-precision policy, and TF_CONFIG checks."""
from __future__ import annotations

import json
import os

import keras
import numpy as np
from conftest import ENV, biolens, one_line_error

from biolens import hardware
from biolens.models.image import compact_cnn


def test_cpu_setup_uses_the_default_strategy_in_float32():
    device, strategy = hardware.setup("auto")
    assert device.kind == "cpu" and device.strategy == "default" and not device.mixed_precision
    assert keras.mixed_precision.global_policy().name == "float32"
    assert "CPU" in device.describe()
    import tensorflow as tf

    assert strategy is tf.distribute.get_strategy()


def test_mixed_precision_policy_computes_in_float16_and_returns_float32_logits():
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        model = compact_cnn((32, 32, 3), 3)
        convs = [layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]
        assert convs and all(layer.compute_dtype == "float16" for layer in convs)
        assert all(layer.variable_dtype == "float32" for layer in convs)  # weights stay float32
        logits = model(np.zeros((2, 32, 32, 3), np.float32))
        assert keras.backend.standardize_dtype(logits.dtype) == "float32"
    finally:
        keras.mixed_precision.set_global_policy("float32")


def test_a_malformed_tf_config_is_one_line(slice_manifest, tmp_path, monkeypatch):
    monkeypatch.setitem(ENV, "TF_CONFIG", json.dumps({"cluster": {"chief": ["127.0.0.1:1"]}}))
    line = one_line_error(biolens("train", slice_manifest, "--out", tmp_path / "run", "--epochs", "1", check=False))
    assert "TF_CONFIG is not valid" in line and "docs/scaling.md" in line
    assert "TF_CONFIG" not in os.environ
