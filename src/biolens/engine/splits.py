"""Train / validation / test splits: stratified by label and, when groups are given, grouped.

Grouping keeps every image of one patient, plate or smear photo in a single split, so the test score
measures generalisation to new groups, not recognition of near-copies.
"""
from __future__ import annotations

import numpy as np

from biolens.errors import InputError


def split(labels: list[str], groups: list[str] | None, *, test_fraction: float, val_fraction: float,
          seed: int, group_column: str | None = None) -> np.ndarray:
    """Return an array of 'train' / 'val' / 'test', one per sample (`group_column` names the groups' source in
    messages)."""
    from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold

    y = np.asarray(labels)
    n = len(y)
    assignment = np.full(n, "train", dtype=object)
    if groups is not None:
        g = np.asarray(groups)
        n_groups = len(set(groups))
        if n_groups < 3:
            source = f"--group-column {group_column}" if group_column else "the manifest's group column"
            raise InputError(f"only {n_groups} distinct group(s) in {source}; a grouped split needs at least 3 (one "
                             "per split). Add groups, or leave the group column out.")
    else:
        g = np.arange(n)

    def hold_out(candidates: np.ndarray, fraction: float, tag: str, rng_seed: int) -> None:
        folds = max(2, int(round(1.0 / fraction)))
        yc, gc = y[candidates], g[candidates]
        folds = min(folds, len(set(gc.tolist())))
        if groups is None:
            folds = min(folds, int(np.bincount(np.unique(yc, return_inverse=True)[1]).min())) if len(yc) else folds
            folds = max(folds, 2)
            splitter = StratifiedKFold(folds, shuffle=True, random_state=rng_seed)
            _, held = next(splitter.split(candidates, yc))
        else:
            splitter = StratifiedGroupKFold(folds, shuffle=True, random_state=rng_seed)
            _, held = next(splitter.split(candidates, yc, gc))
        assignment[candidates[held]] = tag

    import warnings

    with warnings.catch_warnings():  # sklearn warns when a class is rarer than the fold count
        warnings.simplefilter("ignore", UserWarning)
        hold_out(np.arange(n), test_fraction, "test", seed)
        hold_out(np.flatnonzero(assignment == "train"), val_fraction / (1.0 - test_fraction), "val", seed + 1)
    return assignment


def missing_classes(labels: list[str], assignment: np.ndarray) -> list[str]:
    """Warnings for classes absent from a split (possible with few groups)."""
    y = np.asarray(labels)
    notes = []
    for part in ("train", "val", "test"):
        present = set(y[assignment == part].tolist())
        for label in sorted(set(labels) - present):
            notes.append(f"class '{label}' has no images in the {part} split (too few groups); its {part} figures are missing.")
    return notes
