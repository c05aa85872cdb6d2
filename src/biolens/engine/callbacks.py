"""The Keras callbacks of biolens's training loops: per-epoch validation and resumable state (`RunMonitor`, and
`EpochKeeper` for losses validated by Keras), averaged weights, filters held as they started (`HoldFilters`), and
progress bars with an ETA.

`RunMonitor` does what a biologist's run needs at each epoch end, in one place so that it survives a
kill: validation scores (balanced accuracy, which class imbalance cannot flatter), the best model so
far, early stopping, the time budget, history.csv, and an atomic checkpoint to resume from.
"""
from __future__ import annotations

import time
from pathlib import Path

import keras
import numpy as np

from biolens.engine import lifecycle
from biolens.engine.training import (STATE_FILE, balanced_accuracy, predict_logits, recalibrate_batch_norm, save_model,
                                     write_history)
from biolens.runs import Run, atomic_path, write_json


class RunMonitor(keras.callbacks.Callback):
    """Per-epoch validation, best-model keeping, early stopping, time budget and resumable state."""

    def __init__(self, run_path: Path, val_x: np.ndarray, val_labels: np.ndarray, val_indices: np.ndarray,
                 *, patience: int, time_budget: float, state: dict):
        super().__init__()
        self.run_path = Path(run_path)
        self.val = (val_x, val_labels, val_indices)
        self.patience = patience
        self.time_budget = time_budget
        self.state = state
        self._started = time.perf_counter()
        self._epoch_started = self._started
        self._elapsed_before = float(state.get("elapsed", 0.0))

    def elapsed(self) -> float:
        return self._elapsed_before + time.perf_counter() - self._started

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch_started = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        if self.time_budget and self.elapsed() > self.time_budget:
            self.model.stop_training = True
            self.state["stopped_by"] = "time budget"

    def on_epoch_end(self, epoch, logs=None):
        logs = logs if logs is not None else {}
        x, labels, indices = self.val
        logits = predict_logits(self.model, x, indices)
        truth = labels[indices]
        shifted = logits - logits.max(axis=1, keepdims=True)
        log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
        logs["val_loss"] = float(-log_probs[np.arange(len(truth)), truth].mean())
        logs["val_accuracy"] = float(np.mean(logits.argmax(1) == truth))
        logs["val_balanced_accuracy"] = balanced_accuracy(truth, logits.argmax(1))
        row = {"epoch": epoch + 1, "elapsed_s": round(self.elapsed(), 2),
               "learning_rate": float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate)),
               **{k: round(float(v), 5) for k, v in logs.items() if k != "learning_rate"}}
        state = self.state
        state["history"] = [r for r in state.get("history", []) if r["epoch"] < epoch + 1] + [row]
        score = logs["val_balanced_accuracy"] - 1e-3 * logs["val_loss"]  # ties broken by lower loss
        if score > state.get("best_score", -np.inf):
            state.update(best_score=score, best_epoch=epoch + 1, wait=0)
            save_model(self.model, self.run_path / "checkpoints" / "best.keras")
        else:
            state["wait"] = state.get("wait", 0) + 1
        if state["wait"] >= self.patience:
            self.model.stop_training = True
            state["stopped_by"] = f"early stopping (no better validation score for {self.patience} epochs)"
        epoch_seconds = time.perf_counter() - self._epoch_started
        if self.time_budget and self.elapsed() + epoch_seconds > self.time_budget:
            self.model.stop_training = True
            state["stopped_by"] = "time budget"
        state["elapsed"] = self.elapsed()
        state["epoch"] = epoch + 1
        save_model(self.model, self.run_path / "checkpoints" / "last.keras")
        write_json(self.run_path / STATE_FILE, state)
        write_history(self.run_path / "history.csv", state["history"])


class HoldFilters(keras.callbacks.Callback):
    """Keep the first `filters` filters of one convolution (`layer`: layer names from the model down) as they started
    for the first `epochs` epochs, while the layers above learn to read them. Why: first-layer filters started from
    words enriched in one class (models/sequence.seed_motif_filters) were rewritten in the first epochs, before the
    layers above could use them, and a factor whose word had been found was then learned by no filter
    (docs/performance.md, "Seeded filters held"). Restored after every training step; a run resumed within those
    epochs holds them as its checkpoint has them."""

    def __init__(self, layer: list[str], filters: int, epochs: int):
        super().__init__()
        self.layer, self.filters, self.epochs = list(layer), int(filters), int(epochs)
        self._epoch, self._held = 0, None

    def _conv(self):
        found = self.model
        for name in self.layer:
            found = found.get_layer(name)
        return found

    def on_train_begin(self, logs=None):
        conv = self._conv()
        self._held = (keras.ops.convert_to_numpy(conv.kernel)[..., :self.filters].copy(),
                      keras.ops.convert_to_numpy(conv.bias)[:self.filters].copy())

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        if self._epoch >= self.epochs or not self.filters:
            return
        conv = self._conv()
        kernel, bias = keras.ops.convert_to_numpy(conv.kernel).copy(), keras.ops.convert_to_numpy(conv.bias).copy()
        kernel[..., :self.filters], bias[:self.filters] = self._held
        conv.kernel.assign(kernel)
        conv.bias.assign(bias)


class AveragedWeights(keras.callbacks.SwapEMAWeights):
    """At each epoch end, swap the optimiser's moving average of the weights into the model (Keras `use_ema`) and
    re-estimate the batch-norm statistics for them on a fixed sample of training inputs, before the monitor
    validates and saves; swap the raw weights back to train on. Must come before RunMonitor in the callbacks.

    Why the statistics: batch norm's running mean and variance follow the raw weights of the last few batches, and
    with averaged weights they no longer match; at a batch of 32 and a peak rate of 0.003 on 3,564 blood-cell crops
    the averaged model validated at 0.33-0.98 balanced accuracy from one epoch to the next until they were re-read
    (precise batch norm, as for SWA: Izmailov et al. 2018)."""

    def __init__(self, x: np.ndarray, rows: np.ndarray, *, resumed: bool, inputs: int = 256):
        super().__init__(swap_on_epoch=True)
        self._ema_weights_in_model = resumed  # last.keras was saved with the averages in the model
        rows = np.sort(rows)
        if len(rows) > inputs:  # an even spread, the same every epoch
            rows = rows[np.linspace(0, len(rows) - 1, inputs).astype(int)]
        self.x, self.rows, self.inputs = x, rows, inputs

    def on_epoch_end(self, epoch, logs=None):
        super().on_epoch_end(epoch, logs)
        recalibrate_batch_norm(self.model, self.x, self.rows, self.inputs)


class RichProgress(keras.callbacks.Callback):
    """Rich progress bars (epochs and batches, with ETA) on a terminal; one line per epoch otherwise."""

    def __init__(self, epochs: int, steps: int, initial_epoch: int = 0, *, metric: str = "val_balanced_accuracy",
                 label: str = "val balanced acc", stage: str = "training"):
        super().__init__()
        self.metric, self.label, self.stage = metric, label, stage
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        self.console = Console(stderr=True)
        self.progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                 TimeRemainingColumn(), TextColumn("{task.fields[info]}"),
                                 console=self.console, transient=False, disable=not self.console.is_terminal)
        self.epochs, self.steps, self.initial_epoch = epochs, steps, initial_epoch

    def on_train_begin(self, logs=None):
        from biolens import console

        console.stage_started(self.stage, self.epochs, "epochs", self.initial_epoch)
        self.progress.start()
        self.epoch_task = self.progress.add_task("epochs", total=self.epochs, completed=self.initial_epoch, info="")
        self.batch_task = self.progress.add_task("batches", total=self.steps, info="")

    def on_epoch_begin(self, epoch, logs=None):
        self.progress.reset(self.batch_task, total=self.steps, info="")

    def on_train_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        self.progress.update(self.batch_task, completed=batch + 1, info=f"loss {float(loss):.3f}" if loss is not None else "")

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        info = f"{self.label} {logs.get(self.metric, float('nan')):.3f}"
        self.progress.update(self.epoch_task, completed=epoch + 1, info=info)
        from biolens import console

        console.stage_advanced(epoch + 1, force=True)
        if not self.console.is_terminal:
            held_out = f"val_loss {logs['val_loss']:.4f}  " if "val_loss" in logs else ""
            self.console.print(f"epoch {epoch + 1}/{self.epochs}  loss {logs.get('loss', float('nan')):.4f}  "
                               f"{held_out}{info if self.metric not in ('loss', 'val_loss') else ''}".rstrip(),
                               highlight=False)

    def on_train_end(self, logs=None):
        from biolens import console

        console.stage_finished()
        self.progress.stop()


class EpochKeeper(keras.callbacks.Callback):
    """At every epoch end, atomically: the best weights (by validation loss, as Keras computes it), the last model
    with its optimiser (for --resume after a kill) and the state; stops on patience or --time-budget (time summed
    across resumes). `config` gives `patience` and `time_budget` (object networks: tasks/detect.py)."""

    def __init__(self, run: Run, config, state: dict, state_path: Path, last_path: Path, best_path: Path,
                 epochs: int):
        super().__init__()
        self.run, self.config, self.state, self.epochs = run, config, dict(state), epochs
        self.paths = state_path, last_path, best_path
        self.started = time.perf_counter()
        self.before = float(self.state.get("train_seconds", 0.0))
        self.first_epoch = int(self.state.get("epoch", 0))

    def on_epoch_end(self, epoch, logs=None):
        state_path, last_path, best_path = self.paths
        logs = logs or {}
        loss = float(logs.get("val_loss", logs.get("loss", np.inf)))  # the final network has no validation units
        state = self.state
        elapsed = self.before + time.perf_counter() - self.started
        if loss < state.get("best", np.inf):
            state.update(best=loss, best_epoch=epoch + 1, wait=0)
            with atomic_path(best_path) as tmp:
                self.model.save_weights(tmp.with_suffix(".weights.h5"))
                tmp.with_suffix(".weights.h5").replace(tmp)
        else:
            state["wait"] = int(state.get("wait", 0)) + 1
        # each epoch's own seconds: what `biolens doctor --estimate --task detect` is checked against
        state["epoch_seconds"] = [*state.get("epoch_seconds", []), round(elapsed - float(state.get("train_seconds", 0.0)), 2)]
        state.update(epoch=epoch + 1, train_seconds=elapsed)
        per_epoch = (time.perf_counter() - self.started) / max(1, epoch + 1 - self.first_epoch)
        if state["wait"] >= self.config.patience:
            state["stopped_by"] = f"early stopping (no better validation loss for {self.config.patience} epochs)"
        elif self.config.time_budget and lifecycle.elapsed_seconds(self.run) + per_epoch > self.config.time_budget:
            state["stopped_by"] = f"time budget ({self.config.time_budget:.0f} s)"
        if state.get("stopped_by") or epoch + 1 >= self.epochs:
            state["done"] = True
            self.model.stop_training = True
        save_model(self.model, last_path)
        write_json(state_path, state)
