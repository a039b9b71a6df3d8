"""`flame-cache`: the command line (SPEC 6, 12).

Alone, or with only the server's options (`--config`, `--log-level`), it
serves, as it always has: tests/server.py and the Dockerfile start it so.
`serve` says the same thing out loud. The client commands (put, get, cat,
ls, stat, rm) live in `flame_cache/client/cli.py`; the server's modules are
imported only to serve, so a client command starts quickly.

Exit status: 0 done; 1 failed (a client command's one line on stderr, or a
server that could not start); 2 a usage error or a bad configuration; 3 a
server whose requests were cut off at stop (app/shutdown.py).
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from pathlib import Path

import click

from flame_cache import __version__
from flame_cache.app.logs import LEVELS, configure_logging
from flame_cache.client.cli import COMMANDS, Failed


def server_options(command: Callable) -> Callable:
    command = click.option(
        "--config",
        type=click.Path(dir_okay=False, path_type=Path),
        help="flame-cluster.yaml to read (default: ~/.flame/flame-cluster.yaml if it exists)",
    )(command)
    return click.option(
        "--log-level",
        type=click.Choice(LEVELS, case_sensitive=False),
        help="beats cache.log.level (default: info); the format is cache.log.format's",
    )(command)


@click.group(
    invoke_without_command=True,
    context_settings={"help_option_names": ["-h", "--help"]},
    epilog="Without a command, or with only --config and --log-level, it serves.",
)
@server_options
@click.version_option(__version__, prog_name="flame-cache", message="%(prog)s %(version)s")
@click.pass_context
def cli(ctx: click.Context, config: Path | None, log_level: str | None) -> int | None:
    """Flame's object cache: Arrow Flight and HTTP over one store of Arrow IPC files."""
    if ctx.invoked_subcommand is None:
        return serve_with(config, log_level)
    if ctx.invoked_subcommand == "serve":
        ctx.obj = (config, log_level)
    elif config is not None or log_level is not None:
        raise click.UsageError(f"--config and --log-level are the server's; 'flame-cache {ctx.invoked_subcommand}' takes neither", ctx)
    return None


@cli.command()
@server_options
@click.pass_context
def serve(ctx: click.Context, config: Path | None, log_level: str | None) -> int:
    """Serve Flight and HTTP (what `flame-cache` alone does)."""
    outer_config, outer_level = ctx.obj or (None, None)
    return serve_with(config or outer_config, log_level or outer_level)


for _command in COMMANDS:
    cli.add_command(_command)


def serve_with(config_path: Path | None, log_level: str | None) -> int:
    """Run the server until it is stopped: 0, or 1 if it could not start,
    2 for a bad configuration (3 is raised from app/shutdown.py)."""
    from flame_cache.app.config import ConfigError, load_config
    from flame_cache.app.lifecycle import StartupError, run
    configure_logging(log_level or "info")  # until the configuration names its level and format
    try:
        config = load_config(config_path)
    except ConfigError as exc:
        print(f"flame-cache: {exc}", file=sys.stderr)
        return 2
    configure_logging(log_level or config.log.level, config.log.format)
    try:
        run(config)
    except StartupError as exc:
        logging.getLogger("flame_cache").error("%s", exc)
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    """The console script and `python -m flame_cache`: the exit status."""
    try:
        status = cli.main(args=argv, prog_name="flame-cache", standalone_mode=False)
    except click.ClickException as exc:  # usage errors: 2
        exc.show()
        return exc.exit_code
    except click.Abort:  # Ctrl-C or end of input at a prompt
        print("flame-cache: interrupted", file=sys.stderr)
        return 1
    except Failed as exc:
        print(exc, file=sys.stderr)
        return 1
    return status if isinstance(status, int) else 0


if __name__ == "__main__":
    sys.exit(main())
