"""Can the learning curve predict what more data gives? Fit it on up to 50% of the training set, predict 100%.

Trains once on ../shared/data/blood_cells (grouped by smear photo) with --learning-curve: the run measures the
held-out balanced accuracy at 1/8, 1/4, 1/2 (two repeats each) and at the full training set. The curve is then
refitted here on the sub-sets only (<= 50%), and its prediction at twice the largest (= the full set) is compared
with the score measured there. Target: within 5 points. Per class as well.

    .venv/bin/python benchmarks/learning_curve.py [--data ../shared/data/blood_cells/manifest.csv] [--seed 0]
"""
from __future__ import annotations

import argparse
import shutil
from pathlib import Path

import numpy as np

import biolens
from biolens.stats.learning_curve import learning_curve


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(Path(__file__).resolve().parents[2] / "shared/data/blood_cells/manifest.csv"))
    parser.add_argument("--group-column", default="source_image")
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="/tmp/learning_curve_benchmark")
    args = parser.parse_args()
    if Path(args.out).exists():
        shutil.rmtree(args.out)
    run = biolens.train(args.data, out=args.out, group_column=args.group_column, epochs=args.epochs,
                        learning_curve="on", seed=args.seed)
    curve = run.metrics["learning_curve"]
    sizes, fractions = np.array(curve["sizes"]), np.array(curve["fractions"])
    part = fractions <= 0.5
    rows = [("balanced accuracy", np.array(curve["scores"]))]
    rows += [(f"recall {name}", np.array([np.nan if v is None else v for v in values["scores"]], dtype=float))
             for name, values in curve["per_class"].items()]
    print(f"training set {sizes[~part][0]} images; curve fitted on {sorted(set(sizes[part].tolist()))}")
    print(f"{'score':28s} {'predicted at 100% (95% range)':32s} {'measured':>9s} {'error':>7s}")
    errors = []
    for name, scores in rows:
        fit = learning_curve(sizes[part], scores[part], factors=(2,), seed=args.seed)
        estimate, low, high = fit["predicted"]["2x"]
        measured = float(scores[~part][0])
        errors.append(abs(estimate - measured))
        print(f"{name:28s} {estimate:.3f} ({low:.3f}-{high:.3f}){'':11s} {measured:9.3f} {estimate - measured:+7.3f}")
    print(f"target: balanced accuracy within 0.05: {'met' if errors[0] <= 0.05 else 'MISSED'} ({errors[0]:.3f})")
    print(f"advice in the report: {curve['advice']}")


if __name__ == "__main__":
    main()
