"""Shared fixtures: a real slice of the blood-cell images, a CLI runner, and one small trained run."""
from __future__ import annotations

import fcntl
import os
import pickle
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SLICE = ROOT / "examples" / "blood_cells_slice"
PBMC = ROOT.parent / "shared" / "data" / "pbmc68k_reduced" / "pbmc68k_reduced.h5ad"
ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONWARNINGS": "ignore"}


def biolens(*args: str, timeout: float = 600, check: bool = True) -> subprocess.CompletedProcess:
    """Run the real `biolens` command (as `python -m biolens`) and return the finished process."""
    result = subprocess.run([sys.executable, "-m", "biolens", *map(str, args)], capture_output=True, text=True,
                            timeout=timeout, env=ENV, cwd=ROOT)
    if check and result.returncode != 0:
        raise AssertionError(f"biolens {' '.join(map(str, args))} failed ({result.returncode}):\n{result.stderr[-3000:]}")
    return result


def one_line_error(result: subprocess.CompletedProcess) -> str:
    """The command failed as bad input should: exit 2, no traceback, and one `error:` line, last. Returns it."""
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and result.stderr.strip().endswith(errors[0]), result.stderr
    return errors[0]


def built_once(tmp_path_factory, name: str, build):
    """What `build(folder)` returns for a fresh folder, built once per test session however many pytest-xdist workers
    ask (`make test` runs two): the first worker builds under a lock in the workers' shared temporary folder, the
    others wait for it and read its pickled result, so no shared run is trained twice."""
    if not os.environ.get("PYTEST_XDIST_WORKER"):
        return build(tmp_path_factory.mktemp(name))
    shared = tmp_path_factory.getbasetemp().parent / "built_once"
    shared.mkdir(exist_ok=True)
    result = shared / f"{name}.pickle"
    with open(shared / f"{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not result.exists():
            folder = shared / name
            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir()
            value = build(folder)
            result.write_bytes(pickle.dumps(value))
            return value
    return pickle.loads(result.read_bytes())


@pytest.fixture(scope="session")
def slice_manifest() -> Path:
    return SLICE / "manifest.csv"


@pytest.fixture
def slice_copy(tmp_path) -> Path:
    """A private copy of the slice (folder of class folders + manifest) that a test may damage."""
    target = tmp_path / "cells"
    shutil.copytree(SLICE, target)
    return target


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory, slice_manifest) -> Path:
    """One real training run on the slice, grouped by smear photo, shared by the tests that only read it."""
    def build(folder):
        biolens("train", slice_manifest, "--group-column", "source_image", "--epochs", "4", "--out", folder / "cells",
                "--seed", "1")
        return folder / "cells"
    return built_once(tmp_path_factory, "trained_run", build)


@pytest.fixture(scope="session")
def pbmc_run(tmp_path_factory):
    """One real clustering run of the shared PBMC table against its known cell types (cluster and web tests)."""
    if not PBMC.exists():
        pytest.skip("../shared/data/pbmc68k_reduced is not here")
    def build(folder):
        biolens("cluster", PBMC, "--compare-with", "bulk_labels", "--out", folder / "pbmc", "--seed", "0")
        return folder / "pbmc"
    return built_once(tmp_path_factory, "pbmc_run", build)


@pytest.fixture(scope="session")
def pretrain_run(tmp_path_factory) -> Path:
    """One real self-supervised run on the slice (216 crops, 3 cell types), small and short."""
    def build(folder):
        biolens("pretrain", SLICE / "images", "--out", folder / "pre", "--image-size", "32", "--epochs", "8",
                "--seed", "0")
        return folder / "pre"
    return built_once(tmp_path_factory, "pretrain_run", build)


def dot_images(root: Path, n_images: int, side: int = 96, seed: int = 0) -> Path:
    """Bright discs on a dark, noisy background (images/), with a dots/ image marking each centre."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    (root / "images").mkdir(parents=True)
    (root / "dots").mkdir()
    yy, xx = np.mgrid[:side, :side]
    for k in range(n_images):
        image = rng.normal(30, 8, (side, side))
        dots = np.zeros((side, side), np.uint8)
        for _ in range(rng.integers(5, 12)):
            x, y = rng.uniform(6, side - 6, 2)
            image += 150 * np.exp(-((xx - x) ** 2 + (yy - y) ** 2) / (2 * 2.5**2))
            dots[int(y), int(x)] = 255
        Image.fromarray(np.clip(image, 0, 255).astype(np.uint8)).convert("RGB").save(root / "images" / f"{k:03d}.png")
        Image.fromarray(dots).save(root / "dots" / f"{k:03d}.png")
    return root


def as_z_stacks(folder: Path) -> None:
    """Each PNG of `dot_images`' images/ becomes a three-plane ImageJ z-stack (as Fiji saves one): the objects in
    focus on the middle plane only, the planes above and below dim noise (a widefield stack around the focal plane)."""
    import numpy as np
    import tifffile
    from PIL import Image

    rng = np.random.default_rng(0)
    for png in sorted((folder / "images").glob("*.png")):
        focus = np.asarray(Image.open(png).convert("L"))
        dim = rng.normal(30, 8, (2, *focus.shape)).clip(0, 255).astype(np.uint8)
        tifffile.imwrite(png.with_suffix(".tif"), np.stack([dim[0], focus, dim[1]]), imagej=True,
                         metadata={"axes": "ZYX"})
        png.unlink()


@pytest.fixture(scope="session")
def detect_run(tmp_path_factory) -> Path:
    """One real, short detection run on generated dot images, shared by the tests that only read it."""
    def build(root):
        data = dot_images(root / "data", n_images=12, side=96, seed=1)
        # one network (as asked): the averaged networks few objects get by default have their own test
        biolens("detect", data, "--epochs", "4", "--no-learning-curve", "--networks", "1", "--out", root / "run",
                "--seed", "0")
        return root / "run"
    return built_once(tmp_path_factory, "detect_run", build)


@pytest.fixture(scope="session")
def sequence_data(tmp_path_factory):
    """Three classes (NF-kB motif, E-box, background), plus 10 exact copies and 3 unlabelled records."""
    from biolens.simulate import simulate_labelled_sequences

    return built_once(tmp_path_factory, "sequence_data", lambda folder: _sequences_with_copies(
        simulate_labelled_sequences(folder, n_per_class=150, seed=3)))


def _sequences_with_copies(paths: dict) -> dict:
    """The simulated set plus 10 exact copies of labelled records and 3 unlabelled records."""
    import pandas as pd

    fasta = paths["sequences"].read_text().splitlines()
    records = dict(zip(fasta[0::2], fasta[1::2]))
    labels = pd.read_csv(paths["labels"], sep="\t")
    copies = labels.head(10)
    extra = "".join(f">copy_{i}\n{records['>' + row.id]}\n" for i, row in enumerate(copies.itertuples()))
    extra += "".join(f">unlabelled_{i}\n{'ACGT' * 40}\n" for i in range(3))
    paths["sequences"].write_text(paths["sequences"].read_text() + extra)
    pd.concat([labels, pd.DataFrame({"id": [f"copy_{i}" for i in range(10)], "label": copies.label})]).to_csv(
        paths["labels"], sep="\t", index=False)
    return paths


@pytest.fixture(scope="session")
def sequence_run(sequence_data, tmp_path_factory):
    """One real sequence classification run, shared by the sequence and web tests that only read it."""
    def build(folder):
        biolens("train", sequence_data["sequences"], "--labels", sequence_data["labels"], "--out", folder / "seqclass",
                "--seed", "0")
        return folder / "seqclass"
    return built_once(tmp_path_factory, "sequence_run", build)
