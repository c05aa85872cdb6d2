"""Is my data enough? The learning-curve fit and its advice (synthetic curves with known parameters), the curve in
a real run, and the check for likely label errors."""
import json
from pathlib import Path

import numpy as np
import pytest

from biolens.stats.learning_curve import advice, fit_curve, learning_curve


def measured(plateau, scale, rate, sizes=(100, 200, 400, 800), seeds=3, noise=0.005, seed=0):
    rng = np.random.default_rng(seed)
    n = np.repeat(sizes, seeds).astype(float)
    return n, plateau - scale * n ** -rate + rng.normal(0, noise, len(n))


@pytest.mark.parametrize("plateau,scale,rate", [(0.95, 3.0, 0.6), (0.85, 1.2, 0.4), (0.99, 20.0, 1.0)])
def test_fit_recovers_the_score_at_twice_and_four_times_the_data(plateau, scale, rate):
    sizes, scores = measured(plateau, scale, rate)
    curve = learning_curve(sizes, scores)
    for factor in (2, 4):
        truth = plateau - scale * (800 * factor) ** -rate
        estimate, low, high = curve["predicted"][f"{factor}x"]
        assert abs(estimate - truth) < 0.02, (factor, estimate, truth)
        assert low <= truth <= high, (factor, low, truth, high)
        assert high - low < 0.1


def test_extrapolating_from_half_the_data_predicts_the_full_score():
    """What benchmarks/learning_curve.py checks on real images: fit up to 50%, predict 100%."""
    sizes, scores = measured(0.92, 4.0, 0.5, sizes=(125, 250, 500))
    fit = fit_curve(sizes, scores)
    assert abs(fit.predict(1000) - (0.92 - 4.0 * 1000 ** -0.5)) < 0.02


@pytest.mark.slow  # a longer end-to-end run: pytest -m slow (keeps the default suite under 15 minutes)
def test_advice_says_plateau_when_the_curve_is_flat_and_names_the_class_to_add_when_it_grows():
    flat_sizes, flat_scores = measured(0.93, 0.0, 1.0, noise=0.003)
    flat = learning_curve(flat_sizes, flat_scores)
    text = advice(flat, {}, {"a": 400, "b": 400})
    assert "unlikely to help" in text and "0.93" in text

    sizes, overall = measured(0.95, 3.0, 0.6)
    _, rare = measured(0.9, 8.0, 0.6, seed=1)
    _, common = measured(0.99, 0.5, 0.6, seed=2)
    curves = {"monocyte": learning_curve(sizes, rare), "lymphocyte": learning_curve(sizes, common)}
    text = advice(learning_curve(sizes, overall), curves, {"monocyte": 60, "lymphocyte": 740})
    assert "would likely rise" in text and "'monocyte'" in text and "about 60 more monocyte" in text
    assert "unlikely" not in text

    scattered = learning_curve([100, 100, 200, 200, 400, 400, 800], [0.5, 0.9, 0.55, 0.95, 0.6, 0.9, 0.99])
    assert "scatter too much" in advice(scattered, {}, {"a": 400, "b": 400})


def test_nested_subsets_are_stratified_and_nested():
    from biolens.engine.supervised import nested_subsets

    y = np.array([0] * 80 + [1] * 16 + [2] * 240)
    train = np.arange(len(y))[::2]
    small, middle, large = nested_subsets(y, train, (0.125, 0.25, 0.5), seed=0)
    assert set(small) <= set(middle) <= set(large) <= set(train)
    for c in range(3):
        in_train = (y[train] == c).sum()
        assert (y[large] == c).sum() == round(0.5 * in_train) and (y[small] == c).sum() >= 1


@pytest.mark.slow  # a longer end-to-end run: pytest -m slow (keeps the default suite under 15 minutes)
def test_the_learning_curve_added_to_a_finished_run_writes_the_curve_advice_and_figure(trained_run, tmp_path):
    import html
    import json
    import shutil

    from conftest import biolens

    skipped = json.loads((trained_run / "metrics.json").read_text())
    assert "too few" in skipped["learning_curve_skipped"]  # auto mode: 1/8 of the WBC class is under 8 images
    assert "biolens learning-curve" in (trained_run / "report.html").read_text()  # offered as a second step
    out = tmp_path / "curve"
    shutil.copytree(trained_run, out)
    biolens("learning-curve", out)
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["balanced_accuracy"] == skipped["balanced_accuracy"] and "learning_curve_skipped" not in metrics
    curve = metrics["learning_curve"]
    assert curve["fractions"] == [0.125, 0.25, 0.5] * 2 + [1.0]
    assert curve["sizes"][-1] == metrics["n_train"] and curve["scores"][-1] == round(metrics["balanced_accuracy"], 4)
    for factor in ("2x", "4x"):
        estimate, low, high = curve["predicted"][factor]
        assert 0 <= low <= estimate <= high <= 1
    assert set(curve["per_class"]) == set(metrics["class_names"]) and curve["advice"]
    # the sub-models' weights are not kept, their results are (so an interrupted curve resumes)
    results = sorted((out / "checkpoints" / "learning_curve").glob("*/probabilities.npy"))
    assert len(results) == 6 and not list((out / "checkpoints" / "learning_curve").glob("*/checkpoints"))
    report = (out / "report.html").read_text()
    assert "Is the data enough?" in report and html.escape(curve["advice"]) in report
    assert (out / "figures" / "learning_curve.png").exists()


@pytest.mark.slow  # a longer end-to-end run: pytest -m slow (keeps the default suite under 15 minutes)
def test_confidently_contradicted_labels_are_listed_for_review(slice_copy, tmp_path):
    import pandas as pd

    from conftest import biolens

    manifest = pd.read_csv(slice_copy / "manifest.csv")
    rbc = manifest.index[manifest.label == "RBC"]
    flipped = rbc[::4]  # a quarter of the red cells, across smear photos, now claim to be platelets
    manifest.loc[flipped, "label"] = "Platelets"
    manifest.to_csv(slice_copy / "manifest.csv", index=False)
    out = tmp_path / "flipped"
    biolens("train", slice_copy / "manifest.csv", "--group-column", "source_image", "--epochs", "10", "--out", out,
            "--seed", "0")
    listed = pd.read_csv(out / "possible_label_errors.csv")
    splits = pd.read_csv(out / "splits.csv")
    wrong = {str((slice_copy / p).resolve()) for p in manifest.loc[flipped, "path"]}
    held_out_wrong = {f for f in splits[splits.split != "train"].file if str(Path(f).resolve()) in wrong}
    assert held_out_wrong, "the split put no flipped image outside training"
    found = {str(Path(f).resolve()) for f in listed.file}
    assert len(found & held_out_wrong) >= len(held_out_wrong) / 2, (len(found & held_out_wrong), len(held_out_wrong))
    assert set(listed.split) <= {"validation", "test"} and (listed.probability_of_label < 0.5).all()
    assert (listed[listed.file.map(lambda f: str(Path(f).resolve()) in wrong)].predicted == "RBC").all()


def test_review_selection_prefers_uncertain_images_and_spreads_them():
    from biolens.tasks.review import select_for_review

    rng = np.random.default_rng(0)
    # 10 near-copies of one confusing image, 10 distinct fairly uncertain images, 30 confident ones
    copies = np.tile([0.5, 0.5], (10, 1))
    distinct = np.column_stack([np.linspace(0.62, 0.7, 10), 1 - np.linspace(0.62, 0.7, 10)])
    confident = np.tile([0.99, 0.01], (30, 1))
    probs = np.vstack([copies, distinct, confident])
    features = np.vstack([np.ones((10, 8)) + rng.normal(0, 1e-3, (10, 8)), rng.normal(0, 1, (40, 8))])
    picked = select_for_review(probs, features, 5)
    assert picked[0] < 10                                   # the most uncertain image comes first
    assert sum(i < 10 for i in picked) == 1                 # but one of the near-copies is enough
    assert all(i < 20 for i in picked)                      # and confident images are not worth a label


@pytest.mark.slow  # a longer end-to-end run: pytest -m slow (keeps the default suite under 15 minutes)
def test_review_then_add_labels_keeps_the_test_set(trained_run, slice_manifest, tmp_path):
    import pandas as pd
    from PIL import Image

    from conftest import ROOT, biolens

    unlabelled = tmp_path / "unlabelled"
    unlabelled.mkdir()
    sources = sorted((ROOT / "examples" / "blood_cells_slice" / "images").rglob("*.jpg"))[::9][:20]
    for k, source in enumerate(sources):  # new images: the slice's cells, rotated (a different file, same kind)
        Image.open(source).rotate(90, expand=True).save(unlabelled / f"new_{k}.png")
    biolens("review", trained_run, unlabelled, "--n", "6", "--out", tmp_path / "review")
    table = pd.read_csv(tmp_path / "review" / "review.csv", keep_default_na=False)
    assert list(table.columns) == ["file", "suggested_label", "confidence", "uncertainty", "label"] and len(table) == 6
    assert table.file.is_unique and (table.label == "").all()
    sheet = (tmp_path / "review" / "review.html").read_text()
    assert sheet.count("<figure>") == 6 and "data:image/png;base64" in sheet

    table.loc[:3, "label"] = table.loc[:3, "suggested_label"]  # the biologist labels four, leaves two
    table.to_csv(tmp_path / "review" / "review.csv", index=False)
    out = tmp_path / "retrained"
    biolens("train", slice_manifest, "--group-column", "source_image", "--epochs", "1", "--seed", "1",
            "--add-labels", tmp_path / "review" / "review.csv", "--out", out)
    before = pd.read_csv(trained_run / "splits.csv")
    after = pd.read_csv(out / "splits.csv")
    assert set(after[after.split == "test"].file) == set(before[before.split == "test"].file)
    added = after[after.file.str.contains("new_")]
    assert len(added) == 4 and (added.split == "train").all()
    assert json.loads((out / "metrics.json").read_text())["n_train"] == (before.split == "train").sum() + 4

    table.loc[0, "label"] = "Neutrophil"
    table.to_csv(tmp_path / "bad.csv", index=False)
    result = biolens("train", slice_manifest, "--add-labels", tmp_path / "bad.csv", "--out", tmp_path / "x", check=False)
    assert result.returncode == 2 and "line 2" in result.stderr and "'Neutrophil'" in result.stderr


@pytest.mark.slow  # a longer end-to-end run: pytest -m slow (keeps the default suite under 15 minutes)
def test_small_data_is_said_and_estimated_by_cross_validation(slice_copy, tmp_path):
    import pandas as pd

    from conftest import biolens

    manifest = pd.read_csv(slice_copy / "manifest.csv")
    small = manifest.groupby("label").head(20)  # 20 images per class
    small.to_csv(slice_copy / "small.csv", index=False)
    out = tmp_path / "small"
    biolens("train", slice_copy / "small.csv", "--group-column", "source_image", "--epochs", "3", "--out", out)
    metrics = json.loads((out / "metrics.json").read_text())
    estimate = metrics["small_data"]["cross_validation"]
    assert metrics["small_data"]["smallest_class"] == 20 and estimate["folds"] == 5
    low, high = estimate["balanced_accuracy_ci95"]
    assert low <= estimate["balanced_accuracy"] <= high
    # the chance check reads the quoted (cross-validated) figure, not the few test images
    assert metrics["at_chance"] == (low <= 1 / len(metrics["class_names"]) + 0.02)
    assert not any("test images" in w for w in metrics["warnings"])
    assert len(list((out / "checkpoints" / "cross_validation").glob("fold*/probabilities.npy"))) == 5
    assert "Small data." in (out / "report.html").read_text()
