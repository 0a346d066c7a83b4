"""A recorded camera is watched over the recorder's own camera session (recorder/live_tap.py).

The whole app with the recorder on, one camsim camera recording its main stream: a live viewer
gets the init segment and the GOP the recorder's ffmpeg last wrote at once — its first fragment a
keyframe captured before it connected — and camsim still counts a single RTSP session; recording
goes on meanwhile. When recording stops, the viewer is moved to a session of its own.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import aiohttp

from recorder.fmp4 import fragment_is_keyframe
from recorder.live import LiveService
from recorder.live_tap import LiveFeeds
from tests.live.conftest import FAST, USER_PASSWORD, seed, start_camsim
from tests.live.test_live_start_stall import capture_us, first_fragment


async def wait_for(predicate: Callable[[], bool], timeout_s: float) -> None:
    import asyncio

    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.05)


async def test_recorded_camera_is_watched_over_the_recorders_session(
        settings_factory: Any, aiohttp_client: Any) -> None:
    from vms.app import create_app
    from vms.db import models as m
    from web.keys import GATEWAY, SERVICES

    rtsp = await start_camsim()
    try:
        app = create_app(settings_factory(**{"recording.segment_seconds": 2}))
        client = await aiohttp_client(app)
        ids = seed(app, rtsp)
        cam = ids["camera_1"]

        def only_main_of_camera_1() -> None:
            m.CameraStream.update(record=False).where(
                (m.CameraStream.camera != cam) | (m.CameraStream.kind != "main")).execute()

        await app[GATEWAY].write(only_main_of_camera_1)
        live = app[SERVICES]["live"]
        assert isinstance(live, LiveService)
        live.options = FAST
        await app[SERVICES]["recorder"].camera_changed(cam)
        feeds: LiveFeeds = live.feeds
        await wait_for(lambda: (f := feeds.get((cam, "main"))) is not None and len(f.gop) >= 3,
                       20)
        assert rtsp.session_count == 1  # the recorder's

        resp = await client.post("/api/v1/auth/login",
                                 json={"username": "viewer_a", "password": USER_PASSWORD})
        assert resp.status == 200
        joined_us = time.time_ns() // 1000
        async with client.ws_connect(f"/api/v1/cameras/{cam}/live") as ws:
            texts, frag = await first_fragment(ws)
            assert texts == ["init"] and fragment_is_keyframe(frag)
            assert capture_us(frag) < joined_us  # the recorder's GOP, not a new session's
            for _ in range(10):
                msg = await ws.receive(timeout=5)
                assert msg.type == aiohttp.WSMsgType.BINARY
            stats = live.stats()
            assert [(s["source"], s["pid"], s["starts"]) for s in stats] == [
                ("recorder", None, 0)], stats
            assert rtsp.session_count == 1  # no second session to the camera

            def segments() -> int:
                return m.Segment.select().where(m.Segment.camera == cam).count()

            # recording goes on while it is watched
            await wait_for(lambda: app[GATEWAY].read_sync(segments) >= 1, 20)

            # recording stops: the viewer is told, then gets a picture from its own session
            def stop_recording() -> None:
                m.Camera.update(recording_mode="off").where(m.Camera.id == cam).execute()

            await app[GATEWAY].write(stop_recording)
            await app[SERVICES]["recorder"].camera_changed(cam)
            kinds: list[str] = []
            deadline = time.monotonic() + 20
            while "init" not in kinds:
                assert time.monotonic() < deadline, kinds
                msg = await ws.receive(timeout=20)
                if msg.type == aiohttp.WSMsgType.TEXT:
                    kinds.append(json.loads(msg.data)["type"])
            assert "status" in kinds
            msg = await ws.receive(timeout=5)  # the init segment
            assert msg.type == aiohttp.WSMsgType.BINARY
            msg = await ws.receive(timeout=10)
            if msg.type == aiohttp.WSMsgType.TEXT:  # the picture is back
                assert json.loads(msg.data) == {"type": "resumed"}
                msg = await ws.receive(timeout=10)
            assert msg.type == aiohttp.WSMsgType.BINARY and fragment_is_keyframe(msg.data)
            assert [(s["source"], s["starts"]) for s in live.stats()] == [("ffmpeg", 1)]
    finally:
        await rtsp.stop()
