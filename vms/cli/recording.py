"""``vms check [--repair] [--json]``: reconcile the segment index with the files on disk by hand.

Part of the composition root (the CLI package; :func:`register` adds ``check`` and ``recording``).
Runs :func:`recorder.reconcile.reconcile`, the same code the server
runs at start-up. Safe while the server runs: a running server holds an exclusive ``flock`` on
``<data_dir>/server.lock``; when it is held, runs still open (``end_us`` NULL, being recorded now)
are left out — their files are in flux — and ``--repair`` repairs only the rest, saying so. The
report also gives, per volume, the bytes the index counts against the bytes of the segment files
on disk (``volumes[].drift_bytes``: reported, not counted as a problem). The exit code is 1 when
problems were found and not repaired, 0 otherwise.

``vms recording set CAMERA_ID [--mode …] [--schedule JSON] [--pre S] [--post S] [--volume NAME] [--stream KIND
[--record yes|no] [--transport tcp|udp|default]]`` changes how one camera is recorded through
:mod:`recorder.settings` (the same validation and audit as the web form and API); a running server
applies it within a few seconds (it watches ``Camera.updated_us``).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from typing import Any

from vms.cli.common import CliError, open_gateway, settings_of, with_config

log = logging.getLogger(__name__)


def register(sub: Any) -> None:
    """Add ``check`` to the top-level subparsers."""
    p = with_config(sub.add_parser("check", help="compare the recording index with the disk "
                                                 "(and repair)"))
    p.add_argument("--repair", action="store_true",
                   help="fix what can be fixed: index playable orphans, move unplayable files to "
                        "lost+found, mark missing files, close runs left open by a crash")
    p.add_argument("--json", action="store_true", help="one JSON document")
    p.set_defaults(func=cmd_check)

    r = sub.add_parser("recording", help="how a camera is recorded: mode, schedule, pre/post-roll")
    rsub = r.add_subparsers(dest="recording_cmd", required=True, metavar="ACTION")
    s = rsub.add_parser("set", help="change one camera's recording settings")
    s.add_argument("camera_id", type=int)
    with_config(s)
    s.add_argument("--mode", choices=("continuous", "scheduled", "event", "off"))
    s.add_argument("--schedule", metavar="JSON",
                   help='windows in the site\'s time zone, e.g. '
                        '\'[{"days": "mon-fri", "start": "07:00", "end": "19:00"}]\'')
    s.add_argument("--pre", type=int, metavar="S", help="event mode: seconds kept before an event")
    s.add_argument("--post", type=int, metavar="S", help="event mode: seconds kept after it")
    s.add_argument("--volume", metavar="NAME",
                   help='storage volume ([[storage.volumes]] name) it records to; "": the first')
    s.add_argument("--stream", choices=("main", "sub"), help="stream for --record/--transport")
    s.add_argument("--record", choices=("yes", "no"), help="record this stream")
    s.add_argument("--transport", choices=("tcp", "udp", "default"), help="RTSP transport")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_recording_set)


def _open_runs() -> frozenset[int]:
    from vms.db.models import Run

    return frozenset(r.id for r in Run.select(Run.id).where(Run.end_us.is_null()))


def cmd_check(args: argparse.Namespace) -> int:
    from recorder.lock import is_locked, lock_path
    from recorder.reconcile import reconcile
    from vms.clock import SystemClock

    settings = settings_of(args)
    gateway = open_gateway(settings, read_only=True)
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
              ("quarantined", "belongs to no known camera and run → quarantine"),
              ("ring_discarded", "event ring-buffer leftover → deleted"))
    for key, label in labels:
        for item in data[key]:
            lines.append(f"  {item}: {label}")
    for run_id in data["runs_closed"]:
        lines.append(f"  run {run_id}: left open by a crash → closed (crash_recovered)")
    for vol in data["volumes"]:
        if vol["drift_bytes"]:
            lines.append(f"volume {vol['name']}: segment files on disk {vol['disk_bytes']} bytes, "
                         f"index {vol['index_bytes']} bytes (drift {vol['drift_bytes']:+d})")
    if data["in_quarantine"]:
        lines.append(f"{len(data['in_quarantine'])} file(s) in quarantine (never indexed nor served;"
                     " look at them, then move or delete them):")
        lines += [f"  {item}" for item in data["in_quarantine"]]
    if data["problems"] and not data["repair"]:
        lines.append("run `vms check --repair` to fix")
    return "\n".join(lines)


_OPTION_OF = {"recording_mode": "--mode", "schedule": "--schedule", "event_pre_s": "--pre",
              "event_post_s": "--post", "volume": "--volume"}


def _option(field_name: str) -> str:
    if field_name.startswith("streams."):
        return "--" + field_name.rpartition(".")[2].replace("rtsp_", "")
    return _OPTION_OF.get(field_name, field_name)


def cmd_recording_set(args: argparse.Namespace) -> int:
    from recorder.settings import SettingsError, apply_change, parse_change
    from vms import audit
    from vms.clock import SystemClock
    from vms.db.models import Camera, Site

    raw: dict[str, Any] = {}
    if args.mode:
        raw["recording_mode"] = args.mode
    if args.schedule is not None:
        raw["schedule"] = args.schedule
    if args.pre is not None:
        raw["event_pre_s"] = args.pre
    if args.post is not None:
        raw["event_post_s"] = args.post
    if args.volume is not None:
        raw["volume"] = args.volume
    stream: dict[str, Any] = {}
    if args.record:
        stream["record"] = args.record == "yes"
    if args.transport:
        stream["rtsp_transport"] = args.transport
    if stream and not args.stream:
        raise CliError("--record and --transport need --stream main|sub")
    if stream:
        raw["streams"] = {args.stream: stream}
    settings = settings_of(args)
    try:
        change = parse_change(raw, tuple(v.name for v in settings.volumes))
    except SettingsError as exc:
        raise CliError(f"{_option(exc.field)}: {exc.message}") from None
    gateway = open_gateway(settings)
    clock = SystemClock()

    def apply() -> dict[str, Any]:
        cam = (Camera.select(Camera, Site).join(Site).where(Camera.id == args.camera_id)
               .first())
        if cam is None:
            raise CliError(f"no camera {args.camera_id}")
        try:
            after, diff = apply_change(cam, change, clock.now_us())
        except SettingsError as exc:
            raise CliError(f"{_option(exc.field)}: {exc.message}") from None
        if diff:
            audit.record(clock, "camera_change", username="cli", target=cam.name,
                         site_id=cam.site.id, address="cli",
                         detail={"camera_id": cam.id, "recording": diff})
        return {"id": cam.id, "name": cam.name, "recording_mode": after["recording_mode"],
                "schedule": Camera.get_by_id(cam.id).schedule,
                "event_pre_s": after["event_pre_s"], "event_post_s": after["event_post_s"],
                "volume": after["volume"],
                "streams": [{"kind": kind, **st} for kind, st in after["streams"].items()]}

    try:
        data = gateway.write_sync(apply)
    finally:
        gateway.close()
    if args.json:
        print(json.dumps(data, ensure_ascii=False))
    else:
        print(f"camera {data['id']} ({data['name']}): {data['recording_mode']}"
              + (f", schedule {data['schedule']}" if data["recording_mode"] == "scheduled" else "")
              + (f", pre {data['event_pre_s']} s, post {data['event_post_s']} s"
                 if data["recording_mode"] == "event" else ""))
    return 0
