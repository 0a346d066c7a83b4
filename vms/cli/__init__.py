"""The ``vms`` command line: its parser and :func:`main` (the console script and ``python -m vms``).

Part of the composition root (it may import everything; nothing but the root imports it). One
module per command group adds its commands with ``register(sub)``: :mod:`~vms.cli.server` (serve,
migrate), :mod:`~vms.cli.sim` (demo, sim), :mod:`~vms.cli.onboarding` (discover, camera),
:mod:`~vms.cli.recording` (check, recording), :mod:`~vms.cli.export`, :mod:`~vms.cli.verify`
(verify, signing-key), :mod:`~vms.cli.users` (user, user token), :mod:`~vms.cli.sites`,
:mod:`~vms.cli.storage`, :mod:`~vms.cli.retention`, :mod:`~vms.cli.events`,
:mod:`~vms.cli.ptz`, :mod:`~vms.cli.door`, :mod:`~vms.cli.node`,
:mod:`~vms.cli.diagnostics`; what they share is in
:mod:`~vms.cli.common`, which imports none of them. ``vms --help`` lists every command with its
one-line help (a test checks it against the parser). Every command has ``--help``;
commands that report data take ``--json`` (one JSON document, or one object a line for lists).
Errors a person can fix are printed as one line on stderr with a non-zero exit code.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from vms.cli import (
    diagnostics,
    door,
    events,
    export,
    node,
    onboarding,
    ptz,
    recording,
    retention,
    server,
    sim,
    sites,
    storage,
    users,
    verify,
)
from vms.cli.common import CliError
from vms.config import ConfigError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="vms", description="Video management server: ONVIF cameras, recording, web UI.",
        epilog="Run `vms COMMAND --help` for a command's options. Commands that touch data take "
               "--config FILE (default ./vms.toml, else $VMS_CONFIG).")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    server.register(sub)
    sim.register(sub)
    onboarding.register(sub)
    onboarding.register_camera(sub)
    recording.register(sub)
    export.register(sub)
    verify.register(sub)
    users.register(sub)
    sites.register(sub)
    storage.register(sub)
    retention.register(sub)
    events.register(sub)
    ptz.register(sub)
    door.register(sub)
    diagnostics.register(sub)
    node.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from vms.fsmode import set_private_umask

    set_private_umask()  # the database, keys, recordings and exports are ours alone
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except (ConfigError, CliError) as exc:
        print(f"vms: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        from vms.db.gateway import DatabaseError

        if isinstance(exc, DatabaseError):
            print(f"vms: {exc}", file=sys.stderr)
            return 2
        raise
