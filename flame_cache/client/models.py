"""What calls answer: an ObjectRef for a write, an ObjectStat for a look."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from typing import Any

import bson
import pyarrow.flight as flight


@dataclass(frozen=True, slots=True)
class ObjectRef:
    """flamepy's ObjectRef: where a write went and the version it made."""

    endpoint: str
    key: str
    version: int

    @classmethod
    def from_put_result(cls, metadata: bytes) -> ObjectRef:
        """From DoPut's PutResult: BSON `{endpoint, key, version}` (SPEC 4.1)."""
        document = bson.decode(metadata)
        return cls(str(document["endpoint"]), str(document["key"]), int(document["version"]))

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class ObjectStat:
    """One object as GetFlightInfo and ListFlights describe it: `size` is
    the bytes of its base and deltas; `updated` and `expires` are seconds
    since the epoch (`expires` None: it does not expire)."""

    key: str
    version: int
    size: int
    deltas: int
    kind: str  # "opaque" or "table"
    updated: float
    expires: float | None = None

    @classmethod
    def from_flight_info(cls, info: flight.FlightInfo) -> ObjectStat:
        meta = json.loads(info.app_metadata or b"{}")
        key = "/".join(p.decode() if isinstance(p, bytes) else p for p in info.descriptor.path)
        return cls(
            key=key,
            version=int(meta.get("version", 0)),
            size=info.total_bytes,
            deltas=int(meta.get("deltas", 0)),
            kind=str(meta.get("kind", "opaque")),
            updated=float(meta.get("updated", 0.0)),
            expires=meta.get("expires"),
        )

    def as_dict(self) -> dict[str, Any]:
        """For JSON, as the HTTP mirror lists objects: times in ISO 8601, UTC."""
        document = asdict(self)
        document["updated"] = iso_time(self.updated)
        document["expires"] = iso_time(self.expires) if self.expires is not None else None
        return document


def iso_time(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, timezone.utc).isoformat(timespec="seconds")
