"""flame-cache with its HTTP parser and event loop named on the command
line, for the benchmark only (bench/http_variants.py compares them):

    python -m bench.httpvariant --http h11|httptools --loop asyncio|uvloop --config PATH
"""

from __future__ import annotations

import argparse
import sys

from flame_cache.http import server

if __name__ == "__main__":
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--http", required=True)
    parser.add_argument("--loop", required=True)
    args, rest = parser.parse_known_args()
    server.PARSER, server.LOOP = args.http, args.loop
    from flame_cache.app.cli import main

    sys.exit(main(rest))
