"""Self-checking payloads and a ledger of acknowledged writes, for the crash and
concurrency tests.

A payload says who wrote it and carries bytes derived from that header, so any read of
it can be checked on its own: a torn or mixed-up object shows as a payload whose bytes
do not match its header, or as a row whose kind is not the header's. The ledger records
each acknowledged (key, version) and its payload; two acknowledgements of one version
of a key mean one of those writes was lost.
"""

from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass, field

SEPARATOR = b"|"


def make_payload(target: str, writer: str, seq: int, kind: str, size: int) -> bytes:
    """`<target>|<writer>|<seq>|<kind>|<size>|` then `size` bytes derived from that header."""
    header = SEPARATOR.join([target.encode(), writer.encode(), str(seq).encode(), kind.encode(), str(size).encode()])
    header += SEPARATOR
    return header + hashlib.shake_256(header).digest(size)


def payload_problem(data: bytes, kind: str) -> str | None:
    """None if `data` is a whole payload written as a `kind` (base or patch); else what is wrong."""
    parts = data.split(SEPARATOR, 5)
    if len(parts) != 6:
        return f"not a payload: {data[:80]!r}"
    target, writer, seq, written_kind, size, body = parts
    if written_kind.decode(errors="replace") != kind:
        return f"a {written_kind!r} payload served as a {kind!r} row: {data[:80]!r}"
    header = data[: len(data) - len(body)]
    if not size.isdigit() or len(body) != int(size) or body != hashlib.shake_256(header).digest(int(size)):
        return f"torn payload ({len(body)} of {size!r} bytes, or wrong bytes): {header[:80]!r}"
    return None


def rows_problem(key: str, rows: list[tuple[int, str, bytes]]) -> str | None:
    """None if `rows` (a full read) are one whole version: a base, then patches with
    consecutive versions, each a whole payload of its kind."""
    if not rows or rows[0][1] != "base":
        return f"{key}: a full read must start with one base row, got {[r[:2] for r in rows]}"
    base_version = rows[0][0]
    for i, (version, kind, data) in enumerate(rows):
        if version != base_version + i or kind != ("base" if i == 0 else "patch"):
            return f"{key}: rows out of order: {[r[:2] for r in rows]}"
        problem = payload_problem(data, kind)
        if problem:
            return f"{key} version {version}: {problem}"
    return None


def digest(payload: bytes) -> bytes:
    return hashlib.blake2b(payload, digest_size=16).digest()


@dataclass
class Ledger:
    """Every write a client saw acknowledged, and every problem a thread saw."""

    acked: dict[str, dict[int, bytes]] = field(default_factory=dict)  # key -> version -> payload digest
    problems: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, key: str, version: int, payload: bytes) -> None:
        with self.lock:
            versions = self.acked.setdefault(key, {})
            if version in versions:
                self.problems.append(f"{key}: version {version} acknowledged twice (one write was lost)")
            versions[version] = digest(payload)

    def problem(self, text: str) -> None:
        with self.lock:
            self.problems.append(text)

    def keys(self) -> list[str]:
        with self.lock:
            return list(self.acked)

    def latest(self, key: str) -> int:
        """The last version of `key` a client saw acknowledged."""
        with self.lock:
            return max(self.acked[key])

    def check_read(self, key: str, rows: list[tuple[int, str, bytes]]) -> str | None:
        """A full read is whole, and every version in it that a client saw acknowledged
        holds exactly the acknowledged bytes."""
        problem = rows_problem(key, rows)
        if problem:
            return problem
        with self.lock:
            acked = dict(self.acked.get(key, {}))
        for version, _, data in rows:
            if version in acked and acked[version] != digest(data):
                return f"{key} version {version}: holds other bytes than the write acknowledged as it"
        return None

    def count(self) -> int:
        with self.lock:
            return sum(len(v) for v in self.acked.values())
