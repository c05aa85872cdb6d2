"""`biolens export`: SavedModel, TFLite and ONNX give the same probabilities as `biolens predict`, run by their own
runtimes (TensorFlow's SavedModel loader, the TFLite interpreter, ONNX Runtime)."""
from __future__ import annotations

import json
import subprocess

import numpy as np
import pandas as pd
import pytest

from tests.conftest import ROOT, SLICE, biolens

NODE_TFJS = ROOT / "tests" / "js" / "predict_tfjs.mjs"


@pytest.fixture(scope="module")
def test_images():
    return sorted((SLICE / "images" / "WBC").iterdir())[:3] + sorted((SLICE / "images" / "RBC").iterdir())[:3]


def _pixels(run, files):
    from biolens.models.io import load_trusted
    from biolens.runs import load_run
    from biolens.tasks.predict import _read_images

    loaded = load_run(run)
    model = load_trusted(loaded.model_path, loaded.info.get("model_sha256"))
    names, pixels, _ = _read_images(loaded, model, files, skip_bad=False)
    return names, pixels


def test_exported_models_give_the_same_probabilities_as_predict(trained_run, test_images, tmp_path):
    from biolens.tasks.export import check_round_trip

    predictions = tmp_path / "predictions.csv"
    biolens("predict", trained_run, *test_images, "--out", predictions)
    info = json.loads((trained_run / "run.json").read_text())
    columns = [f"prob_{c}" for c in info["class_names"]]
    names, pixels = _pixels(trained_run, test_images)
    expected = pd.read_csv(predictions).set_index("file").loc[names, columns].to_numpy()
    (tmp_path / "exports").mkdir()
    targets = {"savedmodel": tmp_path / "cells_savedmodel", "tflite": tmp_path / "cells.tflite",
               "onnx": tmp_path / "exports"}  # a folder: the model goes inside as model.onnx
    import biolens as api

    for form, out in targets.items():
        api.export(trained_run, out, format=form)  # in-process; the CLI face is checked below
        target = out / "model.onnx" if form == "onnx" else out
        probabilities = check_round_trip(target, form, pixels)  # TF's loader, the TFLite interpreter, ONNX Runtime
        np.testing.assert_allclose(probabilities, expected, atol=1e-4 + 5e-5, err_msg=form)  # predict rounds to 1e-4
        base = (target / "biolens_export") if target.is_dir() else target.with_suffix("")
        assert (base.parent / f"{base.name}.labels.txt").read_text().split() == info["class_names"]
        assert json.loads((base.parent / f"{base.name}.json").read_text())["input_shape"] == list(pixels.shape[1:])
    api.export(trained_run, targets["tflite"], format="tflite", force=True)  # --force replaces a finished export
    assert np.allclose(check_round_trip(targets["tflite"], "tflite", pixels), expected, atol=1.5e-4)


def test_tfjs_export_runs_in_tensorflow_js_with_the_same_probabilities(trained_run, test_images, tmp_path):
    """The CLI writes a TF.js graph model; TensorFlow.js itself (Node.js, its CPU backend: `make tfjs`) loads it
    and gives the probabilities `biolens predict` gives."""
    assert NODE_TFJS.exists(), "TensorFlow.js for the tests is missing: `make test` installs it (make tfjs)"
    predictions = tmp_path / "predictions.csv"
    biolens("predict", trained_run, *test_images, "--out", predictions)
    info = json.loads((trained_run / "run.json").read_text())
    names, pixels = _pixels(trained_run, test_images)
    expected = pd.read_csv(predictions).set_index("file").loc[names, [f"prob_{c}" for c in info["class_names"]]]
    biolens("export", trained_run, "--format", "tfjs", "--out", tmp_path / "web_model")
    folder = tmp_path / "web_model"
    document = json.loads((folder / "model.json").read_text())
    assert document["format"] == "graph-model" and (folder / "biolens_export.labels.txt").exists()
    (tmp_path / "pixels.json").write_text(json.dumps({"shape": list(pixels.shape), "data": pixels.ravel().tolist()}))
    ran = subprocess.run(["node", str(NODE_TFJS), str(folder), str(tmp_path / "pixels.json")], capture_output=True,
                         text=True, timeout=300, cwd=NODE_TFJS.parent)
    assert ran.returncode == 0, ran.stderr[-2000:]
    output = json.loads(ran.stdout)
    probabilities = np.asarray(output["data"], dtype=np.float64).reshape(output["shape"])
    np.testing.assert_allclose(probabilities, expected.to_numpy(), atol=1e-4 + 5e-5)  # predict rounds to 1e-4


def test_export_refuses_what_it_cannot_do(trained_run, detect_run, tmp_path):
    import biolens as api
    from biolens.errors import InputError

    result = biolens("export", trained_run, "--format", "coreml", "--out", tmp_path / "ml", check=False)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == 2 and len(lines) == 1 and lines[0].startswith("error:") and "tfjs" in lines[0]
    with pytest.raises(InputError, match="'keras'"):
        api.export(trained_run, tmp_path / "k", format="keras")
    with pytest.raises(InputError, match="image classification run"):
        api.export(detect_run, tmp_path / "d.onnx", format="onnx")
    with pytest.raises(InputError, match="inside the run folder"):
        api.export(trained_run, trained_run / "m.tflite", format="tflite")
    existing = tmp_path / "taken.tflite"
    existing.write_bytes(b"mine")
    with pytest.raises(InputError, match="--force"):
        api.export(trained_run, existing, format="tflite")
    assert existing.read_bytes() == b"mine" and not (tmp_path / "k").exists()
