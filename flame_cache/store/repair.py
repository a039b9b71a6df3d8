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
"""

from __future__ import annotations

import logging
import os
import threading
import time
from typing import TYPE_CHECKING

import pyarrow as pa

from flame_cache.store.fileformat import read_stored
from flame_cache.store.keys import ObjectKey
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
    folder = layout.deltas_dir(key)
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
    base_version = read_stored(layout.base_path(key)).version or 1
    live = [name for name, _ in layout.live_deltas(key, base_version, delta_files)]
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
            problem = layout.find_damage(entry.key) or _tidy(layout, entry)
            if problem is None:
                store.remeasure(entry.key)  # under cache.capacity, what tidying removed no longer counts
                continue
            store.set_aside(entry, problem)
        damaged.append(entry.name)
    return damaged


def _tidy(layout: Layout, entry: Entry) -> str | None:
    """`tidy_deltas`; what is wrong with the files if they cannot be read for
    it (damage the framing does not show)."""
    try:
        tidy_deltas(layout, entry.key)
    except FileNotFoundError:
        return None  # deleted meanwhile
    except OSError as exc:
        if exc.errno is not None:  # the disk, not the file: maybe passing
            log.error("tidying the deltas of %s failed: %s", entry.name, exc)
            return None
        return str(exc)
    except (pa.ArrowException, ValueError, TypeError, LookupError) as exc:
        return str(exc)
    return None


def _check_logged(store: Store) -> None:
    started = time.monotonic()
    try:
        damaged = check(store)
    except Exception:  # a bug here must not go unseen, nor stop serving
        log.exception("the storage check failed")
        return
    shown = f" ({', '.join(damaged[:10])}{', ...' if len(damaged) > 10 else ''})" if damaged else ""
    log.info("storage check: %d damaged object(s) set aside%s in %.2fs", len(damaged), shown, time.monotonic() - started)
