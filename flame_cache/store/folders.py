"""The storage root's folders: making them, pruning them, and flushing.

A delete prunes empty folders, and a write makes its folder, then its file in
it: one lock keeps a prune out of the gap between the two. With `fsync`,
every folder made and every rename is flushed before a write is
acknowledged, or a power loss could drop a file that was acknowledged.
Paths are strings below the root (see `layout`).
"""

from __future__ import annotations

import os
import threading
from contextlib import suppress
from pathlib import Path


class Folders:
    """The folders below `root`, and whether writes promise durability."""

    def __init__(self, root: Path, *, fsync: bool = False) -> None:
        self.root = root
        self.top = str(root)
        self.fsync = fsync
        self._lock = threading.Lock()
        root.mkdir(parents=True, exist_ok=True)

    def create_file(self, path: str) -> int:
        """Open a new file for writing (and positional reads), making its
        folders. The folder usually exists: then no lock is needed, as a prune
        cannot remove a folder with a file in it (with fsync the lock also
        waits out another writer's flush of a folder it just made)."""

        def create() -> int:
            return os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o666)

        if not self.fsync:
            try:
                return create()
            except FileNotFoundError:
                pass
        with self._lock:
            self._make_dirs(os.path.dirname(path))
            return create()

    def discard(self, temp: str) -> None:
        """Remove an unfinished file, and the folders made for it if that
        leaves them empty: a write that stored nothing leaves nothing."""
        with self._lock:
            with suppress(FileNotFoundError):
                os.unlink(temp)
            folder = os.path.dirname(temp)
            while folder != self.top and _try_rmdir(folder):
                folder = os.path.dirname(folder)

    def prune(self, segments: tuple[str, ...]) -> None:
        """Remove empty folders at and below `segments`, then empty parents."""
        top = self.root.joinpath(*segments)
        with self._lock:
            for folder, _, _ in os.walk(top, topdown=False):
                _try_rmdir(folder)
            for depth in range(len(segments) - 1, 0, -1):
                _try_rmdir(self.root.joinpath(*segments[:depth]))

    def flush(self, path: str) -> None:
        """fsync a file or folder, if writes promise durability."""
        if self.fsync:
            fd = os.open(path, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)

    def _make_dirs(self, folder: str) -> None:
        """`mkdir -p`; with fsync, each new folder's parent is flushed too."""
        missing = []
        while not os.path.isdir(folder) and folder != self.top:
            missing.append(folder)
            folder = os.path.dirname(folder)
        for new in reversed(missing):
            try:
                os.mkdir(new)
            except FileExistsError:
                if not os.path.isdir(new):
                    raise
            self.flush(os.path.dirname(new))


def _try_rmdir(path: str | Path) -> bool:
    try:
        os.rmdir(path)
    except OSError:
        return False
    return True
