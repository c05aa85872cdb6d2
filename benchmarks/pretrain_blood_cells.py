"""Self-supervised pretraining on ../shared/data/blood_cells (issue 17), default settings, both benchmarks in one
process so that the figures are comparable:

1. clusters: a stratified random sample of the crops (--cluster-images, all by default), labels hidden, clustered
   by `biolens cluster` (self-supervised encoder learned in the run) and scored against the folder labels beside
   the convolutional autoencoder and k-means on raw pixels of the same run; which numbers of clusters were stable.
2. few labels: the crops of 5% of the smear photos are labelled; crops of other photos are unlabelled (up to
   --unlabelled-images); crops of the remaining 35% of the photos are the test set, never seen by either arm.
   `biolens train` from scratch (--pretrain off) vs `--pretrain on --unlabelled DIR`, both predicted on the test
   crops: balanced accuracy with a 95% bootstrap CI over photos.

    .venv/bin/python benchmarks/pretrain_blood_cells.py [--work /tmp/pretrain_bench] [--cluster-images 0]
                                                        [--unlabelled-images 1500] [--seed 0] [--skip-cluster]
"""
from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

import numpy as np
import pandas as pd

import biolens

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "blood_cells"


def _copy(rows: pd.DataFrame, folder: Path, by_label: bool) -> None:
    for row in rows.itertuples():
        target = folder / (row.label if by_label else "") / Path(row.path).name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(DATA / row.path, target)


def cluster_benchmark(manifest: pd.DataFrame, work: Path, n_images: int, seed: int) -> dict:
    sample = manifest if not n_images or n_images >= len(manifest) else \
        manifest.groupby("label", group_keys=False).apply(
            lambda g: g.sample(max(2, round(n_images * len(g) / len(manifest))), random_state=seed))
    folder = work / "cluster_images"
    _copy(sample, folder, by_label=True)
    started = time.time()
    run = biolens.cluster(folder, out=work / "cluster_run", compare_with="folder", seed=seed)
    metrics, choice = run.metrics, run.metrics["choice"]
    stable = []
    if "stability" in choice:
        best = max(choice["stability"])
        stable = sorted({n for n, s in zip(choice["n_clusters_per_candidate"], choice["stability"]) if s >= best - 0.05})
    return {"images": len(sample), "seconds": round(time.time() - started), "n_clusters": metrics["n_clusters"],
            "stable_numbers_of_clusters": stable, "compare": metrics["compare"],
            "pretraining": metrics["embedding"]["self_supervised"]}


def few_labels_benchmark(manifest: pd.DataFrame, work: Path, n_unlabelled: int, seed: int) -> dict:
    from sklearn.metrics import balanced_accuracy_score

    rng = np.random.default_rng(seed)
    photos = np.array(sorted(manifest.source_image.unique()))
    order = rng.permutation(len(photos))
    n_lab, n_test = max(1, round(0.05 * len(photos))), round(0.35 * len(photos))
    labelled_photos, test_photos = set(photos[order[:n_lab]]), set(photos[order[n_lab:n_lab + n_test]])
    labelled = manifest[manifest.source_image.isin(labelled_photos)]
    test = manifest[manifest.source_image.isin(test_photos)]
    pool = manifest[~manifest.source_image.isin(labelled_photos | test_photos)]
    pool = pool.sample(min(n_unlabelled, len(pool)), random_state=seed)
    table = labelled.assign(path=[str(DATA / p) for p in labelled.path])
    table[["path", "label", "source_image"]].to_csv(work / "labelled.csv", index=False)
    _copy(pool, work / "unlabelled", by_label=False)
    _copy(test, work / "test", by_label=False)
    truth = dict(zip([Path(p).name for p in test.path], test.label))
    photo_of = dict(zip([Path(p).name for p in test.path], test.source_image))
    result = {"labelled_images": len(labelled), "labelled_photos": n_lab,
              "labelled_per_class": labelled.label.value_counts().to_dict(), "unlabelled_images": len(pool),
              "test_images": len(test), "test_photos": len(test_photos)}
    for arm, options in (("scratch", {"pretrain": "off"}),
                         ("pretrain_on", {"pretrain": "on", "unlabelled": str(work / "unlabelled")})):
        started = time.time()
        run = biolens.train(work / "labelled.csv", out=work / arm, group_column="source_image", seed=seed, **options)
        table = biolens.predict(run, [work / "test"], out=work / f"{arm}_test.csv")
        names = [Path(p).name for p in table["file"]]
        y_true = np.array([truth[n] for n in names])
        y_pred = table["predicted"].astype(str).to_numpy()
        groups = np.array([photo_of[n] for n in names])
        score = balanced_accuracy_score(y_true, y_pred)
        boot, unique = [], np.unique(groups)
        for _ in range(1000):
            pick = np.concatenate([np.flatnonzero(groups == g) for g in rng.choice(unique, len(unique))])
            if len(np.unique(y_true[pick])) == len(np.unique(y_true)):
                boot.append(balanced_accuracy_score(y_true[pick], y_pred[pick]))
        result[arm] = {"balanced_accuracy": round(float(score), 4),
                       "ci95": [round(float(np.percentile(boot, 2.5)), 4), round(float(np.percentile(boot, 97.5)), 4)],
                       "seconds": round(time.time() - started),
                       "pretraining": (run.info.get("pretraining") or {}).get("seconds")}
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", default="/tmp/pretrain_bench")
    parser.add_argument("--cluster-images", type=int, default=0)
    parser.add_argument("--unlabelled-images", type=int, default=1500)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--skip-cluster", action="store_true")
    parser.add_argument("--skip-few-labels", action="store_true")
    args = parser.parse_args()
    work = Path(args.work)
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    manifest = pd.read_csv(DATA / "manifest.csv")
    out = {}
    if not args.skip_cluster:
        out["cluster"] = cluster_benchmark(manifest, work, args.cluster_images, args.seed)
        print(json.dumps(out["cluster"], indent=1), flush=True)
    if not args.skip_few_labels:
        out["few_labels"] = few_labels_benchmark(manifest, work, args.unlabelled_images, args.seed)
        print(json.dumps(out["few_labels"], indent=1), flush=True)
    (work / "result.json").write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
