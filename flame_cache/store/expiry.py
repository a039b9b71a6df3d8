"""Expiry (SPEC 8): rules of `cache.expiry`, per-object TTLs, and the sweep.

An object expires at its *deadline*:
- a per-object TTL (HTTP `?ttl=` on a write, Flight's `EXPIRE` action) sets
  an absolute deadline, now + ttl; it stays with the object across patches
  and replaces until it is cleared (ttl 0), set again, or the object goes;
- otherwise the first rule of `cache.expiry` whose pattern matches the key:
  `ttl` after the object's last write (`after: write`) or its last use (a
  read or a write: `after: access`).

An expired object answers NOT_FOUND at once (the store checks the deadline
on every read), a write to its key starts a new object, and the sweep
(`repair.start_sweep`, every `cache.expiry_sweep`) deletes its files.

Across restarts: a per-object deadline is kept with the object in a small
hidden file beside its base, `.<id>.ttl` (the key grammar reserves names
beginning with '.'), written atomically, removed with the object; the
start-up scan knows these names. A rule's clock restarts from the files'
last write (mtime): reads change nothing on disk, so an `after: access`
object's last read before a restart is not known, and its clock counts from
its last write instead, which can only expire it sooner, never revive it.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from contextlib import suppress
from dataclasses import dataclass

from flame_cache.store.keys import OBJECT_SUFFIX
from flame_cache.store.patterns import Pattern, first_match
from flame_cache.store.pending import is_temp_name, temp_beside


log = logging.getLogger(__name__)

AFTER = ("write", "access")
SIDECAR_SUFFIX = ".ttl"  # '.<id>.ttl' fits a file name: an object id is at most 248 bytes
DEFAULT_SWEEP = 30.0  # seconds between sweeps (cache.expiry_sweep)
MAX_TTL = 100 * 365 * 86400.0  # a century: beyond it, a TTL is a mistake


@dataclass(frozen=True, slots=True)
class ExpiryRule:
    match: Pattern
    ttl: float  # seconds
    after: str = "write"  # or "access"

    def __str__(self) -> str:
        return f"{self.match} ttl {self.ttl:g}s after {self.after}"


class Expiry:
    """Deadlines of the objects that have one; thread-safe."""

    def __init__(self, rules: tuple[ExpiryRule, ...] = ()) -> None:
        self.rules = tuple(rules)
        self._patterns = tuple(rule.match for rule in self.rules)
        self._lock = threading.Lock()
        self._deadlines: dict[str, float] = {}  # per-object TTLs: absolute deadlines
        self._clocks: dict[str, tuple[int, float]] = {}  # keys under a rule: (rule, when its clock started)

    @property
    def active(self) -> bool:
        """False while no object can expire: reads then check nothing."""
        return bool(self._deadlines) or bool(self._clocks)

    def rule_of(self, name: str) -> ExpiryRule | None:
        index = first_match(self._patterns, name)
        return None if index is None else self.rules[index]

    # -- what happened to an object ------------------------------------------

    def wrote(self, name: str, when: float) -> None:
        """The object was written at `when` (or found on disk, last written then)."""
        if self.rules:
            index = first_match(self._patterns, name)
            if index is not None:
                with self._lock:
                    self._clocks[name] = (index, when)

    def accessed(self, name: str, when: float) -> None:
        clock = self._clocks.get(name)
        if clock is not None and self.rules[clock[0]].after == "access":
            with self._lock:
                if name in self._clocks:
                    self._clocks[name] = (clock[0], when)

    def set_deadline(self, name: str, deadline: float | None) -> None:
        with self._lock:
            if deadline is None:
                self._deadlines.pop(name, None)
            else:
                self._deadlines[name] = deadline

    def forget(self, name: str) -> None:
        if name in self._deadlines or name in self._clocks:
            with self._lock:
                self._deadlines.pop(name, None)
                self._clocks.pop(name, None)

    # -- questions ------------------------------------------------------------

    def deadline(self, name: str) -> float | None:
        deadline = self._deadlines.get(name)
        if deadline is not None:
            return deadline
        clock = self._clocks.get(name)
        return None if clock is None else clock[1] + self.rules[clock[0]].ttl

    def expired(self, name: str, now: float) -> bool:
        deadline = self.deadline(name)
        return deadline is not None and deadline <= now

    def due(self, now: float) -> list[str]:
        """The keys whose deadline has passed."""
        with self._lock:
            names = set(self._deadlines) | set(self._clocks)
        return sorted(name for name in names if self.expired(name, now))

    def why(self, name: str) -> str:
        """For the log: what set the object's deadline."""
        if name in self._deadlines:
            return "its ttl"
        rule = self.rule_of(name)
        return f"rule {rule}" if rule else "its ttl"


# -- the sidecar file of a per-object TTL ---------------------------------------


def sidecar_path(base: str) -> str:
    """`.<id>.ttl` beside `<id>.arrow`."""
    folder, _, name = base.rpartition("/")
    return f"{folder}/.{name[: -len(OBJECT_SUFFIX)]}{SIDECAR_SUFFIX}"


def is_sidecar_name(name: str) -> bool:
    return name.startswith(".") and name.endswith(SIDECAR_SUFFIX) and len(name) > 1 + len(SIDECAR_SUFFIX) and not is_temp_name(name)


def sidecar_object_id(name: str) -> str:
    return name[1 : -len(SIDECAR_SUFFIX)]


def write_sidecar(base: str, deadline: float, *, fsync: bool) -> None:
    """Keep the deadline beside the object, replaced atomically (OSError on failure)."""
    path = sidecar_path(base)
    temp = temp_beside(path)
    try:
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o666)
        try:
            os.write(fd, json.dumps({"expires": deadline}).encode() + b"\n")
            if fsync:
                os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(temp, path)
    except BaseException:
        with suppress(FileNotFoundError):
            os.unlink(temp)
        raise
    if fsync:
        _flush_folder(os.path.dirname(path))


def remove_sidecar(base: str, *, fsync: bool = False) -> None:
    path = sidecar_path(base)
    try:
        os.unlink(path)
    except FileNotFoundError:
        return
    if fsync:
        _flush_folder(os.path.dirname(path))


def read_sidecar(path: str) -> float | None:
    """The deadline a sidecar holds; None (and a warning) if it is unreadable."""
    try:
        with open(path, "rb") as file:
            deadline = json.loads(file.read())["expires"]
        if isinstance(deadline, (int, float)) and not isinstance(deadline, bool):
            return float(deadline)
    except (OSError, ValueError, KeyError, TypeError):
        pass
    log.warning("ignoring unreadable expiry file %s (the object keeps no ttl of its own)", path)
    return None


def _flush_folder(folder: str) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
