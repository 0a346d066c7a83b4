"""Recording modes: schedule windows (site time zone), event mode with pre/post-roll from the ring
buffer, main and sub stream recorded independently, per-stream RTSP transport."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from camsim.media import ClipSpec
from camsim.rtsp import RtspServer
from camsim.sei import read_capture_times
from recorder.schedule import ScheduleError, in_window, parse_schedule
from recorder.segments import SEGMENT_RE, iter_segment_files
from recorder.supervisor import RecorderSupervisor
from tests.recorder.conftest import SMALL
from vms.bus import CameraEvent, EventBus
from vms.clock import datetime_to_us
from vms.db.models import Camera, CameraStream, Run, Segment, Site

GOP_US = 1_000_000  # camsim clips: one keyframe a second
SEI_TOLERANCE_US = 80_000


def _us(tz: str, *args: int) -> int:
    return datetime_to_us(datetime(*args, tzinfo=ZoneInfo(tz)))  # type: ignore[misc]


def test_schedule_windows_in_site_time_zone() -> None:
    school = parse_schedule('[{"days": "mon-fri", "start": "07:00", "end": "19:00"}]')
    tz = "Asia/Almaty"
    assert in_window(school, tz, _us(tz, 2026, 11, 27, 7, 0))  # Friday 07:00 local
    assert not in_window(school, tz, _us(tz, 2026, 11, 27, 6, 59, 59))
    assert not in_window(school, tz, _us(tz, 2026, 11, 27, 19, 0))
    assert not in_window(school, tz, _us(tz, 2026, 11, 28, 12, 0))  # Saturday
    # the same UTC instant is inside for Almaty and outside for Berlin
    instant = _us("UTC", 2026, 11, 27, 3, 0)  # 08:00 in Almaty, 04:00 in Berlin
    assert in_window(school, tz, instant) and not in_window(school, "Europe/Berlin", instant)
    # DST: 07:00 local in Berlin is 05:00 UTC in summer and 06:00 UTC in winter
    berlin = "Europe/Berlin"
    assert in_window(school, berlin, _us("UTC", 2026, 7, 1, 5, 0))
    assert not in_window(school, berlin, _us("UTC", 2026, 12, 1, 5, 0))
    # a night window crosses midnight: Friday 22:00 → Saturday 06:00
    night = parse_schedule('[{"days": "fri", "start": "22:00", "end": "06:00"}]')
    assert in_window(night, tz, _us(tz, 2026, 11, 28, 5, 59))
    assert not in_window(night, tz, _us(tz, 2026, 11, 29, 5, 59))
    assert not in_window(night, tz, _us(tz, 2026, 11, 27, 21, 59))
    assert parse_schedule("") == []
    for bad in ('{"start": 1}', '[{"start": "25:00", "end": "26:00"}]',
                '[{"days": "moonday", "start": "01:00", "end": "02:00"}]', "not json"):
        with pytest.raises(ScheduleError):
            parse_schedule(bad)


def _set_mode(env, camera_id: int, **fields) -> None:  # type: ignore[no-untyped-def]
    env.gw.write_sync(lambda: Camera.update(**fields).where(Camera.id == camera_id).execute())


def _segments(env, camera_id: int, stream: str = "main") -> list[Segment]:  # type: ignore[no-untyped-def]
    return env.gw.read_sync(lambda: list(Segment.select().where(
        (Segment.camera == camera_id) & (Segment.stream == stream)).order_by(Segment.start_us)))


def _runs(env, camera_id: int, stream: str = "main") -> list[Run]:  # type: ignore[no-untyped-def]
    return env.gw.read_sync(lambda: list(Run.select().where(
        (Run.camera == camera_id) & (Run.stream == stream)).order_by(Run.id)))


def _seq(path: str) -> int:
    """The sequence number of a segment file of the run (``<run uuid>-<seq>.mp4``)."""
    match = SEGMENT_RE.match(path.rsplit("/", 1)[-1])
    assert match, path
    return int(match["seq"])


def _seqs_on_disk(volume) -> list[int]:  # type: ignore[no-untyped-def]
    """The sequence numbers of the segment files on the volume now (one run), ascending."""
    return sorted(_seq(p) for p in iter_segment_files(volume))


async def _stays(predicate, duration_s: float) -> None:  # type: ignore[no-untyped-def]
    """Assert that ``predicate`` holds throughout ``duration_s`` (checked every 50 ms): the
    legitimate wait of a test that nothing happens."""
    loop = asyncio.get_running_loop()
    end = loop.time() + duration_s
    while loop.time() < end:
        assert predicate()
        await asyncio.sleep(0.05)
    assert predicate()


async def test_scheduled_mode_records_only_inside_its_window(rec_env, rtsp_factory, rec_options,
                                                             wait_for) -> None:
    env = rec_env
    server = await rtsp_factory()
    cam = env.add_camera("school", server.url("/main"))
    tz = "Asia/Almaty"
    env.gw.write_sync(lambda: Site.update(timezone=tz).execute())
    now = datetime.now(ZoneInfo(tz))
    opens, closes = now + timedelta(seconds=4), now + timedelta(seconds=12)
    window = {"days": "*", "start": opens.strftime("%H:%M:%S"), "end": closes.strftime("%H:%M:%S")}
    _set_mode(env, cam, recording_mode="scheduled", schedule=json.dumps([window]))
    open_us = datetime_to_us(opens.replace(microsecond=0))
    close_us = datetime_to_us(closes.replace(microsecond=0))
    options = dataclasses.replace(rec_options, schedule_tick_s=0.2)
    sup = RecorderSupervisor(env.gw, env.settings, env.clock, env.secrets, options)
    await sup.start()
    try:
        status = sup.status(cam)
        assert status["state"] == "stopped" and status["in_window"] is False
        assert "outside the recording window" in str(status["reason"])
        await wait_for(lambda: sup.status(cam)["state"] == "recording", 15)
        assert env.clock.now_us() >= open_us
        await wait_for(lambda: sup.status(cam)["state"] == "stopped", 20)
        # the run is closed by the window's end, and nothing starts again: five schedule ticks
        # (0.2 s each) with no new run and the state stopped (a restart shows within one tick)
        await wait_for(lambda: [r.end_reason for r in _runs(env, cam)] == ["schedule"], 10)
        await _stays(lambda: sup.status(cam)["state"] == "stopped" and len(_runs(env, cam)) == 1,
                     1.0)
    finally:
        await sup.stop()
    segs = _segments(env, cam)
    runs = _runs(env, cam)
    assert len(runs) == 1 and runs[0].end_reason == "schedule", [r.end_reason for r in runs]
    assert segs and segs[0].start_us >= open_us - 100_000
    # the last segment ends when ffmpeg has stopped: a schedule tick (0.2 s) plus its graceful
    # stop and the last segment's flush — under 1 s on a quiet machine, 1.7-2.1 s seen at load 20-30
    assert segs[-1].end_us <= close_us + 2_500_000, (segs[-1].end_us - close_us) / 1e6
    assert sum(s.duration_us for s in segs) >= 5_000_000
    assert all(s.kind == "continuous" for s in segs)


async def test_event_mode_keeps_pre_roll_and_post_roll(rec_env, rtsp_factory, rec_options,
                                                      wait_for) -> None:
    env = rec_env
    server = await rtsp_factory()
    cam = env.add_camera("door", server.url("/main"))
    _set_mode(env, cam, recording_mode="event", event_pre_s=3, event_post_s=2)
    bus = EventBus()
    options = dataclasses.replace(rec_options, event_segment_seconds=1, ring_margin_s=2.0)
    sup = RecorderSupervisor(env.gw, env.settings, env.clock, env.secrets, options, bus=bus)
    await sup.start()
    volume = env.settings.volumes[0]
    try:
        await wait_for(lambda: sup.status(cam)["state"] == "recording", 15)
        # the ring fills and is pruned: its first file is deleted once it is older than the
        # pre-roll plus the margin (5 s)
        await wait_for(lambda: (_seqs_on_disk(volume) or [0])[0] >= 1, 20)
        assert _segments(env, cam) == [], "nothing is indexed before an event"
        ring_files = len(iter_segment_files(volume))
        assert ring_files <= 3 + 2 + 3, f"ring not pruned: {ring_files} files"
        event_us = env.clock.now_us()
        bus.publish(CameraEvent(camera_id=cam, site_id=1, type="doorbell", state=None,
                                at_us=event_us))
        # kept: the segments up to the first that reaches the end of the post-roll; no later
        # segment can be wanted (each starts where the previous ends, at or after that instant)
        await wait_for(lambda: any(s.end_us >= event_us + 2_000_000
                                   for s in _segments(env, cam)), 15)
        kept = _segments(env, cam)
        # post-roll is over: the recorder closes (and so decides on) two more segments, and
        # keeps neither
        last_seq = _seq(kept[-1].path)
        await wait_for(lambda: _seqs_on_disk(volume)[-1] >= last_seq + 3, 15)
        after = _segments(env, cam)
    finally:
        await sup.stop()
    assert kept and [s.id for s in after] == [s.id for s in kept]
    assert all(s.kind == "event" and s.state == "ok" for s in kept)
    for a, b in zip(kept, kept[1:], strict=False):
        assert a.end_us == b.start_us
    assert kept[-1].end_us >= event_us + 2_000_000
    assert kept[-1].end_us <= event_us + 2_000_000 + 2 * GOP_US
    # pre-roll: the first kept frame was captured at least 3 s before the event (within a GOP)
    pts_s, capture_us = read_capture_times(volume.path / kept[0].path)[0]
    assert capture_us <= event_us - 3_000_000 + GOP_US, (event_us - capture_us) / 1e6
    assert capture_us >= event_us - 3_000_000 - 3 * GOP_US
    assert abs(capture_us - (kept[0].start_us + round(pts_s * 1e6))) <= SEI_TOLERANCE_US
    runs = _runs(env, cam)
    assert len(runs) == 1 and runs[0].mode == "event"
    assert runs[0].start_us == kept[0].start_us and runs[0].end_us == kept[-1].end_us
    # the ring is gone: disk and index agree
    on_disk = set(iter_segment_files(volume))
    assert on_disk == {s.path for s in kept}


async def test_continuous_mode_marks_event_segments(rec_env, rtsp_factory, rec_options,
                                                    wait_for) -> None:
    env = rec_env
    server = await rtsp_factory()
    cam = env.add_camera("yard", server.url("/main"))
    _set_mode(env, cam, event_pre_s=1, event_post_s=1)
    bus = EventBus()
    sup = RecorderSupervisor(env.gw, env.settings, env.clock, env.secrets, rec_options, bus=bus)
    await sup.start()
    try:
        await wait_for(lambda: len(_segments(env, cam)) >= 2, 20)
        event_us = env.clock.now_us()
        bus.publish(CameraEvent(camera_id=cam, site_id=1, type="motion", state=None,
                                at_us=event_us))
        # indexed up to a continuous segment after the event's keep window (post-roll 1 s)
        await wait_for(lambda: any(s.kind == "continuous" and s.start_us >= event_us + 1_000_000
                                   for s in _segments(env, cam)), 20)
    finally:
        await sup.stop()
    segs = _segments(env, cam)
    kinds = {s.kind for s in segs}
    assert kinds == {"continuous", "event"}
    for s in segs:
        overlaps = s.end_us > event_us - 1_000_000 and s.start_us < event_us + 1_000_000
        assert (s.kind == "event") == overlaps, (s.start_us - event_us, s.end_us - event_us)


async def test_main_and_sub_stream_recorded_independently(rec_env, camsim_cache_dir, rec_options,
                                                          wait_for) -> None:
    env = rec_env
    server = RtspServer("127.0.0.1", 0, cache_dir=camsim_cache_dir)
    server.add_stream("/main", SMALL)
    server.add_stream("/sub", ClipSpec(width=160, height=90, fps=25, bitrate_kbps=100,
                                       audio="aac", seconds=10))
    await server.start()
    try:
        cam = env.add_camera("both", server.url("/main"), kinds=("main",))
        env.gw.write_sync(lambda: CameraStream.create(camera=cam, kind="sub",
                                                      rtsp_url=server.url("/sub"),
                                                      rtsp_transport="udp"))
        sup = RecorderSupervisor(env.gw, env.settings, env.clock, env.secrets, rec_options)
        await sup.start()
        try:
            await wait_for(lambda: len(_segments(env, cam, "main")) >= 2
                           and len(_segments(env, cam, "sub")) >= 2, 25)
            recs = {r.config.kind: r for r in sup.recorders()}
            assert recs["sub"].config.rtsp_transport == "udp"
            assert recs["main"].config.rtsp_transport == "tcp"
            status = sup.status(cam)
            assert set(status["streams"]) == {"main", "sub"}  # type: ignore[arg-type]
            # stop recording the sub stream only: main goes on in the same run
            env.gw.write_sync(lambda: CameraStream.update(record=False).where(
                (CameraStream.camera == cam) & (CameraStream.kind == "sub")).execute())
            await sup.camera_changed(cam)
            main_before = len(_segments(env, cam, "main"))
            await wait_for(lambda: len(_segments(env, cam, "main")) >= main_before + 2, 15)
        finally:
            await sup.stop()
    finally:
        await server.stop()
    main_runs, sub_runs = _runs(env, cam, "main"), _runs(env, cam, "sub")
    assert [r.end_reason for r in main_runs] == ["shutdown"]
    assert [r.end_reason for r in sub_runs] == ["config_change"]
    sub = _segments(env, cam, "sub")
    assert {(s.width, s.height) for s in sub} == {(160, 90)}
    assert {(s.width, s.height) for s in _segments(env, cam, "main")} == {(320, 180)}
    assert sub[-1].end_us < main_runs[0].end_us
