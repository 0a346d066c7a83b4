"""Fixtures for recorder tests: settings and a migrated SQLite database in tmp_path, camsim RTSP
cameras on 127.0.0.1 with small clips, and a helper that adds a camera row pointing at one."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from camsim.media import ClipSpec
from camsim.rtsp import RtspServer
from recorder.run import RecorderOptions
from vms.clock import SystemClock
from vms.config import Settings
from vms.db.gateway import Gateway
from vms.db.models import Camera, CameraStream, Site
from vms.secrets import SecretBox

SMALL = ClipSpec(width=320, height=180, fps=25, bitrate_kbps=300, audio="aac", seconds=10)
FAST = RecorderOptions(backoff_initial_s=0.2, backoff_max_s=1.0, auth_retry_s=1.0,
                       stall_timeout_s=4.0, startup_timeout_s=10.0, stop_timeout_s=5.0,
                       socket_timeout_s=5.0)


@dataclass
class RecEnv:
    settings: Settings
    gw: Gateway
    secrets: SecretBox
    clock: SystemClock
    tmp_path: Path

    def add_camera(self, name: str, url: str, username: str = "", password: str = "",
                   kinds: tuple[str, ...] = ("main",)) -> int:
        now = self.clock.now_us()

        def create() -> int:
            site, _ = Site.get_or_create(name="test", defaults={"created_us": now})
            cam = Camera.create(site=site, name=name, username=username,
                                password_enc=self.secrets.encrypt(password),
                                status_since_us=now, created_us=now, updated_us=now)
            for kind in kinds:
                CameraStream.create(camera=cam, kind=kind, rtsp_url=url)
            return int(cam.id)

        return self.gw.write_sync(create)


@pytest.fixture
def rec_env(tmp_path: Path, settings_factory: Callable[..., Settings]) -> Iterator[RecEnv]:
    settings = settings_factory(**{"recording.segment_seconds": 2})
    gw = Gateway(settings.database_url)
    gw.migrate()
    env = RecEnv(settings, gw, SecretBox.from_key_file(settings.key_file), SystemClock(), tmp_path)
    try:
        yield env
    finally:
        gw.close()


RtspFactory = Callable[..., Awaitable[RtspServer]]


@pytest_asyncio.fixture
async def rtsp_factory(camsim_cache_dir: Path) -> AsyncIterator[RtspFactory]:
    servers: list[RtspServer] = []

    async def make(spec: ClipSpec = SMALL, **kwargs: Any) -> RtspServer:
        server = RtspServer("127.0.0.1", 0, cache_dir=camsim_cache_dir, **kwargs)
        server.add_stream("/main", spec)
        await server.start()
        servers.append(server)
        return server

    try:
        yield make
    finally:
        for server in servers:
            await server.stop()


@pytest.fixture
def rec_options() -> RecorderOptions:
    return FAST


async def wait_until(predicate: Callable[[], bool], timeout_s: float,
                     interval_s: float = 0.1) -> None:
    import asyncio

    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError(f"condition not met within {timeout_s}s")
        await asyncio.sleep(interval_s)


@pytest.fixture
def wait_for() -> Callable[..., Awaitable[None]]:
    return wait_until
