"""Progress bars for transfers: on a terminal only, drawn by rich.

A bar goes to stderr, and only when stderr is a terminal that is not also
where the object's bytes go (`cat` to a terminal), so piped output and
scripts see nothing extra.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator

Advance = Callable[[int], None]


def wanted(*, quiet: bool, bytes_to_stdout: bool = False) -> bool:
    """Whether a bar should be drawn."""
    if quiet or not _is_terminal(sys.stderr):
        return False
    return not (bytes_to_stdout and _is_terminal(sys.stdout))


@contextlib.contextmanager
def bar(label: str, total: int | None, enabled: bool) -> Iterator[Advance | None]:
    """A bar of `total` bytes (None: unknown, a pulse); yields the function
    to tell it the bytes moved, or None when not `enabled`."""
    if not enabled:
        yield None
        return
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )

    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(binary_units=True),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=Console(stderr=True)) as progress:
        task = progress.add_task(label, total=total)
        yield lambda size: progress.advance(task, size)
        done = progress.tasks[0].completed
        progress.update(task, total=done, completed=done)  # a full bar at the end, whatever was guessed


def _is_terminal(stream: object) -> bool:
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())
