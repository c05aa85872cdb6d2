"""Self-supervised image representations: the loss, weight hand-over, the auto decision, and pretrain ->
train --init-from / cluster --init-from on the real blood-cell slice."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest

from conftest import SLICE, biolens, one_line_error


def test_nt_xent_matches_its_definition_and_rewards_matching_views():
    from biolens.models.contrastive import NTXent

    rng = np.random.default_rng(0)
    n, d, t = 32, 16, 0.2
    z1, z2 = rng.normal(size=(n, d)).astype("float32"), rng.normal(size=(n, d)).astype("float32")

    def reference(a, b):  # SimCLR's loss written out: each of the 2n views against the 2n - 1 others
        z = np.concatenate([a, b]) / np.linalg.norm(np.concatenate([a, b]), axis=1, keepdims=True)
        sim = z @ z.T / t
        np.fill_diagonal(sim, -np.inf)
        partner = np.concatenate([np.arange(n, 2 * n), np.arange(n)])
        log_softmax = sim - np.log(np.exp(sim).sum(axis=1, keepdims=True))
        return float(-log_softmax[np.arange(2 * n), partner].mean())

    loss = NTXent(t)
    unrelated = float(loss(np.zeros(n), np.concatenate([z1, z2], axis=1)))
    same = float(loss(np.zeros(n), np.concatenate([z1, z1 + 0.05 * z2], axis=1)))
    assert unrelated == pytest.approx(reference(z1, z2), rel=1e-4)
    assert same == pytest.approx(reference(z1, z1 + 0.05 * z2), rel=1e-4)
    assert unrelated > np.log(2 * n - 1) - 0.5 and same < unrelated - 3  # unrelated views: no better than chance


def test_encoder_weights_start_a_compact_classifier_of_any_image_size():
    from biolens.engine.pretraining import as_encoder, copy_encoder_weights
    from biolens.models.contrastive import image_encoder
    from biolens.models.image import compact_cnn

    encoder = image_encoder((32, 32, 3))
    for layer in encoder.layers:  # distinctive weights, so that a copy is recognisable
        if layer.weights:
            layer.set_weights([np.full(w.shape, 0.01 * (k + 1), "float32") for k, w in enumerate(layer.get_weights())])
    classifier = compact_cnn((64, 64, 3), 4)
    copied = copy_encoder_weights(encoder, classifier)
    assert len(copied) == 16  # 8 convolutions and their 8 batch norms
    np.testing.assert_array_equal(classifier.get_layer("block3_conv1").get_weights()[0],
                                  encoder.get_layer("block3_conv1").get_weights()[0])
    features = as_encoder(classifier, 3, "test")(np.zeros((2, 40, 48, 3), "float32"))
    assert features.shape == (2, 128)
    with pytest.raises(Exception, match="1-channel images"):
        as_encoder(compact_cnn((32, 32, 1), 2), 3, "grey-run")


def test_a_pretrained_classifier_starts_with_a_head_fitted_on_its_frozen_features():
    """LP-FT's first step: before any training step the classifier already separates what its features separate."""
    from biolens.engine.pretraining import copy_encoder_weights, fit_head_on_frozen_features
    from biolens.engine.training import predict_logits
    from biolens.models.contrastive import image_encoder
    from biolens.models.image import compact_cnn

    rng = np.random.default_rng(0)
    n = 120
    y = np.repeat([0, 1, 2], n // 3)
    pixels = rng.integers(0, 60, (n, 32, 32, 3)).astype(np.uint8)
    pixels[y == 1, :, :, 0] += 150                     # reddish
    pixels[y == 2, 8:24, 8:24, :] += 180               # a bright square
    classifier = compact_cnn((32, 32, 3), 3)
    assert copy_encoder_weights(image_encoder((32, 32, 3)), classifier)   # a random encoder is still a feature map
    before = predict_logits(classifier, pixels).argmax(1)
    train = np.arange(0, n, 2)
    note = fit_head_on_frozen_features(classifier, pixels, y, train)
    after = predict_logits(classifier, pixels).argmax(1)
    held_out = np.arange(1, n, 2)
    assert "60 training images" in note
    assert np.mean(after[held_out] == y[held_out]) > 0.9 > np.mean(before[held_out] == y[held_out])


def test_pretrain_auto_only_suggests_it_and_on_off_decide():
    from biolens.config import ClassifyConfig
    from biolens.tasks.classify import pretrain_plan

    y = np.array([0] * 300 + [1] * 40)
    parts = {"train": np.arange(0, 340, 2), "val": np.arange(1, 340, 4), "test": np.arange(3, 340, 4)}
    auto = ClassifyConfig(data="x")
    wanted, why = pretrain_plan(auto, y, parts, n_unlabelled=0)
    assert not wanted and "smallest class has 30" in why and "--pretrain on may help" in why  # measured to add nothing
    small = np.array([0, 1] * 50)
    small_parts = {"train": np.arange(60), "val": np.arange(60, 80), "test": np.arange(80, 100)}
    assert "only 80 images" in pretrain_plan(auto, small, small_parts, n_unlabelled=0)[1]
    big = np.array([0] * 400 + [1] * 400)
    assert "at least 100" in pretrain_plan(auto, big, {"train": np.arange(700), "val": np.arange(700, 800),
                                                       "test": np.arange(0)}, 0)[1]
    assert not pretrain_plan(ClassifyConfig(data="x", pretrain="off"), y, parts, 0)[0]
    assert pretrain_plan(ClassifyConfig(data="x", pretrain="on"), big, {"train": np.arange(50), "val": np.arange(50, 60),
                                                                     "test": np.arange(0)}, 0)[0]


def test_pretrain_then_train_from_its_encoder(pretrain_run, tmp_path):
    """The real command on the real slice (216 crops of 3 cell types; folder labels used only to score)."""
    pre = pretrain_run
    metrics = json.loads((pre / "metrics.json").read_text())
    trained = metrics["pretraining"]
    assert trained["epochs_run"] == 8 and trained["n_images"] == 216
    assert trained["final_loss"] < trained["first_loss"]  # it learned to tell the views of an image from the others
    probe = metrics["probe"]
    assert probe["n_labelled"] == 216 and {"pretrained", "pixels"} <= set(probe)
    assert probe["pretrained"]["linear_probe"] > probe["chance"] + 0.2
    embedding = pd.read_parquet(pre / "embedding.parquet")
    assert len(embedding) == 216 and embedding.shape[1] == 1 + 128
    report = (pre / "report.html").read_text()
    assert "No pretrained weights were downloaded" in report and "Linear probe" in report
    assert (pre / "figures" / "neighbours.png").exists()

    run = tmp_path / "cells"
    biolens("train", SLICE / "manifest.csv", "--group-column", "source_image", "--init-from", pre, "--epochs", "2",
            "--image-size", "32", "--no-learning-curve", "--out", run)
    info = json.loads((run / "run.json").read_text())
    assert info["pretraining"]["source"] == "init_from" and "16 layers copied" in info["weights"]
    assert "the encoder of the earlier biolens run" in (run / "report.html").read_text()


def test_pretrain_and_init_from_refuse_what_cannot_work(tmp_path, detect_run):
    from biolens.config import ClassifyConfig, PretrainConfig
    from biolens.errors import InputError

    few = tmp_path / "few"
    few.mkdir()
    for path in sorted((SLICE / "images" / "WBC").glob("*.jpg"))[:10]:
        shutil.copy(path, few / path.name)
    message = one_line_error(biolens("pretrain", few, "--out", tmp_path / "never", check=False))
    assert "only 10 images" in message and "at least 32" in message
    with pytest.raises(InputError, match="no run.json"):
        ClassifyConfig(data=str(SLICE / "images"), init_from=str(tmp_path)).validate()
    with pytest.raises(InputError, match="objects in images run has no image encoder"):
        ClassifyConfig(data=str(SLICE / "images"), init_from=str(detect_run)).validate()
    message = one_line_error(biolens("cluster", SLICE / "images", "--init-from", detect_run, "--out", tmp_path / "n3",
                                     check=False))  # the command gives the same gate's message in one line
    assert "objects in images run has no image encoder" in message
    with pytest.raises(InputError, match="--batch-size"):  # the same gate the command uses, without a process
        PretrainConfig(images=[str(few)], batch_size=4).validate()


@pytest.mark.slow  # several real runs: pytest -m slow
def test_train_with_pretrain_on_learns_from_unlabelled_images_too(tmp_path):
    labelled = tmp_path / "labelled"
    unlabelled = tmp_path / "unlabelled"
    for label in ("RBC", "WBC", "Platelets"):
        files = sorted((SLICE / "images" / label).glob("*.jpg"))
        (labelled / label).mkdir(parents=True)
        unlabelled.mkdir(exist_ok=True)
        for k, path in enumerate(files):
            shutil.copy(path, (labelled / label if k < 20 else unlabelled) / path.name)
    run = tmp_path / "run"
    biolens("train", labelled, "--pretrain", "on", "--unlabelled", unlabelled, "--image-size", "32", "--epochs", "3",
            "--no-learning-curve", "--out", run)
    info = json.loads((run / "run.json").read_text())
    assert info["pretraining"]["source"] == "pretrained here"
    assert info["pretraining"]["n_unlabelled"] == 216 - 60 and info["pretraining"]["n_images"] > 156
    assert "self-supervised encoder pretrained in this run" in info["weights"]
