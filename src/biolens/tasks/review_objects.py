"""The human loop for a detection run: which parts of new images should a biologist annotate next?

Every new image is cut into square regions (about 16 typical objects across); a region is uncertain when the
network's candidate objects sit near the score threshold (found or missed by a hair) and when its two counts
disagree (the objects found vs the density head's sum). The `n` most uncertain regions are picked, spread over the
images (each further pick from an image counts less). Written to review/: regions.csv (region, image, box,
uncertainty), objects.csv (the network's objects in those regions, in the annotation format `detect` reads, with a
`region` column: correct it — delete false objects, add missed ones, fix labels), a PNG per region with the
objects drawn, and review.html. `biolens detect ANNOTATIONS --add-labels review/objects.csv` then trains on the
corrected regions too (and only there: the rest of those images stays unannotated), with the same test images.
"""
from __future__ import annotations

import html
from pathlib import Path

import numpy as np
import pandas as pd

from biolens import console
from biolens.errors import InputError
from biolens.runs import Run, atomic_path, write_text

REGION_MODEL_PX = 192   # region side at model scale (objects are ~12 px there: about 16 objects across)
SAME_IMAGE_DISCOUNT = 0.5


def review_objects(run: Run, unlabelled: str | Path, out: Path, n: int) -> pd.DataFrame:
    from biolens.inference.tiles import find_peaks, select
    from biolens.models.io import load_trusted
    from biolens.readers import images as image_reader
    from biolens.readers.image_decode import DecodeError, read_for_tiles
    from biolens.tasks.detect import calibrate_sizes, overlap_of

    info, metrics = run.info, run.metrics
    if info.get("kind") == "masks":
        raise InputError(f"{run.path} is a mask detection run; review writes points or boxes to correct. Correct "
                         "masks in your annotation tool (QuPath, napari) and run detect again.")
    model = load_trusted(run.model_path, info.get("model_sha256"))
    classes, kind = info["class_names"], info["kind"]
    scale, threshold = float(info["scale"]), float(metrics["threshold"])
    min_distance = max(1, int(float(info.get("object_size_small", info["object_size"])) * scale / 8))
    side = max(32, int(round(REGION_MODEL_PX / scale)))
    annotated = _annotated_images(run)
    files = image_reader.find_unlabelled([Path(unlabelled)]).files
    regions, skipped = [], []
    with console.progress_bar(f"scoring regions of {len(files)} image(s)", len(files)) as advance:
        for path in files:
            advance(1)
            if str(Path(path).resolve()) in annotated:
                skipped.append(f"{path}: already annotated in the run's training data")
                continue
            try:
                image = read_for_tiles(path, stack=info.get("config", {}).get("stack", "refuse"))  # a large TIFF:
                # read a window at a time
            except DecodeError as error:
                skipped.append(f"{path}: {error}")
                continue
            peaks = calibrate_sizes(find_peaks(model, image, len(classes), scale=scale, min_distance=min_distance,
                                               flips=bool(metrics.get("flips"))),
                                    metrics)
            chosen = np.zeros(len(peaks.scores), bool)
            chosen[select(peaks, threshold, min_distance, overlap_of(kind))] = True
            regions += _score_regions(path, image.shape[:2], peaks, chosen, scale, threshold, side)
    for line in skipped:
        console.say(f"skipped {line}")
    if not regions:
        raise InputError(f"{unlabelled}: no new readable images to review (images the run was trained on are left out).")
    picked = pick_regions(regions, n)
    out.mkdir(parents=True, exist_ok=True)
    region_rows, object_rows, cards = [], [], []
    by_image: dict[str, list[dict]] = {}
    for k, region in enumerate(picked):
        region["region"] = k + 1
        by_image.setdefault(region["image"], []).append(region)
    for image_path, items in by_image.items():
        image = read_for_tiles(Path(image_path))  # only each region's window is read from a large TIFF
        for region in items:
            x0, y0, x1, y1 = region["box"]
            region_rows.append({"region": region["region"], "image": image_path, "xmin": x0, "ymin": y0, "xmax": x1,
                                "ymax": y1, "uncertainty": round(region["uncertainty"], 4),
                                "objects_found": region["found"], "density_count": region["density"]})
            for obj in region["objects"]:
                row = {"image": image_path, "label": classes[obj["class"]], "x": obj["x"], "y": obj["y"]}
                if kind == "boxes":
                    row.update(xmin=obj["xmin"], ymin=obj["ymin"], xmax=obj["xmax"], ymax=obj["ymax"])
                object_rows.append({**row, "score": obj["score"], "region": region["region"]})
            name = f"region_{region['region']:03d}.png"
            _draw_region(out / "regions" / name, image, region, kind)
            cards.append((region, f"regions/{name}"))
    region_table = pd.DataFrame(region_rows).sort_values("region")
    columns = ["image", "label", "x", "y"] + (["xmin", "ymin", "xmax", "ymax"] if kind == "boxes" else []) + ["score", "region"]
    object_table = pd.DataFrame(object_rows, columns=columns).sort_values(["region", "y", "x"])
    write_text(out / "regions.csv", region_table.to_csv(index=False))
    write_text(out / "objects.csv", object_table.to_csv(index=False))
    write_text(out / "review.html", _sheet(cards, run.path, classes))
    console.say(f"{len(picked)} region(s) of {len(by_image)} image(s) picked: correct {out / 'objects.csv'} (delete "
                "false objects, add missed ones, fix labels; keep each row's region), then: biolens detect "
                f"ANNOTATIONS --add-labels {out / 'objects.csv'} --out NEW_RUN")
    return region_table


def _annotated_images(run: Run) -> set[str]:
    path = run.path / "splits.csv"
    if not path.exists():
        return set()
    return {str(Path(p).resolve()) for p in pd.read_csv(path)["image"].astype(str)}


def _score_regions(path: Path, shape: tuple[int, int], peaks, chosen: np.ndarray, scale: float, threshold: float,
                   side: int) -> list[dict]:
    """Per square region: uncertainty = candidates near the threshold (a Gaussian in logit distance, 1 at the
    threshold) + |objects found - density count|."""
    from biolens.stats.objects import boxes_in_image

    height, width = shape
    centres = peaks.centres / scale
    boxes = boxes_in_image(centres, peaks.sizes / scale, width, height)
    logit = np.log(np.clip(peaks.scores, 1e-4, 1 - 1e-4) / np.clip(1 - peaks.scores, 1e-4, 1))
    cut = np.log(threshold / (1 - threshold))
    borderline = np.exp(-0.5 * (logit - cut) ** 2)
    regions = []
    for y0 in range(0, height, side):
        for x0 in range(0, width, side):
            x1, y1 = min(width, x0 + side), min(height, y0 + side)
            inside = (centres[:, 0] >= x0) & (centres[:, 0] < x1) & (centres[:, 1] >= y0) & (centres[:, 1] < y1)
            found = int((inside & chosen).sum())
            density = peaks.density_count((x0 * scale, y0 * scale, x1 * scale, y1 * scale))
            density = float(density.sum()) if density is not None else None
            uncertainty = float(borderline[inside].sum()) + (abs(density - found) if density is not None else 0.0)
            objects = []
            for j in np.flatnonzero(inside & chosen):
                x, y = centres[j]
                objects.append({"class": int(peaks.classes[j]), "x": round(float(x), 1), "y": round(float(y), 1),
                                **{k: round(float(v), 1) for k, v in zip(("xmin", "ymin", "xmax", "ymax"), boxes[j])},
                                "score": round(float(peaks.scores[j]), 4)})
            regions.append({"image": str(path), "box": (x0, y0, x1, y1), "uncertainty": uncertainty, "found": found,
                            "density": None if density is None else round(density, 2), "objects": objects})
    return regions


def pick_regions(regions: list[dict], n: int) -> list[dict]:
    """The `n` most uncertain regions, each further pick from the same image discounted (spread over images)."""
    remaining = sorted(regions, key=lambda r: -r["uncertainty"])
    picked, per_image = [], {}
    while remaining and len(picked) < n:
        value = [r["uncertainty"] * SAME_IMAGE_DISCOUNT ** per_image.get(r["image"], 0) for r in remaining]
        best = remaining.pop(int(np.argmax(value)))
        per_image[best["image"]] = per_image.get(best["image"], 0) + 1
        picked.append(best)
    return picked


def _draw_region(path: Path, image: np.ndarray, region: dict, kind: str) -> None:
    from PIL import Image, ImageDraw

    x0, y0, x1, y1 = region["box"]
    crop = Image.fromarray(np.ascontiguousarray(image[y0:y1, x0:x1, :3]))
    draw = ImageDraw.Draw(crop)
    for obj in region["objects"]:
        if kind == "boxes":
            draw.rectangle([obj["xmin"] - x0, obj["ymin"] - y0, obj["xmax"] - x0, obj["ymax"] - y0], outline="#ff00ff",
                           width=2)
        else:
            x, y = obj["x"] - x0, obj["y"] - y0
            draw.ellipse([x - 3, y - 3, x + 3, y + 3], outline="#ff00ff", width=2)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        crop.save(tmp, format="PNG")


def _sheet(cards, run_path: Path, classes: list[str]) -> str:
    figures = "\n".join(
        f'<figure><img src="{html.escape(src)}" alt="region {r["region"]} of {html.escape(Path(r["image"]).name)}">'
        f'<figcaption><b>region {r["region"]}</b>: {html.escape(Path(r["image"]).name)} x {r["box"][0]}-{r["box"][2]}, '
        f'y {r["box"][1]}-{r["box"][3]}<br>{r["found"]} found'
        + (f', density says {r["density"]:.1f}' if r["density"] is not None else "") + "</figcaption></figure>"
        for r, src in cards)
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>biolens review: regions to annotate</title>
<style>body{{font-family:system-ui,sans-serif;margin:1.5rem;color:#1a1a1a}}
.grid{{display:flex;flex-wrap:wrap;gap:.8rem}} figure{{margin:0;width:260px;font-size:.8rem}}
img{{max-width:256px;border:1px solid #999}}</style></head>
<body><h1>Regions to annotate next</h1>
<p>Picked from new images by the model of <code>{html.escape(str(run_path))}</code>: where its objects sit closest
to its score threshold and where its two counts disagree. Magenta marks what it found. Correct
<code>objects.csv</code> (rows by region; delete false objects, add missed ones with the region's number, fix labels:
{html.escape(", ".join(classes))}), then retrain with <code>biolens detect ANNOTATIONS --add-labels objects.csv</code>:
only these regions are added, and the test images stay the same.</p>
<div class="grid">
{figures}
</div></body></html>
"""
