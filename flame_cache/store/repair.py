"""Damage and what a crash leaves behind, found and mended apart from reads.

The storage check runs in the background after start-up (start-up itself
only lists names, so serving starts at once). For each object not loaded
since, under its key lock:
- damage by framing (a file empty, cut short, not Arrow: `Layout.find_damage`)
  or found while tidying sets the object aside (`Store.set_aside`, the
  quarantine), as a failed load does;
- `tidy_deltas` removes what reads skip: deltas older than the base (a
  replace renames the new base in, then clears the old deltas) and
  unfinished temporary files. They are harmless there, as reads only take
  deltas newer than the base and patches go after the highest delta file,
  but they take disk space; the live deltas are numbered 0, 1, 2 ... again.

Checksums (SPEC 8) are checked when an object is loaded (`Layout.read`) and,
here, by the scrub (`cache.scrub`: a background pass over every stored
object at a bounded rate, then again each `interval`) and on demand
(`verify`, for DoAction VERIFY and POST /v1/verify). Both take a key's lock
only briefly: to open the object's files, then, only if their data does not
match, to check them again (they may have been replaced meanwhile) and set
the object aside. The data itself is read without the lock.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pyarrow as pa

from flame_cache.store.blobs import Blob, Pace
from flame_cache.store.checksum import ChecksumMismatch
from flame_cache.store.errors import ObjectNotFound
from flame_cache.store.fileformat import read_stored, verify_blob
from flame_cache.store.keys import ObjectKey, Selector
from flame_cache.store.layout import SUFFIX, Layout, remove_any
from flame_cache.store.pending import is_temp_name

if TYPE_CHECKING:
    from flame_cache.store.index import Entry
    from flame_cache.store.store import Store

log = logging.getLogger(__name__)


def tidy_deltas(layout: Layout, key: ObjectKey) -> int:
    """Remove the stale deltas and temporary files of `key` and renumber the
    live deltas from 0; how many files were removed or renamed. The caller
    holds the key's lock, and the object is not loaded (a loaded snapshot
    knows where its next delta goes). Damaged files are left to the caller's
    damage check."""
    folder = Path(layout.deltas_dir(key))
    try:
        names = os.listdir(folder)
    except (FileNotFoundError, NotADirectoryError):
        return 0
    changed = 0
    for name in names:
        if is_temp_name(name):
            log.warning("removing unfinished temporary file %s", folder / name)
            remove_any(folder / name)
            changed += 1
    delta_files = layout.delta_names(key)
    if not delta_files:
        return changed
    base_version = read_stored(layout.base_path(key), verify=False).version or 1
    live = [name for name, _ in layout.live_deltas(key, base_version, delta_files, verify=False)]
    for name in delta_files:
        if name not in live:
            log.info("removing stale delta %s (older than its base, version %d)", folder / name, base_version)
            (folder / name).unlink(missing_ok=True)
            changed += 1
    for number, name in enumerate(live):
        if name != f"{number}{SUFFIX}":
            os.replace(folder / name, folder / f"{number}{SUFFIX}")
            changed += 1
    return changed



def start_check(store: Store) -> threading.Thread | None:
    """Run `check` in the background; None with storage `none`."""
    if store.layout is None:
        return None
    thread = threading.Thread(target=_check_logged, args=(store,), name="storage-check", daemon=True)
    thread.start()
    return thread


def check(store: Store) -> list[str]:
    """Set aside every object whose files are damaged, tidy every deltas
    folder; the keys set aside. Safe beside requests: a suspect object is
    checked again under its key lock, and objects loaded since are fine."""
    layout = store.layout
    if layout is None:
        return []
    damaged: list[str] = []
    for entry in store.index.all():
        if entry.snapshot is not None:
            continue
        with store.index.key_lock(entry.name):
            if entry.snapshot is not None or store.index.get(entry.name) is not entry:
                continue
            framing = layout.find_damage(entry.key)
            problem = (framing, None) if framing is not None else _tidy(layout, entry)
            if problem is None:
                store.lifecycle.remeasure(entry.key)  # under cache.capacity, what tidying removed no longer counts
                continue
            store.set_aside(entry, *problem)
        damaged.append(entry.name)
    return damaged


Problem = tuple[str, str | None]  # what is wrong (logged), and the reason clients are told


def _tidy(layout: Layout, entry: Entry) -> Problem | None:
    """`tidy_deltas`; what is wrong with the files if they cannot be read for
    it (damage the framing does not show, a delta's checksum)."""
    try:
        tidy_deltas(layout, entry.key)
    except FileNotFoundError:
        return None  # deleted meanwhile
    except OSError as exc:
        return _damage(exc, f"tidying the deltas of {entry.name}")
    except DAMAGE as exc:
        return _damage(exc, entry.name)
    return None


# What reading a damaged file raises (an OSError with an errno is the disk, not the file).
DAMAGE = (ChecksumMismatch, pa.ArrowException, ValueError, TypeError, LookupError)


def _damage(exc: BaseException, doing: str) -> Problem | None:
    """What a failed read says about the files; None if it was the disk (an
    errno: maybe passing, so nothing is moved), which is logged."""
    if isinstance(exc, ChecksumMismatch):
        return str(exc), exc.reason
    if isinstance(exc, OSError) and exc.errno is not None:
        log.error("%s failed: %s", doing, exc)
        return None
    return str(exc), None


def _check_logged(store: Store) -> None:
    started = time.monotonic()
    try:
        damaged = check(store)
    except Exception:  # a bug here must not go unseen, nor stop serving
        log.exception("the storage check failed")
        return
    shown = f" ({', '.join(damaged[:10])}{', ...' if len(damaged) > 10 else ''})" if damaged else ""
    log.info("storage check: %d damaged object(s) set aside%s in %.2fs", len(damaged), shown, time.monotonic() - started)


# -- checksums: the scrub and on-demand verification -------------------------


@dataclass(frozen=True, slots=True)
class Scrub:
    """`cache.scrub`: a pass over every stored object each `interval`
    seconds (start to start; the first begins `FIRST_DELAY` after start-up,
    or `interval` if shorter), reading at most `rate` bytes a second. A rate
    of 0 turns it off."""

    interval: float = 24 * 3600.0
    rate: int = 16 * 2**20

    FIRST_DELAY = 60.0

    @property
    def enabled(self) -> bool:
        return self.rate > 0

    def __str__(self) -> str:
        if not self.enabled:
            return "off"
        return f"every {self.interval:g}s at {self.rate / 2**20:g} MiB/s"


class Throttle:
    """A `Pace` of `rate` bytes a second: sleeps when the reads run ahead of
    it. Time spent waiting elsewhere (for a lock) gives at most one second of
    credit, so the rate holds over any second, not just on average."""

    def __init__(self, rate: int) -> None:
        self.rate = rate
        self._start = time.monotonic()
        self._done = 0

    def __call__(self, size: int) -> None:
        self._done += size
        now = time.monotonic()
        ahead = self._done / self.rate - (now - self._start)
        if ahead > 0:
            time.sleep(ahead)
        elif ahead < -1.0:
            self._start = now - self._done / self.rate - 1.0


@dataclass(slots=True)
class Verified:
    """What checking one object found."""

    bytes: int = 0  # data bytes compared with a checksum
    files: int = 0  # files that carry a checksum
    problem: Problem | None = None  # set: the object was set aside


def verify_object(store: Store, entry: Entry, pace: Pace | None = None) -> Verified:
    """Compare every file of the object with the checksum it carries: its
    files are opened under the key's lock, read without it; a mismatch is
    checked again under the lock (the files may have been replaced since),
    then the object is set aside."""
    layout = store.layout
    assert layout is not None
    lock = store.index.key_lock(entry.name)
    result = Verified()
    with lock:
        if store.index.get(entry.name) is not entry:
            return result
        try:
            files = _stored_files(layout, entry.key)
        except FileNotFoundError:
            return result  # deleted meanwhile
        except (OSError, *DAMAGE) as exc:
            result.problem = _damage(exc, f"checking {entry.name}")
            if result.problem is not None:
                store.set_aside(entry, *result.problem)
            return result
    suspect = False
    for name, blob in files:
        try:
            checked = verify_blob(blob, name, pace)
        except (ChecksumMismatch, OSError):  # OSError: cut short meanwhile, or the disk; the check below tells
            suspect = True
            break
        result.bytes += checked
        result.files += isinstance(blob, Blob) and blob.crc32c is not None
    files = blob = None  # close what was opened
    if not suspect:
        return result
    with lock:
        if store.index.get(entry.name) is not entry:
            return result
        try:
            layout.read(entry.key)  # every file checked again, now under the lock
        except FileNotFoundError:
            return result
        except (OSError, *DAMAGE) as exc:
            result.problem = _damage(exc, f"checking {entry.name}")
            if result.problem is not None:
                store.set_aside(entry, *result.problem)
    return result


def _stored_files(layout: Layout, key: ObjectKey) -> list[tuple[str, Blob | pa.Table]]:
    """(path, data) of the object's base and live deltas, opened and parsed,
    not yet compared with their checksums."""
    path = layout.base_path(key)
    base = read_stored(path, verify=False)
    files: list[tuple[str, Blob | pa.Table]] = [(path, base.data)]
    if isinstance(base.data, Blob):
        names = layout.delta_names(key)
        for name, blob in layout.live_deltas(key, base.version or 1, names, verify=False):
            files.append((f"{layout.deltas_dir(key)}/{name}", blob))
    return files


def verify(store: Store, selector: Selector) -> dict[str, object]:
    """Check every object `selector` covers, now, at full speed: what was
    checked and what was set aside (DoAction VERIFY, POST /v1/verify)."""
    result: dict[str, object] = {"target": str(selector), "checked": 0, "checked_bytes": 0, "without_checksum": 0}
    set_aside: list[dict[str, str]] = []
    if store.layout is not None:
        for key in store.layout.scan(selector.segments):
            store.exists(key)  # files dropped in by another process are checked too
    entries = sorted((e for e in store.index.all() if selector.covers(e.segments)), key=lambda e: e.segments)
    if not entries and not selector.names_folder:
        raise ObjectNotFound(f"object {str(selector)!r} not found")
    if store.layout is None:  # memory only: nothing on disk to damage
        result["without_checksum"] = len(entries)
        result["set_aside"] = set_aside
        return result
    for entry in entries:
        found = verify_object(store, entry)
        if found.problem is not None:
            set_aside.append({"key": entry.name, "reason": found.problem[1] or "its files are damaged"})
            continue
        result["checked"] += 1  # type: ignore[operator]
        result["checked_bytes"] += found.bytes  # type: ignore[operator]
        result["without_checksum"] += found.files == 0  # type: ignore[operator]
    result["set_aside"] = set_aside
    log.info(
        "verify %s: %d object(s) checked (%d bytes), %d set aside",
        selector,
        result["checked"],
        result["checked_bytes"],
        len(set_aside),
    )
    return result


def start_scrub(store: Store, scrub: Scrub) -> threading.Thread | None:
    """The scrub in the background; None when off or with storage `none`."""
    if store.layout is None or not scrub.enabled:
        return None
    thread = threading.Thread(target=_scrub_forever, args=(store, scrub), name="scrub", daemon=True)
    thread.start()
    return thread


def scrub_pass(store: Store, pace: Pace | None = None) -> tuple[int, int, list[str]]:
    """One pass over every stored object: (objects checked, bytes read, keys set aside)."""
    checked, read, damaged = 0, 0, []
    for entry in store.index.all():
        found = verify_object(store, entry, pace)
        checked += 1
        read += found.bytes
        if found.problem is not None:
            damaged.append(entry.name)
    return checked, read, damaged


def _scrub_forever(store: Store, scrub: Scrub) -> None:
    log.info("scrub: %s", scrub)
    time.sleep(min(scrub.interval, Scrub.FIRST_DELAY))
    while True:
        started = time.monotonic()
        try:
            checked, read, damaged = scrub_pass(store, Throttle(scrub.rate))
        except Exception:  # a bug here must not go unseen, nor stop the next pass
            log.exception("the scrub failed")
        else:
            shown = f" ({', '.join(damaged[:10])}{', ...' if len(damaged) > 10 else ''})" if damaged else ""
            log.info(
                "scrub: %d object(s) checked (%d bytes), %d set aside%s in %.2fs",
                checked,
                read,
                len(damaged),
                shown,
                time.monotonic() - started,
            )
        time.sleep(max(0.0, scrub.interval - (time.monotonic() - started)))


# -- the expiry sweep -----------------------------------------------------


def sweep(store: Store, now: float | None = None) -> list[str]:
    """Delete every object whose deadline has passed; the keys deleted."""
    now = time.time() if now is None else now
    return [name for name in store.lifecycle.expiry.due(now) if store.expire_now(name)]


def start_sweep(store: Store, interval: float) -> threading.Thread:
    """`sweep` every `interval` seconds, in the background."""
    thread = threading.Thread(target=_sweep_forever, args=(store, interval), name="expiry-sweep", daemon=True)
    thread.start()
    return thread


def _sweep_forever(store: Store, interval: float) -> None:
    while True:
        time.sleep(interval)
        try:
            swept = sweep(store)
        except Exception:  # a bug here must not go unseen, nor stop the next sweep
            log.exception("the expiry sweep failed")
            continue
        if swept:
            log.info("expiry sweep: %d object(s) expired and deleted", len(swept))
