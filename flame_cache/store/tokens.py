"""The tokens of `cache.auth`: held as sha256 digests, compared in constant time.

The server never keeps a token as text: a `token_sha256` is a digest already,
and a `token_file` is digested as it is read. A presented token is digested
once and compared with every digest by `hmac.compare_digest`, without
stopping at the first match, so the time taken says nothing of how close a
guess was.

A token file holds one token a line (blank lines and `#` comments are
skipped), so a rotation can hold the old and the new token for a while. It
is read at start-up (OSError, ValueError if it holds none) and again when it
changes, looked at most every RELOAD_SECONDS: a Kubernetes Secret mounted as
a file rotates without a restart. A file that becomes unreadable or empty
grants nothing until it is mended (logged once per change).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from flame_cache.store.scopes import Scope

log = logging.getLogger(__name__)

RELOAD_SECONDS = 5.0
SHA256_HEX_CHARS = 64


def digest(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8", "surrogateescape")).digest()


def any_equal(digests: tuple[bytes, ...], presented: bytes) -> bool:
    """True if `presented` is one of `digests`; every one is compared."""
    found = False
    for candidate in digests:
        found |= hmac.compare_digest(candidate, presented)
    return found


class TokenFile:
    """The digests of the tokens in a file, read again when the file changes."""

    def __init__(self, path: Path, setting: str) -> None:
        """Reads the file now: OSError if it cannot, ValueError if it holds no token."""
        self.path, self.setting = path, setting
        self._lock = threading.Lock()
        self._stamp = self._stat()
        self._digests = self._read()
        if not self._digests:
            raise ValueError(f"{setting} = {str(path)!r} holds no token (one a line; '#' starts a comment)")
        self._checked = time.monotonic()

    def digests(self) -> tuple[bytes, ...]:
        if time.monotonic() - self._checked >= RELOAD_SECONDS:
            self._reload()
        return self._digests

    def _reload(self) -> None:
        with self._lock:
            if time.monotonic() - self._checked < RELOAD_SECONDS:
                return  # another thread just did
            self._checked = time.monotonic()
            try:
                stamp = self._stat()
                if stamp == self._stamp:
                    return
                self._stamp, self._digests = stamp, self._read()
            except OSError as exc:
                self._stamp, self._digests = None, ()
                why = exc.strerror or exc
                log.warning("%s: cannot read %s (%s); it grants nothing until it can be read", self.setting, self.path, why)
                return
            if not self._digests:
                log.warning("%s: %s holds no token; it grants nothing until it does", self.setting, self.path)
            else:
                log.info("%s: read %d token(s) again from %s", self.setting, len(self._digests), self.path)

    def _stat(self) -> tuple[int, int, int] | None:
        status = os.stat(self.path)
        return status.st_ino, status.st_mtime_ns, status.st_size

    def _read(self) -> tuple[bytes, ...]:
        lines = (line.strip() for line in self.path.read_text(encoding="utf-8", errors="surrogateescape").splitlines())
        return tuple(digest(line) for line in lines if line and not line.startswith("#"))


@dataclass(frozen=True)
class Token:
    """One entry of `cache.auth.tokens`: its name (shown in logs), its
    scopes, and its digests (`token_sha256`) or file (`token_file`)."""

    name: str
    scopes: tuple[Scope, ...]
    digests: tuple[bytes, ...] = ()
    file: TokenFile | None = field(default=None, compare=False)

    def matches(self, presented: bytes) -> bool:
        """True if `presented` (a digest) is this token's (constant time)."""
        return any_equal(self.digests + (self.file.digests() if self.file else ()), presented)
