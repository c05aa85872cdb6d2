"""`biolens pretrain IMAGES...`: a self-supervised image representation learned from the user's own images,
labelled or not (engine/pretraining.py). The encoder is the run's model.keras; `cluster` on images and
`train --init-from RUN` / `--pretrain` start from it.

read images (labels from class folders, if any, kept only for scoring) -> SimCLR training (per-epoch checkpoints)
-> features of every image -> linear probe and kNN against the labels, beside raw pixels -> UMAP and a
nearest-neighbour gallery -> report.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from biolens import console
from biolens.config import PretrainConfig
from biolens.engine import lifecycle
from biolens.errors import InputError
from biolens.runs import Run, atomic_path, cached_stage, write_json

TASK = "pretrain"


def pretrain(images=None, out: str | Path | None = None, *, resume: str | Path | None = None, **options) -> Run:
    """Learn an image representation without labels.

    Args:
        images: a folder, an image file, or a list of them (class sub-folders are fine: their names only score
            the result).
        out: the run folder to create.
        resume: an interrupted pretrain run to continue instead.
        **options: any field of `PretrainConfig` (image_size, epochs, batch_size, time_budget, labels, seed, ...).

    Example:
        >>> run = biolens.pretrain(["cells/", "unlabelled/"], out="runs/pre")      # doctest: +SKIP
        >>> biolens.train("cells/", out="runs/cells", init_from="runs/pre")        # doctest: +SKIP
    """
    if resume is None:
        if not images:
            raise InputError("give the images to learn from (folders or files), or --resume RUN.")
        items = [images] if isinstance(images, (str, Path)) else list(images)
        options["images"] = [str(Path(p).resolve()) for p in items]
    return lifecycle.execute(TASK, out=out, resume=resume, options=options, prepare=_prepare, body=_body)


def folder_labels(files: list[Path], roots: list[Path], mode: str) -> np.ndarray | None:
    """Class labels from the sub-folder each image lies in, when there are at least two such folders (and not one
    per image); None otherwise. `mode` 'folder' makes their absence an error, 'none' ignores them."""
    if mode == "none":
        return None
    roots = {Path(r).resolve() for r in roots}
    parents = [f.resolve().parent for f in files]
    labels = np.array([p.name for p in parents])
    usable = all(p not in roots for p in parents) and 2 <= len(set(labels)) <= max(2, len(files) // 3)
    if usable:
        return labels
    if mode == "folder":
        raise InputError("--labels folder: the images must lie in one sub-folder per class (at least two classes); "
                         f"found {len(set(labels))} folder name(s) for {len(files)} images.")
    return None


def _prepare(config: PretrainConfig, run: Run | None, out: Path) -> lifecycle.Prepared:
    from biolens.engine.pretraining import MAX_SIZE, MIN_IMAGES
    from biolens.readers import images as image_reader

    found = image_reader.find_unlabelled([Path(p) for p in config.images], minimum=MIN_IMAGES,
                                         why="self-supervised learning contrasts each image with the others of a batch")
    size = config.image_size or min(MAX_SIZE, image_reader.auto_image_size(found))
    with console.progress_bar(f"reading {len(found)} images at {size}x{size}", len(found)) as advance:
        loaded = image_reader.load(found, size, allow_duplicates=True, progress=advance, stack=config.stack)
    files = loaded.images.files
    labels = folder_labels(files, [Path(p) for p in config.images], config.labels)
    notes = [f"{count} images: {note}." for note, count in loaded.notes.items()] + found.ignored[:5]
    data = {"pixels": loaded.pixels, "files": [str(f) for f in files], "labels": labels, "notes": notes,
            "image_size": size}
    record = {"image_size": size, "n_images": len(files), "labelled_by_folder": labels is not None}
    return lifecycle.Prepared(data, lifecycle.data_fingerprint(files), record)


def _body(run: Run, config: PretrainConfig, data: dict) -> bool:
    from biolens import hardware
    from biolens.engine import pretraining
    from biolens.engine.training import save_model
    from biolens.models.describe import describe_model

    hardware.setup("auto")
    for note in data["notes"]:
        console.say(f"note: {note}")
    run.update_info(warnings=data["notes"])
    pixels, labels = data["pixels"], data["labels"]
    encoder, summary = pretraining.encoder_in_run(run, pixels, seed=config.seed, epochs=config.epochs,
                                                  batch_size=config.batch_size, temperature=config.temperature,
                                                  learning_rate=config.learning_rate, time_budget=config.time_budget)
    features = cached_stage(run, "features", lambda: {"pretrained": pretraining.features(encoder, pixels),
                                                      "pixels": pretraining.pixel_reference(pixels, config.seed)})
    metrics = {"n_images": len(pixels), "image_size": data["image_size"], "pretraining": summary,
               "source": {"inputs": config.images, "n_images": len(pixels),
                          "labels": "class sub-folder names (used only to score)" if labels is not None else None}}
    if labels is not None:
        with console.step("linear probe and kNN against the folder labels"):
            metrics["probe"] = pretraining.probe({"pretrained": features["pretrained"], "pixels": features["pixels"]},
                                                 labels, config.seed)
    metrics["verdict"] = verdict(metrics)
    _outputs(run, config, data, features["pretrained"])
    save_model(encoder, run.path / "model.keras")
    run.update_info(model_summary=describe_model(encoder))
    write_json(run.path / "metrics.json", metrics)
    console.say(metrics["verdict"])
    return True


def verdict(metrics: dict) -> str:
    """What the representation learned, in plain words."""
    pre = metrics["pretraining"]
    words = (f"Learned from {metrics['n_images']} images in {pre['epochs_run']} epochs ({pre['seconds']:.0f} s); the "
             f"contrastive loss went from {pre['first_loss']:.2f} to {pre['final_loss']:.2f} (chance level "
             f"{pre['chance_loss']:.2f}). ")
    probe = metrics.get("probe") or {}
    if "pretrained" not in probe:
        return words + "No labels were given, so how well it separates classes is not measured here."
    ours, raw = probe["pretrained"]["linear_probe"], probe["pixels"]["linear_probe"]
    words += (f"Against the folder labels, a linear classifier on the learned features reaches a cross-validated "
              f"balanced accuracy of {ours:.2f} (kNN {probe['pretrained']['knn']:.2f}; raw pixels {raw:.2f}, "
              f"chance {probe['chance']:.2f}): ")
    if ours >= raw + 0.03:
        return words + "the representation captures the classes better than the pixels do."
    if ours > raw - 0.03:
        return words + "no better than raw pixels; the classes may differ mostly in colour or brightness."
    return words + "worse than raw pixels: the augmentations may remove what tells these classes apart."


def _outputs(run: Run, config: PretrainConfig, data: dict, features: np.ndarray) -> None:
    from biolens.report import cluster_figures
    from biolens.stats.clustering import umap_coordinates

    frame = pd.DataFrame(features, columns=[f"dim_{i + 1}" for i in range(features.shape[1])])
    frame.insert(0, "file", data["files"])
    with atomic_path(run.path / "embedding.parquet") as tmp:
        frame.to_parquet(tmp, index=False)
    standardised = (features - features.mean(0)) / np.maximum(features.std(0), 1e-8)
    with console.step("UMAP and nearest-neighbour gallery"):
        coords = umap_coordinates(standardised, 15, config.seed)
        labels = data["labels"]
        cluster_figures.umap_map(coords, labels if labels is not None else np.array(["image"] * len(coords)),
                                 run.path / "figures" / "umap.png",
                                 "learned representation" + (" (colour: folder labels)" if labels is not None else ""))
        cluster_figures.neighbour_gallery(data["pixels"], standardised, run.path / "figures" / "neighbours.png",
                                          seed=config.seed)
