"""Moving a finished file over an existing one, without ext4's flush on replace.

`os.replace` over an existing file makes ext4 (mounted with its default
`auto_da_alloc`) allocate and start writing back the new file's blocks inside
the rename, a guard for programs that never fsync, and the rename becomes the
most expensive step of a put (bench/README.md has the figures). Linux's
`renameat2(RENAME_EXCHANGE)` swaps the two names atomically instead, without
that flush; the old file, now under the temporary name, is then unlinked. A kill between
the two steps leaves the old bytes under a temporary name, which start-up
removes like any unfinished temporary file.

Durability is unchanged where we promise it: against a killed process the
swap is as atomic as a rename, and with `fsync: true` the new file was
fsynced before it is swapped in. Where `renameat2` is missing (not Linux, an
old libc, a file system without exchange) this falls back to `os.replace`.
"""

from __future__ import annotations

import ctypes
import errno
import os

_AT_FDCWD = -100
_RENAME_EXCHANGE = 2
_UNSUPPORTED = (errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP)


def _load_renameat2():
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        function = libc.renameat2
    except (OSError, AttributeError):
        return None
    function.argtypes = [
        ctypes.c_int,
        ctypes.c_char_p,
        ctypes.c_int,
        ctypes.c_char_p,
        ctypes.c_uint,
    ]
    function.restype = ctypes.c_int
    return function


_renameat2 = _load_renameat2()


def replace_file(source: str, target: str) -> None:
    """`os.replace(source, target)`: atomic, `target` is the new file after."""
    if _renameat2 is not None and _exchange(source, target):
        try:
            os.unlink(source)  # the old file, now under the temporary name
        except OSError:
            pass  # the new file is in place; start-up removes the leftover
    else:
        os.replace(source, target)


def _exchange(source: str, target: str) -> bool:
    """Swap the two names; False where only a plain rename can do (no target
    yet, or no exchange on this system), leaving both names untouched."""
    global _renameat2
    assert _renameat2 is not None
    if (
        _renameat2(
            _AT_FDCWD,
            os.fsencode(source),
            _AT_FDCWD,
            os.fsencode(target),
            _RENAME_EXCHANGE,
        )
        == 0
    ):
        return True
    code = ctypes.get_errno()
    if code == errno.ENOENT:
        return False  # no target yet (or no source: os.replace reports that)
    if code in _UNSUPPORTED:
        _renameat2 = None  # not on this system or file system: stop trying
        return False
    raise OSError(code, os.strerror(code), source, None, target)
