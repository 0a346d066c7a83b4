"""Faults: dropped sessions make runs and gaps, wrong passwords are reported without leaking,
G.711 audio is transcoded, ffmpeg killed mid-segment leaves an indexed, playable partial segment."""

from __future__ import annotations

import asyncio
import logging
import os
import signal

import av

from camsim.media import ClipSpec
from recorder.reconcile import reconcile
from recorder.supervisor import RecorderSupervisor
from vms.db.models import Camera, Run, Segment


def segments_of(env, cam):
    return env.gw.read_sync(lambda: list(
        Segment.select().where(Segment.camera == cam).order_by(Segment.start_us)))


def runs_of(env, cam):
    return env.gw.read_sync(lambda: list(Run.select().where(Run.camera == cam).order_by(Run.id)))


def count_segments(env, cam) -> int:
    return env.gw.read_sync(lambda: Segment.select().where(Segment.camera == cam).count())


async def test_three_drops_make_three_gaps_and_four_runs(rec_env, rtsp_factory, rec_options,
                                                         wait_for) -> None:
    env = rec_env
    server = await rtsp_factory()
    cam = env.add_camera("gate", server.url("/main"))
    sup = RecorderSupervisor(env.gw, env.settings, env.clock, env.secrets, rec_options)
    await sup.start()
    try:
        for _ in range(3):
            base = count_segments(env, cam)
            await wait_for(lambda b=base: count_segments(env, cam) >= b + 2, 15)
            server.drop_sessions()
            await wait_for(lambda: sup.status(cam)["state"] == "reconnecting", 5, 0.02)
        base = count_segments(env, cam)
        await wait_for(lambda b=base: count_segments(env, cam) >= b + 2, 15)
    finally:
        await sup.stop()
    runs = runs_of(env, cam)
    assert [r.end_reason for r in runs] == ["camera_lost"] * 3 + ["shutdown"]
    segs = segments_of(env, cam)
    gaps = []
    for a, b in zip(segs, segs[1:], strict=False):
        assert b.start_us >= a.end_us, "no overlap, even across runs"
        if b.start_us != a.end_us:
            assert a.run_id != b.run_id, "inside a run segments are contiguous"
            gaps.append((a.end_us, b.start_us, runs_of(env, cam)[[r.id for r in runs].index(
                a.run_id)].end_reason))
    assert len(gaps) == 3
    for (gap_start, gap_end, reason), run, nxt in zip(gaps, runs, runs[1:], strict=False):
        assert reason == "camera_lost"
        assert run.end_us == gap_start and nxt.start_us == gap_end
        assert 0 < gap_end - gap_start < 5_000_000


async def test_wrong_password_is_auth_failed_and_never_logged(rec_env, rtsp_factory, rec_options,
                                                              wait_for, caplog) -> None:
    env = rec_env
    secret = "s3cret-Pa55"
    server = await rtsp_factory(username="admin", password="right-password")
    cam = env.add_camera("door", server.url("/main"), "admin", secret)
    caplog.set_level(logging.DEBUG)
    sup = RecorderSupervisor(env.gw, env.settings, env.clock, env.secrets, rec_options)
    await sup.start()
    try:
        await wait_for(lambda: sup.status(cam)["state"] == "auth_failed", 15)
        status = sup.status(cam)
        assert "wrong username or password" in str(status["reason"])
        assert "401" in str(status["reason"])
        await wait_for(lambda: env.gw.read_sync(
            lambda: Camera.get_by_id(cam).status) == "auth_failed", 5)
    finally:
        await sup.stop()
    assert secret not in caplog.text
    assert "admin:***@" in caplog.text  # the redacted URL was logged
    assert not segments_of(env, cam)
    assert not runs_of(env, cam), "sessions that never recorded leave no run"


async def test_right_password_with_special_characters_records(rec_env, rtsp_factory, rec_options,
                                                              wait_for, caplog) -> None:
    env = rec_env
    secret = "p@ss:w/rd%"
    server = await rtsp_factory(username="admin", password=secret)
    cam = env.add_camera("door", server.url("/main"), "admin", secret)
    caplog.set_level(logging.DEBUG)
    sup = RecorderSupervisor(env.gw, env.settings, env.clock, env.secrets, rec_options)
    await sup.start()
    try:
        await wait_for(lambda: count_segments(env, cam) >= 1, 15)
    finally:
        await sup.stop()
    assert "p@ss" not in caplog.text and "p%40ss" not in caplog.text


async def test_pcmu_camera_records_with_aac_audio(rec_env, rtsp_factory, rec_options,
                                                  wait_for) -> None:
    env = rec_env
    spec = ClipSpec(width=320, height=180, fps=25, bitrate_kbps=300, audio="pcmu", seconds=10)
    server = await rtsp_factory(spec)
    cam = env.add_camera("intercom", server.url("/main"))
    sup = RecorderSupervisor(env.gw, env.settings, env.clock, env.secrets, rec_options)
    await sup.start()
    try:
        await wait_for(lambda: count_segments(env, cam) >= 2, 20)
    finally:
        await sup.stop()
    segs = segments_of(env, cam)
    assert all(s.audio_codec == "aac" for s in segs)
    with av.open(str(env.settings.volumes[0].path / segs[0].path)) as c:
        assert c.streams.audio and c.streams.audio[0].codec_context.name == "aac"
        frames = sum(1 for _ in c.decode(audio=0))
    assert frames > 10
    assert [r.end_reason for r in runs_of(env, cam)] == ["shutdown"]


async def test_ffmpeg_killed_mid_segment_leaves_playable_partial(rec_env, rtsp_factory,
                                                                 rec_options, wait_for) -> None:
    env = rec_env
    server = await rtsp_factory()
    cam = env.add_camera("yard", server.url("/main"))
    sup = RecorderSupervisor(env.gw, env.settings, env.clock, env.secrets, rec_options)
    await sup.start()
    try:
        await wait_for(lambda: count_segments(env, cam) >= 2, 15)
        await asyncio.sleep(1.2)  # well inside the next 2 s segment
        (rec,) = sup.recorders()
        pid = rec._proc.pid  # noqa: SLF001 - the test plays the OOM killer
        os.kill(pid, signal.SIGKILL)
        await wait_for(lambda: any(s.state == "partial" for s in segments_of(env, cam)), 10)
        await wait_for(lambda: sup.status(cam)["state"] == "recording", 10)
    finally:
        await sup.stop()
    segs = segments_of(env, cam)
    partial = [s for s in segs if s.state == "partial"]
    assert len(partial) == 1
    p = partial[0]
    assert 200_000 < p.duration_us < 2_100_000
    with av.open(str(env.settings.volumes[0].path / p.path)) as c:
        assert sum(1 for _ in c.decode(video=0)) >= 5
    runs = runs_of(env, cam)
    assert runs[0].end_reason == "error" and runs[0].end_us == p.end_us
    assert runs[-1].end_reason == "shutdown"
    report = reconcile(env.gw, env.settings, env.clock, False)
    assert report.problems == 0, report.summary()
