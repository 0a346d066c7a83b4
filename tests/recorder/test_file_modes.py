"""Everything ``vms`` writes is its own user's alone: after ``vms site add``, ``vms user add`` and a
``vms serve`` that records a camsim camera and makes an export, no file or folder under
``data_dir`` (database and its -wal/-shm, key files, lock, segments, export MP4 and manifest) has a
group or other permission bit. Before, they were 0644 and 0755: anyone on the machine could copy
the recordings, the exports and the database with its sessions."""

from __future__ import annotations

import asyncio
import os
import signal
import stat
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp

from tests.core.test_serve import free_port
from tests.recorder.conftest import SMALL

PASSWORD = "correct-horse-9"


async def _cli(config: Path, *argv: str, stdin: bytes = b"") -> str:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "vms.cli", *argv, "--config", str(config),
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(stdin), 60)
    assert proc.returncode == 0, err.decode()
    return out.decode()


async def _until(what: str, check: Any, timeout_s: float) -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        result = await check()
        if result:
            return result
        assert time.monotonic() < deadline, f"{what}: not within {timeout_s} s"
        await asyncio.sleep(0.3)


def _not_private(root: Path) -> list[str]:
    found = []
    for folder, dirs, files in os.walk(root):
        for name in [*dirs, *files]:
            path = Path(folder) / name
            mode = stat.S_IMODE(path.lstat().st_mode)
            if mode & 0o077:
                found.append(f"{path.relative_to(root)} {mode:04o}")
    mode = stat.S_IMODE(root.stat().st_mode)
    if mode & 0o077:
        found.append(f". {mode:04o}")
    return found


async def test_database_recordings_and_exports_are_private(tmp_path: Path, rtsp_factory) -> None:  # type: ignore[no-untyped-def]
    camera = await rtsp_factory(SMALL)
    port = free_port()
    config = tmp_path / "vms.toml"
    config.write_text(f'data_dir = "data"\n[server]\nport = {port}\n'
                      f'[recording]\nsegment_seconds = 2\n')
    data_dir = tmp_path / "data"
    old_umask = os.umask(0o022)  # what a login shell usually gives: the server must not rely on it
    try:
        await _cli(config, "site", "add", "Yard")
        await _cli(config, "user", "add", "admin", "--admin", "--password-stdin",
                   stdin=PASSWORD.encode() + b"\n")
        server = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "vms.cli", "serve", "--config", str(config),
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)
    finally:
        os.umask(old_umask)
    base = f"http://127.0.0.1:{port}"
    try:
        async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
            async def healthy() -> bool:
                assert server.returncode is None, "the server exited"
                try:
                    async with http.get(f"{base}/healthz") as r:
                        return r.status == 200
                except aiohttp.ClientConnectionError:
                    return False

            await _until("server up", healthy, 30)
            async with http.post(f"{base}/api/v1/auth/login",
                                 json={"username": "admin", "password": PASSWORD}) as r:
                assert r.status == 200, await r.text()
                headers = {"X-CSRF-Token": (await r.json())["csrf_token"]}
            async with http.post(f"{base}/api/v1/cameras", headers=headers,
                                 json={"rtsp_url": camera.url("/main"), "name": "gate"}) as r:
                assert r.status == 201, await r.text()
                cam = (await r.json())["id"]

            async def recorded() -> dict[str, Any] | None:
                now_us = time.time_ns() // 1000
                async with http.get(f"{base}/api/v1/cameras/{cam}/timeline",
                                    params={"from": now_us - 60_000_000, "to": now_us}) as r:
                    spans = (await r.json())["spans"]
                    closed = [s for s in spans if s["end_us"] - s["start_us"] >= 3_000_000]
                    return closed[0] if closed else None

            span = await _until("two recorded segments", recorded, 40)
            async with http.post(f"{base}/api/v1/exports", headers=headers, json={
                    "camera_ids": [cam], "from": span["start_us"],
                    "to": span["start_us"] + 2_000_000}) as r:
                assert r.status in (200, 201, 202), await r.text()
                export_id = (await r.json())["id"]

            async def exported() -> bool:
                async with http.get(f"{base}/api/v1/exports/{export_id}") as r:
                    state = (await r.json())["state"]
                    assert state not in ("failed", "cancelled"), state
                    return bool(state == "done")

            await _until("export done", exported, 30)
            async with http.get(f"{base}/api/v1/exports/{export_id}/file") as r:
                assert r.status == 200 and len(await r.read()) > 1000
    finally:
        if server.returncode is None:
            server.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(server.wait(), 15)
            except TimeoutError:
                server.kill()
                await server.wait()

    written = {p.suffix for p in data_dir.rglob("*") if p.is_file()}
    assert {".sqlite3", ".key", ".mp4", ".json"} <= written, written  # we looked at real files
    assert _not_private(data_dir) == []
