"""PTZ test world: the web tests' world (app, two sites, a user of each role) plus a camsim PTZ
camera adopted into Site A through the API, and helpers to read camsim's PTZ state.

``ptz_world`` runs on both engines (PTZ's database work — the stored capabilities, the audit
rows — is the same SQL on both); ``ptz_world_sqlite`` is the same world on SQLite only, for the
tests whose subject is the camera and the sessions, to keep the suite's time down.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest

from tests.onboarding.conftest import api
from tests.web import conftest as web_conftest
from tests.web.conftest import World

world = web_conftest.world

CAM_PASSWORD = "ptz-Cam-pass-77"


@dataclass
class PtzWorld:
    world: World
    camera: Any  # camsim VirtualCamera
    camera_id: int

    async def api(self, method: str, path: str, user: str, body: Any = None) -> Any:
        return await api(self.world, method, path, user, body)

    def ptz(self) -> dict[str, Any]:
        """camsim's PTZ state: pan, tilt, zoom, moving, presets, calls."""
        state = self.camera.state()["ptz"]
        assert state is not None
        return state

    async def wait_for(self, check: Callable[[dict[str, Any]], bool], timeout_s: float,
                       what: str) -> float:
        """Seconds until ``check(camsim's PTZ state)`` holds (fails after ``timeout_s``)."""
        start = time.monotonic()
        while not check(self.ptz()):
            assert time.monotonic() - start < timeout_s, f"{what}: {self.ptz()}"
            await asyncio.sleep(0.02)
        return time.monotonic() - start


async def adopt(world: World, camera: Any, user: str = "installer1") -> int:
    resp = await api(world, "POST", "/api/v1/cameras", user,
                     {"onvif_url": camera.info()["onvif_url"], "username": "admin",
                      "password": CAM_PASSWORD, "site_id": world.site_a})
    assert resp.status in (200, 201), await resp.text()
    return int((await resp.json())["id"])


async def _ptz_world(world: World, camsim_factory: Any) -> PtzWorld:
    fleet = await camsim_factory(count=1, password=CAM_PASSWORD, rtsp=False)
    camera = fleet.cameras[0]
    return PtzWorld(world, camera, await adopt(world, camera))


@pytest.fixture
async def ptz_world(world: World, camsim_factory: Any) -> PtzWorld:
    return await _ptz_world(world, camsim_factory)


@pytest.fixture
async def ptz_world_sqlite(tmp_path: Any, settings_factory: Any, aiohttp_client: Any,
                           camsim_factory: Any) -> PtzWorld:
    from vms.app import create_app
    from web.keys import GATEWAY

    app = create_app(settings_factory(f"sqlite:///{tmp_path / 'vms.sqlite3'}"),
                     start_recorder=False)
    client = await aiohttp_client(app)
    site_a, site_b, cam_a, cam_b = await app[GATEWAY].write(web_conftest.seed_world, app)
    sqlite_world = World(client=client, app=app, site_a=site_a, site_b=site_b, camera_a=cam_a,
                         camera_b=cam_b, users={u: r for u, (r, _) in web_conftest.USERS.items()})
    return await _ptz_world(sqlite_world, camsim_factory)


async def ws_connect(ptz_world: PtzWorld, user: str) -> aiohttp.ClientWebSocketResponse:
    """The PTZ WebSocket as ``user`` (a client of its own, so several users can be connected)."""
    from aiohttp.test_utils import TestClient

    client: TestClient = ptz_world.world.client
    session = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
    resp = await session.post(client.make_url("/api/v1/auth/login"),
                              json={"username": user, "password": web_conftest.PASSWORD})
    assert resp.status == 200, await resp.text()
    ws = await session.ws_connect(client.make_url(f"/api/v1/cameras/{ptz_world.camera_id}/ptz/ws"))
    ws._vms_session = session  # type: ignore[attr-defined]  # closed with the socket by close_ws
    return ws


async def close_ws(ws: aiohttp.ClientWebSocketResponse) -> None:
    await ws.close()
    await ws._vms_session.close()  # type: ignore[attr-defined]


async def next_state(ws: aiohttp.ClientWebSocketResponse, timeout_s: float = 3.0) -> dict[str, Any]:
    while True:
        msg = await ws.receive_json(timeout=timeout_s)
        if msg.get("type") == "state":
            return dict(msg)
