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


def test_an_output_file_gets_its_missing_folders_but_never_replaces_what_is_there(tmp_path):
    import os

    from biolens.runs import guard_output_file, write_text

    run = create_run(tmp_path / "run")
    nested = tmp_path / "results" / "today" / "preds.csv"
    assert guard_output_file(nested, protected=[run.path]) == nested
    assert not (tmp_path / "results").exists()  # nothing is made before the command has something to write
    write_text(nested, "kept")  # the writer makes the folders
    with pytest.raises(InputError, match="--force"):
        guard_output_file(nested)
    with pytest.raises(InputError, match="is a file"):
        guard_output_file(nested / "more.csv")
    with pytest.raises(InputError, match="is inside"):
        guard_output_file(run.path / "new" / "preds.csv", protected=[run.path], force=True)
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        if not os.access(locked, os.W_OK):  # root may write anywhere: then there is nothing to refuse
            with pytest.raises(InputError, match="permission denied"):
                guard_output_file(locked / "sub" / "preds.csv")
    finally:
        locked.chmod(0o700)
    assert nested.read_text() == "kept"
