"""End to end through the real `biolens` command on real blood-cell crops grouped by smear photo."""
from __future__ import annotations

import csv
import hashlib
import json
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest

from conftest import ENV, ROOT, biolens


def test_train_writes_a_complete_run_folder(trained_run):
    for name in ("run.json", "metrics.json", "history.csv", "model.keras", "predictions.csv", "report.html",
                 "splits.csv", "figures/confusion_matrix.png", "figures/gradcam.png", "figures/training_curves.png",
                 "figures/class_examples.png"):
        assert (trained_run / name).exists(), name
    report = (trained_run / "report.html").read_text()
    assert 'alt="A few training images of each class"' in report
    predictions = pd.read_csv(trained_run / "predictions.csv")
    mistakes = int((predictions.true != predictions.predicted).sum())
    assert (trained_run / "figures" / "misclassified.png").exists() == (mistakes > 0)
    assert ('alt="Misclassified test images"' in report) == (mistakes > 0)
    assert ("No test image was misclassified" in report) == (mistakes == 0)
    assert any((trained_run / "tensorboard").rglob("events.out.tfevents*"))
    info = json.loads((trained_run / "run.json").read_text())
    assert info["status"] == "complete" and info["task"] == "classify" and info["seed"] == 1
    assert info["model_sha256"] == hashlib.sha256((trained_run / "model.keras").read_bytes()).hexdigest()
    assert info["versions"]["tensorflow"] and info["data_fingerprint"] and info["class_names"] == ["Platelets", "RBC", "WBC"]
    assert info["learning_rate"] == pytest.approx(0.003 * info["batch_size"] / 32)  # small data, small batch, gentler rate
    # the weights validated and kept are their moving average over about the last two epochs' steps
    steps = -(-json.loads((trained_run / "metrics.json").read_text())["n_train"] // info["batch_size"])
    assert info["weight_average_momentum"] == pytest.approx(max(0.9, 1 - 1 / (2 * steps)), abs=1e-4)
    assert "moving average of the weights" in (trained_run / "report.html").read_text()
    metrics = json.loads((trained_run / "metrics.json").read_text())
    for key in ("accuracy", "balanced_accuracy", "macro_f1"):
        low, high = metrics[f"{key}_ci95"]
        assert 0 <= low <= metrics[key] <= high <= 1
    assert metrics["n_train"] + metrics["n_val"] + metrics["n_test"] == 216
    assert set(metrics["per_class"]) == {"Platelets", "RBC", "WBC"} and 0 <= metrics["ece"] <= 1
    base = metrics["classical_baseline"]  # colour histograms and HOG, on the same splits
    assert base["n_train"] == metrics["n_train"] and 0 <= base["balanced_accuracy"] <= 1
    assert base["network_minus_this"] == pytest.approx(metrics["balanced_accuracy"] - base["balanced_accuracy"])
    assert metrics["baseline_reading"] in report and 'id="classical-baseline"' in report
    assert "As a classical baseline, logistic regression on colour histograms" in report
    history = pd.read_csv(trained_run / "history.csv")
    assert list(history.epoch) == [1, 2, 3, 4] and history.elapsed_s.is_monotonic_increasing
    # the test images are the ones the split put aside, and no smear photo is in two splits
    splits = pd.read_csv(trained_run / "splits.csv")
    assert splits.groupby("group").split.nunique().max() == 1
    assert set(pd.read_csv(trained_run / "predictions.csv").file) == set(splits.file[splits.split == "test"])


def test_model_learns_better_than_chance(trained_run):
    metrics = json.loads((trained_run / "metrics.json").read_text())
    assert metrics["balanced_accuracy"] > 0.5, metrics["balanced_accuracy"]  # chance is 1/3


def test_report_is_self_contained_and_rewritable(trained_run, tmp_path):
    html = (trained_run / "report.html").read_text()
    assert "held-out test set" in html and "Methods" in html and "data:image/png;base64," in html
    assert 'src="http' not in html and "Random seed 1" in html
    run = shutil.copytree(trained_run, tmp_path / "run")  # the shared run's report stays for the other workers' tests
    report = run / "report.html"
    report.unlink()
    result = biolens("report", run)
    assert report.exists() and str(report) in result.stdout


@pytest.mark.slow  # a longer end-to-end run: pytest -m slow (keeps the default suite under 15 minutes)
def test_predict_folder_files_and_single_file(trained_run, slice_manifest, tmp_path):
    folder = slice_manifest.parent / "images" / "WBC"
    out = tmp_path / "preds.csv"
    biolens("predict", trained_run, folder, "--out", out)
    table = pd.read_csv(out)
    assert list(table.columns[:4]) == ["file", "predicted", "confidence", "unsure"]
    assert {"prob_Platelets", "prob_RBC", "prob_WBC"} <= set(table.columns)
    assert len(table) == len(list(folder.glob("*.jpg")))
    probs = table[["prob_Platelets", "prob_RBC", "prob_WBC"]].sum(axis=1)
    assert ((probs - 1).abs() < 0.01).all() and table.unsure.dtype == bool
    files = sorted(folder.glob("*.jpg"))[:2]
    refused = biolens("predict", trained_run, *files, "--out", out, check=False)  # never over a file unasked
    assert refused.returncode == 2 and "--force" in refused.stderr and len(pd.read_csv(out)) == len(table)
    biolens("predict", trained_run, *files, "--out", out, "--force")
    assert len(pd.read_csv(out)) == 2
    biolens("predict", trained_run, files[0], "--out", out, "--force")
    assert pd.read_csv(out).file.tolist() == [str(files[0])]


def test_tampered_model_is_refused(trained_run, tmp_path):
    copy = tmp_path / "run"
    shutil.copytree(trained_run, copy)
    with open(copy / "model.keras", "ab") as handle:
        handle.write(b"\0")
    result = biolens("predict", copy, ROOT / "examples/blood_cells_slice/images/WBC", check=False)
    assert result.returncode == 2 and "sha256 differs" in result.stderr and "Traceback" not in result.stderr


def test_h5_and_pickle_models_are_refused(tmp_path):
    from biolens.errors import InputError
    from biolens.models.io import load_trusted

    for name in ("model.h5", "model.pkl"):
        (tmp_path / name).write_bytes(b"x")
        with pytest.raises(InputError, match="refusing to load"):
            load_trusted(tmp_path / name)


@pytest.mark.parametrize("setup,expected", [
    ("missing", "does not exist"),
    ("single_class", "single class"),
    ("corrupt", "not a readable image"),
])
def test_bad_input_is_one_line_without_traceback(slice_copy, tmp_path, setup, expected):
    data = slice_copy / "images"
    if setup == "missing":
        data = tmp_path / "nowhere"
    elif setup == "single_class":
        shutil.rmtree(data / "WBC"); shutil.rmtree(data / "Platelets")
    else:
        (data / "WBC" / "x.jpg").write_text("oops")
    out = tmp_path / "run"
    result = biolens("train", data, "--out", out, "--epochs", "1", check=False)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr and expected in result.stderr
    assert len([line for line in result.stderr.splitlines() if line.startswith("error:")]) == 1
    assert not out.exists(), "a failed check must not leave a run folder behind"


@pytest.mark.slow  # a longer end-to-end run: pytest -m slow (keeps the default suite under 15 minutes)
def test_skip_bad_lists_skipped_files(slice_copy, tmp_path):
    (slice_copy / "images" / "WBC" / "x.jpg").write_text("oops")
    out = tmp_path / "run"
    biolens("train", slice_copy / "images", "--out", out, "--epochs", "1", "--skip-bad")
    skipped = list(csv.DictReader(open(out / "skipped.csv")))
    assert [row["file"] for row in skipped] == [str(slice_copy / "images" / "WBC" / "x.jpg")]
    assert "not a readable image" in skipped[0]["reason"]


def test_existing_run_is_never_overwritten(trained_run):
    before = {p.name: p.read_bytes() for p in trained_run.iterdir() if p.is_file()}
    result = biolens("train", ROOT / "examples/blood_cells_slice/images", "--out", trained_run, check=False)
    assert result.returncode == 2 and "already holds a run" in result.stderr
    assert before == {p.name: p.read_bytes() for p in trained_run.iterdir() if p.is_file()}


@pytest.mark.slow  # a longer end-to-end run: pytest -m slow (keeps the default suite under 15 minutes)
def test_kill_9_then_resume_finishes_from_the_last_epoch(slice_manifest, tmp_path):
    out = tmp_path / "run"
    command = [sys.executable, "-m", "biolens", "train", str(slice_manifest), "--group-column", "source_image",
               "--epochs", "6", "--out", str(out), "--patience", "50"]
    process = subprocess.Popen(command, env=ENV, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    state = out / "checkpoints" / "state.json"
    deadline = time.time() + 300
    while time.time() < deadline and not (state.exists() and json.loads(state.read_text())["epoch"] >= 2):
        time.sleep(0.2)
    process.send_signal(signal.SIGKILL)
    process.wait()
    killed_at = json.loads(state.read_text())["epoch"]
    assert 2 <= killed_at < 6
    assert json.loads((out / "run.json").read_text())["status"] == "running"
    json.loads((out / "run.json").read_text()), pd.read_csv(out / "history.csv")  # final names are never half-written
    biolens("train", "--resume", out)
    assert not [p for p in out.rglob("*") if ".tmp" in p.name], "orphaned temporary files from the kill were left"
    history = pd.read_csv(out / "history.csv")
    assert list(history.epoch) == [1, 2, 3, 4, 5, 6]  # resumed, not restarted
    assert json.loads((out / "run.json").read_text())["status"] == "complete"
    assert json.loads((out / "metrics.json").read_text())["n_test"] > 0


@pytest.mark.slow  # a longer end-to-end run: pytest -m slow (keeps the default suite under 15 minutes)
def test_time_budget_stops_training_early(slice_manifest, tmp_path):
    out = tmp_path / "run"
    biolens("train", slice_manifest, "--group-column", "source_image", "--epochs", "50", "--time-budget", "2",
            "--out", out)
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["stopped_by"] == "time budget" and metrics["epochs_run"] < 50
    assert json.loads((out / "run.json").read_text())["status"] == "complete"


def test_predict_names_every_file_whatever_its_name_or_format(trained_run, tmp_path):
    """Odd names (non-UTF-8 bytes, spaces, 240 characters), a 16-bit greyscale PNG, a phone's WebP and HEIC and a
    GIF in one folder: every image is predicted, and the GIF (a format biolens does not read) is listed with its
    reason instead of vanishing."""
    import os

    import numpy as np
    from PIL import Image

    folder = tmp_path / "odd"
    folder.mkdir()
    source = sorted((ROOT / "examples/blood_cells_slice/images/WBC").glob("*.jpg"))[0]
    odd = os.fsencode(folder) + b"/caf\xe9 cell.jpg"  # Latin-1 bytes: not valid UTF-8
    with open(odd, "wb") as handle:
        handle.write(source.read_bytes())
    shutil.copy(source, folder / ("long " + "x" * 230 + ".jpg"))
    Image.fromarray(np.random.default_rng(0).integers(0, 4095, (60, 60), dtype=np.uint16)).save(folder / "camera16.png")
    Image.open(source).save(folder / "phone.webp")
    from biolens.readers import image_decode  # noqa: F401  (registers Pillow's HEIC plugin, here to write one)

    Image.open(source).save(folder / "phone.heic")
    Image.open(source).save(folder / "animated.gif")
    out = tmp_path / "preds.csv"
    biolens("predict", trained_run, folder, "--out", out)
    table = pd.read_csv(out)
    assert len(table) == 6
    failed = table[table["error"].notna()]
    assert failed.file.str.endswith("animated.gif").all() and len(failed) == 1 and "gif" in failed.error.iloc[0]
    assert table.predicted.notna().sum() == 5
    same = table.set_index(table.file.str.rsplit("/", n=1).str[-1]).predicted
    assert same["phone.webp"] == same["phone.heic"]  # the same cell, saved by a phone either way


def test_the_colour_and_hog_baseline_tells_classes_apart_by_colour_and_by_shape():
    """The classical comparator's features carry what such models can see: a colour difference and a shape
    difference (bars across against bars down, same colours) are each learned from the training images alone."""
    from biolens.stats.image_baseline import compare

    rng = np.random.default_rng(0)
    n = 240
    y = np.repeat([0, 1], n // 2)
    order = rng.permutation(n)
    parts = {"train": order[:140], "val": order[140:180], "test": order[180:]}
    noise = rng.integers(0, 60, (n, 48, 48, 3))
    tinted = (noise + np.where(y[:, None, None, None] == 1, [70, 0, 0], [0, 0, 70])).astype(np.uint8)
    result = compare(tinted, y, parts, ["blue", "red"], y[parts["test"]])["classical_baseline"]
    assert result["balanced_accuracy"] > 0.95 and result["features"] == 3 * 18 + 1764
    stripes = noise.copy()
    for k in range(n):
        lines = slice(int(rng.integers(0, 8)), None, 8)
        (stripes[k, lines, :, :] if y[k] else stripes[k, :, lines, :])[...] = 200  # bars across or down
    result = compare(stripes.astype(np.uint8), y, parts, ["down", "across"], 1 - y[parts["test"]])["classical_baseline"]
    assert result["balanced_accuracy"] > 0.95
    assert result["network_minus_this"] < 0 and result["network_minus_this_ci95"][1] < 0  # a network always wrong
