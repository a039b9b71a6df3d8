"""Key patterns (SPEC 8): a key with `*` standing for one whole segment.

`*/pkg/*` matches `app/pkg/obj` (three segments, the second `pkg`), never
`s/pkg` or `a/b/pkg/c`: a pattern matches keys of exactly its segment count.
Used by `cache.eviction.pin` and the `match` of `cache.expiry` rules.
"""

from __future__ import annotations

from dataclasses import dataclass

from flame_cache.store.errors import InvalidArgument
from flame_cache.store.keys import WILDCARD, check_segment

ANY_SEGMENT = WILDCARD


@dataclass(frozen=True, slots=True)
class Pattern:
    segments: tuple[str, ...]

    @classmethod
    def parse(cls, text: object) -> Pattern:
        """InvalidArgument naming the pattern and what is wrong with it."""
        if not isinstance(text, str):
            raise InvalidArgument(f"pattern {text!r} must be text like '*/pkg/*'")
        parts = tuple(text.split("/"))
        if len(parts) not in (2, 3):
            raise InvalidArgument(
                f"pattern {text!r} has {len(parts)} segment(s); patterns are keys ('session/object' or "
                "'app/session/object') with '*' for a whole segment"
            )
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
