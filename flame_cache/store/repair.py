"""Mending what a crash leaves in an object's deltas folder, apart from reads.

Reads skip what a crash may leave beside an object: deltas older than its
base (a replace renames the new base in, then clears the old deltas) and
unfinished temporary files. They are harmless there, as reads only take
deltas newer than the base and patches go after the highest delta file, but
they take disk space, so the storage check that follows start-up (and
anything else that holds the key's lock) removes them here and numbers the
live deltas 0, 1, 2 ... again.
"""

from __future__ import annotations

import logging
import os

from flame_cache.store.fileformat import read_stored
from flame_cache.store.keys import ObjectKey
from flame_cache.store.layout import SUFFIX, Layout, remove_any
from flame_cache.store.pending import is_temp_name

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

