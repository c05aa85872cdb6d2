"""Blood cells in whole smear photos, ../shared/data/bccd_smears, with the data set's own split: the Pascal VOC boxes
(RBC, WBC, Platelets) become a boxes CSV with a `split` column from splits/{train,val,test}.txt, `biolens detect`
trains with default settings, and the 72 test photos are scored per class: AP@0.5, box F1, count error with 95%
CIs, beside the Laplacian-of-Gaussian blob detector of the same run. The one zero-size box (BloodImage_00338) is
left out here, as biolens's VOC reader leaves it out (in a CSV a user gives it is an error naming the line).

    python benchmarks/detect_bccd.py [--out runs/bench_bccd] [--seed 0]
"""
from __future__ import annotations

import argparse
import json
import time
import xml.etree.ElementTree as ElementTree
from pathlib import Path

import biolens

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "bccd_smears"


def boxes_csv(folder: Path) -> Path:
    split_of = {}
    for split in ("train", "val", "test"):
        for stem in (DATA / "splits" / f"{split}.txt").read_text().split():
            split_of[stem] = split
    rows = ["image,xmin,ymin,xmax,ymax,label,split"]
    for xml in sorted((DATA / "annotations").glob("*.xml")):
        if xml.stem not in split_of:
            continue
        root = ElementTree.parse(xml).getroot()
        for obj in root.findall("object"):
            box = [float(obj.find("bndbox").findtext(c)) for c in ("xmin", "ymin", "xmax", "ymax")]
            if box[2] - box[0] < 2 or box[3] - box[1] < 2:  # BloodImage_00338's zero-size box, as the VOC reader does
                continue
            rows.append(f"{xml.stem}.jpg,{box[0]:g},{box[1]:g},{box[2]:g},{box[3]:g},"
                        f"{obj.findtext('name').strip()},{split_of[xml.stem]}")
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "bccd_boxes.csv"
    path.write_text("\n".join(rows) + "\n")
    return path


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", default="runs/bench_bccd")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=None, help="most training epochs (default: biolens's)")
    args = parser.parse_args()
    csv = boxes_csv(Path(args.out + "_data"))
    started = time.time()
    run = biolens.detect(csv, out=args.out, images=str(DATA / "images"), seed=args.seed, learning_curve="off",
                         **({"epochs": args.epochs} if args.epochs else {}))
    m = run.metrics
    per_class = {name: {"ap50": m["boxes"]["ap50_per_class"][name], "f1": c["f1"], "count_mae": c["count_mae"],
                        "count_error_pct": c.get("count_error_pct"), "n_true": c["n_true"]}
                 for name, c in m["per_class"].items()}
    print(json.dumps({"seconds": round(time.time() - started), "train_seconds": m["train_seconds"],
                      "epochs_run": m["epochs_run"], "n_test_units": m["n_test_units"], "ap50": m["boxes"]["ap50"],
                      "box_f1_iou50": m["boxes"]["f1_iou50"], "f1": m["f1"], "f1_ci95": m["f1_ci95"],
                      "count_mae": m["count_mae"], "count_mae_ci95": m["count_mae_ci95"],
                      "count_method": m["count_method"], "per_class": per_class,
                      "baseline": {k: m["baseline"].get(k) for k in ("f1", "count_mae", "count_error_pct")}}, indent=1))


if __name__ == "__main__":
    main()
