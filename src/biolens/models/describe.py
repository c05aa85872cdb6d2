"""A plain-words description of a built Keras model, read from its layers, for the Methods paragraph.

The report never restates hyper-parameters from memory: what it says about the network is read off the network
that was trained, so it stays true after a model changes.
"""
from __future__ import annotations


def _walk(layer):
    inner = getattr(layer, "layers", None)
    if inner:
        for child in inner:
            yield from _walk(child)
    else:
        yield layer


def describe_model(model) -> dict:
    """{"text": "...", "parameters": N} for a Keras model (nested models flattened)."""
    convs, dense, dropouts, kinds = [], [], [], set()
    for layer in _walk(model):
        name = type(layer).__name__
        if name.startswith(("Conv", "SeparableConv", "DepthwiseConv")) and hasattr(layer, "kernel_size"):
            convs.append((name, tuple(layer.kernel_size), getattr(layer, "filters", None)))
        elif name == "Dense":
            dense.append(layer.units)
        elif name.endswith("Dropout"):
            dropouts.append(getattr(layer, "rate", None))
        elif "BatchNormalization" in name:
            kinds.add("batch normalisation")
        elif "GlobalAveragePooling" in name:
            kinds.add("global average pooling")
        elif "GlobalMaxPooling" in name:
            kinds.add("global max pooling")
        elif name.startswith("MaxPooling"):
            kinds.add("max pooling")
        elif name.startswith(("UpSampling", "Conv2DTranspose")):
            kinds.add("upsampling")
        elif name == "Concatenate":
            kinds.add("skip connections")
    parts = []
    if convs:
        sizes = sorted({"x".join(map(str, k)) for _, k, _ in convs})
        filters = [f for _, _, f in convs if f]
        span = f"{min(filters)} to {max(filters)} filters" if filters and min(filters) != max(filters) else (
            f"{filters[0]} filters" if filters else "")
        parts.append(f"{len(convs)} convolutional layers ({', '.join(sizes)} kernels{', ' + span if span else ''})")
    if dense:
        parts.append(f"{len(dense)} dense layer{'s' if len(dense) > 1 else ''} ({', '.join(map(str, dense))} units)")
    parts += sorted(kinds)
    rates = sorted({round(r, 2) for r in dropouts if r})
    if rates:
        parts.append(f"dropout {', '.join(map(str, rates))}")
    parameters = int(model.count_params())
    text = ", ".join(parts) + f"; {parameters:,} parameters"
    return {"text": text, "parameters": parameters, "name": model.name}
