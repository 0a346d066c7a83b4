"""A running app with a small world: two sites, a user of each role, cameras on both sites."""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Any

import pytest

from tests.leakcheck import register_sensitive
from vms.db import models as m
from vms.passwords import HashedPassword, hash_new_password

PASSWORD = "correct-horse-9"
CAMERA_PASSWORD = "cam-Secret-4242"


@dataclass
class World:
    client: Any
    app: Any
    site_a: int
    site_b: int
    camera_a: int
    camera_b: int
    users: dict[str, str] = field(default_factory=dict)  # username -> role
    csrf: dict[str, str] = field(default_factory=dict)

    async def login(self, username: str, password: str = PASSWORD) -> str:
        """Sign in (this client's cookie jar then holds the session); returns the CSRF token."""
        self.client.session.cookie_jar.clear()
        resp = await self.client.post("/api/v1/auth/login",
                                      json={"username": username, "password": password})
        assert resp.status == 200, await resp.text()
        token = (await resp.json())["csrf_token"]
        self.csrf[username] = token
        return token


USERS = {
    "admin1": ("admin", []),
    "installer1": ("installer", ["Site A"]),
    "operator1": ("operator", ["Site A"]),
    "viewer1": ("viewer", ["Site A"]),
    "viewer_b": ("viewer", ["Site B"]),
}


register_sensitive(CAMERA_PASSWORD)


@functools.cache
def hashed_password() -> HashedPassword:
    """PASSWORD hashed once per run (argon2 costs ~0.15 s; every world has five users)."""
    return hash_new_password(PASSWORD)


def seed_world(app: Any) -> tuple[int, int, int, int]:
    """Two sites, a user of each role (:data:`USERS`), a camera on each site; run it through the
    app's gateway writer. Returns (site A, site B, camera A, camera B) ids."""
    from web.keys import ACCOUNTS, CLOCK, SECRETS

    accounts = app[ACCOUNTS]
    clock = app[CLOCK]
    secrets = app[SECRETS]
    a = accounts.create_site("Site A", "Asia/Almaty")
    b = accounts.create_site("Site B", "Europe/Berlin")
    for username, (role, sites) in USERS.items():
        accounts.create_user(username, hashed_password(), role, sites)
    now = clock.now_us()
    cams = []
    for site, name in ((a, "Gate A"), (b, "Gate B")):
        cam = m.Camera.create(site=site, name=name, username="admin",
                              password_enc=secrets.encrypt(CAMERA_PASSWORD),
                              onvif_url="http://127.0.0.1:9/onvif/device_service",
                              status_since_us=now, created_us=now, updated_us=now)
        m.CameraStream.create(camera=cam, kind="main", rtsp_url="rtsp://127.0.0.1:9/main",
                              codec="H264", width=1920, height=1080, fps=25)
        cams.append(cam.id)
    return a.id, b.id, cams[0], cams[1]


@pytest.fixture
async def world(db_url: str, settings_factory, aiohttp_client) -> World:  # type: ignore[no-untyped-def]
    from vms.app import create_app
    from web.keys import GATEWAY

    settings = settings_factory(db_url)
    app = create_app(settings, start_recorder=False)
    client = await aiohttp_client(app)
    site_a, site_b, cam_a, cam_b = await app[GATEWAY].write(seed_world, app)
    return World(client=client, app=app, site_a=site_a, site_b=site_b, camera_a=cam_a,
                 camera_b=cam_b, users={u: r for u, (r, _) in USERS.items()})
