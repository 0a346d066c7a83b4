"""``vms demo``: virtual cameras and the whole server on SQLite, ready in a browser, in one command.

Part of the composition root. :func:`run_demo` starts N camsim cameras on 127.0.0.1 (in this
process), the server with its database, key file and recordings in ``data_dir`` (a ``vms.toml``
is written there on the first run, so ``vms … --config DATA/vms.toml`` reaches the same data),
creates the ``admin`` user with a random password on the first run, and then discovers the
cameras the way an installer would — unicast WS-Discovery probes to their loopback discovery
ports, interrogation, bulk adoption into the site "Demo courtyard" — so a newcomer sees the real
flow. It prints the URL, the login, its config file and a ``vms user add … --config …`` line that
reaches the same database, and runs until SIGINT or SIGTERM, then stops the server
(recorder included) and the cameras. Nothing is ever multicast.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import shlex
import signal
import sys
from pathlib import Path
from typing import TextIO

from aiohttp import web

from vms.config import Settings, load_settings

log = logging.getLogger(__name__)

SITE_NAME = "Demo courtyard"
ADMIN = "admin"
CAMERA_USER = "admin"
DISCOVERY_WINDOW_S = 1.5
_CONFIG = """# Written by `vms demo`: the demo's data lives in this folder.
data_dir = "."

[server]
host = "{host}"
port = {port}

[recording]
# short segments, so the timeline has something to play back within seconds
segment_seconds = 10
"""


def run_demo(cameras: int, port: int, data_dir: Path, host: str) -> int:
    """Run the demo until interrupted; returns the process exit code."""
    from vms.logs import setup_logging

    setup_logging("WARNING")
    logging.getLogger("vms.demo").setLevel(logging.INFO)
    if cameras < 0 or cameras > 64:
        print("vms demo: --cameras must be between 0 and 64", file=sys.stderr)
        return 2
    try:
        return asyncio.run(_demo(cameras, port, data_dir.resolve(), host, sys.stdout))
    except KeyboardInterrupt:
        return 130
    except OSError as exc:
        print(f"vms demo: {exc}", file=sys.stderr)
        return 2


async def _demo(cameras: int, port: int, data_dir: Path, host: str, out: TextIO) -> int:
    from camsim.fleet import Fleet
    from onvif_bridge.adopt import Onboarding
    from onvif_bridge.models import Status
    from onvif_bridge.scan import scan
    from vms.app import create_app, freeze_startup_objects
    from web.keys import SERVICES

    config = data_dir / "vms.toml"
    settings = await asyncio.to_thread(_settings, config, host, port)

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    installed: list[signal.Signals] = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(sig, stop.set)
            installed.append(sig)

    camera_password = secrets.token_urlsafe(9)
    fleet = Fleet(cameras, "127.0.0.1", username=CAMERA_USER, password=camera_password,
                  seed="vms-demo", name_prefix="demo-cam")
    # The administrator and the site exist before the server starts (so it has a user at once).
    admin_password, site_id = await asyncio.to_thread(_prepare, settings)
    app = create_app(settings)
    app.on_startup.append(freeze_startup_objects)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=2.0)
    try:
        await fleet.start()
        await runner.setup()
        site = web.TCPSite(runner, host, port)
        await site.start()
        bound = _bound_port(site) or port
        # The installer's flow: unicast probes to each camera's discovery port, interrogation,
        # then "adopt all found with these credentials".
        targets = [camera.info()["discovery"] for camera in fleet.cameras]
        xaddrs: list[str] = []
        if targets:
            async for update in scan(targets, CAMERA_USER, camera_password,
                                     timeout_s=DISCOVERY_WINDOW_S, interfaces=[]):
                if update.report is None:
                    continue
                if update.report.status == Status.OK:
                    xaddrs.append(update.report.xaddr)
                else:
                    log.warning("demo: %s", update.report.message)
        onboarding = app[SERVICES]["onboarding"]
        assert isinstance(onboarding, Onboarding)  # create_app always makes it
        results = await onboarding.adopt_many(
            None, xaddrs, CAMERA_USER, camera_password, site_id=site_id, actor="vms demo")
        adopted = [r for r in results if r["ok"]]
        for row in results:
            if not row["ok"]:
                log.warning("demo: %s: %s", row["xaddr"], row["error"])

        shown_host = f"[{host}]" if ":" in host else host
        out.write(f"VMS demo: {len(targets)} virtual camera(s) found, {len(adopted)} adopted "
                  f"into {SITE_NAME!r}\n")
        out.write(f"URL: http://{shown_host}:{bound}/\n")
        if admin_password is not None:
            out.write(f"user: {ADMIN}  password: {admin_password}\n")
        else:
            out.write(f"user: {ADMIN}  password: unchanged from the first run (forgotten? "
                      f"vms user passwd {ADMIN} --config {config})\n")
        out.write(f"config: {config}\n")
        out.write(f"more users: vms user add NAME --role viewer --site {shlex.quote(SITE_NAME)} "
                  f"--config {shlex.quote(str(config))}\n")
        out.write(f"data: {data_dir}  (stop with Ctrl+C)\n")
        out.flush()
        await stop.wait()
        out.write("VMS demo: stopping\n")
        out.flush()
    finally:
        for sig in installed:
            loop.remove_signal_handler(sig)
        await runner.cleanup()
        await fleet.stop()
    return 0


def _settings(config: Path, host: str, port: int) -> Settings:
    config.parent.mkdir(parents=True, exist_ok=True)
    if not config.exists():
        config.write_text(_CONFIG.format(host=host, port=port or 8080))
    return load_settings(config, env={}, overrides={"server.host": host, "server.port": port})


def _prepare(settings: Settings) -> tuple[str | None, int]:
    """Create ``admin`` (random password, returned) unless it exists, and the demo site."""
    from vms.auth import Accounts, random_password
    from vms.clock import SystemClock
    from vms.db import models as m
    from vms.db.gateway import Gateway

    settings.data_dir.mkdir(parents=True, exist_ok=True)
    gateway = Gateway(settings.database_url)
    accounts = Accounts(SystemClock())

    def prepare() -> tuple[str | None, int]:
        password = None
        if m.User.get_or_none(m.User.username == ADMIN) is None:
            password = random_password()
            accounts.create_user(ADMIN, password, "admin")
        return password, accounts.get_or_create_site(SITE_NAME).id

    try:
        gateway.migrate()
        # the demo records on the default volume inside its data folder: made and marked here
        # (the server does it too on start; `vms storage init` for configured volumes)
        from recorder.volumes import database_uuid, prepare_default_volume

        prepare_default_volume(settings, gateway.write_sync(database_uuid),
                               SystemClock().now_us())
        return gateway.write_sync(prepare)
    finally:
        gateway.close()


def _bound_port(site: web.TCPSite) -> int | None:
    server = site._server  # aiohttp keeps the asyncio.Server here
    sockets = getattr(server, "sockets", None)
    return int(sockets[0].getsockname()[1]) if sockets else None
