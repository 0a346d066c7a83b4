"""Live-view fixtures: a camsim RTSP camera with a password, the app on SQLite, two sites.

``live_world`` is the whole app (without recording) behind an aiohttp test client, with a camera of
Site A adopted straight into the database (Site + Camera + CameraStream rows pointing at a camsim
RTSP server, password encrypted), a viewer of Site A and a viewer of Site B. Clips are small
(320x180 main, 160x90 sub) so ffmpeg and the decoding checks stay cheap.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest_asyncio

from camsim.media import ClipSpec
from camsim.rtsp import RtspServer
from recorder.live import LiveOptions, LiveService

MAIN = ClipSpec(width=320, height=180, fps=25, bitrate_kbps=300, audio="aac", seconds=10)
SUB = ClipSpec(width=160, height=90, fps=25, bitrate_kbps=100, audio=None, seconds=10)
CAMERA_USER = "admin"
CAMERA_PASSWORD = "Live-S3cret#pw"  # distinctive: the log test looks for it
USER_PASSWORD = "correct-horse-9"
FAST = LiveOptions(grace_s=0.5, startup_timeout_s=15.0, backoff_initial_s=0.2, backoff_max_s=1.0,
                   stop_timeout_s=3.0, socket_timeout_s=5.0)


async def start_camsim(cache_dir: Path | None = None) -> RtspServer:
    server = RtspServer("127.0.0.1", 0, username=CAMERA_USER, password=CAMERA_PASSWORD,
                        cache_dir=cache_dir)
    server.add_stream("/main", MAIN)
    server.add_stream("/sub", SUB)
    await server.start()
    return server


def seed(app: Any, rtsp: RtspServer, cameras: int = 1) -> dict[str, int]:
    """Sites A and B, users ``viewer_a``/``viewer_b``/``admin1``, ``cameras`` cameras on Site A
    (all pointing at ``rtsp``) and one camera on Site B. Runs on the writer thread."""
    from vms.db import models as m
    from web.keys import ACCOUNTS, CLOCK, GATEWAY, SECRETS

    accounts, clock, secrets = app[ACCOUNTS], app[CLOCK], app[SECRETS]

    def write() -> dict[str, int]:
        site_a = accounts.create_site("Site A", "Asia/Almaty")
        site_b = accounts.create_site("Site B", "Europe/Berlin")
        accounts.create_user("viewer_a", USER_PASSWORD, "viewer", ["Site A"])
        accounts.create_user("viewer_b", USER_PASSWORD, "viewer", ["Site B"])
        accounts.create_user("admin1", USER_PASSWORD, "admin", [])
        now = clock.now_us()
        ids: dict[str, int] = {"site_a": site_a.id, "site_b": site_b.id}
        for i, site in enumerate([site_a] * cameras + [site_b]):
            cam = m.Camera.create(site=site, name=f"Cam {i + 1}", username=CAMERA_USER,
                                  password_enc=secrets.encrypt(CAMERA_PASSWORD),
                                  status_since_us=now, created_us=now, updated_us=now)
            m.CameraStream.create(camera=cam, kind="main", rtsp_url=rtsp.url("/main"),
                                  codec="H264", width=MAIN.width, height=MAIN.height, fps=25)
            m.CameraStream.create(camera=cam, kind="sub", rtsp_url=rtsp.url("/sub"),
                                  codec="H264", width=SUB.width, height=SUB.height, fps=25)
            ids[f"camera_{i + 1}"] = cam.id
        return ids

    return app[GATEWAY].write_sync(write)


@dataclass
class LiveWorld:
    client: Any
    app: Any
    rtsp: RtspServer
    ids: dict[str, int]

    @property
    def camera(self) -> int:
        return self.ids["camera_1"]

    @property
    def service(self) -> LiveService:
        from web.keys import SERVICES

        service = self.app[SERVICES]["live"]
        assert isinstance(service, LiveService)
        return service

    async def login(self, username: str) -> None:
        self.client.session.cookie_jar.clear()
        resp = await self.client.post("/api/v1/auth/login",
                                      json={"username": username, "password": USER_PASSWORD})
        assert resp.status == 200, await resp.text()


@pytest_asyncio.fixture
async def live_world(settings_factory, aiohttp_client) -> AsyncIterator[LiveWorld]:  # type: ignore[no-untyped-def]
    from vms.app import create_app

    rtsp = await start_camsim()
    try:
        app = create_app(settings_factory(), start_recorder=False)
        client = await aiohttp_client(app)
        world = LiveWorld(client=client, app=app, rtsp=rtsp, ids=seed(app, rtsp))
        world.service.options = FAST
        yield world
    finally:
        await rtsp.stop()
