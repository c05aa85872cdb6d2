"""A detection run applied to new images (`biolens predict RUN IMAGES` on a `detect` run): one row per object.

The trained network reads each image in overlapping tiles (a TIFF too large to hold decoded is read window by
window); peaks of its centre heat are the objects, sized and counted as the run calibrated them on its validation
units. Mask runs add a label TIFF per image, and georeferenced TIFFs (tree crowns, plots from a drone) a GeoJSON of
the objects in the image's coordinate system. Training and evaluation are `tasks/detect.py`.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from biolens import console
from biolens.errors import InputError
from biolens.runs import Run, atomic_path, write_text
from biolens.tasks.detect import (_upscale_labels, calibrate_sizes, corrected_density_counts, count_methods_of,
                                  overlap_of)


def predict_objects(run: Run, info: dict, paths: list[Path], out, *, skip_bad: bool = False,
                    overlays: Path | None = None, force: bool = False, stack: str | None = None):
    """One row per object in each image (objects.csv), counts per image and label (counts.csv beside it), a label
    TIFF per image for mask runs, overlays on request, and GeoJSON for georeferenced TIFFs. stack: what a
    multi-page TIFF's pages are (default: as the run was trained)."""
    import pandas as pd

    from biolens.inference.tiles import find_peaks, instances, select
    from biolens.models.io import load_trusted
    from biolens.readers import images as image_reader
    from biolens.readers.image_decode import DecodeError, read_for_tiles
    from biolens.stats.objects import boxes_in_image

    model = load_trusted(run.model_path, info.get("model_sha256"))
    metrics, classes, kind = run.metrics, info["class_names"], info["kind"]
    scale, size = float(info["scale"]), float(info["object_size"])
    min_distance = max(1, int(float(info.get("object_size_small", size)) * scale / 8))
    found_files = image_reader.find_unlabelled(paths)
    bad = [tuple(line.split(": ", 1)) for line in found_files.ignored]
    out = Path(out) if out is not None else None
    folder = out.parent if out is not None else None
    if folder is not None and not force:  # the files written beside the CSV are never written over unasked
        beside = [folder / "counts.csv"] + [folder / f"{p.stem}{suffix}" for p in found_files.files
                                            for suffix in ("_labels.tif", ".geojson")]
        taken = [p for p in beside if p.exists()]
        if taken:
            raise InputError(f"{taken[0]} exists already; predict into another folder or pass --force to replace it.")
    if overlays is not None:
        overlays = Path(overlays)
        if overlays.exists() and any(overlays.iterdir()):
            raise InputError(f"--overlays {overlays} exists and is not empty; choose a new folder.")
    rows, counts = [], []
    for path in found_files.files:
        try:
            image = read_for_tiles(path, stack=stack or info.get("config", {}).get("stack", "refuse"))  # a TIFF
            # too large to hold decoded is read from disk a window at a time
        except DecodeError as error:
            if not skip_bad:
                raise InputError(f"{path}: {error}. Fix it, or pass --skip-bad to list such files in counts.csv.") from None
            bad.append((str(path), str(error)))
            continue
        peaks = calibrate_sizes(find_peaks(model, image, len(classes), scale=scale, min_distance=min_distance,
                                           with_foreground=kind == "masks", flips=bool(metrics.get("flips"))),
                                metrics)
        chosen = select(peaks, float(metrics["threshold"]), min_distance, overlap_of(kind))
        centres = peaks.centres[chosen] / scale
        widths = peaks.sizes[chosen] / scale
        geo = _georeference(path)
        areas = None
        if kind == "masks":
            labels = _upscale_labels(instances(peaks, chosen), image.shape[:2])
            areas = np.bincount(labels.ravel(), minlength=len(chosen) + 1)[1:len(chosen) + 1]
            if folder is not None:
                _write_label_tiff(folder / f"{path.stem}_labels.tif", labels)
        boxes = boxes_in_image(centres, widths, image.shape[1], image.shape[0])
        for k, j in enumerate(chosen):
            row = {"image": str(path), "label": classes[peaks.classes[j]], "score": round(float(peaks.scores[j]), 4),
                   "x": round(float(centres[k, 0]), 1), "y": round(float(centres[k, 1]), 1)}
            if kind == "boxes":
                row.update(zip(("xmin", "ymin", "xmax", "ymax"), (round(float(v), 1) for v in boxes[k])))
            if areas is not None:
                row["area"] = int(areas[k])
            if geo is not None:
                row["map_x"], row["map_y"] = geo(row["x"], row["y"])
            rows.append(row)
        methods = count_methods_of(metrics, classes)
        by_density = peaks.density_count() if "density" in methods.values() else None
        if by_density is not None:
            by_density = corrected_density_counts(by_density[None, :], [float(image.shape[0] * image.shape[1])],
                                                  classes, metrics.get("density_calibration") or {})[0]
        for c, label in enumerate(classes):
            detected = int((peaks.classes[chosen] == c).sum())
            count = int(round(float(by_density[c]))) if methods[label] == "density" and by_density is not None \
                else detected
            counts.append({"image": str(path), "label": label, "count": count, "objects_found": detected})
        if overlays is not None:
            picture, step = (image, 1) if isinstance(image, np.ndarray) else image.thumbnail()
            _write_overlay(overlays / f"{path.stem}.png", picture, centres / step,
                           widths / step if kind == "boxes" else None, [classes[c] for c in peaks.classes[chosen]],
                           size / step)
        if geo is not None and folder is not None:
            _write_geojson(folder / f"{path.stem}.geojson", [r for r in rows if r["image"] == str(path)],
                           geo, kind)
    columns = ["image", "label", "score", "x", "y"] + (["xmin", "ymin", "xmax", "ymax"] if kind == "boxes" else []) \
        + (["area"] if kind == "masks" else [])
    table = pd.DataFrame(rows, columns=columns + (["map_x", "map_y"] if any("map_x" in r for r in rows) else []))
    count_table = pd.DataFrame(counts, columns=["image", "label", "count", "objects_found"])
    if bad:
        count_table = pd.concat([count_table, pd.DataFrame({"image": [b[0] for b in bad], "error": [b[-1] for b in bad]})],
                                ignore_index=True)
        console.say(f"{len(bad)} file(s) could not be read; listed with their reason in counts.csv "
                    f"(first: {bad[0][0]}: {bad[0][-1]})")
    if out is not None:
        write_text(out, table.to_csv(index=False))
        write_text(out.parent / "counts.csv", count_table.to_csv(index=False))
        console.say(f"{len(table)} objects in {len(found_files.files) - len([b for b in bad if b[0] in map(str, found_files.files)])} "
                    f"image(s) written to {out} (counts per image: {out.parent / 'counts.csv'})")
    return table


def _write_label_tiff(path: Path, labels: np.ndarray) -> None:
    import tifffile

    path.parent.mkdir(parents=True, exist_ok=True)
    dtype = np.uint16 if labels.max() < 65536 else np.uint32
    with atomic_path(path) as tmp:
        tifffile.imwrite(tmp, labels.astype(dtype), compression="zlib")


def _write_overlay(path: Path, image: np.ndarray, centres, sizes, labels, size: float) -> None:
    from PIL import Image, ImageDraw

    canvas = Image.fromarray(image[..., :3].copy())
    draw = ImageDraw.Draw(canvas)
    palette = ["#ff00ff", "#00e5ff", "#ffd400", "#00ff66", "#ff6a00", "#8c8cff"]
    names = sorted(set(labels))
    radius = max(3.0, size / 2)
    for k, (x, y) in enumerate(centres):
        colour = palette[names.index(labels[k]) % len(palette)]
        if sizes is not None:
            w, h = sizes[k]
            draw.rectangle([x - w / 2, y - h / 2, x + w / 2, y + h / 2], outline=colour, width=2)
        else:
            draw.ellipse([x - radius, y - radius, x + radius, y + radius], outline=colour, width=2)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        canvas.save(tmp, format="PNG")


def _georeference(path: Path):
    """pixel (x, y) -> map (x, y) for a GeoTIFF with a pixel scale and tie point; None otherwise."""
    if path.suffix.lower() not in {".tif", ".tiff"}:
        return None
    import tifffile

    try:
        with tifffile.TiffFile(path) as tif:
            tags = tif.pages[0].tags
            scale, tie = tags.get(33550), tags.get(33922)
            if scale is None or tie is None:
                return None
            sx, sy = float(scale.value[0]), float(scale.value[1])
            i, j, _, x, y, _ = (float(v) for v in tie.value[:6])
            keys = tags.get(34735)
            epsg = None
            if keys is not None:
                values = list(keys.value)
                for k in range(4, len(values), 4):
                    if values[k] in (3072, 2048) and values[k + 1] == 0:
                        epsg = int(values[k + 3])
    except Exception:  # a TIFF whose geo tags cannot be read is simply not georeferenced
        return None

    def to_map(px: float, py: float) -> tuple[float, float]:
        return round(x + (px - i) * sx, 3), round(y - (py - j) * sy, 3)

    to_map.epsg = epsg
    return to_map


def _write_geojson(path: Path, rows: list[dict], geo, kind: str) -> None:
    import json

    features = []
    for row in rows:
        if kind == "boxes":
            corners = [geo(row["xmin"], row["ymin"]), geo(row["xmax"], row["ymin"]), geo(row["xmax"], row["ymax"]),
                       geo(row["xmin"], row["ymax"]), geo(row["xmin"], row["ymin"])]
            geometry = {"type": "Polygon", "coordinates": [[list(c) for c in corners]]}
        else:
            geometry = {"type": "Point", "coordinates": list(geo(row["x"], row["y"]))}
        features.append({"type": "Feature", "geometry": geometry,
                         "properties": {"label": row["label"], "score": row["score"]}})
    collection = {"type": "FeatureCollection", "features": features}
    if getattr(geo, "epsg", None):
        collection["crs"] = {"type": "name", "properties": {"name": f"urn:ogc:def:crs:EPSG::{geo.epsg}"}}
    write_text(path, json.dumps(collection))
