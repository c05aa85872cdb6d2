"""Export a trained image or sequence classifier for use outside biolens: SavedModel, TFLite, ONNX and TF.js.

An exported image classifier takes raw RGB (or the run's channels) pixels 0-255 as float32, shape (batch, height,
width, channels) at the run's input size; a sequence classifier takes one-hot DNA as float32, shape (batch, length,
4) in ACGT order, centred as biolens centres it. Both return calibrated class probabilities (the run's temperature
applied), the same numbers `biolens predict` gives. Beside it, `<name>.labels.txt` lists the classes in output order and
`<name>.json` records the input size, classes, temperature and the run it came from.

TF.js is written here as a graph model (`model.json` + weight shards, the layout `tensorflowjs_converter` writes for
a frozen graph): the `tensorflowjs` package on PyPI cannot be a dependency (it pins TensorFlow Decision Forests,
JAX and tf-keras), and the format is a JSON GraphDef whose constants live in the weight files.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np

from biolens import console
from biolens.engine import lifecycle
from biolens.errors import InputError
from biolens.runs import Run, load_run, write_bytes, write_text

FORMATS = ("savedmodel", "tflite", "onnx", "tfjs")
# what each exportable task's model takes: (input name, what the sidecar JSON says about it)
INPUTS = {
    "classify": ("pixels", "float32 pixels 0-255, (batch, height, width, channels), resized to the input shape"),
    "sequence_classify": ("one_hot", ("float32 one-hot DNA, (batch, length, 4), bases in the order A, C, G, T; N, "
                                      "gaps and padding are all zeros; a longer sequence keeps its middle `length` "
                                      "bases, a shorter one is padded equally on both ends")),
}
_FILE_SUFFIX = {"tflite": ".tflite", "onnx": ".onnx"}


def export(run: str | Path | Run, out: str | Path, *, format: str = "savedmodel", force: bool = False) -> Path:  # noqa: A002
    """Write the run's model in `format` to `out` (a folder for savedmodel; a file or a folder for tflite/onnx).

    Example:
        >>> biolens.export("runs/cells", "cells.tflite", format="tflite")   # doctest: +SKIP
    """
    run = run if isinstance(run, Run) else load_run(run)
    info = lifecycle.read_run_info(run)
    if format not in FORMATS:
        raise InputError(f"Invalid value for --format. Received: {format!r}. Expected one of: {', '.join(FORMATS)}.")
    if info.get("task") not in INPUTS:
        raise InputError(f"{run.path} is a '{info.get('task')}' run; export takes an image or sequence classification "
                         "run (its model maps pixels or a sequence to class probabilities; an object-finding network's "
                         "heat maps need biolens' tiling and peak finding, so use `biolens predict` for it).")
    if info.get("status") != "complete" or not run.model_path.exists():
        raise InputError(f"{run.path} has not finished (status: {info.get('status')}); finish it before exporting.")
    target = _target(Path(out), format, run, force)
    model = _probability_model(run, info)
    with console.step(f"exporting {run.path.name} as {format}"):
        if format in _FOLDER_WRITERS:
            _atomic_folder(target, lambda folder: _FOLDER_WRITERS[format](model, folder))
        else:
            write_bytes(target, _tflite(model) if format == "tflite" else _onnx(model))
    _sidecars(target, run, info, model)
    console.say(f"{format} model: {target}")
    return target


def default_name(format: str) -> str:
    """The exported model's name inside a folder: model.tflite, model.onnx, or the folder `model` (SavedModel,
    TF.js)."""
    return f"model{_FILE_SUFFIX.get(format, '')}"


def _target(out: Path, format: str, run: Run, force: bool) -> Path:  # noqa: A002
    if out.resolve().is_relative_to(run.path.resolve()):
        raise InputError(f"--out {out} is inside the run folder {run.path}; export somewhere else.")
    if format in _FILE_SUFFIX and (out.is_dir() or out.suffix.lower() != _FILE_SUFFIX[format]):
        out = out / default_name(format)  # a folder was given: the model file goes inside
    if out.exists() and not force:
        raise InputError(f"{out} exists already; choose another --out or pass --force to replace it.")
    out.parent.mkdir(parents=True, exist_ok=True)
    return out  # with --force the old export is replaced only once the new one is complete


def _atomic_folder(target: Path, fill) -> None:
    """Fill a temporary folder beside `target`, then rename it into place: a killed export leaves no half model."""
    import os
    import tempfile

    temporary = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    try:
        shutil.rmtree(temporary)
        fill(temporary)
        if target.exists():
            shutil.rmtree(target) if target.is_dir() else target.unlink()
        os.replace(temporary, target)
    finally:
        if temporary.exists():
            shutil.rmtree(temporary)


def _probability_model(run: Run, info: dict):
    """The run's network with the calibration temperature and a softmax on top: pixels in, probabilities out."""
    import keras

    from biolens.models.io import load_trusted

    network = load_trusted(run.model_path, info.get("model_sha256"))
    temperature = float(run.metrics.get("temperature", 1.0))
    shape = network.input_shape[1:]
    if info["task"] == "sequence_classify":  # the length predict pads and cuts to (the network itself takes any)
        shape = (int(info["length"]), *shape[1:])
    entry = keras.Input(shape=shape, dtype="float32", name=INPUTS[info["task"]][0])
    logits = network(entry, training=False)
    probabilities = keras.layers.Softmax(name="probabilities")(keras.ops.cast(logits, "float32") / temperature)
    return keras.Model(entry, probabilities, name=f"{run.path.name}_probabilities")


def _input_spec(model):
    import tensorflow as tf

    return tf.TensorSpec(shape=(None, *model.input_shape[1:]), dtype=tf.float32, name=model.inputs[0].name)


def _savedmodel(model, folder: Path) -> None:
    import keras

    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint(name="serving_default", fn=lambda entry: {"probabilities": model(entry, training=False)},
                         input_signature=[_input_spec(model)])
    archive.write_out(str(folder), verbose=False)


def _tflite(model) -> bytes:
    import tempfile

    import tensorflow as tf

    with tempfile.TemporaryDirectory() as folder:
        _savedmodel(model, Path(folder) / "saved")
        converter = tf.lite.TFLiteConverter.from_saved_model(str(Path(folder) / "saved"))
        return converter.convert()


def _onnx(model) -> bytes:
    try:
        import tf2onnx
    except ImportError:
        raise InputError("--format onnx needs tf2onnx (pip install tf2onnx onnx); it is in biolens' dependencies, "
                         "so reinstall biolens with `make install`.") from None
    import tensorflow as tf

    function = tf.function(lambda entry: model(entry, training=False))
    proto, _ = tf2onnx.convert.from_function(function, input_signature=(_input_spec(model),), opset=17,
                                             output_path=None)
    return proto.SerializeToString()


# TF.js weights: the dtypes it reads, what numpy's others become (as tensorflowjs_converter does), the shard size
_TFJS_DTYPES = {"float32": "float32", "int32": "int32", "bool": "bool", "float16": "float32", "float64": "float32",
                "int64": "int32", "int8": "int32", "int16": "int32", "uint8": "int32", "uint16": "int32"}
_TFJS_SHARD_BYTES = 4 << 20


def _tfjs(model, folder: Path) -> None:
    """A TF.js graph model: the frozen graph of the probability model as JSON (`modelTopology`), every constant's
    value moved to 4 MB weight shards (`weightsManifest`, in graph order), and the serving signature."""
    import tensorflow as tf
    from google.protobuf.json_format import MessageToDict
    from tensorflow.core.protobuf import meta_graph_pb2
    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

    folder.mkdir(parents=True, exist_ok=True)
    function = tf.function(lambda entry: model(entry, training=False)).get_concrete_function(_input_spec(model))
    frozen = convert_variables_to_constants_v2(function)
    graph = frozen.graph.as_graph_def()
    if any(a.type == tf.float16.as_datatype_enum for n in graph.node for a in n.attr.values()):
        raise InputError("--format tfjs: this model computes in float16 (mixed precision), which TF.js does not run; "
                         "export --format tflite or onnx instead.")
    weights, blobs = [], []
    for node in graph.node:
        if node.op != "Const":
            continue
        value = tf.make_ndarray(node.attr["value"].tensor)
        if value.dtype.name not in _TFJS_DTYPES:
            raise InputError(f"--format tfjs: the model holds a {value.dtype.name} constant ({node.name}), which TF.js "
                             "cannot read; export --format tflite or onnx instead.")
        value = np.ascontiguousarray(value.astype(_TFJS_DTYPES[value.dtype.name]))
        weights.append({"name": node.name, "shape": list(value.shape), "dtype": value.dtype.name})
        blobs.append(value.tobytes())
        kept_dtype = node.attr["value"].tensor.dtype
        node.attr["value"].tensor.Clear()  # the value lives in the shards; the node keeps its dtype and shape
        node.attr["value"].tensor.dtype = kept_dtype
        node.attr["value"].tensor.tensor_shape.CopyFrom(tf.TensorShape(value.shape).as_proto())
    data = b"".join(blobs)
    count = max(1, -(-len(data) // _TFJS_SHARD_BYTES))
    paths = [f"group1-shard{k + 1}of{count}.bin" for k in range(count)]
    for k, name in enumerate(paths):
        (folder / name).write_bytes(data[k * _TFJS_SHARD_BYTES:(k + 1) * _TFJS_SHARD_BYTES])
    signature = meta_graph_pb2.SignatureDef(method_name="tensorflow/serving/predict")
    for key, tensor in ((model.inputs[0].name, frozen.inputs[0]), ("probabilities", frozen.outputs[0])):
        entry = signature.outputs[key] if key == "probabilities" else signature.inputs[key]
        entry.CopyFrom(meta_graph_pb2.TensorInfo(name=tensor.name, dtype=tensor.dtype.as_datatype_enum,
                                                 tensor_shape=tensor.shape.as_proto()))
    document = {"format": "graph-model", "generatedBy": tf.__version__, "convertedBy": "biolens export",
                "modelTopology": MessageToDict(graph), "signature": MessageToDict(signature),
                "weightsManifest": [{"paths": paths, "weights": weights}]}
    (folder / "model.json").write_text(json.dumps(document))


_FOLDER_WRITERS = {"savedmodel": _savedmodel, "tfjs": _tfjs}


def _sidecars(target: Path, run: Run, info: dict, model) -> None:
    """labels.txt (classes in output order) and a JSON description beside (or inside) the exported model."""
    base = target / "biolens_export" if target.is_dir() else target.with_suffix("")
    classes = list(info["class_names"])
    write_text(Path(f"{base}.labels.txt"), "\n".join(classes) + "\n")
    description = {"run": str(run.path), "classes": classes, "input_shape": list(model.input_shape[1:]),
                   "input_name": INPUTS[info["task"]][0], "input": INPUTS[info["task"]][1],
                   "output": "class probabilities (softmax, calibration temperature applied)",
                   "temperature": float(run.metrics.get("temperature", 1.0)),
                   "model_sha256": info.get("model_sha256")}
    write_text(Path(f"{base}.json"), json.dumps(description, indent=1) + "\n")


def check_round_trip(target: Path, format: str, pixels: np.ndarray) -> np.ndarray:  # noqa: A002
    """Probabilities of the exported model on `pixels` (or one-hot sequences), run by its own runtime (tests and
    the report's snippet)."""
    pixels = np.asarray(pixels, dtype=np.float32)
    if format == "savedmodel":
        import tensorflow as tf

        serve = tf.saved_model.load(str(target)).signatures["serving_default"]
        (name,) = serve.structured_input_signature[1]
        return serve(**{name: tf.constant(pixels)})["probabilities"].numpy()
    if format == "tflite":
        import tensorflow as tf

        interpreter = tf.lite.Interpreter(model_path=str(target))
        entry, exit_ = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
        interpreter.resize_tensor_input(entry["index"], pixels.shape)
        interpreter.allocate_tensors()
        interpreter.set_tensor(entry["index"], pixels)
        interpreter.invoke()
        return interpreter.get_tensor(exit_["index"])
    import onnxruntime

    session = onnxruntime.InferenceSession(str(target), providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: pixels})[0]
