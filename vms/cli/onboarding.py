"""``vms discover`` and ``vms camera list|add|set|remove``: the installer's commands, on the same
services as the UI.

Part of the composition root (the CLI package): :func:`register` adds ``discover``,
:func:`register_camera` the ``camera`` command. ``discover`` probes unicast targets (``--target``,
repeatable) or, with no target, multicasts on the chosen ``--interface`` (default: every
non-loopback IPv4 interface) — never both implicitly. With ``--user`` each device is interrogated
too. ``--json`` prints one object a line. A sender whose reply could not be read is a row too
(status ``unparsed``, or ``bad_response`` with ``--user``) whose message says why.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import fcntl
import getpass
import ipaddress
import json
import socket
import struct
import sys
from typing import Any

from vms.cli.common import CliError, emit, open_gateway, settings_of, stdin_password, with_config
from vms.config import Settings
from vms.logs import setup_logging


def register(sub: Any) -> None:
    """Add ``discover`` to the top-level subparsers."""
    p = sub.add_parser("discover", help="find ONVIF cameras (WS-Discovery) and interrogate them")
    p.add_argument("--target", action="append", metavar="HOST[:PORT]|CIDR", default=[],
                   help="probe this host, host:port or range directly (repeatable); without any, "
                        "multicast on the local network")
    p.add_argument("--interface", action="append", metavar="IF", default=None,
                   help="interface name or IPv4 address to multicast on (repeatable)")
    p.add_argument("--timeout", type=float, default=3.0, metavar="S",
                   help="how long to listen for answers (default 3 s)")
    p.add_argument("--user", help="camera user name: interrogate every device found")
    p.add_argument("--password", help="camera password (visible in the process list: prefer "
                                      "--password-stdin)")
    p.add_argument("--password-stdin", action="store_true", help="read the password from stdin")
    p.add_argument("--concurrency", type=int, default=16, help="interrogations at a time")
    p.add_argument("--json", action="store_true", help="one JSON object per device and line")
    p.set_defaults(func=cmd_discover)


def register_camera(sub: Any) -> None:
    """Add ``camera`` (list, remove, add, set) to the top-level subparsers."""
    p = sub.add_parser("camera", help="cameras: list, add, set, remove")
    csub = p.add_subparsers(dest="camera_cmd", required=True, metavar="ACTION")
    a = with_config(csub.add_parser("list", help="list cameras"))
    a.add_argument("--json", action="store_true")
    a = with_config(csub.add_parser(
        "remove", help="remove a camera: archived, its recordings kept until retention"))
    a.add_argument("id", type=int)
    a.add_argument("--delete-recordings", action="store_true",
                   help="also delete every recording of the camera, and the camera (audited; "
                        "refused while evidence holds protect them or a server is running)")
    a.add_argument("--json", action="store_true")
    a = with_config(csub.add_parser("add", help="adopt a camera by ONVIF address or RTSP URL"))
    source = a.add_mutually_exclusive_group(required=True)
    source.add_argument("--onvif", metavar="URL", help="http://host[:port]/onvif/device_service "
                                                       "or host[:port]")
    source.add_argument("--rtsp", metavar="URL", help="rtsp://host/path, for cameras without ONVIF")
    a.add_argument("--user", default="", help="camera user name")
    a.add_argument("--password", help="camera password (prefer --password-stdin)")
    a.add_argument("--password-stdin", action="store_true")
    a.add_argument("--site", metavar="NAME", help="site to adopt into (required with several)")
    a.add_argument("--name", help="camera name (default: the camera's host name)")
    a.add_argument("--set-clock", action="store_true",
                   help="set the camera's clock when it is too far off")
    a.add_argument("--json", action="store_true")
    a.set_defaults(func=cmd_camera_add)

    s = with_config(csub.add_parser("set", help="configure a camera over ONVIF"))
    s.add_argument("id", type=int)
    s.add_argument("--name", help="rename (also the camera's host name, over ONVIF; a camera "
                                  "added by RTSP URL is renamed here only)")
    s.add_argument("--site", metavar="NAME",
                   help="move it to this site (its recordings go with it)")
    s.add_argument("--stream", choices=("main", "sub"), default="main")
    s.add_argument("--resolution", metavar="WxH", help="e.g. 1920x1080")
    s.add_argument("--fps", type=float)
    s.add_argument("--bitrate", type=int, metavar="KBPS")
    s.add_argument("--gop", type=float, metavar="S", default=None,
                   help="keyframe interval in seconds (at most 2; default 1 with a profile)")
    s.add_argument("--set-clock", action="store_true", help="set its clock to ours")
    s.add_argument("--ntp", action="append", metavar="SERVER", default=[],
                   help="use this NTP server (repeatable)")
    s.add_argument("--reboot", action="store_true")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_camera_set)
    p.set_defaults(func=cmd_camera)


# --- discover -----------------------------------------------------------------------------------

def _interface_address(name: str) -> str:
    with contextlib.suppress(ValueError):
        return str(ipaddress.IPv4Address(name))
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        try:
            packed = fcntl.ioctl(sock.fileno(), 0x8915, struct.pack("256s", name.encode()[:15]))
        except OSError as exc:
            raise CliError(f"interface {name!r}: no IPv4 address ({exc.strerror})") from None
    return socket.inet_ntoa(packed[20:24])


def _password(args: argparse.Namespace) -> str:
    if args.password:
        return str(args.password)
    if args.password_stdin:
        return stdin_password()
    if getattr(args, "user", None) and sys.stdin.isatty():
        return getpass.getpass("Camera password: ")
    return ""


def cmd_discover(args: argparse.Namespace) -> int:
    setup_logging("ERROR" if args.json else "WARNING")
    from onvif_bridge.errors import DiscoveryTargetError

    password = _password(args) if args.user else ""
    interfaces = ([_interface_address(i) for i in args.interface]
                  if args.interface is not None else None)
    try:
        asyncio.run(_discover(args, password, interfaces))
    except DiscoveryTargetError as exc:
        raise CliError(str(exc)) from None
    except KeyboardInterrupt:
        return 130
    return 0


async def _discover(args: argparse.Namespace, password: str, interfaces: list[str] | None) -> None:
    from onvif_bridge.discovery import discover, preferred_xaddr
    from onvif_bridge.scan import report_dict, scan

    count = 0
    if not args.user:
        async for device in discover(args.target, interfaces=interfaces, timeout_s=args.timeout):
            count += 1
            unparsed = device.message == "Unparsed"
            row = {"endpoint": device.endpoint, "address": device.sender,
                   "xaddr": preferred_xaddr(device), "name": device.name,
                   "model": device.hardware, "mac": None,
                   "status": "unparsed" if unparsed else "found",
                   "message": (f"its discovery reply could not be read ({device.error})"
                               if unparsed else device.message),
                   "scopes": list(device.scopes)}
            _print_device(args, row)
    else:
        async for update in scan(args.target, args.user, password, interfaces=interfaces,
                                 timeout_s=args.timeout, concurrency=args.concurrency):
            if update.kind != "report" or update.report is None:
                continue
            count += 1
            row = {"endpoint": update.device.endpoint, "name": update.device.name,
                   **report_dict(update.report)}
            _print_device(args, row)
    if not args.json:
        print(f"{count} device(s) found", file=sys.stderr)


def _print_device(args: argparse.Namespace, row: dict[str, Any]) -> None:
    if args.json:
        print(json.dumps(row, ensure_ascii=False), flush=True)
        return
    model = " ".join(filter(None, (row.get("manufacturer"), row.get("model")))) or "?"
    print(f"{row['address']:<22} {row.get('mac') or '-':<17} {model:<28} {row['status']:<12} "
          f"{row.get('xaddr') or ''}", flush=True)
    if row["status"] not in ("ok", "found"):
        print(f"    {row['message']}", flush=True)


# --- camera add / set ---------------------------------------------------------------------------

def _service(settings: Any) -> tuple[Any, Any]:
    from onvif_bridge.adopt import Onboarding
    from vms.secrets import SecretBox

    gateway = open_gateway(settings)
    return gateway, Onboarding(gateway, SecretBox.from_key_file(settings.key_file))


def _site_id(gateway: Any, name: str | None) -> int | None:
    from vms.db import models as m

    if name is None:
        return None
    site = gateway.read_sync(lambda: m.Site.get_or_none(m.Site.name == name))
    if site is None:
        raise CliError(f"no site named {name!r} (vms site add {name!r})")
    return int(site.id)


def cmd_camera_add(args: argparse.Namespace) -> int:
    from onvif_bridge.onboarding_common import OnboardingError
    settings = settings_of(args)
    setup_logging("WARNING")
    password = _password(args)
    actor = f"cli:{getpass.getuser()}"
    gateway, service = _service(settings)
    try:
        site_id = _site_id(gateway, args.site)

        async def add() -> Any:
            if args.rtsp:
                return await service.adopt_rtsp(None, args.rtsp, args.user, password,
                                                site_id=site_id, name=args.name, actor=actor)
            return await service.adopt(None, args.onvif, args.user, password, site_id=site_id,
                                       name=args.name, set_clock=args.set_clock, actor=actor)

        try:
            result = asyncio.run(add())
        except OnboardingError as exc:
            raise CliError(str(exc)) from None
        emit(args, result.as_dict(), lambda r: (
            f"camera {r['camera_id']} {r['name']!r} "
            f"{'adopted' if r['created'] else 're-bound (same MAC)'} into site {r['site_id']}; "
            "a running server picks it up on its next restart"))
    finally:
        gateway.close()
    return 0


def cmd_camera_set(args: argparse.Namespace) -> int:
    from onvif_bridge.configure import ConfigureRequest, RecordingProfile
    from onvif_bridge.onboarding_common import OnboardingError
    settings = settings_of(args)
    setup_logging("WARNING")
    width = height = None
    if args.resolution:
        try:
            width, height = (int(v) for v in args.resolution.lower().split("x"))
        except ValueError:
            raise CliError(f"--resolution {args.resolution!r}: write WIDTHxHEIGHT") from None
    wants_profile = any(v is not None for v in (width, args.fps, args.bitrate, args.gop))
    try:
        profile = (RecordingProfile(width=width, height=height, fps=args.fps,
                                    bitrate_kbps=args.bitrate,
                                    gop_s=args.gop if args.gop is not None else 1.0)
                   if wants_profile else None)
    except OnboardingError as exc:
        raise CliError(str(exc)) from None
    if not (profile or args.name or args.ntp or args.set_clock or args.reboot or args.site):
        raise CliError("nothing to change: give --name, --site, --resolution/--fps/--bitrate/"
                       "--gop, --set-clock, --ntp or --reboot")
    gateway, service = _service(settings)
    actor = f"cli:{getpass.getuser()}"
    try:
        site_id = _site_id(gateway, args.site)

        async def change() -> dict[str, Any]:
            result: dict[str, Any] = {"camera_id": args.id}
            if site_id is not None:
                result["site"] = await service.move(None, args.id, site_id, actor=actor)
            cam = await service.load_camera(None, args.id)
            # a camera without ONVIF (added by RTSP URL) is renamed here only
            name_here = args.name if args.name and not cam.onvif_url else None
            request = ConfigureRequest(stream=args.stream, profile=profile,
                                       name=None if name_here else args.name,
                                       set_clock=args.set_clock, ntp_servers=args.ntp,
                                       reboot=args.reboot)
            if name_here:
                result["renamed"] = await service.rename(None, args.id, name_here, actor=actor)
            if profile or request.name or args.ntp or args.set_clock or args.reboot:
                result.update(await service.configure(None, args.id, request, actor=actor))
            return result

        try:
            result = asyncio.run(change())
        except OnboardingError as exc:
            raise CliError(str(exc)) from None
        emit(args, result, lambda r: json.dumps(
            {k: r[k] for k in ("accepted", "clamped") if r.get(k)} or {"ok": True}))
    finally:
        gateway.close()
    return 0


# --- camera list / remove ----------------------------------------------------------------------

def cmd_camera(args: argparse.Namespace) -> int:
    settings = settings_of(args)
    setup_logging("WARNING")
    from vms.catalog import camera_dict
    from vms.db import models as m

    gateway = open_gateway(settings, read_only=args.camera_cmd == "list")
    try:
        if args.camera_cmd == "list":
            rows = gateway.read_sync(lambda: [
                camera_dict(c, c.site) for c in
                m.Camera.select(m.Camera, m.Site).join(m.Site).order_by(m.Camera.id)])
            emit(args, rows, lambda rs: "\n".join(
                f"{r['id']:>4} {r['name']:<24} {r['site']['name']:<20} {r['status']}"
                for r in rs) or "no cameras")
        elif args.camera_cmd == "remove":
            _camera_remove(args, settings, gateway)
    finally:
        gateway.close()
    return 0


def _camera_remove(args: argparse.Namespace, settings: Settings, gateway: Any) -> None:
    """Archive a camera (recordings kept); with --delete-recordings, delete them and it too."""
    from onvif_bridge.adopt import Onboarding
    from onvif_bridge.onboarding_common import OnboardingError
    from recorder.lock import is_locked, lock_path
    from recorder.purge import PurgeRefused, delete_camera_recordings
    from vms.clock import SystemClock
    from vms.secrets import SecretBox

    if args.delete_recordings and is_locked(settings.data_dir):
        raise CliError(f"a server is running on this data directory ({lock_path(settings.data_dir)}"
                       f" is locked) and may be recording camera {args.id}: delete its recordings "
                       f"through it (DELETE /api/v1/cameras/{args.id}?delete_recordings=true), or "
                       "stop it first")
    if args.delete_recordings:
        from recorder.purge import held_footage_problem

        problem = gateway.read_sync(held_footage_problem, args.id)
        if problem is not None:
            raise CliError(f"{problem}; nothing was changed")
    actor = f"cli:{getpass.getuser()}"
    service = Onboarding(gateway, SecretBox.from_key_file(settings.key_file), SystemClock())
    try:
        result = asyncio.run(service.remove(None, args.id, actor=actor))
    except OnboardingError as exc:
        raise CliError(str(exc)) from None
    if args.delete_recordings:
        try:
            purged = delete_camera_recordings(gateway, settings, SystemClock(), args.id,
                                              username=actor)
        except PurgeRefused as exc:
            raise CliError(f"{exc} (the camera is archived; its recordings are kept)") from None
        result.update(purged.as_dict())
    emit(args, result, lambda r: (
        f"camera {r['camera_id']} ({r['name']}) and its recordings deleted: "
        f"{r['segments_deleted']} segments, {r['bytes_deleted']} bytes"
        if r.get("recordings_deleted") else
        f"camera {r['camera_id']} ({r['name']}) removed: archived, no longer recorded; its "
        "recordings are kept, playable and exportable, until retention (--delete-recordings "
        "deletes them)"))
