"""Jobs of the web app: a queue in SQLite, run one at a time, each in its own process.

The web server never computes: a dispatcher thread starts one process per job (spawned, so TensorFlow starts clean
and its memory is returned when the job ends) that calls the same engine functions as the CLI and writes the run
folder. The queue survives a restart: a job whose process is gone is marked interrupted (its run folder too) and can
be resumed from its checkpoints. Cancel sends the job an interrupt, so the engine records a consistent folder.
"""
from __future__ import annotations

import json
import multiprocessing
import os
import signal
import sqlite3
import threading
import time
import traceback
from contextlib import closing
from pathlib import Path

from biolens.engine import registry
from biolens.errors import InputError
from biolens.runs import RUN_FILE, Run, load_run, read_json, write_json

TASKS = tuple(spec.name for spec in registry.web_tasks())
SECOND_STEP = "second_step"  # a job's parameter: a step added to a finished run (its folder is not created anew)
SCHEMA = """CREATE TABLE IF NOT EXISTS jobs (
    id INTEGER PRIMARY KEY AUTOINCREMENT, run TEXT NOT NULL, task TEXT NOT NULL, params TEXT NOT NULL,
    status TEXT NOT NULL, pid INTEGER, created REAL NOT NULL, started REAL, finished REAL, error TEXT)"""


class JobQueue:
    def __init__(self, runs_dir: Path, state_dir: Path):
        self.runs_dir, self.state_dir = Path(runs_dir), Path(state_dir)
        (self.state_dir / "logs").mkdir(parents=True, exist_ok=True)
        (self.state_dir / "results").mkdir(parents=True, exist_ok=True)
        self.db_path = self.state_dir / "jobs.sqlite"
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._process: multiprocessing.Process | None = None
        self._current: int | None = None
        with self._connect() as db:
            db.execute(SCHEMA)
        self.recover()

    # -- the table ---------------------------------------------------------------------------------------------
    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.db_path, timeout=30)
        db.row_factory = sqlite3.Row
        return db

    def _update(self, job_id: int, **fields) -> None:
        with self._lock, closing(self._connect()) as db, db:
            db.execute(f"UPDATE jobs SET {', '.join(f'{k} = ?' for k in fields)} WHERE id = ?", [*fields.values(), job_id])

    def jobs(self) -> list[dict]:
        with closing(self._connect()) as db:
            return [dict(row) for row in db.execute("SELECT * FROM jobs ORDER BY id DESC")]

    def latest_for(self, run: str) -> dict | None:
        with closing(self._connect()) as db:
            row = db.execute("SELECT * FROM jobs WHERE run = ? ORDER BY id DESC LIMIT 1", [run]).fetchone()
        return dict(row) if row else None

    def log_path(self, run: str) -> Path:
        return self.state_dir / "logs" / f"{run}.log"

    # -- what the pages ask for ----------------------------------------------------------------------------------
    def submit(self, task: str, run: str, params: dict) -> int:
        if task not in registry.TASKS:
            raise InputError(f"unknown task {task!r}; choose one of {', '.join(TASKS)}.")
        with self._lock, closing(self._connect()) as db, db:
            busy = db.execute("SELECT id FROM jobs WHERE run = ? AND status IN ('queued', 'running')", [run]).fetchone()
            if busy:
                raise InputError(f"run {run} is already queued or running.")
            cursor = db.execute("INSERT INTO jobs (run, task, params, status, created) VALUES (?, ?, ?, 'queued', ?)",
                                [run, task, json.dumps(params), time.time()])
            return int(cursor.lastrowid)

    def resume(self, run: str) -> int:
        """Queue an interrupted, cancelled or failed run to continue from its checkpoints."""
        folder = self.runs_dir / run
        job = self.latest_for(run)
        given = json.loads(job["params"]) if job else {}
        if given.get("regions") and not (folder / RUN_FILE).exists():
            if job["status"] in ("queued", "running", "complete"):
                raise InputError(f"run {run} is {job['status']}; there is nothing to resume.")
            return self.submit(job["task"], run, given)  # the regions runner keeps finished regions, resumes the rest
        info = load_run(folder).info
        if info.get("status") == "complete":
            raise InputError(f"run {run} has finished; there is nothing to resume.")
        return self.submit(info.get("task"), run, {"resume": str(folder)})

    def add_learning_curve(self, run: str) -> int:
        """Queue the learning curve of a finished run as a second step (the engine's `add_learning_curve`): the run
        folder stays the same, its report is rewritten with the curve."""
        from biolens.engine.lifecycle import run_for_learning_curve

        _, _, spec = run_for_learning_curve(self.runs_dir / run)  # the engine's own gate, refused at the click
        return self.submit(spec.name, run, {SECOND_STEP: "learning_curve"})

    def cancel(self, run: str) -> None:
        job = self.latest_for(run)
        if job is None or job["status"] not in ("queued", "running"):
            raise InputError(f"run {run} is not queued or running; nothing to cancel.")
        if job["status"] == "queued":
            self._update(job["id"], status="cancelled", finished=time.time())
            return
        process = self._process if self._current == job["id"] else None
        if process is not None and process.is_alive():
            os.kill(process.pid, signal.SIGINT)  # KeyboardInterrupt in the engine: it marks the run interrupted
            process.join(20)
            if process.is_alive():
                process.kill()
                process.join(5)
        self._update(job["id"], status="cancelled", finished=time.time())
        _mark_run(self.runs_dir / run, "interrupted", only_if="running")

    def rename(self, run: str, new: str) -> None:
        """Give a finished (or stopped) run another name: its folder, its log and its job history move together."""
        with self._lock, closing(self._connect()) as db, db:
            self._refuse_if_busy(db, run, "renamed")
            if (self.runs_dir / new).exists() or db.execute("SELECT id FROM jobs WHERE run = ?", [new]).fetchone():
                raise InputError(f"there is already a run called {new}; choose another name.")
            if (self.runs_dir / run).exists():
                os.rename(self.runs_dir / run, self.runs_dir / new)
            if self.log_path(run).exists():
                os.rename(self.log_path(run), self.log_path(new))
            db.execute("UPDATE jobs SET run = ? WHERE run = ?", [new, run])

    def delete(self, run: str) -> Path:
        """Remove a finished (or stopped) run from the list: its folder moves to the server's trash folder (kept, so
        a wrong click can be undone by moving it back), its job history goes."""
        with self._lock, closing(self._connect()) as db, db:
            self._refuse_if_busy(db, run, "deleted")
            trash = self.state_dir / "trash" / f"{run}-{time.strftime('%Y%m%d-%H%M%S')}"
            trash.parent.mkdir(parents=True, exist_ok=True)
            if (self.runs_dir / run).exists():
                os.rename(self.runs_dir / run, trash)
            if self.log_path(run).exists():
                os.replace(self.log_path(run), trash.with_suffix(".log"))
            db.execute("DELETE FROM jobs WHERE run = ?", [run])
            return trash

    @staticmethod
    def _refuse_if_busy(db, run: str, verb: str) -> None:
        if db.execute("SELECT id FROM jobs WHERE run = ? AND status IN ('queued', 'running')", [run]).fetchone():
            raise InputError(f"run {run} is queued or running; cancel it first, then it can be {verb}.")

    def recover(self) -> None:
        """After a restart: a job marked running whose process is gone was interrupted."""
        for job in self.jobs():
            if job["status"] == "running" and not _alive(job["pid"]):
                self._update(job["id"], status="interrupted", finished=time.time())
                _mark_run(self.runs_dir / job["run"], "interrupted", only_if="running")

    # -- the dispatcher --------------------------------------------------------------------------------------------
    def start(self) -> None:
        self._thread = threading.Thread(target=self._dispatch, name="biolens-jobs", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Server shutdown: the running job is interrupted (resumable), queued ones wait for the next start."""
        self._stop.set()
        if self._current is not None:
            job = next((j for j in self.jobs() if j["id"] == self._current), None)
            if job and job["status"] == "running":
                try:
                    self.cancel(job["run"])
                    self._update(job["id"], status="interrupted")
                except InputError:
                    pass
        if self._thread is not None:
            self._thread.join(10)

    def _dispatch(self) -> None:
        context = multiprocessing.get_context("spawn")
        while not self._stop.is_set():
            if self._process is not None and not self._process.is_alive():
                self._finish(self._current, self._process.exitcode)
                self._process, self._current = None, None
            if self._process is None:
                queued = [j for j in self.jobs() if j["status"] == "queued"]
                if queued:
                    job = queued[-1]  # oldest first
                    process = context.Process(target=execute, name=f"biolens-job-{job['id']}", daemon=False,
                                              args=(job["task"], str(self.runs_dir / job["run"]), json.loads(job["params"]),
                                                    str(self.log_path(job["run"])), str(self._result_path(job["id"]))))
                    process.start()
                    self._process, self._current = process, job["id"]
                    self._update(job["id"], status="running", pid=process.pid, started=time.time())
            self._stop.wait(0.5)

    def _result_path(self, job_id: int) -> Path:
        return self.state_dir / "results" / f"{job_id}.json"

    def _finish(self, job_id: int, exitcode: int | None) -> None:
        job = next((j for j in self.jobs() if j["id"] == job_id), None)
        if job is None or job["status"] != "running":
            return  # cancelled meanwhile
        result_file = self._result_path(job_id)
        result = read_json(result_file) if result_file.exists() else {
            "status": "failed", "error": f"the job process ended unexpectedly (exit code {exitcode}); resume the run."}
        self._update(job_id, status=result["status"], error=result.get("error"), finished=time.time())
        if result["status"] != "complete":
            _mark_run(self.runs_dir / job["run"], "interrupted" if result["status"] == "cancelled" else "failed",
                      only_if="running", error=result.get("error"))


def _alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie is not alive
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"
    except OSError:
        return True


def _mark_run(folder: Path, status: str, *, only_if: str, error: str | None = None) -> None:
    """Keep run.json truthful when the engine could not write it itself (its process was killed)."""
    if (folder / RUN_FILE).exists() and Run(folder).status == only_if:
        Run(folder).update_info(status=status, **({"error": error} if error else {}))


# -- inside the job process -------------------------------------------------------------------------------------
def execute(task: str, run_path: str, params: dict, log_path: str, result_path: str) -> None:
    """Run one job: the engine's output goes to the job's log; the outcome (or the engine's one-line error) to
    `result_path`. Dies with the server (PR_SET_PDEATHSIG), so a killed server never leaves a job running alone."""
    _die_with_parent()
    log = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(log, 1)
    os.dup2(log, 2)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    outcome: dict = {"status": "complete"}
    try:
        from biolens.hardware import import_tensorflow

        import_tensorflow()  # without TensorFlow's start-up chatter in the log a biologist reads
        _run_engine(task, Path(run_path), params)
    except InputError as exc:
        print(f"error: {exc}", flush=True)
        outcome = {"status": "failed", "error": str(exc).splitlines()[0]}
    except KeyboardInterrupt:
        print("cancelled; the run can be resumed from its last checkpoint.", flush=True)
        outcome = {"status": "cancelled"}
    except Exception as exc:  # a bug in biolens: the traceback goes to the log, the page shows one line
        traceback.print_exc()
        outcome = {"status": "failed", "error": f"internal error ({type(exc).__name__}); the run log has the details."}
    write_json(result_path, outcome)


def _run_engine(task: str, out: Path, params: dict) -> None:
    """The same engine entry as the CLI's, looked up in the task registry."""
    if params.get(SECOND_STEP) == "learning_curve":
        from biolens.engine.lifecycle import add_learning_curve

        add_learning_curve(out)
        return
    if params.get("regions"):  # several regions of one genotype file: the regions runner, which also resumes
        from biolens.tasks.associate_regions import associate_regions

        associate_regions(out=out, **params)
        return
    entry = registry.get(task).function()
    resume = params.pop("resume", None)
    entry(resume=resume) if resume else entry(out=out, **params)


def _die_with_parent() -> None:
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass  # not Linux: the server's shutdown still interrupts the job
