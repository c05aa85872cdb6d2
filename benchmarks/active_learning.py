"""Do the images `biolens review` picks teach the model more than as many picked at random?

The loop a biologist runs, with the true labels playing the biologist:
  - the starting data set is the images of a random 12% of the smear photos of ../shared/data/blood_cells, split
    grouped by photo with half of it as the test set (so about 6% of all images are labelled for training, and the
    test set, fixed for every round of both arms, is not tiny);
  - the other photos' images are the unlabelled pool;
  - each round picks --per-round pool images, either with `biolens review` (uncertain + diverse) or at random,
    labels them from the truth, and retrains with `--add-labels` (same test set);
  - balanced accuracy on the test set per round, for both arms and several seeds, and the labels saved: how many
    fewer labels the review arm needs to reach the random arm's final score.

    .venv/bin/python benchmarks/active_learning.py [--rounds 3] [--per-round 50] [--seeds 2] [--epochs 10]
"""
from __future__ import annotations

import argparse
import shutil
from pathlib import Path

import numpy as np
import pandas as pd

import biolens


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(Path(__file__).resolve().parents[2] / "shared/data/blood_cells"))
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--per-round", type=int, default=50)
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--work", default="/tmp/active_learning")
    args = parser.parse_args()
    data, work = Path(args.data), Path(args.work)
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    manifest = pd.read_csv(data / "manifest.csv")
    manifest["path"] = [str((data / p).resolve()) for p in manifest.path]
    results = []
    for seed in range(args.seeds):
        rng = np.random.default_rng(seed)
        photos = manifest.source_image.unique()
        start_photos = set(rng.choice(photos, int(round(0.12 * len(photos))), replace=False))
        start = manifest[manifest.source_image.isin(start_photos)]
        pool = manifest[~manifest.source_image.isin(start_photos)].reset_index(drop=True)
        start_csv = work / f"start_{seed}.csv"
        start.to_csv(start_csv, index=False)
        truth = dict(zip(pool.path, pool.label))
        for arm in ("review", "random"):
            added = pd.DataFrame(columns=["file", "label"])
            run = biolens.train(start_csv, out=work / f"{arm}_{seed}_0", group_column="source_image",
                                epochs=args.epochs, seed=seed, learning_curve="off", test_fraction=0.5)
            results.append((seed, arm, 0, 0, run.metrics["balanced_accuracy"]))
            for round_ in range(1, args.rounds + 1):
                remaining = pool[~pool.path.isin(added.file)]
                if arm == "review":
                    folder = work / f"pool_{seed}_{arm}_{round_}"
                    folder.mkdir()
                    for k, path in enumerate(remaining.path):  # the unlabelled folder the biologist points review at
                        (folder / f"{k}{Path(path).suffix}").symlink_to(path)
                    table = biolens.review(run, folder, out=work / f"picks_{seed}_{round_}", n=args.per_round)
                    picked = [str(Path(f).resolve()) for f in table.file]
                else:
                    picked = list(rng.choice(remaining.path.to_numpy(), args.per_round, replace=False))
                added = pd.concat([added, pd.DataFrame({"file": picked, "label": [truth[p] for p in picked]})])
                labels_csv = work / f"labels_{seed}_{arm}_{round_}.csv"
                added.to_csv(labels_csv, index=False)
                run = biolens.train(start_csv, out=work / f"{arm}_{seed}_{round_}", group_column="source_image",
                                    epochs=args.epochs, seed=seed, learning_curve="off", add_labels=str(labels_csv),
                                    test_fraction=0.5)
                results.append((seed, arm, round_, len(added), run.metrics["balanced_accuracy"]))
    table = pd.DataFrame(results, columns=["seed", "arm", "round", "labels_added", "balanced_accuracy"])
    table.to_csv(work / "results.csv", index=False)
    summary = table.groupby(["arm", "round", "labels_added"]).balanced_accuracy.agg(["mean", "min", "max"]).round(3)
    print(summary.to_string())
    start_score = table[table["round"] == 0].balanced_accuracy.mean()
    final_random = table[(table.arm == "random") & (table["round"] == args.rounds)].balanced_accuracy.mean()
    review_curve = table[(table.arm == "review") & (table["round"] > 0)].groupby("labels_added").balanced_accuracy.mean()
    if final_random <= start_score:
        print(f"the starting model ({start_score:.3f}) already scores at least the random arm's final {final_random:.3f}: "
              "labels added at random did not help here, so 'labels saved' is not measurable on this data")
    reached = review_curve[review_curve >= final_random]
    if len(reached):
        saved = args.rounds * args.per_round - int(reached.index.min())
        print(f"review reaches the random arm's final {final_random:.3f} with {int(reached.index.min())} labels: "
              f"{saved} labels saved")
    else:
        print(f"review does not reach the random arm's final {final_random:.3f} within the budget")

if __name__ == "__main__":
    main()
