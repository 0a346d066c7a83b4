"""End to end: a camsim motion event, read by the event pump, makes the recorder (event mode) keep
its pre-roll — the first kept frame's SEI capture time is at least the pre-roll before the event."""

from __future__ import annotations

import dataclasses
import time

import aiohttp

from camsim.sei import read_capture_times
from onvif_bridge.event_pump import PumpOptions
from onvif_bridge.event_pumps import EventPumps
from recorder.segments import iter_segment_files
from recorder.supervisor import RecorderSupervisor
from vms.bus import CameraEvent, EventBus
from vms.db.models import Camera, Segment

PASSWORD = "e2e-s3cret-pw"  # noqa: S105 - a test camera's login
GOP_US = 1_000_000
SEI_TOLERANCE_US = 80_000
PRE_S, POST_S = 3, 2


async def test_camsim_motion_through_the_pump_keeps_the_pre_roll(
        rec_env, camsim_factory, rec_options, wait_for) -> None:  # type: ignore[no-untyped-def]
    env = rec_env
    fleet = await camsim_factory(count=1, password=PASSWORD)
    camera = fleet.cameras[0]
    cam = env.add_camera("door", camera.info()["rtsp"]["main"], username=camera.username,
                         password=PASSWORD)
    env.gw.write_sync(lambda: Camera.update(
        recording_mode="event", event_pre_s=PRE_S, event_post_s=POST_S,
        onvif_url=camera.onvif_url).where(Camera.id == cam).execute())
    bus = EventBus()
    seen = bus.subscribe(CameraEvent)
    options = dataclasses.replace(rec_options, event_segment_seconds=1, ring_margin_s=2.0)
    recorder = RecorderSupervisor(env.gw, env.settings, env.clock, env.secrets, options, bus=bus)
    pumps = EventPumps(env.gw, env.secrets, bus, env.clock, options=PumpOptions())
    await recorder.start()
    await pumps.start()
    volume = env.settings.volumes[0]

    def kept() -> list[Segment]:
        return env.gw.read_sync(lambda: list(Segment.select().where(
            Segment.camera == cam).order_by(Segment.start_us)))

    try:
        await wait_for(lambda: recorder.status(cam)["state"] == "recording", 20)
        await wait_for(lambda: pumps.status(cam)["state"] == "subscribed", 10)
        # the ring holds more than the pre-roll before the event comes
        await wait_for(lambda: len(iter_segment_files(volume)) >= PRE_S + 2, 20)
        assert kept() == []
        fired_us = env.clock.now_us()
        fired = time.monotonic()
        async with aiohttp.ClientSession() as session, session.post(
                f"{camera.control_url}/event", json={"type": "motion", "state": True}) as resp:
            assert resp.status == 200
        while True:
            message = await seen.get()
            assert isinstance(message, CameraEvent)
            if message.type == "motion" and message.state is True:
                break
        assert time.monotonic() - fired < 1.0
        event_us = message.at_us
        assert fired_us <= event_us < fired_us + 1_000_000
        async with aiohttp.ClientSession() as session, session.post(
                f"{camera.control_url}/event", json={"type": "motion", "state": False}) as resp:
            assert resp.status == 200
        await wait_for(lambda: any(s.end_us >= event_us + POST_S * 1_000_000 for s in kept()), 20)
        segments = kept()
    finally:
        seen.close()
        await pumps.stop()
        await recorder.stop()
    assert segments and all(s.kind == "event" for s in segments)
    pts_s, capture_us = read_capture_times(volume.path / segments[0].path)[0]
    # at least the pre-roll before the event (the recorder keeps whole segments: up to a GOP more)
    assert capture_us <= event_us - PRE_S * 1_000_000 + SEI_TOLERANCE_US, \
        (event_us - capture_us) / 1e6
    assert capture_us >= event_us - PRE_S * 1_000_000 - 3 * GOP_US
