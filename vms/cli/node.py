"""``vms node list|drain|undrain``: the nodes of a cluster (vms/cluster.py; PostgreSQL only).

Part of the composition root (the CLI package; :func:`register` adds the command). ``drain`` marks
a node so it hands every camera over to the others (one lease tick later; the seam in each camera's
footage is a gap with reason ``handover``) and takes none; ``undrain`` lets it take its share again.
"""

from __future__ import annotations

import argparse
from typing import Any

from vms.cli.common import CliError, emit, open_gateway, settings_of, with_config
from vms.logs import setup_logging


def register(sub: Any) -> None:
    """Add ``node`` to the top-level subparsers."""
    p = sub.add_parser("node", help="cluster nodes: list, drain, undrain")
    nsub = p.add_subparsers(dest="node_cmd", required=True, metavar="ACTION")
    a = with_config(nsub.add_parser("list", help="list the nodes, their health and cameras"))
    a.add_argument("--json", action="store_true", help="one JSON object per node")
    for name, text in (("drain", "hand every camera of NAME over to the other nodes"),
                       ("undrain", "let NAME record its share of the cameras again")):
        a = with_config(nsub.add_parser(name, help=text))
        a.add_argument("name", help="the node's name ([cluster] node_name)")
        a.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_node)


def _line(r: dict[str, Any]) -> str:
    state = ("alive" if r["alive"] else "DOWN") + (", draining" if r["draining"] else "")
    cap = f"/{r['max_cameras']}" if r["max_cameras"] else ""
    cams = ",".join(str(c) for c in r["camera_ids"]) or "-"
    return f"{r['name']:<20} {state:<16} {len(r['camera_ids'])}{cap:<5} {r['advertise_url']:<28} {cams}"


def cmd_node(args: argparse.Namespace) -> int:
    settings = settings_of(args)
    setup_logging("WARNING")
    from vms.cluster import node_list, set_draining

    if not settings.clustered:
        raise CliError("this server uses SQLite: it is the only node (a cluster needs a "
                       "PostgreSQL database.url)")
    gateway = open_gateway(settings)
    try:
        if args.node_cmd == "list":
            rows = gateway.read_sync(node_list, settings.cluster.lease_seconds)
            emit(args, rows, lambda rs: "\n".join(_line(r) for r in rs) or "no nodes yet")
            return 0
        draining = args.node_cmd == "drain"
        if not gateway.write_sync(set_draining, args.name, draining):
            raise CliError(f"no node named {args.name!r} (see `vms node list`)")
        emit(args, {"name": args.name, "draining": draining},
             lambda r: f"node {r['name']} {'draining' if r['draining'] else 'takes cameras again'}")
    finally:
        gateway.close()
    return 0
