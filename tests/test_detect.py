"""Objects in whole images: every annotation format read from real files (the shared trees and BCCD files among
them), the held-out units, the tiler, scoring, and detect -> predict end to end with real TensorFlow."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from biolens.config import DetectConfig
from biolens.errors import InputError
from biolens.readers.annotations import read_annotations
from biolens.stats import objects as score
from biolens.tasks.detect import Data, Unit, _targets, estimate_point_size, make_units
from conftest import ROOT, as_z_stacks, biolens, dot_images, one_line_error

SHARED = ROOT.parent / "shared" / "data"


def _image(path: Path, width: int = 80, height: int = 60) -> Path:
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (height, width, 3), dtype=np.uint8)).save(path)
    return path


def test_box_csv_reads_columns_by_name_in_any_order_like_the_shared_sjer_file():
    sjer = SHARED / "trees" / "2018_SJER_3_252000_4107000_image_477.csv"
    if not sjer.exists():
        pytest.skip("../shared/data/trees is not here")
    found = read_annotations(sjer)
    assert found.kind == "boxes" and found.n_objects == len(pd.read_csv(sjer))
    table = pd.read_csv(sjer)
    item = found.items[0]
    assert np.allclose(item.boxes[:, 0], table.xmin) and np.allclose(item.boxes[:, 3], table.ymax)
    assert np.allclose(item.points[:, 0], (table.xmin + table.xmax) / 2)


def test_voc_folder_matches_images_by_stem_and_reads_labels():
    trees = SHARED / "trees"
    if not trees.exists():
        pytest.skip("../shared/data/trees is not here")
    found = read_annotations(trees)
    assert found.kind == "boxes" and len(found.items) == 3  # OSBS_029.xml names a .tif; the file is a .png
    assert {"Alive", "Dead"} <= set(found.class_names)
    assert sum(len(i.points) for i in found.items) == 61 + 37 + 279
    assert any("SJER" in name for name in found.unused_images)  # the GeoTIFF has no VOC file: listed, not used


def test_points_csv_napari_and_split_column(tmp_path):
    _image(tmp_path / "a.png")
    _image(tmp_path / "b.png")
    (tmp_path / "p.tsv").write_text("Y\tX\tIMAGE\tclass\tsplit\n5\t10\ta.png\tcell\ttrain\n6\t20\tb.png\tcell\ttest\n"
                                    "7\t30\tb.png\tdebris\ttest\n8\t40\ta.png\tdebris\ttrain\n")
    found = read_annotations(tmp_path / "p.tsv")
    assert found.kind == "points" and found.class_names == ["cell", "debris"]
    assert {i.image.name: i.split for i in found.items} == {"a.png": "train", "b.png": "test"}
    one = tmp_path / "one"
    one.mkdir()
    _image(one / "only.png")
    (one / "napari.csv").write_text("index,axis-0,axis-1\n0,12.5,30.0\n1,40,70\n")
    napari = read_annotations(one / "napari.csv")
    assert np.allclose(napari.items[0].points, [[30.0, 12.5], [70.0, 40.0]])


def test_coco_polygons_and_compressed_rle_become_instance_masks(tmp_path):
    _image(tmp_path / "a.png", 40, 30)
    # compressed RLE of a 30 x 40 mask: 300 background, 60 foreground (column-major), rest background
    rle = _encode_rle([300, 60, 840])
    coco = {"images": [{"id": 1, "file_name": "a.png", "width": 40, "height": 30}],
            "categories": [{"id": 7, "name": "nucleus"}],
            "annotations": [{"id": 1, "image_id": 1, "category_id": 7, "bbox": [2, 2, 8, 8],
                             "segmentation": [[2, 2, 10, 2, 10, 10, 2, 10]]},
                            {"id": 2, "image_id": 1, "category_id": 7, "bbox": [10, 0, 2, 30],
                             "segmentation": {"size": [30, 40], "counts": rle}}]}
    (tmp_path / "coco.json").write_text(json.dumps(coco))
    found = read_annotations(tmp_path / "coco.json")
    assert found.kind == "masks" and found.class_names == ["nucleus"]
    mask = found.items[0].mask
    assert (mask == 1).sum() == pytest.approx(81, abs=20) and (mask == 2).sum() == 60
    assert set(np.nonzero(mask == 2)[1]) == {10, 11}  # columns 10 and 11, every row


def _encode_rle(counts: list[int]) -> str:
    """pycocotools' rleToString, for the test's own RLE."""
    out = []
    for i, value in enumerate(counts):
        x = value - counts[i - 2] if i > 2 else value
        more = True
        while more:
            c = x & 0x1F
            x >>= 5
            more = (x != -1) if (c & 0x10) else (x != 0)
            if more:
                c |= 0x20
            out.append(chr(c + 48))
    return "".join(out)


def test_masks_and_dots_folders(tmp_path):
    for kind in ("masks", "dots"):
        root = tmp_path / kind
        (root / "images").mkdir(parents=True)
        (root / kind).mkdir()
        _image(root / "images" / "x.png", 50, 40)
        marks = np.zeros((40, 50), np.uint16 if kind == "masks" else np.uint8)
        if kind == "masks":
            marks[5:15, 5:15], marks[20:30, 30:45] = 3, 9
        else:
            marks[10, 10] = marks[30, 40] = marks[20, 25] = 255
        Image.fromarray(marks).save(root / kind / "x.png")
        _image(root / "images" / "unannotated.png")
        found = read_annotations(root)
        assert found.kind == ("masks" if kind == "masks" else "points")
        assert found.n_objects == (2 if kind == "masks" else 3)
        assert any("unannotated" in u for u in found.unused_images)
    points = read_annotations(tmp_path / "masks", kind="points")
    assert np.allclose(sorted(points.items[0].points[:, 0]), [10.0, 37.5])


def test_dots_saved_as_jpeg_count_each_dot_once(tmp_path):
    """JPEG compression leaves faint non-zero pixels around each dot and across its blocks; they are no objects, and
    every dot, one pixel or a small disc, is still found."""
    from PIL import ImageDraw

    rng = np.random.default_rng(0)
    centres = rng.integers(4, [196, 156], size=(60, 2))
    centres = centres[np.all(np.abs(centres[:, None] - centres[None]).max(-1) + 99 * np.eye(len(centres)) >= 6, axis=1)]
    for style, quality in (("pixel", 75), ("disc", 90)):
        root = tmp_path / style
        (root / "images").mkdir(parents=True)
        (root / "dots").mkdir()
        _image(root / "images" / "tissue.png", 200, 160)
        dots = Image.new("RGB", (200, 160))
        draw = ImageDraw.Draw(dots)
        for x, y in centres:  # red marks, as counting data sets draw them
            draw.point((int(x), int(y)), fill=(255, 0, 0)) if style == "pixel" else \
                draw.ellipse((x - 2, y - 2, x + 2, y + 2), fill=(255, 0, 0))
        dots.save(root / "dots" / "tissue.jpg", quality=quality)
        assert (np.asarray(Image.open(root / "dots" / "tissue.jpg")).max(-1) > 0).sum() > 4 * len(centres)  # noisy
        found = read_annotations(root).items[0].points
        distance = np.abs(found[:, None] - (centres[None] + 0.5)).max(-1)
        assert (distance.min(0) <= 2).all(), style  # every dot found
        assert len(found) <= len(centres) + 2, style  # and at most two ringing artefacts taken for dots


def test_bad_annotations_name_the_file_and_row(tmp_path):
    _image(tmp_path / "a.png")
    cases = {"image,xmin,ymin,xmax,ymax\na.png,5,5,5,9\n": "line 2",
             "image,x,y\na.png,5,5\na.png,500,5\n": "line 3",
             "image,x,y\na.png,5,5\nmissing.png,5,5\n": "missing.png",
             "image,x,y\na.png,5,five\n": "five"}
    for k, (text, culprit) in enumerate(cases.items()):
        path = tmp_path / f"bad{k}.csv"
        path.write_text(text)
        with pytest.raises(InputError, match=culprit):
            read_annotations(path)


def test_few_images_are_split_into_regions_and_partial_annotations_restrict_the_extent(tmp_path):
    _image(tmp_path / "big.png", 400, 300)
    rng = np.random.default_rng(1)
    xs, ys = rng.uniform(10, 190, 60), rng.uniform(10, 140, 60)  # objects only in the top-left quarter
    (tmp_path / "p.csv").write_text("image,x,y\n" + "".join(f"big.png,{x:.1f},{y:.1f}\n" for x, y in zip(xs, ys)))
    found = read_annotations(tmp_path / "p.csv")
    units, notes = make_units(found, [(300, 400)], 8.0, DetectConfig(annotations="x"))
    assert {u.split for u in units} == {"train", "val", "test"} and len(units) >= 9
    assert max(u.box[2] for u in units) < 220 and max(u.box[3] for u in units) < 170
    assert any("annotated only within" in n for n in notes)
    covered = sum((u.box[2] - u.box[0]) * (u.box[3] - u.box[1]) for u in units)
    extent = (max(u.box[2] for u in units) - min(u.box[0] for u in units)) * (
        max(u.box[3] for u in units) - min(u.box[1] for u in units))
    assert covered == pytest.approx(extent)
    data = Data(found, [], [np.zeros((300, 400, 3), np.uint8)], units, 8.0, 8.0, 1.0, notes)
    x0, y0, x1, y1 = data.annotated_window(0)  # searches and the baseline look at the annotated part only
    assert x0 == 0 and y0 == 0 and max(u.box[2] for u in units) + 32 >= x1 > max(u.box[2] for u in units)
    assert y1 < 220
    images, targets, maps, _ = _targets(data, DetectConfig(annotations="x"))  # training planes: the window only
    x0, y0, x1, y1 = data.annotated_window(0, 80)
    assert images[0].shape[:2] == targets[0].shape[:2] == maps[0].shape == (y1 - y0, x1 - x0) != (300, 400)
    assert (targets[0][..., 0] == 1).sum() == 60 and (maps[0] >= 0).sum() == pytest.approx(covered, abs=200)
    everywhere = [Unit(0, (0, 0, 400, 300), "test")]
    assert Data(found, [], data.scaled, everywhere, 8.0, 8.0, 1.0, []).annotated_window(0) is None
    # the same objects as a dot image mark every object of it: the rest of the image holds none, and is used
    (tmp_path / "dotted" / "images").mkdir(parents=True)
    (tmp_path / "dotted" / "dots").mkdir()
    shutil.copy(tmp_path / "big.png", tmp_path / "dotted" / "images" / "big.png")
    marks = np.zeros((300, 400), np.uint8)
    marks[ys.astype(int), xs.astype(int)] = 255
    Image.fromarray(marks).save(tmp_path / "dotted" / "dots" / "big.png")
    dotted = read_annotations(tmp_path / "dotted")
    units, notes = make_units(dotted, [(300, 400)], 8.0, DetectConfig(annotations="x"))
    assert not any("annotated only within" in n for n in notes)
    assert max(u.box[2] for u in units) == 400 and max(u.box[3] for u in units) == 300


def test_point_size_is_measured_from_the_image_at_the_points():
    rng = np.random.default_rng(0)
    side = 200
    yy, xx = np.mgrid[:side, :side]
    for diameter in (8.0, 20.0):
        sigma = diameter / (2 * np.sqrt(2))
        image = rng.normal(20, 3, (side, side))
        points = []
        for cx in range(25, side, 50):
            for cy in range(25, side, 50):
                image += 200 * np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * sigma**2))
                points.append((cx, cy))

        class Item:
            pass
        item = Item()
        item.points = np.array(points, float)
        rgb = np.repeat(np.clip(image, 0, 255).astype(np.uint8)[..., None], 3, -1)
        assert estimate_point_size([rgb], [item]) == pytest.approx(diameter, rel=0.3)


def test_scores_match_by_radius_iou_and_average_precision():
    truth = np.array([[10, 10], [50, 50], [90, 90]], float)
    found = np.array([[12, 9], [80, 80], [51, 52]], float)
    rows, cols = score.match_points(truth, found, radius=5)
    assert sorted(zip(rows, cols)) == [(0, 0), (1, 2)]
    boxes = np.array([[0, 0, 10, 10], [20, 20, 30, 30]], float)
    iou = score.box_iou(boxes, np.array([[0, 0, 10, 5], [20, 20, 30, 30]], float))
    assert iou[0, 0] == pytest.approx(0.5) and iou[1, 1] == pytest.approx(1.0)
    hits = score.greedy_iou_matches(iou, np.array([0.9, 0.8]), 0.5)
    assert hits.tolist() == [True, True]
    assert score.average_precision(np.array([True, False, True]), np.array([0.9, 0.8, 0.7]), 2) == pytest.approx(
        1 * 0.5 + (2 / 3) * 0.5)


def test_tiles_find_every_peak_once_across_seams():
    from biolens.inference.tiles import find_peaks, select

    class Heat:
        """A stand-in network whose heat map has a peak at every pixel divisible by 37 in both axes, and whose
        density head puts one object's mass there."""
        def __call__(self, tiles, training=False):
            from biolens.models.objects import DENSITY_SCALE

            out = np.full(tiles.shape[:3] + (5,), -8.0, np.float32)
            mark = tiles[..., 0] == 255
            out[..., 0][mark] = 5.0
            out[..., 1:3] = 2.0
            out[..., 4] = np.where(mark, DENSITY_SCALE, -1.0)  # negative density is read as none
            return out

    image = np.zeros((300, 520, 3), np.uint8)
    image[::37, ::37, 0] = 255
    peaks = find_peaks(Heat(), image, 1, core=64, margin=16, min_distance=2)
    chosen = select(peaks, 0.5, 2)
    expected = {(x + 0.5, y + 0.5) for y in range(0, 300, 37) for x in range(0, 520, 37)}
    assert {tuple(c) for c in peaks.centres[chosen]} == expected
    assert peaks.density_count()[0] == pytest.approx(len(expected))  # each tile's core counted once
    inside = [(x, y) for x, y in expected if 40 <= x < 200 and 80 <= y < 240]
    assert peaks.density_count((40, 80, 200, 240))[0] == pytest.approx(len(inside))


def test_a_search_limited_to_a_region_finds_the_same_objects_there_and_runs_the_network_on_fewer_tiles():
    from biolens.inference.tiles import find_peaks, select

    class Heat:
        """Peaks at every pixel divisible by 37; counts the tiles it is run on."""
        tiles = 0

        def __call__(self, tiles, training=False):
            Heat.tiles += len(tiles)
            out = np.full(tiles.shape[:3] + (3,), -8.0, np.float32)
            out[..., 0][tiles[..., 0] == 255] = 5.0
            return out

    image = np.zeros((1000, 1200, 3), np.uint8)
    image[::37, ::37, 0] = 255
    region = (100, 50, 300, 260)  # x0, y0, x1, y1
    whole = find_peaks(Heat(), image, 1, core=64, margin=16, min_distance=2)
    tiles_whole, Heat.tiles = Heat.tiles, 0
    part = find_peaks(Heat(), image, 1, core=64, margin=16, min_distance=2, region=region)
    assert Heat.tiles < tiles_whole / 10

    def inside(peaks):
        centres = {tuple(c) for c in peaks.centres[select(peaks, 0.5, 2)]}
        return {(x, y) for x, y in centres if region[0] <= x < region[2] and region[1] <= y < region[3]}

    assert inside(part) == inside(whole) and len(inside(part)) == 36


def test_detect_then_predict_writes_objects_counts_and_overlays(detect_run, tmp_path):
    out = detect_run
    metrics = json.loads((out / "metrics.json").read_text())
    for key in ("f1", "f1_ci95", "count_mae", "count_mae_ci95", "precision", "recall", "baseline", "verdict",
                "threshold", "per_class"):
        assert key in metrics, key
    assert metrics["baseline"]["f1"] > 0.5  # bright discs: the blob detector must find them
    assert ("rough" in metrics["verdict"]) == (metrics["n_test_units"] < 5)  # a test of few units says so
    chosen = metrics["flips_validation_f1"]  # flip averaging kept only when it adds validation F1
    assert metrics["flips"] == (chosen["flips"] >= chosen["plain"] + 0.005) and 0 <= chosen["plain"] <= 1
    fresh = tmp_path / "new"
    fresh.mkdir()
    dot_images(fresh, n_images=3, side=128, seed=9)
    objects = tmp_path / "objects.csv"
    biolens("predict", out, fresh / "images", "--out", objects, "--overlays", tmp_path / "overlays")
    table = pd.read_csv(objects)
    assert list(table.columns) == ["image", "label", "score", "x", "y"]
    counts = pd.read_csv(tmp_path / "counts.csv")
    assert list(counts.columns[:3]) == ["image", "label", "count"] and len(counts) == 3
    assert counts["objects_found"].sum() == len(table)  # one row of objects.csv per object found
    if metrics["count_method"] == "peaks":
        assert (counts["count"] == counts["objects_found"]).all()
    assert sorted(p.name for p in (tmp_path / "overlays").iterdir()) == ["000.png", "001.png", "002.png"]


def test_an_averaged_model_outputs_its_members_mean_after_a_save_and_finds_peaks_like_one_network(tmp_path):
    """The model several networks are saved as (models/objects.averaged_networks): copies of the members under
    distinct names, one output, the mean of theirs, kept through model.keras and usable by the tiler."""
    import keras

    from biolens.inference.tiles import find_peaks
    from biolens.models.objects import averaged_networks, object_unet

    keras.utils.set_random_seed(0)
    members = [object_unet(2), object_unet(2)]  # two random starts
    keras.saving.save_model(averaged_networks(members), tmp_path / "model.keras")
    model = keras.saving.load_model(tmp_path / "model.keras", safe_mode=True, compile=False)
    tiles = np.random.default_rng(0).uniform(0, 255, (2, 64, 64, 3)).astype("float32")
    outputs = [np.asarray(m(tiles, training=False)) for m in members]
    assert not np.allclose(outputs[0], outputs[1])
    np.testing.assert_allclose(np.asarray(model(tiles, training=False)), np.mean(outputs, axis=0), atol=1e-5)
    assert [layer.name for layer in model.layers if isinstance(layer, keras.Model)] == ["member0", "member1"]
    peaks = find_peaks(model, tiles[0].astype(np.uint8), 2, core=64)
    assert len(peaks.scores) == len(peaks.centres) and peaks.density.shape[-1] == 2


@pytest.mark.slow  # a longer end-to-end run: pytest -m slow (keeps the default suite under 15 minutes)
def test_averaged_networks_are_saved_as_one_model_of_their_mean_that_predict_uses(tmp_path):
    """Two networks from different seeds (--networks 2; few objects get three by default, see the automatic choice
    below), each with its own checkpoints and best epoch, saved as one model.keras whose output is the mean of the
    networks' outputs; predict reads it like any run."""
    import keras

    data = dot_images(tmp_path / "data", n_images=8, side=64, seed=4)
    out = tmp_path / "run"
    biolens("detect", data, "--epochs", "1", "--networks", "2", "--no-learning-curve", "--out", out, "--seed", "3")
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["networks"] == 2 and len(metrics["member_best_epochs"]) == 2
    assert (out / "checkpoints" / "network2" / "best.weights.h5").exists()
    model = keras.saving.load_model(out / "model.keras", safe_mode=True, compile=False)
    tiles = np.random.default_rng(0).uniform(0, 255, (2, 64, 64, 3)).astype("float32")
    members = [np.asarray(model.get_layer(f"member{k}")(tiles, training=False)) for k in range(2)]
    assert not np.allclose(members[0], members[1])  # different seeds, different networks
    np.testing.assert_allclose(np.asarray(model(tiles, training=False)), np.mean(members, axis=0), atol=1e-5)
    methods = (out / "report.html").read_text()
    assert "2 networks were trained alike from random seeds 3, 1003" in methods and "as asked" in methods
    biolens("predict", out, data / "images", "--out", tmp_path / "objects.csv")
    assert len(pd.read_csv(tmp_path / "objects.csv")) > 0


@pytest.mark.slow
def test_vgg_cells_are_counted_better_than_the_blob_detector(tmp_path):
    """The counting benchmark's protocol on a smaller slice: 16 images to train, 20 to test."""
    images = SHARED / "vgg_cells" / "images"
    if not images.exists():
        pytest.skip("../shared/data/vgg_cells is not here")
    names = sorted(p.name for p in images.glob("*.png"))
    rows = ["image,x,y,split"]
    for k, name in enumerate(names[:16] + names[-20:]):
        dots = np.asarray(Image.open(SHARED / "vgg_cells" / "dots" / name).convert("RGB"))[..., 0] > 0
        ys, xs = np.nonzero(dots)
        rows += [f"{name},{x + .5},{y + .5},{'train' if k < 16 else 'test'}" for x, y in zip(xs, ys)]
    (tmp_path / "points.csv").write_text("\n".join(rows) + "\n")
    biolens("detect", tmp_path / "points.csv", "--images", images, "--out", tmp_path / "run", timeout=3000)
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["count_error_pct"] < 10 and metrics["f1"] > 0.8


def test_georeferenced_tiff_pixels_map_to_its_coordinate_system():
    from biolens.tasks.detect_predict import _georeference

    tif = SHARED / "trees" / "2018_SJER_3_252000_4107000_image_477.tif"
    if not tif.exists():
        pytest.skip("../shared/data/trees is not here")
    to_map = _georeference(tif)
    x0, y0 = to_map(0, 0)
    x1, y1 = to_map(400, 400)
    assert to_map.epsg == 32611  # UTM zone 11N, NEON's SJER site
    assert x1 - x0 == pytest.approx(40.0, abs=0.5) and y0 - y1 == pytest.approx(40.0, abs=0.5)  # 10 cm pixels
    assert _georeference(SHARED / "trees" / "OSBS_029.png") is None


@pytest.mark.slow  # a longer end-to-end run: pytest -m slow (keeps the default suite under 15 minutes)
def test_an_interrupted_detection_run_resumes_from_its_last_epoch(detect_run, tmp_path):
    """As a kill between epochs leaves it: run.json 'interrupted', state at an earlier epoch, no results yet."""
    copy = tmp_path / "run"
    import shutil

    shutil.copytree(detect_run, copy)
    info = json.loads((copy / "run.json").read_text())
    info["status"] = "interrupted"
    (copy / "run.json").write_text(json.dumps(info))
    state = json.loads((copy / "checkpoints" / "state.json").read_text())
    epochs = info["max_epochs"]  # the fixture's --epochs 4; the first network is left two epochs short
    state.update(epoch=epochs - 2, done=False, stopped_by=None)
    (copy / "checkpoints" / "state.json").write_text(json.dumps(state))
    for name in ("metrics.json", "model.keras", "report.html", "test_objects.csv"):
        (copy / name).unlink()
    result = biolens("detect", "--resume", copy)
    assert f"resuming after epoch {epochs - 2}" in result.stderr
    resumed = json.loads((copy / "run.json").read_text())
    assert resumed["status"] == "complete" and resumed["attempts"] == info["attempts"] + 1
    assert (copy / "model.keras").exists() and (copy / "report.html").exists()
    metrics = json.loads((copy / "metrics.json").read_text())
    assert metrics["epochs_run"] == epochs and metrics["networks"] == 1


def _review(detect_run, tmp_path):
    new = tmp_path / "new"
    dot_images(new, n_images=3, side=192, seed=21)
    out = tmp_path / "review"
    biolens("review", detect_run, new / "images", "--n", "4", "--out", out)
    regions = pd.read_csv(out / "regions.csv")
    assert len(regions) == 4 and list(regions.region) == [1, 2, 3, 4]
    objects = pd.read_csv(out / "objects.csv")
    assert list(objects.columns) == ["image", "label", "x", "y", "score", "region"]
    assert (out / "review.html").exists() and len(list((out / "regions").glob("*.png"))) == 4
    return new, out, regions


def test_review_picks_uncertain_regions_of_new_images(detect_run, tmp_path):
    _, out, regions = _review(detect_run, tmp_path)
    trained_on = set(pd.read_csv(detect_run / "splits.csv").image)
    assert not trained_on & set(regions.image)
    message = one_line_error(biolens("review", detect_run, Path(sorted(trained_on)[0]).parent, "--out",
                                     tmp_path / "again", check=False))
    assert "no new readable images" in message


@pytest.mark.slow  # a second detection run: pytest -m slow
def test_corrected_regions_retrain_with_the_same_test_images(detect_run, tmp_path):
    """The human loop on a detection run: review new images by region, correct objects.csv (here: replace the
    network's objects by the true dots, as a person would), retrain with --add-labels."""
    new, out, regions = _review(detect_run, tmp_path)
    rows = []  # the person's correction: the true centres of each region
    for region in regions.itertuples():
        dots = np.asarray(Image.open(new / "dots" / Path(region.image).name))
        ys, xs = np.nonzero(dots)
        inside = (xs >= region.xmin) & (xs < region.xmax) & (ys >= region.ymin) & (ys < region.ymax)
        rows += [{"image": region.image, "label": "object", "x": x + 0.5, "y": y + 0.5, "region": region.region}
                 for x, y in zip(xs[inside], ys[inside])]
    pd.DataFrame(rows).to_csv(out / "objects.csv", index=False)
    config = json.loads((detect_run / "run.json").read_text())["config"]
    again = tmp_path / "again"
    biolens("detect", config["annotations"], "--add-labels", out / "objects.csv", "--epochs", "1", "--seed", "0",
            "--out", again)
    before, after = pd.read_csv(detect_run / "splits.csv"), pd.read_csv(again / "splits.csv")
    assert before[before.split == "test"].image.tolist() == after[after.split == "test"].image.tolist()
    added = after[after.image.isin(regions.image)]
    assert len(added) == 4 and set(added.split) == {"train"}
    assert any("reviewed region" in w for w in json.loads((again / "run.json").read_text())["warnings"])
    bad = pd.DataFrame(rows[:1]).assign(region=99)
    bad.to_csv(out / "objects.csv", index=False)
    message = one_line_error(biolens("detect", config["annotations"], "--add-labels", out / "objects.csv",
                                     "--out", tmp_path / "never", check=False))
    assert "line 2" in message and "region 99" in message


def test_box_runs_keep_one_box_per_object_but_points_keep_close_peaks():
    from biolens.inference.tiles import Peaks, select

    centres = np.array([[50.0, 50.0], [54.0, 52.0], [90.0, 50.0]])
    sizes = np.array([[30.0, 30.0], [28.0, 30.0], [30.0, 30.0]])
    peaks = Peaks(centres, np.zeros(3, int), np.array([0.9, 0.6, 0.8]), sizes)
    assert select(peaks, 0.5, 2).tolist() == [0, 1, 2]  # points: 4 px apart is two touching cells
    assert select(peaks, 0.5, 2, box_overlap=0.5).tolist() == [0, 2]  # boxes: the weaker twin is the same crown
    assert select(peaks, 0.7, 2, box_overlap=0.5).tolist() == [0, 2]


def test_box_suppression_is_greedy_nms_and_absurd_sizes_do_not_make_every_pair_neighbours():
    """Thousands of low-score candidates (the threshold search starts at 0.03) with a few boxes of the size head's
    clip (e^8 px): the same boxes as a brute-force greedy NMS. (Before, those few sizes made every pair of candidates
    a neighbour: 6,000 candidates took 264 s and 2.9 GB; a tree run's 10^4 held 14 GB.)"""
    from biolens.inference.tiles import Peaks, select
    from biolens.stats.objects import box_iou

    rng = np.random.default_rng(0)
    n = 2000
    centres = rng.uniform(0, 600, (n, 2))
    sizes = rng.uniform(15, 40, (n, 2))
    sizes[:3] = np.exp(8)
    peaks = Peaks(centres, np.zeros(n, int), rng.uniform(0, 1, n), sizes)
    boxes = np.concatenate([centres - sizes / 2, centres + sizes / 2], 1)
    kept: list[int] = []
    for i in np.argsort(-peaks.scores, kind="stable"):
        if not kept or (box_iou(boxes[i:i + 1], boxes[kept])[0] <= 0.5).all():
            kept.append(int(i))
    assert select(peaks, 0.0, 1e-6, box_overlap=0.5).tolist() == sorted(kept)


def test_review_takes_the_most_uncertain_regions_but_spreads_them_over_images():
    from biolens.tasks.review_objects import pick_regions

    regions = [{"image": "a", "uncertainty": u} for u in (9.0, 8.0, 7.0, 6.0)] + \
              [{"image": "b", "uncertainty": u} for u in (5.0, 0.5)]
    picked = pick_regions(regions, 3)
    assert [(r["image"], r["uncertainty"]) for r in picked] == [("a", 9.0), ("b", 5.0), ("a", 8.0)]  # b before a second a
    assert len(pick_regions(regions, 50)) == 6


@pytest.mark.parametrize("scale", [0.23, 0.6, 1.08, 1.7])
def test_tiles_resized_from_their_own_window_equal_the_whole_image_resized(scale):
    """Prediction resizes one tile at a time (memory: the original plus a few tiles); the pixels are those of
    resizing the whole image, so the network sees what training showed it."""
    from scipy import ndimage

    from biolens.inference.tiles import resize, scaled_shape, scaled_window

    image = ndimage.gaussian_filter(np.random.default_rng(0).integers(0, 255, (700, 900, 3)).astype(np.uint8), (3, 3, 0))
    whole = resize(image, scale)
    assert whole.shape[:2] == scaled_shape(image, scale)
    for y, x in [(0, 0), (37, 101), (whole.shape[0] - 50, whole.shape[1] - 60)]:
        tile = scaled_window(image, scale, y, x, 48).astype(int)
        reference = whole[y:y + 48, x:x + 48].astype(int)
        assert np.abs(tile[:reference.shape[0], :reference.shape[1]] - reference).max() <= 2


def test_large_16_bit_images_become_8_bit_without_a_float_copy():
    from biolens.readers.image_decode import _to_unit_range, to_uint8

    image = np.random.default_rng(1).integers(0, 4096, (1100, 300, 3)).astype(np.uint16)  # 12-bit in 16
    unit, _ = _to_unit_range(image)
    expected = np.clip(unit * 255.0 + 0.5, 0, 255).astype(np.uint8)
    assert np.array_equal(to_uint8(image), expected)


@pytest.mark.slow  # two trainings: pytest -m slow
def test_a_region_split_delivers_a_network_trained_on_every_region_and_says_so(tmp_path):
    data = dot_images(tmp_path / "data", n_images=2, side=160, seed=3)
    out = tmp_path / "run"
    biolens("detect", data, "--epochs", "3", "--out", out, "--seed", "0")
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["split"]["unit"] == "region"
    final = metrics["final_model"]
    assert final["refit"] and final["units"] == sum(metrics["split"][s] for s in ("train", "val", "test")) and 1 <= final["epochs"] <= 3
    assert (out / "checkpoints" / "final" / "state.json").exists()
    assert "trained again on all" in (out / "report.html").read_text()
    objects = tmp_path / "objects.csv"
    biolens("predict", out, data / "images", "--out", objects)
    assert len(pd.read_csv(objects)) > 0


def test_box_size_factor_is_the_median_ratio_of_annotated_to_found_on_validation_units():
    from types import SimpleNamespace

    from biolens.inference.tiles import Peaks
    from biolens.tasks.detect import Unit, size_factor

    centres = np.array([[20.0, 20.0], [60.0, 20.0], [100.0, 20.0], [20.0, 60.0], [60.0, 60.0], [100.0, 60.0]])
    annotated = SimpleNamespace(points=centres, boxes=np.concatenate([centres - [6, 7], centres + [6, 7]], 1))
    data = SimpleNamespace(annotations=SimpleNamespace(items=[annotated]), scale=1.0,
                           images=[np.zeros((100, 130, 3), np.uint8)],
                           units=[Unit(0, (0, 0, 64, 100), "val"), Unit(0, (64, 0, 130, 100), "val")])
    found = [Peaks(centres.copy(), np.zeros(6, int), np.full(6, 0.9), np.full((6, 2), 10.0))]  # 10 x 10 boxes
    assert size_factor(data, found, 1, 5.0, 0.5) == [1.2, 1.4]        # 12/10 wide, 14/10 high
    assert size_factor(data, found, 1, 5.0, 0.95) == [1.0, 1.0]       # nothing above the threshold: no factor


def test_learning_curve_parts_are_nested_training_units_and_auto_says_why_it_did_not_run():
    from types import SimpleNamespace

    from biolens.tasks import detect_curve
    from biolens.tasks.detect import Unit

    units = [Unit(k, (0, 0, 10, 10), "test" if k < 2 else "val" if k < 4 else "train") for k in range(12)]
    quarter, half = detect_curve.nested_parts(units, seed=3)
    assert len(quarter) == 2 and len(half) == 4 and set(quarter) <= set(half)
    assert all(units[k].split == "train" for k in half)
    points = np.array([[5.0, 5.0]] * 3)
    items = [SimpleNamespace(points=points, labels=["cell"] * 3) for _ in range(12)]
    data = SimpleNamespace(units=units, region_split=False,
                           annotations=SimpleNamespace(items=items, class_names=["cell"]))
    run = SimpleNamespace(info={})  # a run that has spent no time yet
    state = {"train_seconds": 100.0, "steps_per_epoch": 16}
    assert detect_curve.expected_seconds(state) == 400.0  # a part's epoch takes the minimum 16 steps, as the run's did
    assert detect_curve.plan("on", data, state, run, 0) is None
    # 8 training images of 3 objects: a quarter holds 6 objects, too few for "auto"
    assert "rarest class has 24" in detect_curve.plan("auto", data, state, run, 0)
    assert "biolens learning-curve" in detect_curve.plan("off", data, state, run, 0)
    assert "time-budget" in detect_curve.plan("on", data, state, run, 50)


@pytest.mark.slow  # four more trainings: pytest -m slow
def test_the_learning_curve_added_to_a_finished_detection_run_scores_parts_on_its_test_images(detect_run, tmp_path):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(detect_run, run)
    before = json.loads((run / "metrics.json").read_text())
    assert "biolens learning-curve" in before["learning_curve_skipped"]  # the report offers the second step
    assert "biolens learning-curve" in (run / "report.html").read_text()
    biolens("learning-curve", run)
    metrics = json.loads((run / "metrics.json").read_text())
    curve = metrics["learning_curve"]
    assert "learning_curve_skipped" not in metrics and metrics["f1"] == before["f1"]  # the run's figures stay
    assert curve["fractions"] == [0.25, 0.5, 0.25, 0.5, 1.0] and curve["metric"] == "f1"
    assert curve["sizes"][-1] > max(curve["sizes"][:-1]) and curve["sizes"][0] < curve["sizes"][1]
    assert curve["scores"][-1] == round(metrics["f1"], 4) and all(0 <= s <= 1 for s in curve["scores"])
    assert "annotated objects" in curve["advice"] or "scatter" in curve["advice"]
    assert (run / "figures" / "learning_curve.png").exists()
    parts = sorted(p.parent.name for p in (run / "checkpoints" / "learning_curve").glob("*/scores.json"))
    assert parts == ["0.25_0", "0.25_1", "0.5_0", "0.5_1"]  # only the scores are kept, not the weights
    assert not list((run / "checkpoints" / "learning_curve").rglob("*.keras"))
    report = (run / "report.html").read_text()
    assert "Is the annotation enough?" in report and curve["advice"][:40] in report
    assert "already" in biolens("learning-curve", run).stdout + biolens("learning-curve", run).stderr


def test_a_learning_curve_is_refused_in_one_line_for_runs_that_cannot_have_one(detect_run, tmp_path):
    import shutil

    other = tmp_path / "other"
    shutil.copytree(detect_run, other)
    info = json.loads((other / "run.json").read_text())
    (other / "run.json").write_text(json.dumps({**info, "status": "interrupted"}))
    assert "resume it first" in one_line_error(biolens("learning-curve", other, check=False))
    (other / "run.json").write_text(json.dumps({**info, "task": "cluster"}))
    assert "only image or sequence classification and object detection" in one_line_error(biolens("learning-curve", other, check=False))


@pytest.mark.parametrize("layout", ["tiles", "strips", "one strip", "16-bit grey", "one compressed strip"])
def test_a_large_tiff_is_read_from_disk_by_windows_with_the_pixels_read_whole_gives(tmp_path, monkeypatch, layout):
    import tifffile

    from biolens.inference.tiles import scaled_window, window
    from biolens.readers import image_decode

    rng = np.random.default_rng(4)
    path = tmp_path / "ortho.tif"
    if layout == "16-bit grey":
        tifffile.imwrite(path, rng.integers(0, 4096, (700, 900)).astype(np.uint16), tile=(128, 128))
    else:
        pixels = rng.integers(0, 256, (700, 900, 3), dtype=np.uint8)
        options = {"tiles": {"tile": (128, 128), "compression": "zlib"}, "strips": {"rowsperstrip": 32,
                   "compression": "zlib"}, "one strip": {"rowsperstrip": 700},
                   "one compressed strip": {"rowsperstrip": 700, "compression": "zlib"}}[layout]
        tifffile.imwrite(path, pixels, photometric="rgb", **options)
    whole = image_decode.read_whole(path)
    monkeypatch.setattr(image_decode, "LAZY_BYTES", 1000)  # "too large to hold": every test file here
    monkeypatch.setattr(image_decode, "LAZY_CHUNK_BYTES", 1 << 20)
    windows = image_decode.read_for_tiles(path)
    if layout == "one compressed strip":  # every window would decode the whole strip: read whole instead
        assert isinstance(windows, np.ndarray) and np.array_equal(windows, whole)
        return
    assert isinstance(windows, image_decode.TiffWindows) and windows.shape == whole.shape
    assert np.array_equal(windows[13:410, 600:900], whole[13:410, 600:900])
    for y0, x0 in ((-20, -30), (650, 870), (100, 200)):  # mirrored at every edge, as on the whole image
        assert np.array_equal(window(windows, y0, x0, 96), window(whole, y0, x0, 96))
        assert np.array_equal(scaled_window(windows, 0.37, y0, x0, 64), scaled_window(whole, 0.37, y0, x0, 64))
    thumbnail, step = windows.thumbnail(max_side=300)
    assert step == 3 and np.array_equal(thumbnail, whole[::3, ::3])


def test_objects_found_in_a_tiff_read_by_windows_are_those_of_the_whole_image(tmp_path, monkeypatch):
    import tifffile

    from biolens.inference.tiles import find_peaks, select
    from biolens.models.objects import DENSITY_SCALE
    from biolens.readers import image_decode

    class Heat:  # a stand-in network: a peak wherever the red channel is 255
        def __call__(self, tiles, training=False):
            out = np.full(tiles.shape[:3] + (5,), -8.0, np.float32)
            out[..., 0][tiles[..., 0] >= 250] = 5.0
            out[..., 4] = np.where(tiles[..., 0] >= 250, DENSITY_SCALE, -1.0)
            return out

    image = np.zeros((600, 700, 3), np.uint8)
    image[5::41, 7::41, 0] = 255
    tifffile.imwrite(tmp_path / "big.tif", image, tile=(64, 64), photometric="rgb")
    monkeypatch.setattr(image_decode, "LAZY_BYTES", 1000)
    windows = image_decode.read_for_tiles(tmp_path / "big.tif")
    assert isinstance(windows, image_decode.TiffWindows)
    for scale in (1.0, 0.5):
        on_disk = find_peaks(Heat(), windows, 1, scale=scale, core=128, margin=16, min_distance=2)
        in_memory = find_peaks(Heat(), image, 1, scale=scale, core=128, margin=16, min_distance=2)
        assert np.array_equal(on_disk.centres[select(on_disk, 0.5, 2)], in_memory.centres[select(in_memory, 0.5, 2)])
        assert on_disk.density_count()[0] == pytest.approx(in_memory.density_count()[0])


def test_flip_averaging_mirrors_each_output_back_onto_its_tile():
    from biolens.inference.tiles import _outputs

    tiles = np.random.default_rng(2).normal(size=(2, 32, 48, 3)).astype(np.float32)
    echo = lambda batch, training=False: batch * 2.0  # noqa: E731 - a stand-in network that copies its input
    assert np.allclose(_outputs(echo, tiles, flips=True), tiles * 2.0)  # mirrored back: the same picture
    ramp = np.broadcast_to(np.arange(48, dtype=np.float32)[None, None, :, None], (2, 32, 48, 1))
    left_to_right = lambda batch, training=False: ramp  # noqa: E731 - a network that ignores what it sees
    averaged = _outputs(left_to_right, tiles, flips=True)
    assert np.allclose(averaged, 23.5)  # a position bias cancels over the mirror images


def test_each_class_is_counted_by_the_method_that_counted_it_best_on_validation():
    from types import SimpleNamespace

    from biolens.inference.tiles import BLOCK, Peaks
    from biolens.tasks.detect import Unit, _choose_count_method, _chosen_counts, count_method_name

    # one validation image: 10 touching red cells (3 found as peaks) and 2 white cells (2 found)
    points = np.array([[4.0 + 6 * k, 10.0] for k in range(10)] + [[20.0, 40.0], [40.0, 40.0]])
    labels = ["red"] * 10 + ["white"] * 2
    data = SimpleNamespace(scale=1.0, units=[Unit(0, (0, 0, 64, 64), "val")],
                           annotations=SimpleNamespace(items=[SimpleNamespace(points=points, labels=labels)],
                                                       class_names=["red", "white"]))
    found = [{"centres": np.array([[4.0, 10.0], [16.0, 10.0], [28.0, 10.0], [20.0, 40.0], [40.0, 40.0]]),
              "classes": np.array([0, 0, 0, 1, 1])}]
    density = np.zeros((64 // BLOCK, 64 // BLOCK, 2), np.float32)
    density[2, 2] = [9.6, 3.1]  # the density head: red 9.6 (close to 10), white 3.1 (off by one)
    peaks = [Peaks(np.zeros((0, 2)), np.zeros(0, int), np.zeros(0), np.zeros((0, 2)), None, density)]
    methods, choice, calibration = _choose_count_method(data, found, peaks, radius=3.0)
    assert methods == {"red": "density", "white": "peaks"} and count_method_name(methods) == "per class"
    assert calibration == {}  # one validation unit: nothing to check a correction on
    assert choice["red"] == {"peaks_mae": 7.0, "density_mae": 0.4} and choice["white"]["peaks_mae"] == 0.0
    counts = _chosen_counts(methods, ["red", "white"], np.array([[3.0, 2.0]]), np.array([[9.6, 3.1]]))
    assert counts.tolist() == [[9.6, 2.0]]


def test_density_counts_shrunk_towards_the_typical_crowding_are_corrected_only_when_validation_says_so():
    """A density head trained with squared error undercounts crowded images and overcounts sparse ones, on its
    training images as on new ones (vgg_cells: slope 1.14 and 1.15). The straight-line correction is fitted on the
    training units and kept only when it counts the validation units clearly better; an unbiased head keeps its
    raw sums."""
    from biolens.tasks.detect import calibrated_density, fit_density_calibration

    rng = np.random.default_rng(3)
    area = 256.0 * 256.0

    def units(n, shrink=True):
        truth = rng.integers(70, 320, n).astype(float)
        density = (0.87 * truth + 20 if shrink else truth) + rng.normal(0, 2, n)
        return density, np.full(n, area), truth

    train, val = units(20), units(5)
    fitted, val_mae = fit_density_calibration(train, val)
    assert fitted is not None and 1.1 < fitted[0] < 1.2
    assert val_mae < 0.5 * np.abs(val[0] - val[2]).mean()
    fresh = rng.integers(70, 320, 50).astype(float)
    corrected = calibrated_density(0.87 * fresh + 20, np.full(50, area), fitted)
    assert np.abs(corrected - fresh).mean() < 5 < np.abs(0.87 * fresh + 20 - fresh).mean()
    assert fit_density_calibration(units(20, shrink=False), units(5, shrink=False))[0] is None
    assert fit_density_calibration(train, units(5, shrink=False))[0] is None  # validation disagrees: not kept
    assert fit_density_calibration(tuple(v[:3] for v in train), val)[0] is None  # too few units to fit
    assert calibrated_density(np.array([2.0]), np.array([1e4]), [1.0, -5.0]).tolist() == [0.0]  # never below 0


def test_review_reads_a_large_tiff_by_windows_and_picks_the_regions_it_picks_on_the_whole_image(detect_run, tmp_path,
                                                                                                  monkeypatch):
    import tifffile

    import biolens as api
    from biolens.readers import image_decode

    new = dot_images(tmp_path / "new", n_images=2, side=192, seed=21)
    tiffs = tmp_path / "tiffs"
    tiffs.mkdir()
    for png in sorted((new / "images").iterdir()):
        tifffile.imwrite(tiffs / f"{png.stem}.tif", np.asarray(Image.open(png).convert("RGB")), tile=(64, 64),
                         photometric="rgb", compression="zlib")
    whole = api.review(detect_run, tiffs, tmp_path / "whole", n=3)
    monkeypatch.setattr(image_decode, "LAZY_BYTES", 1000)  # every file here is now "too large to hold decoded"
    assert isinstance(image_decode.read_for_tiles(next(tiffs.iterdir())), image_decode.TiffWindows)
    windowed = api.review(detect_run, tiffs, tmp_path / "windowed", n=3)
    pd.testing.assert_frame_equal(windowed.reset_index(drop=True), whole.reset_index(drop=True))
    for name in ("objects.csv", "regions/region_001.png"):
        assert (tmp_path / "windowed" / name).read_bytes() == (tmp_path / "whole" / name).read_bytes()


def test_a_mask_run_outlines_objects_beside_a_threshold_and_watershed_baseline(tmp_path):
    """Integer label images (QuPath/Labkit export) -> a mask run: mask AP/F1 of the network and of the classical
    Otsu + watershed peer on the same test units, in metrics.json and the report; predict writes areas and a label
    TIFF per image."""
    import tifffile

    rng = np.random.default_rng(7)
    root = tmp_path / "nuclei"
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    yy, xx = np.mgrid[:96, :96]
    for k in range(10):
        image, labels = rng.normal(35, 6, (96, 96)), np.zeros((96, 96), np.uint16)
        for label in range(1, int(rng.integers(5, 9)) + 1):
            x, y = rng.uniform(8, 88, 2)
            disc = (xx - x) ** 2 + (yy - y) ** 2 <= rng.uniform(3.5, 5.5) ** 2
            disc &= labels == 0
            labels[disc], image[disc] = label, 170
        Image.fromarray(np.clip(image, 0, 255).astype(np.uint8)).convert("RGB").save(root / "images" / f"n{k}.png")
        tifffile.imwrite(root / "masks" / f"n{k}.tif", labels)
    out = tmp_path / "run"
    biolens("detect", root, "--epochs", "3", "--no-learning-curve", "--networks", "1", "--out", out, "--seed", "0")
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["kind"] == "masks" and 0 <= metrics["masks"]["ap50"] <= 1
    baseline = metrics["masks"]["baseline"]
    assert baseline["polarity"] == "bright" and baseline["f1_iou50"] > 0.8  # separate bright discs: the easy case
    assert 'id="mask-baseline"' in (out / "report.html").read_text() and "watershed" in metrics["verdict"]
    (tmp_path / "pred").mkdir()
    biolens("predict", out, root / "images" / "n0.png", "--out", tmp_path / "pred" / "objects.csv")
    objects = pd.read_csv(tmp_path / "pred" / "objects.csv")
    assert "area" in objects.columns and (tmp_path / "pred" / "n0_labels.tif").exists()


def test_the_run_says_to_train_longer_only_when_the_validation_loss_was_still_improving():
    from biolens.tasks.detect import _train_longer_advice

    still = _train_longer_advice({"stopped_by": "all epochs done", "best_epoch": 39, "epochs_run": 40}, 40)
    assert "--epochs 80" in still and "39 of 40" in still
    assert _train_longer_advice({"stopped_by": "all epochs done", "best_epoch": 20, "epochs_run": 40}, 40) is None
    stopped = "early stopping (no better validation loss for 12 epochs)"
    assert _train_longer_advice({"stopped_by": stopped, "best_epoch": 21, "epochs_run": 33}, 40) is None


def test_automatic_epochs_and_networks_follow_the_number_of_annotated_training_objects(tmp_path):
    """--epochs 0 (the default): 40 epochs for a few hundred objects, 80 from 1,000 training objects on (where longer
    training measured better); --networks 0: three networks averaged under 300 training objects, else one; given
    values are kept."""
    from PIL import Image

    from biolens.config import DetectConfig
    from biolens.tasks.detect import _prepare, how_many_networks, most_epochs

    few = dot_images(tmp_path / "few", n_images=12, side=96, seed=1)
    config = DetectConfig(annotations=str(few)).validate()
    data = _prepare(config, None, tmp_path / "run-few").data
    assert most_epochs(config, data) == 40 and how_many_networks(config, data) == 3
    assert most_epochs(DetectConfig(annotations=str(few), epochs=7).validate(), data) == 7
    assert how_many_networks(DetectConfig(annotations=str(few), networks=1).validate(), data) == 1
    rng = np.random.default_rng(0)
    rows = ["image,x,y"]
    for k in range(10):
        Image.fromarray(np.full((256, 256, 3), 30, np.uint8)).save(tmp_path / f"field{k}.png")
        rows += [f"field{k}.png,{x:.1f},{y:.1f}" for x, y in rng.uniform(4, 252, (200, 2))]
    (tmp_path / "many.csv").write_text("\n".join(rows) + "\n")
    config = DetectConfig(annotations=str(tmp_path / "many.csv"), object_size=6).validate()
    data = _prepare(config, None, tmp_path / "run-many").data
    assert most_epochs(config, data) == 80 and how_many_networks(config, data) == 1


def test_a_network_whose_compiled_pass_was_used_is_freed_once_dropped():
    """A run trains up to 18 object networks (3 averaged, learning-curve parts, the final one); the cache of
    compiled passes once held each of them for the life of the process."""
    import gc
    import weakref

    import keras

    from biolens.engine.training import compiled_forward

    model = keras.Sequential([keras.Input((None, None, 3)), keras.layers.Conv2D(5, 1)])
    out = compiled_forward(model)(np.ones((1, 8, 8, 3), np.float32))
    assert out.shape == (1, 8, 8, 5)
    assert compiled_forward(model) is compiled_forward(model)  # compiled once per network
    alive = weakref.ref(model)
    del model
    gc.collect()
    assert alive() is None


@pytest.mark.slow  # 30-45 s on 2 cores; the default suite stays under 15 minutes (pytest -m slow)
def test_the_reused_compiled_network_trains_the_next_network_exactly_as_a_new_one_would():
    """One compiled object network per process serves every network of a run (each new one's XLA training step
    stayed in memory for good); reset for the next network, with another seed and schedule, it must train exactly
    as a model compiled anew: same initial weights, fresh optimiser moments, step count and schedule."""
    import keras

    from biolens.models.objects import detached_copy
    from biolens.tasks import detect

    rng = np.random.default_rng(0)
    x = rng.uniform(0, 255, (4, 64, 64, 3)).astype(np.float32)
    y = np.zeros((4, 64, 64, 6), np.float32)
    y[..., -1] = 1.0
    y[:, 28:36, 28:36, 0] = 0.5
    y[:, 32, 32, 0] = 1.0

    def train(seed: int, epochs: int):
        keras.utils.set_random_seed(seed)
        model = detect.compiled_network(1, 3, "points", 2e-3, steps=2, epochs=epochs)
        model.fit(x, y, batch_size=2, epochs=epochs, verbose=0)
        return model, detached_copy(model).get_weights()

    import tensorflow as tf

    detect._NETWORKS.clear()
    try:
        with tf.device("/CPU:0"):  # a GPU's kernels need not repeat themselves bit for bit; the CPU's do
            first, first_weights = train(1, 3)
            reused, reused_weights = train(2, 5)
            detect._NETWORKS.clear()
            new, new_weights = train(2, 5)
    finally:
        detect._NETWORKS.clear()  # later tests compile their own, wherever they run
    assert reused is first and new is not first
    assert int(reused.optimizer.iterations.numpy()) == int(new.optimizer.iterations.numpy()) == 10
    assert all(np.allclose(a, b, rtol=1e-5, atol=1e-6) for a, b in zip(reused_weights, new_weights))
    assert not all(np.allclose(a, b, atol=1e-3) for a, b in zip(first_weights, new_weights))


def test_the_watershed_baseline_of_a_mask_image_annotated_on_a_corner_segments_that_corner_in_place(tmp_path):
    """Objects outlined in the bottom-right corner of a large image: the Otsu + watershed peer works in the annotated
    window only, and its labels land back where the objects are (an offset would score F1 0)."""
    import tifffile

    from biolens.tasks.detect import _prepare, _watershed_baseline

    rng = np.random.default_rng(3)
    root = tmp_path / "corner"
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    image, labels = rng.normal(35, 6, (900, 900)), np.zeros((900, 900), np.uint16)
    yy, xx = np.mgrid[:900, :900]
    for label in range(1, 61):
        x, y = rng.uniform(700, 890, 2)
        disc = ((xx - x) ** 2 + (yy - y) ** 2 <= rng.uniform(4.0, 5.5) ** 2) & (labels == 0)
        labels[disc], image[disc] = label, 170
    Image.fromarray(np.clip(image, 0, 255).astype(np.uint8)).convert("RGB").save(root / "images" / "big.png")
    tifffile.imwrite(root / "masks" / "big.tif", labels)
    config = DetectConfig(annotations=str(root)).validate()
    data = _prepare(config, None, tmp_path / "run").data
    window = data.annotated_window(0)
    assert window is not None and window[0] > 0.5 * data.scaled[0].shape[1]
    baseline = _watershed_baseline(data)
    assert baseline["polarity"] == "bright" and baseline["f1_iou50"] > 0.8


def test_boxes_of_objects_at_the_border_are_cut_at_the_image_edge():
    """A crown at the tile's edge is boxed by its part inside the picture (annotation tools never give negative or
    beyond-the-edge coordinates, and a scorer compares like with like); boxes inside are untouched."""
    from types import SimpleNamespace

    from biolens.inference.tiles import Peaks
    from biolens.tasks.detect import _objects

    centres = np.array([[2.0, 3.0], [30.0, 25.0], [58.0, 49.0]])
    peaks = Peaks(centres * 0.5, np.zeros(3, int), np.full(3, 0.9), np.full((3, 2), 5.0))  # model scale 0.5
    data = SimpleNamespace(scale=0.5, images=[np.zeros((50, 60, 3), np.uint8)])
    boxes = _objects(peaks, np.arange(3), data, 0)["boxes"]
    assert np.allclose(boxes, [[0, 0, 7, 8], [25, 20, 35, 30], [53, 44, 60, 50]])


def test_z_stacks_are_asked_about_then_projected_for_training_and_for_predicting(tmp_path):
    """Objects in z-stacks: without --stack the run stops in one line saying what to choose (advice the detect
    command can now follow); with --stack max the run trains on the projection, and predict reads new stacks the
    way the run was trained."""
    data = dot_images(tmp_path / "data", n_images=10, side=96, seed=1)
    as_z_stacks(data)
    args = ["detect", data, "--epochs", "4", "--no-learning-curve", "--networks", "1", "--seed", "0"]
    asked = one_line_error(biolens(*args, "--out", tmp_path / "asked", check=False))
    assert "a multi-page TIFF (3 z-planes)" in asked and "--stack max, mean or first" in asked
    biolens(*args, "--stack", "max", "--out", tmp_path / "run")
    assert json.loads((tmp_path / "run" / "run.json").read_text())["config"]["stack"] == "max"
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["f1"] > 0.5
    new = dot_images(tmp_path / "new", n_images=2, side=128, seed=21)
    truth = [int((np.asarray(Image.open(p)) > 0).sum()) for p in sorted((new / "dots").glob("*.png"))]
    as_z_stacks(new)
    biolens("predict", tmp_path / "run", new / "images", "--out", tmp_path / "objects.csv")
    counts = pd.read_csv(tmp_path / "objects.csv").groupby("image").size()
    assert len(counts) == 2 and all(abs(found - expected) <= 3 for found, expected in zip(counts.sort_index(), truth))
