"""``vms serve`` and ``vms migrate``: run the server, or only bring its database up to date.

Part of the composition root (the CLI package; :func:`register` adds the commands). ``serve``
builds the application with :func:`vms.app.create_app` and runs it until SIGINT or SIGTERM.
"""

from __future__ import annotations

import argparse
from typing import Any

from vms.cli.common import emit, settings_of, with_config
from vms.config import Settings
from vms.logs import setup_logging


def register(sub: Any) -> None:
    """Add ``serve`` and ``migrate`` to the top-level subparsers."""
    p = with_config(sub.add_parser("serve", help="run the server"))
    p.add_argument("--host", help="listen address (overrides server.host)")
    p.add_argument("--port", type=int, help="listen port (overrides server.port)")
    p.set_defaults(func=cmd_serve)

    p = with_config(sub.add_parser("migrate", help="apply database migrations"))
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_migrate)


def cmd_serve(args: argparse.Namespace) -> int:
    settings = settings_of(args, **{"server.host": args.host, "server.port": args.port})
    setup_logging(settings.logging.level, settings.logging.format)
    from aiohttp import web

    from vms.app import create_app, freeze_startup_objects

    app = create_app(settings)
    app.on_startup.append(freeze_startup_objects)
    ssl_context = _ssl_context(settings)
    scheme = "https" if ssl_context else "http"
    web.run_app(app, host=settings.server.host, port=settings.server.port,
                ssl_context=ssl_context, shutdown_timeout=3, access_log=None,
                print=lambda _msg: print(f"VMS listening on {scheme}://{settings.server.host}:"
                                         f"{settings.server.port}/", flush=True))
    return 0


def _ssl_context(settings: Settings):  # type: ignore[no-untyped-def]
    if not (settings.server.tls_cert and settings.server.tls_key):
        return None
    import ssl

    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(settings.server.tls_cert, settings.server.tls_key)
    return context


def cmd_migrate(args: argparse.Namespace) -> int:
    settings = settings_of(args)
    setup_logging("WARNING")
    from vms.db.gateway import Gateway, redact_db_url

    settings.data_dir.mkdir(parents=True, exist_ok=True)
    gateway = Gateway(settings.database_url)
    try:
        applied = gateway.migrate()
    finally:
        gateway.close()
    emit(args, {"database": redact_db_url(settings.database_url), "applied": applied},
         lambda r: f"{r['database']}: " + (f"applied {', '.join(r['applied'])}"
                                            if r["applied"] else "up to date"))
    return 0
