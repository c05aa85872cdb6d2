"""Self-supervised image representations (SimCLR): two random views of each image, an encoder, a small
projection head, and the NT-Xent loss that pulls the two views of one image together and pushes the other images
of the batch away. No labels: what the encoder learns is what survives the augmentations (shape and texture
survive; orientation, stain intensity, colour balance, blur and framing do not), which is what tells cell types
and field objects apart.

The encoder is `compact_cnn`'s body (models/image.py) with the same layer names, so a classifier can start from
it (`train --init-from`). Everything is keras / keras.ops and runs through `model.fit`, so a GPU or
`tf.distribute` strategy needs nothing special; the augmentations are Keras layers and run on the device too.
"""
from __future__ import annotations

import keras
from keras import layers, ops

from biolens.models.image import compact_blocks

EMBEDDING = "embedding"  # the encoder's output layer (global average of the last feature map)


def augmenter(channels: int, seed: int, name: str) -> keras.Sequential:
    """One view: random crop-and-zoom, any rotation, flips, colour (stain) jitter, occasional grey and blur.
    Pixels stay in 0-255."""
    steps = [layers.RandomFlip("horizontal_and_vertical", seed=seed),
             layers.RandomRotation(0.5, fill_mode="reflect", seed=seed + 1),
             layers.RandomZoom((-0.45, 0.0), fill_mode="reflect", seed=seed + 2),
             layers.RandomTranslation(0.1, 0.1, fill_mode="reflect", seed=seed + 3)]
    if channels == 3:
        steps += [layers.RandomColorJitter(value_range=(0, 255), brightness_factor=0.3, contrast_factor=0.4,
                                           saturation_factor=(0.25, 0.75), hue_factor=0.08, seed=seed + 4),
                  layers.RandomGrayscale(0.2, seed=seed + 5)]
    else:
        steps += [layers.RandomBrightness(0.3, value_range=(0, 255), seed=seed + 4),
                  layers.RandomContrast(0.4, value_range=(0, 255), seed=seed + 5)]
    steps += [layers.RandomGaussianBlur(factor=0.5, kernel_size=3, sigma=(0.1, 1.5), value_range=(0, 255), seed=seed + 6)]
    return keras.Sequential(steps, name=name)


def image_encoder(input_shape: tuple[int, int, int], widths=(16, 32, 64, 128)) -> keras.Model:
    """Pixels (0-255) -> a feature vector (the global average of `compact_cnn`'s last feature map)."""
    inputs = keras.Input(input_shape, name="pixels")
    x = layers.GlobalAveragePooling2D(name=EMBEDDING, dtype="float32")(compact_blocks(inputs, widths))
    return keras.Model(inputs, x, name="biolens_image_encoder")


def contrastive_model(encoder: keras.Model, *, projection: int = 64, seed: int = 0) -> keras.Model:
    """The training model: image batch -> [projection of view 1 | projection of view 2] (fit with NTXent)."""
    shape = encoder.input_shape[1:]
    inputs = keras.Input(shape, name="pixels")
    head = keras.Sequential([layers.Dense(encoder.output_shape[-1] * 2, use_bias=False),
                             layers.BatchNormalization(), layers.ReLU(),
                             layers.Dense(projection, dtype="float32")], name="projection")
    views = [head(encoder(augmenter(shape[-1], seed + 10 * k, f"view{k + 1}")(inputs))) for k in range(2)]
    return keras.Model(inputs, layers.Concatenate(name="two_views", dtype="float32")(views), name="simclr")


@keras.saving.register_keras_serializable(package="biolens")
class NTXent(keras.losses.Loss):
    """SimCLR's normalised temperature-scaled cross-entropy; y_pred = [z1 | z2], y_true is ignored."""

    def __init__(self, temperature: float = 0.2, **kwargs):
        kwargs.setdefault("reduction", "sum_over_batch_size")
        super().__init__(**kwargs)
        self.temperature = temperature

    def call(self, y_true, y_pred):
        z1, z2 = ops.split(ops.cast(y_pred, "float32"), 2, axis=-1)
        z = ops.normalize(ops.concatenate([z1, z2], axis=0), axis=-1)
        n = ops.shape(z1)[0]
        logits = ops.matmul(z, ops.transpose(z)) / self.temperature
        logits = logits - 1e9 * ops.eye(2 * n)  # an image is not its own positive
        targets = ops.concatenate([ops.arange(n, 2 * n), ops.arange(0, n)], axis=0)
        loss = keras.losses.sparse_categorical_crossentropy(targets, logits, from_logits=True)
        return ops.reshape(loss, (2, n))[0] * 0.5 + ops.reshape(loss, (2, n))[1] * 0.5

    def get_config(self):
        return {**super().get_config(), "temperature": self.temperature}
