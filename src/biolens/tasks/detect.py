"""Objects in whole images: `detect` finds, counts and outlines colonies, cells, plants or trees; `predict` on a
detection run writes one row per object (`tasks/detect_predict.py`).

detect: read annotations (readers/annotations.py) -> typical object size (annotated, or measured at the points by
a Laplacian-of-Gaussian scale search) -> one scale that brings objects to ~12 px -> held-out units (whole images,
grouped; or, with few images, regions of them) -> U-Net with centre heat, size and foreground heads trained on
random tiles (resumable) -> score threshold chosen on validation units, and the count estimate (peaks found, or
the density head's sum) that counts the validation units best -> test units scored once: point, box and mask
matching, counts with bootstrap CIs, beside a classical Laplacian-of-Gaussian blob detector -> report.
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from biolens import console
from biolens.config import DetectConfig
from biolens.engine import lifecycle
from biolens.errors import InputError
from biolens.runs import Run, atomic_path, write_csv, write_json

TASK = "detect"
TARGET_SIZE = 12.0        # model pixels across the smaller objects
LARGEST_SIZE = 48.0       # ...and at most this across the typical one (the network's receptive field)
TRAIN_TILE = 128          # model pixels per side of a training tile
MIN_UNITS_FOR_IMAGE_SPLIT = 8
REGION_TARGET = 12        # regions made from few images, in all
FEW_TEST_UNITS = 5        # below this many held-out units the verdict says its intervals are rough
EPOCHS = 40               # most epochs by default...
EPOCHS_MANY_OBJECTS = 80  # ...and with at least this many annotated training objects:
MANY_OBJECTS = 1000
NETWORKS_FEW_OBJECTS = 3  # networks averaged by default when the training units hold...
FEW_OBJECTS = 300         # ...fewer annotated objects than this (from seed to seed their networks differ most)
MEMBER_SEED_STEP = 1000   # averaged networks train from seeds seed, seed + this, ... (apart from the curve's seeds)
MAX_VALIDATION_TILES = 96
MIN_STEPS, MAX_STEPS = 16, 30   # training steps per epoch: about two tiles' worth of each training pixel, within these
TRAIN_BATCH = 8                 # training tiles per step
HEAT_SIGMA_DIVISOR, HEAT_SIGMA_MAX = 8, 3.0  # centre heat Gaussian: an eighth of the smaller objects, 1-3 model px
BOX_OVERLAP = 0.5         # box runs: a weaker box overlapping a stronger one beyond this IoU is the same object
BOX_CHOICE_IOU = 0.4      # box runs choose their score threshold by box F1 at this IoU on the validation units
FLIPS_GAIN = 0.005        # validation F1 that test-time flip averaging must add to be kept (it costs 4x prediction)
MIN_SIZE_MATCHES = 5      # matched validation objects needed before the box size factor departs from 1
SIZE_FACTOR_RANGE = (0.5, 2.0)
MIN_CALIBRATION_UNITS = 4  # training units needed to fit a straight-line correction of density counts
MAX_CALIBRATION_UNITS = 200  # ...of which at most this many are searched (an even spread)
CALIBRATION_GAIN = 0.1     # ...and the validation count error it must save to be kept
THRESHOLDS = np.round(np.concatenate([[0.03, 0.05, 0.075], np.arange(0.1, 0.91, 0.05)]), 3)


def detect(annotations: str | Path | None = None, out: str | Path | None = None, *,
           resume: str | Path | None = None, **options) -> Run:
    """Train an object finder on annotated whole images and score it on held-out images (or image regions).

    Args:
        annotations: points/boxes CSV or TSV, a Pascal VOC folder, a COCO JSON, or a folder with images/ and
            masks/ (or dots/).
        out: the run folder to create.
        resume: an interrupted detection run to continue instead.
        **options: any field of `DetectConfig` (images, kind, object_size, group_column, epochs, seed, ...).

    Example:
        >>> run = biolens.detect("colonies.csv", out="runs/colonies", images="plates/")   # doctest: +SKIP
        >>> run.metrics["count_mae"], run.metrics["f1"]                                  # doctest: +SKIP
    """
    if resume is None:
        if annotations is None:
            raise InputError("give the annotations (CSV, VOC folder, COCO JSON or images/ + masks/ folder), or --resume RUN.")
        options["annotations"] = str(Path(annotations).resolve())
        if options.get("images"):
            options["images"] = str(Path(options["images"]).resolve())
    return lifecycle.execute(TASK, out=out, resume=resume, options=options, prepare=_prepare, body=_body)


# -- data --------------------------------------------------------------------------------------------------------
@dataclass
class Unit:
    """A held-out unit: a whole image, or (with few images) a region of one; coordinates in original pixels."""
    item: int
    box: tuple[float, float, float, float]
    split: str


@dataclass
class Data:
    annotations: object
    images: list[np.ndarray]       # original uint8 (H, W, C)
    scaled: list[np.ndarray]       # at model scale
    units: list[Unit]
    size: float                    # typical object diameter, original pixels
    small: float                   # size of the smaller objects (10th percentile), original pixels
    scale: float
    notes: list[str]
    region_split: bool = False     # held-out units are regions of few images (not whole images)

    def annotated_window(self, item: int, margin: float = 32.0) -> tuple[int, int, int, int] | None:
        """(x0, y0, x1, y1) in model pixels: the units of image `item` with a margin of `margin` (at least two
        object sizes), or None when that is most of the image. Training, searches and baselines look only there,
        so a large tile annotated on a corner costs the corner, not the tile."""
        boxes = np.array([u.box for u in self.units if u.item == item]) * self.scale
        height, width = self.scaled[item].shape[:2]
        if not len(boxes):
            return None
        margin = max(margin, 2 * self.size * self.scale)
        x0, y0 = (max(0, int(v - margin)) for v in boxes[:, :2].min(0))
        x1, y1 = int(min(width, boxes[:, 2].max() + margin)), int(min(height, boxes[:, 3].max() + margin))
        return None if (x1 - x0) * (y1 - y0) > 0.8 * width * height else (x0, y0, x1, y1)

    def extent(self, item: int, margin: float = 32.0) -> tuple[int, int, int, int]:
        """The annotated window of image `item`, or the whole image where there is none: the part to work on."""
        height, width = self.scaled[item].shape[:2]
        return self.annotated_window(item, margin) or (0, 0, width, height)


def _prepare(config: DetectConfig, run: Run | None, out: Path) -> lifecycle.Prepared:
    from biolens.inference.tiles import resize
    from biolens.readers.annotations import Annotations, read_annotated_images, read_annotations

    with console.step(f"reading {Path(config.annotations).name}"):
        annotations = read_annotations(config.annotations, config.images, config.kind, config.group_column)
    added, reviewed = _reviewed_regions(config, annotations)
    images = read_annotated_images(annotations, config.stack)
    notes = list(annotations.notes)
    if annotations.unused_images:
        notes.append(f"{len(annotations.unused_images)} image(s) have no annotation and were not used (not read as "
                     f"'no objects'): {', '.join(Path(p).name for p in annotations.unused_images[:5])}"
                     + (" ..." if len(annotations.unused_images) > 5 else ""))
    sizes = annotations.sizes()
    if config.object_size:
        size = small = float(config.object_size)
    elif len(sizes):
        size, small = float(np.median(sizes)), float(np.percentile(sizes, 10))
    else:
        size = small = estimate_point_size(images, annotations.items)
        notes.append(f"typical object size measured at the annotated points: {size:.1f} px (override with --object-size)")
    scale = float(np.clip(min(TARGET_SIZE / max(small, 1.0), LARGEST_SIZE / max(size, 1.0)), 1 / 32, 2.0))
    units, unit_notes = make_units(annotations, [im.shape[:2] for im in images], size, config)
    notes += unit_notes
    region_split = len(units) > len({u.item for u in units})  # before reviewed regions add units of their own
    if added:  # reviewed regions: training only, after the split of the main annotations (which they leave as it was)
        for item, boxes in zip(added, reviewed):
            annotations.items.append(item)
            images.append(read_annotated_images(Annotations(annotations.kind, [item], annotations.class_names,
                                                            config.add_labels), config.stack)[0])
            units += [Unit(len(annotations.items) - 1, box, "train") for box in boxes]
        notes.append(f"{sum(map(len, reviewed))} reviewed region(s) of {len(added)} image(s) from {config.add_labels} "
                     f"added to training ({sum(len(i.points) for i in added)} objects)")
    scaled = [resize(image, scale) for image in images]
    paths = [config.annotations] + [str(item.image) for item in annotations.items]
    fingerprint = lifecycle.data_fingerprint(paths + ([config.add_labels] if config.add_labels else []),
                                             rows=[annotations.kind, str(config.images or "")])
    data = Data(annotations, images, scaled, units, size, small, scale, notes, region_split)
    record = {"kind": annotations.kind, "class_names": annotations.class_names, "object_size": round(size, 2),
              "object_size_small": round(small, 2),
              "scale": round(scale, 5), "n_images": len(images), "n_objects": annotations.n_objects}
    return lifecycle.Prepared(data, fingerprint, record)


def _reviewed_regions(config: DetectConfig, annotations):
    """The corrected regions of --add-labels (readers/annotations.read_reviewed); images already annotated in the
    main file are refused, so a test image can never come back as training."""
    if not config.add_labels:
        return [], []
    from biolens.readers.annotations import read_reviewed

    if annotations.kind == "masks":
        raise InputError("--add-labels: reviewed regions give points or boxes; mask annotations are corrected in the "
                         "annotation tool and read again.")
    added, reviewed = read_reviewed(config.add_labels, annotations.kind, annotations.class_names)
    known = {item.image.resolve() for item in annotations.items}
    for item in added:
        if item.image.resolve() in known:
            raise InputError(f"--add-labels {config.add_labels}: {item.image} is already in {Path(config.annotations).name}; "
                             "add its corrections there instead (reviewed regions are for new images).")
    return added, reviewed


def estimate_point_size(images: list[np.ndarray], items, max_images: int = 12) -> float:
    """Object diameter from the images at annotated points: the Laplacian-of-Gaussian scale that responds most
    there (a blob of diameter d peaks at sigma = d / (2 sqrt 2)), capped by the median distance between
    neighbouring points (packed objects)."""
    from scipy import ndimage
    from scipy.spatial import cKDTree

    sigmas = np.geomspace(1.0, 48.0, 18)
    response = np.zeros(len(sigmas))
    spacing = []
    for image, item in list(zip(images, items))[:max_images]:
        if len(item.points) == 0:
            continue
        grey = image.astype(np.float32).mean(axis=-1)
        step = max(1, int(min(grey.shape) // 1024))  # very large images: a coarser look is enough for the size
        grey = grey[::step, ::step]
        xs = np.clip((item.points[:, 0] / step).astype(int), 0, grey.shape[1] - 1)
        ys = np.clip((item.points[:, 1] / step).astype(int), 0, grey.shape[0] - 1)
        for k, sigma in enumerate(sigmas / step):
            if sigma < 0.5:
                continue
            log = sigma**2 * ndimage.gaussian_laplace(grey, sigma)
            response[k] += np.abs(log[ys, xs]).mean()
        if len(item.points) > 1:
            distance, _ = cKDTree(item.points).query(item.points, k=2)
            spacing.append(np.median(distance[:, 1]))
    size = float(2 * np.sqrt(2) * sigmas[int(np.argmax(response))]) if response.any() else 12.0
    if spacing:
        size = min(size, 1.2 * float(np.median(spacing)))
    return float(np.clip(size, 3.0, 500.0))


def make_units(annotations, shapes: list[tuple[int, int]], size: float, config: DetectConfig):
    """Held-out units. Many images: whole images, grouped by --group-column (or image). Few images: a grid of
    regions over the annotated extent of each, so a single large tile can still be tested on ground the model
    never trained on. Objects annotated on only part of a large image restrict it to that part (not for dot images,
    which mark every object of theirs)."""
    rng = np.random.default_rng(config.seed)
    notes, extents = [], []
    for item, (height, width) in zip(annotations.items, shapes):
        extent = (0.0, 0.0, float(width), float(height))
        if len(item.points) >= 10 and not annotations.whole_images:
            x0, y0 = item.points.min(0) - size
            x1, y1 = item.points.max(0) + size
            if item.boxes is not None:
                x0, y0 = min(x0, item.boxes[:, 0].min()), min(y0, item.boxes[:, 1].min())
                x1, y1 = max(x1, item.boxes[:, 2].max()), max(y1, item.boxes[:, 3].max())
            x0, y0, x1, y1 = max(0.0, x0), max(0.0, y0), min(float(width), x1), min(float(height), y1)
            if (x1 - x0) * (y1 - y0) < 0.7 * width * height:
                extent = (x0, y0, x1, y1)
                notes.append(f"{item.image.name}: objects are annotated only within x {x0:.0f}-{x1:.0f}, y {y0:.0f}-"
                             f"{y1:.0f}; training and testing use that part (predictions cover the whole image)")
        extents.append(extent)
    groups = [item.group for item in annotations.items]
    fixed = [item.split for item in annotations.items]
    if all(fixed) and "test" in fixed and "train" in fixed:  # the annotations' own split (a 'split' column)
        splits = list(fixed)
        if "val" not in splits:  # validation carved from the training images, as the split left none
            train = [i for i, s in enumerate(splits) if s == "train"]
            for i in rng.permutation(train)[:max(1, round(config.val_fraction * len(train)))]:
                splits[i] = "val"
        notes.append("the split given in the annotations' 'split' column was used"
                     + ("" if "val" in fixed else "; validation images were drawn from its training images"))
        return [Unit(i, extents[i], splits[i]) for i in range(len(extents))], notes
    if len(set(groups)) >= MIN_UNITS_FOR_IMAGE_SPLIT:
        unique = sorted(set(groups))
        order = rng.permutation(len(unique))
        n_test = max(1, round(config.test_fraction * len(unique)))
        n_val = max(1, round(config.val_fraction * len(unique)))
        split_of = {unique[g]: ("test" if r < n_test else "val" if r < n_test + n_val else "train")
                    for r, g in enumerate(order)}
        return [Unit(i, extents[i], split_of[groups[i]]) for i in range(len(extents))], notes
    if config.group_column:
        notes.append(f"only {len(set(groups))} groups in --group-column {config.group_column}: too few to hold whole "
                     "groups out, so regions of the images are held out instead")
    areas = np.array([(e[2] - e[0]) * (e[3] - e[1]) for e in extents])
    units = []
    for i, (x0, y0, x1, y1) in enumerate(extents):
        n = max(3, round(REGION_TARGET * areas[i] / areas.sum()))
        rows = max(1, round(np.sqrt(n * (y1 - y0) / max(x1 - x0, 1))))
        cols = max(1, int(np.ceil(n / rows)))
        for r in range(rows):
            for c in range(cols):
                units.append(Unit(i, (x0 + (x1 - x0) * c / cols, y0 + (y1 - y0) * r / rows,
                                      x0 + (x1 - x0) * (c + 1) / cols, y0 + (y1 - y0) * (r + 1) / rows), "train"))
    order = rng.permutation(len(units))
    n_test = max(1, round(config.test_fraction * len(units)))
    n_val = max(1, round(config.val_fraction * len(units)))
    for rank, k in enumerate(order):
        units[k].split = "test" if rank < n_test else "val" if rank < n_test + n_val else "train"
    notes.append(f"{len(extents)} image(s): {len(units)} regions held out as units ({n_test} test, {n_val} "
                 "validation); objects are assigned to the region holding their centre")
    return units, notes


def _in_box(points: np.ndarray, box) -> np.ndarray:
    x0, y0, x1, y1 = box
    return (points[:, 0] >= x0) & (points[:, 0] < x1) & (points[:, 1] >= y0) & (points[:, 1] < y1)


# -- training ----------------------------------------------------------------------------------------------------
def _targets(data: Data, config: DetectConfig):
    """(images, targets, maps, sigma): per image, the model-scale image, its targets and a map of the split each
    pixel belongs to (-1 = not annotated), all cut to the annotated window when the objects cover only part of the
    image (a tile boxed in one corner renders targets for the corner, not the tile; the window's margin holds every
    training tile centred in a unit, so training sees the same pixels)."""
    from biolens.models.objects import render_targets
    from biolens.readers.annotations import load_mask

    classes = data.annotations.class_names
    sigma = float(np.clip(data.small * data.scale / HEAT_SIGMA_DIVISOR, 1.0, HEAT_SIGMA_MAX))  # narrow: touching objects keep separate peaks
    density_sigma = float(np.clip(data.small * data.scale / 4, 1.5, 6.0))  # wide: a smooth map is easy to regress
    images, targets, maps = [], [], []
    codes = {"train": 0, "val": 1, "test": 2}
    for index, (item, scaled) in enumerate(zip(data.annotations.items, data.scaled)):
        left, top, right, bottom = data.extent(index, TRAIN_TILE // 2 + 16)
        view = scaled[top:bottom, left:right]
        height, width = view.shape[:2]
        sizes = None
        if item.boxes is not None:
            sizes = np.stack([item.boxes[:, 2] - item.boxes[:, 0], item.boxes[:, 3] - item.boxes[:, 1]], 1) * data.scale
        foreground = None
        if data.annotations.kind == "masks":
            from biolens.inference.tiles import resize

            mask = (load_mask(item) > 0).astype(np.uint8)[..., None] * 255
            foreground = (resize(np.repeat(mask, 3, -1), data.scale)[..., 0] >= 128)[top:bottom, left:right]
        split_map = np.full((height, width), -1, np.int8)
        for unit in data.units:
            if unit.item == index and unit.split in codes:  # units set aside (learning curve) are not used at all
                x0, y0, x1, y1 = (np.array(unit.box) * data.scale).round().astype(int) - [left, top, left, top]
                split_map[max(0, y0):y1, max(0, x0):x1] = codes[unit.split]
        centres = item.points * data.scale - [left, top]
        inside = (centres > -1).all(axis=1) & (centres[:, 0] < width + 1) & (centres[:, 1] < height + 1)  # all of them
        targets.append(render_targets((height, width), centres[inside],
                                      np.array([classes.index(label) for label in item.labels], int)[inside],
                                      None if sizes is None else sizes[inside], len(classes),
                                      sigma, foreground, (split_map >= 0).astype(np.float32), density_sigma))
        images.append(view)
        maps.append(split_map)
    return images, targets, maps, sigma


def steps_per_epoch(maps: list[np.ndarray]) -> int:
    """About two tiles' worth of each training pixel (split map code 0), within MIN_STEPS-MAX_STEPS."""
    train_pixels = sum(int((m == 0).sum()) for m in maps)
    return int(np.clip(2 * train_pixels / TRAIN_TILE**2, MIN_STEPS, MAX_STEPS))


_NETWORKS: dict[tuple, tuple] = {}  # (classes, channels, kind) -> (compiled model, its schedule), one per process


def compiled_network(n_classes: int, channels: int, kind: str, learning_rate: float, steps: int, epochs: int):
    """The object network, compiled as every detection training (and the time estimate's probe) uses it, with the
    weights a new network of the current seed gets and a fresh optimiser. One compiled model per architecture and
    process, re-initialised for each network: each newly compiled XLA training step stays in TensorFlow's cache
    until the process ends (device_compilation_cache has no eviction), about 250 MB a network, while a reused
    model compiles once (docs/performance.md). Train it, then keep a `detached_copy`: the next call resets it."""
    import keras

    from biolens.models.objects import ObjectLoss, WarmupCosine, object_unet

    key = (n_classes, channels, kind)
    fresh = object_unet(n_classes, channels)
    decay = {"initial_learning_rate": learning_rate * 0.1, "decay_steps": max(1, steps * (epochs - 1)),
             "warmup_target": learning_rate, "warmup_steps": steps}
    if key not in _NETWORKS:
        schedule = WarmupCosine(**decay)
        # XLA on: the tiles have one fixed shape, and on a CPU it measured 1.3 -> 0.7 s a step (Keras' "auto" keeps
        # it off on CPU-only machines)
        fresh.compile(optimizer=keras.optimizers.AdamW(schedule, weight_decay=1e-4),
                      loss=ObjectLoss(n_classes, kind == "boxes", kind == "masks", use_density=True), jit_compile=True)
        _NETWORKS[key] = fresh, schedule
        return fresh
    model, schedule = _NETWORKS[key]
    model.set_weights(fresh.get_weights())
    for variable in model.optimizer.variables:  # step count, moments: as a new optimiser has them
        variable.assign(keras.ops.zeros_like(variable))
    schedule.reset(**decay)
    return model


def _sampler_class():
    import keras

    from biolens.inference.tiles import window

    class TileSampler(keras.utils.PyDataset):
        """Random training tiles centred in training units, flipped and rotated, with light intensity jitter."""

        def __init__(self, images, targets, maps, n_classes, steps, batch, seed):
            super().__init__()
            self.images, self.targets, self.maps = images, targets, maps
            self.n_classes, self.steps, self.batch, self.seed, self.epoch = n_classes, steps, batch, seed, 0
            self.cells = [(i, np.argwhere(m == 0)) for i, m in enumerate(maps)]
            self.cells = [(i, c) for i, c in self.cells if len(c)]
            weights = np.array([len(c) for _, c in self.cells], float)
            self.weights = weights / weights.sum()

        def __len__(self):
            return self.steps

        def on_epoch_end(self):
            self.epoch += 1

        def __getitem__(self, index):
            rng = np.random.default_rng([self.seed, self.epoch, index])
            xs, ys = [], []
            for _ in range(self.batch):
                i, cells = self.cells[rng.choice(len(self.cells), p=self.weights)]
                cy, cx = cells[rng.integers(len(cells))]
                y0, x0 = int(cy) - TRAIN_TILE // 2, int(cx) - TRAIN_TILE // 2
                image = window(self.images[i], y0, x0, TRAIN_TILE).astype(np.float32)
                target = window(self.targets[i], y0, x0, TRAIN_TILE).astype(np.float32)
                target[..., -1] *= window(self.maps[i], y0, x0, TRAIN_TILE) == 0
                turns = int(rng.integers(4))
                image, target = np.rot90(image, turns), np.rot90(target, turns)
                if turns % 2:
                    c = self.n_classes
                    target[..., [c, c + 1]] = target[..., [c + 1, c]]
                if rng.random() < 0.5:
                    image, target = image[:, ::-1], target[:, ::-1]
                gain = rng.uniform(0.85, 1.15) * rng.uniform(0.93, 1.07, image.shape[-1])  # light and colour cast
                image = image * gain + rng.uniform(-15, 15)
                xs.append(np.clip(image, 0, 255))
                ys.append(target)
            return np.stack(xs), np.stack(ys)

    return TileSampler


def _validation_tiles(images, targets, maps, code: int = 1):
    from biolens.inference.tiles import window

    xs, ys = [], []
    for image, target, split_map in zip(images, targets, maps):
        height, width = split_map.shape
        for y in range(0, height, TRAIN_TILE):
            for x in range(0, width, TRAIN_TILE):
                inside = split_map[y:y + TRAIN_TILE, x:x + TRAIN_TILE] == code
                if inside.mean() < 0.25:
                    continue
                t = window(target, y, x, TRAIN_TILE).astype(np.float32)
                t[..., -1] *= window(split_map, y, x, TRAIN_TILE) == code
                xs.append(window(image, y, x, TRAIN_TILE).astype(np.float32))
                ys.append(t)
    if len(xs) > MAX_VALIDATION_TILES:  # huge validation regions: a fixed spread sample keeps each epoch short
        keep = np.linspace(0, len(xs) - 1, MAX_VALIDATION_TILES).astype(int)
        xs, ys = [xs[k] for k in keep], [ys[k] for k in keep]
    return (np.stack(xs), np.stack(ys)) if xs else (None, None)


def training_objects(data: Data) -> int:
    """Annotated objects in the training units: what the automatic epochs and number of networks follow."""
    from biolens.tasks.detect_curve import objects_per_class

    return sum(objects_per_class(data, [u for u in data.units if u.split == "train"]).values())


def how_many_networks(config: DetectConfig, data: Data) -> int:
    """--networks, or with 0 the automatic choice: several networks averaged when few objects are annotated.

    Measured (docs/objects.md, docs/performance.md): on ~90 training tree crowns single networks of seeds 0-3 scored
    right-half box F1 0.32-0.54, a spread larger than any setting tried; averaging the outputs of three networks
    removes the bad draw. Few objects also train fastest, so the threefold training costs minutes there."""
    if config.networks:
        return config.networks
    return NETWORKS_FEW_OBJECTS if training_objects(data) < FEW_OBJECTS else 1


def _train_networks(run: Run, config: DetectConfig, data: Data, networks: int, *, name: str = "",
                    seed: int | None = None, final_epochs: list[int] | None = None):
    """`networks` object networks trained alike from different seeds, their outputs averaged into one model
    (models/objects.averaged_networks); one network is returned as it is. With `final_epochs` (one per network),
    the delivered networks trained again on every annotated unit. The state is the first network's, with each
    network's best and last epoch (`member_best_epochs`, `member_epochs_run`) and the training time of all."""
    from biolens.models.objects import averaged_networks

    seed = config.seed if seed is None else seed
    models, states = [], []
    for k in range(networks):
        if k and config.time_budget and \
                lifecycle.elapsed_seconds(run) + states[0]["train_seconds"] > config.time_budget:
            console.say(f"--time-budget leaves no time for network {k + 1} of {networks}: averaging {k}")
            break
        model, state = _train(run, config, data, name=name, seed=seed + MEMBER_SEED_STEP * k,
                              final_epochs=final_epochs[k] if final_epochs else 0,
                              network=(k + 1, networks) if networks > 1 else None)
        models.append(model)
        states.append(state)
    state = {**states[0], "networks": len(models), "train_seconds": round(sum(s["train_seconds"] for s in states), 1),
             "member_best_epochs": [s["best_epoch"] for s in states],
             "member_epochs_run": [s["epochs_run"] for s in states]}
    return (models[0] if len(models) == 1 else averaged_networks(models)), state


def _train(run: Run, config: DetectConfig, data: Data, *, final_epochs: int = 0, name: str = "",
           seed: int | None = None, network: tuple[int, int] | None = None) -> dict:
    """One held-out network (training units; validation units choose the best epoch), or with `final_epochs` the
    delivered network trained again on every annotated unit for that many epochs (_refit_on_every_region). `name`
    (a learning-curve model on part of the training units) keeps its checkpoints in checkpoints/[final/]<name>/;
    `network` (k, of n) of several averaged ones, the k-th from the second on in its own networkK/ below that."""
    import dataclasses

    import keras

    from biolens import hardware
    from biolens.engine.callbacks import EpochKeeper, RichProgress
    from biolens.models.io import load_checkpoint
    from biolens.models.objects import detached_copy

    hardware.setup("off")
    seed = config.seed if seed is None else seed
    keras.utils.set_random_seed(seed)
    if final_epochs:
        data = dataclasses.replace(data, units=[Unit(u.item, u.box, "train") for u in data.units])
    epochs = final_epochs or config.epochs
    images, targets, maps, sigma = _targets(data, config)
    classes = data.annotations.class_names
    kind = data.annotations.kind
    steps, batch = steps_per_epoch(maps), TRAIN_BATCH
    sampler = _sampler_class()(images, targets, maps, len(classes), steps, batch, seed)
    val_x, val_y = (None, None) if final_epochs else _validation_tiles(images, targets, maps)
    if val_x is None and not final_epochs:
        raise InputError(f"{config.annotations}: the validation regions are too small to check training on; "
                         "annotate larger or more images.")
    k, of = network or (1, 1)
    folder = run.path / "checkpoints" / ("final" if final_epochs else "") / name / (f"network{k}" if k > 1 else "")
    state_path, last_path, best_path = folder / "state.json", folder / "last.keras", folder / "best.weights.h5"
    state = json.loads(state_path.read_text()) if state_path.exists() and last_path.exists() else {}
    if state:  # resume: the model with its optimiser state as the last finished epoch left it
        model = load_checkpoint(last_path)
        console.say(f"resuming after epoch {state['epoch']}")
    else:
        # the final network follows the held-out one's schedule (decay over --epochs) and stops where that one
        # was best: same recipe, more objects, so its scores suit the threshold chosen on validation
        model = compiled_network(len(classes), data.scaled[0].shape[2], kind, config.learning_rate, steps, config.epochs)
    keeper = EpochKeeper(run, config, state, state_path, last_path, best_path, epochs)
    progress = RichProgress(epochs, steps, int(state.get("epoch", 0)), metric="loss" if final_epochs else "val_loss",
                            label="loss" if final_epochs else "val loss",
                            stage=("training the final network on every annotated region" if final_epochs
                                   else f"learning curve: {name}" if name else "training the object network")
                            + (f" ({k} of {of})" if of > 1 else ""))
    callbacks = [keeper, progress] if final_epochs or name or k > 1 else \
        [keeper, keras.callbacks.CSVLogger(str(run.path / "history.csv"), append=True), progress]
    if not state.get("done") and int(state.get("epoch", 0)) < epochs:
        model.fit(sampler, validation_data=None if final_epochs else (val_x, val_y), epochs=epochs,
                  initial_epoch=int(state.get("epoch", 0)), callbacks=callbacks, verbose=0)
    model.load_weights(str(best_path))
    state = keeper.state
    return detached_copy(model), {
        "sigma": sigma, "steps_per_epoch": steps, "batch_size": batch,
        "train_seconds": round(float(state.get("train_seconds", 0.0)), 1), "epochs_run": int(state["epoch"]),
        "best_epoch": int(state["best_epoch"]), "stopped_by": state.get("stopped_by") or "all epochs done"}


# -- evaluation --------------------------------------------------------------------------------------------------
def _all_peaks(model, data: Data, flips: bool = False, items: set[int] | None = None):
    """Candidate objects of the images holding validation or test units (or of `items`), with or without flip
    averaging; None for the other images (training images are never scored, so they are not searched)."""
    from biolens.inference.tiles import find_peaks

    min_distance = max(1, int(data.small * data.scale / 8))
    classes = data.annotations.class_names
    wanted = sorted(_scored_items(data) if items is None else items)
    peaks = [None] * len(data.scaled)
    with console.step(f"finding objects in {len(wanted)} image(s)" + (" (and their mirror images)" if flips else "")):
        for k in wanted:
            peaks[k] = find_peaks(model, data.scaled[k], len(classes), min_distance=min_distance,
                                  with_foreground=data.annotations.kind == "masks", flips=flips,
                                  region=data.annotated_window(k))
    return peaks, min_distance


def _scored_items(data: Data) -> set[int]:
    """The images holding validation or test units: the only ones whose objects choose or score anything."""
    return {u.item for u in data.units if u.split in ("val", "test")}


def _found_objects(peaks, threshold: float, min_distance: float, overlap: float, data: Data) -> list[dict | None]:
    """Objects in original pixels per image at `threshold` (None where the image was not searched)."""
    from biolens.inference.tiles import select

    return [None if p is None else _objects(p, select(p, threshold, min_distance, overlap), data, item)
            for item, p in enumerate(peaks)]


def _with_flips_if_better(model, data: Data, peaks, min_distance: float, radius: float):
    """(peaks, flips, validation F1 without and with): test-time flip averaging (the network's outputs on each
    tile and its three mirror images, averaged) is kept when it raises the validation F1 by at least FLIPS_GAIN
    (measured on tree crowns, annotated on half a tile: right-half box F1 +0.04 to +0.10 over three seeds; on
    vgg_cells it changed nothing), since it costs four passes per tile in every prediction."""
    val_items = {u.item for u in data.units if u.split == "val"}
    flipped, _ = _all_peaks(model, data, flips=True, items=val_items)
    plain_f1 = _validation_f1(data, peaks, min_distance, radius)
    flipped_f1 = _validation_f1(data, [f if f is not None else p for f, p in zip(flipped, peaks)], min_distance, radius)
    record = {"plain": round(plain_f1, 4), "flips": round(flipped_f1, 4)}
    if flipped_f1 < plain_f1 + FLIPS_GAIN:
        return peaks, False, record
    others = _scored_items(data) - val_items
    rest, _ = _all_peaks(model, data, flips=True, items=others) if others else ([None] * len(peaks), None)
    return [f if f is not None else r for f, r in zip(flipped, rest)], True, record


def _validation_f1(data: Data, peaks, min_distance: float, radius: float) -> float:
    """The F1 the threshold is chosen by (box F1 at IoU 0.4 for box runs, else point F1) on the validation units, at
    the threshold (and box size factor) calibrated there; the peaks are left unchanged."""
    import copy

    from biolens.stats.objects import prf

    peaks = [copy.copy(p) for p in peaks]  # calibrate_sizes replaces .sizes; the caller's peaks keep theirs
    _, _, found = calibrated_objects(data, peaks, min_distance, radius)
    val = [u for u in data.units if u.split == "val"]
    if data.annotations.kind == "boxes":
        return prf(*_box_matches(data, found, val, BOX_CHOICE_IOU))["f1"]
    return _pooled(_unit_scores(data, found, val, radius))["f1"]


def _objects(peaks, chosen, data: Data, item: int) -> dict:
    """Objects in original pixels from the chosen peaks of image `item`."""
    from biolens.stats.objects import boxes_in_image

    centres = peaks.centres[chosen] / data.scale
    sizes = peaks.sizes[chosen] / data.scale
    height, width = data.images[item].shape[:2]
    boxes = boxes_in_image(centres, sizes, width, height)
    return {"centres": centres, "classes": peaks.classes[chosen], "scores": peaks.scores[chosen], "boxes": boxes,
            "sizes": sizes}


def _unit_scores(data: Data, found: list[dict], units: list[Unit], radius: float) -> list[dict]:
    """Per unit and class: true and found counts and matched points (within `radius`)."""
    from biolens.stats.objects import match_points

    classes = data.annotations.class_names
    rows = []
    for unit in units:
        item, objects = data.annotations.items[unit.item], found[unit.item]
        truth_in = _in_box(item.points, unit.box)
        found_in = _in_box(objects["centres"], unit.box)
        labels = np.array([classes.index(label) for label in item.labels])
        per_class = {}
        for c in range(len(classes)):
            t = item.points[truth_in & (labels == c)]
            f = objects["centres"][found_in & (objects["classes"] == c)]
            matched, _ = match_points(t, f, radius)
            per_class[c] = (len(t), len(f), len(matched))
        rows.append({"unit": unit, "per_class": per_class})
    return rows


def _pooled(rows: list[dict], c: int | None = None) -> dict:
    from biolens.stats.objects import prf

    keys = [c] if c is not None else None
    n_t = n_f = tp = 0
    for row in rows:
        for k, (t, f, m) in row["per_class"].items():
            if keys is None or k in keys:
                n_t, n_f, tp = n_t + t, n_f + f, tp + m
    return prf(tp, n_f, n_t)


def _choose_threshold(data: Data, peaks, min_distance: float, radius: float) -> float:
    """The score threshold with the best F1 on the validation units: point F1, or for box runs box F1 at IoU 0.4
    (what a box is judged by: a threshold that finds the crown but draws a poor box is no better than a miss)."""
    from biolens.stats.objects import prf

    val = [u for u in data.units if u.split == "val"]
    kind = data.annotations.kind
    best, best_f1 = 0.5, -1.0
    for threshold in THRESHOLDS:
        found = _found_objects(peaks, threshold, min_distance, overlap_of(kind), data)
        if kind == "boxes":
            f1 = prf(*_box_matches(data, found, val, BOX_CHOICE_IOU))["f1"]
        else:
            f1 = _pooled(_unit_scores(data, found, val, radius))["f1"]
        if f1 > best_f1 + 1e-9:
            best, best_f1 = float(threshold), f1
    return best


def size_factor(data: Data, peaks, min_distance: float, radius: float, threshold: float) -> list[float]:
    """Box runs: the factor (width, height) that brings the size head's boxes to the annotated ones on the validation
    units: the geometric median of true / found over point-matched objects. A short training leaves the size head
    shrunk towards the average (measured on tree crowns: ~20% small), and IoU punishes that hard; [1, 1] with fewer
    than MIN_SIZE_MATCHES matches."""
    from biolens.stats.objects import match_points

    found = _found_objects(peaks, threshold, min_distance, 0.0, data)
    ratios = []
    for unit in (u for u in data.units if u.split == "val"):
        item, objects = data.annotations.items[unit.item], found[unit.item]
        truth_in, found_in = _in_box(item.points, unit.box), _in_box(objects["centres"], unit.box)
        rows, cols = match_points(item.points[truth_in], objects["centres"][found_in], radius)
        true_boxes = item.boxes[truth_in][rows]
        true_size = true_boxes[:, 2:] - true_boxes[:, :2]
        found_size = objects["sizes"][found_in][cols]  # the size head's, before boxes are cut at the image edge
        ratios.append(np.log(np.maximum(true_size, 1.0) / np.maximum(found_size, 1e-3)))
    ratios = np.concatenate(ratios) if ratios else np.zeros((0, 2))
    if len(ratios) < MIN_SIZE_MATCHES:
        return [1.0, 1.0]
    return [round(float(v), 4) for v in np.clip(np.exp(np.median(ratios, axis=0)), *SIZE_FACTOR_RANGE)]


def calibrate_sizes(peaks, metrics: dict):
    """The run's validated box size factor applied to candidate objects (every user of a box run's peaks calls
    this before `select`, whose box suppression reads the sizes)."""
    peaks.sizes = peaks.sizes * np.asarray(metrics.get("box_size_factor", [1.0, 1.0]), np.float32)
    return peaks


def _log_baseline(data: Data, radius: float) -> tuple[list[dict], dict]:
    """The classical peer: Laplacian-of-Gaussian blobs (scikit-image) at the object scale, bright or dark, with the
    polarity and threshold chosen on training and validation units; class-blind."""
    from skimage.feature import blob_log

    sigma = max(1.0, data.small * data.scale / (2 * np.sqrt(2)))
    sigma_high = max(sigma * 1.5, data.size * data.scale / (2 * np.sqrt(2)) * 1.5)
    tuned = [u for u in data.units if u.split in ("train", "val")]
    settings = [(polarity, threshold) for polarity in ("bright", "dark") for threshold in (0.02, 0.05, 0.1, 0.2)]
    candidates = {setting: [] for setting in settings}
    for item, scaled in enumerate(data.scaled):  # each image read into grey once, for every setting
        x0, y0, x1, y1 = data.extent(item)
        grey = scaled[y0:y1, x0:x1].astype(np.float32).mean(-1) / 255.0
        for polarity, threshold in settings:
            blobs = blob_log(grey if polarity == "bright" else 1 - grey, min_sigma=sigma * 0.7, max_sigma=sigma_high,
                             num_sigma=5, threshold=threshold)
            centres = (blobs[:, [1, 0]] + [x0, y0]) / data.scale if len(blobs) else np.zeros((0, 2))
            candidates[(polarity, threshold)].append({"centres": centres, "classes": np.zeros(len(centres), int),
                                                      "scores": np.ones(len(centres))})
    best = (-1.0, None, None)
    for polarity, threshold in settings:
        f1 = _pooled(_unit_scores_blind(data, candidates[(polarity, threshold)], tuned, radius))["f1"]
        if f1 > best[0]:
            best = (f1, polarity, threshold)
    return candidates[(best[1], best[2])], {"polarity": best[1], "threshold": best[2], "sigma_model_px": round(sigma, 2)}


def _watershed_baseline(data: Data) -> dict:
    """The classical peer of a mask run: Otsu threshold (objects brighter or darker than the background, chosen on
    the training and validation units), then a distance-transform watershed from local maxima at least a third of
    the typical object apart (scikit-image; the CellProfiler / Fiji recipe), inside the annotated window of a partly
    annotated image (the threshold is then the window's). Scored on the test units as the network's masks are: F1 at
    mask IoU 0.5, mean best IoU per annotated object, count error per unit."""
    from scipy import ndimage
    from skimage.feature import peak_local_max
    from skimage.filters import threshold_otsu
    from skimage.segmentation import watershed

    spacing = max(1, int(round(data.size * data.scale / 3)))
    smallest = max(1.0, np.pi * (data.small * data.scale / 4) ** 2)  # a fragment smaller than this is noise
    wanted = sorted({u.item for u in data.units if u.split in ("train", "val", "test")})

    from biolens.readers.annotations import load_mask

    masks = {item: load_mask(data.annotations.items[item]) for item in wanted}  # read once for both polarities

    def segment(item: int, polarity: str) -> np.ndarray:
        scaled = data.scaled[item]
        x0, y0, x1, y1 = data.extent(item)  # only where scored
        grey = ndimage.gaussian_filter(scaled[y0:y1, x0:x1].astype(np.float32).mean(-1), 1.0)
        cut = threshold_otsu(grey)
        foreground = grey > cut if polarity == "bright" else grey < cut
        foreground = ndimage.binary_opening(foreground)
        distance = ndimage.distance_transform_edt(foreground)
        peaks = peak_local_max(distance, min_distance=spacing, labels=ndimage.label(foreground)[0], exclude_border=False)
        markers = np.zeros(distance.shape, np.int32)
        markers[tuple(peaks.T)] = np.arange(1, len(peaks) + 1)
        labels = watershed(-distance, markers, mask=foreground)
        sizes = np.bincount(labels.ravel())
        labels[sizes[labels] < smallest] = 0
        placed = np.zeros(scaled.shape[:2], np.int32)
        placed[y0:y1, x0:x1] = labels
        return _upscale_labels(placed, masks[item].shape)  # at the annotation's scale, once per image

    def scores(labelled: dict[int, np.ndarray], units: list[Unit]) -> dict:
        from biolens.stats import objects as score

        hits, ious, n_truth, n_found, count_errors = 0, [], 0, 0, []
        for unit in units:
            x0, y0, x1, y1 = (int(round(v)) for v in unit.box)
            truth = _relabel(masks[unit.item][y0:y1, x0:x1])
            found = _relabel(labelled[unit.item][y0:y1, x0:x1])
            iou = score.mask_iou(truth, found)
            matched = score.greedy_iou_matches(iou, np.ones(iou.shape[1]), 0.5)
            hits, n_truth, n_found = hits + int(matched.sum()), n_truth + iou.shape[0], n_found + iou.shape[1]
            ious += list(iou.max(axis=1)) if iou.size else [0.0] * iou.shape[0]
            count_errors.append(abs(iou.shape[1] - iou.shape[0]))
        return {"f1_iou50": round(score.prf(hits, n_found, n_truth)["f1"], 4),
                "mean_best_iou": round(float(np.mean(ious)), 4) if ious else None,
                "count_mae": round(float(np.mean(count_errors)), 3) if count_errors else None}

    tuned = [u for u in data.units if u.split in ("train", "val")]
    test = [u for u in data.units if u.split == "test"]
    best = None
    for polarity in ("bright", "dark"):
        labelled = {item: segment(item, polarity) for item in wanted}
        f1 = scores(labelled, tuned)["f1_iou50"]
        if best is None or f1 > best[0]:
            best = (f1, polarity, labelled)
    return {"name": "Otsu threshold + distance-transform watershed (scikit-image)", "polarity": best[1],
            **scores(best[2], test)}


def _unit_scores_blind(data: Data, found, units, radius):
    """Like _unit_scores, with every true object in one class (for class-blind detectors)."""
    from biolens.stats.objects import match_points

    rows = []
    for unit in units:
        item, objects = data.annotations.items[unit.item], found[unit.item]
        t = item.points[_in_box(item.points, unit.box)]
        f = objects["centres"][_in_box(objects["centres"], unit.box)]
        matched, _ = match_points(t, f, radius)
        rows.append({"unit": unit, "per_class": {0: (len(t), len(f), len(matched))}})
    return rows


def _evaluate(run: Run, config: DetectConfig, data: Data, model, state: dict) -> dict:
    from biolens.stats import objects as score

    classes = data.annotations.class_names
    radius = 0.5 * data.size
    peaks, min_distance = _all_peaks(model, data)
    peaks, flips, flips_validation = _with_flips_if_better(model, data, peaks, min_distance, radius)
    threshold, factor, found = calibrated_objects(data, peaks, min_distance, radius)
    test = [u for u in data.units if u.split == "test"]
    rows = _unit_scores(data, found, test, radius)
    blind = _unit_scores_blind(data, found, test, radius)
    overall = _pooled(rows)
    train_peaks = _training_outputs(model, data, peaks, flips)
    methods, count_choice, calibration = _choose_count_method(data, found, peaks, radius, train_peaks)
    true_counts = np.array([sum(t for t, _, _ in r["per_class"].values()) for r in rows])
    peak_counts = np.array([sum(f for _, f, _ in r["per_class"].values()) for r in rows])
    raw_density = _density_counts(data, peaks, test)
    density_counts = None if raw_density is None else corrected_density_counts(
        raw_density, [_unit_area(u) for u in test], classes, calibration)
    counts_per_class = _chosen_counts(methods, classes, _per_class_counts(rows, len(classes), 1), density_counts)
    found_counts = counts_per_class.sum(axis=1)
    metrics = {"kind": data.annotations.kind, "class_names": classes, "threshold": threshold,
               "flips": flips, "flips_validation_f1": flips_validation,
               **({"box_size_factor": factor} if data.annotations.kind == "boxes" else {}),
               "count_method": count_method_name(methods), "count_method_per_class": methods,
               "count_method_validation": count_choice, "density_calibration": calibration,
               "count_mae_peaks": round(float(np.abs(peak_counts - true_counts).mean()), 3),
               **({"count_mae_density": round(float(np.abs(raw_density.sum(axis=1) - true_counts).mean()), 3),
                   "count_mae_density_calibrated": round(float(np.abs(density_counts.sum(axis=1) - true_counts).mean()), 3)}
                  if density_counts is not None else {}),
               "matching_radius_px": round(radius, 2), "object_size_px": round(data.size, 2), "scale": data.scale,
               **{k: round(v, 4) for k, v in overall.items()},
               "f1_ci95": score.bootstrap_ci(rows, lambda sample: _pooled(sample)["f1"], config.seed),
               **score.count_errors(true_counts, found_counts),
               "count_mae_ci95": score.bootstrap_ci(list(np.abs(found_counts - true_counts)), lambda s: float(np.mean(s)),
                                                    config.seed),
               "class_blind_f1": round(_pooled(blind)["f1"], 4),
               "per_class": {}, "n_test_units": len(test), "n_test_objects": int(true_counts.sum()),
               "split": {"unit": "region" if data.region_split else "image",
                         **{s: sum(u.split == s for u in data.units) for s in ("train", "val", "test")}},
               **{k: v for k, v in state.items() if k != "sigma"}}
    for c, label in enumerate(classes):
        t_c = np.array([r["per_class"][c][0] for r in rows])
        f_c = counts_per_class[:, c]
        metrics["per_class"][label] = {**{k: round(v, 4) for k, v in _pooled(rows, c).items()},
                                       **score.count_errors(t_c, f_c), "n_true": int(t_c.sum())}
    if data.annotations.kind == "boxes":
        metrics["boxes"] = _box_scores(data, found, test, classes)
    if data.annotations.kind == "masks":
        metrics["masks"] = _mask_scores(data, peaks, found, threshold, min_distance, test)
        metrics["masks"]["baseline"] = _watershed_baseline(data)
    baseline_found, baseline_settings = _log_baseline(data, radius)
    base_rows = _unit_scores_blind(data, baseline_found, test, radius)
    base_counts = np.array([sum(f for _, f, _ in r["per_class"].values()) for r in base_rows])
    metrics["baseline"] = {"name": "Laplacian-of-Gaussian blob detector (scikit-image), class-blind",
                           **baseline_settings, **{k: round(v, 4) for k, v in _pooled(base_rows).items()},
                           **score.count_errors(true_counts, base_counts)}
    metrics["verdict"] = _verdict(metrics)
    _write_test_outputs(run, data, found, rows, base_counts, test)
    _figures(run, data, found, rows, true_counts, found_counts, base_counts)
    return metrics


def _training_outputs(model, data: Data, peaks, flips: bool):
    """The network's outputs on the images of the training units the density correction is fitted on (None for a
    network without a density head); images already searched are not searched again."""
    if next(p for p in peaks if p is not None).density is None:
        return None
    wanted = {u.item for u in _calibration_units(data)} - {k for k, p in enumerate(peaks) if p is not None}
    more, _ = _all_peaks(model, data, flips=flips, items=wanted) if wanted else ([None] * len(peaks), None)
    return [p if p is not None else m for p, m in zip(peaks, more)]


def calibrated_objects(data: Data, peaks, min_distance: float, radius: float):
    """(threshold, box size factor, objects per image): the score threshold chosen on the validation units, and for
    box runs the size factor fitted there first (the peaks' sizes are scaled in place), then the threshold again."""
    threshold = _choose_threshold(data, peaks, min_distance, radius)
    factor = [1.0, 1.0]
    if data.annotations.kind == "boxes":  # sizes first at the threshold found, then the threshold again with them
        factor = size_factor(data, peaks, min_distance, radius, threshold)
        for p in peaks:
            if p is not None:
                calibrate_sizes(p, {"box_size_factor": factor})
        threshold = _choose_threshold(data, peaks, min_distance, radius)
    overlap = overlap_of(data.annotations.kind)
    return threshold, factor, _found_objects(peaks, threshold, min_distance, overlap, data)


def _density_counts(data: Data, peaks, units: list[Unit]) -> np.ndarray | None:
    """(units, classes) objects counted by the density head in each unit; None for models without one."""
    if next(p for p in peaks if p is not None).density is None:
        return None
    raw = np.array([peaks[u.item].density_count(tuple(np.array(u.box) * data.scale)) for u in units], float)
    return raw.reshape(len(units), len(data.annotations.class_names))


def corrected_density_counts(counts: np.ndarray, areas, classes: list[str], calibration: dict) -> np.ndarray:
    """(units, classes) density sums, each class corrected by its line in `calibration` (classes without one as
    they are); `areas` in original pixels per unit (evaluation units, or whole images in predict)."""
    corrected = np.array(counts, float)
    for c, label in enumerate(classes):
        corrected[:, c] = calibrated_density(corrected[:, c], areas, calibration.get(label))
    return corrected


def _unit_area(unit: Unit) -> float:
    x0, y0, x1, y1 = unit.box
    return float((x1 - x0) * (y1 - y0))


def calibrated_density(counts, areas, calibration: list[float] | None):
    """Density sums corrected by the line `fit_density_calibration` kept: slope x sum + objects per 10,000 pixels x
    area (never below 0). None leaves the sums as they are."""
    if not calibration:
        return counts
    slope, per_area = calibration
    return np.maximum(slope * np.asarray(counts, float) + per_area * np.asarray(areas, float) / 1e4, 0.0)


def fit_density_calibration(fit_on: tuple, check_on: tuple) -> tuple[list[float] | None, float]:
    """(slope and objects per 10,000 px, validation MAE) of `truth ~ slope x density + rate x area` fitted on the
    training units (`fit_on` = density sums, areas, true counts) and kept only when it counts the validation units
    (`check_on`, never used in the fit) at least CALIBRATION_GAIN better than the raw sums; else (None, raw MAE).
    Why: a density head trained with squared error shrinks towards the typical crowding, so it undercounts crowded
    images and overcounts sparse ones, on the images it was trained on as on new ones (vgg_cells: slope 1.14 and 1.15,
    error against true count r = -0.91)."""
    density, areas, truth = (np.asarray(v, float) for v in fit_on)
    val_density, val_areas, val_truth = (np.asarray(v, float) for v in check_on)
    raw_mae = float(np.abs(val_density - val_truth).mean()) if len(val_truth) else 0.0
    if len(truth) < MIN_CALIBRATION_UNITS or not len(val_truth) or np.ptp(density) <= 0:
        return None, raw_mae
    design = np.stack([density, areas / 1e4], axis=1)
    coef = np.linalg.lstsq(design, truth, rcond=None)[0]
    fitted = [round(float(np.clip(coef[0], 0.5, 2.0)), 5), round(float(coef[1]), 5)]
    checked = float(np.abs(calibrated_density(val_density, val_areas, fitted) - val_truth).mean())
    return (fitted, checked) if checked < (1 - CALIBRATION_GAIN) * raw_mae else (None, raw_mae)


def _calibration_units(data: Data) -> list[Unit]:
    """The training units the density correction is fitted on (an even spread of at most MAX_CALIBRATION_UNITS)."""
    train = [u for u in data.units if u.split == "train"]
    if len(train) > MAX_CALIBRATION_UNITS:
        train = [train[k] for k in np.linspace(0, len(train) - 1, MAX_CALIBRATION_UNITS).astype(int)]
    return train


def _unit_truth(data: Data, units: list[Unit]) -> np.ndarray:
    """(units, classes) annotated objects whose centre lies in each unit."""
    classes = data.annotations.class_names
    counts = np.zeros((len(units), len(classes)))
    for k, unit in enumerate(units):
        item = data.annotations.items[unit.item]
        inside = _in_box(item.points, unit.box)
        for label in np.asarray(item.labels, object)[inside]:
            counts[k, classes.index(label)] += 1
    return counts


def _choose_count_method(data: Data, found, peaks, radius: float, train_peaks=None) -> tuple[dict, dict, dict]:
    """Per class, 'peaks' (count the objects found) or 'density' (sum the density head; straight-line corrected
    where a fit on the training units counts the validation units better), whichever has the smaller mean absolute
    count error on the validation units; peaks unless density is clearly better, since then every counted object is
    also a row of objects.csv. Per class, because one size does not fit all: on the BCCD smears the density counted
    the many touching red cells better, the objects found counted the few large white cells and the small platelets
    better (docs/performance.md). `train_peaks`: the network's outputs on the training images (None: no correction)."""
    classes = data.annotations.class_names
    val = [u for u in data.units if u.split == "val"]
    density = _density_counts(data, peaks, val)
    areas = np.array([_unit_area(u) for u in val])
    rows = _unit_scores(data, found, val, radius)
    truth, by_peaks = _per_class_counts(rows, len(classes), 0), _per_class_counts(rows, len(classes), 1)
    fit_units = _calibration_units(data) if train_peaks is not None and density is not None else []
    fit_density = _density_counts(data, train_peaks, fit_units) if fit_units else None
    fit_truth, fit_areas = _unit_truth(data, fit_units), np.array([_unit_area(u) for u in fit_units])
    methods, choice, calibration = {}, {"n_units": len(val)}, {}
    for c, label in enumerate(classes):
        peaks_mae = float(np.abs(by_peaks[:, c] - truth[:, c]).mean()) if len(rows) else 0.0
        entry = {"peaks_mae": round(peaks_mae, 3)}
        methods[label] = "peaks"
        if density is not None:
            density_mae = float(np.abs(density[:, c] - truth[:, c]).mean())
            entry["density_mae"] = round(density_mae, 3)
            if fit_density is not None:
                fitted, checked = fit_density_calibration((fit_density[:, c], fit_areas, fit_truth[:, c]),
                                                          (density[:, c], areas, truth[:, c]))
                if fitted is not None:
                    calibration[label], density_mae = fitted, checked
                    entry["calibrated_density_mae"] = round(checked, 3)
            methods[label] = "density" if density_mae < 0.9 * peaks_mae else "peaks"
        choice[label] = entry
    return methods, choice, calibration


def _per_class_counts(rows: list[dict], n_classes: int, which: int) -> np.ndarray:
    """(units, classes) from _unit_scores rows: which = 0 annotated, 1 found, 2 matched."""
    return np.array([[r["per_class"][c][which] for c in range(n_classes)] for r in rows], float).reshape(-1, n_classes)


def count_methods_of(metrics: dict, classes: list[str]) -> dict:
    """A run's count method per class (runs made before the per-class choice have one method for all)."""
    return metrics.get("count_method_per_class") or dict.fromkeys(classes, metrics.get("count_method", "peaks"))


def count_method_name(methods: dict) -> str:
    """One word for a run's per-class count methods: 'density', 'peaks', or 'per class' when they differ."""
    kinds = set(methods.values())
    return kinds.pop() if len(kinds) == 1 else "per class"


def _chosen_counts(methods: dict, classes: list[str], by_peaks: np.ndarray, by_density: np.ndarray | None) -> np.ndarray:
    """(units, classes) counts, each class by its chosen method."""
    if by_density is None:
        return by_peaks
    use_density = np.array([methods.get(label) == "density" for label in classes])
    return np.where(use_density[None, :], by_density, by_peaks)


def overlap_of(kind: str) -> float:
    """The box overlap beyond which `select` drops the weaker of two boxes: box runs only (a point or mask run's size
    head is not trained, so its boxes mean nothing)."""
    return BOX_OVERLAP if kind == "boxes" else 0.0


def _box_matches(data: Data, found, units, iou_threshold: float) -> tuple[int, int, int]:
    """(true positives, found, true) over `units` and classes, boxes matched greedily at `iou_threshold`."""
    from biolens.stats import objects as score

    classes = data.annotations.class_names
    tp = n_f = n_t = 0
    for unit in units:
        item = data.annotations.items[unit.item]
        labels = np.array([classes.index(label) for label in item.labels])
        truth_in = _in_box(item.points, unit.box)
        found_in = _in_box(found[unit.item]["centres"], unit.box)
        for c in range(len(classes)):
            t = item.boxes[truth_in & (labels == c)]
            pick = found_in & (found[unit.item]["classes"] == c)
            hits = score.greedy_iou_matches(score.box_iou(t, found[unit.item]["boxes"][pick]),
                                            found[unit.item]["scores"][pick], iou_threshold)
            tp, n_f, n_t = tp + int(hits.sum()), n_f + int(pick.sum()), n_t + len(t)
    return tp, n_f, n_t


def _box_scores(data: Data, found, units, classes) -> dict:
    from biolens.stats import objects as score

    result = {}
    for threshold in (0.5, 0.4):
        result[f"f1_iou{int(threshold * 100)}"] = round(score.prf(*_box_matches(data, found, units, threshold))["f1"], 4)
    aps = {}
    for c, label in enumerate(classes):
        hits_all, scores_all, n_truth = [], [], 0
        for unit in units:
            item = data.annotations.items[unit.item]
            labels = np.array([classes.index(x) for x in item.labels])
            t = item.boxes[_in_box(item.points, unit.box) & (labels == c)]
            pick = _in_box(found[unit.item]["centres"], unit.box) & (found[unit.item]["classes"] == c)
            s = found[unit.item]["scores"][pick]
            hits_all.append(score.greedy_iou_matches(score.box_iou(t, found[unit.item]["boxes"][pick]), s, 0.5))
            scores_all.append(s)
            n_truth += len(t)
        aps[label] = score.average_precision(np.concatenate(hits_all), np.concatenate(scores_all), n_truth)
    valid = [v for v in aps.values() if np.isfinite(v)]
    result["ap50"] = round(float(np.mean(valid)), 4) if valid else None
    result["ap50_per_class"] = {k: (round(v, 4) if np.isfinite(v) else None) for k, v in aps.items()}
    return result


def _mask_scores(data: Data, peaks, found, threshold, min_distance, units) -> dict:
    from biolens.inference.tiles import instances, select
    from biolens.readers.annotations import load_mask
    from biolens.stats import objects as score

    hits_all, scores_all, ious, n_truth = [], [], [], 0
    for unit in units:
        item = data.annotations.items[unit.item]
        p = peaks[unit.item]
        chosen = select(p, threshold, min_distance)
        truth = load_mask(item)
        predicted = _upscale_labels(instances(p, chosen), truth.shape)
        x0, y0, x1, y1 = (int(round(v)) for v in unit.box)
        iou = score.mask_iou(_relabel(truth[y0:y1, x0:x1]), _relabel(predicted[y0:y1, x0:x1]))
        found_ids = np.unique(predicted[y0:y1, x0:x1][predicted[y0:y1, x0:x1] > 0])  # label k+1 = chosen[k]
        s = p.scores[chosen][found_ids - 1] if len(found_ids) else np.zeros(0)
        hits_all.append(score.greedy_iou_matches(iou, s, 0.5))
        scores_all.append(s)
        if iou.size:
            ious += list(iou.max(axis=1))
        n_truth += iou.shape[0]
    hits, scores = np.concatenate(hits_all), np.concatenate(scores_all)
    return {"ap50": round(score.average_precision(hits, scores, n_truth), 4),
            "f1_iou50": round(score.prf(int(hits.sum()), len(hits), n_truth)["f1"], 4),
            "mean_best_iou": round(float(np.mean(ious)), 4) if ious else None}


def _relabel(labels: np.ndarray) -> np.ndarray:
    ids = np.unique(labels)
    ids = ids[ids > 0]
    lookup = np.zeros(int(labels.max()) + 1, np.int32)
    lookup[ids] = np.arange(1, len(ids) + 1)
    return lookup[labels]


def _upscale_labels(labels: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.fromarray(labels.astype(np.int32)).resize((shape[1], shape[0]), Image.Resampling.NEAREST))


def _verdict(metrics: dict) -> str:
    net, base = metrics["class_blind_f1"], metrics["baseline"]["f1"]
    words = (f"On {metrics['n_test_units']} held-out {'images' if metrics['split']['unit'] == 'image' else 'regions'} "
             f"({metrics['n_test_objects']} objects) the network finds objects with F1 {metrics['f1']:.2f} and a mean "
             f"count error of {metrics['count_mae']:.1f} per unit ({metrics['count_error_pct']:.0f}%"
             + (", counted by the density head, which counted the validation units better than the objects found"
                if metrics.get("count_method") == "density" else
                ", each class counted by the density head or by the objects found, whichever counted it better on "
                "the validation units" if metrics.get("count_method") == "per class" else "") + "). ")
    if net >= base + 0.05:
        words += f"It is clearly better than the classical blob detector (F1 {base:.2f}, classes ignored)."
    elif net > base - 0.05:
        words += (f"The classical blob detector does about as well (F1 {base:.2f}, classes ignored): the network "
                  "adds little here beyond telling classes apart.")
    else:
        words += (f"The classical blob detector does better (F1 {base:.2f}): prefer it, or annotate more images.")
    outlines = (metrics.get("masks") or {}).get("baseline")
    if outlines:
        net_masks, base_masks = metrics["masks"]["f1_iou50"], outlines["f1_iou50"]
        comparison = ("clearly better than" if net_masks >= base_masks + 0.05 else
                      "about as good as" if net_masks > base_masks - 0.05 else "worse than")
        words += (f" Its outlines (F1 {net_masks:.2f} at mask IoU 0.5) are {comparison} a classical threshold and "
                  f"watershed ({base_masks:.2f})" + (": prefer that, or annotate more images." if comparison == "worse than"
                                                     else "."))
    if metrics["n_test_units"] < FEW_TEST_UNITS:
        unit = "images" if metrics["split"]["unit"] == "image" else "regions"
        words += (f" Only {metrics['n_test_units']} {unit} were held out for the test: the intervals resample those "
                  f"{metrics['n_test_units']} and are rough, so read these figures as a first look; annotating more "
                  "images gives a firmer test.")
    return words


# -- outputs -----------------------------------------------------------------------------------------------------
def _write_test_outputs(run: Run, data: Data, found, rows, base_counts, test) -> None:
    classes = data.annotations.class_names
    object_rows = []
    for k, unit in enumerate(test):
        objects = found[unit.item]
        inside = np.flatnonzero(_in_box(objects["centres"], unit.box))
        for j in inside:
            x, y = objects["centres"][j]
            object_rows.append([k, str(data.annotations.items[unit.item].image), classes[objects["classes"][j]],
                                f"{objects['scores'][j]:.4f}", f"{x:.1f}", f"{y:.1f}"])
    write_csv(run.path / "test_objects.csv", ["unit", "image", "label", "score", "x", "y"], object_rows)
    count_rows = []
    for k, (unit, row) in enumerate(zip(test, rows)):
        for c, (t, f, m) in row["per_class"].items():
            count_rows.append([k, data.annotations.items[unit.item].image.name, classes[c], t, f, m])
    write_csv(run.path / "test_counts.tsv", ["unit", "image", "label", "true", "found", "matched"], count_rows,
              delimiter="\t")
    write_csv(run.path / "splits.csv", ["unit", "image", "xmin", "ymin", "xmax", "ymax", "split"],
              [[k, str(data.annotations.items[u.item].image), *[round(v, 1) for v in u.box], u.split]
               for k, u in enumerate(data.units)])


def _figures(run: Run, data: Data, found, rows, true_counts, found_counts, base_counts) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figures = run.path / "figures"
    fig, axis = plt.subplots(figsize=(4.5, 4.2))
    top = max(1, int(max(true_counts.max(initial=0), found_counts.max(initial=0), base_counts.max(initial=0))))
    axis.plot([0, top], [0, top], color="#999", lw=1, label="perfect")
    axis.scatter(true_counts, found_counts, s=22, label="network", color="#0969da")
    axis.scatter(true_counts, base_counts, s=18, marker="x", label="blob detector", color="#bc4c00")
    axis.set_xlabel("annotated objects per held-out unit")
    axis.set_ylabel("objects found")
    axis.legend(loc="upper left", frameon=False)
    fig.tight_layout()
    _save(fig, figures / "counts.png")
    errors = np.abs(found_counts - true_counts) / np.maximum(true_counts, 1)
    order = np.argsort(errors)
    picks = [("best", order[0]), ("worst", order[-1])] if len(order) > 1 else [("only", order[0])]
    fig, axes = plt.subplots(1, len(picks), figsize=(5.2 * len(picks), 5))
    for axis, (name, k) in zip(np.atleast_1d(axes), picks):
        unit = rows[k]["unit"]
        _draw_unit(axis, data, found, unit)
        axis.set_title(f"{name}: {data.annotations.items[unit.item].image.name}\n"
                       f"{int(true_counts[k])} annotated, {int(found_counts[k])} found", fontsize=9)
    fig.tight_layout()
    _save(fig, figures / "overlays.png")


def _draw_unit(axis, data: Data, found, unit: Unit) -> None:
    """Annotated objects (green rings), found ones (magenta crosses), in the unit's part of the image."""
    from biolens.stats.objects import match_points

    item = data.annotations.items[unit.item]
    x0, y0, x1, y1 = (int(round(v)) for v in unit.box)
    axis.imshow(data.images[unit.item][y0:y1, x0:x1, :3])
    truth = item.points[_in_box(item.points, unit.box)]
    objects = found[unit.item]["centres"][_in_box(found[unit.item]["centres"], unit.box)]
    matched_t, matched_f = match_points(truth, objects, 0.5 * data.size)
    missed = np.setdiff1d(np.arange(len(truth)), matched_t)
    extra = np.setdiff1d(np.arange(len(objects)), matched_f)
    marker = max(10, min(120, (data.size * 300 / max(x1 - x0, 1)) ** 2))
    axis.scatter(truth[:, 0] - x0, truth[:, 1] - y0, s=marker, facecolors="none", edgecolors="#2da44e", lw=1.2,
                 label="annotated")
    axis.scatter(objects[:, 0] - x0, objects[:, 1] - y0, s=20, marker="+", color="#bf3989", label="found")
    axis.scatter(truth[missed, 0] - x0, truth[missed, 1] - y0, s=marker, facecolors="none", edgecolors="#cf222e",
                 lw=1.8, label="missed")
    axis.scatter(objects[extra, 0] - x0, objects[extra, 1] - y0, s=40, marker="x", color="#cf222e", label="false")
    axis.legend(loc="lower right", fontsize=7, framealpha=0.8)
    axis.axis("off")


def _save(fig, path: Path) -> None:
    import matplotlib.pyplot as plt

    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)


def most_epochs(config: DetectConfig, data: Data) -> int:
    """--epochs, or with 0 the automatic choice: more epochs where many annotated objects support longer training.

    Measured (docs/performance.md): 80 epochs instead of 40 cut the vgg_cells count error from 3.55 to 2.78 (~4,700
    training cells) and raised BCCD's point F1 from 0.736 to 0.767 (~2,700 objects); on tree crowns (~90 training
    crowns, best epoch ~21) the longer cosine schedule did worse; a decay kept to 40 epochs with 80 allowed gave
    vgg_cells nothing, so the schedule follows the epochs chosen here.
    """
    if config.epochs:
        return config.epochs
    return EPOCHS_MANY_OBJECTS if training_objects(data) >= MANY_OBJECTS else EPOCHS


def _body(run: Run, config: DetectConfig, data: Data) -> bool:
    import dataclasses

    from biolens.models.describe import describe_model

    for note in data.notes:
        console.say(f"note: {note}")
    run.update_info(warnings=data.notes)
    if not config.epochs:
        config = dataclasses.replace(config, epochs=most_epochs(config, data))
        console.say(f"at most {config.epochs} epochs (chosen from the annotated training objects; --epochs sets it)")
    run.update_info(max_epochs=config.epochs)
    started = time.perf_counter()
    networks = how_many_networks(config, data)
    if networks > 1 and not config.networks:
        console.say(f"{networks} networks trained and averaged (fewer than {FEW_OBJECTS} annotated training objects, "
                    "where one network's result depends on its random start; --networks 1 trains one)")
    model, state = _train_networks(run, config, data, networks)
    metrics = _evaluate(run, config, data, model, state)
    metrics["train_longer"] = _train_longer_advice(state, config.epochs)
    _learning_curve(run, config, data, state, metrics)
    model, metrics["final_model"] = _refit_on_every_region(run, config, data, model, state)
    with atomic_path(run.path / "model.keras") as tmp:
        model.save(tmp)
    write_json(run.path / "metrics.json", metrics)
    timings = dict(run.info.get("timings") or {})
    timings.update(training_seconds=state["train_seconds"], train_and_evaluate_seconds=round(time.perf_counter() - started, 1))
    run.update_info(model_summary=describe_model(model), timings=timings, heat_sigma=state["sigma"])
    console.say(metrics["verdict"])
    if metrics.get("train_longer"):
        console.say(metrics["train_longer"])
    return True


def _train_longer_advice(state: dict, epochs: int) -> str | None:
    """A sentence when the validation loss was still improving when the epochs ran out (best epoch in the last 15%).

    The automatic epochs (`most_epochs`) suit the sets measured, not every set: a run that was still improving says
    so, with the flag that trains longer (the plates of docs/performance.md stopped at epoch 40 with their best at 39)."""
    if state["stopped_by"] != "all epochs done" or state["best_epoch"] < 0.85 * state["epochs_run"]:
        return None
    return (f"The validation loss was still improving at the end (best epoch {state['best_epoch']} of "
            f"{state['epochs_run']}): training longer may find and count better; run again with --epochs {2 * epochs}.")


def _learning_curve(run: Run, config: DetectConfig, data: Data, state: dict, metrics: dict) -> None:
    """Is my annotation enough? metrics["learning_curve"] and its figure, or the reason it was not run."""
    from biolens.report import figures
    from biolens.tasks import detect_curve

    skipped = detect_curve.plan(config.learning_curve, data, state, run, config.time_budget)
    if skipped:
        metrics["learning_curve_skipped"] = skipped
        metrics["learning_curve_expected_seconds"] = round(detect_curve.expected_seconds(state), 1)
        console.say(f"learning curve {skipped}")
        return
    curve = detect_curve.learning_curve(run, config, data, metrics)
    metrics["learning_curve"] = curve
    figures.learning_curve(curve, run.path / "figures" / "learning_curve.png")
    console.say(curve["advice"])


def add_learning_curve(run: Run, config: DetectConfig, metrics: dict) -> dict:
    """The learning curve of a finished detection run (`biolens learning-curve RUN`), on its own units."""
    import dataclasses

    from biolens.report import figures
    from biolens.tasks import detect_curve

    data = lifecycle.prepared_again(_prepare, config, run)
    config = dataclasses.replace(config, epochs=most_epochs(config, data))  # as the run itself trained
    refused = detect_curve.plan("on", data, metrics, run, 0.0)  # only too few training units can refuse it here
    if refused:
        raise InputError(f"{run.path}: learning curve {refused}.")
    curve = detect_curve.learning_curve(run, config, data, metrics)
    figures.learning_curve(curve, run.path / "figures" / "learning_curve.png")
    return curve


def _refit_on_every_region(run: Run, config: DetectConfig, data: Data, model, state: dict):
    """Few images split into regions (one partly annotated tile, say): once the held-out model is scored, the network
    is trained again on every annotated region, test and validation ones too, with the held-out model's recipe (its
    learning-rate schedule, stopped at its best epoch, so the validated threshold still fits), and that is the model
    delivered; every figure stays the held-out model's (said in the report). Holding
    out 4 of 12 regions costs a third of the few objects there are; with many images a fifth is held out and the
    held-out model is delivered as it is. Not when --time-budget would not cover the second training."""
    if not data.region_split:
        return model, {"refit": False, "why": "held-out whole images: the model scored is the model delivered"}
    best, ran = [max(1, b) for b in state["member_best_epochs"]], state["member_epochs_run"]
    expected = state["train_seconds"] * float(np.mean([b / max(r, 1) for b, r in zip(best, ran)]))
    if config.time_budget and lifecycle.elapsed_seconds(run) + expected * 1.4 > config.time_budget:
        return model, {"refit": False, "why": "--time-budget leaves no time to train again on every region"}
    final, final_state = _train_networks(run, config, data, len(best), final_epochs=best)
    if final_state["member_epochs_run"] != best:  # stopped early (time budget): the scored model is the safer one
        return model, {"refit": False, "why": f"the second training stopped after {final_state['member_epochs_run']} "
                                              f"epochs of {best}"}
    n_objects = data.annotations.n_objects
    networks = "" if len(best) == 1 else f"each of the {len(best)} networks "
    return final, {"refit": True, "epochs": max(best), "member_epochs": best, "units": len(data.units),
                   "objects": n_objects,
                   "train_seconds": final_state["train_seconds"],
                   "why": f"trained again on all {len(data.units)} annotated regions ({n_objects} objects), "
                          f"{networks}for as many epochs as it needed when held out "
                          f"({', '.join(map(str, best))}); the figures are those of the model that never saw the "
                          "test regions"}


def _calibration_sentence(metrics: dict) -> str:
    """Methods' words for the straight-line correction of density counts, where one was kept."""
    methods = count_methods_of(metrics, metrics.get("class_names") or [])
    used = {label: fit for label, fit in (metrics.get("density_calibration") or {}).items()
            if methods.get(label) == "density"}
    if not used:
        return ""
    fits = "; ".join(f"{label}: {a:.3g} x sum {b:+.3g} per 10,000 px" for label, (a, b) in used.items())
    return ("Density sums were corrected by a straight line (count = slope x sum + objects per area) fitted on the "
            "training units and kept because it counted the validation units at least "
            f"{CALIBRATION_GAIN:.0%} better than the raw sums ({fits}). ")


def methods_text(info: dict, metrics: dict, network: str) -> str:
    """Methods paragraph of a detection run, from the recorded settings."""
    config, versions = info["config"], info.get("versions", {})
    kind = info.get("kind", metrics.get("kind"))
    split = metrics.get("split", {})
    units = ("whole images" + (f" grouped by '{config['group_column']}'" if config.get("group_column") else "")
             if split.get("unit") == "image" else "rectangular regions of the annotated images")
    heads = {"points": "a centre heat-map head", "boxes": "a centre heat-map head and a box-size head (log width and height)",
             "masks": "a centre heat-map head and a foreground head (instances separated by watershed from the centres)"}[kind]
    return (
        f"Objects were detected with biolens {versions.get('biolens', '')} (TensorFlow {versions.get('tensorflow', '')}, "
        f"Keras {versions.get('keras', '')}, scikit-image {versions.get('scikit-image', '')}). The typical object was "
        f"{info.get('object_size')} px across ({'given' if config.get('object_size') else 'measured from the annotations'}); "
        f"images were scaled by {info.get('scale')} so that the smaller objects span about {TARGET_SIZE:.0f} px. "
        f"{split.get('train')} training, {split.get('val')} validation and {split.get('test')} test units were "
        f"{units}. We trained {network} with {heads} from random initialisation on random {TRAIN_TILE} px tiles "
        f"(rotations, flips, brightness, contrast and colour-cast jitter), CenterNet focal loss on Gaussian centre targets "
        f"(sigma {info.get('heat_sigma', 0):.2f} px), AdamW (peak learning rate {config['learning_rate']}, cosine "
        f"decay), at most {info.get('max_epochs') or config['epochs']} epochs with early stopping on the validation "
        f"loss (patience "
        f"{config['patience']}). Prediction runs over overlapping tiles and keeps local maxima of the heat map in each "
        f"tile's core; the score threshold ({metrics.get('threshold')}) was chosen on the validation units for the best "
        + ("box F1 at IoU 0.4, and the size head's boxes were scaled by "
           f"{' x '.join(str(v) for v in metrics['box_size_factor'])} (width x height; the geometric median of annotated "
           "over found sizes of the validation objects). " if "box_size_factor" in metrics else "F1. ")
        + ("Counts per unit were, for each class, the sum of a density head (unit-mass Gaussians per object, squared "
           "error, as in FCRN) where it counted that class in the validation units at least 10% better than the "
           "objects found, else the objects found ("
           + ", ".join(f"{k}: {v}" for k, v in metrics["count_method_per_class"].items()) + "). "
           if metrics.get("count_method") == "per class" else
           "Counts per unit were the sum of a density head (unit-mass Gaussians per object, squared error, as in "
                   "FCRN), chosen because it counted the validation units better than the objects found. "
                   if metrics.get("count_method") == "density" else
                   "Counts per unit were the number of objects found (a density head was also trained; it counted the "
                   "validation units no better). " if "count_mae_density" in metrics else "")
        + _calibration_sentence(metrics)
        + f"Test objects were matched one-to-one (Hungarian) within {metrics.get('matching_radius_px')} px of an "
        f"annotated centre; count errors are per test unit; confidence intervals are 95% percentile bootstrap "
        f"intervals over test units (1,000 resamples). The classical reference is scikit-image's Laplacian-of-Gaussian "
        f"blob detector at the object scale, its polarity and threshold chosen on the training and validation units. "
        + ("Learning curve: the network was trained by the same rules on nested quarters and halves of the training "
           "units (two draws each), each scored on the same test units, and an inverse power law was fitted to F1 "
           "against the number of annotated training objects (95% ranges from a wild bootstrap of its residuals). "
           if metrics.get("learning_curve") else "")
        + (f"{metrics['networks']} networks were trained alike from random seeds "
           + ", ".join(str(info.get("seed", 0) + MEMBER_SEED_STEP * k) for k in range(metrics["networks"]))
           + " and their outputs averaged ("
           + ("as asked" if config.get("networks") else f"fewer than {FEW_OBJECTS} annotated training objects, "
                                                        "where a single network's result depends on its random start")
           + "). " if metrics.get("networks", 1) > 1 else "")
        + (f"Once scored, the network was {metrics['final_model']['why']}; that network is the one saved. "
           if (metrics.get("final_model") or {}).get("refit") else "")
        + f"Random seed {info.get('seed')}."
    )
