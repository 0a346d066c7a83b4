"""Export fixtures: an app on a real database with two sites, users, cameras and indexed segment
files (made once per session by ffmpeg), and an HTTP client."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.export.export_helpers import index_files, make_segment_files
from tests.web.conftest import hashed_password
from vms.db import models as m

PASSWORD = "correct-horse-9"  # the web tests' password: hashed once per run (hashed_password)
BASE_US = 1_792_889_990 * 1_000_000
"""2026-10-25T00:59:50Z: synthetic recordings start 10 s before Berlin's autumn DST change."""


@pytest.fixture(scope="session")
def segment_files(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Ten 2-second segments (20 s) of a 320x180 pattern with audio."""
    from vms.config import load_settings

    ffmpeg = load_settings(None, env={}, overrides={}).ffmpeg_exe()
    return make_segment_files(ffmpeg, tmp_path_factory.mktemp("segments"), seconds=20)


@dataclass
class ExportWorld:
    client: Any
    app: Any
    cam_a: int
    cam_b: int
    cam_a2: int
    run_end_us: int
    gap_start_us: int
    csrf: dict[str, str] = field(default_factory=dict)

    async def login(self, username: str) -> dict[str, str]:
        self.client.session.cookie_jar.clear()
        resp = await self.client.post("/api/v1/auth/login",
                                      json={"username": username, "password": PASSWORD})
        assert resp.status == 200, await resp.text()
        token = (await resp.json())["csrf_token"]
        return {"X-CSRF-Token": token}

    @property
    def service(self) -> Any:
        from web.keys import SERVICES

        return self.app[SERVICES]["exports"]


USERS = {
    "admin1": ("admin", []),
    "operator1": ("operator", ["Site A"]),
    "operator2": ("operator", ["Site A"]),
    "operator_b": ("operator", ["Site B"]),
    "viewer1": ("viewer", ["Site A"]),
}


async def seed_world(app: Any, segment_files: list[Path]) -> tuple[int, int, int, int, int]:
    from web.keys import ACCOUNTS, CLOCK, GATEWAY, SETTINGS

    accounts, clock, settings = app[ACCOUNTS], app[CLOCK], app[SETTINGS]

    def seed() -> tuple[int, int, int, int, int]:
        a = accounts.create_site("Site A", "Europe/Berlin")
        b = accounts.create_site("Site B", "Asia/Almaty")
        for username, (role, sites) in USERS.items():
            accounts.create_user(username, hashed_password(), role, sites)
        now = clock.now_us()
        cams = []
        for site, name in ((a, "Gate A"), (b, "Gate B"), (a, "Yard A")):
            cam = m.Camera.create(site=site, name=name, status_since_us=now, created_us=now,
                                  updated_us=now)
            cams.append(cam.id)
        _, end_a = index_files(settings, cams[0], segment_files, BASE_US)
        index_files(settings, cams[1], segment_files, BASE_US)
        # Yard A: ~9 s, a gap (camera lost) until +15 s, then 10 s more
        _, gap_start = index_files(settings, cams[2], segment_files[:4], BASE_US,
                                   end_reason="camera_lost")
        index_files(settings, cams[2], segment_files[5:], BASE_US + 15_000_000)
        return cams[0], cams[1], cams[2], end_a, gap_start

    return await app[GATEWAY].write(seed)


@pytest.fixture
async def xworld(db_url: str, settings_factory: Any, aiohttp_client: Any,
                 segment_files: list[Path]) -> ExportWorld:
    from vms.app import create_app

    app = create_app(settings_factory(db_url), start_recorder=False)
    client = await aiohttp_client(app)
    cam_a, cam_b, cam_a2, end_us, gap_start = await seed_world(app, segment_files)
    return ExportWorld(client=client, app=app, cam_a=cam_a, cam_b=cam_b, cam_a2=cam_a2,
                       run_end_us=end_us, gap_start_us=gap_start)
