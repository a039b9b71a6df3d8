"""Start the servers on one store, and stop them cleanly on SIGTERM or Ctrl-C."""

from __future__ import annotations

import logging
import signal
import threading

from flame_cache.app.config import Config
from flame_cache.app.network import advertised_endpoint
from flame_cache.flight import CacheFlightServer
from flame_cache.store import Store

log = logging.getLogger("flame_cache")


class StartupError(RuntimeError):
    """The server cannot start; the message says why."""


def build_store(config: Config) -> Store:
    return Store(config.storage, limits=config.limits, max_deltas=config.max_deltas, fsync=config.fsync)


def flight_options(config: Config) -> dict:
    """Keyword arguments of FlightServerBase for the TLS settings."""
    if config.tls is None:
        return {}
    options: dict = {"tls_certificates": [(config.tls.cert_file.read_bytes(), config.tls.key_file.read_bytes())]}
    if config.tls.ca_file is not None:
        options.update(verify_client=True, root_certificates=config.tls.ca_file.read_bytes())
    return options


def run(config: Config) -> None:
    """Serve until SIGTERM or SIGINT, then shut down and return."""
    log.info("configuration: %s", config.source)
    if config.storage is None:
        log.warning("storage: none (memory only): objects are lost on restart and on eviction")
    else:
        log.info("storage: %s", config.storage)
    try:
        store = build_store(config)
    except OSError as exc:
        raise StartupError(f"cannot use storage {config.storage}: {exc.strerror or exc}") from None
    advertised = advertised_endpoint(config)
    try:
        server = CacheFlightServer(store, config.endpoint.uri, advertised, **flight_options(config))
    except Exception as exc:  # pyarrow says only "did not start properly"
        raise StartupError(f"cannot listen on {config.endpoint.uri} (is the port in use?): {exc}") from None
    log.info("Arrow Flight listening on %s (port %d), advertising %s", config.endpoint.uri, server.port, advertised)
    log.info("eviction: %s", config.limits)

    # A pyarrow Flight server serves from construction on; its serve() would
    # only block, and install C signal handlers that pre-empt ours.
    stopping = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda signum, frame: stopping.set())
    stopping.wait()
    log.info("stopping: finishing in-flight requests")
    server.shutdown()
    log.info("stopped")
