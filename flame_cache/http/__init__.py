"""The HTTP mirror (SPEC 5): FastAPI routes over the same store as Flight."""

from flame_cache.http.app import create_app
from flame_cache.http.server import HttpServer

__all__ = ["HttpServer", "create_app"]
