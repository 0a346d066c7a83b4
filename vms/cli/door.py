"""``vms door open --camera ID [--relay TOKEN] [--json]`` and ``vms door list [--camera ID]
[--refresh] [--json]``: an installer's check of a camera's door relays.

Part of the composition root. The same :class:`onvif_bridge.doors.DoorService` as the server:
``open`` pulses the relay (the camera's first relay unless ``--relay`` names one) for ``[intercom]
pulse_seconds``, Monostable where the relay supports it, else active then inactive, and writes a
``door_release`` audit record as ``cli:<user>`` (no rate limit on the command line). ``list`` shows
the relays stored at adoption; ``--refresh`` asks the cameras again. A camera that refuses or does
not answer is an error naming it (exit 2).
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import sys
from typing import Any

from vms.cli.common import CliError, emit, open_gateway, settings_of, with_config


def register(sub: Any) -> None:
    """Add the ``door`` command group."""
    p = sub.add_parser("door", help="door relays of cameras: list them, open a door")
    door_sub = p.add_subparsers(dest="door_command", required=True, metavar="ACTION")
    o = with_config(door_sub.add_parser("open", help="pulse a camera's door relay (audited)"))
    o.add_argument("--camera", type=int, required=True, metavar="ID", help="the camera's id")
    o.add_argument("--relay", metavar="TOKEN", help="the relay output (default: the first)")
    o.add_argument("--json", action="store_true", help="print the result as one JSON object")
    o.set_defaults(func=cmd_door_open)
    ls = with_config(door_sub.add_parser("list", help="the relays of the cameras"))
    ls.add_argument("--camera", type=int, metavar="ID", help="only this camera")
    ls.add_argument("--refresh", action="store_true",
                    help="ask the cameras for their relays again (and store them)")
    ls.add_argument("--json", action="store_true", help="one JSON object per relay a line")
    ls.set_defaults(func=cmd_door_list)


def _service(args: argparse.Namespace) -> tuple[Any, Any]:
    from onvif_bridge.adopt import Onboarding
    from onvif_bridge.doors import DoorService
    from vms.clock import SystemClock
    from vms.logs import setup_logging
    from vms.secrets import SecretBox

    settings = settings_of(args)
    setup_logging("WARNING")
    gateway = open_gateway(settings)
    clock = SystemClock()
    onboarding = Onboarding(gateway, SecretBox.from_key_file(settings.key_file), clock)
    return gateway, DoorService(onboarding, clock, pulse_s=settings.intercom.pulse_seconds,
                                ring_s=settings.intercom.ring_seconds,
                                pulses_per_minute=settings.intercom.pulses_per_minute)


def cmd_door_open(args: argparse.Namespace) -> int:
    from onvif_bridge.onboarding_common import OnboardingError

    gateway, doors = _service(args)

    async def run() -> dict[str, Any]:
        try:
            token = args.relay
            if not token:
                relays = await doors.relays(None, args.camera)
                if not relays:
                    relays = await doors.refresh(None, args.camera)
                if not relays:
                    raise CliError(f"camera {args.camera} reports no relay output")
                token = relays[0]["token"]
            return dict(await doors.pulse(None, args.camera, token,
                                          actor=f"cli:{getpass.getuser()}", limit=False))
        finally:
            await doors.stop()

    try:
        try:
            result = asyncio.run(run())
        except OnboardingError as exc:
            raise CliError(str(exc)) from None
        result.pop("answered_sites", None)
        emit(args, result, lambda r: (
            f"camera {r['camera_id']}: relay {r['relay']} pulsed for {r['pulse_s']} s "
            f"({'monostable' if r['method'] == 'monostable' else 'set active, then inactive'})"))
    finally:
        gateway.close()
    return 0


def cmd_door_list(args: argparse.Namespace) -> int:
    from onvif_bridge.onboarding_common import OnboardingError
    from vms.db import models as m

    gateway, doors = _service(args)

    def cameras() -> list[tuple[int, str]]:
        query = m.Camera.select(m.Camera.id, m.Camera.name).where(m.Camera.archived_us.is_null())
        if args.camera is not None:
            query = m.Camera.select(m.Camera.id, m.Camera.name).where(m.Camera.id == args.camera)
        return [(c.id, c.name) for c in query.order_by(m.Camera.id)]

    async def run() -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = []
        for camera_id, name in await gateway.read(cameras):
            try:
                relays = await (doors.refresh if args.refresh else doors.relays)(None, camera_id)
            except OnboardingError as exc:
                if args.camera is not None:
                    raise
                print(f"vms: {exc}", file=sys.stderr)
                continue
            rows += [{"camera_id": camera_id, "camera": name, **r} for r in relays]
        return rows

    try:
        if args.camera is not None and not gateway.read_sync(cameras):
            raise CliError(f"no camera {args.camera}")
        try:
            rows = asyncio.run(run())
        except OnboardingError as exc:
            raise CliError(str(exc)) from None
        if args.json:
            emit(args, rows, str)
        else:
            print("\n".join(
                f"{r['camera_id']}\t{r['camera']}\t{r['token']}\t{r['mode'] or '?'}"
                f"\t{'monostable pulse' if r['monostable'] else 'active, then inactive'}"
                for r in rows) if rows else "no relays")
    finally:
        gateway.close()
    return 0
