"""``vms storage``: ``init [--json]``: mark the configured storage volumes for this database.

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


def register(sub: Any) -> None:
    """Add the ``storage`` command group to the top-level subparsers."""
    p = sub.add_parser("storage", help="storage volumes: init (mark them for this database)")
    ssub = p.add_subparsers(dest="storage_cmd", required=True, metavar="ACTION")
    a = ssub.add_parser(
        "init", help="write each configured volume's marker file (never creates a volume folder)")
    a.add_argument("--config", metavar="FILE",
                   help="config file (default ./vms.toml, else $VMS_CONFIG)")
    a.add_argument("--json", action="store_true", help="one JSON document")
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
