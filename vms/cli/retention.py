"""``vms retention set|show|run``: retention policies from the command line, and a purge now.

Part of the composition root. ``set`` changes a camera's or a site's overrides of the
``[retention]`` defaults through :mod:`vms.retention` (the same validation and audit as the API);
``show`` prints the effective policies and where each value comes from; ``run`` performs one
retention pass (recorder/retention.py: interrupted deletions, expired exports, age, byte caps and
the space of every volume) — safe beside a running server, whose purges claim segments the same
way.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from vms.cli.common import CliError, open_gateway, settings_of

INHERIT = "inherit"


def _days(text: str) -> int | str:
    if text == INHERIT:
        return INHERIT
    if not (text.isascii() and text.isdigit()):
        raise argparse.ArgumentTypeError(f"expected a number of days or 'inherit', got {text!r}")
    return int(text)


def _bytes(text: str) -> int:
    if not (text.isascii() and text.isdigit()) or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a number of bytes (at least 1), got {text!r}")
    return int(text)


def register(sub: Any) -> None:
    """Add ``retention`` to the top-level subparsers."""
    config_help = "config file (default ./vms.toml, else $VMS_CONFIG)"
    p = sub.add_parser("retention", help="retention policies: how long recordings are kept")
    rsub = p.add_subparsers(dest="retention_cmd", required=True, metavar="ACTION")

    s = rsub.add_parser("set", help="change a camera's or a site's retention policy")
    target = s.add_mutually_exclusive_group(required=True)
    target.add_argument("--camera", type=int, metavar="ID")
    target.add_argument("--site", type=int, metavar="ID")
    s.add_argument("--config", metavar="FILE", help=config_help)
    s.add_argument("--continuous-days", type=_days, metavar="N|inherit",
                   help="days to keep continuous footage (0: no age limit; inherit: the site's, "
                        "else [retention])")
    s.add_argument("--event-days", type=_days, metavar="N|inherit",
                   help="days to keep footage inside an event's keep window")
    cap = s.add_mutually_exclusive_group()
    cap.add_argument("--max-bytes", type=_bytes, metavar="N",
                     help="cameras: cap on the camera's recorded bytes (oldest deleted first)")
    cap.add_argument("--no-max-bytes", action="store_true", help="cameras: remove the cap")
    s.add_argument("--json", action="store_true", help="one JSON document")
    s.set_defaults(func=cmd_retention)

    s = rsub.add_parser("show", help="effective retention policies (every camera, or one)")
    target = s.add_mutually_exclusive_group()
    target.add_argument("--camera", type=int, metavar="ID")
    target.add_argument("--site", type=int, metavar="ID")
    s.add_argument("--config", metavar="FILE", help=config_help)
    s.add_argument("--json", action="store_true",
                   help="one JSON document (--camera, --site) or one JSON line per camera")
    s.set_defaults(func=cmd_retention)

    s = rsub.add_parser("run", help="delete what retention says now (one pass; audited)")
    s.add_argument("--config", metavar="FILE", help=config_help)
    s.add_argument("--json", action="store_true", help="one JSON document")
    s.set_defaults(func=cmd_retention)


def cmd_retention(args: argparse.Namespace) -> int:
    return {"set": _set, "show": _show, "run": _run}[args.retention_cmd](args)


def _policy_text(view: dict[str, Any]) -> str:
    eff, src = view["effective"], view["sources"]

    def days(key: str) -> str:
        value = eff[key]
        return f"{value} days" if value else "no age limit"

    text = (f"continuous {days('continuous_days')} ({src['continuous_days']}), "
            f"event {days('event_days')} ({src['event_days']})")
    if "max_bytes" in eff:
        text += f", cap {eff['max_bytes']} bytes" if eff["max_bytes"] else ", no byte cap"
    return text


def _set(args: argparse.Namespace) -> int:
    from vms import catalog
    from vms import retention as policy
    from vms.clock import SystemClock

    raw: dict[str, Any] = {}
    for key in ("continuous_days", "event_days"):
        value = getattr(args, key)
        if value is not None:
            raw[key] = None if value == INHERIT else value
    if args.max_bytes is not None:
        raw["max_bytes"] = args.max_bytes
    if args.no_max_bytes:
        raw["max_bytes"] = None
    if args.site is not None and "max_bytes" in raw:
        raise CliError("--max-bytes and --no-max-bytes apply to cameras only (--camera ID)")
    if not raw:
        raise CliError("nothing to change: give --continuous-days, --event-days, --max-bytes "
                       "or --no-max-bytes")
    try:
        change = policy.parse_change(raw, policy.FIELDS if args.camera is not None
                                     else policy.SITE_FIELDS)
    except policy.PolicyError as exc:
        raise CliError(f"--{exc.field.replace('_', '-')}: {exc.message}") from None
    settings = settings_of(args)
    gateway = open_gateway(settings)
    try:
        if args.camera is not None:
            view = gateway.write_sync(policy.set_camera_policy, None, args.camera, change,
                                      SystemClock(), settings.retention, username="cli",
                                      address="cli")
        else:
            view = gateway.write_sync(policy.set_site_policy, None, args.site, change,
                                      SystemClock(), settings.retention, username="cli",
                                      address="cli")
    except catalog.NotFound as exc:
        raise CliError(str(exc)) from None
    finally:
        gateway.close()
    if args.json:
        print(json.dumps(view, ensure_ascii=False))
    else:
        what = (f"camera {view['camera_id']}" if "camera_id" in view
                else f"site {view['site_id']}")
        print(f"{what} ({view['name']}): {_policy_text(view)}"
              + ("" if view["changed"] else " (unchanged)"))
    return 0


def _show(args: argparse.Namespace) -> int:
    from vms import catalog
    from vms import retention as policy
    from vms.db import models as m

    settings = settings_of(args)
    gateway = open_gateway(settings, read_only=True)
    try:
        if args.camera is not None or args.site is not None:
            try:
                view = (gateway.read_sync(policy.camera_policy_view, None, args.camera,
                                          settings.retention) if args.camera is not None else
                        gateway.read_sync(policy.site_policy_view, None, args.site,
                                          settings.retention))
            except catalog.NotFound as exc:
                raise CliError(str(exc)) from None
            views = [view]
        else:
            ids = gateway.read_sync(lambda: [i for (i,) in m.Camera.select(m.Camera.id)
                                             .order_by(m.Camera.id).tuples()])
            views = [gateway.read_sync(policy.camera_policy_view, None, i, settings.retention)
                     for i in ids]
    finally:
        gateway.close()
    for view in views:
        if args.json:
            print(json.dumps(view, ensure_ascii=False))
        else:
            what = (f"camera {view['camera_id']}" if "camera_id" in view
                    else f"site {view['site_id']}")
            print(f"{what} ({view['name']}): {_policy_text(view)}")
    if not views and not args.json:
        print("no cameras")
    return 0


def _run(args: argparse.Namespace) -> int:
    from recorder.retention import Purger
    from vms.clock import SystemClock

    settings = settings_of(args)
    gateway = open_gateway(settings)
    try:
        purger = Purger(gateway, settings, SystemClock())
        report = purger.run_pass()
        space: dict[str, Any] = {}
        for volume in settings.volumes:
            try:
                check = purger.space_check(volume)
            except OSError as exc:
                space[volume.name] = {"error": exc.strerror or str(exc)}
                continue
            freed = purger.purge_space(volume, check)
            for reason, totals in freed.by_reason.items():
                report.add(reason, totals.segments, totals.bytes)
            space[volume.name] = {"free_bytes": check.free_bytes,
                                  "floor_bytes": check.floor_bytes,
                                  "rate_bytes_s": round(check.rate_bytes_s, 1),
                                  "short_bytes": check.short_bytes}
    finally:
        gateway.close()
    data = report.as_dict()
    data["volumes"] = space
    if args.json:
        print(json.dumps(data, ensure_ascii=False))
    else:
        deleted = data["deleted"]
        if not deleted:
            print("nothing to delete")
        for reason, totals in deleted.items():
            print(f"{reason}: {totals['segments']} segments, {totals['bytes']} bytes deleted")
        for name, vol in space.items():
            if "error" in vol:
                print(f"volume {name}: cannot be read: {vol['error']}")
    return 0
