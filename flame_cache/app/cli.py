"""`flame-cache [--config PATH]`: the command line."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from flame_cache import __version__
from flame_cache.app.config import ConfigError, load_config
from flame_cache.app.lifecycle import StartupError, run
from flame_cache.app.logs import LEVELS, configure_logging


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="flame-cache",
        description="Flame's object cache: Arrow Flight and HTTP over one store of Arrow IPC files.",
    )
    parser.add_argument(
        "--config", type=Path, help="flame-cluster.yaml to read (default: ~/.flame/flame-cluster.yaml if it exists)"
    )
    parser.add_argument(
        "--log-level",
        type=str.lower,
        choices=LEVELS,
        help="beats cache.log.level (default: info); the format is cache.log.format's",
    )
    parser.add_argument("--version", action="version", version=f"flame-cache {__version__}")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    configure_logging(args.log_level or "info")
    try:
        config = load_config(args.config)
    except ConfigError as exc:
        print(f"flame-cache: {exc}", file=sys.stderr)
        return 2
    configure_logging(args.log_level or config.log.level, config.log.format)
    try:
        run(config)
    except StartupError as exc:
        logging.getLogger("flame_cache").error("%s", exc)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
