"""One real recording shared by the playback tests (and the playback browser test).

A camsim RTSP camera (320x180, 25 fps, GOP 1 s) is recorded with 1-second segments for three runs
separated by two ``drop_sessions()`` (so two ``camera_lost`` gaps), once per test session, into a
SQLite database in a session temporary folder. The database also holds a site in Europe/Berlin, an
admin and a viewer of another site, a camera of that other site with one (fake) segment row, and a
motion event inside the recording.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from camsim.media import ClipSpec
from camsim.rtsp import RtspServer
from recorder.run import RecorderOptions
from recorder.supervisor import RecorderSupervisor
from vms.auth import Accounts
from vms.clock import SystemClock
from vms.config import Settings, load_settings
from vms.db.gateway import Gateway
from vms.db.models import Camera, CameraStream, Event, Run, Segment
from vms.secrets import SecretBox

PASSWORD = "playback-Pass-77"
SPEC = ClipSpec(width=320, height=180, fps=25, bitrate_kbps=300, audio="aac", seconds=10)
OPTIONS = RecorderOptions(backoff_initial_s=0.2, backoff_max_s=1.0, auth_retry_s=1.0,
                          stall_timeout_s=4.0, startup_timeout_s=10.0, stop_timeout_s=5.0,
                          socket_timeout_s=5.0)


@dataclass
class Recording:
    settings: Settings
    camera_id: int
    other_camera_id: int
    other_segment_id: int
    site_timezone: str
    segments: list[dict] = field(default_factory=list)   # Segment rows of camera_id, by start
    runs: list[dict] = field(default_factory=list)       # Run rows of camera_id, by start
    event_us: int = 0

    def file_of(self, segment: dict) -> Path:
        return self.settings.volumes[0].path / segment["path"]


async def _record(settings: Settings, cache_dir: Path | None) -> Recording:
    gw = Gateway(settings.database_url)
    gw.migrate()
    clock = SystemClock()
    secrets = SecretBox.from_key_file(settings.key_file)
    server = RtspServer("127.0.0.1", 0, cache_dir=cache_dir)
    server.add_stream("/main", SPEC)
    await server.start()
    accounts = Accounts(clock)

    def seed() -> tuple[int, int, int]:
        now = clock.now_us()
        site = accounts.create_site("Courtyard 7", "Europe/Berlin")
        other = accounts.create_site("Other yard", "Asia/Almaty")
        accounts.create_user("pb_admin", PASSWORD, "admin")
        accounts.create_user("pb_viewer", PASSWORD, "viewer", ["Courtyard 7"])
        accounts.create_user("pb_other", PASSWORD, "viewer", ["Other yard"])
        cam = Camera.create(site=site, name="Yard gate", password_enc=secrets.encrypt(""),
                            status_since_us=now, created_us=now, updated_us=now)
        CameraStream.create(camera=cam, kind="main", rtsp_url=server.url("/main"))
        other_cam = Camera.create(site=other, name="Other gate", password_enc=secrets.encrypt(""),
                                  enabled=False, recording_mode="off", status_since_us=now,
                                  created_us=now, updated_us=now)
        run = Run.create(camera=other_cam, start_us=now - 10_000_000, end_us=now - 9_000_000,
                         end_reason="shutdown")
        seg = Segment.create(camera=other_cam, run=run, volume="main", path="other/seg.mp4",
                             start_us=now - 10_000_000, end_us=now - 9_000_000,
                             duration_us=1_000_000, size_bytes=10)
        return int(cam.id), int(other_cam.id), int(seg.id)

    cam_id, other_id, other_seg = gw.write_sync(seed)
    (settings.volumes[0].path / "other").mkdir(parents=True, exist_ok=True)
    (settings.volumes[0].path / "other" / "seg.mp4").write_bytes(b"0123456789")

    def count() -> int:
        return gw.read_sync(lambda: Segment.select().where(Segment.camera == cam_id).count())

    async def wait_segments(n: int) -> None:
        for _ in range(300):
            if count() >= n:
                return
            await asyncio.sleep(0.05)
        raise AssertionError(f"recording did not reach {n} segments")

    sup = RecorderSupervisor(gw, settings, clock, secrets, OPTIONS)
    await sup.start()
    try:
        await wait_segments(3)
        server.drop_sessions()
        await wait_segments(6)
        server.drop_sessions()
        await wait_segments(9)
    finally:
        await sup.stop()
        await server.stop()

    def rows() -> tuple[list[dict], list[dict]]:
        segs = list(Segment.select().where(Segment.camera == cam_id).order_by(Segment.start_us)
                    .dicts())
        runs = list(Run.select().where(Run.camera == cam_id).order_by(Run.start_us).dicts())
        return segs, runs

    segs, runs = gw.read_sync(rows)
    event_us = segs[1]["start_us"] + 300_000
    gw.write_sync(lambda: Event.create(camera=cam_id, site=Camera.get_by_id(cam_id).site_id,
                                       type="motion", start_us=event_us,
                                       end_us=event_us + 500_000, data=json.dumps({"zone": 1})))
    gw.close()
    return Recording(settings, cam_id, other_id, other_seg, "Europe/Berlin", segs, runs, event_us)


_KEY = pytest.StashKey["Recording"]()


def shared_recording(request: pytest.FixtureRequest) -> Recording:
    """The session's recording, made on first use (in a thread with its own event loop)."""
    config = request.config
    if _KEY not in config.stash:
        base = request.getfixturevalue("tmp_path_factory").mktemp("playback-rec")
        cache_dir = request.getfixturevalue("camsim_cache_dir")
        settings = load_settings(None, env={}, overrides={
            "data_dir": base / "data", "server.port": 0, "recording.segment_seconds": 1})
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            config.stash[_KEY] = pool.submit(asyncio.run, _record(settings, cache_dir)).result(120)
    return config.stash[_KEY]
