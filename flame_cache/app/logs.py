"""The process's log lines, with control characters escaped.

Request paths, headers, tickets, schemas and error messages reach log lines;
a raw ESC (`%1B[2J` in a path) would clear the terminal of whoever reads the
log, and a raw CR or LF would forge a line. So every formatted line has its
C0 controls, DEL and C1 controls written as `\\xNN`, in one place: the
formatter of the one handler (loggers of pyarrow, uvicorn and ours all reach
it). Traceback lines keep their line feeds, and only those.

`cache.log.format: json` writes one JSON object a line instead: `time`
(ISO 8601, UTC), `level`, `logger`, `message`, then the record's own fields
(a failed request's `protocol`, `operation`, `key`, `peer`, `outcome`) and
`exception` with its traceback. JSON escapes line feeds itself; controls
are escaped as in text first, so both formats show `\\x1b` alike.
"""

from __future__ import annotations

import json
import logging
import sys
from dataclasses import dataclass
from datetime import datetime, timezone

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
LEVELS = ("debug", "info", "warning", "error")
FORMATS = ("text", "json")


@dataclass(frozen=True, slots=True)
class LogSettings:
    """`cache.log`: the level (one of LEVELS) and the format (text or json)."""

    level: str = "info"
    format: str = "text"

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


# What every LogRecord has; anything else was passed as `extra` and is a field.
_RECORD_ATTRIBUTES = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    """One JSON object a line: time, level, logger, message, then fields."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, timezone.utc).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": escape_controls(record.getMessage()),
        }
        for name, value in vars(record).items():
            if name not in _RECORD_ATTRIBUTES and not name.startswith("_"):
                entry[name] = escape_controls(value) if isinstance(value, str) else value
        if record.exc_info:
            entry["exception"] = escape_controls(self.formatException(record.exc_info), keep_line_feeds=True)
        if record.stack_info:
            entry["stack"] = escape_controls(self.formatStack(record.stack_info), keep_line_feeds=True)
        return json.dumps(entry, ensure_ascii=False, default=str)


def configure_logging(level: str, log_format: str = "text") -> None:
    """One stderr handler on the root logger, escaping controls; called
    again once the configuration is read, it replaces the first."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if log_format == "json" else EscapingFormatter(FORMAT))
    logging.basicConfig(level=level.upper(), handlers=[handler], force=True)
