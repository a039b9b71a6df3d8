"""The process's open-file limit: every socket and every object file is one descriptor."""

from __future__ import annotations

import logging

try:
    import resource
except ImportError:  # not on Windows
    resource = None  # type: ignore[assignment]

log = logging.getLogger("flame_cache")

# With an unlimited hard limit, the soft limit is raised to this (Linux's default fs.nr_open).
UNLIMITED_TARGET = 1 << 20


def raise_open_file_limit() -> int | None:
    """Raise the soft RLIMIT_NOFILE to the hard limit and log it; return the
    soft limit now in force (None where the platform has none). Never raises:
    a limit that cannot be raised is logged and kept."""
    if resource is None:
        return None
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = UNLIMITED_TARGET if hard == resource.RLIM_INFINITY else hard
    if soft != resource.RLIM_INFINITY and soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (ValueError, OSError) as exc:
            log.warning("open-file limit: %d; could not raise it to %d: %s", soft, target, exc)
            return soft
        log.info("open-file limit: raised from %d to %d (hard limit %s)", soft, target, _text(hard))
        return target
    log.info("open-file limit: %s (hard limit %s)", _text(soft), _text(hard))
    return None if soft == resource.RLIM_INFINITY else soft


def _text(limit: int) -> str:
    return "unlimited" if limit == resource.RLIM_INFINITY else str(limit)
