"""Stall watchdog and configuration changes."""

from __future__ import annotations

from recorder.supervisor import RecorderSupervisor
from vms.db.models import Camera, Run, Segment


def runs_of(env, cam):
    return env.gw.read_sync(lambda: list(Run.select().where(Run.camera == cam).order_by(Run.id)))


def count_segments(env, cam) -> int:
    return env.gw.read_sync(lambda: Segment.select().where(Segment.camera == cam).count())


async def test_stall_restarts_and_config_change_stops(rec_env, rtsp_factory, rec_options,
                                                      wait_for) -> None:
    env = rec_env
    server = await rtsp_factory()
    cam = env.add_camera("pole", server.url("/main"))
    sup = RecorderSupervisor(env.gw, env.settings, env.clock, env.secrets, rec_options)
    await sup.start()
    try:
        await wait_for(lambda: count_segments(env, cam) >= 1, 15)
        server.stall(rec_options.stall_timeout_s + 3)
        await wait_for(lambda: any(r.end_reason == "stall" for r in runs_of(env, cam)), 15)
        assert "stalled" in str(sup.status(cam)["reason"]) or \
            sup.status(cam)["state"] == "recording"
        await wait_for(lambda: sup.status(cam)["state"] == "recording", 20)
        env.gw.write_sync(lambda: Camera.update(enabled=False).where(Camera.id == cam).execute())
        await sup.camera_changed(cam)
        assert sup.status(cam)["state"] == "stopped"
        assert not sup.recorders()
    finally:
        await sup.stop()
    reasons = [r.end_reason for r in runs_of(env, cam)]
    assert reasons[0] == "stall" and reasons[-1] == "config_change"
    assert all(r.end_us is not None for r in runs_of(env, cam))
