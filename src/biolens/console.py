"""What a task says to the person running it: one shared Rich console on stderr, and the same stages written to the
run folder's progress.json, which the web app's Run page follows (one source of progress for both faces)."""
from __future__ import annotations

import contextlib
import json
import os
import time
from pathlib import Path
from typing import Callable, Iterator

from rich.console import Console

_console = Console(stderr=True)
PROGRESS_FILE = "progress.json"
_WRITE_EVERY_S = 0.5
_sink: dict = {}   # {"path", "running", "finished", "written"} while a run is followed


def say(message: str) -> None:
    _console.print(message, highlight=False, soft_wrap=True)


@contextlib.contextmanager
def follow(folder: Path) -> Iterator[None]:
    """Record the stages of the run in `folder` (its progress.json) until the block ends."""
    previous = dict(_sink)
    _sink.clear()
    _sink.update(path=Path(folder) / PROGRESS_FILE, written=0.0, running=[], finished=[])
    try:
        yield
    finally:
        if _sink:
            _sink["running"] = []
            _write(force=True)
        _sink.clear()
        _sink.update(previous)


def _write(force: bool = False) -> None:
    """progress.json: `running` (the stages under way, outermost first, each with name, started, done, total,
    unit) and `finished` (name and seconds of the last 50 stages); written atomically, at most every 0.5 s."""
    if not _sink:
        return
    now = time.time()
    if not force and now - _sink["written"] < _WRITE_EVERY_S:
        return
    _sink["written"] = now
    path = _sink["path"]
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        temporary.write_text(json.dumps({"running": _sink["running"], "finished": _sink["finished"][-50:],
                                         "updated": now}))
        os.replace(temporary, path)
    except OSError:  # progress is a courtesy: a full disk or a removed folder never stops the run
        pass


def stage_started(name: str, total: int | None = None, unit: str | None = None, done: int = 0) -> None:
    if _sink:
        _sink["running"].append({"name": name, "started": time.time(), "done": done if total else None,
                                 "first_done": done, "total": total, "unit": unit})
        _write(force=True)


def stage_advanced(done: int, *, force: bool = False) -> None:
    """The innermost stage has `done` of its total; written at once with `force` (epochs: seconds apart), else at
    most every 0.5 s (items: many a second)."""
    if _sink and _sink["running"]:
        stage = _sink["running"][-1]
        stage["done"] = done
        _write(force=force or (stage["total"] is not None and done >= stage["total"]))


def stage_finished() -> None:
    if _sink and _sink["running"]:
        stage = _sink["running"].pop()
        _sink["finished"].append({"name": stage["name"], "seconds": round(time.time() - stage["started"], 1)})
        _write(force=True)


@contextlib.contextmanager
def progress_bar(description: str, total: int) -> Iterator[Callable[[int], None]]:
    """A Rich progress bar with ETA on a terminal; silent elsewhere. Yields `advance(n)`."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    done = [0]
    stage_started(description, total, "items")

    def advance(n: int = 1) -> None:
        progress.advance(task, n)
        done[0] += n
        stage_advanced(done[0])

    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                  console=_console, transient=True, disable=not _console.is_terminal) as progress:
        task = progress.add_task(description, total=total)
        try:
            yield advance
        finally:
            stage_finished()
    if not _console.is_terminal:
        say(f"{description}: done")


@contextlib.contextmanager
def step(what: str) -> Iterator[None]:
    """Say what is running and, when it finishes, how long it took (stages of seconds to minutes)."""
    started = time.time()
    say(f"{what} ...")
    stage_started(what)
    try:
        yield
    finally:
        stage_finished()
    say(f"  {what}: {time.time() - started:.1f} s")
