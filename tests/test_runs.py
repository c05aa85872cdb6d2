"""The run folder: atomic writes and refusal to overwrite anything already there."""
from __future__ import annotations

import pytest

from biolens.errors import InputError
from biolens.runs import atomic_path, create_run, load_run, write_json


def test_failed_write_leaves_the_old_file_intact(tmp_path):
    target = tmp_path / "metrics.json"
    write_json(target, {"balanced_accuracy": 0.9})
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text('{"balanced_accu')  # half-written, then the process fails
            raise RuntimeError("killed")
    assert target.read_text().strip().startswith('{\n  "balanced_accuracy": 0.9')
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.json"]


def test_new_run_refuses_folders_with_content(tmp_path):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("precious")
    with pytest.raises(InputError, match="exists and is not empty"):
        create_run(tmp_path / "mine")
    run = create_run(tmp_path / "fresh")
    run.update_info(task="classify", status="running")
    with pytest.raises(InputError, match="already holds a run"):
        create_run(tmp_path / "fresh")
    assert load_run(tmp_path / "fresh").status == "running"


def test_load_run_names_what_is_missing(tmp_path):
    with pytest.raises(InputError, match="is not a biolens run folder"):
        load_run(tmp_path)
