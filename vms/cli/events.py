"""``vms events [--camera ID] [--site ID] [--type T] [--plate P] [--from T] [--to T] [--limit N]
[--json]``: search the event store, newest first.

Part of the composition root. The same search as ``GET /api/v1/events`` (:func:`vms.events.search`)
for every site: the plate is found anywhere in the plate text, whatever its case, spaces, dashes or
look-alike Cyrillic letters (``--plate "123 авс"`` finds ``123ABC02``). ``--json``: one JSON
object per event a line. A camera or site that does not exist, an unknown type or a bad instant is
an error naming it (exit 2).
"""

from __future__ import annotations

import argparse
from typing import Any

from vms.cli.common import CliError, emit, open_gateway, settings_of, with_config


def register(sub: Any) -> None:
    """Add the ``events`` command."""
    from vms.events import EVENT_TYPES, PAGE_MAX

    p = with_config(sub.add_parser("events", help="search camera events (newest first)"))
    p.add_argument("--camera", type=int, metavar="ID", help="only this camera")
    p.add_argument("--site", type=int, metavar="ID", help="only this site")
    p.add_argument("--type", choices=EVENT_TYPES, help="only this type")
    p.add_argument("--plate", metavar="TEXT", help="plate text, found anywhere in the plate")
    p.add_argument("--from", dest="from_", metavar="INSTANT",
                   help="started at or after (ISO-8601 with offset, or UTC µs)")
    p.add_argument("--to", metavar="INSTANT", help="started before")
    p.add_argument("--limit", type=int, default=100, metavar="N",
                   help=f"at most N events, 1–{PAGE_MAX} (default 100)")
    p.add_argument("--json", action="store_true", help="one JSON object per event a line")
    p.set_defaults(func=cmd_events)


def _instant(name: str, text: str | None) -> int | None:
    from vms.clock import parse_instant

    if text is None:
        return None
    try:
        return parse_instant(text)
    except ValueError as exc:
        raise CliError(f"{name}: {exc}") from None


def _line(e: dict[str, Any]) -> str:
    from vms.clock import format_iso

    end = "ongoing" if e["end_us"] is None else (
        "" if e["end_us"] == e["start_us"] else f" → {format_iso(e['end_us'])}")
    detail = e["data"].get("plate", "") if e["type"] == "plate" else e["topic"]
    return (f"{e['id']}\t{format_iso(e['start_us'])}{end}\t{e['type']}\t"
            f"{e['camera_name']} ({e['site_name']})\t{detail}").rstrip()


def cmd_events(args: argparse.Namespace) -> int:
    from vms import catalog
    from vms.auth import ROLE_RIGHTS, Principal
    from vms.events import PAGE_MAX, EventQuery, search

    if not 1 <= args.limit <= PAGE_MAX:
        raise CliError(f"--limit: must be 1–{PAGE_MAX}, got {args.limit}")
    q = EventQuery(site_id=args.site, camera_id=args.camera, type=args.type,
                   from_us=_instant("--from", args.from_), to_us=_instant("--to", args.to),
                   plate=args.plate or "", limit=args.limit)
    everyone = Principal(user_id=0, username="cli", role="admin", site_ids=None,
                         rights=ROLE_RIGHTS["admin"])
    gateway = open_gateway(settings_of(args), read_only=True)
    try:
        try:
            if args.camera is not None:
                gateway.read_sync(catalog.get_camera, everyone, args.camera)
            if args.site is not None:
                gateway.read_sync(catalog.get_site, everyone, args.site)
        except catalog.NotFound as exc:
            raise CliError(str(exc)) from None
        result = gateway.read_sync(search, everyone, q)
    finally:
        gateway.close()
    events = result["events"]
    if args.json:
        emit(args, events, str)
    else:
        print("\n".join(_line(e) for e in events) if events else "no events")
    return 0
