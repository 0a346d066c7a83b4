"""Export jobs: concurrency limit, progress, cancel (queued and running), and restart recovery."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import stat
from pathlib import Path
from typing import Any

import pytest

from recorder.export import ExportService
from tests.export.conftest import BASE_US, ExportWorld
from vms.config import ExportSettings
from vms.db import models as m
from web.keys import CLOCK, GATEWAY, SETTINGS

SLOW_KB_PER_S = 60
"""The 20 s test recording is ~0.8 MB: paced at this rate its export takes ~14 s."""


def slow_ffmpeg(tmp_path: Path, settings: Any) -> str:
    """The real ffmpeg reading its input at real-time speed (a 20 s export takes ~20 s)."""
    script = tmp_path / "slow-ffmpeg"
    script.write_text(f'#!/bin/sh\nexec "{settings.ffmpeg_exe()}" -readrate 1 "$@"\n')
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    return str(script)


def slow_service(app: Any, tmp_path: Path, muxer: str, **kwargs: Any) -> ExportService:
    """An export service whose copy runs slowly enough to watch: the direct copy paced by
    ``export.max_kb_per_s``, or ffmpeg reading at real-time speed."""
    settings = dataclasses.replace(app[SETTINGS], export=ExportSettings(
        muxer=muxer, max_kb_per_s=SLOW_KB_PER_S))
    ffmpeg = slow_ffmpeg(tmp_path, settings) if muxer == "ffmpeg" else None
    return ExportService(app[GATEWAY], settings, app[CLOCK], ffmpeg_exe=ffmpeg, **kwargs)


async def until(predicate: Any, timeout_s: float = 15.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while not await predicate():
        assert loop.time() < deadline, "condition not met in time"
        await asyncio.sleep(0.1)


@pytest.mark.parametrize("muxer", ["auto", "ffmpeg"])
async def test_limit_progress_and_cancel(xworld: ExportWorld, tmp_path: Path, muxer: str) -> None:
    app = xworld.app
    service = slow_service(app, tmp_path, muxer, concurrency=1)
    await service.start()
    try:
        whole = {"from_us": BASE_US, "to_us": xworld.run_end_us}
        first = await service.create(None, [xworld.cam_a], whole["from_us"], whole["to_us"],
                                     username="t")
        second = await service.create(None, [xworld.cam_a], whole["from_us"], whole["to_us"],
                                      username="t")

        async def running() -> bool:
            state = await service.get(None, first)
            return bool(state["state"] == "running" and 0 < state["progress"] < 1)

        await until(running)
        assert (await service.get(None, second))["state"] == "queued"  # limit of one at a time
        cancelled = await service.cancel(None, second)
        assert cancelled["state"] == "cancelled"
        await service.cancel(None, first)
        final = await service.wait(first, 10)
        assert final["state"] == "cancelled" and final["error"] == "cancelled by the user"
        leftovers = [p.name for p in (app[SETTINGS].data_dir / "exports").iterdir()]
        assert leftovers == [], leftovers
        await asyncio.sleep(0.3)
        assert (await service.get(None, second))["state"] == "cancelled"  # never started
    finally:
        await service.stop()


async def test_interrupted_jobs_resume_or_fail_on_restart(xworld: ExportWorld,
                                                          tmp_path: Path) -> None:
    app = xworld.app
    gw, settings, clock = app[GATEWAY], app[SETTINGS], app[CLOCK]

    # a graceful stop mid-run puts the job back in the queue
    slow = slow_service(app, tmp_path, "auto")
    await slow.start()
    resumed_by_stop = await slow.create(None, [xworld.cam_a], BASE_US, xworld.run_end_us,
                                        username="t")

    async def running() -> bool:
        return (await slow.get(None, resumed_by_stop))["state"] == "running"

    await until(running)
    await slow.stop()
    assert (await slow.get(None, resumed_by_stop))["state"] == "queued"

    # a killed server leaves rows 'running' and partial files behind
    def leave_running() -> tuple[int, int]:
        common = {"state": "running", "progress": 0.4, "from_us": BASE_US,
                  "to_us": BASE_US + 6_000_000, "created_us": clock.now_us(),
                  "manifest": json.dumps({"exported_by": {"username": "t"}})}
        ok = m.Export.create(camera_ids=json.dumps([xworld.cam_a]), **common)
        gone = m.Export.create(camera_ids=json.dumps([999]), **common)
        return ok.id, gone.id

    killed, orphan = await gw.write(leave_running)
    partial = settings.data_dir / "exports" / f"tmp-{killed}"
    partial.mkdir(parents=True, exist_ok=True)
    (partial / "01-camera.mp4").write_bytes(b"half a file")

    restarted = ExportService(gw, settings, clock)
    await restarted.start()
    try:
        for export_id in (resumed_by_stop, killed):
            state = await restarted.wait(export_id, 60)
            assert state["state"] == "done", state
        failed = await restarted.wait(orphan, 10)
        assert failed["state"] == "failed" and "camera 999 no longer exists" in failed["error"]
        assert not partial.exists()
        manifest = await restarted.manifest(None, killed)
        path = settings.data_dir / "exports" / manifest["file"]["name"]
        import hashlib

        assert hashlib.sha256(path.read_bytes()).hexdigest() == manifest["file"]["sha256"]
    finally:
        await restarted.stop()


async def test_an_export_never_takes_the_recordings_reserve(xworld: ExportWorld) -> None:
    """With the recordings' volume on the same disk reserving more than is free, the export is
    refused with the sizes named, and nothing is left behind."""
    app = xworld.app
    settings = app[SETTINGS]
    greedy = tuple(dataclasses.replace(v, min_free_bytes=10**15) for v in settings.volumes)
    service = ExportService(app[GATEWAY], dataclasses.replace(settings, volumes=greedy),
                            app[CLOCK])
    await service.start()
    try:
        export_id = await service.create(None, [xworld.cam_a], BASE_US, xworld.run_end_us,
                                         username="t")
        state = await service.wait(export_id, 30)
    finally:
        await service.stop()
    assert state["state"] == "failed", state
    assert "not enough free space for this export" in state["error"]
    assert "reserved for recordings" in state["error"]
    assert list((settings.data_dir / "exports").iterdir()) == []
    recorded = settings.volumes[0].path
    assert any(recorded.rglob("*.mp4"))  # the recordings are untouched
