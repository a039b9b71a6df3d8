"""cache.auth and the TLS settings as configured: scopes and what they cover,
tokens and how they are matched, the configuration's errors and warnings,
and the start-up warning about listeners beyond loopback.
"""

from __future__ import annotations

import base64
import hashlib
import logging
from pathlib import Path

import pytest
import yaml

from flame_cache.app import authconfig
from flame_cache.app.config import ConfigError, load_config
from flame_cache.app.exposure import exposure_warnings
from flame_cache.store import tokens as tokens_module
from flame_cache.store.access import OPEN, Credentials, Policy, Standing, parse_authorization
from flame_cache.store.errors import InvalidArgument
from flame_cache.store.patterns import NEW_ID
from flame_cache.store.scopes import EVERY_KEY, Operation, Scope
from flame_cache.store.tokens import Token, TokenFile, digest

READ, WRITE, DELETE, ADMIN = Operation.READ, Operation.WRITE, Operation.DELETE, Operation.ADMIN


def key(text: str) -> tuple[str, ...]:
    return tuple(text.split("/")) if text else ()


# -- scopes ---------------------------------------------------------------------

COVERS = [
    # scope, operation, target ('+' ends: a new id in that namespace), below, covered
    ("read:*", READ, "team/s/o", False, True),
    ("read:*", READ, "s/o", False, True),
    ("read:*", WRITE, "team/s/o", False, False),
    ("admin:*", DELETE, "", True, True),  # every key
    ("admin:*/*", ADMIN, "", True, True),
    ("admin:*/*/*", ADMIN, "", True, False),  # 2-segment keys are not led by it
    ("admin:team/*", ADMIN, "", True, False),
    ("write:ci-app/*", WRITE, "ci-app/s/o", False, True),
    ("write:ci-app/*", WRITE, "ci-app/o", False, True),
    ("write:ci-app/*", WRITE, "ci-app/s/+", False, True),
    ("write:ci-app/*", WRITE, "ci-app/+", False, True),
    ("write:ci-app/*", WRITE, "other/s/o", False, False),
    ("write:ci-app", WRITE, "ci-app/s/o", False, True),
    ("write:*/pkg/*", WRITE, "app/pkg/x", False, True),
    ("write:*/pkg/*", WRITE, "app/pkg", False, False),
    ("write:*/pkg/*", WRITE, "app/pkg/+", False, True),
    ("write:app/s/fixed", WRITE, "app/s/+", False, False),  # a new id is nobody's choice
    ("read:app/s/o", READ, "app/s/o", False, True),
    ("read:app/s/o", READ, "app/s/o2", False, False),
    ("delete:app/*", DELETE, "app", True, True),  # app/*
    ("delete:app/*", DELETE, "app/s", True, True),
    ("delete:app", DELETE, "app/s", True, True),
    ("delete:app/*/*", DELETE, "app/s", True, False),  # app/s may be a key of its own
    ("delete:app/*/*", DELETE, "app/s/o", True, True),
    ("delete:app/s/*", DELETE, "app", True, False),
    ("delete:app/*", DELETE, "other", True, False),
    ("write:team/*", DELETE, "team/s", True, False),  # write is not delete
    ("admin:team/*", READ, "team/s/o", False, True),  # admin is all of them
]


@pytest.mark.parametrize("scope, operation, target, below, covered", COVERS)
def test_what_a_scope_covers(scope: str, operation: Operation, target: str, below: bool, covered: bool) -> None:
    segments = key(target.removesuffix("/+")) + ((NEW_ID,) if target.endswith("+") else ())
    assert Scope.parse(scope).covers(operation, segments, below=below) is covered


@pytest.mark.parametrize(
    "text, fragment",
    [
        ("read", "an operation (read, write, delete, admin), ':' and a key pattern"),
        ("peek:*", "an operation (read, write, delete, admin)"),
        ("read:a/b/c/d", "has 4 segment(s)"),
        ("read:a/.x", "begins with '.'"),
        ("write:", "empty pattern segment"),
        ("write:a/b\x00", "forbidden character"),
    ],
)
def test_a_bad_scope_is_named(text: str, fragment: str) -> None:
    with pytest.raises(InvalidArgument) as caught:
        Scope.parse(text)
    assert repr(text) in str(caught.value) and fragment in str(caught.value)


def test_scopes_read_back_as_written() -> None:
    assert [str(Scope.parse(s)) for s in ("READ:*", " write: app/* ", "admin:*/pkg/*")] == ["read:*", "write:app/*", "admin:*/pkg/*"]


# -- credentials and principals ----------------------------------------------------


def test_authorization_headers_are_read_in_both_forms() -> None:
    basic = "Basic " + base64.b64encode(b"ci:s3cret:with:colons").decode()
    assert parse_authorization(None) is None
    assert parse_authorization("Bearer abc") == Credentials("abc")
    assert parse_authorization(b"bearer  abc ") == Credentials("abc")
    assert parse_authorization(basic) == Credentials("s3cret:with:colons", "ci")
    for junk in ("Bearer", "Digest x", "Basic !!!", "Basic " + base64.b64encode(b"no-colon").decode(), "abc"):
        assert parse_authorization(junk) == Credentials(None), junk


def make_policy(anonymous: tuple[str, ...] = ()) -> Policy:
    tokens = [Token("ci", (Scope.parse("write:ci/*"),), (digest("ci-token"),)), Token("root", (Scope.parse("admin:*"),), (digest("root"),))]
    return Policy(tokens, [Scope.parse(s) for s in anonymous])


def test_a_policy_names_each_caller() -> None:
    policy = make_policy(("read:*",))
    assert policy.identify(None).standing is Standing.ANONYMOUS and str(policy.identify(None)) == "anonymous"
    ci = policy.identify(Credentials("ci-token"))
    assert ci.standing is Standing.TOKEN and ci.name == "ci" and str(ci) == "token 'ci'"
    assert policy.identify(Credentials("ci-token", "ci")).name == "ci"
    for wrong in (Credentials("ci-token", "root"), Credentials("nope"), Credentials(None), Credentials("", None)):
        assert policy.identify(wrong).standing is Standing.UNKNOWN and policy.identify(wrong).scopes == ()
    assert policy.identify(Credentials("root")).unrestricted and not ci.unrestricted
    assert policy.anonymous_may_write() is False and make_policy(("write:pub/*",)).anonymous_may_write()


def test_without_cache_auth_everyone_may_do_everything_whatever_they_send() -> None:
    policy = Policy.open()
    assert not policy.enabled and policy.anonymous_may_write()
    for credentials in (None, Credentials("anything"), Credentials(None)):
        assert policy.identify(credentials) is OPEN
    assert OPEN.may(DELETE, EVERY_KEY, below=True) and OPEN.unrestricted


def test_every_digest_is_compared_even_after_a_match(monkeypatch: pytest.MonkeyPatch) -> None:
    compared: list[bytes] = []
    real = tokens_module.hmac.compare_digest
    monkeypatch.setattr(tokens_module.hmac, "compare_digest", lambda a, b: compared.append(a) or real(a, b))
    digests = tuple(digest(t) for t in ("one", "two", "three"))
    assert tokens_module.any_equal(digests, digest("one")) and len(compared) == 3


def test_a_token_file_is_read_again_when_it_changes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog) -> None:
    """A rotation: the file holds the old and the new token, then the new one only."""
    monkeypatch.setattr(tokens_module, "RELOAD_SECONDS", 0.0)
    path = tmp_path / "ci.token"
    path.write_text("# ci's token\n\nold-token\n")
    policy = Policy([Token("ci", (Scope.parse("read:*"),), file=TokenFile(path, "cache.auth.tokens[0].token_file"))])
    assert policy.identify(Credentials("old-token")).name == "ci"
    path.write_text("old-token\nnew-token-rotated\n")
    assert {policy.identify(Credentials(t)).name for t in ("old-token", "new-token-rotated")} == {"ci"}
    path.write_text("new-token-rotated\n")
    assert policy.identify(Credentials("old-token")).standing is Standing.UNKNOWN
    assert policy.identify(Credentials("new-token-rotated")).name == "ci"
    with caplog.at_level(logging.WARNING):
        path.unlink()
        assert policy.identify(Credentials("new-token-rotated")).standing is Standing.UNKNOWN
    assert "grants nothing until it can be read" in caplog.text and "new-token" not in caplog.text


# -- the configuration -------------------------------------------------------------


def write_yaml(path: Path, cache: dict) -> Path:
    path.write_text(yaml.safe_dump({"cluster": {"name": "x"}, "cache": cache}))
    return path


def auth_of(tmp_path: Path, auth: object) -> authconfig.AuthConfig | None:
    return load_config(write_yaml(tmp_path / "c.yaml", {"auth": auth}), env={}).auth


def test_the_auth_section_is_read(tmp_path: Path) -> None:
    sha = hashlib.sha256(b"t").hexdigest()
    auth = auth_of(
        tmp_path,
        {
            "tokens": [
                {"name": "ci", "token_file": "/run/secrets/ci", "scopes": ["read:*", "write:ci-app/*"]},
                {"name": "ops@example", "token_sha256": [sha, sha.upper()], "scopes": ["admin:*"]},
            ],
            "anonymous": "read:pub/*, read:docs/*",
        },
    )
    assert [t.name for t in auth.tokens] == ["ci", "ops@example"]
    assert auth.tokens[0].file == Path("/run/secrets/ci") and auth.tokens[1].digests == (bytes.fromhex(sha),) * 2
    assert [str(s) for s in auth.anonymous] == ["read:pub/*", "read:docs/*"]
    assert auth_of(tmp_path, None) is None


BAD_AUTH = [
    ("empty", {}, "cache.auth must be a mapping with tokens"),
    ("tokens-not-a-list", {"tokens": "ci"}, "cache.auth.tokens must be a list"),
    ("unknown-key", {"tokens": [{"name": "a", "token": "x", "scopes": ["read:*"]}]}, "cache.auth.tokens[0]: unknown key(s) token"),
    ("no-name", {"tokens": [{"token_file": "/f", "scopes": ["read:*"]}]}, "cache.auth.tokens[0].name"),
    ("anonymous-name", {"tokens": [{"name": "anonymous", "token_file": "/f", "scopes": ["read:*"]}]}, "not 'anonymous'"),
    ("both", {"tokens": [{"name": "a", "token_file": "/f", "token_sha256": "0" * 64, "scopes": ["read:*"]}]}, "exactly one"),
    ("neither", {"tokens": [{"name": "a", "scopes": ["read:*"]}]}, "exactly one of token_file and token_sha256"),
    ("no-scopes", {"tokens": [{"name": "a", "token_file": "/f"}]}, "cache.auth.tokens[0] (a) has no scopes"),
    ("bad-scope", {"tokens": [{"name": "a", "token_file": "/f", "scopes": ["peek:*"]}]}, "cache.auth.tokens[0].scopes"),
    ("twice", {"tokens": [{"name": "a", "token_file": "/f", "scopes": ["read:*"]}] * 2}, "the name(s) a are given twice"),
    ("bad-anonymous", {"anonymous": ["read"]}, "cache.auth.anonymous: scope 'read'"),
]


@pytest.mark.parametrize("auth, fragment", [c[1:] for c in BAD_AUTH], ids=[c[0] for c in BAD_AUTH])
def test_a_bad_auth_section_is_named(tmp_path: Path, auth: dict, fragment: str) -> None:
    with pytest.raises(ConfigError) as caught:
        auth_of(tmp_path, auth)
    assert fragment in str(caught.value), str(caught.value)


def test_a_bad_digest_is_refused_without_showing_it(tmp_path: Path) -> None:
    """A token pasted where its digest belongs must not reach the terminal or a log."""
    pasted = "a-real-token-pasted-by-mistake"
    with pytest.raises(ConfigError) as caught:
        auth_of(tmp_path, {"tokens": [{"name": "ci", "token_sha256": pasted, "scopes": ["read:*"]}]})
    assert "token_sha256 must be 64 hex digits" in str(caught.value) and pasted not in str(caught.value)


def test_token_files_are_read_at_start_up(tmp_path: Path) -> None:
    spec = authconfig.TokenSpec("ci", (Scope.parse("read:*"),), file=tmp_path / "missing", where="cache.auth.tokens[0]")
    with pytest.raises(OSError) as caught:
        authconfig.build_policy(authconfig.AuthConfig((spec,), ()))
    assert f"cache.auth.tokens[0].token_file = {str(tmp_path / 'missing')!r} cannot be read" in str(caught.value)
    (tmp_path / "empty").write_text("# nothing yet\n")
    spec = authconfig.TokenSpec("ci", (Scope.parse("read:*"),), file=tmp_path / "empty", where="cache.auth.tokens[0]")
    with pytest.raises(ValueError, match="holds no token"):
        authconfig.build_policy(authconfig.AuthConfig((spec,), ()))


def test_unknown_keys_of_the_new_sections_are_warned(tmp_path: Path) -> None:
    cache = {"auth": {"anonymus": ["read:*"], "tokens": []}, "http": {"tls": {"cert_fle": "x"}}, "tls": {"ca_fil": "y"}}
    path = write_yaml(tmp_path / "c.yaml", cache)
    warnings = "\n".join(load_config(path, env={}).warnings)
    assert "cache.auth.anonymus" in warnings and "did you mean cache.auth.anonymous?" in warnings
    assert "cache.http.tls.cert_fle" in warnings and "did you mean cache.http.tls.cert_file?" in warnings
    assert "cache.tls.ca_fil" in warnings and "did you mean cache.tls.ca_file?" in warnings


def test_https_takes_the_flight_certificate_or_its_own(tmp_path: Path) -> None:
    files = {name: tmp_path / name for name in ("a.crt", "a.key", "b.crt", "b.key", "ca.crt")}
    for file in files.values():
        file.write_text("pem")
    shared = {"cert_file": str(files["a.crt"]), "key_file": str(files["a.key"]), "ca_file": str(files["ca.crt"])}
    cache = {"endpoint": "grpcs://0.0.0.0:9443", "tls": shared, "http": {"endpoint": "https://0.0.0.0:9444"}}
    config = load_config(write_yaml(tmp_path / "c.yaml", cache), env={})
    assert config.http_endpoint.uri == "https://0.0.0.0:9444" and config.http_tls.cert_file == files["a.crt"]
    assert config.http_tls.mutual and config.http_tls.setting == "cache.tls" and config.warnings == ()
    cache["http"]["tls"] = {"cert_file": str(files["b.crt"]), "key_file": str(files["b.key"])}
    config = load_config(write_yaml(tmp_path / "c.yaml", cache), env={})
    assert config.http_tls.cert_file == files["b.crt"] and not config.http_tls.mutual and config.tls.cert_file == files["a.crt"]
    env = {"FLAME_CACHE_TLS_CERT_FILE": str(files["b.crt"]), "FLAME_CACHE_TLS_KEY_FILE": str(files["b.key"])}
    config = load_config(write_yaml(tmp_path / "c.yaml", {"endpoint": "grpcs://127.0.0.1:1"}), env=env)
    assert config.tls.cert_file == files["b.crt"] and config.tls.ca_file is None


def test_certificates_nothing_uses_are_warned(tmp_path: Path) -> None:
    cert = tmp_path / "c.crt"
    cert.write_text("pem")
    tls = {"cert_file": str(cert), "key_file": str(cert)}
    warnings = load_config(write_yaml(tmp_path / "c.yaml", {"tls": tls, "http": {"tls": tls}}), env={}).warnings
    assert warnings == (
        "cache.tls names a certificate, but neither cache.endpoint nor cache.http.endpoint uses TLS",
        "cache.http.tls is set, but cache.http.endpoint (http://127.0.0.1:9091) is not https://",
    )


# -- who can reach the listeners ---------------------------------------------------


def warnings_for(tmp_path: Path, cache: dict, anonymous: tuple[str, ...] | None) -> list[str]:
    config = load_config(write_yaml(tmp_path / "c.yaml", cache), env={})
    return exposure_warnings(config, Policy.open() if anonymous is None else make_policy(anonymous))


def test_listeners_beyond_loopback_open_to_anonymous_writers_are_warned(tmp_path: Path) -> None:
    wide = {"endpoint": "grpc://0.0.0.0:9090", "http": {"endpoint": "http://0.0.0.0:9091"}}
    found = warnings_for(tmp_path, wide, None)
    assert len(found) == 2 and "Arrow Flight listens on grpc://0.0.0.0:9090, beyond loopback" in found[0]
    assert "HTTP listens on http://0.0.0.0:9091" in found[1] and "there is no cache.auth" in found[1]
    assert "cache.auth.anonymous lets them" in warnings_for(tmp_path, wide, ("delete:*",))[0]
    assert warnings_for(tmp_path, wide, ("read:*",)) == []
    assert warnings_for(tmp_path, {}, None) == []  # the defaults: loopback only
    assert warnings_for(tmp_path, {"endpoint": "grpc://[::1]:9090", "http": {"endpoint": "http://localhost:1"}}, None) == []


def test_mutual_tls_listeners_and_plaintext_beside_tls_are_judged(tmp_path: Path) -> None:
    pem = tmp_path / "x.pem"
    pem.write_text("pem")
    tls = {"cert_file": str(pem), "key_file": str(pem), "ca_file": str(pem)}
    cache = {"endpoint": "grpcs://0.0.0.0:9443", "tls": tls, "http": {"endpoint": "http://0.0.0.0:9091"}}
    found = warnings_for(tmp_path, cache, None)
    assert len(found) == 2 and found[0].startswith("HTTP listens on http://0.0.0.0:9091")
    assert "HTTP serves plaintext on http://0.0.0.0:9091 while Arrow Flight uses TLS" in found[1]


def test_the_server_warns_at_start_up(make_server) -> None:
    server = make_server()
    assert "beyond loopback" not in server.log()
    server.stop()
    server.cache["endpoint"] = f"grpc://0.0.0.0:{server.port}"
    server.start()
    assert "WARNING flame_cache: Arrow Flight listens on grpc://0.0.0.0" in server.log()
