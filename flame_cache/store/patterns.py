"""Key patterns (SPEC 8): a key with `*` standing for one whole segment.

`*/pkg/*` matches `app/pkg/obj` (three segments, the second `pkg`), never
`s/pkg` or `a/b/pkg/c`: a pattern matches keys of exactly its segment count.
Used by `cache.eviction.pin` and the `match` of `cache.expiry` rules.

A scope of `cache.auth` (store/scopes.py) uses a pattern as a prefix too: it
may have 1 segment, and it `leads` every key whose first segments it matches,
so `ci-app/*` leads `ci-app/s1/o1` and `*` leads every key.
"""

from __future__ import annotations

from dataclasses import dataclass

from flame_cache.store.errors import InvalidArgument
from flame_cache.store.keys import WILDCARD, check_segment

ANY_SEGMENT = WILDCARD
_KEY_SHAPE = "keys ('session/object' or 'app/session/object')"
_PREFIX_SHAPE = "1 to 3 segments ('*', 'app', 'app/*', 'app/session/*')"
NEW_ID = None  # in the segments given to `leads`: an object id nobody has chosen yet (a create)


@dataclass(frozen=True, slots=True)
class Pattern:
    segments: tuple[str, ...]

    @classmethod
    def parse(cls, text: object, *, prefix: bool = False) -> Pattern:
        """InvalidArgument naming the pattern and what is wrong with it;
        `prefix` also allows one segment (a scope's `*` or `app`)."""
        if not isinstance(text, str):
            raise InvalidArgument(f"pattern {text!r} must be text like '*/pkg/*'")
        parts = tuple(text.split("/"))
        if len(parts) not in ((1, 2, 3) if prefix else (2, 3)):
            shape = _PREFIX_SHAPE if prefix else _KEY_SHAPE
            raise InvalidArgument(f"pattern {text!r} has {len(parts)} segment(s); patterns are {shape} with '*' for a whole segment")
        for part in parts:
            if part != ANY_SEGMENT:
                try:
                    check_segment(part, what="pattern segment")
                except InvalidArgument as exc:
                    raise InvalidArgument(f"pattern {text!r}: {exc} ('*' stands only for a whole segment)") from None
        return cls(parts)

    def matches(self, segments: tuple[str, ...] | list[str]) -> bool:
        if len(segments) != len(self.segments):
            return False
        return all(p == ANY_SEGMENT or p == s for p, s in zip(self.segments, segments))

    def leads(self, segments: tuple[str | None, ...]) -> bool:
        """True if the pattern matches the first segments of a key (a key
        shorter than the pattern is not led); only '*' matches NEW_ID."""
        if len(self.segments) > len(segments):
            return False
        return all(p == ANY_SEGMENT or (s is not NEW_ID and p == s) for p, s in zip(self.segments, segments))

    def leads_all_below(self, segments: tuple[str, ...]) -> bool:
        """True if the pattern leads every key at or below `segments` (a
        selector: a key, a namespace, `app/*`, or () for every key). Keys
        have 2 or 3 segments, so `a/*` leads all below `a`, and `a/*/*` does
        not (`a/x` is a key of its own)."""
        count = len(segments)
        if len(self.segments) > max(count, 2):
            return False
        return all(p == ANY_SEGMENT or (i < count and p == segments[i]) for i, p in enumerate(self.segments))

    def __str__(self) -> str:
        return "/".join(self.segments)


def first_match(patterns: tuple[Pattern, ...], name: str) -> int | None:
    """The index of the first pattern matching the key `name`, if any."""
    if not patterns:
        return None
    segments = name.split("/")
    for i, pattern in enumerate(patterns):
        if pattern.matches(segments):
            return i
    return None
