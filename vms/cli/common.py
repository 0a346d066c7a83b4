"""What every ``vms`` command shares: settings from ``--config``, the database gateway, output as
text or ``--json``, passwords from the terminal or stdin, and the one error a person can fix.

Part of the composition root (the CLI package). It imports no other module of the package, so each
command module (:mod:`vms.cli.users`, :mod:`vms.cli.onboarding`, …) depends on it and on nothing
else of the CLI: the package has no import cycle.
"""

from __future__ import annotations

import argparse
import getpass
import json
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from vms.config import Settings, find_config, load_settings

if TYPE_CHECKING:
    from vms.db.gateway import Gateway


class CliError(Exception):
    """Printed by :func:`vms.cli.main` as ``vms: <message>`` with exit code 2."""


def with_config(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Give a (sub)command the ``--config FILE`` option."""
    p.add_argument("--config", metavar="FILE",
                   help="config file (default ./vms.toml, else $VMS_CONFIG)")
    return p


def settings_of(args: argparse.Namespace, **overrides: Any) -> Settings:
    """The settings ``--config`` (or ./vms.toml, or $VMS_CONFIG) names, with dotted-key
    ``overrides`` that are not None and ``--data-dir`` if the command has it."""
    path = find_config(getattr(args, "config", None))
    over = {k: v for k, v in overrides.items() if v is not None}
    if getattr(args, "data_dir", None):
        over["data_dir"] = args.data_dir
    return load_settings(path, overrides=over)


def open_gateway(settings: Settings, *, read_only: bool = False) -> Gateway:
    """The database, migrated; the caller closes it. ``read_only``: the command only reads, so a
    SQLite database that does not exist yet is an error naming where it was looked for — never an
    empty database made in a folder the command guessed."""
    from vms.db.gateway import Gateway

    if read_only and not settings.database.url:
        path = settings.data_dir / "vms.sqlite3"
        if not path.exists():
            where = (f"the configuration {settings.source}" if settings.source != "<defaults>"
                     else "the defaults (no --config, no ./vms.toml, no $VMS_CONFIG)")
            raise CliError(f"no database at {path} (data_dir from {where}): nothing to read. "
                           "Give the server's configuration with --config FILE (vms demo prints "
                           "its own); `vms migrate --config FILE` makes an empty database")
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    gateway = Gateway(settings.database_url)
    gateway.migrate()
    return gateway


def emit(args: argparse.Namespace, rows: list[dict[str, Any]] | dict[str, Any],
         text: Callable[[Any], str]) -> None:
    """Print ``rows`` as JSON with ``--json`` (one object a line for a list), else ``text(rows)``."""
    if getattr(args, "json", False):
        if isinstance(rows, list):
            for row in rows:
                print(json.dumps(row, ensure_ascii=False))
        else:
            print(json.dumps(rows, ensure_ascii=False))
    else:
        print(text(rows))


def read_password(args: argparse.Namespace, *, confirm: bool = True) -> str:
    """A user's new password: ``--password``, one line of stdin with ``--password-stdin``, or
    asked twice on a terminal; never a default."""
    if getattr(args, "password", None):
        return str(args.password)
    if getattr(args, "password_stdin", False):
        return stdin_password()
    if not sys.stdin.isatty():
        raise CliError("give --password or --password-stdin (there is no default password)")
    first = getpass.getpass("Password: ")
    if confirm and getpass.getpass("Again: ") != first:
        raise CliError("the two passwords differ")
    return first


def stdin_password() -> str:
    """One line of standard input, without its line end; an empty one is an error."""
    line = sys.stdin.readline().rstrip("\r\n")
    if not line:
        raise CliError("no password on standard input")
    return line
