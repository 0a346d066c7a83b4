"""``vms ptz``: check a PTZ camera from the command line (installers' checks).

Part of the composition root. ``vms ptz show ID [--refresh]`` (capabilities and position),
``move ID --pan P --tilt T --zoom Z [--seconds S]`` (a continuous move held for S seconds with
keep-alives, then a Stop: the same move session as the web's, dead-man timer included), ``stop ID``,
``presets ID``, ``preset-save ID NAME``, ``goto ID TOKEN``, ``home ID [--set]``. Every command
takes ``--json`` (one JSON document). It talks to the camera directly with the data in the database
(no server needed) and writes the same ``ptz`` audit records as the web, as ``cli:<user>``.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
from collections.abc import Awaitable, Callable
from typing import Any

from vms.cli.common import CliError, emit, open_gateway, settings_of, with_config

MAX_MOVE_S = 30.0
KEEPALIVE_S = 0.15


def register(sub: Any) -> None:
    """Add the ``ptz`` command group."""
    p = sub.add_parser("ptz", help="pan, tilt and zoom a camera (installers' checks)")
    group = p.add_subparsers(dest="ptz_command", required=True, metavar="ACTION")

    def action(name: str, help_text: str, func: Callable[[argparse.Namespace], int]) -> Any:
        a = with_config(group.add_parser(name, help=help_text))
        a.add_argument("id", type=int, help="camera id")
        a.add_argument("--json", action="store_true", help="print one JSON document")
        a.set_defaults(func=func)
        return a

    a = action("show", "capabilities, who moved it last, and the position", cmd_show)
    a.add_argument("--refresh", action="store_true", help="read the capabilities from the camera "
                                                          "again and store them")
    a = action("move", "move continuously for a while, then stop", cmd_move)
    for axis in ("pan", "tilt", "zoom"):
        a.add_argument(f"--{axis}", type=float, default=0.0, metavar="V",
                       help=f"{axis} velocity -1..1 (default 0)")
    a.add_argument("--seconds", type=float, default=1.0, metavar="S",
                   help=f"how long to move, 0.1–{MAX_MOVE_S:g} (default 1)")
    action("stop", "stop pan, tilt and zoom", cmd_stop)
    action("presets", "list the presets", cmd_presets)
    a = action("preset-save", "save the current position as a preset", cmd_preset_save)
    a.add_argument("name", help="the preset's name")
    a = action("goto", "go to a preset", cmd_goto)
    a.add_argument("token", help="the preset's token (see `vms ptz presets`)")
    a = action("home", "go to the home position", cmd_home)
    a.add_argument("--set", action="store_true", help="make the current position home instead")


def _run(args: argparse.Namespace, work: Callable[[Any, Any], Awaitable[dict[str, Any]]],
         text: Callable[[dict[str, Any]], str]) -> int:
    """Open the database, make the PTZ control, run ``work(control, camera)``, print."""
    from onvif_bridge.adopt import Onboarding
    from onvif_bridge.onboarding_common import OnboardingError
    from onvif_bridge.ptz_control import PtzControl
    from vms.clock import SystemClock
    from vms.logs import setup_logging
    from vms.secrets import SecretBox

    settings = settings_of(args)
    setup_logging("WARNING")
    gateway = open_gateway(settings)
    try:
        onboarding = Onboarding(gateway, SecretBox.from_key_file(settings.key_file), SystemClock())

        async def main() -> dict[str, Any]:
            control = PtzControl(onboarding, actor=f"cli:{getpass.getuser()}")
            await control.start()
            try:
                return await work(control, await control.camera(None, args.id))
            finally:
                await control.close()

        try:
            result = asyncio.run(main())
        except OnboardingError as exc:
            raise CliError(str(exc)) from None
    finally:
        gateway.close()
    emit(args, result, text)
    return 0


def _position(state: dict[str, Any]) -> str:
    return (f"pan {state['pan']:+.3f} tilt {state['tilt']:+.3f} zoom {state['zoom']:.3f}"
            if state.get("pan") is not None else "position unknown")


def cmd_show(args: argparse.Namespace) -> int:
    async def work(control: Any, cam: Any) -> dict[str, Any]:
        state = await control.refresh(None, cam.id) if args.refresh else control.state(cam)
        if state["capabilities"] is None:
            return {**state, "position": None}
        return {**state, "position": await control.status(None, cam.id)}

    def text(r: dict[str, Any]) -> str:
        caps = r["capabilities"]
        if caps is None:
            return f"camera {r['camera_id']}: no PTZ (or not read yet: --refresh)"
        modes = [m for m in ("continuous", "continuous_zoom", "relative", "absolute", "presets",
                             "home") if caps[m]]
        return (f"camera {r['camera_id']}: {', '.join(modes)}; {caps['max_presets']} presets at "
                f"most; {_position(r['position'])}")

    return _run(args, work, text)


def cmd_move(args: argparse.Namespace) -> int:
    from onvif_bridge.ptz_control import new_owner

    for axis in ("pan", "tilt", "zoom"):
        if not -1 <= getattr(args, axis) <= 1:
            raise CliError(f"--{axis}: a velocity from -1 to 1, got {getattr(args, axis)}")
    if not 0.1 <= args.seconds <= MAX_MOVE_S:
        raise CliError(f"--seconds: 0.1 to {MAX_MOVE_S:g}, got {args.seconds}")
    if args.pan == args.tilt == args.zoom == 0:
        raise CliError("give --pan, --tilt or --zoom (velocities -1..1)")

    async def work(control: Any, cam: Any) -> dict[str, Any]:
        before = await control.status(None, cam.id)
        owner = new_owner("cli")
        loop = asyncio.get_running_loop()
        await control.move(None, cam, args.pan, args.tilt, args.zoom, owner=owner)
        end = loop.time() + args.seconds
        while loop.time() < end:
            await asyncio.sleep(min(KEEPALIVE_S, max(0.0, end - loop.time())))
            if not control.keepalive(cam, owner):
                break  # someone else took over, or the server side stopped it
        await control.stop(cam, owner=owner, reason="released")
        return {"camera_id": cam.id, "before": before,
                "after": await control.status(None, cam.id)}

    return _run(args, work, lambda r: f"moved: {_position(r['before'])} → {_position(r['after'])}")


def cmd_stop(args: argparse.Namespace) -> int:
    async def work(control: Any, cam: Any) -> dict[str, Any]:
        await control.stop(cam, reason="stopped")
        return {"camera_id": cam.id, "stopped": True, "position": await control.status(None,
                                                                                      cam.id)}

    return _run(args, work, lambda r: f"stopped at {_position(r['position'])}")


def cmd_presets(args: argparse.Namespace) -> int:
    async def work(control: Any, cam: Any) -> dict[str, Any]:
        return {"camera_id": cam.id, "presets": await control.presets(None, cam)}

    return _run(args, work, lambda r: "\n".join(f"{p['token']}\t{p['name']}"
                                                 for p in r["presets"]) or "no presets")


def cmd_preset_save(args: argparse.Namespace) -> int:
    name = args.name.strip()
    if not 0 < len(name) <= 64:
        raise CliError("a preset name is 1–64 characters")

    async def work(control: Any, cam: Any) -> dict[str, Any]:
        return {"camera_id": cam.id, "token": await control.save_preset(None, cam, name),
                "name": name}

    return _run(args, work, lambda r: f"preset {r['token']} {r['name']!r} saved")


def cmd_goto(args: argparse.Namespace) -> int:
    async def work(control: Any, cam: Any) -> dict[str, Any]:
        await control.goto_preset(None, cam, args.token)
        return {"camera_id": cam.id, "token": args.token, "ok": True}

    return _run(args, work, lambda r: f"going to preset {r['token']}")


def cmd_home(args: argparse.Namespace) -> int:
    async def work(control: Any, cam: Any) -> dict[str, Any]:
        if args.set:
            await control.set_home(None, cam)
        else:
            await control.goto_home(None, cam)
        return {"camera_id": cam.id, "home": "set" if args.set else "goto", "ok": True}

    return _run(args, work, lambda r: "home position set" if r["home"] == "set"
                else "going home")
