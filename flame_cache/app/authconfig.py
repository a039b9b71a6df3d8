"""`cache.auth` (SPEC 9): tokens with scopes, and what anonymous callers may do.

    auth:
      tokens:
        - name: ci                       # shown in logs, never the token
          token_file: /run/secrets/ci    # or token_sha256: <hex digest of the token>
          scopes: ["read:*", "write:ci-app/*", "delete:ci-app/*"]
      anonymous: ["read:*"]             # without a token; nothing unless given

Reading the section checks names, digests and scopes (ConfigError naming
the key); token files are read when the process starts (`build_policy`), so
a missing one fails start-up naming it, and are read again when they change.
No section: no policy, anyone may do anything (flamepy sends no token).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from flame_cache.app.configerror import ConfigError
from flame_cache.store.access import ANONYMOUS, Policy
from flame_cache.store.errors import InvalidArgument
from flame_cache.store.scopes import Scope, parse_scopes
from flame_cache.store.tokens import SHA256_HEX_CHARS, Token, TokenFile

TOKEN_KEYS = ("name", "token_file", "token_sha256", "scopes")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}")
_DIGEST = re.compile(r"[0-9a-fA-F]{%d}" % SHA256_HEX_CHARS)


@dataclass(frozen=True, slots=True)
class TokenSpec:
    """One entry of cache.auth.tokens, as configured."""

    name: str
    scopes: tuple[Scope, ...]
    digests: tuple[bytes, ...] = ()  # token_sha256
    file: Path | None = None  # token_file
    where: str = "cache.auth.tokens[0]"


@dataclass(frozen=True, slots=True)
class AuthConfig:
    tokens: tuple[TokenSpec, ...]
    anonymous: tuple[Scope, ...]


def parse_auth(value: object) -> AuthConfig | None:
    """cache.auth; None when it is absent."""
    if value is None:
        return None
    if not isinstance(value, Mapping) or not value:
        raise ConfigError(f"cache.auth must be a mapping with tokens (and anonymous scopes), got {value!r}")
    tokens = value.get("tokens")
    if tokens is not None and not isinstance(tokens, list):
        raise ConfigError(f"cache.auth.tokens must be a list of {{name, token_file or token_sha256, scopes}}, not {tokens!r}")
    specs = tuple(_token(entry, f"cache.auth.tokens[{number}]") for number, entry in enumerate(tokens or ()))
    names = [spec.name for spec in specs]
    twice = sorted({name for name in names if names.count(name) > 1})
    if twice:
        raise ConfigError(f"cache.auth.tokens: the name(s) {', '.join(twice)} are given twice; each token has its own name")
    return AuthConfig(specs, _scopes(_listed(value.get("anonymous")), "cache.auth.anonymous"))


def _token(entry: object, where: str) -> TokenSpec:
    if not isinstance(entry, Mapping):
        raise ConfigError(f"{where} must be a mapping {{name, token_file or token_sha256, scopes}}")
    unknown = sorted(set(map(str, entry)) - set(TOKEN_KEYS))
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(unknown)}; a token has {', '.join(TOKEN_KEYS)}")
    name = str(entry.get("name") or "").strip()
    if not _NAME.fullmatch(name) or name == ANONYMOUS:
        raise ConfigError(
            f"{where}.name = {entry.get('name')!r} must be 1 to 64 letters, digits, '_', '.', '@' or '-' "
            f"(and not {ANONYMOUS!r}): it names the token in logs"
        )
    file, digests = entry.get("token_file"), _digests(entry.get("token_sha256"), where)
    if (file is None) == (not digests):
        raise ConfigError(f"{where} ({name}): give exactly one of token_file and token_sha256")
    scopes = _scopes(entry.get("scopes"), f"{where}.scopes")
    if not scopes:
        raise ConfigError(f"{where} ({name}) has no scopes: give a list like ['read:*', 'write:my-app/*']")
    return TokenSpec(name, scopes, digests, Path(str(file)) if file is not None else None, where)


def _digests(value: object, where: str) -> tuple[bytes, ...]:
    """token_sha256: one hex digest, or a list of them (a rotation)."""
    if value is None:
        return ()
    items = value if isinstance(value, list) else [value]
    digests = []
    for item in items:
        text = str(item).strip()
        if not _DIGEST.fullmatch(text):
            raise ConfigError(
                f"{where}.token_sha256 must be {SHA256_HEX_CHARS} hex digits (the sha256 of the token, "
                "as `printf %s TOKEN | sha256sum` prints it)"
            )  # the value is not shown: it may be a token written in the wrong place
        digests.append(bytes.fromhex(text))
    return tuple(digests)


def _listed(value: object) -> object:
    """A list of scopes may be written as text with commas."""
    return [item.strip() for item in value.split(",") if item.strip()] if isinstance(value, str) else value


def _scopes(value: object, where: str) -> tuple[Scope, ...]:
    try:
        return parse_scopes(value, where)
    except InvalidArgument as exc:
        raise ConfigError(str(exc)) from None


def build_policy(auth: AuthConfig | None) -> Policy:
    """The policy of cache.auth, its token files read now: OSError or
    ValueError naming the setting and the file if one cannot be used."""
    if auth is None:
        return Policy.open()
    tokens = []
    for spec in auth.tokens:
        file = None
        if spec.file is not None:
            try:
                file = TokenFile(spec.file, f"{spec.where}.token_file")
            except OSError as exc:
                where = f"{spec.where}.token_file = {str(spec.file)!r}"
                raise OSError(f"{where} cannot be read: {exc.strerror or exc}") from None
        tokens.append(Token(spec.name, spec.scopes, spec.digests, file))
    return Policy(tokens, auth.anonymous)
