"""``vms check [--repair] [--json]``: reconcile the segment index with the files on disk by hand.

Part of the composition root. Runs :func:`recorder.reconcile.reconcile`, the same code the server
runs at start-up. Safe while the server runs: a running server holds an exclusive ``flock`` on
``<data_dir>/server.lock``; when it is held, runs still open (``end_us`` NULL, being recorded now)
are left out — their files are in flux — and ``--repair`` repairs only the rest, saying so. The
exit code is 1 when problems were found and not repaired, 0 otherwise.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from typing import Any

log = logging.getLogger(__name__)


def register(sub: Any) -> None:
    """Add ``check`` to the top-level subparsers."""
    p = sub.add_parser("check", help="compare the recording index with the disk (and repair)")
    p.add_argument("--config", metavar="FILE",
                   help="config file (default ./vms.toml, else $VMS_CONFIG)")
    p.add_argument("--repair", action="store_true",
                   help="fix what can be fixed: index playable orphans, move unplayable files to "
                        "lost+found, mark missing files, close runs left open by a crash")
    p.add_argument("--json", action="store_true", help="one JSON document")
    p.set_defaults(func=cmd_check)


def _open_runs() -> frozenset[int]:
    from vms.db.models import Run

    return frozenset(r.id for r in Run.select(Run.id).where(Run.end_us.is_null()))


def cmd_check(args: argparse.Namespace) -> int:
    from recorder.lock import is_locked, lock_path
    from recorder.reconcile import reconcile
    from vms.cli import _gateway, _settings
    from vms.clock import SystemClock

    settings = _settings(args)
    gateway = _gateway(settings)
    try:
        running = is_locked(settings.data_dir)
        exclude: frozenset[int] = frozenset()
        if running:
            exclude = gateway.read_sync(_open_runs)
            note = (f"a server is running on this data directory ({lock_path(settings.data_dir)} "
                    f"is locked): {len(exclude)} run(s) being recorded now are left alone")
            if args.repair:
                note += "; their files are not repaired (stop the server to repair them)"
            print(f"vms check: {note}", file=sys.stderr)
        report = reconcile(gateway, settings, SystemClock(), bool(args.repair),
                           exclude_run_ids=exclude)
    finally:
        gateway.close()
    data: dict[str, Any] = report.as_dict()
    data["server_running"] = running
    if args.json:
        print(json.dumps(data, ensure_ascii=False))
    else:
        print(_text(data, report.summary()))
    if report.problems and not args.repair:
        return 1
    return 0


def _text(data: dict[str, Any], summary: str) -> str:
    verb = "repaired" if data["repair"] else "found"
    lines = [f"{verb}: {summary}" if data["problems"] else "index and disk agree"]
    labels = (("adopted", "orphan file, playable → indexed as partial"),
              ("lost_and_found", "unplayable → lost+found"),
              ("missing", "indexed but file gone → missing"),
              ("restored", "missing file is back → ok"),
              ("unknown", "cannot be placed (left in place)"),
              ("ring_discarded", "event ring-buffer leftover → deleted"))
    for key, label in labels:
        for item in data[key]:
            lines.append(f"  {item}: {label}")
    for run_id in data["runs_closed"]:
        lines.append(f"  run {run_id}: left open by a crash → closed (crash_recovered)")
    if data["problems"] and not data["repair"]:
        lines.append("run `vms check --repair` to fix")
    return "\n".join(lines)
