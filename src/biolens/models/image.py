"""Image classifiers: a compact CNN that trains from scratch on a laptop CPU, or a keras.applications backbone.

Every model takes float pixels in [0, 255] (so predicting needs no outside preprocessing), exposes its
last feature map as the layer named `feature_map` (for Grad-CAM), and returns float32 logits even under
mixed precision.
"""
from __future__ import annotations

import keras
from keras import layers, ops

FEATURE_MAP = "feature_map"

# name -> (keras.applications constructor, input preprocessing the ImageNet weights expect)
BACKBONES = {
    "EfficientNetB0": ("EfficientNetB0", "none"),
    "EfficientNetB1": ("EfficientNetB1", "none"),
    "EfficientNetV2B0": ("EfficientNetV2B0", "none"),
    "MobileNetV3Small": ("MobileNetV3Small", "none"),
    "MobileNetV3Large": ("MobileNetV3Large", "none"),
    "MobileNetV2": ("MobileNetV2", "tf"),
    "ResNet50": ("ResNet50", "caffe"),
    "ResNet50V2": ("ResNet50V2", "tf"),
    "DenseNet121": ("DenseNet121", "torch"),
    "ConvNeXtTiny": ("ConvNeXtTiny", "none"),
}


@keras.saving.register_keras_serializable(package="biolens")
class BackbonePreprocess(layers.Layer):
    """The `preprocess_input` of keras.applications as a serialisable layer (no Lambda, so safe_mode loads it)."""

    _MEAN = {"caffe": (103.939, 116.779, 123.68), "torch": (0.485 * 255, 0.456 * 255, 0.406 * 255)}
    _STD = {"torch": (0.229 * 255, 0.224 * 255, 0.225 * 255)}

    def __init__(self, mode: str = "none", **kwargs):
        super().__init__(**kwargs)
        self.mode = mode

    def call(self, x):
        if self.mode == "tf":
            return x / 127.5 - 1.0
        if self.mode == "caffe":
            return ops.flip(x, axis=-1) - ops.convert_to_tensor(self._MEAN["caffe"], dtype=x.dtype)
        if self.mode == "torch":
            mean = ops.convert_to_tensor(self._MEAN["torch"], dtype=x.dtype)
            return (x - mean) / ops.convert_to_tensor(self._STD["torch"], dtype=x.dtype)
        return x

    def get_config(self):
        return {**super().get_config(), "mode": self.mode}


def compact_cnn(input_shape: tuple[int, int, int], n_classes: int, widths=(16, 32, 64, 128),
                dropout: float = 0.3, synchronized_batchnorm: bool = False) -> keras.Model:
    """Four blocks of two 3x3 conv + batch norm + ReLU, max-pooled, then global average pooling.

    About 110 MFLOP per 64x64 image: it trains at several hundred images/s on 2 CPU cores
    (benchmarks/throughput.py), is small enough not to overfit a few thousand images, and wide enough for
    stain, shape and texture cues (0.995 held-out balanced accuracy on blood_cells, docs/performance.md).
    `synchronized_batchnorm` pools the batch statistics of every replica (several machines), so that all workers
    keep the same moving statistics as they keep the same weights.
    """
    inputs = keras.Input(input_shape, name="pixels")
    x = layers.Identity(name=FEATURE_MAP)(compact_blocks(inputs, widths, synchronized_batchnorm))
    x = layers.GlobalAveragePooling2D()(x)
    x = layers.Dropout(dropout)(x)
    outputs = layers.Dense(n_classes, dtype="float32", name="logits")(x)
    return keras.Model(inputs, outputs, name="biolens_compact_cnn")


def compact_blocks(inputs, widths=(16, 32, 64, 128), synchronized_batchnorm: bool = False):
    """The convolutional body of `compact_cnn`, its layers named block{b}_conv{k} / block{b}_bn{k}: the names
    by which a self-supervised encoder (models/contrastive.py) or an earlier run's model hands its weights on."""
    x = layers.Rescaling(1.0 / 255.0)(inputs)
    for block, width in enumerate(widths):
        for conv in range(2):
            x = layers.Conv2D(width, 3, padding="same", use_bias=False, name=f"block{block}_conv{conv}")(x)
            x = layers.BatchNormalization(momentum=0.9, synchronized=synchronized_batchnorm,  # momentum: settles
                                          name=f"block{block}_bn{conv}")(x)             # within a few epochs
            x = layers.ReLU(name=f"block{block}_relu{conv}")(x)
        if block < len(widths) - 1:
            x = layers.MaxPooling2D(name=f"block{block}_pool")(x)
    return x


def backbone_classifier(name: str, input_shape: tuple[int, int, int], n_classes: int,
                        weights: str | None = "imagenet", dropout: float = 0.3) -> keras.Model:
    """A keras.applications network (without its top) with a fresh classification head.

    `weights` is "imagenet" (downloaded, or taken from the Keras cache ~/.keras/models), None for random
    initialisation, or the path of a weights file for the backbone.
    """
    constructor_name, mode = BACKBONES[name]
    constructor = getattr(keras.applications, constructor_name)
    kwargs = {"include_top": False, "input_shape": input_shape}
    if name.startswith("MobileNetV3"):
        kwargs["include_preprocessing"] = True
    local_file = weights not in (None, "imagenet")
    base = constructor(weights=None if local_file else weights, **kwargs)
    if local_file:
        base.load_weights(weights)
    inputs = keras.Input(input_shape, name="pixels")
    x = BackbonePreprocess(mode, name="backbone_preprocess")(inputs)
    x = base(x)
    x = layers.Identity(name=FEATURE_MAP)(x)
    x = layers.GlobalAveragePooling2D()(x)
    x = layers.Dropout(dropout)(x)
    outputs = layers.Dense(n_classes, dtype="float32", name="logits")(x)
    return keras.Model(inputs, outputs, name=f"biolens_{name}")


def forward_flops(model: keras.Model) -> float:
    """FLOPs of one image's forward pass: 2 x the multiply-adds of every Conv2D and Dense layer (benchmarks use
    3x this for a training step: forward, and backward for inputs and weights)."""
    total = 0.0
    for layer in model.layers:
        if isinstance(layer, layers.Conv2D):
            _, h, w, c_out = layer.output.shape
            kh, kw = layer.kernel_size
            total += 2.0 * h * w * kh * kw * layer.input.shape[-1] * c_out
        elif isinstance(layer, layers.Dense):
            total += 2.0 * layer.input.shape[-1] * layer.units
    return total
