"""Autoencoders whose bottleneck is the embedding that biolens clusters.

Tables: a dense encoder (256 -> 128 -> latent) with a decoder matched to the data: for counts a negative
binomial whose mean is a softmax over features times the sample's library size and whose dispersion is learned
per feature (as in scVI and DCA), for continuous values a Gaussian (mean squared error). Images: a small
convolutional autoencoder on pixels scaled to 0-1. All code is keras / keras.ops.
"""
from __future__ import annotations

import keras
import numpy as np
from keras import layers, ops


@keras.saving.register_keras_serializable(package="biolens")
class FeatureDispersion(layers.Layer):
    """Per-feature negative-binomial dispersion theta = exp(w), broadcast to the batch."""

    def build(self, input_shape):
        self.log_theta = self.add_weight(shape=(int(input_shape[-1]),), initializer="zeros", name="log_theta")

    def call(self, mean):
        return ops.zeros_like(mean) + ops.exp(self.log_theta)


def log_gamma(x):
    """log Gamma(x) for x > 0 in keras.ops (which has no lgamma): shift by 6 with the recurrence, then the
    Stirling series, accurate to about 1e-8."""
    shift = sum(ops.log(x + k) for k in range(6))
    z = x + 6.0
    inverse = 1.0 / z
    series = inverse * (1.0 / 12 - inverse * inverse * (1.0 / 360 - inverse * inverse / 1260))
    return (z - 0.5) * ops.log(z) - z + 0.5 * np.log(2 * np.pi) + series - shift


@keras.saving.register_keras_serializable(package="biolens")
def negative_binomial_loss(counts, prediction):
    """Negative binomial negative log-likelihood per sample; `prediction` holds [mean, theta] side by side."""
    mean, theta = ops.split(ops.cast(prediction, "float32"), 2, axis=-1)
    counts = ops.cast(counts, "float32")
    eps = 1e-8
    log_theta_mu = ops.log(theta + mean + eps)
    log_likelihood = (theta * (ops.log(theta + eps) - log_theta_mu) + counts * (ops.log(mean + eps) - log_theta_mu)
                      + log_gamma(counts + theta) - log_gamma(theta) - log_gamma(counts + 1.0))
    return -ops.sum(log_likelihood, axis=-1)


def _encoder(n_features: int, latent: int, hidden: tuple[int, ...]) -> keras.Model:
    inputs = keras.Input((n_features,), name="features")
    x = inputs
    for width in hidden:
        x = layers.Dense(width)(x)
        x = layers.BatchNormalization()(x)
        x = layers.Activation("relu")(x)
        x = layers.Dropout(0.1)(x)
    return keras.Model(inputs, layers.Dense(latent, name="embedding")(x), name="encoder")


def table_autoencoder(n_features: int, *, latent: int = 16, likelihood: str = "gaussian",
                      hidden: tuple[int, ...] = (256, 128)) -> tuple[keras.Model, keras.Model]:
    """(training model, encoder). For 'nb' the training model takes [features, library size] and predicts
    [mean, theta] for the raw counts; for 'gaussian' it takes the features and predicts them."""
    encoder = _encoder(n_features, latent, hidden)
    features = keras.Input((n_features,), name="features")
    x = encoder(features)
    for width in reversed(hidden):
        x = layers.Dense(width, activation="relu")(x)
    if likelihood == "gaussian":
        output = layers.Dense(n_features, dtype="float32", name="reconstruction")(x)
        return keras.Model(features, output, name="autoencoder"), encoder
    library = keras.Input((1,), name="library")
    proportions = layers.Dense(n_features, activation="softmax", dtype="float32", name="proportions")(x)
    mean = proportions * library
    theta = FeatureDispersion(dtype="float32", name="dispersion")(mean)
    output = layers.Concatenate(dtype="float32", name="mean_and_theta")([mean, theta])
    return keras.Model([features, library], output, name="autoencoder"), encoder


def image_autoencoder(size: int, channels: int, *, latent: int = 32) -> tuple[keras.Model, keras.Model]:
    """(training model, encoder) for square images of side `size` (a multiple of 8), pixels in 0-1."""
    inputs = keras.Input((size, size, channels), name="pixels")
    x = inputs
    for filters in (32, 64, 128):
        x = layers.Conv2D(filters, 3, strides=2, padding="same", use_bias=False)(x)
        x = layers.BatchNormalization()(x)
        x = layers.Activation("relu")(x)
    encoder = keras.Model(inputs, layers.Dense(latent, name="embedding")(layers.Flatten()(x)), name="encoder")
    side = size // 8
    pixels = keras.Input((size, size, channels), name="pixels")
    y = layers.Dense(side * side * 128, activation="relu")(encoder(pixels))
    y = layers.Reshape((side, side, 128))(y)
    for filters in (64, 32, 16):
        y = layers.Conv2DTranspose(filters, 3, strides=2, padding="same", activation="relu")(y)
    output = layers.Conv2D(channels, 3, padding="same", activation="sigmoid", dtype="float32", name="reconstruction")(y)
    return keras.Model(pixels, output, name="image_autoencoder"), encoder
