"""Who is calling: credentials from an `authorization` header, matched
against `cache.auth` (SPEC 9), give a `Principal` (store/guard.py then
checks each request against its scopes).

Both protocols send the same header: `Bearer <token>` on each call, or
`Basic base64(name:token)` (Flight's handshake, `authenticate_basic_token`).
With no `cache.auth`, the `Policy` is open: every caller is anonymous and may
do everything, whatever it sends, so flamepy (which sends nothing) works.
Once `cache.auth` is set, a caller without a token has the `anonymous`
scopes (none unless given), and one with a token nobody issued has none.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import Enum

from flame_cache.store.patterns import Pattern
from flame_cache.store.scopes import EVERY_KEY, Operation, Scope
from flame_cache.store.tokens import Token, digest

ANONYMOUS = "anonymous"
EVERYTHING = (Scope(Operation.ADMIN, Pattern(("*",))),)


@dataclass(frozen=True, slots=True)
class Credentials:
    """What a caller presented: a token, and the name it gave (Basic only).
    `token` None: the header was there but not a form we read."""

    token: str | None
    name: str | None = None


def parse_authorization(value: str | bytes | None) -> Credentials | None:
    """The credentials of an `authorization` header value (None: no header)."""
    if value is None:
        return None
    text = value.decode("latin-1") if isinstance(value, bytes) else value
    scheme, _, rest = text.strip().partition(" ")
    rest = rest.strip()
    if scheme.lower() == "bearer" and rest:
        return Credentials(rest)
    if scheme.lower() == "basic" and rest:
        try:
            name, colon, token = base64.b64decode(rest, validate=True).decode("utf-8").partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return Credentials(None)
        return Credentials(token, name) if colon and token else Credentials(None)
    return Credentials(None)


class Standing(Enum):
    ANONYMOUS = "anonymous"  # no token
    TOKEN = "token"  # a token this server issued
    UNKNOWN = "unknown"  # a token nobody issued, or a header we cannot read


@dataclass(frozen=True, slots=True)
class Principal:
    """A caller: its token's name (or anonymous), standing and scopes."""

    name: str
    standing: Standing
    scopes: tuple[Scope, ...]
    unrestricted: bool = field(init=False, compare=False)  # may do everything everywhere: nothing to check

    def __post_init__(self) -> None:
        everything = any(scope.covers(Operation.ADMIN, EVERY_KEY, below=True) for scope in self.scopes)
        object.__setattr__(self, "unrestricted", everything)

    def may(self, operation: Operation, segments: tuple[str | None, ...], *, below: bool = False) -> bool:
        return self.unrestricted or any(scope.covers(operation, segments, below=below) for scope in self.scopes)

    def may_some(self, operation: Operation) -> bool:
        """True if some scope grants `operation` somewhere (a listing may show something)."""
        return any(scope.grants(operation) for scope in self.scopes)

    def __str__(self) -> str:
        if self.standing is Standing.TOKEN:
            return f"token {self.name!r}"
        return ANONYMOUS if self.standing is Standing.ANONYMOUS else "an unknown token"


OPEN = Principal(ANONYMOUS, Standing.ANONYMOUS, EVERYTHING)
UNKNOWN = Principal("unknown", Standing.UNKNOWN, ())


class Policy:
    """The tokens and anonymous scopes of `cache.auth`; `enabled` False:
    there is none, and every caller is OPEN."""

    def __init__(self, tokens: Sequence[Token] = (), anonymous: Sequence[Scope] = (), *, enabled: bool = True) -> None:
        self.tokens = tuple(tokens)
        self.enabled = enabled
        self.anonymous = Principal(ANONYMOUS, Standing.ANONYMOUS, tuple(anonymous)) if enabled else OPEN

    @classmethod
    def open(cls) -> Policy:
        return cls(enabled=False)

    def identify(self, credentials: Credentials | None) -> Principal:
        """The caller who presented `credentials` (None: nothing presented)."""
        if not self.enabled or credentials is None:
            return self.anonymous
        if credentials.token is None:
            return UNKNOWN
        presented = digest(credentials.token)
        found = None
        for token in self.tokens:  # all of them, whichever matches
            if token.matches(presented) and found is None:
                found = token
        if found is None or (credentials.name is not None and credentials.name != found.name):
            return UNKNOWN
        return Principal(found.name, Standing.TOKEN, found.scopes)

    def anonymous_may_write(self) -> bool:
        """True if a caller without a token may change something (the
        start-up warning about listeners beyond loopback)."""
        return any(self.anonymous.may_some(op) for op in (Operation.WRITE, Operation.DELETE))
