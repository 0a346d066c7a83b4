"""The emergency purge on a real small file system: two camsim cameras record into a tmpfs that
fills up; the space watcher deletes the oldest unprotected footage, so recording never stops
(no ``disk_full`` run), held footage stays, and the free space never goes below the floor."""

from __future__ import annotations

import asyncio
import dataclasses
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from recorder.reconcile import reconcile
from recorder.retention import RetentionOptions
from recorder.retention_service import RetentionService
from recorder.supervisor import RecorderSupervisor
from recorder.volumes import database_uuid, mark_volume
from tests.recorder.conftest import RecEnv
from tests.recorder.tmpfs import leave_free, mounted_tmpfs
from vms.config import Volume
from vms.db.models import AuditLog, Hold, Run, Segment

VOLUME_BYTES = 16 * 1024 * 1024
FLOOR_BYTES = 1024 * 1024


@pytest.fixture
def tmpfs_volume(tmp_path: Path) -> Iterator[Path]:
    """A real file system of VOLUME_BYTES (tmpfs), unmounted afterwards."""
    with mounted_tmpfs(tmp_path, VOLUME_BYTES) as mnt:
        yield mnt



def _segments(env: RecEnv, cam: int) -> list[Segment]:
    return env.gw.read_sync(lambda: list(Segment.select().where(Segment.camera == cam)
                                         .order_by(Segment.start_us)))


@pytest.mark.slow
async def test_emergency_purge_keeps_two_cameras_recording(rec_env, rtsp_factory, rec_options,
                                                           tmpfs_volume, wait_for) -> None:
    mnt = tmpfs_volume
    volume = Volume("main", mnt, min_free_bytes=FLOOR_BYTES)
    # a configured volume records only once marked for this database (`vms storage init`)
    mark_volume(volume, rec_env.gw.write_sync(database_uuid), rec_env.clock.now_us())
    settings = dataclasses.replace(
        rec_env.settings, volumes=(volume,),
        recording=dataclasses.replace(rec_env.settings.recording, segment_seconds=1))
    env = dataclasses.replace(rec_env, settings=settings)
    cams = []
    for name in ("gate", "yard"):
        server = await rtsp_factory()
        cams.append(env.add_camera(name, server.url("/main")))
    leave_free(mnt, FLOOR_BYTES + 1_500_000)
    registry = CollectorRegistry()
    service = RetentionService(env.gw, env.settings, env.clock, registry=registry,
                               options=RetentionOptions(check_s=0.3, horizon_s=6.0,
                                                        rate_window_s=8.0,
                                                        min_margin_bytes=256 * 1024))
    sup = RecorderSupervisor(env.gw, env.settings, env.clock, env.secrets, rec_options)
    sup.volume_full_hooks.append(service.volume_full)
    await sup.start()
    service.start()

    def purged_bytes() -> float:
        return registry.get_sample_value("vms_retention_deleted_bytes_total",
                                         {"reason": "space"}) or 0.0

    min_free = VOLUME_BYTES
    try:
        await wait_for(lambda: all(len(_segments(env, c)) >= 3 for c in cams), 30)
        # evidence: the first two seconds of the gate camera are held
        first = _segments(env, cams[0])[:2]
        env.gw.write_sync(lambda: Hold.create(camera=cams[0], start_us=first[0].start_us,
                                              end_us=first[1].end_us, reason="incident",
                                              created_us=env.clock.now_us()))
        held = {s.path for s in first}
        # record until the purge has freed more than the volume had free at the start
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 120
        while purged_bytes() < 2_500_000:
            assert loop.time() < deadline, f"only {purged_bytes()} bytes purged in 120 s"
            min_free = min(min_free, (await asyncio.to_thread(shutil.disk_usage, mnt)).free)
            await asyncio.sleep(0.1)
        # both cameras are still recording, their newest footage is recent
        now_us = env.clock.now_us()
        for cam in cams:
            assert sup.status(cam)["state"] == "recording", sup.status(cam)
            newest = _segments(env, cam)[-1]
            assert now_us - newest.end_us < 6_000_000, (cam, now_us - newest.end_us)
    finally:
        await service.stop()
        await sup.stop()
    assert min_free >= FLOOR_BYTES, f"free space fell to {min_free} (floor {FLOOR_BYTES})"
    runs = env.gw.read_sync(lambda: [(r.camera_id, r.end_reason) for r in Run.select()])
    assert not [r for r in runs if r[1] == "disk_full"], runs
    # the oldest unprotected footage went first; the held footage is intact
    gate = _segments(env, cams[0])
    assert held <= {s.path for s in gate}
    assert all((mnt / path).exists() for path in held)
    oldest_unheld = [s for s in gate if s.path not in held][0]
    assert oldest_unheld.start_us > first[1].end_us + 3_000_000, "old unheld footage was purged"
    for cam in cams:
        assert _segments(env, cam)[0].start_us > first[0].start_us or cam == cams[0]
    audits = env.gw.read_sync(lambda: AuditLog.select().where(
        AuditLog.action == "retention.purge").count())
    assert audits >= 1
    report = await asyncio.to_thread(reconcile, env.gw, env.settings, env.clock, False)
    assert report.problems == 0, report.as_dict()
