"""The fully convolutional network that finds objects: a U-Net with a centre heat-map head (one channel per class;
peaks are objects, as in CenterNet), a size head (log width and height, for boxes), a foreground head (for
masks, split into instances by watershed from the peaks) and a density head (one channel per class; its sum over a
region is the number of objects there, as in FCRN counting: it keeps counting where touching objects merge peaks).

Small enough to train from scratch on a laptop CPU in minutes; any input size whose sides are multiples of
2**depth. Targets and loss live here too, since they define what the heads mean.
"""
from __future__ import annotations

import keras
import numpy as np
from keras import ops

HEAT_PRIOR = 0.05  # initial probability of "object centre" everywhere (CenterNet's bias trick: stable start)
DENSITY_SCALE = 100.0  # density targets are objects per pixel x this (FCRN's trick: values near 1, not 0.01)
DENSITY_WEIGHT = 0.01  # squared density error summed per object is ~100 at the start; this brings it near 1


def _block(x, filters: int, name: str):
    for k in range(2):
        x = keras.layers.Conv2D(filters, 3, padding="same", use_bias=False, name=f"{name}_conv{k}")(x)
        x = keras.layers.BatchNormalization(momentum=0.9, name=f"{name}_bn{k}")(x)  # settles within a short run
        x = keras.layers.ReLU(name=f"{name}_relu{k}")(x)
    return x


def object_unet(n_classes: int, channels: int = 3, *, base: int = 8, depth: int = 4,
                name: str = "object_unet") -> keras.Model:
    """U-Net whose single output stacks [heat logits (n_classes) | log size (2) | foreground logit (1) |
    scaled density (n_classes)]."""
    inputs = keras.Input((None, None, channels), name="image")
    x = keras.layers.Rescaling(1.0 / 255.0, name="scale")(inputs)
    skips = []
    for level in range(depth):
        x = _block(x, base * 2**level, f"down{level}")
        skips.append(x)
        x = keras.layers.MaxPooling2D(2, name=f"pool{level}")(x)
    x = _block(x, base * 2**depth, "bottom")
    for level in reversed(range(depth)):
        x = keras.layers.UpSampling2D(2, name=f"up{level}")(x)
        x = keras.layers.Concatenate(name=f"skip{level}")([x, skips[level]])
        x = _block(x, base * 2**level, f"dec{level}")
    prior = float(np.log(HEAT_PRIOR / (1 - HEAT_PRIOR)))
    heat = keras.layers.Conv2D(n_classes, 1, bias_initializer=keras.initializers.Constant(prior), name="heat")(x)
    size = keras.layers.Conv2D(2, 1, name="size")(x)
    foreground = keras.layers.Conv2D(1, 1, name="foreground")(x)
    density = keras.layers.Conv2D(n_classes, 1, name="density")(x)
    outputs = keras.layers.Concatenate(name="objects", dtype="float32")([heat, size, foreground, density])
    return keras.Model(inputs, outputs, name=name)


def network_shape(model: keras.Model) -> tuple[int, int]:
    """(classes, image channels) of an object network, read from its output [heat n | size 2 | foreground 1 |
    density n] and its input."""
    return (int(model.outputs[0].shape[-1]) - 3) // 2, int(model.inputs[0].shape[-1])


def detached_copy(model: keras.Model, name: str = "object_unet") -> keras.Model:
    """A fresh U-Net holding a trained network's weights, without its optimiser or compiled steps."""
    copy = object_unet(*network_shape(model), name=name)
    copy.set_weights(model.get_weights())
    return copy


def averaged_networks(members: list[keras.Model]) -> keras.Model:
    """One network whose output is the mean of the members' raw outputs (as flip averaging at test time does):
    a single model.keras that predict, review and the tiler use as they use one network. The members are copied
    into fresh U-Nets of distinct names (a model cannot hold two layers of one name)."""
    inputs = keras.Input((None, None, network_shape(members[0])[1]), name="image")
    outputs = [detached_copy(member, name=f"member{k}")(inputs) for k, member in enumerate(members)]
    mean = keras.layers.Average(name="objects", dtype="float32")(outputs)
    return keras.Model(inputs, mean, name=f"object_unet_x{len(members)}")


@keras.saving.register_keras_serializable(package="biolens")
class WarmupCosine(keras.optimizers.schedules.CosineDecay):
    """Keras' CosineDecay with a warm-up, its rates and lengths held in variables: `reset` starts a new schedule
    without tracing a new training step. Why: every newly traced XLA training step stays in TensorFlow's
    compilation cache until the process ends (about 250 MB each for the object network, measured), and one
    detection run trains up to 18 networks; reusing one compiled model needs a schedule it can change."""

    def __init__(self, initial_learning_rate, decay_steps, alpha=0.0, name="WarmupCosine", warmup_target=None,
                 warmup_steps=0):
        super().__init__(initial_learning_rate, decay_steps, alpha=alpha, name=name, warmup_target=warmup_target,
                         warmup_steps=warmup_steps)
        values = {"initial_learning_rate": initial_learning_rate, "decay_steps": decay_steps,
                  "warmup_target": initial_learning_rate if warmup_target is None else warmup_target,
                  "warmup_steps": warmup_steps}
        for key, value in values.items():
            setattr(self, key, keras.Variable(float(value), trainable=False, dtype="float32", name=key))

    def reset(self, initial_learning_rate: float, decay_steps: int, warmup_target: float, warmup_steps: int) -> None:
        self.initial_learning_rate.assign(float(initial_learning_rate))
        self.decay_steps.assign(float(decay_steps))
        self.warmup_target.assign(float(warmup_target))
        self.warmup_steps.assign(float(warmup_steps))

    def get_config(self):
        return {"initial_learning_rate": float(self.initial_learning_rate.numpy()),
                "decay_steps": float(self.decay_steps.numpy()), "alpha": self.alpha, "name": self.name,
                "warmup_target": float(self.warmup_target.numpy()), "warmup_steps": float(self.warmup_steps.numpy())}


def render_targets(shape: tuple[int, int], centres: np.ndarray, classes: np.ndarray, sizes: np.ndarray | None,
                   n_classes: int, sigma: float, foreground: np.ndarray | None = None,
                   valid: np.ndarray | None = None, density_sigma: float | None = None) -> np.ndarray:
    """Targets at model scale, (H, W, 2 n_classes + 4) float16: Gaussian heat per class with 1 at each centre pixel,
    log width/height, foreground, density per class (a Gaussian of unit mass per object, x DENSITY_SCALE), and a
    'valid' channel (0 where nothing was annotated: no loss there). The valid channel is always the last."""
    height, width = shape
    target = np.zeros((height, width, 2 * n_classes + 4), np.float16)
    radius = int(np.ceil(3 * sigma))
    offsets = np.arange(-radius, radius + 1)
    kernel = np.exp(-(offsets[:, None] ** 2 + offsets[None, :] ** 2) / (2 * sigma**2)).astype(np.float32)
    heat = np.zeros((height, width, n_classes), np.float32)
    logsize = np.zeros((height, width, 2), np.float32)
    density = np.zeros((height, width, n_classes), np.float32)
    for k, (x, y) in enumerate(centres):  # unit impulses, then one Gaussian blur per class: exact mass per object
        cx, cy = int(np.clip(np.floor(x), 0, width - 1)), int(np.clip(np.floor(y), 0, height - 1))
        density[cy, cx, int(classes[k])] += DENSITY_SCALE
    if len(centres):
        from scipy import ndimage

        blur = density_sigma or 2 * sigma
        for c in range(n_classes):
            density[..., c] = ndimage.gaussian_filter(density[..., c], blur, mode="mirror", truncate=3.0)
    for k, (x, y) in enumerate(centres):
        cx, cy = int(np.clip(np.floor(x), 0, width - 1)), int(np.clip(np.floor(y), 0, height - 1))
        y0, y1, x0, x1 = max(0, cy - radius), min(height, cy + radius + 1), max(0, cx - radius), min(width, cx + radius + 1)
        patch = kernel[y0 - cy + radius:y1 - cy + radius, x0 - cx + radius:x1 - cx + radius]
        channel = int(classes[k])
        heat[y0:y1, x0:x1, channel] = np.maximum(heat[y0:y1, x0:x1, channel], patch)
        heat[cy, cx, channel] = 1.0
        if sizes is not None:
            near = patch >= 0.5
            region = logsize[y0:y1, x0:x1]
            region[near] = np.log(np.maximum(sizes[k], 1.0))
    target[..., :n_classes] = heat
    target[..., n_classes:n_classes + 2] = logsize
    if foreground is not None:
        target[..., n_classes + 2] = foreground
    target[..., n_classes + 3:2 * n_classes + 3] = density
    target[..., -1] = 1.0 if valid is None else valid
    return target


@keras.saving.register_keras_serializable(package="biolens")
class ObjectLoss(keras.losses.Loss):
    """CenterNet's penalty-reduced focal loss on the heat map, L1 on log size near centres, binary cross-entropy
    on the foreground, squared error of the density (summed per annotated object); every term only where the
    target is valid."""

    def __init__(self, n_classes: int, use_size: bool, use_foreground: bool, use_density: bool = False, **kwargs):
        super().__init__(**kwargs)
        self.n_classes, self.use_size, self.use_foreground = n_classes, use_size, use_foreground
        self.use_density = use_density

    def call(self, y_true, y_pred):
        c = self.n_classes
        y_true = ops.cast(y_true, "float32")
        valid = y_true[..., -1:]
        heat_true = y_true[..., :c]
        prob = ops.clip(ops.sigmoid(y_pred[..., :c]), 1e-4, 1 - 1e-4)
        positive = ops.cast(heat_true >= 0.999, "float32")
        pos_loss = ops.log(prob) * (1 - prob) ** 2 * positive
        neg_loss = ops.log(1 - prob) * prob**2 * (1 - heat_true) ** 4 * (1 - positive)
        n_pos = ops.maximum(ops.sum(positive * valid), 1.0)
        loss = -ops.sum((pos_loss + neg_loss) * valid) / n_pos
        if self.use_size:
            near = ops.cast(ops.max(heat_true, axis=-1, keepdims=True) >= 0.5, "float32") * valid
            error = ops.abs(y_pred[..., c:c + 2] - y_true[..., c:c + 2]) * near
            loss = loss + ops.sum(error) / ops.maximum(ops.sum(near), 1.0)
        if self.use_foreground:
            fg_true = y_true[..., c + 2:c + 3]
            logits = y_pred[..., c + 2:c + 3]
            bce = ops.maximum(logits, 0) - logits * fg_true + ops.log1p(ops.exp(-ops.abs(logits)))
            loss = loss + ops.sum(bce * valid) / ops.maximum(ops.sum(valid), 1.0)
        if self.use_density:
            error = (y_pred[..., c + 3:2 * c + 3] - y_true[..., c + 3:2 * c + 3]) ** 2
            loss = loss + DENSITY_WEIGHT * ops.sum(error * valid) / n_pos
        return loss

    def get_config(self):
        return {**super().get_config(), "n_classes": self.n_classes, "use_size": self.use_size,
                "use_foreground": self.use_foreground, "use_density": self.use_density}
