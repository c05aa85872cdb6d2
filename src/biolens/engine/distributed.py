"""Training across several machines: tf.distribute.MultiWorkerMirroredStrategy, configured by TF_CONFIG.

Keras 3's `fit` cannot consume this strategy's per-replica batches (keras-team/keras#20585), so under it the
training epochs run here: the same model, optimizer, loss, class weights and callbacks as `fit`, one train step
through `strategy.run` over `strategy.experimental_distribute_dataset` (gradients all-reduced by TensorFlow's
collectives; nothing home-made). Worker 0 (the chief) writes the run folder; the other workers train in a
scratch folder and stop after training. A restarted job (`--resume`) loads the chief's last checkpoint on every
worker, so the run folder must be on storage all workers see (as on a cluster's shared file system).
"""
from __future__ import annotations

import json
import os
import re
import tempfile
from pathlib import Path

from biolens.errors import InputError

CHIEF_RUN_ENV = "BIOLENS_CHIEF_RUN"  # the chief's run folder, for the other workers to resume from
ACROSS_MACHINES_NOTE = "not run: training ran across several machines; rerun on one machine to get it"  # extra fits


def configure(workers: str, index: int, chief_run: Path) -> None:
    """`--workers host:port,... --worker-index i` -> TF_CONFIG (what a cluster scheduler would otherwise set)."""
    hosts = [w.strip() for w in workers.split(",") if w.strip()]
    bad = [h for h in hosts if not re.fullmatch(r"[A-Za-z0-9_.\-\[\]:]+:\d{1,5}", h)]
    if bad:
        raise InputError(f"--workers: {bad[0]!r} is not host:port; give every worker as host:port, comma-separated.")
    if len(hosts) < 2:
        raise InputError("--workers needs at least two host:port entries (one per machine); on one machine, leave it out.")
    if not 0 <= index < len(hosts):
        raise InputError(f"--worker-index {index} is outside 0..{len(hosts) - 1} for {len(hosts)} workers.")
    os.environ["TF_CONFIG"] = json.dumps({"cluster": {"worker": hosts}, "task": {"type": "worker", "index": index}})
    os.environ[CHIEF_RUN_ENV] = str(Path(chief_run).resolve())


def cluster() -> dict | None:
    """The parsed TF_CONFIG, or None when this is a single-machine run."""
    text = os.environ.get("TF_CONFIG")
    if not text:
        return None
    try:
        config = json.loads(text)
        workers = config["cluster"]["worker"]
        index = int(config["task"]["index"])
    except (ValueError, KeyError, TypeError):
        raise InputError("TF_CONFIG is not valid: it needs {\"cluster\": {\"worker\": [\"host:port\", ...]}, "
                         "\"task\": {\"type\": \"worker\", \"index\": i}} (see docs/scaling.md).") from None
    return {"workers": workers, "index": index}


def is_chief() -> bool:
    found = cluster()
    return found is None or found["index"] == 0


def output_folder(out: Path) -> Path:
    """Where this process writes: the run folder for the chief, a fresh scratch folder for the other workers."""
    found = cluster()
    if found is None or found["index"] == 0:
        return Path(out)
    scratch = Path(tempfile.mkdtemp(prefix=f"biolens-worker{found['index']}-"))
    return scratch / Path(out).name


def checkpoint_folder(run_path: Path) -> Path:
    """Where a resumed run's last checkpoint is read: the chief's run folder on every worker."""
    chief = os.environ.get(CHIEF_RUN_ENV)
    return Path(chief) if chief and not is_chief() else Path(run_path)


def fit(model, dataset, *, strategy, steps: int, epochs: int, initial_epoch: int, class_weight: dict | None,
        callbacks: list, global_batch: int) -> None:
    """`model.fit` for MultiWorkerMirroredStrategy: epochs of `steps` full global batches, the callbacks called as
    fit calls them, and early stopping agreed by all workers (any worker's stop stops all, so none waits forever)."""
    import keras
    import tensorflow as tf

    n_classes = int(model.output_shape[-1])
    per_class = [float((class_weight or {}).get(c, 1.0)) for c in range(n_classes)]
    loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True, reduction=None)
    optimizer = model.optimizer
    with strategy.scope():
        weights = tf.constant(per_class, tf.float32)
        if not optimizer.built:
            optimizer.build(model.trainable_variables)
    batches = strategy.experimental_distribute_dataset(dataset.take(steps))  # full batches only: every worker steps alike

    @tf.function
    def train_step(batch):
        def replica_step(x, y):
            with tf.GradientTape() as tape:
                logits = tf.cast(model(x, training=True), tf.float32)
                per_example = loss_fn(y, logits) * tf.gather(weights, tf.cast(y, tf.int32))
                loss = tf.nn.compute_average_loss(per_example, global_batch_size=global_batch)
                scaled = optimizer.scale_loss(loss) if hasattr(optimizer, "scale_loss") else loss
            gradients = tape.gradient(scaled, model.trainable_variables)
            optimizer.apply_gradients(zip(gradients, model.trainable_variables))
            return loss

        return strategy.reduce(tf.distribute.ReduceOp.SUM, strategy.run(replica_step, args=batch), axis=None)

    @tf.function
    def any_worker(flag):
        votes = strategy.run(tf.identity, args=(flag,))  # one vote per replica, summed over every worker
        return strategy.reduce(tf.distribute.ReduceOp.SUM, votes, axis=None)

    hooks = keras.callbacks.CallbackList(callbacks, model=model, epochs=epochs, steps=steps)
    model.stop_training = False
    hooks.on_train_begin()
    for epoch in range(initial_epoch, epochs):
        hooks.on_epoch_begin(epoch)
        total = 0.0
        for step, batch in enumerate(batches):
            loss = float(train_step(batch))
            total += loss
            hooks.on_train_batch_end(step, {"loss": loss})
        hooks.on_epoch_end(epoch, {"loss": total / max(steps, 1)})
        if float(any_worker(tf.constant(1.0 if model.stop_training else 0.0))) > 0:
            break
    hooks.on_train_end()
