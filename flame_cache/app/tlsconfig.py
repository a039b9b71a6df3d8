"""`cache.tls` and `cache.http.tls` (SPEC 9): which certificate each listener serves.

Flight serves TLS when its endpoint is `grpc+tls://` or `grpcs://`, with
`cache.tls`. HTTP serves TLS when its endpoint is `https://`, with
`cache.http.tls` if that names a certificate, else with `cache.tls`: one
certificate for both unless HTTP is given its own. `ca_file` makes clients
present a certificate that CA signed (mutual TLS), on the listener whose
settings name it; HTTP on `cache.tls` inherits its `ca_file`.

Here only names are read and files looked for; their contents are checked
when the process starts (app/tls.py), so a bad file fails start-up naming it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flame_cache.app.configerror import ConfigError

FILES = ("cert_file", "key_file", "ca_file")


@dataclass(frozen=True, slots=True)
class TlsConfig:
    cert_file: Path
    key_file: Path
    ca_file: Path | None  # set: clients must present a certificate it signed
    setting: str = "cache.tls"  # where it was configured, for messages

    @property
    def mutual(self) -> bool:
        return self.ca_file is not None


def _names(section: Mapping[str, Any]) -> dict[str, str | None]:
    """The file names of a tls mapping (each key asked, so none is reported unknown)."""
    names = {}
    for key in FILES:
        value = section.get(key)
        names[key] = (str(value).strip() or None) if value is not None else None
    return names


def _settings(names: dict[str, str | None], setting: str, needed_by: str) -> TlsConfig:
    """The TlsConfig of `names`; ConfigError naming the key if a file is missing."""
    if not names["cert_file"] or not names["key_file"]:
        raise ConfigError(f"{needed_by} uses TLS: set {setting}.cert_file and {setting}.key_file")
    for key in FILES:
        file = names[key]
        if file and not Path(file).is_file():
            raise ConfigError(f"{setting}.{key} = {file!r} is not a readable file")
    ca = names["ca_file"]
    return TlsConfig(Path(names["cert_file"]), Path(names["key_file"]), Path(ca) if ca else None, setting)


def listener_tls(
    tls: Mapping[str, Any], http_tls: Mapping[str, Any], flight_uri: str, flight_tls: bool, http_uri: str | None
) -> tuple[TlsConfig | None, TlsConfig | None, tuple[str, ...]]:
    """(Flight's TLS, HTTP's TLS, warnings) for the endpoints: `http_uri`
    None means HTTP is off, an https:// one means TLS on HTTP."""
    shared, own = _names(tls), _names(http_tls)
    flight = _settings(shared, "cache.tls", f"cache.endpoint {flight_uri}") if flight_tls else None
    http_https = http_uri is not None and http_uri.startswith("https://")
    own_set = bool(own["cert_file"] or own["key_file"])
    http = None
    if http_https:
        setting = "cache.http.tls" if own_set else "cache.tls"
        http = _settings(own if own_set else shared, setting, f"cache.http.endpoint {http_uri}")
    warnings = []
    if shared["cert_file"] and flight is None and not (http_https and not own_set):
        warnings.append("cache.tls names a certificate, but neither cache.endpoint nor cache.http.endpoint uses TLS")
    if own_set and not http_https:
        warnings.append(f"cache.http.tls is set, but cache.http.endpoint ({http_uri or 'off'}) is not https://")
    return flight, http, tuple(warnings)
