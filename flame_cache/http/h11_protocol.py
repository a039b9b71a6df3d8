"""The connection rules of protocol.py on uvicorn's h11 protocol.

h11 buffers an incomplete head up to `max_head` bytes and then refuses it;
uvicorn only learns that it did, so the connection remembers why (414 or
431) for the answer.
"""

from __future__ import annotations

from typing import Any

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

from flame_cache.http.protocol import (
    MAX_REQUEST_LINE,
    HeadGuard,
    Refusal,
    head_refusal,
    head_too_large,
    line_too_long,
    malformed,
)


def refusal_of(exc: h11.RemoteProtocolError, buffered: bytes, max_head: int) -> Refusal:
    """What to answer for a head h11 could not parse; `buffered` is its unparsed input."""
    if exc.error_status_hint == 431:  # h11: more than max_head bytes without a complete head
        end_of_line = buffered.find(b"\n")
        if end_of_line == -1 or end_of_line > MAX_REQUEST_LINE:
            return line_too_long()
        return head_too_large(max_head)
    return malformed(exc, exc.error_status_hint if exc.error_status_hint in (400, 501) else 400)


class GuardedConnection(h11.Connection):
    """h11's server side, remembering why it refused a head and refusing
    the heads `head_refusal` names."""

    def __init__(self, max_head: int) -> None:
        super().__init__(h11.SERVER, max_incomplete_event_size=max_head)
        self.max_head = max_head
        self.refusal: Refusal | None = None

    def next_event(self) -> Any:
        """h11's next event; raises h11.RemoteProtocolError with `refusal` set."""
        try:
            event = super().next_event()
        except h11.RemoteProtocolError as exc:
            self.refusal = self.refusal or refusal_of(exc, self.trailing_data[0], self.max_head)
            raise
        if isinstance(event, h11.Request):
            refusal = head_refusal(event.method, event.target, event.headers, self.max_head)
            if refusal is not None:
                self.refusal = refusal
                raise h11.RemoteProtocolError(refusal.message, error_status_hint=refusal.status)
        return event


class GuardedH11Protocol(HeadGuard, H11Protocol):
    """One HTTP connection read by h11, under protocol.py's rules."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.conn = GuardedConnection(self.limits.max_head)

    def _awaiting_head(self) -> bool:
        return self.conn.their_state is h11.IDLE

    def _partial_head(self) -> bool:
        return bool(self.conn.trailing_data[0])

    def _parse(self, data: bytes) -> None:
        H11Protocol.data_received(self, data)

    def send_400_response(self, msg: str) -> None:
        """uvicorn calls this when h11 refuses a head; answer with the reason."""
        self.refuse(self.conn.refusal or malformed(msg))
