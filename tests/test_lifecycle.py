"""The one run lifecycle, checked for every registered task (like scikit-learn's estimator checks): what every run
folder holds, what every task refuses, and that a run's config reads back whatever biolens version wrote it."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from biolens.config import AssociateConfig, ClassifyConfig, ClusterConfig
from biolens.engine import lifecycle, registry
from biolens.errors import InputError
from biolens.report import html
from biolens.runs import Run
from conftest import biolens

SHARED = ["task", "status", "config", "seed", "data_fingerprint", "versions", "created", "finished", "timings",
          "attempts"]


@pytest.mark.parametrize("name", sorted(registry.TASKS))
def test_every_task_entry_is_complete(name):
    spec = registry.TASKS[name]
    assert callable(spec.function())
    assert callable(getattr(html, spec.methods))
    assert (Path(html.__file__).parent / "templates" / spec.template).is_file()
    assert spec.predictor is None or callable(spec.function("predictor"))
    assert spec.config.__doc__ and "Options" in spec.config.__doc__
    documented = spec.config.__doc__ + "".join(base.__doc__ or "" for base in spec.config.__mro__)
    assert all(option in documented for option in spec.config.option_names())


@pytest.mark.parametrize("name", sorted(registry.TASKS))
def test_a_finished_run_is_never_resumed(name, tmp_path):
    folder = tmp_path / "done"
    folder.mkdir()
    (folder / "run.json").write_text(json.dumps({"task": name, "status": "complete", "config": {}}))
    before = (folder / "run.json").read_text()
    with pytest.raises(InputError, match="already finished"):
        registry.TASKS[name].function()(resume=folder)
    assert (folder / "run.json").read_text() == before and sorted(p.name for p in folder.iterdir()) == ["run.json"]


@pytest.mark.parametrize("name", sorted(registry.TASKS))
def test_another_tasks_run_is_never_resumed(name, tmp_path):
    other = next(n for n in registry.TASKS if n != name)
    folder = tmp_path / "other"
    folder.mkdir()
    (folder / "run.json").write_text(json.dumps({"task": other, "status": "interrupted", "config": {}}))
    with pytest.raises(InputError, match=other):
        registry.TASKS[name].function()(resume=folder)


def _inputs(name: str, tmp_path: Path) -> dict:
    """The least each task needs to get past its option checks (files that exist)."""
    data = tmp_path / "data"
    data.mkdir(exist_ok=True)
    table = data / "table.csv"
    table.write_text("id,a,b\n" + "".join(f"s{i},{i},{i * 2}\n" for i in range(12)))
    fasta = data / "seqs.fasta"
    fasta.write_text(">s0\nACGT\n")
    return {"classify": {"data": data}, "sequence_classify": {"data": fasta, "labels": table},
            "cluster": {"data": table}, "associate": {"phenotypes": table, "trait": "a", "genotypes": fasta},
            "detect": {"annotations": table}, "pretrain": {"images": [data]}}[name]


@pytest.mark.parametrize("name", sorted(registry.TASKS))
def test_a_folder_that_is_not_a_new_run_is_refused_and_left_untouched(name, tmp_path):
    out = tmp_path / "busy"
    out.mkdir()
    (out / "notes.txt").write_text("precious")
    with pytest.raises(InputError, match="not empty"):
        registry.TASKS[name].function()(out=out, **_inputs(name, tmp_path))
    assert [p.name for p in out.iterdir()] == ["notes.txt"] and (out / "notes.txt").read_text() == "precious"


@pytest.mark.parametrize("name", sorted(registry.TASKS))
def test_an_out_of_range_option_is_refused_before_any_folder_exists(name, tmp_path):
    spec = registry.TASKS[name]
    numeric = next(f for f in spec.config.option_names() if f in ("epochs", "permutations", "k"))
    with pytest.raises(InputError, match=f"--{numeric}"):
        spec.function()(out=tmp_path / "new", **_inputs(name, tmp_path), **{numeric: -3})
    assert not (tmp_path / "new").exists()


def test_configs_of_older_run_json_files_read_back():
    old = {"data": "/x", "epochs": 5, "retired_option": 1}  # an option a later version dropped
    config = ClassifyConfig.from_dict(old)
    assert config.epochs == 5 and config.stack == "refuse"  # a newer option takes its default
    spec = registry.get("associate")
    legacy = {"task": "associate", "config": {"trait": "status", "covariates": [], "permutations": 5},
              "inputs": {"genotypes": __file__, "phenotypes": __file__, "sequences": None}}
    restored = lifecycle.config_for_resume(spec, legacy)
    assert isinstance(restored, AssociateConfig) and restored.genotypes == __file__ and restored.permutations == 5


def test_numeric_options_are_checked_at_one_door():
    for bad in ({"learning_rate": -0.01}, {"patience": -2}, {"time_budget": float("nan")}, {"batch_size": -4},
                {"epochs": 2.5}):
        with pytest.raises(InputError, match="Invalid value for --"):
            ClassifyConfig.build(**bad).validate()
    for bad in ({"resolution": float("nan")}, {"latent": -4}, {"k": 1}, {"method": "louvain"}):
        with pytest.raises(InputError, match="Invalid value for --"):
            ClusterConfig.build(**bad).validate()
    with pytest.raises(InputError, match="unknown option"):
        ClusterConfig.build(colour="red")


def test_one_fingerprint_for_files_and_folders(tmp_path):
    folder = tmp_path / "images"
    folder.mkdir()
    (folder / "a.txt").write_text("1")
    first = lifecycle.data_fingerprint([folder])
    assert lifecycle.data_fingerprint([folder]) == first
    (folder / "b.txt").write_text("2")
    assert lifecycle.data_fingerprint([folder]) != first
    table = tmp_path / "t.csv"
    table.write_text("a\n1\n")
    single = lifecycle.data_fingerprint([table])
    table.write_text("a\n2\n")  # same size, new content
    assert lifecycle.data_fingerprint([table]) != single


@pytest.fixture(scope="module")
def finished_runs(tmp_path_factory, trained_run, detect_run, pretrain_run):
    """One real, small run of each task (classification shares the session's trained run)."""
    from biolens.simulate import simulate_cohort

    root = tmp_path_factory.mktemp("every_task")
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(3, 6)) * 4
    rows = [f"c{i}," + ",".join(f"{v:.3f}" for v in centres[i % 3] + rng.normal(size=6)) for i in range(90)]
    (root / "assay.csv").write_text("id," + ",".join(f"g{j}" for j in range(6)) + "\n" + "\n".join(rows) + "\n")
    biolens("cluster", root / "assay.csv", "--out", root / "cluster", "--epochs", "5")
    cohort = simulate_cohort("additive", trait="quantitative", seed=2, n_individuals=120, length=600).write(root / "cohort")
    biolens("associate", "--genotypes", cohort["genotypes"], "--phenotypes", cohort["phenotypes"], "--trait", "yield",
            "--permutations", "2", "--folds", "2", "--out", root / "associate")
    return {"classify": trained_run, "cluster": root / "cluster", "associate": root / "associate",
            "detect": detect_run, "pretrain": pretrain_run}


@pytest.mark.parametrize("name", ["classify", "cluster", "associate", "detect", "pretrain"])
def test_every_run_folder_holds_the_shared_record_and_rebuilds_its_report(name, finished_runs, tmp_path):
    source = finished_runs[name]
    info = json.loads((source / "run.json").read_text())
    missing = [key for key in SHARED if key not in info]
    assert not missing, missing
    assert info["status"] == "complete" and info["task"] == name
    assert info["timings"]["seconds"] > 0 and info["attempts"] >= 1
    spec = registry.get(name)
    if spec.model:
        assert len(info["model_sha256"]) == 64 and info["model_summary"]["parameters"] > 0
    for output in spec.outputs:
        assert (source / output).exists(), output
    copy = tmp_path / "copy"
    shutil.copytree(source, copy)
    (copy / "report.html").unlink()
    html.write_report(Run(copy))  # in-process (the `biolens report` command itself: tests/test_classify_cli.py)
    report = (copy / "report.html").read_text()
    assert spec.summary(json.loads((copy / "metrics.json").read_text())).split(" (")[0] in report.replace("&#39;", "'")
    assert "Methods" in report


def test_the_web_form_and_the_cli_build_the_same_config(tmp_path):
    """A cluster run submitted through the web app's form and one given as CLI flags describe the same run."""
    from fastapi.testclient import TestClient

    from biolens.web import security
    from biolens.web.app import Settings, create_app

    data = tmp_path / "data"
    data.mkdir()
    table = data / "assay.csv"
    table.write_text("id,a,b\n" + "".join(f"s{i},{i},{i % 3}\n" for i in range(20)))
    settings = Settings(runs_dir=tmp_path / "runs", roots=[data], start_jobs=False)
    app = security.AccessGate(create_app(settings), token=settings.token, max_body_bytes=1 << 20, allow_remote=False)
    with TestClient(app, base_url="http://127.0.0.1:8765") as client:
        client.get(f"/?token={settings.token}")
        response = client.post("/new", data={"csrf": security.csrf_token(settings.token), "task": "cluster",
                                             "name": "web-run", "path": str(table), "method": "kmeans", "seed": "3"},
                               follow_redirects=False)
        assert response.status_code == 303, response.text
    from biolens.web.jobs import JobQueue

    job = JobQueue(settings.runs_dir, settings.state_dir).latest_for("web-run")
    web = ClusterConfig.build(**json.loads(job["params"])).validate().to_dict()
    from biolens.cli import _given

    cli = ClusterConfig.build(data=str(table.resolve()), **_given(method="kmeans", seed=3, k=None)).validate().to_dict()
    assert web == cli


def _task_command(name: str, root: Path, slice_manifest: Path) -> list[str]:
    """A small but real run of each task, long enough to be killed in the middle."""
    from biolens.simulate import simulate_cohort, simulate_labelled_sequences
    from conftest import dot_images

    if name == "classify":
        return ["train", str(slice_manifest), "--group-column", "source_image", "--epochs", "6", "--seed", "1"]
    if name == "sequence_classify":
        data = simulate_labelled_sequences(root / "sequences", n_per_class=60, seed=1)
        return ["train", str(data["sequences"]), "--labels", str(data["labels"]), "--epochs", "8", "--seed", "1"]
    if name == "cluster":
        rng = np.random.default_rng(0)
        centres = rng.normal(size=(3, 8)) * 4
        rows = [f"c{i}," + ",".join(f"{v:.3f}" for v in centres[i % 3] + rng.normal(size=8)) for i in range(300)]
        (root / "assay.csv").write_text("id," + ",".join(f"g{j}" for j in range(8)) + "\n" + "\n".join(rows) + "\n")
        return ["cluster", str(root / "assay.csv"), "--epochs", "40", "--seed", "1"]
    if name == "associate":
        cohort = simulate_cohort("additive", trait="quantitative", seed=2, n_individuals=300,
                                 length=800).write(root / "cohort")
        return ["associate", "--genotypes", str(cohort["genotypes"]), "--phenotypes", str(cohort["phenotypes"]),
                "--trait", "yield", "--permutations", "3", "--folds", "2", "--seed", "1"]
    if name == "pretrain":
        return ["pretrain", str(slice_manifest.parent / "images"), "--image-size", "32", "--epochs", "25", "--seed", "1"]
    data = dot_images(root / "dots", n_images=10, side=96, seed=2)
    return ["detect", str(data), "--epochs", "5", "--seed", "1"]


def _progress_made(out: Path) -> bool:
    """A checkpoint exists: a finished epoch (history.csv) or stage (checkpoints/*.npz)."""
    history = out / "history.csv"
    epochs = len(history.read_text().splitlines()) - 1 if history.exists() else 0
    stages = list((out / "checkpoints").glob("*.npz")) if (out / "checkpoints").exists() else []
    pretrained = out / "checkpoints" / "pretrain_state.json"  # self-supervised epochs
    if pretrained.exists() and json.loads(pretrained.read_text()).get("epoch", 0) >= 2:
        return True
    return epochs >= 2 or bool(stages)


@pytest.mark.slow  # five real runs, each killed and resumed, beside five uninterrupted ones (about 10 minutes)
@pytest.mark.parametrize("name", ["classify", "sequence_classify", "cluster", "associate", "detect", "pretrain"])
def test_kill_9_mid_run_then_resume_gives_the_outputs_of_an_uninterrupted_run(name, tmp_path, slice_manifest):
    import os
    import signal
    import subprocess
    import sys
    import time

    from conftest import ENV, ROOT

    command = _task_command(name, tmp_path, slice_manifest)
    whole, killed = tmp_path / "whole", tmp_path / "killed"
    biolens(*command, "--out", whole)
    process = subprocess.Popen([sys.executable, "-m", "biolens", *command, "--out", str(killed)], env=ENV, cwd=ROOT,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 600
    while process.poll() is None and not _progress_made(killed) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert process.poll() is None, "the run finished before it could be killed: make it longer"
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    assert json.loads((killed / "run.json").read_text())["status"] == "running"  # what a kill -9 leaves
    biolens(*(["train"] if name in ("classify", "sequence_classify") else [command[0]]), "--resume", killed)
    info = json.loads((killed / "run.json").read_text())
    assert info["status"] == "complete" and info["attempts"] == 2
    assert not list(killed.rglob("*.tmp*")), "a temporary file of the killed attempt was left behind"
    spec = registry.get(name)
    for output in spec.outputs:
        assert (killed / output).exists(), output
    metrics = {p: json.loads((p / "metrics.json").read_text()) for p in (whole, killed)}
    assert set(metrics[whole]) == set(metrics[killed])
    if name in ("cluster", "associate"):  # stages restored from checkpoints: the same numbers
        table = {"cluster": "clusters.csv", "associate": "variants.tsv"}[name]
        assert (whole / table).read_text() == (killed / table).read_text()
    else:  # training resumed from the last epoch's weights: the same kind of model, as good within noise
        assert spec.summary(metrics[killed]) and spec.summary(metrics[whole])


@pytest.mark.parametrize("title", ["BloodImage_00123_crop_007_from_a_very_long_export.jpg (wrong: WBC, 0.93)",
                                   "cell 12 (right, 0.99)", "a b c d e f g h i j k l m n o p q r s t u v w x y z " * 3])
def test_image_captions_fit_under_their_image(title):
    """Grad-CAM captions (a file name and the verdict) wrap and shorten so neighbours never overlap."""
    from biolens.report.figures import caption

    lines = caption(title).split("\n")
    assert 1 <= len(lines) <= 3 and all(len(line) <= 20 for line in lines)
    for verdict in ("right", "wrong"):  # the verdict after a long file name survives
        if f"({verdict}" in title:
            assert verdict in caption(title)
