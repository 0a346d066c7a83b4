"""Three cameras recorded at once for 40 s, four times the cameras' RTSP session timeout (10 s
here; 60 s is camsim's default, and that of most cameras): one run each (the sessions were kept
alive, never dropped and re-opened), contiguous segments, no overlap, indexed duration within 1% of
wall time and of the cameras' own capture clock.

40 s is twenty 2-second segments per camera and four laps of the 10-second camsim clip. A longer
recording adds nothing these checks could catch: an error made at every segment boundary grows
with the length and so is the same fraction of any length, while a fixed error at the start or
the stop is a larger fraction of a shorter recording, which makes 1% a tighter bound at 40 s than
it was at two minutes."""

from __future__ import annotations

import asyncio

import pytest

from camsim.sei import read_capture_times
from recorder.supervisor import RecorderSupervisor
from vms.db.models import Run, Segment

RECORD_S = 40
SESSION_TIMEOUT_S = 10
FRAME_US = 40_000  # the test clips are 25 fps


@pytest.mark.slow
async def test_three_cameras_outlive_their_rtsp_session_timeout(rec_env, rtsp_factory, rec_options,
                                             wait_for) -> None:
    env = rec_env
    servers = [await rtsp_factory() for _ in range(3)]
    for server in servers:
        # advertised in SETUP's Session header; camsim drops a session not heard from for this long
        server.session_timeout_s = SESSION_TIMEOUT_S
    cams = [env.add_camera(f"long{i}", s.url("/main")) for i, s in enumerate(servers)]
    sup = RecorderSupervisor(env.gw, env.settings, env.clock, env.secrets, rec_options)
    await sup.start()
    try:
        await wait_for(lambda: all(sup.status(c)["state"] == "recording" for c in cams), 20)
        await asyncio.sleep(RECORD_S)
        stop_us = env.clock.now_us()
    finally:
        await sup.stop()
    stopped_us = env.clock.now_us()
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
        # Wall time, measured independently of ffmpeg: the recording ran at least until stop_us
        # and at most until stop() returned (the last segment runs on while ffmpeg shuts down).
        wall_min = stop_us - segs[0].start_us
        wall_max = stopped_us - segs[0].start_us
        assert wall_min >= (RECORD_S - 5) * 1_000_000
        assert 0.99 * wall_min <= indexed <= 1.01 * wall_max, (indexed / 1e6, wall_min / 1e6,
                                                                wall_max / 1e6)
        # and against the camera's own clock: SEI capture times of the first and last frames
        volume = env.settings.volumes[0].path
        first = read_capture_times(volume / segs[0].path)
        last = read_capture_times(volume / segs[-1].path)
        captured = last[-1][1] - first[0][1] + FRAME_US
        assert abs(indexed - captured) <= 0.01 * captured, (indexed / 1e6, captured / 1e6)
