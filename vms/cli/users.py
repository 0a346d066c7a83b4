"""``vms user``: accounts from the command line — add, list, grant, revoke, passwd, and their API
tokens (``vms user token add|list|revoke``), audited as ``cli:<login>``.

Part of the composition root (the CLI package; :func:`register` adds the command). Passwords are
hashed before the write transaction: argon2 never holds the database's write lock.
"""

from __future__ import annotations

import argparse
import getpass
from typing import Any

from vms.cli.common import CliError, emit, open_gateway, read_password, settings_of, with_config
from vms.logs import setup_logging


def register(sub: Any) -> None:
    """Add ``user`` (and its ``token`` actions) to the top-level subparsers."""
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


def cmd_user(args: argparse.Namespace) -> int:
    settings = settings_of(args)
    setup_logging("WARNING")
    from vms import audit
    from vms.auth import AccountError, Accounts
    from vms.clock import SystemClock
    from vms.passwords import hash_new_password

    clock = SystemClock()
    accounts = Accounts(clock)
    gateway = open_gateway(settings, read_only=args.user_cmd == "list" or (
        args.user_cmd == "token" and getattr(args, "tok_cmd", "") == "list"))
    actor = getpass.getuser()
    try:
        if args.user_cmd == "add":
            role = "admin" if args.admin else args.role
            if not role:
                raise CliError("give --role admin|installer|operator|viewer (or --admin)")
            # hashed before the write transaction: argon2 must not hold the database's write lock
            password = hash_new_password(read_password(args))

            def add() -> dict[str, Any]:
                user = accounts.create_user(args.username, password, role, args.site or [])
                audit.record(clock, "user_create", username=f"cli:{actor}", target=args.username,
                             detail={"role": role, "sites": args.site or []})
                return {"id": user.id, "username": user.username, "role": role,
                        "sites": args.site or []}

            row = gateway.write_sync(add)
            emit(args, row, lambda r: f"user {r['username']} ({r['role']}) created")
        elif args.user_cmd == "list":
            rows = gateway.read_sync(accounts.list_users)
            emit(args, rows, lambda rs: "\n".join(
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
            password = hash_new_password(read_password(args))

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

        emit(args, gateway.write_sync(add), lambda r: r["token"])
    elif args.tok_cmd == "list":
        rows = gateway.read_sync(accounts.list_api_tokens, args.username)
        if not args.all:
            rows = [r for r in rows if r["state"] == "active"]
        emit(args, rows, lambda rs: "\n".join(
            f"{r['id']:>5} {r['username']:<20} {r['name']:<24} {r['scope']:<8} {r['state']:<8} "
            f"expires {format_iso(r['expires_us'])[:19]}" for r in rs) or "no API tokens")
    elif args.tok_cmd == "revoke":
        def revoke() -> dict[str, Any]:
            row = accounts.revoke_api_token(args.id)
            audit.record(clock, "token_revoke", username=f"cli:{actor}",
                         target=f"{row['username']}: {row['name']}", detail={"token_id": args.id})
            return dict(row)

        emit(args, gateway.write_sync(revoke),
              lambda r: f"API token {r['id']} ({r['username']}: {r['name']}) revoked")
