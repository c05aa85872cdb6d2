"""Few labels on ../shared/data/blood_cells (issue 17): the crops of 5% of the smear photos labelled, 35% of the
photos as the test set (the split of benchmarks/pretrain_blood_cells.py, one per seed), `biolens train` from scratch
at each learning rate (0 = the default, which follows the batch size), held-out balanced accuracy on the test crops.

    .venv/bin/python benchmarks/few_labels_learning_rate.py [--seeds 0 1 2 3 4] [--learning-rates 0.003 0]
                                                            [--work /tmp/few_labels_lr]
"""
from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd

import biolens

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "blood_cells"


def split(manifest: pd.DataFrame, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(labelled crops, test crops), by smear photo, exactly as pretrain_blood_cells.few_labels_benchmark draws them."""
    rng = np.random.default_rng(seed)
    photos = np.array(sorted(manifest.source_image.unique()))
    order = rng.permutation(len(photos))
    n_lab, n_test = max(1, round(0.05 * len(photos))), round(0.35 * len(photos))
    labelled, test = set(photos[order[:n_lab]]), set(photos[order[n_lab:n_lab + n_test]])
    return manifest[manifest.source_image.isin(labelled)], manifest[manifest.source_image.isin(test)]


def main() -> None:
    from sklearn.metrics import balanced_accuracy_score

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--learning-rates", type=float, nargs="+", default=[0.003, 0.0])
    parser.add_argument("--work", default="/tmp/few_labels_lr")
    args = parser.parse_args()
    manifest = pd.read_csv(DATA / "manifest.csv")
    results = []
    for seed in args.seeds:
        labelled, test = split(manifest, seed)
        work = Path(args.work) / f"split{seed}"
        work.mkdir(parents=True, exist_ok=True)
        labelled.assign(path=[str(DATA / p) for p in labelled.path])[["path", "label", "source_image"]].to_csv(
            work / "labelled.csv", index=False)
        truth = dict(zip([Path(p).name for p in test.path], test.label))
        for rate in args.learning_rates:
            out = work / f"run_lr{rate}"
            shutil.rmtree(out, ignore_errors=True)
            run = biolens.train(work / "labelled.csv", out=out, group_column="source_image", seed=0,
                                learning_curve="off", learning_rate=rate)
            table = biolens.predict(run, [str(DATA / p) for p in test.path], out=work / f"test_lr{rate}.csv")
            y_true = np.array([truth[Path(f).name] for f in table["file"]])
            score = balanced_accuracy_score(y_true, table["predicted"].astype(str).to_numpy())
            results.append({"split": seed, "labelled": len(labelled), "learning_rate": rate,
                            "rate_used": run.info.get("learning_rate"), "batch": run.info.get("batch_size"),
                            "balanced_accuracy": round(float(score), 4)})
            print(json.dumps(results[-1]), flush=True)
    (Path(args.work) / "result.json").write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
