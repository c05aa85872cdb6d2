"""`biolens doctor --estimate DATA [--task classify|detect]`: how long a run would take here, measured.

A short probe, not a formula: decode a sample of the user's own images, then run real training steps of the model
`biolens train` would build (same input size, batch size, augmentation, optimizer and tf.data pipeline) on this
machine, and time one validation pass. The epoch estimate is steps x the measured step time + the validation pass + two model saves;
memory is the decoded pixels (in memory up to 2 GiB, else a memory-mapped cache on disk) + the probe's own peak.
Detection reads and splits the annotations as the run does and times real training steps of the object network on
real training tiles (_estimate_detect).
"""
from __future__ import annotations

import dataclasses
import resource
import tempfile
import time
from pathlib import Path

import numpy as np

from biolens.errors import InputError

PROBE_STEPS = 12          # timed training steps (after 3 warm-up steps that build the graph)
DECODE_SAMPLE = 48        # images decoded to time reading
GPU_MATTERS_MINUTES = 20  # a full run longer than this on a CPU is where a GPU starts to pay


def estimate(data, task: str = "classify", *, epochs: int | None = None, image_size: int = 0, batch_size: int = 0,
             backbone: str = "compact", images=None, kind: str = "auto", object_size: float = 0.0,
             group_column: str | None = None, learning_curve: str = "auto") -> dict:
    """The measured cost of a `task` run on `data` (labelled images, or detection annotations) on this machine."""
    if task == "detect":
        return _estimate_detect(data, epochs=epochs or 0, images=images, kind=kind, object_size=object_size,
                                group_column=group_column, learning_curve=learning_curve)
    if task != "classify":
        raise InputError(f"--estimate measures --task classify (labelled images) or detect (annotations); '{task}' is "
                         "not covered yet. Run the task with a --time-budget to see its speed instead.")
    epochs = epochs or 30
    import keras

    from biolens import hardware
    from biolens.config import ClassifyConfig
    from biolens.readers import image_decode, images as image_reader
    from biolens.engine import training
    from biolens.tasks import classify

    config = ClassifyConfig(data=str(data), epochs=epochs, image_size=image_size, batch_size=batch_size,
                            backbone=backbone, weights="none").validate()
    found = image_reader.find_labelled(data)
    n = len(found)
    size = image_size or image_reader.auto_image_size(found)
    n_val = max(1, round(n * config.val_fraction))
    n_train = max(1, n - n_val - round(n * config.test_fraction))
    batch = config.auto_batch_size(n_train)
    n_classes = len(set(found.labels))

    rng = np.random.default_rng(0)
    sample = rng.choice(n, size=min(DECODE_SAMPLE, n), replace=False)
    started, decoded = time.perf_counter(), []
    for i in sample:
        try:
            # a z-stack is timed as one plane made of its pages, as any run that reads it makes one
            decoded.append(image_decode.decode(found.files[i], size, stack="max"))
        except image_decode.DecodeError:
            continue
    decode_s = (time.perf_counter() - started) / max(len(sample), 1)
    if not decoded:
        raise InputError(f"none of {len(sample)} sampled images in {data} could be read; check the files.")
    channels = decoded[0].channels

    device, strategy = hardware.setup(config.mixed_precision)
    keras.utils.set_random_seed(0)
    probe_rows = batch * (PROBE_STEPS + 3)
    pixels = rng.integers(0, 256, (probe_rows, size, size, channels), dtype=np.uint8)
    pixels[: len(decoded)] = np.stack([d.pixels for d in decoded])[:probe_rows]
    labels = rng.integers(0, n_classes, probe_rows)
    with strategy.scope():
        model, _ = classify.model_for(config, (size, size, channels), n_classes)
        model.compile(optimizer=keras.optimizers.AdamW(config.auto_learning_rate(batch), weight_decay=1e-4),
                      loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    stream = iter(training.image_batches(pixels, labels, np.arange(probe_rows), batch, shuffle=True,
                                         augment=config.augment, seed=0).repeat())
    for _ in range(3):  # graph building and the first allocations are not what an epoch costs
        model.train_on_batch(*next(stream))
    started = time.perf_counter()
    for _ in range(PROBE_STEPS):
        model.train_on_batch(*next(stream))
    step_s = (time.perf_counter() - started) / PROBE_STEPS
    training.predict_logits(model, pixels, np.arange(min(64, probe_rows)))  # warm-up of the inference path
    started = time.perf_counter()
    training.predict_logits(model, pixels)
    infer_s = (time.perf_counter() - started) / probe_rows
    with tempfile.TemporaryDirectory() as folder:  # each epoch saves the last (and often the best) model
        started = time.perf_counter()
        model.save(f"{folder}/probe.keras")
        save_s = time.perf_counter() - started

    steps = int(np.ceil(n_train / batch))
    epoch_s = steps * step_s + n_val * infer_s + 2 * save_s
    pixel_bytes = n * size * size * channels
    in_memory = pixel_bytes <= classify.IN_MEMORY_LIMIT
    probe_peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    memory = probe_peak + (pixel_bytes if in_memory else 0)
    total_min = (epochs * epoch_s + n * decode_s) / 60
    advice = _advice(device, total_min, f"a full run of {epochs} epochs")
    return {"data": str(data), "task": task, "n_images": n, "n_train": n_train, "n_val": n_val,
            "image_size": size, "channels": channels, "batch_size": batch, "steps_per_epoch": steps,
            "device": device.describe(), "seconds_per_step": round(step_s, 4), "decode_ms_per_image": round(1e3 * decode_s, 2),
            "read_seconds": round(n * decode_s, 1), "epoch_seconds": round(epoch_s, 1), "epochs": epochs,
            "total_minutes_at_most": round(total_min, 1), "memory_gb": round(memory / 2**30, 2),
            "pixels_gb": round(pixel_bytes / 2**30, 2), "pixels_in_memory": in_memory, "advice": advice}


def _advice(device, minutes: float, run: str) -> str:
    """Whether a GPU would matter for a run of about `minutes` on this machine, in a sentence."""
    if device.kind == "gpu":
        return f"training runs on the GPU ({device.describe()})."
    if minutes > GPU_MATTERS_MINUTES:
        return (f"{run} would take up to about {minutes:.0f} min on this CPU; a GPU would matter here (convolutions "
                "typically run 10-50x faster on a workstation GPU), or --time-budget caps it.")
    return f"{run} takes at most about {minutes:.0f} min on this CPU; a GPU would not change much."


def _estimate_detect(annotations, *, epochs: int, images, kind: str, object_size: float, group_column: str | None,
                     learning_curve: str) -> dict:
    """`biolens detect`'s cost: the annotations read and split as the run reads them (same scale, units, steps per
    epoch and automatic epoch count), then real training steps of the object network on real training tiles, and one
    validation pass. The total is an upper bound: early stopping usually ends sooner."""
    import keras

    from biolens import hardware
    from biolens.config import DetectConfig
    from biolens.tasks import detect, detect_curve

    config = DetectConfig(annotations=str(annotations), images=str(images) if images else None, kind=kind,
                          object_size=object_size, group_column=group_column, epochs=epochs,
                          learning_curve=learning_curve, stack="max").validate()  # z-stacks timed as one plane
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as folder:
        data = detect._prepare(config, None, Path(folder)).data
    read_s = time.perf_counter() - started
    config = dataclasses.replace(config, epochs=detect.most_epochs(config, data))  # as the run resolves it
    epochs = config.epochs
    networks = detect.how_many_networks(config, data)
    images, targets, maps, _ = detect._targets(data, config)
    steps = detect.steps_per_epoch(maps)
    n_classes = len(data.annotations.class_names)
    device, _ = hardware.setup("off")
    keras.utils.set_random_seed(0)
    model = detect.compiled_network(n_classes, data.scaled[0].shape[2], data.annotations.kind, config.learning_rate,
                                    steps, epochs)
    sampler = detect._sampler_class()(images, targets, maps, n_classes, steps, detect.TRAIN_BATCH, 0)
    for i in range(2):  # the XLA compile and the first allocations are not what an epoch costs
        model.train_on_batch(*sampler[i])
    probe = min(PROBE_STEPS // 2, steps)
    started = time.perf_counter()
    for i in range(probe):
        model.train_on_batch(*sampler[i])
    step_s = (time.perf_counter() - started) / probe
    val_x, val_y = detect._validation_tiles(images, targets, maps)
    val_s = 0.0
    if val_x is not None:
        model.evaluate(val_x[:detect.TRAIN_BATCH], val_y[:detect.TRAIN_BATCH], batch_size=detect.TRAIN_BATCH, verbose=0)
        started = time.perf_counter()
        model.evaluate(val_x, val_y, batch_size=detect.TRAIN_BATCH, verbose=0)
        val_s = time.perf_counter() - started
    epoch_s = steps * step_s + val_s
    training_s = networks * epochs * epoch_s
    refit_s = networks * epochs * steps * step_s if data.region_split else 0.0  # the delivered networks on every region
    curve_s = detect_curve.expected_seconds({"train_seconds": training_s, "steps_per_epoch": steps})
    curve_runs = config.learning_curve == "on" or (config.learning_curve == "auto"
                                                    and curve_s <= detect_curve.AUTO_SECONDS)
    total_min = (read_s + training_s + refit_s + (curve_s if curve_runs else 0.0)) / 60
    advice = _advice(device, total_min, "the whole run")
    return {"data": str(annotations), "task": "detect", "n_images": len(data.images),
            "n_objects": data.annotations.n_objects,
            "kind": data.annotations.kind, "scale": round(data.scale, 4), "units": len(data.units),
            "region_split": bool(data.region_split), "batch_size": detect.TRAIN_BATCH, "steps_per_epoch": steps,
            "device": device.describe(), "seconds_per_step": round(step_s, 4), "read_seconds": round(read_s, 1),
            "epoch_seconds": round(epoch_s, 1), "epochs": epochs, "networks": networks, "training_minutes": round(training_s / 60, 1),
            "final_network_minutes": round(refit_s / 60, 1), "learning_curve_minutes": round(curve_s / 60, 1),
            "learning_curve_runs": bool(curve_runs), "total_minutes_at_most": round(total_min, 1), "advice": advice}
