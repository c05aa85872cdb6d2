"""Tree crowns in one large aerial tile, annotated on part of it — the way a user meets it: the crowns of the left
half of ../shared/data/trees/2019_YELL_2_541000_4977000_image_crop.png (1249x1035 px, 279 crowns) are given as a
boxes CSV; `biolens detect` (default settings) trains on them, `biolens predict` runs on the whole tile, and the
crowns of the right half (never annotated for training) are scored: box precision/recall/F1 at IoU 0.4 and 0.5 and
the count error. DeepForest's prebuilt model (pretrained on millions of crowns) scores precision 0.78 / recall 0.705
on its own sample tile; the target here is F1 >= 0.6 from scratch.

    python benchmarks/detect_trees.py [--out runs/bench_trees] [--seed 0]
"""
from __future__ import annotations

import argparse
import json
import shutil
import time
import xml.etree.ElementTree as ElementTree
from pathlib import Path

import numpy as np

import biolens

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "trees"
TILE = "2019_YELL_2_541000_4977000_image_crop"


def crowns() -> np.ndarray:
    root = ElementTree.parse(DATA / f"{TILE}.xml").getroot()
    return np.array([[float(o.find("bndbox").findtext(c)) for c in ("xmin", "ymin", "xmax", "ymax")]
                     for o in root.findall("object")])


def main() -> None:
    from biolens.stats.objects import box_iou, greedy_iou_matches, prf

    parser = argparse.ArgumentParser()
    parser.add_argument("--out", default="runs/bench_trees")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=None, help="most training epochs (default: biolens's)")
    parser.add_argument("--reuse", action="store_true", help="score an existing finished run at --out again")
    args = parser.parse_args()
    out = Path(args.out)
    data = Path(args.out + "_data")
    shutil.rmtree(data, ignore_errors=True)
    data.mkdir(parents=True)
    shutil.copy(DATA / f"{TILE}.png", data / f"{TILE}.png")
    boxes = crowns()
    width = 1249
    centre_x = (boxes[:, 0] + boxes[:, 2]) / 2
    train, test = boxes[centre_x < width / 2], boxes[centre_x >= width / 2]
    rows = ["image,xmin,ymin,xmax,ymax,label"] + [f"{TILE}.png,{a:.0f},{b:.0f},{c:.0f},{d:.0f},Tree" for a, b, c, d in train]
    (data / "left_half.csv").write_text("\n".join(rows) + "\n")
    started = time.time()
    run = biolens.load_run(out) if args.reuse else biolens.detect(data / "left_half.csv", out=out, seed=args.seed,
                                                                           learning_curve="off",
                                                                           **({"epochs": args.epochs} if args.epochs else {}))
    predicted = Path(args.out + "_predict")
    predicted.mkdir(parents=True, exist_ok=True)
    table = biolens.predict(run, [data / f"{TILE}.png"], out=predicted / "objects.csv", force=True)
    found = table[["xmin", "ymin", "xmax", "ymax"]].to_numpy(float)
    found_right = (found[:, 0] + found[:, 2]) / 2 >= width / 2
    scores = table["score"].to_numpy(float)[found_right]
    result = {"seconds": round(time.time() - started), "train_crowns": len(train), "test_crowns": len(test),
              "found_right_half": int(found_right.sum())}
    for threshold in (0.4, 0.5):
        hits = greedy_iou_matches(box_iou(test, found[found_right]), scores, threshold)
        result[f"iou{int(threshold * 100)}"] = {k: round(v, 4) for k, v in prf(int(hits.sum()), len(hits), len(test)).items()}
    result["count_error"] = int(found_right.sum()) - len(test)
    result["run_metrics"] = {k: run.metrics.get(k) for k in ("f1", "count_mae", "count_method", "boxes", "split")}
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
