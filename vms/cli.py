"""The ``vms`` command line: serve, migrate, demo, sim, discover, camera, user, site, check.

Part of the composition root (it may import everything; nothing imports it). Every command has
``--help``; commands that report data take ``--json`` (one JSON document, or one object a line for
lists). Errors a person can fix are printed as one line on stderr with a non-zero exit code.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import logging
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from vms.config import ConfigError, Settings, find_config, load_settings
from vms.logs import setup_logging

log = logging.getLogger("vms.cli")


class CliError(Exception):
    """Printed as ``vms: <message>`` with exit code 2."""


def _settings(args: argparse.Namespace, **overrides: Any) -> Settings:
    path = find_config(getattr(args, "config", None))
    over = {k: v for k, v in overrides.items() if v is not None}
    if getattr(args, "data_dir", None):
        over["data_dir"] = args.data_dir
    return load_settings(path, overrides=over)


def _gateway(settings: Settings):  # type: ignore[no-untyped-def]
    from vms.db.gateway import Gateway

    settings.data_dir.mkdir(parents=True, exist_ok=True)
    gateway = Gateway(settings.database_url)
    gateway.migrate()
    return gateway


def _emit(args: argparse.Namespace, rows: list[dict[str, Any]] | dict[str, Any],
          text: Callable[[Any], str]) -> None:
    if getattr(args, "json", False):
        if isinstance(rows, list):
            for row in rows:
                print(json.dumps(row, ensure_ascii=False))
        else:
            print(json.dumps(rows, ensure_ascii=False))
    else:
        print(text(rows))


def _read_password(args: argparse.Namespace, *, confirm: bool = True) -> str:
    if getattr(args, "password", None):
        return str(args.password)
    if getattr(args, "password_stdin", False):
        line = sys.stdin.readline().rstrip("\r\n")
        if not line:
            raise CliError("no password on standard input")
        return line
    if not sys.stdin.isatty():
        raise CliError("give --password or --password-stdin (there is no default password)")
    first = getpass.getpass("Password: ")
    if confirm and getpass.getpass("Again: ") != first:
        raise CliError("the two passwords differ")
    return first


# --- serve -----------------------------------------------------------------------------------

def cmd_serve(args: argparse.Namespace) -> int:
    settings = _settings(args, **{"server.host": args.host, "server.port": args.port})
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


# --- migrate ----------------------------------------------------------------------------------

def cmd_migrate(args: argparse.Namespace) -> int:
    settings = _settings(args)
    setup_logging("WARNING")
    from vms.db.gateway import Gateway, redact_db_url

    settings.data_dir.mkdir(parents=True, exist_ok=True)
    gateway = Gateway(settings.database_url)
    try:
        applied = gateway.migrate()
    finally:
        gateway.close()
    _emit(args, {"database": redact_db_url(settings.database_url), "applied": applied},
          lambda r: f"{r['database']}: " + (f"applied {', '.join(r['applied'])}"
                                             if r["applied"] else "up to date"))
    return 0


# --- users and sites --------------------------------------------------------------------------

def cmd_user(args: argparse.Namespace) -> int:
    settings = _settings(args)
    setup_logging("WARNING")
    from vms import audit
    from vms.auth import AccountError, Accounts
    from vms.clock import SystemClock
    from vms.passwords import hash_new_password

    clock = SystemClock()
    accounts = Accounts(clock)
    gateway = _gateway(settings)
    actor = getpass.getuser()
    try:
        if args.user_cmd == "add":
            role = "admin" if args.admin else args.role
            if not role:
                raise CliError("give --role admin|installer|operator|viewer (or --admin)")
            # hashed before the write transaction: argon2 must not hold the database's write lock
            password = hash_new_password(_read_password(args))

            def add() -> dict[str, Any]:
                user = accounts.create_user(args.username, password, role, args.site or [])
                audit.record(clock, "user_create", username=f"cli:{actor}", target=args.username,
                             detail={"role": role, "sites": args.site or []})
                return {"id": user.id, "username": user.username, "role": role,
                        "sites": args.site or []}

            row = gateway.write_sync(add)
            _emit(args, row, lambda r: f"user {r['username']} ({r['role']}) created")
        elif args.user_cmd == "list":
            rows = gateway.read_sync(accounts.list_users)
            _emit(args, rows, lambda rs: "\n".join(
                f"{r['username']:<24} {r['role']:<10} {', '.join(r['sites']) or '-'}"
                for r in rs) or "no users")
        elif args.user_cmd in ("grant", "revoke"):
            fn = accounts.grant if args.user_cmd == "grant" else accounts.revoke

            def change() -> None:
                fn(args.username, args.site)
                audit.record(clock, args.user_cmd, username=f"cli:{actor}",
                             target=f"{args.username} -> {args.site}")

            gateway.write_sync(change)
            print(f"{args.user_cmd}: {args.username} {args.site}")
        elif args.user_cmd == "passwd":
            password = hash_new_password(_read_password(args))

            def passwd() -> int:
                revoked = accounts.set_password(args.username, password)
                audit.record(clock, "password_change", username=f"cli:{actor}",
                             target=args.username, detail={"tokens_revoked": revoked})
                return revoked

            revoked = gateway.write_sync(passwd)
            print(f"password of {args.username} changed; their sessions ended and "
                  f"{revoked} API token(s) were revoked")
        elif args.user_cmd == "token":
            _user_token(args, gateway, accounts, clock, actor)
    except AccountError as exc:
        raise CliError(str(exc)) from None
    finally:
        gateway.close()
    return 0


def _user_token(args: argparse.Namespace, gateway: Any, accounts: Any, clock: Any,
                actor: str) -> None:
    """``vms user token add|list|revoke``."""
    from vms import audit
    from vms.clock import format_iso

    if args.tok_cmd == "add":
        def add() -> dict[str, Any]:
            token = accounts.create_api_token(args.username, args.name, scope=args.scope,
                                              expires_days=args.expires_days)
            row = accounts.list_api_tokens(args.username)[0]
            audit.record(clock, "token_create", username=f"cli:{actor}",
                         target=f"{args.username}: {args.name}",
                         detail={"token_id": row["id"], "scope": args.scope,
                                 "expires_days": args.expires_days})
            return {**row, "token": token}

        _emit(args, gateway.write_sync(add), lambda r: r["token"])
    elif args.tok_cmd == "list":
        rows = gateway.read_sync(accounts.list_api_tokens, args.username)
        if not args.all:
            rows = [r for r in rows if r["state"] == "active"]
        _emit(args, rows, lambda rs: "\n".join(
            f"{r['id']:>5} {r['username']:<20} {r['name']:<24} {r['scope']:<8} {r['state']:<8} "
            f"expires {format_iso(r['expires_us'])[:19]}" for r in rs) or "no API tokens")
    elif args.tok_cmd == "revoke":
        def revoke() -> dict[str, Any]:
            row = accounts.revoke_api_token(args.id)
            audit.record(clock, "token_revoke", username=f"cli:{actor}",
                         target=f"{row['username']}: {row['name']}", detail={"token_id": args.id})
            return dict(row)

        _emit(args, gateway.write_sync(revoke),
              lambda r: f"API token {r['id']} ({r['username']}: {r['name']}) revoked")


def cmd_site(args: argparse.Namespace) -> int:
    settings = _settings(args)
    setup_logging("WARNING")
    from vms.auth import AccountError, Accounts
    from vms.catalog import site_dict
    from vms.clock import SystemClock
    from vms.db import models as m

    accounts = Accounts(SystemClock())
    gateway = _gateway(settings)
    try:
        if args.site_cmd == "add":
            try:
                site = gateway.write_sync(accounts.create_site, args.name, args.timezone)
            except (AccountError, ValueError) as exc:
                raise CliError(str(exc)) from None
            _emit(args, site_dict(site), lambda r: f"site {r['name']} ({r['timezone']}) created")
        else:
            rows = gateway.read_sync(lambda: [site_dict(s) for s in
                                              m.Site.select().order_by(m.Site.name)])
            _emit(args, rows, lambda rs: "\n".join(
                f"{r['id']:>4} {r['name']:<32} {r['timezone']}" for r in rs) or "no sites")
    finally:
        gateway.close()
    return 0


# --- cameras ----------------------------------------------------------------------------------

def cmd_camera(args: argparse.Namespace) -> int:
    settings = _settings(args)
    setup_logging("WARNING")
    from vms.catalog import camera_dict
    from vms.db import models as m

    gateway = _gateway(settings)
    try:
        if args.camera_cmd == "list":
            rows = gateway.read_sync(lambda: [
                camera_dict(c, c.site) for c in
                m.Camera.select(m.Camera, m.Site).join(m.Site).order_by(m.Camera.id)])
            _emit(args, rows, lambda rs: "\n".join(
                f"{r['id']:>4} {r['name']:<24} {r['site']['name']:<20} {r['status']}"
                for r in rs) or "no cameras")
        elif args.camera_cmd == "remove":
            _camera_remove(args, settings, gateway)
    finally:
        gateway.close()
    return 0


def _camera_remove(args: argparse.Namespace, settings: Settings, gateway: Any) -> None:
    """Archive a camera (recordings kept); with --delete-recordings, delete them and it too."""
    from onvif_bridge.adopt import Onboarding
    from onvif_bridge.onboarding_common import OnboardingError
    from recorder.lock import is_locked, lock_path
    from recorder.purge import PurgeRefused, delete_camera_recordings
    from vms.clock import SystemClock
    from vms.secrets import SecretBox

    if args.delete_recordings and is_locked(settings.data_dir):
        raise CliError(f"a server is running on this data directory ({lock_path(settings.data_dir)}"
                       f" is locked) and may be recording camera {args.id}: delete its recordings "
                       f"through it (DELETE /api/v1/cameras/{args.id}?delete_recordings=true), or "
                       "stop it first")
    if args.delete_recordings:
        from recorder.purge import held_footage_problem

        problem = gateway.read_sync(held_footage_problem, args.id)
        if problem is not None:
            raise CliError(f"{problem}; nothing was changed")
    actor = f"cli:{getpass.getuser()}"
    service = Onboarding(gateway, SecretBox.from_key_file(settings.key_file), SystemClock())
    try:
        result = asyncio.run(service.remove(None, args.id, actor=actor))
    except OnboardingError as exc:
        raise CliError(str(exc)) from None
    if args.delete_recordings:
        try:
            purged = delete_camera_recordings(gateway, settings, SystemClock(), args.id,
                                              username=actor)
        except PurgeRefused as exc:
            raise CliError(f"{exc} (the camera is archived; its recordings are kept)") from None
        result.update(purged.as_dict())
    _emit(args, result, lambda r: (
        f"camera {r['camera_id']} ({r['name']}) and its recordings deleted: "
        f"{r['segments_deleted']} segments, {r['bytes_deleted']} bytes"
        if r.get("recordings_deleted") else
        f"camera {r['camera_id']} ({r['name']}) removed: archived, no longer recorded; its "
        "recordings are kept, playable and exportable, until retention (--delete-recordings "
        "deletes them)"))


# --- sim and demo -----------------------------------------------------------------------------

def cmd_sim(args: argparse.Namespace) -> int:
    setup_logging("WARNING" if args.json else "INFO")
    from camsim.cli import run_sim

    try:
        asyncio.run(run_sim(cameras=args.cameras, host=args.host, json_out=args.json))
    except KeyboardInterrupt:
        pass
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from vms.demo import run_demo

    return run_demo(cameras=args.cameras, port=args.port, data_dir=Path(args.data_dir),
                    host=args.host)


# --- parser -----------------------------------------------------------------------------------

def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="vms", description="Video management server")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def with_config(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
        p.add_argument("--config", metavar="FILE",
                       help="config file (default ./vms.toml, else $VMS_CONFIG)")
        return p

    p = with_config(sub.add_parser("serve", help="run the server"))
    p.add_argument("--host", help="listen address (overrides server.host)")
    p.add_argument("--port", type=int, help="listen port (overrides server.port)")
    p.set_defaults(func=cmd_serve)

    p = with_config(sub.add_parser("migrate", help="apply database migrations"))
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_migrate)

    p = sub.add_parser("demo", help="virtual cameras + server on SQLite, ready in a browser")
    p.add_argument("--cameras", type=int, default=4)
    p.add_argument("--port", type=int, default=8080)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--data-dir", default="./vms-demo-data")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("sim", help="run virtual ONVIF cameras (camsim)")
    p.add_argument("--cameras", type=int, default=1)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--json", action="store_true", help="one JSON line per camera")
    p.set_defaults(func=cmd_sim)

    from vms import cli_export, cli_onboarding, cli_recording, cli_retention, cli_verify

    cli_onboarding.register(sub)
    cli_retention.add_parsers(sub)
    cli_recording.register(sub)
    cli_export.register(sub)
    cli_verify.register(sub, with_config)

    from vms.auth import DEFAULT_SCOPE, DEFAULT_TOKEN_DAYS, MAX_TOKEN_DAYS, TOKEN_SCOPES

    p = sub.add_parser("user", help="users: add, list, grant, revoke, passwd, token")
    usub = p.add_subparsers(dest="user_cmd", required=True, metavar="ACTION")
    a = with_config(usub.add_parser("add", help="create a user"))
    a.add_argument("username")
    a.add_argument("--role", choices=("admin", "installer", "operator", "viewer"))
    a.add_argument("--admin", action="store_true", help="same as --role admin")
    a.add_argument("--site", action="append", metavar="SITE", help="grant a site (repeatable)")
    a.add_argument("--password", help="the password (visible in the process list: prefer stdin)")
    a.add_argument("--password-stdin", action="store_true", help="read the password from stdin")
    a.add_argument("--json", action="store_true")
    a = with_config(usub.add_parser("list", help="list users"))
    a.add_argument("--json", action="store_true")
    for action in ("grant", "revoke"):
        a = with_config(usub.add_parser(action, help=f"{action} a site"))
        a.add_argument("username")
        a.add_argument("site")
    a = with_config(usub.add_parser(
        "passwd", help="set a password (ends their sessions, revokes their API tokens)"))
    a.add_argument("username")
    a.add_argument("--password")
    a.add_argument("--password-stdin", action="store_true")
    t = usub.add_parser("token", help="API tokens: add, list, revoke")
    tsub = t.add_subparsers(dest="tok_cmd", required=True, metavar="ACTION")
    a = with_config(tsub.add_parser("add", help="create an API token (printed once)"))
    a.add_argument("username")
    a.add_argument("name", help="what the token is for, e.g. 'nightly export'")
    a.add_argument("--scope", choices=TOKEN_SCOPES, default=DEFAULT_SCOPE,
                   help="read: GET only; control: also act within the user's rights; admin: also "
                        "passwords, users, sites and tokens (default %(default)s)")
    a.add_argument("--expires-days", type=int, default=DEFAULT_TOKEN_DAYS,
                   help=f"lifetime in days, 1–{MAX_TOKEN_DAYS} (default %(default)s)")
    a.add_argument("--json", action="store_true")
    a = with_config(tsub.add_parser("list", help="list API tokens (active ones unless --all)"))
    a.add_argument("username", nargs="?", help="only this user's")
    a.add_argument("--all", action="store_true", help="also expired and revoked tokens")
    a.add_argument("--json", action="store_true")
    a = with_config(tsub.add_parser("revoke", help="revoke an API token by its id"))
    a.add_argument("id", type=int)
    a.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_user)

    p = sub.add_parser("site", help="sites: add, list")
    ssub = p.add_subparsers(dest="site_cmd", required=True, metavar="ACTION")
    a = with_config(ssub.add_parser("add", help="create a site"))
    a.add_argument("name")
    a.add_argument("--timezone", default="UTC", help="IANA zone, e.g. Asia/Almaty")
    a.add_argument("--json", action="store_true")
    a = with_config(ssub.add_parser("list", help="list sites"))
    a.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_site)

    p = sub.add_parser("camera", help="cameras: list, remove")
    csub = p.add_subparsers(dest="camera_cmd", required=True, metavar="ACTION")
    a = with_config(csub.add_parser("list", help="list cameras"))
    a.add_argument("--json", action="store_true")
    a = with_config(csub.add_parser(
        "remove", help="remove a camera: archived, its recordings kept until retention"))
    a.add_argument("id", type=int)
    a.add_argument("--delete-recordings", action="store_true",
                   help="also delete every recording of the camera, and the camera (audited; "
                        "refused while evidence holds protect them or a server is running)")
    a.add_argument("--json", action="store_true")
    cli_onboarding.register_camera(csub, with_config)
    p.set_defaults(func=cmd_camera)
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


if __name__ == "__main__":
    sys.exit(main())
