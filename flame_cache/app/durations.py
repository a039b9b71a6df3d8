"""Durations as operators write them: `30s`, `10m`, `1h`, `2d` (or plain seconds)."""

from __future__ import annotations

import math
import re

_UNITS = {"": 1.0, "ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?", re.IGNORECASE)


def parse_duration(value: object) -> float:
    """Seconds in `value`: a number (seconds) or text like `30`, `2.5s`,
    `10m`, `1h`, `2d`. Raises ValueError naming the value otherwise."""
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a duration")
    if isinstance(value, (int, float)):
        seconds = float(value)
    else:
        match = _DURATION.fullmatch(str(value).strip())
        if match is None:
            raise ValueError(f"{value!r} is not a duration like 30s, 10m, 1h or 2d")
        number, unit = match.groups()
        seconds = float(number) * _UNITS[(unit or "").lower()]
    if not math.isfinite(seconds) or seconds < 0:
        raise ValueError(f"{value!r} is not a finite, non-negative duration")
    return seconds
