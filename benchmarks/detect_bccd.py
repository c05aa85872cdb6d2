"""Blood cells in ../shared/data/bccd_smears: boxes of RBC, WBC and platelets, scored on the data set's own test list
(72 photos) with per-class AP@0.5 and count errors, beside the Laplacian-of-Gaussian baseline in the same run.

The VOC files are turned into one boxes CSV with a `split` column (train+val lists -> train, test list -> test),
so biolens detect uses exactly the published split.

    python benchmarks/detect_bccd.py [--epochs 40] [--out runs/bench_bccd]
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
    test = set((DATA / "splits" / "test.txt").read_text().split())
    rows = ["image,xmin,ymin,xmax,ymax,label,split"]
    for xml in sorted((DATA / "annotations").glob("*.xml")):
        root = ElementTree.parse(xml).getroot()
        split = "test" if xml.stem in test else "train"
        for obj in root.findall("object"):
            box = obj.find("bndbox")
            coords = [box.findtext(c) for c in ("xmin", "ymin", "xmax", "ymax")]
            rows.append(f"{xml.stem}.jpg,{','.join(coords)},{obj.findtext('name')},{split}")
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "bccd_boxes.csv"
    path.write_text("\n".join(rows) + "\n")
    return path


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--out", default="runs/bench_bccd")
    args = parser.parse_args()
    csv = boxes_csv(Path(args.out + "_data"))
    started = time.time()
    run = biolens.detect(csv, out=args.out, images=str(DATA / "images"), epochs=args.epochs)
    m = run.metrics
    print(json.dumps({"seconds": round(time.time() - started), "boxes": m["boxes"], "f1": m["f1"],
                      "count_mae": m["count_mae"], "per_class": m["per_class"], "baseline": m["baseline"],
                      "epochs_run": m["epochs_run"], "train_seconds": m["train_seconds"]}, indent=1))


if __name__ == "__main__":
    main()
