"""Scan jobs below the web layer (onvif_bridge/scan_jobs.py): their refusals are domain errors,
which the API answers as before (404, 429).

The scans probe a loopback UDP port nothing listens on, so they run until their window ends or
they are cancelled; nothing is multicast.
"""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

import pytest

from onvif_bridge.adopt import Onboarding
from onvif_bridge.scan_jobs import MAX_JOBS, ScanJobNotFound, ScanJobs, TooManyScans
from tests.onboarding.conftest import api
from tests.web.conftest import World
from vms.auth import Principal
from vms.clock import SystemClock
from vms.db.gateway import Gateway
from vms.secrets import SecretBox


def silent_target() -> str:
    """host:port of a loopback UDP port that answers nothing (bound here, never read)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    silent_target.keep.append(sock)  # type: ignore[attr-defined]
    return f"127.0.0.1:{sock.getsockname()[1]}"


silent_target.keep = []  # type: ignore[attr-defined]


async def test_scan_jobs_refuse_with_domain_errors(tmp_path: Path) -> None:
    gateway = Gateway(f"sqlite:///{tmp_path / 'vms.sqlite3'}")
    await asyncio.to_thread(gateway.migrate)
    clock = SystemClock()
    onboarding = Onboarding(gateway, SecretBox.from_key_file(tmp_path / "secret.key"), clock)
    jobs = ScanJobs(gateway, clock, onboarding)
    owner = Principal(1, "installer1", "installer", frozenset({1}))
    other = Principal(2, "installer2", "installer", frozenset({1}))
    admin = Principal(3, "admin1", "admin", None)
    target = silent_target()
    try:
        started = [jobs.start(owner, [target], "", "", 30.0) for _ in range(MAX_JOBS)]
        with pytest.raises(TooManyScans, match="too many discovery scans running"):
            jobs.start(owner, [target], "", "", 30.0)
        with pytest.raises(ScanJobNotFound, match="no such discovery job"):
            jobs.get(other, started[0].id)
        with pytest.raises(ScanJobNotFound, match="no such discovery job"):
            jobs.get(owner, "unknown")
        assert jobs.get(admin, started[0].id) is started[0]  # admins see every scan
        with pytest.raises(ScanJobNotFound, match="no such device in this scan"):
            await jobs.thumbnail(started[0], 0)
    finally:
        await jobs.stop()
        await asyncio.to_thread(gateway.close)
    assert all(job.task is not None and job.task.cancelled() for job in started)


async def test_the_api_answers_scan_refusals_as_before(world: World) -> None:
    target = silent_target()
    body = {"targets": [target], "timeout_s": 30}
    for _ in range(MAX_JOBS):
        resp = await api(world, "POST", "/api/v1/discovery", "installer1", body)
        assert resp.status == 202, await resp.text()
    job_id = (await resp.json())["id"]
    resp = await api(world, "POST", "/api/v1/discovery", "installer1", body)
    assert resp.status == 429
    assert "too many discovery scans running" in (await resp.json())["error"]["message"]
    resp = await api(world, "GET", f"/api/v1/discovery/{job_id}/snapshot?device=0", "installer1")
    assert resp.status == 404
    assert "no such device in this scan" in (await resp.json())["error"]["message"]
    resp = await api(world, "GET", "/api/v1/discovery/nosuchjob", "installer1")
    assert resp.status == 404
