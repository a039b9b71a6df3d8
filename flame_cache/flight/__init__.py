"""The Arrow Flight server: RPCs in, store calls out."""

from flame_cache.flight.server import CacheFlightServer

__all__ = ["CacheFlightServer"]
