"""flame-cache: the object cache of Flame, over Arrow Flight and HTTP, on one store."""

__version__ = "0.1.0"
