"""Issue 11, item 1, end to end against a real ``vms serve`` on SQLite.

A camera of site A records, is removed, and the same physical camera (same MAC) is adopted into
site B, where it records; the server is killed with SIGKILL mid-segment and started again; then
``vms check``. Before the fix: the removal cascaded site A's index rows away, SQLite handed the
removed camera's id and run ids to the new camera, whose ffmpeg overwrote the old files, and
start-up reconciliation indexed the rest of site A's files under site B's camera, where a site-B
viewer played them. Now: nothing of site A's footage is overwritten (hashes), none of it reaches a
site-B viewer, and site A's viewer still plays it (byte for byte) from the archived camera.

SQLite only: it is the engine that handed ids out again, and the run takes ~40 s of three server
starts and real recording. On PostgreSQL, removal archiving (tests/onboarding/test_onboarding_api.py)
and the site checks on every camera route (tests/web/test_access.py) run on both engines.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.core.test_serve import free_port
from tests.serve_process import ServeProcess
from vms.auth import Accounts
from vms.clock import SystemClock
from vms.config import load_settings
from vms.db.gateway import Gateway
from vms.db.models import Camera, Segment

PASSWORD = "identity-test-pw-7"
pytestmark = [pytest.mark.slow, pytest.mark.engines("sqlite")]


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


async def _wait(predicate: Any, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.3)


async def test_removed_camera_footage_is_kept_apart_forever(db_url: str, tmp_path: Path,
                                                            camsim_factory) -> None:
    fleet = await camsim_factory(count=1)
    cam_info = fleet.cameras[0].info()
    port = free_port()
    config = tmp_path / "vms.toml"
    config.write_text(f'data_dir = "data"\n[server]\nport = {port}\n'
                      f'[database]\nurl = "{db_url}"\n[recording]\nsegment_seconds = 2\n')
    settings = load_settings(config, env={})
    settings.data_dir.mkdir(parents=True)
    gw = Gateway(settings.database_url)
    gw.migrate()
    accounts = Accounts(SystemClock())

    def seed() -> tuple[int, int]:
        a = accounts.create_site("Site A")
        b = accounts.create_site("Site B")
        accounts.create_user("admin1", PASSWORD, "admin")
        accounts.create_user("viewer_a", PASSWORD, "viewer", ["Site A"])
        accounts.create_user("viewer_b", PASSWORD, "viewer", ["Site B"])
        return int(a.id), int(b.id)

    site_a, site_b = gw.write_sync(seed)
    volume = settings.volumes[0].path

    def segments_of(camera_id: int) -> list[Segment]:
        return gw.read_sync(lambda: list(Segment.select().where(Segment.camera == camera_id)
                                         .order_by(Segment.start_us)))

    server = ServeProcess(config, port)
    sessions: list[aiohttp.ClientSession] = []
    try:
        await server.start()
        admin, admin_csrf = await server.session("admin1", PASSWORD)
        sessions.append(admin)
        adopt = {"onvif_url": cam_info["onvif_url"], "username": cam_info["username"],
                 "password": cam_info["password"]}
        async with admin.post("/api/v1/cameras", json={**adopt, "site_id": site_a},
                              headers={"X-CSRF-Token": admin_csrf}) as resp:
            assert resp.status in (200, 201), await resp.text()
            cam_a = int((await resp.json())["id"])
        await _wait(lambda: len([s for s in segments_of(cam_a) if s.stream == "main"]) >= 3, 60,
                    "site A's camera to record three segments")
        async with admin.delete(f"/api/v1/cameras/{cam_a}",
                                headers={"X-CSRF-Token": admin_csrf}) as resp:
            assert resp.status == 200, await resp.text()
            assert (await resp.json())["archived"] is True
        # removal stopped the recording: from here site A's footage must never change
        old = {s.path: _sha(volume / s.path) for s in segments_of(cam_a)}
        old_files = {str(p.relative_to(volume)): _sha(p) for p in volume.rglob("*.mp4")}
        assert set(old) <= set(old_files)

        # the same camera (same MAC) adopted into site B: a new camera, not a re-bind
        async with admin.post("/api/v1/cameras", json={**adopt, "site_id": site_b},
                              headers={"X-CSRF-Token": admin_csrf}) as resp:
            assert resp.status in (200, 201), await resp.text()
            body = await resp.json()
            cam_b = int(body["id"])
            assert body["adoption"]["created"] is True
        assert cam_b > cam_a
        await _wait(lambda: len(segments_of(cam_b)) >= 3, 60, "site B's camera to record")
        await asyncio.sleep(1.0)  # inside a segment
        await server.kill9()
        await server.start()
        await _wait(lambda: len(segments_of(cam_b)) >= 6, 60, "recording after the restart")
        await server.stop()

        check = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "vms.cli", "check", "--json", "--config", str(config),
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        out, err = await check.communicate()
        report = json.loads(out)
        assert check.returncode == 0 and report["problems"] == 0, (report, err.decode())
        assert report["in_quarantine"] == []

        # not one of site A's files was overwritten, moved or indexed anew
        for rel, digest in old_files.items():
            assert (volume / rel).is_file(), f"{rel} vanished"
            assert _sha(volume / rel) == digest, f"{rel} was overwritten"
        a_rows = {s.path for s in segments_of(cam_a)}
        assert a_rows == set(old), "site A's index changed after its camera was removed"
        b_rows = segments_of(cam_b)
        assert not {s.path for s in b_rows} & set(old_files)
        uuids = gw.read_sync(lambda: {c.id: c.uuid for c in Camera.select()})
        assert all(s.path.startswith(uuids[cam_b] + "/") for s in b_rows)

        await server.start()
        viewer_b, _ = await server.session("viewer_b", PASSWORD)
        viewer_a, _ = await server.session("viewer_a", PASSWORD)
        sessions += [viewer_b, viewer_a]
        # site B's viewer: site A's camera does not exist, whatever the URL
        async with viewer_b.get("/api/v1/cameras", params={"archived": "all"}) as resp:
            listed = [c["id"] for c in (await resp.json())["cameras"]]
            assert listed == [cam_b]
        for path in (f"/api/v1/cameras/{cam_a}", f"/api/v1/cameras/{cam_a}/timeline",
                     f"/api/v1/cameras/{cam_a}/playlist.m3u8"):
            async with viewer_b.get(path) as resp:
                assert resp.status == 404, path
        b_ids = {s.id for s in b_rows}
        for seg in segments_of(cam_a):
            async with viewer_b.get(f"/api/v1/cameras/{cam_b}/media/{seg.id}") as resp:
                assert resp.status == 404
        # every byte site B's viewer can fetch is site B's own recording
        for seg_id in sorted(b_ids)[:4]:
            async with viewer_b.get(f"/api/v1/cameras/{cam_b}/media/{seg_id}") as resp:
                assert resp.status == 200
                assert hashlib.sha256(await resp.read()).hexdigest() not in old.values()

        # site A's viewer still plays the archived camera's footage, byte for byte
        async with viewer_a.get(f"/api/v1/cameras/{cam_a}") as resp:
            assert resp.status == 200
            assert (await resp.json())["status"] == "archived"
        async with viewer_a.get("/api/v1/cameras") as resp:
            assert cam_a not in [c["id"] for c in (await resp.json())["cameras"]]
        async with viewer_a.get(f"/api/v1/cameras/{cam_a}/live") as resp:
            assert resp.status == 404  # no live view of a removed camera
        first, last = segments_of(cam_a)[0], segments_of(cam_a)[-1]
        async with viewer_a.get(f"/api/v1/cameras/{cam_a}/timeline",
                                params={"from": str(first.start_us), "to": str(last.end_us)}
                                ) as resp:
            assert resp.status == 200
            assert (await resp.json())["spans"]
        for seg in segments_of(cam_a):
            async with viewer_a.get(f"/api/v1/cameras/{cam_a}/media/{seg.id}") as resp:
                assert resp.status == 200
                assert hashlib.sha256(await resp.read()).hexdigest() == old[seg.path]
    finally:
        for http in sessions:
            await http.close()
        await server.stop()
        gw.close()
