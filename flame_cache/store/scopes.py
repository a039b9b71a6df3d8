"""Scopes of `cache.auth` (SPEC 9): what a token, or an anonymous caller, may do.

A scope is an operation, `:` and a key pattern (store/patterns.py) used as a
prefix: `read:ci-app/*` covers every key whose first segments match
`ci-app/*`, `read:*` every key, `write:*/pkg/*` Flame's packages.
- `read`: get, HEAD, info, schema, and seeing a key in listings;
- `write`: put, replace, patch, create in a namespace, a TTL (EXPIRE, `?ttl=`);
- `delete`: delete a key, a namespace or `app/*` (the scope must cover all
  below it: `delete:app/*` covers `app/s1` and `app/*`);
- `admin`: all three, plus VERIFY; over every key (`admin:*`), also STATS
  and `/metrics`, which count every application's objects.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from flame_cache.store.errors import InvalidArgument
from flame_cache.store.patterns import Pattern


class Operation(Enum):
    READ = "read"
    WRITE = "write"
    DELETE = "delete"
    ADMIN = "admin"


EVERY_KEY: tuple[str, ...] = ()  # the selector of every key: STATS, /metrics


@dataclass(frozen=True, slots=True)
class Scope:
    operation: Operation
    pattern: Pattern

    @classmethod
    def parse(cls, text: object) -> Scope:
        """`read:app/*`; InvalidArgument naming the scope and what is wrong."""
        if not isinstance(text, str):
            raise InvalidArgument(f"scope {text!r} must be text like 'read:app/*'")
        name, colon, pattern = text.strip().partition(":")
        operation = next((op for op in Operation if op.value == name.strip().lower()), None)
        if operation is None or not colon:
            names = ", ".join(op.value for op in Operation)
            raise InvalidArgument(f"scope {text!r} must be an operation ({names}), ':' and a key pattern, like 'read:app/*'")
        try:
            return cls(operation, Pattern.parse(pattern.strip(), prefix=True))
        except InvalidArgument as exc:
            raise InvalidArgument(f"scope {text!r}: {exc}") from None

    def grants(self, operation: Operation) -> bool:
        return self.operation is Operation.ADMIN or self.operation is operation

    def covers(self, operation: Operation, segments: tuple[str | None, ...], *, below: bool = False) -> bool:
        """True if the scope allows `operation` on the key `segments` or,
        with `below`, on every key at or below that selector."""
        if not self.grants(operation):
            return False
        return self.pattern.leads_all_below(segments) if below else self.pattern.leads(segments)  # type: ignore[arg-type]

    def __str__(self) -> str:
        return f"{self.operation.value}:{self.pattern}"


def parse_scopes(value: object, where: str) -> tuple[Scope, ...]:
    """A list of scopes (`where` names the setting in messages)."""
    if value is None:
        return ()
    if not isinstance(value, (list, tuple)):
        raise InvalidArgument(f"{where} must be a list of scopes like ['read:*', 'write:app/*'], got {value!r}")
    scopes = []
    for item in value:
        try:
            scopes.append(Scope.parse(item))
        except InvalidArgument as exc:
            raise InvalidArgument(f"{where}: {exc}") from None
    return tuple(scopes)
