"""keras.applications backbones: the weight-loading path with a file made here, and the offline ImageNet case."""
from __future__ import annotations

import json

import keras
import numpy as np
import pytest

from conftest import biolens, one_line_error


@pytest.fixture(scope="module")
def mobilenet_weights(tmp_path_factory):
    """A MobileNetV3Small backbone weights file, as a user with internet would have downloaded."""
    path = tmp_path_factory.mktemp("weights") / "mobilenet_v3_small.weights.h5"
    keras.applications.MobileNetV3Small(weights=None, include_top=False, input_shape=(64, 64, 3),
                                        include_preprocessing=True).save_weights(path)
    return path


@pytest.mark.slow  # about 2 minutes each on 2 cores: the default suite stays shorter
def test_backbone_trains_from_a_weights_file_and_predicts(mobilenet_weights, slice_manifest, tmp_path):
    out = tmp_path / "run"
    biolens("train", slice_manifest, "--group-column", "source_image", "--backbone", "MobileNetV3Small",
            "--weights", mobilenet_weights, "--epochs", "1", "--out", out)
    info = json.loads((out / "run.json").read_text())
    assert info["status"] == "complete" and info["weights"] == str(mobilenet_weights)
    assert (out / "figures" / "gradcam.png").exists()
    biolens("predict", out, slice_manifest.parent / "images" / "WBC", "--out", tmp_path / "p.csv")


@pytest.mark.slow  # about 2 minutes each on 2 cores: the default suite stays shorter
def test_imagenet_weights_unavailable_is_one_line_not_a_crash(slice_manifest, tmp_path):
    out = tmp_path / "run"
    result = biolens("train", slice_manifest, "--group-column", "source_image", "--backbone", "MobileNetV3Small",
                     "--epochs", "1", "--out", out)
    weights = json.loads((out / "run.json").read_text())["weights"]
    if weights != "imagenet":  # this machine cannot download them (CI cannot)
        assert "ImageNet weights for MobileNetV3Small are unavailable" in result.stderr
        assert "random initialisation" in weights and "Traceback" not in result.stderr


@pytest.mark.slow  # a longer end-to-end run: pytest -m slow (keeps the default suite under 15 minutes)
def test_unknown_backbone_and_missing_weights_file(slice_manifest, tmp_path):
    result = biolens("train", slice_manifest, "--backbone", "AlexNet", "--out", tmp_path / "a", check=False)
    assert result.returncode == 2 and "Invalid value for --backbone. Received: AlexNet" in result.stderr
    result = biolens("train", slice_manifest, "--backbone", "ResNet50", "--weights", tmp_path / "none.h5",
                     "--out", tmp_path / "b", check=False)
    assert result.returncode == 2 and "none.h5: file not found" in result.stderr


@pytest.mark.slow  # a longer end-to-end run: pytest -m slow (keeps the default suite under 15 minutes)
def test_doctor_reports_the_machine_and_a_measured_speed():
    result = biolens("doctor", "--json")
    facts = json.loads(result.stdout)
    assert facts["cores"] >= 1 and facts["memory_gb"] > 0 and facts["matmul_gflops"] > 0.5
    assert facts["versions"]["tensorflow"] and facts["versions"]["keras"].startswith("3.")
    text = biolens("doctor").stdout
    assert "GFLOP/s" in text and "device:" in text


@pytest.mark.slow  # a longer end-to-end run: pytest -m slow (keeps the default suite under 15 minutes)
def test_doctor_estimate_predicts_the_epoch_time_of_a_real_run(trained_run, slice_manifest):
    import pandas as pd

    facts = json.loads(biolens("doctor", "--estimate", slice_manifest, "--json").stdout)
    assert facts["n_images"] == 216 and facts["image_size"] == 64 and facts["batch_size"] == 8
    history = pd.read_csv(trained_run / "history.csv")
    measured = history.elapsed_s.diff().dropna().median()  # epochs after the first (which builds the graph)
    assert measured / 2 <= facts["epoch_seconds"] <= measured * 2, (facts["epoch_seconds"], measured)
    assert 0.2 < facts["memory_gb"] < 8 and facts["pixels_in_memory"]
    assert "GPU would not change much" in facts["advice"]
    text = biolens("doctor", "--estimate", slice_manifest).stdout
    assert "time per epoch: about" in text and "memory: about" in text


@pytest.mark.slow  # a longer end-to-end run: pytest -m slow (keeps the default suite under 15 minutes)
def test_doctor_estimate_refuses_what_it_cannot_measure(tmp_path, slice_manifest):
    assert "--task classify" in one_line_error(biolens("doctor", "--estimate", slice_manifest, "--task", "cluster",
                                                       check=False))
    assert str(tmp_path / "none") in one_line_error(biolens("doctor", "--estimate", tmp_path / "none", check=False))


@pytest.mark.slow  # 30-45 s on 2 cores; the default suite stays under 15 minutes (pytest -m slow)
def test_doctor_estimate_of_a_detection_run_measures_the_run_it_would_start(detect_run):
    """Same reading, scale, units, steps and epochs as the real run on the same annotations; the epoch time within a
    factor of three of that run's epochs after the first (which compiles; the run also saves models each epoch)."""
    facts = json.loads(biolens("doctor", "--estimate", detect_run.parent / "data", "--task", "detect", "--epochs", "4",
                               "--json").stdout)
    run = json.loads((detect_run / "run.json").read_text())
    state = json.loads((detect_run / "checkpoints" / "state.json").read_text())
    metrics = json.loads((detect_run / "metrics.json").read_text())
    assert facts["n_images"] == run["n_images"] == 12 and facts["scale"] == pytest.approx(run["scale"], abs=1e-4)
    assert facts["steps_per_epoch"] == metrics["steps_per_epoch"] and facts["epochs"] == 4
    measured = float(np.median(state["epoch_seconds"][1:]))
    assert measured / 3 <= facts["epoch_seconds"] <= measured * 3, (facts["epoch_seconds"], state["epoch_seconds"])
    assert facts["networks"] == 3 and metrics["networks"] == 1  # few objects: three by default (the fixture asked one)
    assert facts["training_minutes"] * 60 == pytest.approx(3 * 4 * facts["epoch_seconds"], rel=0.05, abs=3)
    assert facts["total_minutes_at_most"] * 60 >= 3 * 4 * facts["epoch_seconds"]
    from biolens.cli import detect_estimate_lines

    text = "\n".join(detect_estimate_lines(facts))  # what the command prints without --json
    assert "4 epochs for each of 3 networks averaged" in text and "learning curve: about" in text
    assert "12 image(s)" in text
    from biolens.web.views import estimate_words

    words = estimate_words(facts)  # the web form's sentence from the same facts
    assert "annotated objects in 12 image(s)" in words and "for 4 epochs" in words
