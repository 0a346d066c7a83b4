"""Camera stalls inside a run: every recorded frame keeps its capture time, and the hole is where the
frames stop and resume, with reason ``stall``.

camsim stamps each frame with its capture time (SEI). ffmpeg survives these stalls (they are shorter
than ``stall_timeout_s``), so the run goes on. The segment holding the frames captured just before a
stall is only closed (listed by ffmpeg) when the first keyframe after the stall arrives: its list
line comes late by the length of the stall, and must not move the segment.

Every frame's claimed instant is read the way playback serves it: the segment's
``#EXT-X-PROGRAM-DATE-TIME`` in the HLS playlist plus the frame's timestamp in its file.
"""

from __future__ import annotations

import asyncio
import dataclasses
import re
from datetime import datetime

import pytest

from camsim.sei import read_capture_times
from recorder.clip import Source, plan_clip, write_clip
from recorder.playback import build_playlist, playable_segments
from recorder.supervisor import RecorderSupervisor
from recorder.timeline import build_timeline
from vms.db.models import Run, Segment

FRAME_US = 40_000
SEI_TOLERANCE_US = FRAME_US + 40_000 + 1_000
"""One frame, plus: a segment's start is learnt when its first keyframe leaves ffmpeg's muxing queue,
which waits for the next audio packet (AAC at 16 kHz: 64 ms apart; measured ~42 ms late on loopback;
see test_recorder_continuous), plus 1 ms: PROGRAM-DATE-TIME has millisecond precision."""
HOLE_US = 500_000
"""Consecutive frames further apart than this (capture times) are a hole: the camera sent nothing."""


def _segments(env, cam):
    return env.gw.read_sync(lambda: list(
        Segment.select().where(Segment.camera == cam).order_by(Segment.start_us)))


def _count(env, cam) -> int:
    return env.gw.read_sync(lambda: Segment.select().where(Segment.camera == cam).count())


def _pdt_us(text: str) -> int:
    return round(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() * 1e6)


def _claimed_frames(env, cam) -> list[tuple[int, int, int]]:
    """``(claimed_us, capture_us, segment id)`` of every recorded frame, as playback serves it."""
    segs = _segments(env, cam)
    first, last = segs[0].start_us, segs[-1].end_us
    playable = env.gw.read_sync(lambda: playable_segments(cam, first, last))
    assert [s[0] for s in playable] == [s.id for s in segs], "every segment is playable"
    text = build_playlist(playable, first, media_base="m").text
    pdt = {int(seg_id): _pdt_us(stamp) for stamp, seg_id in re.findall(
        r"#EXT-X-PROGRAM-DATE-TIME:(\S+)\n#EXTINF:[^\n]*\nm/(\d+)\?part=fragments", text)}
    assert len(pdt) == len(segs)
    frames = []
    for s in segs:
        for pts_s, capture_us in read_capture_times(env.settings.volumes[0].path / s.path):
            frames.append((pdt[s.id] + round(pts_s * 1e6), capture_us, s.id))
    return frames


def _exported_frames(env, cam, tmp_path) -> list[tuple[int, int, int]]:
    """``(claimed_us, capture_us, 0)`` of every frame of an export of the whole recording (the
    direct copy): the manifest's ``media_time_zero_us`` (the clip's first frame) + the frame's
    time in the MP4."""
    segs = _segments(env, cam)
    volume = env.settings.volumes[0].path
    clip = plan_clip([Source(volume / s.path, s.start_us) for s in segs], segs[0].start_us,
                     segs[-1].end_us)
    out = tmp_path / "export.mp4"
    write_clip(clip, out)
    return [(clip.actual_from_us + round(pts_s * 1e6), capture_us, 0)
            for pts_s, capture_us in read_capture_times(out)]


def _holes(frames: list[tuple[int, int, int]]) -> list[tuple[int, int]]:
    """``(end of the last frame before, capture of the first frame after)`` of every hole."""
    captures = sorted(c for _, c, _ in frames)
    return [(a + FRAME_US, b) for a, b in zip(captures, captures[1:], strict=False)
            if b - a > HOLE_US]


SURVIVE = {"stall_timeout_s": 15.0, "socket_timeout_s": 10.0}
"""Options under which ffmpeg survives the stalls below (the run goes on)."""


async def _record_with_stalls(env, server, options, stalls, wait_for, **stall_kw):
    cam = env.add_camera("lane", server.url("/main"))
    sup = RecorderSupervisor(env.gw, env.settings, env.clock, env.secrets, options)
    await sup.start()
    try:
        await wait_for(lambda: _count(env, cam) >= 2, 20)
        for seconds in stalls:
            base = _count(env, cam)
            # just after a segment closed, i.e. early in the next one
            await wait_for(lambda b=base: _count(env, cam) > b, 10, 0.02)
            server.stall(seconds, **stall_kw)
            await asyncio.sleep(seconds)
            base = _count(env, cam)
            await wait_for(lambda b=base: _count(env, cam) >= b + 2, 15)
    finally:
        await sup.stop()
    return cam


def _runs(env, cam):
    return env.gw.read_sync(lambda: list(Run.select().where(Run.camera == cam).order_by(Run.id)))


def _assert_frames_on_time(frames, skip=frozenset()):
    errors = [(claimed - capture, seg) for claimed, capture, seg in frames
              if (seg, capture) not in skip]
    worst = max(errors, key=lambda e: abs(e[0]))
    assert abs(worst[0]) <= SEI_TOLERANCE_US, (
        f"a frame of segment {worst[1]} is shown {worst[0] / 1e6:+.3f} s from its capture time")


def _gaps(env, cam):
    segs = _segments(env, cam)
    timeline = env.gw.read_sync(lambda: build_timeline(cam, segs[0].start_us, segs[-1].end_us))
    return [(g.start_us, g.end_us, g.reason) for g in timeline.gaps]


def _near(a: tuple[int, int], b: tuple[int, int]) -> bool:
    return abs(a[0] - b[0]) <= SEI_TOLERANCE_US and abs(a[1] - b[1]) <= SEI_TOLERANCE_US


@pytest.mark.slow
async def test_stalls_keep_every_frame_at_its_capture_time(rec_env, rtsp_factory, rec_options,
                                                           wait_for) -> None:
    """Stalls shorter (0.5 s, 1.5 s) and longer (6 s, like the 8 s of the issue) than the 2 s
    segments; ffmpeg survives them (they are shorter than its socket timeout)."""
    env = rec_env
    server = await rtsp_factory()
    cam = await _record_with_stalls(env, server, dataclasses.replace(rec_options, **SURVIVE),
                                    (0.5, 1.5, 6.0), wait_for)
    assert [r.end_reason for r in _runs(env, cam)] == ["shutdown"], "the run went on"
    frames = _claimed_frames(env, cam)
    _assert_frames_on_time(frames)
    # an export of the same range claims the same instants for the same frames
    exported = _exported_frames(env, cam, env.tmp_path)
    assert len(exported) >= len(frames) - 1
    _assert_frames_on_time(exported)
    holes = _holes(frames)
    assert len([h for h in holes if h[1] - h[0] > 1_000_000]) >= 2, holes
    gaps = _gaps(env, cam)
    # every gap is a hole the frames show, where they stop and resume, and says "stall"
    for start_us, end_us, reason in gaps:
        assert reason == "stall", gaps
        assert any(_near((start_us, end_us), hole) for hole in holes), (gaps, holes)
    # a hole longer than a GOP (1 s) ends in a keyframe past the segment boundary: a gap
    for hole in holes:
        if hole[1] - hole[0] > 1_000_000:
            assert any(_near((gs, ge), hole) for gs, ge, _ in gaps), (gaps, holes)


async def test_stall_of_a_camera_whose_clock_pauses(rec_env, rtsp_factory, rec_options,
                                                    wait_for) -> None:
    """A source whose RTP clock does not run during the stall (frames resume with timestamps that
    continue where they stopped): checked against the wall clock, the recorder re-anchors, so the
    frames before the stall and every segment after the one it was writing keep their times."""
    env = rec_env
    server = await rtsp_factory()
    cam = await _record_with_stalls(env, server, dataclasses.replace(rec_options, **SURVIVE),
                                    (3.0,), wait_for, clock_runs=False)
    assert [r.end_reason for r in _runs(env, cam)] == ["shutdown"], "the run went on"
    frames = _claimed_frames(env, cam)
    ((hole_start, hole_end),) = _holes(frames)
    straddling = {seg for _, capture, seg in frames if capture < hole_start} & {
        seg for _, capture, seg in frames if capture > hole_end}
    assert len(straddling) <= 1
    # the file being written holds frames from both sides of the hole with contiguous
    # timestamps: its frames after the hole cannot be placed by one start (a known limit)
    _assert_frames_on_time(frames, skip={(seg, capture) for _, capture, seg in frames
                                         if seg in straddling and capture > hole_end})
    ((gap_start, gap_end, reason),) = _gaps(env, cam)
    assert reason == "stall"
    assert abs((gap_end - gap_start) - (hole_end - hole_start)) <= 2 * SEI_TOLERANCE_US
    assert gap_start >= hole_start - SEI_TOLERANCE_US


async def test_stall_past_the_socket_timeout_ends_the_run(rec_env, rtsp_factory, rec_options,
                                                          wait_for) -> None:
    """A stall longer than ffmpeg's socket timeout: ffmpeg would survive its first read timeout but
    stamp the keyframe that ends the stall with the time of the frame before it (seconds early);
    the recorder ends the run there instead, and the next run records the camera's return."""
    env = rec_env
    server = await rtsp_factory()
    options = dataclasses.replace(rec_options, stall_timeout_s=15.0, socket_timeout_s=2.0)
    cam = await _record_with_stalls(env, server, options, (4.0,), wait_for)
    runs = _runs(env, cam)
    assert [r.end_reason for r in runs] == ["stall", "shutdown"]
    frames = _claimed_frames(env, cam)
    _assert_frames_on_time(frames)
    ((hole_start, hole_end),) = _holes(frames)
    ((gap_start, gap_end, reason),) = _gaps(env, cam)
    assert reason == "stall"
    assert _near((gap_start, gap_end), (hole_start, hole_end)), (gap_start, gap_end, hole_start,
                                                                hole_end)
    assert runs[0].end_us == gap_start and runs[1].start_us == gap_end
