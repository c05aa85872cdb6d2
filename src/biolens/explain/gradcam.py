"""Grad-CAM (Selvaraju et al. 2017): where in the image the evidence for a class lies.

Gradients need the backend's autodiff; this module uses TensorFlow's GradientTape (the default
backend). Models built by biolens expose their last feature map as the layer `feature_map`.
"""
from __future__ import annotations

import keras
import numpy as np

from biolens.models.image import FEATURE_MAP


def gradcam(model: keras.Model, pixels: np.ndarray, class_index: np.ndarray) -> np.ndarray:
    """Heatmaps in [0, 1], shape (N, H, W) at the input resolution, for the given class of each image."""
    import tensorflow as tf

    probe = keras.Model(model.inputs, [model.get_layer(FEATURE_MAP).output, model.output])
    x = tf.convert_to_tensor(np.asarray(pixels, dtype=np.float32))
    with tf.GradientTape() as tape:
        features, logits = probe(x, training=False)
        target = tf.gather(logits, tf.convert_to_tensor(class_index), axis=1, batch_dims=1)
    grads = tape.gradient(target, features)
    weights = tf.reduce_mean(tf.cast(grads, tf.float32), axis=(1, 2), keepdims=True)
    cam = tf.nn.relu(tf.reduce_sum(weights * tf.cast(features, tf.float32), axis=-1))
    cam = tf.image.resize(cam[..., None], x.shape[1:3], method="bilinear")[..., 0].numpy()
    peak = cam.reshape(len(cam), -1).max(axis=1).reshape(-1, 1, 1)
    return cam / np.maximum(peak, 1e-12)
