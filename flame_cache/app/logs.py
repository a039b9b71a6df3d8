"""The process's log lines, with control characters escaped.

Request paths, headers, tickets, schemas and error messages reach log lines;
a raw ESC (`%1B[2J` in a path) would clear the terminal of whoever reads the
log, and a raw CR or LF would forge a line. So every formatted line has its
C0 controls, DEL and C1 controls written as `\\xNN`, in one place: the
formatter of the one handler (loggers of pyarrow, uvicorn and ours all reach
it). Traceback lines keep their line feeds, and only those.
"""

from __future__ import annotations

import logging
import sys

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

_ESCAPES = {code: f"\\x{code:02x}" for code in (*range(0x20), 0x7F, *range(0x80, 0xA0))}
_ESCAPES_KEEPING_LINES = {code: text for code, text in _ESCAPES.items() if code != 0x0A}


def escape_controls(text: str, *, keep_line_feeds: bool = False) -> str:
    """`text` with C0, DEL and C1 controls as `\\xNN` (line feeds kept if asked)."""
    return text.translate(_ESCAPES_KEEPING_LINES if keep_line_feeds else _ESCAPES)


class EscapingFormatter(logging.Formatter):
    """A Formatter whose output holds no raw control character but the line
    feeds between the lines of a traceback or stack."""

    def formatMessage(self, record: logging.LogRecord) -> str:
        return escape_controls(super().formatMessage(record))

    def formatException(self, ei) -> str:  # noqa: ANN001 (logging's exc_info tuple)
        return escape_controls(super().formatException(ei), keep_line_feeds=True)

    def formatStack(self, stack_info: str) -> str:
        return escape_controls(super().formatStack(stack_info), keep_line_feeds=True)


def configure_logging(level: str) -> None:
    """One stderr handler on the root logger, escaping controls."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(EscapingFormatter(FORMAT))
    logging.basicConfig(level=level, handlers=[handler])
