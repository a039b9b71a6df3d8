"""Certificates made by the tests (the `cryptography` package): a CA, a server
certificate for 127.0.0.1 and localhost, and client certificates.

Each is written as PEM files into a folder; `Pki.make(folder)` makes the
usual set: `ca` signs `server` and `client`; `other_ca` (not trusted by the
server) signs `stranger`.
"""

from __future__ import annotations

import datetime
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


@dataclass(frozen=True)
class Pair:
    """A certificate and its key, as PEM files."""

    cert: Path
    key: Path
    certificate: x509.Certificate
    private_key: ec.EllipticCurvePrivateKey


def _name(common: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])


def _write(folder: Path, stem: str, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey) -> Pair:
    folder.mkdir(parents=True, exist_ok=True)
    cert_path, key_path = folder / f"{stem}.crt", folder / f"{stem}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return Pair(cert_path, key_path, cert, key)


def _builder(subject: str, issuer: x509.Name, public_key) -> x509.CertificateBuilder:  # noqa: ANN001
    now = datetime.datetime.now(datetime.timezone.utc)
    return (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=2))
    )


def make_ca(folder: Path, stem: str) -> Pair:
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        _builder(f"flame-cache test {stem}", _name(f"flame-cache test {stem}"), key.public_key())
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True
        )  # key_cert_sign, crl_sign
        .sign(key, hashes.SHA256())
    )
    return _write(folder, stem, cert, key)


def issue(folder: Path, stem: str, ca: Pair, *, server: bool) -> Pair:
    """A leaf certificate signed by `ca`: for 127.0.0.1 and localhost (a
    server), or a client's."""
    key = ec.generate_private_key(ec.SECP256R1())
    usage = ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH
    builder = _builder("localhost" if server else stem, ca.certificate.subject, key.public_key()).add_extension(
        x509.ExtendedKeyUsage([usage]), critical=False
    )
    if server:
        names = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    return _write(folder, stem, builder.sign(ca.private_key, hashes.SHA256()), key)


@dataclass(frozen=True)
class Pki:
    ca: Pair
    server: Pair
    client: Pair
    other_ca: Pair
    stranger: Pair  # a client certificate the server's CA did not sign

    @classmethod
    def make(cls, folder: Path) -> Pki:
        ca, other = make_ca(folder, "ca"), make_ca(folder, "other-ca")
        return cls(
            ca,
            issue(folder, "server", ca, server=True),
            issue(folder, "client", ca, server=False),
            other,
            issue(folder, "stranger", other, server=False),
        )
