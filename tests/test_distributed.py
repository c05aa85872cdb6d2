"""Training across machines with MultiWorkerMirroredStrategy, shown with two worker processes on 127.0.0.1 (CPU)."""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import ENV, ROOT, biolens, one_line_error


def free_ports(n: int) -> list[int]:
    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def start_workers(args: list, out: Path, logs: Path) -> list[subprocess.Popen]:
    workers = ",".join(f"127.0.0.1:{p}" for p in free_ports(2))
    logs.mkdir(parents=True, exist_ok=True)
    return [subprocess.Popen([sys.executable, "-m", "biolens", "train", *map(str, args), "--workers", workers,
                              "--worker-index", str(i)], stdout=open(logs / f"worker{i}.log", "a"),
                             stderr=subprocess.STDOUT, env=ENV, cwd=ROOT, start_new_session=True) for i in range(2)]


def wait_all(processes, timeout=900):
    for process in processes:
        assert process.wait(timeout) == 0


@pytest.mark.slow
def test_two_workers_train_a_model_as_good_as_one_process(tmp_path, slice_manifest, trained_run):
    out = tmp_path / "cells"
    wait_all(start_workers([slice_manifest, "--group-column", "source_image", "--epochs", "4", "--seed", "1",
                            "--out", out], out, tmp_path / "logs"))
    info = json.loads((out / "run.json").read_text())
    assert info["status"] == "complete" and "MultiWorkerMirrored" in info["device"]
    two = json.loads((out / "metrics.json").read_text())["balanced_accuracy"]
    one = json.loads((trained_run / "metrics.json").read_text())["balanced_accuracy"]
    assert two >= 0.8 and abs(two - one) <= 0.15, (two, one)
    log = (tmp_path / "logs" / "worker1.log").read_text()
    assert "worker 0 writes the run folder" in log
    scratch = Path(log.split("run folder: ")[1].splitlines()[0])  # worker 1 never writes into the chief's folder
    assert not scratch.resolve().is_relative_to(out.resolve()) and (scratch / "history.csv").exists()


@pytest.mark.slow
def test_a_restarted_job_resumes_from_the_chiefs_checkpoint(tmp_path, slice_manifest):
    out, logs = tmp_path / "cells", tmp_path / "logs"
    args = [slice_manifest, "--group-column", "source_image", "--epochs", "6", "--seed", "2", "--out", out]
    workers = start_workers(args, out, logs)
    history = out / "history.csv"
    deadline = time.time() + 600
    while not (history.exists() and len(history.read_text().splitlines()) >= 3):  # two epochs done
        assert time.time() < deadline and all(w.poll() is None for w in workers)
        time.sleep(0.2)
    for worker in workers:  # a machine goes down: the whole job stops
        os.killpg(worker.pid, signal.SIGKILL)
        worker.wait()
    done = len(history.read_text().splitlines()) - 1
    assert done < 6
    wait_all(start_workers(["--resume", out], out, logs))
    assert json.loads((out / "run.json").read_text())["status"] == "complete"
    assert len(history.read_text().splitlines()) - 1 == 6
    for i in range(2):
        assert f"resuming after epoch {done}" in (logs / f"worker{i}.log").read_text()


@pytest.mark.slow  # a longer end-to-end run: pytest -m slow (keeps the default suite under 15 minutes)
def test_bad_worker_lists_are_one_line(slice_manifest, tmp_path):
    for workers, index, words in (("127.0.0.1:1", 0, "at least two"), ("127.0.0.1:1,nonsense", 0, "not host:port"),
                                  ("127.0.0.1:1,127.0.0.1:2", 5, "outside 0..1")):
        line = one_line_error(biolens("train", slice_manifest, "--out", tmp_path / "x", "--workers", workers,
                                      "--worker-index", index, check=False))
        assert words in line
