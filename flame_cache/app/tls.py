"""TLS of both listeners, checked when the process starts (SPEC 9).

Every certificate, key and CA file is loaded into an `ssl.SSLContext` before
anything listens, so a missing, unreadable or mismatched file stops start-up
with a message naming the setting and the file (`ValueError`), rather than
failing each client's handshake later. The same files then serve Flight
(gRPC reads them as PEM bytes) and HTTP (uvicorn gets the context itself).
With `ca_file`, clients must present a certificate that CA signed.
"""

from __future__ import annotations

import ssl
from pathlib import Path

from flame_cache.app.tlsconfig import TlsConfig


def server_context(tls: TlsConfig) -> ssl.SSLContext:
    """A server context of `tls` (TLS 1.2 or later), checked; ValueError naming what is wrong."""
    cert, key = _pem(tls, "cert_file", "CERTIFICATE-----"), _pem(tls, "key_file", "PRIVATE KEY-----")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(tls.cert_file, tls.key_file, password=_no_password(tls))
    except ssl.SSLError as exc:
        if exc.reason == "KEY_VALUES_MISMATCH":
            raise ValueError(f"{tls.setting}.key_file {key} is not the key of {tls.setting}.cert_file {cert}") from None
        raise ValueError(f"{tls.setting}: cannot use {cert} with the key {key}: {exc.reason or exc}") from None
    except OSError as exc:
        raise ValueError(f"{tls.setting}: cannot read {cert} or {key}: {exc.strerror or exc}") from None
    if tls.ca_file is not None:
        ca = _pem(tls, "ca_file", "CERTIFICATE-----")
        try:
            context.load_verify_locations(cafile=tls.ca_file)
        except (ssl.SSLError, OSError) as exc:
            why = getattr(exc, "reason", None) or exc
            raise ValueError(f"{tls.setting}.ca_file {ca} holds no usable CA certificate: {why}") from None
        context.verify_mode = ssl.CERT_REQUIRED
    return context


def flight_options(tls: TlsConfig | None) -> dict:
    """FlightServerBase keyword arguments for `tls`, its files checked first."""
    if tls is None:
        return {}
    server_context(tls)
    options: dict = {"tls_certificates": [(tls.cert_file.read_bytes(), tls.key_file.read_bytes())]}
    if tls.ca_file is not None:
        options.update(verify_client=True, root_certificates=tls.ca_file.read_bytes())
    return options


def _pem(tls: TlsConfig, setting: str, marker: str) -> str:
    """The file's name for messages, once it is known to be readable PEM holding `marker`."""
    path: Path = getattr(tls, setting)
    where = f"{tls.setting}.{setting} = {str(path)!r}"
    try:
        text = path.read_bytes()
    except OSError as exc:
        raise ValueError(f"{where} cannot be read: {exc.strerror or exc}") from None
    if marker.encode() not in text:
        kind = "private key" if "KEY" in marker else "certificate"
        raise ValueError(f"{where} is not a PEM {kind} (no '-----BEGIN ...{marker}' line)")
    return repr(str(path))


def _no_password(tls: TlsConfig):  # noqa: ANN202 (ssl's password callback)
    def refuse() -> bytes:
        raise ValueError(f"{tls.setting}.key_file {str(tls.key_file)!r} is encrypted; give an unencrypted key")

    return refuse
