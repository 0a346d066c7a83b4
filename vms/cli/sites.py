"""``vms site add|list``: the sites (a school, a courtyard complex, a junction) cameras belong to.

Part of the composition root (the CLI package; :func:`register` adds the command).
"""

from __future__ import annotations

import argparse
from typing import Any

from vms.cli.common import CliError, emit, open_gateway, settings_of, with_config
from vms.logs import setup_logging


def register(sub: Any) -> None:
    """Add ``site`` to the top-level subparsers."""
    p = sub.add_parser("site", help="sites: add, list")
    ssub = p.add_subparsers(dest="site_cmd", required=True, metavar="ACTION")
    a = with_config(ssub.add_parser("add", help="create a site"))
    a.add_argument("name")
    a.add_argument("--timezone", default="UTC", help="IANA zone, e.g. Asia/Almaty")
    a.add_argument("--json", action="store_true")
    a = with_config(ssub.add_parser("list", help="list sites"))
    a.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_site)


def cmd_site(args: argparse.Namespace) -> int:
    settings = settings_of(args)
    setup_logging("WARNING")
    from vms.auth import AccountError, Accounts
    from vms.catalog import site_dict
    from vms.clock import SystemClock
    from vms.db import models as m

    accounts = Accounts(SystemClock())
    gateway = open_gateway(settings, read_only=args.site_cmd == "list")
    try:
        if args.site_cmd == "add":
            try:
                site = gateway.write_sync(accounts.create_site, args.name, args.timezone)
            except (AccountError, ValueError) as exc:
                raise CliError(str(exc)) from None
            emit(args, site_dict(site), lambda r: f"site {r['name']} ({r['timezone']}) created")
        else:
            rows = gateway.read_sync(lambda: [site_dict(s) for s in
                                              m.Site.select().order_by(m.Site.name)])
            emit(args, rows, lambda rs: "\n".join(
                f"{r['id']:>4} {r['name']:<32} {r['timezone']}" for r in rs) or "no sites")
    finally:
        gateway.close()
    return 0
