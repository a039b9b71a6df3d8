"""Byte sizes as operators write them: `512M`, `8G`, `1.5G` (binary units)."""

from __future__ import annotations

import re
from fractions import Fraction

_UNITS = {"": 1, "K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40, "P": 2**50}
_SIZE = re.compile(r"(\d+(?:\.\d+)?)\s*(?:([KMGTP])(?:iB|i|B)?|B)?", re.IGNORECASE)


def parse_size(value: object) -> int:
    """Bytes in `value`; K, M, G, T, P are powers of 1024 (8G = 8 * 2**30).

    Accepts an int, or text like `1024`, `512M`, `512Mi`, `1.5GB`. Raises
    ValueError naming the value otherwise.
    """
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a size")
    if isinstance(value, int):
        if value < 0:
            raise ValueError(f"{value!r} is negative")
        return value
    match = _SIZE.fullmatch(str(value).strip())
    if match is None:
        raise ValueError(f"{value!r} is not a size like 1024, 512M, 8G or 1.5G")
    number, unit = match.groups()
    return int(Fraction(number) * _UNITS[(unit or "").upper()])  # exact: no float rounding or overflow
