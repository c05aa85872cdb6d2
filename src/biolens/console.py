"""What a task says to the person running it: one shared Rich console on stderr."""
from __future__ import annotations

import contextlib
import time
from typing import Callable, Iterator

from rich.console import Console

_console = Console(stderr=True)


def say(message: str) -> None:
    _console.print(message, highlight=False, soft_wrap=True)


@contextlib.contextmanager
def progress_bar(description: str, total: int) -> Iterator[Callable[[int], None]]:
    """A Rich progress bar with ETA on a terminal; silent elsewhere. Yields `advance(n)`."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                  console=_console, transient=True, disable=not _console.is_terminal) as progress:
        task = progress.add_task(description, total=total)
        yield lambda n=1: progress.advance(task, n)
    if not _console.is_terminal:
        say(f"{description}: done")


@contextlib.contextmanager
def step(what: str) -> Iterator[None]:
    """Say what is running and, when it finishes, how long it took (stages of seconds to minutes)."""
    started = time.time()
    say(f"{what} ...")
    yield
    say(f"  {what}: {time.time() - started:.1f} s")
