"""A full disk, for real: a 3 MiB tmpfs as the storage volume, a camsim stream recorded until it
fills (ENOSPC), and a volume whose free space falls below ``min_free_bytes``. Nothing already on
disk may be lost or mis-indexed, the status must name the volume, retries must back off, and
recording must resume by itself once space is freed."""

from __future__ import annotations

import asyncio
import dataclasses
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from recorder.reconcile import reconcile
from recorder.segments import probe_segment
from recorder.supervisor import RecorderSupervisor
from recorder.volumes import database_uuid, mark_volume
from tests.recorder.conftest import RecEnv
from tests.recorder.tmpfs import leave_free, mounted_tmpfs
from vms.config import Volume
from vms.db.models import Run, Segment

VOLUME_BYTES = 3 * 1024 * 1024
TOLERANCE_US = 100_000


@pytest.fixture
def small_volume(tmp_path: Path) -> Iterator[Path]:
    """A real file system of VOLUME_BYTES (tmpfs), unmounted afterwards."""
    with mounted_tmpfs(tmp_path, VOLUME_BYTES) as mnt:
        yield mnt



def _env_on(env: RecEnv, mnt: Path, min_free_bytes: int = 0) -> RecEnv:
    volume = Volume("main", mnt, min_free_bytes=min_free_bytes)
    # a configured volume records only once marked for this database (`vms storage init`)
    mark_volume(volume, env.gw.write_sync(database_uuid), env.clock.now_us())
    settings = dataclasses.replace(
        env.settings, volumes=(volume,),
        recording=dataclasses.replace(env.settings.recording, segment_seconds=1))
    return dataclasses.replace(env, settings=settings)


def _segments(env: RecEnv, cam: int) -> list[Segment]:
    return env.gw.read_sync(lambda: list(Segment.select().where(Segment.camera == cam)
                                         .order_by(Segment.start_us)))


def _runs(env: RecEnv, cam: int) -> list[Run]:
    return env.gw.read_sync(lambda: list(Run.select().where(Run.camera == cam).order_by(Run.id)))


def _assert_index_true(env: RecEnv, mnt: Path, cam: int) -> list[Segment]:
    """Every indexed segment is on disk, playable, and holds what its row says."""
    segments = _segments(env, cam)
    assert segments
    for seg in segments:
        path = mnt / seg.path
        assert path.exists(), seg.path
        probe = probe_segment(path)
        assert probe.playable, (seg.path, probe.error)
        assert probe.duration_us >= seg.duration_us - TOLERANCE_US, (
            seg.path, seg.state, probe.duration_us, seg.duration_us)
    return segments


async def test_full_disk_stops_cleanly_backs_off_and_resumes(rec_env, rtsp_factory, rec_options,
                                                             small_volume, wait_for) -> None:
    mnt = small_volume
    env = _env_on(rec_env, mnt)
    options = dataclasses.replace(rec_options, disk_resume_margin_bytes=1024 * 1024)
    server = await rtsp_factory()
    cam = env.add_camera("gate", server.url("/main"))
    leave_free(mnt, 300 * 1024)
    sup = RecorderSupervisor(env.gw, env.settings, env.clock, env.secrets, options)
    full_reports: list[str] = []
    sup.volume_full_hooks.append(lambda volume, reason: full_reports.append(reason))
    await sup.start()
    try:
        await wait_for(lambda: sup.status(cam)["state"] == "recording", 15)
        await wait_for(lambda: any(r.end_reason == "disk_full" for r in _runs(env, cam)), 45)
        await wait_for(lambda: sup.status(cam)["state"] == "error", 5)
        status = sup.status(cam)
        assert f"volume 'main' ({mnt}) is full" in str(status["reason"]), status
        assert full_reports and "is full" in full_reports[0]
        stored = env.gw.read_sync(lambda: Run.select().where(Run.camera == cam).count())
        # what is on disk is intact and truly indexed; index and disk agree
        before = _assert_index_true(env, mnt, cam)
        report = await asyncio.to_thread(reconcile, env.gw, env.settings, env.clock, False)
        assert report.problems == 0, report.as_dict()
        # while the volume stays full: retries back off, no ffmpeg is started, no run is added
        (rec,) = sup.recorders()
        started, refusals = rec.runs_started, rec.disk_refusals
        await asyncio.sleep(3.0)
        assert rec.runs_started == started
        assert 1 <= rec.disk_refusals - refusals <= 8, rec.disk_refusals - refusals
        assert env.gw.read_sync(lambda: Run.select().where(Run.camera == cam).count()) == stored
        assert sup.status(cam)["state"] == "error"
        # space is freed: recording resumes by itself
        (mnt / "ballast.bin").unlink()
        await wait_for(lambda: sup.status(cam)["state"] == "recording", 20)
        await wait_for(lambda: len(_segments(env, cam)) >= len(before) + 2, 15)
    finally:
        await sup.stop()
    runs = _runs(env, cam)
    assert "disk_full" in [r.end_reason for r in runs] and runs[-1].end_reason == "shutdown"
    after = _assert_index_true(env, mnt, cam)
    assert {s.path for s in before} <= {s.path for s in after}  # nothing indexed was lost
    report = await asyncio.to_thread(reconcile, env.gw, env.settings, env.clock, False)
    assert report.problems == 0, report.as_dict()


async def test_min_free_bytes_is_kept_free(rec_env, rtsp_factory, rec_options, small_volume,
                                           wait_for) -> None:
    mnt = small_volume
    min_free = 1024 * 1024
    env = _env_on(rec_env, mnt, min_free_bytes=min_free)
    options = dataclasses.replace(rec_options, disk_resume_margin_bytes=64 * 1024)
    server = await rtsp_factory()
    cam = env.add_camera("gate", server.url("/main"))
    leave_free(mnt, min_free - 100 * 1024)
    sup = RecorderSupervisor(env.gw, env.settings, env.clock, env.secrets, options)
    await sup.start()
    lowest_free = [shutil.disk_usage(mnt).free]

    async def watch() -> None:
        while True:
            lowest_free[0] = min(lowest_free[0], shutil.disk_usage(mnt).free)
            await asyncio.sleep(0.05)

    watcher = asyncio.create_task(watch())
    try:
        # below min_free_bytes from the start: refused, nothing recorded, the volume named
        await wait_for(lambda: sup.status(cam)["state"] == "error", 10)
        reason = str(sup.status(cam)["reason"])
        assert f"volume 'main' ({mnt}) is full" in reason and "min_free_bytes" in reason, reason
        assert _runs(env, cam) == []
        # some space: it records, then stops itself before going below min_free_bytes
        leave_free(mnt, min_free + 64 * 1024 + 150 * 1024)
        await wait_for(lambda: sup.status(cam)["state"] == "recording", 20)
        await wait_for(lambda: any(r.end_reason == "disk_full" for r in _runs(env, cam)), 30)
        await wait_for(lambda: sup.status(cam)["state"] == "error", 5)
    finally:
        watcher.cancel()
        await sup.stop()
    segments = _assert_index_true(env, mnt, cam)
    assert all(s.state == "ok" for s in segments)  # closed cleanly, never cut by ENOSPC
    # the stop comes at the first segment boundary (or watchdog tick) below the minimum:
    # at most about one second of this stream (~50 KiB) is written below it
    assert lowest_free[0] > min_free - 256 * 1024, lowest_free[0]
    report = await asyncio.to_thread(reconcile, env.gw, env.settings, env.clock, False)
    assert report.problems == 0, report.as_dict()
