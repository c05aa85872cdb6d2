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


def test_a_sequence_classifier_exports_and_the_reports_snippet_runs_it(sequence_run, sequence_data, tmp_path):
    """A sequence run exports like an image run (one-hot DNA in, the probabilities predict gives out: ONNX Runtime,
    the TFLite interpreter), and the report's Python snippet, run as a user would copy it, names the class predict
    names for a sequence longer than the run's length (its own centring)."""
    import re
    import html as html_text

    import biolens as api
    from biolens.readers.sequences import one_hot
    from biolens.tasks.export import check_round_trip

    records = sequence_data["sequences"].read_text().splitlines()
    fasta = tmp_path / "new.fa"
    fasta.write_text("\n".join(records[:16]) + "\n")
    predictions = tmp_path / "predictions.csv"
    biolens("predict", sequence_run, fasta, "--out", predictions)
    info = json.loads((sequence_run / "run.json").read_text())
    table = pd.read_csv(predictions)
    expected = table[[f"prob_{c}" for c in info["class_names"]]].to_numpy()
    sequences = dict(zip([r[1:].split()[0] for r in records[0:16:2]], records[1:16:2]))
    x = one_hot([sequences[i] for i in table["id"]], int(info["length"]), centred=True)
    for form, out in (("onnx", tmp_path / "seq.onnx"), ("tflite", tmp_path / "seq.tflite")):
        api.export(sequence_run, out, format=form)
        np.testing.assert_allclose(check_round_trip(out, form, x), expected, atol=1e-4 + 5e-5, err_msg=form)
    description = json.loads((tmp_path / "seq.json").read_text())
    assert description["input_name"] == "one_hot" and description["input_shape"] == [int(info["length"]), 4]

    report = (sequence_run / "report.html").read_text()
    snippet = html_text.unescape(re.search(r'id="use-elsewhere".*?<pre><code>(.*?)</code></pre>', report, re.S).group(1))
    longer = "TTTTT" + sequences[table["id"][0]] + "GGGGGGG"  # 12 more bases: the snippet must keep the middle
    (tmp_path / "model.onnx").write_bytes((tmp_path / "seq.onnx").read_bytes())
    (tmp_path / "model.labels.txt").write_text((tmp_path / "seq.labels.txt").read_text())
    (tmp_path / "snippet.py").write_text(snippet.replace('"ACGTTGCA..."', repr(longer)))
    import sys

    ran = subprocess.run([sys.executable, "snippet.py"], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert ran.returncode == 0, ran.stderr[-2000:]
    label, probability = ran.stdout.split()
    biolens("predict", sequence_run, _fasta(tmp_path / "longer.fa", longer), "--out", tmp_path / "longer.csv")
    again = pd.read_csv(tmp_path / "longer.csv").iloc[0]
    assert label == again["predicted"] and abs(float(probability) - again["confidence"]) < 1e-3


def _fasta(path, sequence):
    path.write_text(f">longer\n{sequence}\n")
    return path


def test_export_refuses_what_it_cannot_do(trained_run, detect_run, tmp_path):
    import biolens as api
    from biolens.errors import InputError

    result = biolens("export", trained_run, "--format", "coreml", "--out", tmp_path / "ml", check=False)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == 2 and len(lines) == 1 and lines[0].startswith("error:") and "tfjs" in lines[0]
    with pytest.raises(InputError, match="'keras'"):
        api.export(trained_run, tmp_path / "k", format="keras")
    with pytest.raises(InputError, match="image or sequence classification run"):
        api.export(detect_run, tmp_path / "d.onnx", format="onnx")
    with pytest.raises(InputError, match="inside the run folder"):
        api.export(trained_run, trained_run / "m.tflite", format="tflite")
    existing = tmp_path / "taken.tflite"
    existing.write_bytes(b"mine")
    with pytest.raises(InputError, match="--force"):
        api.export(trained_run, existing, format="tflite")
    assert existing.read_bytes() == b"mine" and not (tmp_path / "k").exists()
