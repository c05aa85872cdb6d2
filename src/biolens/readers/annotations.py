"""Object annotations on whole images, in the formats biologists export, read into one shape.

Accepted (detected by content, `--kind auto` picks points, boxes or masks from what is found):
- a CSV/TSV of points `image,x,y[,label]` or boxes `image,xmin,ymin,xmax,ymax[,label]` (columns by name, any
  order; napari's points CSV `axis-0,axis-1` = y,x);
- a folder of Pascal VOC XML files (LabelImg, CVAT, DeepForest), images beside them or in --images;
- a COCO JSON (boxes, polygons or RLE masks);
- a folder with `images/` and `masks/` (integer label images, 0 = background) or `dots/` (non-zero pixels mark
  one object each).
Every problem is one InputError naming the file and the row (or object) and what to do; images without any
annotation are listed as not used, never read as "no objects".
"""
from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from biolens.errors import InputError
from biolens.readers.image_decode import IMAGE_SUFFIXES

ANNOTATION_SUFFIXES = (".xml", ".json")  # Pascal VOC, COCO; points and boxes come as tables (readers/tables.py)
IMAGE_COLUMNS = ("image", "image_path", "image_name", "filename", "file_name", "file", "path", "img")
LABEL_COLUMNS = ("label", "class", "name", "category", "species", "type")
BOX_COLUMNS = ("xmin", "ymin", "xmax", "ymax")
DEFAULT_LABEL = "object"
SPLIT_NAMES = {"train": "train", "training": "train", "val": "val", "validation": "val", "valid": "val",
               "test": "test", "testing": "test"}
EDGE_TOLERANCE = 2.0  # pixels a box or point may lie outside the image (rounding in annotation tools): clipped


@dataclass
class ImageObjects:
    """The annotated objects of one image, in its original pixel coordinates."""
    image: Path
    points: np.ndarray                   # (n, 2) x, y centres
    labels: list[str]
    boxes: np.ndarray | None = None      # (n, 4) xmin, ymin, xmax, ymax
    mask: np.ndarray | Path | None = None  # integer instance labels (0 = background), or the file holding them
    group: str = ""
    origin: str = ""
    split: str = ""                      # train / val / test when the annotations fix the split (a 'split' column)


@dataclass
class Annotations:
    kind: str                            # points, boxes or masks
    items: list[ImageObjects]
    class_names: list[str]
    source: str
    notes: list[str] = field(default_factory=list)
    unused_images: list[str] = field(default_factory=list)
    # a dot image marks every object of its image (the counting benchmarks' density ground truth: unmarked = no
    # object), so dots in one part of it are never read as a partial annotation (tissue filling part of a slide,
    # colonies on one side of a plate); a mask image may be a QuPath export of one outlined region, so not masks
    whole_images: bool = False

    @property
    def n_objects(self) -> int:
        return int(sum(len(item.points) for item in self.items))

    def sizes(self) -> np.ndarray:
        """Object diameters in pixels where the annotation gives them (boxes: sqrt of the area; masks: equivalent
        circle diameter); empty for points."""
        if self.kind == "boxes":
            boxes = np.concatenate([i.boxes for i in self.items if len(i.boxes)]) if self.n_objects else np.zeros((0, 4))
            return np.sqrt(np.clip(boxes[:, 2] - boxes[:, 0], 1, None) * np.clip(boxes[:, 3] - boxes[:, 1], 1, None))
        if self.kind == "masks":
            return np.array([d for item in self.items for d in mask_diameters(load_mask(item))], dtype=float)
        return np.zeros(0)


def read_annotations(path: Path | str, images: Path | str | None = None, kind: str = "auto",
                     group_column: str | None = None) -> Annotations:
    """Read any accepted annotation format; `images` is the folder image names are relative to."""
    path = Path(path)
    images = Path(images) if images else None
    if not path.exists():
        raise InputError(f"{path}: no such file or folder. Give a points/boxes CSV, a VOC folder, a COCO JSON or a "
                         "folder with images/ and masks/ (or dots/).")
    if images is not None and not images.exists():
        raise InputError(f"--images {images}: no such folder.")
    if group_column and not _is_table(path):
        raise InputError(f"--group-column {group_column}: groups can only be given as a column of a CSV of points or "
                         f"boxes; {path.name} is not one.")
    if path.is_dir():
        if (path / "images").is_dir() and ((path / "masks").is_dir() or (path / "dots").is_dir()):
            result = _read_label_folders(path)
        elif any(path.glob("*.xml")):
            result = _read_voc(path, images)
        else:
            raise InputError(f"{path}: a folder without Pascal VOC .xml files or images/ + masks/ (or dots/) "
                             "sub-folders; see biolens detect --help for the accepted annotations.")
    elif path.suffix.lower() == ".json":
        result = _read_coco(path, images)
    elif _is_table(path):
        result = _read_table(path, images, group_column)
    else:
        raise InputError(f"{path}: not an annotation format biolens reads (CSV/TSV, VOC folder, COCO .json, or a folder "
                         "with images/ and masks/).")
    if kind != "auto" and kind != result.kind:
        convertible = {("masks", "boxes"), ("masks", "points"), ("boxes", "points")}
        if (result.kind, kind) not in convertible:
            raise InputError(f"--kind {kind}: {path.name} holds {result.kind}, which cannot be turned into {kind}.")
        result.notes.append(f"{result.kind} used as {kind} (--kind {kind})")
        if kind == "points":
            for item in result.items:
                item.boxes, item.mask = None, None
        elif kind == "boxes":
            for item in result.items:
                item.boxes, item.mask = _boxes_of_mask(load_mask(item)), None
        result.kind = kind
    if not result.items:
        raise InputError(f"{path}: no annotated image found.")
    if result.n_objects == 0:
        raise InputError(f"{path}: no objects are annotated; mark at least a few objects in each training image.")
    counts = Counter(label for item in result.items for label in item.labels)
    rare = [f"'{label}' ({n})" for label, n in counts.items() if n < 2]
    if rare:
        raise InputError(f"{path}: label(s) {', '.join(rare)} mark a single object; a class needs several examples "
                         "to learn from and to test on. Annotate more or merge the label.")
    return result


def read_annotated_images(annotations: Annotations, stack: str = "refuse") -> list[np.ndarray]:
    """The annotated images, whole, as (H, W, C) uint8; one line for an unreadable one or mixed channel counts.
    stack: what a multi-page TIFF's pages are (`image_decode`: refused unless said)."""
    from biolens.readers.image_decode import DecodeError, read_whole

    images = []
    for item in annotations.items:
        try:
            images.append(read_whole(item.image, stack=stack))
        except DecodeError as error:
            raise InputError(f"{item.image}: {error}.") from None
    channels = {image.shape[2] for image in images}
    if len(channels) > 1:
        raise InputError(f"{annotations.source}: images have different channel counts ({sorted(channels)}); "
                         "convert them to one format (e.g. RGB).")
    return images


def _is_table(path: Path) -> bool:
    from biolens.readers.tables import is_table

    return path.is_file() and is_table(path)


def _find_image(name: str, folders: list[Path]) -> Path | None:
    """An image by its name, or by its stem with any image suffix (VOC files often name .tif for a .png)."""
    name = name.strip().replace("\\", "/")
    for folder in folders:
        candidate = folder / name
        if candidate.is_file():
            return candidate
        base = folder / Path(name).name
        if base.is_file():
            return base
        for suffix in IMAGE_SUFFIXES:
            alternative = base.with_suffix(suffix)
            if alternative.is_file():
                return alternative
    return None


def image_size(path: Path) -> tuple[int, int]:
    """(width, height) from the header."""
    from biolens.readers.image_decode import header_size

    size = header_size(path)
    if size is None:
        raise InputError(f"{path}: not a readable image; replace or remove it.")
    return size


def _check_inside(values: np.ndarray, width: int, height: int, where: str, what: str) -> np.ndarray:
    """Clip coordinates that lie a pixel or two outside the image; refuse ones far outside."""
    xs, ys = values[:, 0::2], values[:, 1::2]
    far = ((xs < -EDGE_TOLERANCE) | (xs > width + EDGE_TOLERANCE) | (ys < -EDGE_TOLERANCE)
           | (ys > height + EDGE_TOLERANCE)).any(axis=1)
    if far.any():
        row = int(np.flatnonzero(far)[0])
        raise InputError(f"{where[row]}: {what} {values[row].round(1).tolist()} lies outside the image ({width} x "
                         f"{height} px); correct the coordinates or the image name.")
    clipped = values.copy()
    clipped[:, 0::2] = np.clip(xs, 0, width)
    clipped[:, 1::2] = np.clip(ys, 0, height)
    return clipped


def _check_boxes(boxes: np.ndarray, where: list[str]) -> tuple[np.ndarray, list[int], list[str]]:
    """Refuse inverted or zero-area boxes; keep boxes under 2 px on a side out, with a note (BCCD has one)."""
    width, height = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    inverted = (width <= 0) | (height <= 0)
    if inverted.any():
        row = int(np.flatnonzero(inverted)[0])
        raise InputError(f"{where[row]}: box {boxes[row].round(1).tolist()} has zero or negative width or height "
                         "(xmax must exceed xmin, ymax must exceed ymin); correct it or delete the row.")
    tiny = (width < 2) | (height < 2)
    notes = [f"{where[r]}: box {boxes[r].round(1).tolist()} is under 2 px on a side and was left out" for r in np.flatnonzero(tiny)]
    return boxes, [int(r) for r in np.flatnonzero(~tiny)], notes


def _numeric(table, column: str, path: Path):
    import pandas as pd

    values = pd.to_numeric(table[column], errors="coerce")
    bad = values.isna() | ~np.isfinite(values.fillna(0))
    if bad.any():
        row = int(np.flatnonzero(bad.to_numpy())[0])
        raise InputError(f"{path} line {row + 2}: {column} is '{table[column].iloc[row]}', not a number; correct it "
                         "or delete the row.")
    return values.to_numpy(dtype=float)


def _read_table(path: Path, images: Path | None, group_column: str | None) -> Annotations:
    from biolens.readers.tables import read_table

    table = read_table(path, "annotations", missing=[]).fillna("")
    lower = {c.lower(): c for c in table.columns}
    napari = "axis-0" in lower and "axis-1" in lower
    has_boxes = all(c in lower for c in BOX_COLUMNS)
    has_points = ("x" in lower and "y" in lower) or napari
    if not has_boxes and not has_points:
        raise InputError(f"{path}: needs columns x,y (points), xmin,ymin,xmax,ymax (boxes) or napari's axis-0,axis-1; "
                         f"found: {', '.join(table.columns)}.")
    partial = [c for c in BOX_COLUMNS if c in lower]
    if partial and not has_boxes:
        raise InputError(f"{path}: has box column(s) {', '.join(partial)} but not all of xmin,ymin,xmax,ymax.")
    image_column = next((lower[c] for c in IMAGE_COLUMNS if c in lower), None)
    split_column = lower.get("split")
    label_column = next((lower[c] for c in LABEL_COLUMNS if c in lower), None)
    if group_column and group_column not in table.columns:
        raise InputError(f"{path}: --group-column {group_column} is not a column (found: {', '.join(table.columns)}).")
    folders = [images] if images else []
    folders += [path.parent, path.parent / "images"]
    if image_column is None:  # napari exports points of one image without naming it
        candidates = [images] if images and images.is_file() else sorted(
            p for p in (images or path.parent).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if len(candidates) != 1:
            raise InputError(f"{path}: no image column (image, filename, ...) and {len(candidates)} images in "
                             f"{images or path.parent}; add an image column naming each row's image.")
        table["__image"] = str(candidates[0])
        image_column = "__image"
    if has_boxes:
        coords = np.stack([_numeric(table, lower[c], path) for c in BOX_COLUMNS], axis=1)
    elif napari:
        coords = np.stack([_numeric(table, lower["axis-1"], path), _numeric(table, lower["axis-0"], path)], axis=1)
    else:
        coords = np.stack([_numeric(table, lower["x"], path), _numeric(table, lower["y"], path)], axis=1)
    where = [f"{path} line {r + 2}" for r in range(len(table))]
    notes: list[str] = []
    keep = list(range(len(table)))
    if has_boxes:
        coords, keep, notes = _check_boxes(coords, where)
    labels = [str(v).strip() or DEFAULT_LABEL for v in table[label_column]] if label_column else [DEFAULT_LABEL] * len(table)
    items: dict[str, dict] = {}
    for row in keep:
        name = str(table[image_column].iloc[row]).strip()
        if not name:
            raise InputError(f"{where[row]}: empty image name; fill it in or delete the row.")
        entry = items.get(name)
        if entry is None:
            found = Path(name) if Path(name).is_absolute() and Path(name).is_file() else _find_image(name, folders)
            if found is None:
                raise InputError(f"{where[row]}: image '{name}' not found in {', '.join(map(str, folders[:2]))}; "
                                 "check the name or give the folder with --images.")
            entry = items[name] = {"image": found, "rows": [], "group": "", "split": ""}
        entry["rows"].append(row)
        if split_column:
            split = SPLIT_NAMES.get(str(table[split_column].iloc[row]).strip().lower())
            if split is None:
                raise InputError(f"{where[row]}: split '{table[split_column].iloc[row]}' is not train, val or test.")
            if entry["split"] and entry["split"] != split:
                raise InputError(f"{where[row]}: image '{name}' is in split '{split}' here but '{entry['split']}' on "
                                 "an earlier row; one image belongs to one split.")
            entry["split"] = split
        if group_column:
            group = str(table[group_column].iloc[row]).strip()
            if entry["group"] and group != entry["group"]:
                raise InputError(f"{where[row]}: image '{name}' is in group '{group}' here but '{entry['group']}' on "
                                 "an earlier row; one image belongs to one group.")
            entry["group"] = group
    result = []
    for name, entry in items.items():
        rows = entry["rows"]
        width, height = image_size(entry["image"])
        values = _check_inside(coords[rows], width, height, [where[r] for r in rows], "box" if has_boxes else "point")
        boxes = values if has_boxes else None
        points = np.stack([(values[:, 0] + values[:, 2]) / 2, (values[:, 1] + values[:, 3]) / 2], 1) if has_boxes else values
        result.append(ImageObjects(entry["image"], points, [labels[r] for r in rows], boxes, None,
                                   entry["group"] or name, f"{path.name} ({len(rows)} rows)", entry["split"]))
    unused = _unused(folders[0] if images else path.parent, {i.image.resolve() for i in result})
    return Annotations("boxes" if has_boxes else "points", result, sorted(set(labels[r] for r in keep)), str(path),
                       notes, unused)


def _unused(folder: Path, used: set[Path]) -> list[str]:
    if not folder.is_dir():
        return []
    return sorted(str(p) for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.resolve() not in used)


def _read_voc(folder: Path, images: Path | None) -> Annotations:
    import xml.etree.ElementTree as ElementTree

    folders = [f for f in (images, folder, folder / "images", folder.parent / "images", folder.parent / "JPEGImages") if f]
    items, notes, labels = [], [], set()
    for xml in sorted(folder.glob("*.xml")):
        try:
            root = ElementTree.parse(xml).getroot()
        except ElementTree.ParseError as error:
            raise InputError(f"{xml}: not a readable Pascal VOC file ({error}); fix or remove it.") from None
        name = (root.findtext("filename") or "").strip() or xml.stem + ".jpg"
        image = _find_image(name, folders) or _find_image(xml.stem, folders)
        if image is None:
            raise InputError(f"{xml}: its image '{name}' is not in {', '.join(map(str, folders[:2]))}; give the image "
                             "folder with --images.")
        boxes, names, where = [], [], []
        for k, obj in enumerate(root.findall("object"), start=1):
            box = obj.find("bndbox")
            label = (obj.findtext("name") or DEFAULT_LABEL).strip() or DEFAULT_LABEL
            if box is None:
                raise InputError(f"{xml}, object {k} ({label}): no <bndbox>; biolens reads boxes from VOC files.")
            try:
                boxes.append([float(box.findtext(c)) for c in BOX_COLUMNS])
            except (TypeError, ValueError):
                raise InputError(f"{xml}, object {k} ({label}): a box coordinate is missing or not a number.") from None
            names.append(label)
            where.append(f"{xml}, object {k} ({label})")
        width, height = image_size(image)
        array = np.array(boxes, dtype=float).reshape(-1, 4)
        if len(array):
            array, keep, tiny = _check_boxes(array, where)
            notes += tiny
            array = _check_inside(array[keep], width, height, [where[i] for i in keep], "box")
            names = [names[i] for i in keep]
        labels.update(names)
        points = np.stack([(array[:, 0] + array[:, 2]) / 2, (array[:, 1] + array[:, 3]) / 2], 1)
        items.append(ImageObjects(image, points, names, array, None, image.stem, xml.name))
    used = {i.image.resolve() for i in items}
    unused = sorted({u for f in folders if f.is_dir() for u in _unused(f, used)})
    return Annotations("boxes", items, sorted(labels), str(folder), notes, unused)


def _read_coco(path: Path, images: Path | None) -> Annotations:
    try:
        data = json.loads(path.read_text(encoding="utf-8-sig"))
        entries, annotations = data["images"], data.get("annotations", [])
        categories = {c["id"]: str(c.get("name", c["id"])) for c in data.get("categories", [])}
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise InputError(f"{path}: not valid JSON ({str(error).splitlines()[0]}).") from None
    except (KeyError, TypeError):
        raise InputError(f"{path}: not a COCO file (needs 'images' and 'annotations' lists).") from None
    folders = [f for f in (images, path.parent, path.parent / "images") if f]
    by_image: dict = {}
    for k, ann in enumerate(annotations):
        by_image.setdefault(ann.get("image_id"), []).append((k, ann))
    with_masks = any(ann.get("segmentation") for ann in annotations)
    items, labels = [], set()
    for entry in entries:
        name = str(entry.get("file_name", ""))
        image = _find_image(name, folders)
        if image is None:
            raise InputError(f"{path}: image '{name}' (id {entry.get('id')}) not found in "
                             f"{', '.join(map(str, folders[:2]))}; give the folder with --images.")
        anns = by_image.get(entry.get("id"), [])
        if not anns:
            continue
        width, height = image_size(image)
        boxes, names, mask = [], [], np.zeros((height, width), np.int32) if with_masks else None
        for instance, (k, ann) in enumerate(anns, start=1):
            where = f"{path}, annotation {k} (image {name})"
            bbox = ann.get("bbox")
            if not bbox or len(bbox) != 4:
                raise InputError(f"{where}: no bbox [x, y, width, height].")
            x, y, w, h = map(float, bbox)
            boxes.append([x, y, x + w, y + h])
            names.append(categories.get(ann.get("category_id"), str(ann.get("category_id", DEFAULT_LABEL))))
            if mask is not None:
                mask[_segmentation_mask(ann.get("segmentation"), width, height, where)] = instance
        where = [f"{path}, annotation {k} (image {name})" for k, _ in anns]
        array, keep, _ = _check_boxes(np.array(boxes, dtype=float), where)
        array = _check_inside(array[keep], width, height, [where[i] for i in keep], "box")
        names = [names[i] for i in keep]
        labels.update(names)
        points = np.stack([(array[:, 0] + array[:, 2]) / 2, (array[:, 1] + array[:, 3]) / 2], 1)
        items.append(ImageObjects(image, points, names, array, mask, image.stem, f"{path.name} ({len(anns)} objects)"))
    unused = [str(_find_image(str(e.get("file_name", "")), folders)) for e in entries if not by_image.get(e.get("id"))]
    return Annotations("masks" if with_masks else "boxes", items, sorted(labels), str(path), [], unused)


def _segmentation_mask(segmentation, width: int, height: int, where: str) -> np.ndarray:
    """A COCO segmentation (polygons, or RLE with counts as a list or the compressed string) as a boolean mask."""
    from PIL import Image, ImageDraw

    if isinstance(segmentation, list):
        canvas = Image.new("1", (width, height), 0)
        draw = ImageDraw.Draw(canvas)
        for polygon in segmentation:
            if len(polygon) >= 6:
                draw.polygon([float(v) for v in polygon], fill=1)
        return np.asarray(canvas, dtype=bool)
    if isinstance(segmentation, dict) and "counts" in segmentation:
        counts = segmentation["counts"]
        if isinstance(counts, str):
            counts = _rle_string_counts(counts)
        flat = np.zeros(width * height, dtype=bool)
        position, value = 0, False
        for run in counts:
            flat[position:position + int(run)] = value
            position += int(run)
            value = not value
        return flat.reshape((width, height)).T  # COCO RLE is column-major
    raise InputError(f"{where}: segmentation is neither polygons nor RLE.")


def _rle_string_counts(text: str) -> list[int]:
    """Decode COCO's compressed RLE string (pycocotools' rleFrString)."""
    counts, position = [], 0
    while position < len(text):
        value, shift, more = 0, 0, True
        while more:
            code = ord(text[position]) - 48
            value |= (code & 0x1F) << (5 * shift)
            more = bool(code & 0x20)
            position += 1
            shift += 1
            if not more and code & 0x10:
                value |= -1 << (5 * shift)
        if len(counts) > 2:
            value += counts[-2]
        counts.append(value)
    return counts


def _read_label_folders(folder: Path) -> Annotations:
    """images/ + masks/ (instance label images) or images/ + dots/ (one non-zero pixel per object)."""
    from biolens.readers.image_decode import read_whole

    images = sorted(p for p in (folder / "images").iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not images:
        raise InputError(f"{folder / 'images'}: no images (JPEG, PNG, BMP or TIFF).")
    dots = (folder / "dots").is_dir() and not (folder / "masks").is_dir()
    labels_folder = folder / ("dots" if dots else "masks")
    items, unused, notes = [], [], []
    for image in images:
        partner = _find_image(image.name, [labels_folder]) or _find_image(image.stem, [labels_folder])
        if partner is None:
            unused.append(str(image))
            continue
        width, height = image_size(image)
        if image_size(partner) != (width, height):
            raise InputError(f"{partner}: {image_size(partner)} px but its image {image.name} is {(width, height)}; "
                             "a mask or dot image must match its image pixel for pixel.")
        marks = read_whole(partner, keep_values=True)
        marks = marks.max(axis=-1) if marks.ndim == 3 else marks
        if dots:
            points = _dot_points(marks, lossy=partner.suffix.lower() in (".jpg", ".jpeg"))
            items.append(ImageObjects(image, points, [DEFAULT_LABEL] * len(points), None, None, image.stem, partner.name))
        else:
            instances = _instances(marks, partner, notes)
            items.append(ImageObjects(image, _centres(instances), [DEFAULT_LABEL] * int(instances.max()), None,
                                      partner, image.stem, partner.name))
    if not items:
        raise InputError(f"{labels_folder}: no file matches an image in {folder / 'images'} by name.")
    return Annotations("points" if dots else "masks", items, [DEFAULT_LABEL], str(folder), notes, unused,
                       whole_images=dots)


def _dot_points(marks: np.ndarray, lossy: bool = False) -> np.ndarray:
    """One object per non-zero pixel; dots drawn larger than a pixel count once (connected components)."""
    from scipy import ndimage

    if lossy:
        return _lossy_dot_points(marks)
    on = marks > 0
    components, n = ndimage.label(on)
    if n and on.sum() > 1.3 * n:  # dots drawn as small discs
        centres = np.array(ndimage.center_of_mass(on, components, range(1, n + 1)))
        return centres[:, ::-1].astype(float) + 0.5 if len(centres) else np.zeros((0, 2))
    ys, xs = np.nonzero(on)
    return np.stack([xs + 0.5, ys + 0.5], axis=1).astype(float)


def _lossy_dot_points(marks: np.ndarray) -> np.ndarray:
    """Dots of a JPEG dot image: the peaks of the lightly smoothed marks above Otsu's cut between noise peaks and dot
    peaks.

    Compression leaves faint non-zero pixels around each dot and across its 8 x 8 blocks, and a one-pixel dot loses
    most of its brightness (chroma subsampling), so "non-zero" is no test: on generated dot images saved at quality
    75-95, counting non-zero components gave 3-161 objects for 47-54 dots; the peaks give every dot and at most 2
    extra (tests/test_detect.py)."""
    from scipy import ndimage
    from skimage.filters import threshold_otsu

    smooth = ndimage.gaussian_filter(marks.astype(np.float64), 1.0)
    peaks = (ndimage.maximum_filter(smooth, size=5) == smooth) & (smooth > 0)
    if not peaks.any():
        return np.zeros((0, 2))
    heights = smooth[peaks]
    on = peaks & (smooth > (threshold_otsu(heights) if heights.min() < heights.max() else 0.0))
    components, n = ndimage.label(on, structure=np.ones((3, 3)))  # a flat-topped dot: one plateau, one object
    centres = np.array(ndimage.center_of_mass(on, components, range(1, n + 1))).reshape(-1, 2)
    return centres[:, ::-1].astype(float) + 0.5


def _instances(marks: np.ndarray, path: Path, notes: list[str]) -> np.ndarray:
    """Instance labels 1..n from a label image; a binary mask is split into connected components (with a note)."""
    from scipy import ndimage

    values = np.unique(marks)
    if len(values) <= 2:
        labelled, _ = ndimage.label(marks > 0)
        notes.append(f"{path.name} is a binary mask: touching objects in it count as one (save instance labels to "
                     "separate them)")
        return labelled.astype(np.int32)
    _, inverse = np.unique(marks, return_inverse=True)
    relabelled = inverse.reshape(marks.shape).astype(np.int32)
    return relabelled if values[0] == 0 else relabelled + 1


def _centres(instances: np.ndarray) -> np.ndarray:
    from scipy import ndimage

    n = int(instances.max())
    if n == 0:
        return np.zeros((0, 2))
    centres = np.array(ndimage.center_of_mass(instances > 0, instances, range(1, n + 1)))
    return centres[:, ::-1] + 0.5


def load_mask(item: ImageObjects) -> np.ndarray:
    """The item's instance label image (reading the mask file when needed)."""
    from biolens.readers.image_decode import read_whole

    if item.mask is None:
        raise InputError(f"{item.image}: no mask annotated.")
    if isinstance(item.mask, np.ndarray):
        return item.mask
    marks = read_whole(item.mask, keep_values=True)
    return _instances(marks.max(axis=-1) if marks.ndim == 3 else marks, item.mask, [])


def mask_diameters(instances: np.ndarray) -> np.ndarray:
    areas = np.bincount(instances.ravel())[1:]
    return 2 * np.sqrt(areas[areas > 0] / np.pi)


def _boxes_of_mask(instances: np.ndarray) -> np.ndarray:
    from scipy import ndimage

    slices = ndimage.find_objects(instances)
    return np.array([[s[1].start, s[0].start, s[1].stop, s[0].stop] for s in slices if s is not None], dtype=float)


def read_reviewed(path: Path | str, kind: str, class_names: list[str]) -> tuple[list[ImageObjects], list[list[tuple]]]:
    """Corrected regions from `biolens review` on a detection run: objects.csv (rows with a `region` column) and
    regions.csv beside it. Returns the images' objects and, per image, the region boxes that were reviewed (only
    there are the annotations complete; a region whose rows were all deleted means 'no objects here')."""
    from biolens.readers.tables import read_table

    path = Path(path)
    regions_path = path.parent / "regions.csv"
    if not path.is_file() or not regions_path.is_file():
        raise InputError(f"--add-labels {path}: expected the objects.csv written by `biolens review` with regions.csv "
                         "beside it.")
    objects = read_table(path, "reviewed objects", missing=[]).fillna("")
    regions = read_table(regions_path, "reviewed regions", missing=[])
    need = ["region", "image", "xmin", "ymin", "xmax", "ymax"]
    if any(c not in regions.columns for c in need):
        raise InputError(f"{regions_path}: needs the columns {', '.join(need)} as `biolens review` wrote them.")
    coords = ["xmin", "ymin", "xmax", "ymax"] if kind == "boxes" else ["x", "y"]
    missing = [c for c in ["image", "label", "region", *coords] if c not in objects.columns]
    if missing:
        raise InputError(f"{path}: column(s) {', '.join(missing)} missing; this run finds {kind}, so each row needs "
                         f"image, label, {', '.join(coords)} and region.")
    boxes_of = {}
    for k, row in regions.iterrows():
        image = Path(str(row["image"]))
        if not image.is_file():
            raise InputError(f"{regions_path} line {k + 2}: image '{image}' not found; review and retraining must see "
                             "the same files.")
        boxes_of.setdefault(str(image), []).append((int(row["region"]), tuple(float(row[c]) for c in BOX_COLUMNS)))
    region_box = {r: (image, box) for image, items in boxes_of.items() for r, box in items}
    rows: dict[str, list] = {image: [] for image in boxes_of}
    for k, row in objects.iterrows():
        where = f"{path} line {k + 2}"
        try:
            region = int(float(row["region"]))
            values = [float(row[c]) for c in coords]
        except (TypeError, ValueError):
            raise InputError(f"{where}: region and {', '.join(coords)} must be numbers.") from None
        if region not in region_box:
            raise InputError(f"{where}: region {region} is not in {regions_path.name}; give each added object the "
                             "number of the region it lies in.")
        image, (x0, y0, x1, y1) = region_box[region]
        if str(Path(str(row["image"]))) != image:
            raise InputError(f"{where}: image '{row['image']}' is not region {region}'s image ({image}).")
        label = str(row["label"]).strip()
        if label not in class_names:
            raise InputError(f"{where}: label '{label}' is not a class of this run ({', '.join(class_names)}); "
                             "new classes need annotations in the main file.")
        cx, cy = (values[0] + values[2]) / 2 if kind == "boxes" else values[0], \
            (values[1] + values[3]) / 2 if kind == "boxes" else values[1]
        if not (x0 - EDGE_TOLERANCE <= cx <= x1 + EDGE_TOLERANCE and y0 - EDGE_TOLERANCE <= cy <= y1 + EDGE_TOLERANCE):
            raise InputError(f"{where}: the object at ({cx:.0f}, {cy:.0f}) lies outside region {region} "
                             f"(x {x0:.0f}-{x1:.0f}, y {y0:.0f}-{y1:.0f}); give it the region it lies in.")
        if kind == "boxes" and (values[2] <= values[0] or values[3] <= values[1]):
            raise InputError(f"{where}: a box of zero or negative size; fix or delete the row.")
        rows[image].append((values, label, (cx, cy)))
    items, reviewed = [], []
    for image, entries in rows.items():
        points = np.array([centre for _, _, centre in entries], float).reshape(-1, 2)
        boxes = np.array([v for v, _, _ in entries], float).reshape(-1, 4) if kind == "boxes" else None
        items.append(ImageObjects(Path(image), points, [label for _, label, _ in entries], boxes, None,
                                  Path(image).name, f"{path.name} (reviewed)", "train"))
        reviewed.append([box for _, box in boxes_of[image]])
    return items, reviewed
