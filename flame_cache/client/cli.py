"""The client commands of `flame-cache` (SPEC 12): put, get, cat, ls, stat, rm.

Each is a thin layer over `Client`: it parses its arguments (click: a
usage error exits 2), makes one or two calls, prints the answer for a
shell, and turns a failure into `Failed`, which `app/cli.py` prints as one
line naming the key and the cause, and exits 1.
"""

from __future__ import annotations

import functools
import json
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import click

from flame_cache.client import progress
from flame_cache.client.client import Client
from flame_cache.client.errors import ClientError
from flame_cache.client.models import ObjectStat, iso_time
from flame_cache.client.sources import size_of


class Failed(Exception):
    """A command that failed: `flame-cache COMMAND: MESSAGE`, exit 1."""

    def __init__(self, command: str, message: str) -> None:
        super().__init__(f"flame-cache {command}: {message}")


@contextmanager
def reporting(command: str, subject: str) -> Iterator[None]:
    """Failures inside as Failed, naming `subject` (the key) and the cause."""
    try:
        yield
    except ClientError as exc:
        raise Failed(command, str(exc) if exc.subject == subject else f"{subject}: {exc}") from None
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # nothing more to flush at exit
        raise Failed(command, f"{subject}: the output was closed before the end (broken pipe)") from None
    except OSError as exc:
        where = f"{exc.filename}: " if exc.filename else ""
        raise Failed(command, f"{subject}: {where}{exc.strerror or exc}") from None


def connected(command: Callable) -> Callable:
    """Add --endpoint, --ca-file and --token-file; pass a `client` instead."""

    @click.option("--endpoint", metavar="URI", help="grpc://HOST:PORT or grpc+tls://HOST:PORT "
                  "(default: FLAME_CACHE_ENDPOINT, else cache.endpoint of ~/.flame/flame.yaml, else grpc://127.0.0.1:9090)")
    @click.option("--ca-file", type=click.Path(dir_okay=False), help="CA certificate for TLS (default: "
                  "cache.tls.ca_file of ~/.flame/flame.yaml, else FLAME_CA_FILE)")
    @click.option("--token-file", type=click.Path(dir_okay=False), help="file holding the bearer token (default: FLAME_CACHE_TOKEN)")
    @functools.wraps(command)
    def wrapper(endpoint: str | None, ca_file: str | None, token_file: str | None, **kwargs):
        # gRPC logs failed handshakes and connections to stderr itself; the command says it in one line
        os.environ.setdefault("GRPC_VERBOSITY", "NONE")
        name = click.get_current_context().info_name or "flame-cache"
        with reporting(name, _subject(kwargs)):
            client = Client(endpoint, ca_file=ca_file, token_file=token_file)
        with client:
            return command(client, **kwargs)

    return wrapper


def _subject(kwargs: dict) -> str:
    for name in ("target", "key", "selectors", "prefix"):
        if name in kwargs:
            value = kwargs[name]
            return " ".join(value) if isinstance(value, tuple) else value or "*"
    return ""


quiet_option = click.option("-q", "--quiet", is_flag=True, help="no progress bar")
json_option = click.option("--json", "as_json", is_flag=True, help="print JSON")


@click.command()
@click.argument("source", metavar="FILE|-")
@click.argument("target", metavar="KEY|NAMESPACE")
@json_option
@quiet_option
@connected
def put(client: Client, source: str, target: str, as_json: bool, quiet: bool) -> None:
    """Upload FILE (- for stdin) to KEY, or as a new object in NAMESPACE.
    Prints the stored key and its version (--json: the ObjectRef)."""
    stream = sys.stdin.buffer if source == "-" else source
    with reporting("put", target), progress.bar(target, size_of(stream), progress.wanted(quiet=quiet)) as advance:
        ref = client.put(target, stream, progress=advance)
    click.echo(json.dumps(ref.as_dict()) if as_json else f"{ref.key} {ref.version}")


@click.command()
@click.argument("key")
@click.argument("dest", metavar="[FILE|-]", required=False)
@quiet_option
@connected
def get(client: Client, key: str, dest: str | None, quiet: bool) -> None:
    """Download KEY into FILE (default: its last segment, here; - for
    stdout). A file is written whole, checked, or not at all."""
    if dest == "-":
        return _to_stdout(client, "get", key, quiet)
    path = Path(dest or key.rsplit("/", 1)[-1])
    if path.is_dir():
        path /= key.rsplit("/", 1)[-1]
    _download(client, "get", key, path, progress.wanted(quiet=quiet))


@click.command()
@click.argument("key")
@quiet_option
@connected
def cat(client: Client, key: str, quiet: bool) -> None:
    """Write KEY's bytes to stdout (a table as an Arrow IPC stream)."""
    _to_stdout(client, "cat", key, quiet)


def _to_stdout(client: Client, command: str, key: str, quiet: bool) -> None:
    _download(client, command, key, sys.stdout.buffer, progress.wanted(quiet=quiet, bytes_to_stdout=True))
    with reporting(command, key):
        sys.stdout.buffer.flush()


def _download(client: Client, command: str, key: str, dest, show: bool) -> None:  # noqa: ANN001
    with reporting(command, key):
        total = client.stat(key).size if show else None
        with progress.bar(key, total, show) as advance:
            client.get(key, dest, progress=advance)


@click.command(name="ls")
@click.argument("prefix", required=False, default="")
@json_option
@connected
def ls(client: Client, prefix: str, as_json: bool) -> None:
    """List the keys under PREFIX (a namespace, a key or APP/*; default: all), one a line."""
    with reporting("ls", prefix or "*"):
        stats = client.list(prefix)
    if as_json:
        click.echo(json.dumps([stat.as_dict() for stat in stats], indent=2))
    else:
        for stat in stats:
            click.echo(stat.key)


@click.command()
@click.argument("key")
@json_option
@connected
def stat(client: Client, key: str, as_json: bool) -> None:
    """Show KEY's version, size, deltas, kind and when it was updated."""
    with reporting("stat", key):
        found = client.stat(key)
    click.echo(json.dumps(found.as_dict(), indent=2) if as_json else _stat_lines(found))


def _stat_lines(found: ObjectStat) -> str:
    fields = {"key": found.key, "version": found.version, "size": found.size, "deltas": found.deltas,
              "kind": found.kind, "updated": iso_time(found.updated)}
    if found.expires is not None:
        fields["expires"] = iso_time(found.expires)
    return "\n".join(f"{name:<8} {value}" for name, value in fields.items())


@click.command()
@click.argument("selectors", nargs=-1, required=True, metavar="KEY|NAMESPACE|APP/*...")
@connected
def rm(client: Client, selectors: tuple[str, ...]) -> None:
    """Delete objects: a key, a namespace and all in it, or every session of
    an app (APP/*; quote it from the shell). Deleting nothing is no error."""
    for selector in selectors:
        with reporting("rm", selector):
            client.delete(selector)


COMMANDS = (put, get, cat, ls, stat, rm)
