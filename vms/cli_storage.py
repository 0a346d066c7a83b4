"""``vms storage [status] [--json]``: what each storage volume holds and each camera keeps.

Part of the composition root. The same figures as ``GET /api/v1/storage`` and the storage page
(:class:`vms.storage.StorageService`), for every site: per volume the bytes of the indexed
recordings, the file system's free and total bytes, the cap, the write rate, the bytes evidence
holds keep, the bytes retention freed in the last 24 hours; per camera its bytes, oldest footage
kept and days retained. The next scheduled purge is known only to a running server (the API and
the page show it); here it is null. Another command of the ``storage`` group (``storage init``) is
added elsewhere.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from vms.clock import format_iso


def add_parsers(sub: Any) -> None:
    """Add ``storage`` (with ``status``, also the default) to the top-level subparsers."""
    p = sub.add_parser("storage", help="storage volumes: status")
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
    from vms.auth import ROLE_RIGHTS, Principal
    from vms.cli import _gateway, _settings
    from vms.clock import SystemClock
    from vms.storage import StorageService

    settings = _settings(args)
    gateway = _gateway(settings)
    service = StorageService(gateway, settings, SystemClock())
    everyone = Principal(user_id=0, username="cli", role="admin", site_ids=None,
                         rights=ROLE_RIGHTS["admin"])
    try:
        data = service.report_sync(everyone)
    finally:
        service.close()
        gateway.close()
    if args.json:
        print(json.dumps(data, ensure_ascii=False))
    else:
        print(status_text(data))
    return 0
