"""What a conditional write requires of an object's current version.

Both protocols state their conditions here (HTTP's If-Match / If-None-Match,
the seed's UPDATE, which needs an existing object), and the store checks
them under the key's lock, so two writers racing for one version have
exactly one winner.
"""

from __future__ import annotations

from dataclasses import dataclass

from flame_cache.store.errors import ObjectNotFound, VersionConflict


@dataclass(frozen=True, slots=True)
class Condition:
    """`versions`: the object must be at one of these (None: any version).
    `exists`: True, it must exist; False, it must not; None, either."""

    versions: tuple[int, ...] | None = None
    exists: bool | None = None

    @classmethod
    def at(cls, version: int) -> Condition:
        """Exactly `version` (0: the object must not exist)."""
        return cls(exists=False) if version == 0 else cls(versions=(version,), exists=True)

    def check(self, key: str, current: int) -> None:
        """Raise ObjectNotFound or VersionConflict unless an object at
        `current` (0: absent) meets the condition."""
        if self.exists and current == 0:
            raise ObjectNotFound(f"object {key!r} not found")
        if self.exists is False and current:
            raise VersionConflict(key, 0, current)
        if self.versions is not None and current not in self.versions:
            raise VersionConflict(key, self.versions[0], current)


ANY_STATE = Condition()
MUST_EXIST = Condition(exists=True)
