"""Self-supervised pretraining of the image encoder (models/contrastive.py), shared by `pretrain`, `cluster` on
images and `train --pretrain`: fit with per-epoch checkpoints (a killed run resumes at its last finished epoch),
read out features, say whether the features learned anything (linear probe and kNN against labels when there are
some), and hand the encoder's weights to a classifier.
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from biolens import console
from biolens.errors import InputError
from biolens.runs import write_json

MIN_IMAGES = 32          # fewer: a batch of contrasting images is too small to learn from
IMAGE_PASSES = 20_000    # default training length: about this many images seen (as two views), all epochs together
MAX_SIZE = 64            # pretraining side in pixels unless --image-size says otherwise (cost grows with its square)


@dataclass
class Schedule:
    epochs: int
    batch_size: int
    steps: int


def schedule(n_images: int, epochs: int = 0, batch_size: int = 0) -> Schedule:
    """Batch: up to 128 images (NT-Xent needs many negatives; a quarter of the images at most so that an epoch
    is several steps). Epochs: about IMAGE_PASSES image passes in all, between 10 and 200."""
    batch = min(batch_size or int(np.clip(n_images // 4, 16, 128)), n_images)
    steps = max(1, n_images // batch)  # whole batches only: every step contrasts the same number of images
    epochs = epochs or int(np.clip(round(IMAGE_PASSES / (steps * batch)), 10, 200))
    return Schedule(epochs, batch, steps)


def fit_encoder(pixels: np.ndarray, folder: Path, *, epochs: int = 0, batch_size: int = 0, temperature: float = 0.2,
                learning_rate: float = 2e-3, seed: int = 0, time_budget: float = 0.0, label: str = "pretraining"):
    """Train the encoder on uint8 images (N, S, S, C) with SimCLR; checkpoints in `folder`. Returns (encoder,
    summary). Resumes from `folder` when an earlier attempt left a checkpoint there."""
    import keras

    from biolens.engine.callbacks import RichProgress
    from biolens.models.contrastive import NTXent, contrastive_model, image_encoder
    from biolens.models.io import load_checkpoint

    if len(pixels) < MIN_IMAGES:
        raise InputError(f"self-supervised learning needs at least {MIN_IMAGES} images; received {len(pixels)}. "
                         "Add images (unlabelled ones count).")
    plan = schedule(len(pixels), epochs, batch_size)
    folder.mkdir(parents=True, exist_ok=True)
    state_path, last_path = folder / "pretrain_state.json", folder / "pretrain_last.keras"
    state = json.loads(state_path.read_text()) if state_path.exists() and last_path.exists() else {}
    keras.utils.set_random_seed(seed)
    if state:
        model = load_checkpoint(last_path)
        console.say(f"{label}: resuming after epoch {state['epoch']}")
    else:
        model = contrastive_model(image_encoder(pixels.shape[1:]), seed=seed)
        total = plan.steps * plan.epochs
        rate = keras.optimizers.schedules.CosineDecay(learning_rate * 0.05, decay_steps=max(1, total - plan.steps),
                                                      warmup_target=learning_rate, warmup_steps=plan.steps)
        model.compile(optimizer=keras.optimizers.AdamW(rate, weight_decay=1e-4), loss=NTXent(temperature))
    keeper = _Keeper(state, state_path, last_path, time_budget)
    data = _batches(pixels, plan.batch_size, seed)
    if not state.get("done"):
        model.fit(data, epochs=plan.epochs, initial_epoch=int(state.get("epoch", 0)), verbose=0,
                  callbacks=[keeper, RichProgress(plan.epochs, plan.steps, int(state.get("epoch", 0)), metric="loss",
                                                  label="contrastive loss", stage="self-supervised pretraining")])
    encoder = model.get_layer("biolens_image_encoder")
    state = keeper.state
    return encoder, {"method": "SimCLR (NT-Xent)", "temperature": temperature, "epochs_run": int(state.get("epoch", 0)),
                     "max_epochs": plan.epochs, "batch_size": plan.batch_size, "steps_per_epoch": plan.steps,
                     "n_images": int(len(pixels)), "image_size": int(pixels.shape[1]),
                     "final_loss": round(float(state.get("loss", np.nan)), 4),
                     "first_loss": round(float(state.get("first_loss", np.nan)), 4),
                     "chance_loss": round(float(np.log(2 * plan.batch_size - 1)), 4),
                     "seconds": round(float(state.get("seconds", 0.0)), 1),
                     "stopped_by": state.get("stopped_by") or "all epochs done"}


def encoder_in_run(run, pixels: np.ndarray, *, seed: int, epochs: int = 0, batch_size: int = 0,
                   temperature: float = 0.2, learning_rate: float = 2e-3, time_budget: float = 0.0,
                   label: str = "pretraining"):
    """The encoder trained in this run (checkpoints/encoder.keras once finished; resumable within), and its
    summary. Shared by pretrain, cluster (images) and train --pretrain."""
    from biolens.engine.training import save_model
    from biolens.models.io import load_checkpoint

    path, summary_path = run.path / "checkpoints" / "encoder.keras", run.path / "checkpoints" / "encoder.json"
    if path.exists() and summary_path.exists():
        return load_checkpoint(path), json.loads(summary_path.read_text())
    encoder, summary = fit_encoder(pixels, run.path / "checkpoints", epochs=epochs, batch_size=batch_size,
                                   temperature=temperature, learning_rate=learning_rate, seed=seed,
                                   time_budget=time_budget, label=label)
    save_model(encoder, path)
    write_json(summary_path, summary)
    return encoder, summary


def _batches(pixels: np.ndarray, batch_size: int, seed: int):
    """Shuffled whole batches of float pixels (0-255), no labels (the loss ignores them)."""
    import tensorflow as tf

    n = len(pixels)
    data = tf.data.Dataset.range(n).shuffle(n, seed=seed, reshuffle_each_iteration=True).batch(batch_size,
                                                                                             drop_remainder=True)

    def gather(index):
        x = tf.numpy_function(lambda i: pixels[np.sort(i)].astype(np.float32), [index], tf.float32)
        x.set_shape((batch_size, *pixels.shape[1:]))
        return x, tf.zeros((batch_size,))

    return data.map(gather, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)


def _callback_base():
    import keras

    return keras.callbacks.Callback


class _Keeper(_callback_base()):
    """Per epoch, atomically: the whole training model with its optimiser, and the state (epoch, loss, seconds
    summed across resumes); stops at the time budget."""

    def __init__(self, state: dict, state_path: Path, last_path: Path, time_budget: float):
        super().__init__()
        self.state, self.state_path, self.last_path, self.time_budget = dict(state), state_path, last_path, time_budget
        self.started, self.before = time.perf_counter(), float(self.state.get("seconds", 0.0))
        self.first = int(self.state.get("epoch", 0))

    def on_epoch_end(self, epoch, logs=None):
        from biolens.engine.training import save_model

        loss = float((logs or {}).get("loss", np.nan))
        elapsed = self.before + time.perf_counter() - self.started
        self.state.setdefault("first_loss", loss)
        self.state.update(epoch=epoch + 1, loss=loss, seconds=elapsed)
        per_epoch = (time.perf_counter() - self.started) / max(1, epoch + 1 - self.first)
        if self.time_budget and elapsed + per_epoch > self.time_budget:
            self.state["stopped_by"] = f"time budget ({self.time_budget:.0f} s)"
            self.model.stop_training = True
        if self.model.stop_training or epoch + 1 >= self.params.get("epochs", epoch + 1):
            self.state["done"] = True
        save_model(self.model, self.last_path)
        write_json(self.state_path, self.state)


def features(encoder, pixels: np.ndarray, batch: int = 256) -> np.ndarray:
    """(N, D) float32 features of uint8 images."""
    parts = [np.asarray(encoder(np.asarray(pixels[s:s + batch], np.float32), training=False))
             for s in range(0, len(pixels), batch)]
    return np.concatenate(parts).astype(np.float32)


def probe(embeddings: dict[str, np.ndarray], labels: np.ndarray, seed: int = 0) -> dict:
    """Does a representation know the labels? Balanced accuracy of a linear probe (logistic regression) and of
    a 10-nearest-neighbour vote, each by 5-fold stratified cross-validation on standardised features, for each
    named representation (the pretrained one beside raw pixels)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_score
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    _, counts = np.unique(labels, return_counts=True)
    folds = int(min(5, counts.min()))
    if folds < 2:
        return {"skipped": "every class needs at least 2 labelled images for a cross-validated probe"}
    splitter = StratifiedKFold(folds, shuffle=True, random_state=seed)
    result = {"folds": folds, "n_labelled": int(len(labels)), "chance": round(1 / len(counts), 4)}
    for name, x in embeddings.items():
        linear = make_pipeline(StandardScaler(), LogisticRegression(max_iter=3000, class_weight="balanced", C=0.5))
        knn = make_pipeline(StandardScaler(), KNeighborsClassifier(min(10, len(labels) // folds), metric="cosine"))
        result[name] = {"linear_probe": round(float(cross_val_score(linear, x, labels, cv=splitter,
                                                                       scoring="balanced_accuracy").mean()), 4),
                        "knn": round(float(cross_val_score(knn, x, labels, cv=splitter,
                                                           scoring="balanced_accuracy").mean()), 4)}
    return result


def pixel_reference(pixels: np.ndarray, seed: int = 0, components: int = 50) -> np.ndarray:
    """The classical peer: PCA of raw pixels scaled to 0-1."""
    from sklearn.decomposition import PCA

    flat = np.asarray(pixels, np.float32).reshape(len(pixels), -1) / 255.0
    return PCA(max(1, min(components, *flat.shape) - 1), random_state=seed).fit_transform(flat).astype(np.float32)


def representation_methods(info: dict, summary: dict, probe_result: dict | None = None) -> str:
    """A Methods paragraph for a representation learned here (pretrain runs, and the pretraining inside cluster
    and train runs)."""
    versions = info.get("versions", {})
    text = (
        f"An image representation was learned without labels with biolens {versions.get('biolens', '')} (TensorFlow "
        f"{versions.get('tensorflow', '')}, Keras {versions.get('keras', '')}) from {summary['n_images']} images at "
        f"{summary['image_size']}x{summary['image_size']} pixels, by SimCLR (Chen et al. 2020): two random views of each "
        f"image (random zoom-in crops up to 45%, any rotation, flips, small shifts, brightness/contrast/saturation/hue "
        f"jitter, 20% greyscale, Gaussian blur) passed through a compact convolutional encoder (four blocks of two 3x3 "
        f"convolutions with batch normalisation, global average pooling) and a two-layer projection head, trained with "
        f"the NT-Xent loss (temperature {summary['temperature']}) on batches of {summary['batch_size']} images, AdamW "
        f"with warm-up and cosine decay, for {summary['epochs_run']} epochs ({summary['seconds']:.0f} s; "
        f"{summary['stopped_by']}). Features are the encoder's pooled output (the projection head is discarded).")
    if probe_result and "pretrained" in probe_result:
        text += (f" The representation was scored against the class folder names, which were never used in training: "
                 f"balanced accuracy of a logistic-regression probe and of a 10-nearest-neighbour vote (cosine), each by "
                 f"{probe_result['folds']}-fold stratified cross-validation on standardised features, beside the same "
                 f"on 50 principal components of the raw pixels.")
    return text + f" Random seed {info.get('seed')}."


# -- handing the encoder on ------------------------------------------------------------------------------------------
def check_init_from(run_path: Path | str) -> tuple[object, Path]:
    """The run named by --init-from, refused in one line unless it is a finished biolens image run with an
    encoder to hand on (read from run.json only: cheap enough for the config gate). Returns (run, model file)."""
    from biolens.engine import registry
    from biolens.runs import Run

    run = Run(Path(run_path))
    info = run.info if (run.path / "run.json").is_file() else {}
    if not info:
        raise InputError(f"--init-from {run_path}: not a biolens run folder (no run.json). Give a `biolens pretrain` "
                         "run or an earlier image classification run.")
    task = info.get("task")
    if task not in ("pretrain", "classify", "cluster"):
        raise InputError(f"--init-from {run_path}: a {registry.get(task).title if task in registry.TASKS else task} run "
                         "has no image encoder to start from. Give a `biolens pretrain` run or an image classification "
                         "run made with the compact network.")
    if task == "classify" and (info.get("config") or {}).get("backbone", "compact") != "compact":
        raise InputError(f"--init-from {run_path}: that run used the {info['config']['backbone']} backbone; only the "
                         "compact network's weights can start a compact classifier. Use --backbone with --weights instead.")
    path = run.path / ("encoder.keras" if task == "cluster" else "model.keras")
    if info.get("status") != "complete" or not path.exists():
        raise InputError(f"--init-from {run_path}: the run is not complete (status {info.get('status')!r}) or has no "
                         f"{path.name} (a cluster run of a table has none); give a finished pretrain or image run.")
    return run, path


def transferable_model(run_path: Path):
    """The saved model of an earlier biolens image run whose convolutional layers a classifier can start from: a
    pretrain run's encoder or a compact classifier (checked by `check_init_from`), and that run's record."""
    from biolens.models.io import load_trusted

    run, path = check_init_from(run_path)
    info = run.info
    return load_trusted(path, info.get("model_sha256") if path.name == "model.keras" else None), info


def copy_encoder_weights(source, target) -> list[str]:
    """Copy every block{b}_conv{k} / block{b}_bn{k} layer of `source` (an encoder or classifier; nested models
    searched) into the same-named layer of `target` whose weight shapes agree; returns the layers copied."""
    def layers_of(model):
        for layer in model.layers:
            if hasattr(layer, "layers"):
                yield from layers_of(layer)
            else:
                yield layer

    wanted = {layer.name: layer for layer in layers_of(target) if layer.name.startswith("block")}
    copied = []
    for layer in layers_of(source):
        other = wanted.get(layer.name)
        if other is None or not layer.weights:
            continue
        weights = layer.get_weights()
        if [w.shape for w in weights] == [w.shape for w in other.get_weights()]:
            other.set_weights(weights)
            copied.append(layer.name)
    return copied


def fit_head_on_frozen_features(model, pixels: np.ndarray, y: np.ndarray, rows: np.ndarray, *, seed: int = 0,
                                max_rows: int = 5000) -> str:
    """The linear-probe step of LP-FT (Kumar et al. 2022): before fine-tuning a classifier whose body came from a
    pretrained encoder, its `logits` layer is set to a logistic regression fitted on the frozen features of the
    training images. A random head would send large, random gradients into the pretrained layers in the first
    epochs and wash out what they learned; measured on blood_cells with 5% of the labels (docs/self_supervised.md).
    Returns a note for the report."""
    import keras
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    rows = np.asarray(rows)
    if len(rows) > max_rows:
        rows = np.sort(np.random.default_rng(seed).choice(rows, max_rows, replace=False))
    head = model.get_layer("logits")
    body = keras.Model(model.inputs, head.input)
    feats = features(body, pixels[rows]) if len(rows) else np.zeros((0, 1))
    labels = y[rows]
    if len(np.unique(labels)) < 2:
        return ""
    scaler = StandardScaler().fit(feats)
    probe = LogisticRegression(C=1.0, class_weight="balanced", max_iter=3000).fit(scaler.transform(feats), labels)
    coef, intercept = probe.coef_, probe.intercept_
    if len(probe.classes_) == 2:  # one logit difference -> two logits
        coef, intercept = np.vstack([-coef / 2, coef / 2]), np.array([-intercept[0] / 2, intercept[0] / 2])
    kernel, bias = head.get_weights()
    kernel[:], bias[:] = 0.0, intercept.min() - 10.0  # classes absent from the training rows start unlikely
    scale = np.where(scaler.scale_ > 0, scaler.scale_, 1.0)
    for row, c in enumerate(probe.classes_):
        kernel[:, c] = coef[row] / scale
        bias[c] = intercept[row] - float((coef[row] * scaler.mean_ / scale).sum())
    head.set_weights([kernel, bias])
    return f"head first fitted on the frozen pretrained features of {len(rows)} training images (LP-FT)"


def as_encoder(model, channels: int, source: str):
    """A features model for images of any size built from `model`'s convolutional layers (a pretrain encoder or
    a compact classifier): the weights are copied into a fresh encoder whose input has free height and width."""
    from biolens.models.contrastive import image_encoder

    encoder = image_encoder((None, None, channels))
    wanted = [layer.name for layer in encoder.layers if layer.weights and layer.name.startswith("block")]
    copied = copy_encoder_weights(model, encoder)
    if len(copied) < len(wanted):
        expected = model.input_shape[-1] if hasattr(model, "input_shape") else "?"
        raise InputError(f"--init-from {source}: its network does not fit these images ({len(copied)} of {len(wanted)} "
                         f"layers could take its weights; it was trained on {expected}-channel images, these have "
                         f"{channels}). Use a run made from images like these.")
    return encoder
