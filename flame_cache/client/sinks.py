"""Where a read writes: a path (whole or not at all) or a file object."""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO, Union

Destination = Union[str, os.PathLike, BinaryIO]


@contextlib.contextmanager
def open_sink(dest: Destination) -> Iterator[BinaryIO]:
    """A file to write the object into. For a path, a temporary file beside
    it, renamed over it when the block ends without error and removed when
    it does not, so a failed or unchecked download never leaves a partial
    file under the name asked for; a path to something other than a regular
    file (a FIFO, /dev/null) is written as it is. A file object is written
    as it is, and left open. OSError if the file cannot be made."""
    if not isinstance(dest, (str, os.PathLike)):
        yield dest
        return
    path = Path(dest)
    if path.exists() and not stat.S_ISREG(path.stat().st_mode):
        with open(path, "wb") as file:
            yield file
        return
    try:
        fd, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    except OSError as exc:
        raise OSError(exc.errno, exc.strerror, str(path)) from None  # named as asked, not the temporary
    try:
        with os.fdopen(fd, "wb") as file:
            yield file
        os.chmod(temporary, 0o666 & ~_umask())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise


def _umask() -> int:
    """The process's umask (mkstemp makes files 0600; a download should
    get the mode any new file gets). Read from /proc where it can be: setting
    it to read it back races with other threads making files."""
    with contextlib.suppress(OSError, StopIteration, ValueError):
        with open("/proc/self/status") as status:
            return int(next(line for line in status if line.startswith("Umask:")).split()[1], 8)
    mask = os.umask(0o022)
    os.umask(mask)
    return mask
