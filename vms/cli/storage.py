"""``vms storage [status] [--json]`` and ``vms storage init [--json]``.

``vms storage [status] [--json]``: what each storage volume holds and each camera keeps.

Part of the composition root. The same figures as ``GET /api/v1/storage`` and the storage page
(:class:`vms.storage.StorageService`), for every site: per volume the bytes of the indexed
recordings, the file system's free and total bytes, the cap, the write rate, the bytes evidence
holds keep, the bytes retention freed in the last 24 hours; per camera its bytes, oldest footage
kept and days retained. The next scheduled purge is known only to a running server (the API and
the page show it); here it is null.

``init``: mark the configured storage volumes for this database.

Part of the composition root. Writes each volume's marker file (``.vms-volume.json``, see
:mod:`recorder.volumes`) naming this database (``Installation.uuid``), the volume and when. A
volume already marked for this database is left as it is (the command is idempotent). Refused, with
a line naming the volume and the reason: a root folder that does not exist (an unmounted disk — the
command never creates a volume's folder; mount the disk or create the folder first), a marker of
another database or volume, an unreadable marker. The default volume used when none is configured
(``<data_dir>/recordings``) is created and marked too. Exit code 0 when every volume is marked,
1 when some were refused (the others are still marked).
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from vms.cli.common import open_gateway, settings_of
from vms.clock import format_iso


def register(sub: Any) -> None:
    """Add the ``storage`` command group (``status``, the default, and ``init``)."""
    p = sub.add_parser("storage", help="storage volumes: status (the default), init")
    p.add_argument("--config", metavar="FILE",
                   help="config file (default ./vms.toml, else $VMS_CONFIG)")
    p.add_argument("--json", action="store_true", help="one JSON document")
    p.set_defaults(func=cmd_storage_status)
    ssub = p.add_subparsers(dest="storage_cmd", metavar="ACTION")
    s = ssub.add_parser("status", help="volumes (used, free, cap, write rate, holds) and the "
                                       "footage each camera keeps (the default action)")
    s.add_argument("--config", metavar="FILE", default=argparse.SUPPRESS,
                   help="config file (default ./vms.toml, else $VMS_CONFIG)")
    s.add_argument("--json", action="store_true", default=argparse.SUPPRESS,
                   help="one JSON document")
    s.set_defaults(func=cmd_storage_status)
    a = ssub.add_parser(
        "init", help="write each configured volume's marker file (never creates a volume folder)")
    a.add_argument("--config", metavar="FILE", default=argparse.SUPPRESS,
                   help="config file (default ./vms.toml, else $VMS_CONFIG)")
    a.add_argument("--json", action="store_true", default=argparse.SUPPRESS,
                   help="one JSON document")
    a.set_defaults(func=cmd_storage_init)


def cmd_storage_init(args: argparse.Namespace) -> int:
    from recorder.volumes import (
        VolumeError,
        check_volume,
        database_uuid,
        is_default_volume,
        mark_volume,
        prepare_default_volume,
    )
    from vms.clock import SystemClock

    settings = settings_of(args)
    gateway = open_gateway(settings)
    try:
        db_uuid = gateway.write_sync(database_uuid)
    finally:
        gateway.close()
    now_us = SystemClock().now_us()
    rows: list[dict[str, Any]] = []
    for volume in settings.volumes:
        row: dict[str, Any] = {"volume": volume.name, "path": str(volume.path)}
        try:
            if is_default_volume(settings) and not volume.path.exists():
                prepare_default_volume(settings, db_uuid, now_us)
                row["result"] = "marked"
            else:
                row["result"] = "marked" if mark_volume(volume, db_uuid, now_us) else \
                    "already_marked"
        except (VolumeError, OSError) as exc:
            row["result"] = "refused"
            row["error"] = str(exc)
        row["state"] = check_volume(volume, db_uuid).state
        rows.append(row)
    refused = [r for r in rows if r["result"] == "refused"]
    if args.json:
        print(json.dumps({"database_uuid": db_uuid, "volumes": rows}, ensure_ascii=False))
    else:
        for r in rows:
            if r["result"] == "refused":
                print(f"vms storage init: {r['error']}", file=sys.stderr)
            else:
                word = "marked" if r["result"] == "marked" else "already marked"
                print(f"volume {r['volume']!r} ({r['path']}): {word} for database {db_uuid}")
    return 1 if refused else 0


def _size(n: int | float | None) -> str:
    if n is None:
        return "?"
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(value) < 1024 or unit == "TiB":
            return f"{int(value)} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TiB"


def status_text(data: dict[str, Any]) -> str:
    lines: list[str] = []
    for v in data["volumes"]:
        cap = _size(v["max_bytes"]) if v["max_bytes"] else "none"
        lines.append(f"volume {v['name']} ({v['path']}): recordings {_size(v['used_bytes'])}, "
                     f"free {_size(v['free_bytes'])} of {_size(v['total_bytes'])}, cap {cap}, "
                     f"writing {_size(v['write_bytes_per_s'])}/s")
        if v["error"]:
            lines.append(f"  error: {v['error']}")
        lines.append(f"  held as evidence {_size(v['held_bytes'])} ({len(v['holds'])} hold(s)); "
                     f"freed in 24 h {_size(v['freed_bytes_24h'])} "
                     f"({v['freed_segments_24h']} segments)")
        if v["seconds_to_full"] is not None:
            lines.append(f"  limit reached in about {v['seconds_to_full'] / 3600:.1f} h at this "
                         "rate")
    for c in data["cameras"]:
        oldest = (format_iso(c["retained_from_us"], "UTC")
                  if c["retained_from_us"] is not None else "none")
        lines.append(f"camera {c['id']} {c['name']} ({c['site']['name']}): "
                     f"{_size(c['used_bytes'])}, oldest {oldest}, "
                     f"{c['retained_days']:.1f} days")
    return "\n".join(lines)


def cmd_storage_status(args: argparse.Namespace) -> int:
    from recorder.volumes import check_volume, database_uuid
    from vms.auth import ROLE_RIGHTS, Principal
    from vms.clock import SystemClock
    from vms.storage import StorageService

    settings = settings_of(args)
    gateway = open_gateway(settings, read_only=True)
    service = StorageService(gateway, settings, SystemClock())
    everyone = Principal(user_id=0, username="cli", role="admin", site_ids=None,
                         rights=ROLE_RIGHTS["admin"])
    try:
        db_uuid = gateway.write_sync(database_uuid)
        health: dict[str, tuple[str, str]] = {}
        for volume in settings.volumes:
            checked = check_volume(volume, db_uuid)
            health[volume.name] = (checked.state, checked.message)
        data = service.report_sync(everyone, health)
    finally:
        service.close()
        gateway.close()
    if args.json:
        print(json.dumps(data, ensure_ascii=False))
    else:
        print(status_text(data))
    return 0
