"""A 1-D CNN for DNA sequence classification whose first layer reads as motifs.

Design (after DeepBind and Koo & Eddy 2019): a wide first convolution (one filter = one position weight
matrix) followed by a large max-pool, which pushes each filter to learn a whole motif rather than a fragment;
a second convolution for motif combinations and spacing; global max pooling so any sequence length works.
With `both_strands` the same trunk reads the sequence and its reverse complement and keeps the stronger
signal, as a transcription factor binds either strand; the model is then strand-symmetric by construction.
"""
from __future__ import annotations

import keras
from keras import layers

MOTIF_LAYER = "motif_conv"


@keras.saving.register_keras_serializable(package="biolens")
class ReverseComplement(layers.Layer):
    """Reverse complement of one-hot DNA in ACGT order: reverse positions, and A<->T, C<->G is reversing channels."""

    def call(self, x):
        return keras.ops.flip(keras.ops.flip(x, axis=1), axis=2)


def sequence_cnn(n_classes: int, *, filters: int = 64, width: int = 15, both_strands: bool = True,
                 length: int | None = None) -> keras.Model:
    """Uncompiled classifier from one-hot (length, 4) to class logits (float32 even under mixed precision)."""
    pool = 8
    trunk = keras.Sequential([
        keras.Input((length, 4)),
        layers.Conv1D(filters, width, padding="same", activation="relu", name=MOTIF_LAYER),
        layers.MaxPooling1D(pool, padding="same"),
        layers.Dropout(0.1),
        layers.Conv1D(64, 5, padding="same", use_bias=False),
        layers.BatchNormalization(),
        layers.Activation("relu"),
        layers.GlobalMaxPooling1D(),
    ], name="trunk")
    inputs = keras.Input((length, 4), name="one_hot")
    features = trunk(inputs)
    if both_strands:
        features = layers.Maximum(name="either_strand")([features, trunk(ReverseComplement()(inputs))])
    features = layers.Dropout(0.3)(features)
    logits = layers.Dense(n_classes, dtype="float32", name="logits")(features)
    return keras.Model(inputs, logits, name="sequence_cnn")


def motif_layer(model: keras.Model) -> layers.Conv1D:
    """The first convolution (the motif detectors) of a model built by `sequence_cnn`."""
    return model.get_layer("trunk").get_layer(MOTIF_LAYER)


SEED_SCALE = 0.3  # weight per matching base of a seeded filter: a full match gives 1.5 x this, one mismatch 0.5 x
SEED_HOLD_EPOCHS = 6  # seeded filters are kept as they started for this many epochs (engine/callbacks.HoldFilters)


def seed_hold(seeded: int) -> dict | None:
    """What `engine.supervised.fit_in_run` holds of a model whose first `seeded` filters were seeded."""
    return {"layer": ["trunk", MOTIF_LAYER], "filters": seeded, "epochs": SEED_HOLD_EPOCHS} if seeded else None


def seed_motif_filters(model: keras.Model, words: list[str]) -> int:
    """Start the first filters of `model` on `words` (IUPAC words from stats/kmers.enriched_words), each centred in
    its filter: at each position SCALE x (1/n - 0.25) for the n bases its letter allows and -0.25 x SCALE for the
    others (N: zero), zero outside the word, and a bias that lets a full match through the ReLU at 1.5 x SCALE and
    one mismatch at 0.5 x. Training holds them for SEED_HOLD_EPOCHS, then refines them like any filter. Returns how
    many filters were seeded (words longer than the filter are skipped)."""
    from biolens.stats.kmers import IUPAC

    layer = motif_layer(model)
    kernel, bias = (keras.ops.convert_to_numpy(w).copy() for w in layer.weights)
    width, _, n_filters = kernel.shape
    seeded = 0
    for word in words:
        if seeded == n_filters or len(word) > width:
            continue
        start = (width - len(word)) // 2
        kernel[:, :, seeded] = 0.0
        full = 0.0
        for j, letter in enumerate(word):
            allowed = IUPAC[letter]
            for b, base in enumerate("ACGT"):
                kernel[start + j, b, seeded] = SEED_SCALE * ((1 / len(allowed) if base in allowed else 0.0) - 0.25)
            full += 1 / len(allowed) - 0.25
        bias[seeded] = -SEED_SCALE * (full - 1.5)
        seeded += 1
    layer.set_weights([kernel, bias])
    return seeded
