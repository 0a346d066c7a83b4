"""Continuous recording of camsim cameras: contiguous segments, durations, SEI-checked start times."""

from __future__ import annotations

import asyncio

import av
import pytest

from camsim.sei import read_capture_times
from recorder.supervisor import RecorderSupervisor
from vms.db.models import Camera, Run, Segment

FRAME_US = 40_000
SEI_TOLERANCE_US = FRAME_US + 40_000
"""One frame, plus: the cut is observed when the keyframe leaves ffmpeg's muxing queue, which waits
for the next audio packet (AAC at 16 kHz: 64 ms apart; measured ~42 ms late on loopback)."""


async def wait_for(predicate, timeout_s: float, interval_s: float = 0.2) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(interval_s)


@pytest.mark.slow
async def test_two_cameras_contiguous_and_timed(rec_env, rtsp_factory, rec_options) -> None:
    env = rec_env
    servers = [await rtsp_factory() for _ in range(2)]
    cams = [env.add_camera(f"cam{i}", s.url("/main")) for i, s in enumerate(servers)]
    sup = RecorderSupervisor(env.gw, env.settings, env.clock, env.secrets, rec_options)
    await sup.start()
    try:
        await wait_for(lambda: all(sup.status(c)["state"] == "recording" for c in cams), 15)
        # nine 2 s segments of each camera indexed (~18 s of recording, against which the
        # index's durations are checked)
        await wait_for(lambda: all(env.gw.read_sync(
            lambda c=c: Segment.select().where(Segment.camera == c).count()) >= 9 for c in cams), 40)
    finally:
        await sup.stop()
        stop_us = env.clock.now_us()
    for cam in cams:
        segs = env.gw.read_sync(lambda c=cam: list(
            Segment.select().where(Segment.camera == c).order_by(Segment.start_us)))
        runs = env.gw.read_sync(lambda c=cam: list(Run.select().where(Run.camera == c)))
        assert len(runs) == 1 and runs[0].end_reason == "shutdown"
        assert runs[0].start_us == segs[0].start_us and runs[0].end_us == segs[-1].end_us
        assert len(segs) >= 9
        for a, b in zip(segs, segs[1:], strict=False):
            assert a.end_us == b.start_us, "segments must be contiguous without overlap"
        for s in segs:
            assert s.state == "ok" and s.duration_us == s.end_us - s.start_us
            assert s.video_codec == "h264" and s.audio_codec == "aac"
            assert (s.width, s.height) == (320, 180)
            assert (env.settings.volumes[0].path / s.path).stat().st_size == s.size_bytes
        indexed = sum(s.duration_us for s in segs)
        wall = stop_us - segs[0].start_us
        assert abs(indexed - wall) <= 0.02 * wall, (indexed, wall)
        # SEI capture times of the first frame of each segment against the index
        errors = []
        for s in segs:
            stamps = read_capture_times(env.settings.volumes[0].path / s.path)
            pts_s, capture_us = stamps[0]
            errors.append(capture_us - (s.start_us + round(pts_s * 1e6)))
        assert max(abs(e) for e in errors) <= SEI_TOLERANCE_US, errors
        with av.open(str(env.settings.volumes[0].path / segs[-1].path)) as c:
            assert sum(1 for _ in c.decode(video=0)) > 0
        camera = env.gw.read_sync(lambda c=cam: Camera.get_by_id(c))
        assert camera.status == "stopped"
