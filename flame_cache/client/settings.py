"""Where the cache is and how to talk to it, found as flamepy finds it.

flamepy 0.6.0 (`flamepy.core.types.FlameContext`) reads `~/.flame/flame.yaml`
if it exists: the context named by `current-context` (an error if that is
unset or names no context), and in it `cache.endpoint` and
`cache.tls.ca_file`. Then `FLAME_CACHE_ENDPOINT` overrides the endpoint, and
`FLAME_CA_FILE` names the CA only where the context names none. With
neither, the endpoint is `grpc://127.0.0.1:9090`. `grpcs://` means
`grpc+tls://`.

Here, an explicit argument comes first (`--endpoint`, `--ca-file`), and the
file is read only when something is still missing from it. The token (SPEC
9) is ours, as flamepy sends none: an argument, else `--token-file`, else
`FLAME_CACHE_TOKEN`; it goes as `authorization: Bearer <token>` on every call.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from flame_cache.client.errors import SettingsError

DEFAULT_ENDPOINT = "grpc://127.0.0.1:9090"  # flamepy's DEFAULT_FLAME_CACHE_ENDPOINT
SCHEMES = {"grpc": "grpc", "grpc+tcp": "grpc+tcp", "grpc+tls": "grpc+tls", "grpcs": "grpc+tls"}


@dataclass(frozen=True, slots=True)
class Settings:
    """A resolved endpoint (`grpc://` or `grpc+tls://`), CA file and token."""

    endpoint: str
    ca_file: Path | None = None
    token: str | None = field(default=None, repr=False)  # never printed

    @property
    def headers(self) -> list[tuple[bytes, bytes]]:
        """The headers every call carries (pyarrow takes them as bytes)."""
        return [(b"authorization", f"Bearer {self.token}".encode())] if self.token else []

    def root_certs(self) -> bytes | None:
        """The CA's certificates for a TLS endpoint; SettingsError if unreadable."""
        if self.ca_file is None or not self.endpoint.startswith("grpc+tls://"):
            return None
        try:
            return self.ca_file.read_bytes()
        except OSError as exc:
            raise SettingsError(str(self.ca_file), f"cannot read the CA file: {exc.strerror}") from None


def resolve(
    endpoint: str | None = None,
    *,
    ca_file: str | os.PathLike | None = None,
    token: str | None = None,
    token_file: str | os.PathLike | None = None,
    environ: Mapping[str, str] | None = None,
    home: Path | None = None,
) -> Settings:
    """The settings from arguments, the environment and flame.yaml, in
    flamepy's order (see the module); SettingsError if the file is bad or a
    named file cannot be read."""
    env = os.environ if environ is None else environ
    context = _LazyContext(home)
    chosen = endpoint or env.get("FLAME_CACHE_ENDPOINT") or context.get("endpoint") or DEFAULT_ENDPOINT
    if ca_file is None and chosen.startswith(("grpc+tls://", "grpcs://")):
        ca_file = context.get("ca_file") or env.get("FLAME_CA_FILE")
    return Settings(
        normalize(chosen),
        Path(ca_file).expanduser() if ca_file else None,
        token or _token(token_file, env),
    )


def normalize(endpoint: str) -> str:
    """`grpcs://` as `grpc+tls://`; SettingsError for a URI that is not gRPC."""
    scheme, sep, rest = endpoint.partition("://")
    if not sep or scheme.lower() not in SCHEMES or not rest:
        raise SettingsError(
            endpoint, "the cache endpoint must be grpc://HOST:PORT or grpc+tls://HOST:PORT (also written grpcs://)"
        )
    return f"{SCHEMES[scheme.lower()]}://{rest}"


def _token(token_file: str | os.PathLike | None, env: Mapping[str, str]) -> str | None:
    if token_file is None:
        return env.get("FLAME_CACHE_TOKEN") or None
    try:
        text = Path(token_file).expanduser().read_text().strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise SettingsError(str(token_file), f"cannot read the token file: {getattr(exc, 'strerror', exc)}") from None
    if not text:
        raise SettingsError(str(token_file), "the token file is empty")
    return text


class _LazyContext:
    """The cache section of flame.yaml's current context, read on first use."""

    def __init__(self, home: Path | None) -> None:
        self.path = (home or Path.home()) / ".flame" / "flame.yaml"
        self._cache: dict[str, Any] | None = None

    def get(self, name: str) -> str | None:
        if self._cache is None:
            self._cache = _cache_section(self.path)
        tls = self._cache.get("tls") or {}
        value = self._cache.get("endpoint") if name == "endpoint" else tls.get("ca_file")
        return str(value) if value else None


def _cache_section(path: Path) -> dict[str, Any]:
    """`cache:` of the current context ({} without a file); SettingsError
    where flamepy would fail too (no current-context, an unknown one)."""
    try:
        document = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        return {}
    except (OSError, yaml.YAMLError) as exc:
        raise SettingsError(str(path), f"cannot read it: {exc}") from None
    current = document.get("current-context") if isinstance(document, dict) else None
    if current is None:
        raise SettingsError(str(path), "current-context is not set")
    for context in document.get("contexts") or []:
        if isinstance(context, dict) and context.get("name") == current:
            cache = context.get("cache") or {}
            return cache if isinstance(cache, dict) else {}
    raise SettingsError(str(path), f"context {current!r} (current-context) is not among its contexts")
