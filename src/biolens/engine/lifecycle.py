"""One run lifecycle for every task: new or resume, one fingerprint, one run.json schema, outcome, timings, report.

A task module supplies two functions and nothing else of the lifecycle:
    prepare(config, run_or_None, out) -> Prepared   reads and checks every input (before any folder exists)
    body(run, config, data) -> bool                 computes and writes the task's outputs; False when another
                                                    process finishes the run (a worker of a multi-machine run)
`execute` does the rest, the same way for every task: refuse a folder that is not a new run, refuse resuming a
finished run or another task's run, read the config of any older run.json, compare data fingerprints on resume,
write the shared run.json keys, record failures and interruptions, add up time across resumes, and on success
mark the run complete with the model's sha256 and write the report.
"""
from __future__ import annotations

import hashlib
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

from biolens import console
from biolens.engine import registry
from biolens.errors import InputError
from biolens.runs import RUN_FILE, Run, create_run, ensure_new_run_folder, load_run, remove_orphans, sha256_file

CONTENT_HASH_LIMIT = 1 << 30  # single input files up to this size are fingerprinted by content, larger by size+mtime


@dataclass
class Prepared:
    """What a task's `prepare` hands to the lifecycle."""
    data: Any
    fingerprint: str
    record: dict = field(default_factory=dict)  # extra run.json fields written when the run is created


def now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")


def data_fingerprint(paths: Iterable[Path | str], *, root: Path | str | None = None,
                     rows: Iterable[str] = ()) -> str:
    """The one data fingerprint: sha256 over every input file (a folder: each file in it) and extra rows (labels,
    groups). A file is named relative to `root` (so a moved data folder still resumes) and described by its size
    and content hash, or size and modification time above CONTENT_HASH_LIMIT and inside folders (thousands of
    images)."""
    digest = hashlib.sha256()
    root = Path(root) if root else None
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            inner = sorted(p for p in path.rglob("*") if p.is_file() and not p.name.startswith("."))
            for item in inner:
                stat = item.stat()
                digest.update(f"{item.relative_to(path)}\t{stat.st_size}\t{int(stat.st_mtime)}\n".encode(errors="surrogateescape"))
            continue
        name = path.relative_to(root) if root and path.is_relative_to(root) else Path(path.name)
        if not path.exists():
            digest.update(f"{name}\tmissing\n".encode(errors="surrogateescape"))
            continue
        stat = path.stat()
        content = sha256_file(path) if stat.st_size <= CONTENT_HASH_LIMIT else str(int(stat.st_mtime))
        digest.update(f"{name}\t{stat.st_size}\t{content}\n".encode(errors="surrogateescape"))
    for row in rows:
        digest.update(f"{row}\n".encode(errors="surrogateescape"))
    return digest.hexdigest()


def elapsed_seconds(run: Run) -> float:
    """Seconds spent on this run so far, across every attempt (resumes add up)."""
    timings = run.info.get("timings") or {}
    return float(timings.get("seconds_before_this_attempt", 0.0)) + time.time() - float(
        timings.get("attempt_started", time.time()))


def config_for_resume(spec: registry.TaskSpec, info: dict):
    """The config of an existing run, whichever biolens wrote it (older association runs kept inputs apart)."""
    values = {**(info.get("inputs") or {}), **(info.get("config") or {})}
    return spec.config.from_dict(values).validate()


def execute(task: str, *, out: Path | str | None, resume: Path | str | None, options: dict,
            prepare: Callable[[Any, Run | None, Path], Prepared], body: Callable[[Run, Any, Any], bool]) -> Run:
    """Start (or resume) a run of `task`; returns the run folder. See the module docstring."""
    spec = registry.get(task)
    if resume is not None:
        run = load_run(resume)
        info = read_run_info(run)
        if info.get("task") != spec.name:
            raise InputError(f"{resume} is a '{info.get('task')}' run, not a '{spec.name}' run; resume it with its "
                             "own command.")
        if info.get("status") == "complete":
            raise InputError(f"{resume} has already finished; nothing to resume. Start a new run with another --out.")
        config = config_for_resume(spec, info)
        remove_orphans(run)
        out = run.path
    else:
        config = spec.config.build(**options).validate()
        if out is None:
            raise InputError("give the run folder to create (--out).")
        out = Path(out)
        check_output_folder(out, inputs=_input_paths(config))
        ensure_new_run_folder(out)
        run = None
    prepared = prepare(config, run, Path(out))
    previous = 0.0
    if run is None:
        from biolens.hardware import library_versions

        run = create_run(out)
        run.update_info(task=spec.name, status="running", config=config.to_dict(), seed=getattr(config, "seed", None),
                        data_fingerprint=prepared.fingerprint, versions=library_versions(), created=now(),
                        attempts=1, **prepared.record)
    else:
        if run.info.get("data_fingerprint") != prepared.fingerprint:
            raise InputError(f"the input data changed since {run.path} started (data fingerprint differs); start a "
                             "new run instead of resuming.")
        previous = float((run.info.get("timings") or {}).get("seconds", 0.0))
        run.update_info(status="running", error=None, attempts=int(run.info.get("attempts", 1)) + 1)
    started = time.time()
    _set_timings(run, seconds_before_this_attempt=previous, attempt_started=started)
    console.say(f"run folder: {run.path}")
    try:
        with run.recording_outcome(), console.follow(run.path):
            finished = body(run, config, prepared.data)
            if finished is False:
                return run
            _complete(spec, run)
    finally:
        _set_timings(run, seconds=round(previous + time.time() - started, 1))
    return run


def add_learning_curve(path: Path | str) -> Run:
    """The learning curve added to a finished run, as a second step (a first result comes sooner without it): the
    task's own curve on the run's own split, data checked against the run's fingerprint; metrics.json, the figure
    and the report are updated in place. Interrupted, it continues where it stopped when called again."""
    from biolens.report.html import write_report
    from biolens.runs import write_json

    run, info, spec = run_for_learning_curve(path)
    metrics = dict(run.metrics)
    if metrics.get("learning_curve"):
        console.say(f"{run.path} has its learning curve already; see the report.")
        return run
    config = config_for_resume(spec, info)
    started = time.time()
    hook = spec.function("learning_curve")
    metrics["learning_curve"] = hook(run, config, metrics)
    metrics.pop("learning_curve_skipped", None)
    metrics.pop("learning_curve_expected_seconds", None)
    write_json(run.path / "metrics.json", metrics)
    timings = dict(run.info.get("timings") or {})
    timings["learning_curve_seconds"] = round(time.time() - started, 1)
    run.update_info(timings=timings)
    write_report(run)
    console.say(metrics["learning_curve"]["advice"])
    console.say(f"report: {run.report_path}")
    return run


def run_for_learning_curve(path: Path | str):
    """(run, run.json, task spec) of a finished run whose task has a learning curve, else one line saying why not
    (the CLI's, the API's and the web app's gate for the second step)."""
    run = load_run(path)
    info = read_run_info(run)
    spec = registry.get(info.get("task"))
    if spec.learning_curve is None:
        raise InputError(f"{run.path} is a {spec.title} run; only image or sequence classification and object "
                         "detection runs have a learning curve.")
    if info.get("status") != "complete":
        raise InputError(f"{run.path} has not finished (status {info.get('status')}); resume it first.")
    return run, info, spec


def prepared_again(prepare: Callable[[Any, Run | None, Path], Prepared], config, run: Run):
    """A finished run's data read again by its task's `prepare` (its own split), refused if it changed since."""
    prepared = prepare(config, run, run.path)
    if prepared.data is None or run.info.get("data_fingerprint") != prepared.fingerprint:
        raise InputError(f"the input data changed since {run.path} was trained (data fingerprint differs); the "
                         "learning curve must use the same data. Train a new run instead.")
    return prepared.data


def _set_timings(run: Run, **values) -> None:
    if not (run.path / RUN_FILE).exists():
        return
    timings = dict(run.info.get("timings") or {})
    timings.update(values)
    run.update_info(timings=timings)


def _complete(spec: registry.TaskSpec, run: Run) -> None:
    from biolens.report.html import write_report

    fields: dict = {"status": "complete", "finished": now(), "error": None}
    if run.model_path.exists():
        fields["model_sha256"] = sha256_file(run.model_path)
    run.update_info(**fields)
    write_report(run)
    headline = spec.summary(run.metrics)
    if headline:
        console.say(headline)
    console.say(f"report: {run.report_path}")


def read_run_info(run: Run) -> dict:
    """run.json, or a one-line error when it is damaged (a half-written file from a tool other than biolens)."""
    import json

    try:
        info = run.info
    except (json.JSONDecodeError, UnicodeDecodeError, OSError) as error:
        raise InputError(f"{run.path / RUN_FILE} cannot be read ({str(error).splitlines()[0]}); the run folder is "
                         "damaged. Start a new run.") from None
    if not isinstance(info, dict) or "task" not in info:
        raise InputError(f"{run.path / RUN_FILE} is not a biolens run record (no 'task'); start a new run.")
    return info


def _input_paths(config) -> list[Path]:
    names = ("data", "labels", "annotations", "images", "phenotypes", "genotypes", "sequences", "unlabelled")
    paths = []
    for name in names:
        value = getattr(config, name, None)
        paths += [Path(v) for v in value] if isinstance(value, (list, tuple)) else [Path(value)] if value else []
    return paths


def check_output_folder(out: Path, inputs: Iterable[Path] = ()) -> None:
    """Refuse an --out that cannot hold a run: a file, inside the input data, unwritable or too long a name."""
    out = Path(out)
    if any(len(part.encode(errors="surrogateescape")) > 255 for part in out.parts):
        raise InputError(f"--out {str(out)[:80]}...: a folder name is longer than 255 bytes; choose a shorter name.")
    if out.exists() and not out.is_dir():
        raise InputError(f"--out {out} is a file; give a folder for the run (it is created).")
    resolved = out.resolve()
    for source in inputs:
        source = Path(source).resolve()
        if source.is_dir() and (resolved == source or resolved.is_relative_to(source)):
            raise InputError(f"--out {out} is inside the input folder {source}; the next run would read the run as "
                             "data. Choose a folder outside it.")
    parent = next((p for p in [resolved, *resolved.parents] if p.exists()), None)
    if parent is not None and not os.access(parent, os.W_OK | os.X_OK):
        raise InputError(f"--out {out}: cannot write in {parent} (permission denied); choose a folder you can write to.")
