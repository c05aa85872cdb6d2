"""`biolens demo` (what `make demo` runs) on the bundled example images."""
from __future__ import annotations

import sys

import pytest

from biolens import cli
from biolens.demo import BUNDLED


def test_a_second_demo_shows_the_first_result_instead_of_refusing(tmp_path, capsys, monkeypatch):
    """`make demo` run twice in one checkout refused the second time (the run folder existed); now it trains once and
    the second call says where the finished demo is and what it scored, without training again."""
    out = tmp_path / "demo"
    argv = ["biolens", "demo", "--out", str(out), "--data", str(BUNDLED), "--epochs", "1"]
    monkeypatch.setattr(sys, "argv", argv)
    with pytest.raises(SystemExit) as first:
        cli.main()
    said = capsys.readouterr()
    assert first.value.code == 0, said.err
    assert (out / "demo_predictions.csv").exists() and "demo done" in said.out + said.err
    model = out / "model.keras"
    trained = model.stat().st_mtime_ns
    with pytest.raises(SystemExit) as second:
        cli.main()
    said = capsys.readouterr()
    text = said.out + said.err
    assert second.value.code == 0 and "error:" not in text, text
    assert "already holds a finished demo" in text and "Held-out balanced accuracy" in text
    assert str((out / "report.html").resolve()) in text
    assert model.stat().st_mtime_ns == trained  # nothing trained again
