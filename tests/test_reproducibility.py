"""The same seed gives the same result on the same machine."""
from __future__ import annotations

import pandas as pd
import pytest

from conftest import biolens


@pytest.mark.slow
def test_same_seed_same_history_and_predictions(slice_manifest, tmp_path):
    for name in ("a", "b"):
        biolens("train", slice_manifest, "--group-column", "source_image", "--epochs", "2", "--seed", "5",
                "--out", tmp_path / name)
    first, second = (pd.read_csv(tmp_path / n / "history.csv").drop(columns="elapsed_s") for n in "ab")
    pd.testing.assert_frame_equal(first, second)
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "a" / "predictions.csv"),
                                  pd.read_csv(tmp_path / "b" / "predictions.csv"))
