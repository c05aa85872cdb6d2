"""The run folder: the single source of truth for everything a task produces.

Every file is written atomically (to a temporary name in the same folder, then `os.replace`), so that a
crash or a kill never leaves a half-written file and never damages what an earlier run wrote.
"""
from __future__ import annotations

import contextlib
import csv
import hashlib
import io
import json
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from biolens.errors import InputError

RUN_FILE = "run.json"


def _current_umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask




@contextlib.contextmanager
def atomic_path(path: Path | str) -> Iterator[Path]:
    """Yield a temporary path beside `path`; rename it over `path` only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=f".tmp{path.suffix}", dir=path.parent)
    os.close(fd)
    os.chmod(tmp, 0o666 & ~_current_umask())  # the user's umask: mkstemp alone makes 0600, unreadable to colleagues
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def write_text(path: Path | str, text: str) -> None:
    # file names that are not valid UTF-8 (surrogate-escaped by Python) are written as \udcxx, never a crash
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8", errors="backslashreplace")


def write_bytes(path: Path | str, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def write_json(path: Path | str, obj: Any) -> None:
    write_text(path, json.dumps(obj, indent=2, default=_json_default) + "\n")


def write_csv(path: Path | str, header: list[str], rows: list[list], delimiter: str = ",") -> None:
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter=delimiter, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    write_text(path, buffer.getvalue())


def read_json(path: Path | str) -> Any:
    return json.loads(Path(path).read_text(encoding="utf-8"))


def read_record(path: Path) -> dict:
    """run.json or metrics.json of a run folder; a damaged one is a user error naming the file, not a traceback."""
    try:
        value = read_json(path)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise InputError(f"{path} is damaged ({str(error).splitlines()[0]}); the run folder cannot be used. "
                         "Start a new run.") from None
    if not isinstance(value, dict):
        raise InputError(f"{path} is not a biolens record (expected a JSON object); start a new run.")
    return value


def _json_default(value: Any) -> Any:
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"cannot write {type(value).__name__} to JSON")


def sha256_file(path: Path | str, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


@dataclass
class Run:
    """A run folder on disk; every property reads the folder, so it is never stale."""

    path: Path

    def __post_init__(self) -> None:
        self.path = Path(self.path)

    # -- reading -------------------------------------------------------------------------------
    @property
    def info(self) -> dict:
        return read_record(self.path / RUN_FILE)

    @property
    def metrics(self) -> dict:
        file = self.path / "metrics.json"
        return read_record(file) if file.exists() else {}

    @property
    def status(self) -> str:
        return self.info.get("status", "unknown")

    @property
    def report_path(self) -> Path:
        return self.path / "report.html"

    @property
    def model_path(self) -> Path:
        return self.path / "model.keras"

    def file(self, name: str) -> Path:
        return self.path / name

    # -- writing -------------------------------------------------------------------------------
    def update_info(self, **fields: Any) -> dict:
        info = self.info if (self.path / RUN_FILE).exists() else {}
        info.update(fields)
        info["updated"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        write_json(self.path / RUN_FILE, info)
        return info

    @contextlib.contextmanager
    def recording_outcome(self) -> Iterator["Run"]:
        """Mark the run 'interrupted' or 'failed' (with the error's first line) when the block does not finish,
        so that a list of runs (CLI, web app) always tells the truth about each one."""
        try:
            yield self
        except KeyboardInterrupt:
            self.update_info(status="interrupted")
            raise
        except Exception as exc:
            self.update_info(status="failed", error=str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
            raise

    def __repr__(self) -> str:
        return f"Run('{self.path}')"


def cached_stage(run: Run, name: str, compute) -> dict:
    """A stage of a long task: loaded from checkpoints/<name>.npz when a previous attempt finished it, else
    computed (a dict of numpy arrays) and saved atomically, so that --resume skips finished stages."""
    import numpy as np

    path = run.path / "checkpoints" / f"{name}.npz"
    if path.exists():
        with np.load(path, allow_pickle=False) as saved:
            return {key: saved[key] for key in saved.files}
    result = compute()
    with atomic_path(path) as temporary:
        with open(temporary, "wb") as handle:
            np.savez(handle, **result)
    return result


def guard_output_file(out: Path | str, *, protected: list[Path | str] = (), force: bool = False) -> Path:
    """Refuse to write `out` over a file this command did not create (unless `force`), and never inside a run
    folder or an input (not even with `force`): a prediction must not replace run.json, the model or an image.
    Missing folders on the way to `out` are fine: they are made when it is written (as run folders are), so a
    command that fails first leaves none behind."""
    out = Path(out)
    resolved = out.resolve()
    if out.exists() and out.is_dir():
        raise InputError(f"--out {out} is a folder; give a file name, e.g. {out / 'predictions.csv'}.")
    for item in map(Path, protected):
        item = item.resolve()
        if resolved == item or (item.is_dir() and resolved.is_relative_to(item)):
            raise InputError(f"--out {out} is inside {item}, which this command reads; write it somewhere else.")
    if out.exists() and not force:
        raise InputError(f"--out {out} exists already; choose another name or pass --force to replace it.")
    existing = next(folder for folder in resolved.parents if folder.exists())  # missing ones are made on writing
    if not existing.is_dir():
        raise InputError(f"--out {out}: {existing} is a file, not a folder; give a path in a folder.")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise InputError(f"--out {out}: cannot write in {existing} (permission denied).")
    return out


def ensure_new_run_folder(out: Path | str) -> None:
    """Refuse a folder that holds a run or other files, so nothing already there is ever overwritten."""
    out = Path(out)
    if (out / RUN_FILE).exists():
        raise InputError(
            f"{out} already holds a run. Pass --resume {out} to continue it, or choose another --out."
        )
    if out.exists() and any(p.name != "cache" for p in out.iterdir()):
        raise InputError(f"{out} exists and is not empty; choose a new --out folder so nothing in it is overwritten.")


def create_run(out: Path | str) -> Run:
    """Make a new, empty run folder (its `cache/` of decoded pixels may already be there)."""
    ensure_new_run_folder(out)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "figures").mkdir(exist_ok=True)
    (out / "checkpoints").mkdir(exist_ok=True)
    return Run(out)


def remove_orphans(run: Run) -> list[Path]:
    """Delete temporary files a killed process left behind (their final names were never replaced)."""
    orphans = [p for p in run.path.rglob(".*.tmp*") if p.is_file()]
    for orphan in orphans:
        orphan.unlink()
    return orphans


def load_run(path: Path | str) -> Run:
    """Open an existing run folder (written by any biolens task).

    Example:
        >>> run = biolens.load_run("runs/cells")      # doctest: +SKIP
        >>> run.metrics["balanced_accuracy"]           # doctest: +SKIP
    """
    path = Path(path)
    if not (path / RUN_FILE).exists():
        raise InputError(f"{path} is not a biolens run folder (no {RUN_FILE}). Point to the --out folder of a run.")
    return Run(path)
