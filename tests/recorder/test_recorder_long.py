"""Three cameras recorded for over two minutes: contiguous segments, no overlap, indexed duration
within 1% of wall time, one run each."""

from __future__ import annotations

import asyncio

import pytest

from recorder.supervisor import RecorderSupervisor
from vms.db.models import Run, Segment

RECORD_S = 125


@pytest.mark.slow
async def test_three_cameras_for_two_minutes(rec_env, rtsp_factory, rec_options,
                                             wait_for) -> None:
    env = rec_env
    servers = [await rtsp_factory() for _ in range(3)]
    cams = [env.add_camera(f"long{i}", s.url("/main")) for i, s in enumerate(servers)]
    sup = RecorderSupervisor(env.gw, env.settings, env.clock, env.secrets, rec_options)
    await sup.start()
    try:
        await wait_for(lambda: all(sup.status(c)["state"] == "recording" for c in cams), 20)
        await asyncio.sleep(RECORD_S)
        stop_us = env.clock.now_us()
    finally:
        await sup.stop()
    for cam in cams:
        segs = env.gw.read_sync(lambda c=cam: list(
            Segment.select().where(Segment.camera == c).order_by(Segment.start_us)))
        runs = env.gw.read_sync(lambda c=cam: list(Run.select().where(Run.camera == c)))
        assert [r.end_reason for r in runs] == ["shutdown"]
        assert len(segs) >= RECORD_S // 2 - 2
        for a, b in zip(segs, segs[1:], strict=False):
            assert a.end_us == b.start_us, "contiguous, no overlap"
            assert a.duration_us > 0
        assert all(s.state == "ok" and s.run_id == runs[0].id for s in segs)
        indexed = sum(s.duration_us for s in segs)
        wall = stop_us - segs[0].start_us
        assert wall >= 120_000_000
        assert abs(indexed - wall) <= 0.01 * wall, (indexed / 1e6, wall / 1e6)
