"""flame-cache with its crc32c replaced by a no-op: the baseline of the
checksums' cost, for the benchmark only (never a setting of the server).

    python -m bench.nochecksum --config PATH

Files are framed exactly as with checksums (a fixed-width field that holds
00000000), so the two servers differ only by the summing.
"""

from __future__ import annotations

import sys

from flame_cache.store import checksum


def _no_crc(data: object, value: int = 0) -> int:
    return 0


if __name__ == "__main__":
    checksum._crc32c = _no_crc
    from flame_cache.app.cli import main

    sys.exit(main())
