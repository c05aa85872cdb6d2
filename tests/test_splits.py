"""Splits keep every group in one part and every class in every part."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from biolens.errors import InputError
from biolens.engine.splits import split

BLOOD = "../shared/data/blood_cells/manifest.csv"


def test_grouped_split_on_real_manifest_never_shares_a_smear_photo(slice_manifest):
    table = pd.read_csv(slice_manifest)
    parts = split(table.label.tolist(), table.source_image.tolist(), test_fraction=0.15, val_fraction=0.15, seed=0)
    owner = pd.DataFrame({"group": table.source_image, "part": parts}).groupby("group").part.nunique()
    assert owner.max() == 1
    for part in ("train", "val", "test"):
        assert set(table.label[parts == part]) == {"RBC", "WBC", "Platelets"}
    assert 0.08 < np.mean(parts == "test") < 0.25


def test_ungrouped_split_is_stratified_and_reproducible():
    labels = ["a"] * 300 + ["b"] * 30
    first = split(labels, None, test_fraction=0.2, val_fraction=0.2, seed=3)
    again = split(labels, None, test_fraction=0.2, val_fraction=0.2, seed=3)
    assert (first == again).all()
    y = np.array(labels)
    assert abs(np.mean(y[first == "test"] == "b") - 30 / 330) < 0.02


def test_too_few_groups_is_an_input_error():
    with pytest.raises(InputError, match="only 2 distinct group"):
        split(["a", "b", "a", "b"], ["g1", "g1", "g2", "g2"], test_fraction=0.2, val_fraction=0.2, seed=0)
