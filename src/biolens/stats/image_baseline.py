"""The classical baseline beside the image network: logistic regression on hand-made features.

Before convolutional networks, images were classified from colour histograms and a histogram of oriented gradients
(HOG: local edge directions, Dalal & Triggs 2005). Where such a model does as well as the network, the images'
classes differ in colour or coarse shape, and the heat maps should be read with that in mind. Fitted, chosen and
scored as the network is (`baselines.py`), on the same pixels the network read.
"""
from __future__ import annotations

import numpy as np

from biolens.stats import baselines

BINS = 16    # intensity histogram bins per channel
SIDE = 64    # images are read at 64 x 64 pixels for HOG (8 x 8 cells of 8 pixels)
CHUNK = 512  # images turned into features at a time (bounded memory for large images)


def image_features(pixels: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """(rows x features): each channel's intensity histogram, mean and spread, and the HOG of the grey image."""
    from skimage.feature import hog
    from skimage.transform import resize

    blocks = []
    for start in range(0, len(rows), CHUNK):
        batch = np.asarray(pixels[rows[start:start + CHUNK]], dtype=np.float32) / 255.0
        if batch.ndim == 3:
            batch = batch[..., None]
        n, height, width, channels = batch.shape
        colour = []
        for c in range(channels):
            level = np.clip((batch[..., c] * BINS).astype(np.int64), 0, BINS - 1)
            flat = (level + BINS * np.arange(n)[:, None, None]).ravel()
            colour.append(np.bincount(flat, minlength=n * BINS).reshape(n, BINS) / (height * width))
            colour.append(batch[..., c].reshape(n, -1).mean(1, keepdims=True))
            colour.append(batch[..., c].reshape(n, -1).std(1, keepdims=True))
        grey = resize(batch.mean(axis=3), (n, SIDE, SIDE), anti_aliasing=True)
        shapes = np.stack([hog(image, orientations=9, pixels_per_cell=(8, 8), cells_per_block=(2, 2))
                           for image in grey])
        blocks.append(np.hstack(colour + [shapes]).astype(np.float32))
    return np.vstack(blocks)


def compare(pixels: np.ndarray, y: np.ndarray, parts: dict[str, np.ndarray], class_names: list[str],
            network_predicted: np.ndarray, *, groups: np.ndarray | None = None, seed: int = 0) -> dict:
    """The colour-and-HOG baseline against the network's test predictions (class indices of parts["test"])."""
    from sklearn.preprocessing import StandardScaler

    parts = baselines.fewer_training_rows(parts)
    table = image_features(pixels, np.concatenate([parts["train"], parts["val"], parts["test"]]))
    model, strength, features = baselines.fit_table(table, y, parts, StandardScaler())
    test = parts["test"]
    return {"classical_baseline": {
        "name": "colour and HOG baseline",
        "model": f"logistic regression on colour histograms ({BINS} bins a channel, with mean and spread) and a "
                 f"histogram of oriented gradients of the grey image at {SIDE} x {SIDE} pixels",
        "strength_c": strength, "n_train": int(len(parts["train"])), "features": int(table.shape[1]),
        **baselines.scored(y[test], model.predict_proba(features(test)), network_predicted, class_names, groups,
                           seed)}}
