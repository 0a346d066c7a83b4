"""First picture and stalls over the live WebSocket, against a camsim camera (real ffmpeg).

* cold start: the first fragment a viewer gets is the camera's first frame (camsim starts a session
  on a keyframe), not the next GOP's — ffmpeg's probe no longer throws away what it read;
* warm start: a second viewer gets the init segment and the cached GOP at once — its first
  fragment is a keyframe captured *before* it connected — over the same single camera session;
* a camsim ``stall`` fault: every viewer is told ``stall`` (with the time of the last frame),
  then ``resumed`` when frames come back, and the stream's stats say so meanwhile.
"""

from __future__ import annotations

import json
import time
from typing import Any

import aiohttp

from camsim.sei import find_capture_times
from recorder.live import fragment_is_keyframe
from tests.live.conftest import LiveWorld

FRAME_US = 40_000  # camsim 25 fps
GOP_FRAMES = 25


def capture_us(fragment: bytes) -> int:
    times = find_capture_times(fragment[fragment.find(b"mdat") + 4:])
    assert times, "camsim stamps every frame"
    return times[0]


async def first_fragment(ws: Any) -> tuple[list[str], bytes]:
    """The text message types before the first fragment after the init segment, and that
    fragment."""
    texts: list[str] = []
    init_seen = False
    for _ in range(100):
        msg = await ws.receive(timeout=20)
        if msg.type == aiohttp.WSMsgType.TEXT:
            texts.append(json.loads(msg.data)["type"])
            continue
        assert msg.type == aiohttp.WSMsgType.BINARY, msg
        if not init_seen:
            assert texts and texts[-1] == "init"
            init_seen = True
            continue
        return texts, msg.data
    raise AssertionError("no fragment")


async def test_cold_then_warm_start_then_a_stall(live_world: LiveWorld) -> None:
    """One stream, three phases (one app: the fixture is the costly part)."""
    await live_world.login("viewer_a")
    path = f"/api/v1/cameras/{live_world.camera}/live"
    async with live_world.client.ws_connect(path) as ws:
        # cold: nobody watched, so this viewer starts the ffmpeg and the camera session
        _, frag = await first_fragment(ws)
        sessions = list(live_world.rtsp._sessions.values())
        assert len(sessions) == 1
        start_mono_us = sessions[0].start_mono_us
        assert start_mono_us is not None
        # the frame's index in the session, from camsim's pacing: wall clock of frame n is the
        # session's start (monotonic, turned into wall time) plus n frames
        start_wall_us = time.time_ns() // 1000 - (time.monotonic_ns() // 1000 - start_mono_us)
        frame = round((capture_us(frag) - start_wall_us) / FRAME_US)
        assert fragment_is_keyframe(frag)
        # before the fix ffmpeg's -fflags nobuffer dropped the probed first GOP: frame 25
        assert frame < GOP_FRAMES // 2, frame

        # warm: a second viewer gets the init segment and the cached GOP at once
        for _ in range(12):  # let the GOP cache fill past its keyframe
            await ws.receive(timeout=5)
        joined_us = time.time_ns() // 1000
        async with live_world.client.ws_connect(path) as ws2:
            texts, frag = await first_fragment(ws2)
            assert texts == ["init"]
            assert fragment_is_keyframe(frag)
            cached = [frag]
            while len(cached) < 5:
                cached.append((await ws2.receive(timeout=5)).data)
            assert all(capture_us(f) < joined_us for f in cached)  # from the cache, not waited for
            stats = live_world.service.stats()
            assert len(stats) == 1 and stats[0]["viewers"] == 2 and stats[0]["starts"] == 1
            assert live_world.rtsp.session_count == 1  # one camera session for both

        # a camsim stall fault: told to viewers with the last frame's time, then cleared
        await _stall(live_world, ws, path)


async def _stall(live_world: LiveWorld, ws: Any, path: str) -> None:
    last_us = 0
    for _ in range(5):
        msg = await ws.receive(timeout=5)
        last_us = time.time_ns() // 1000
    live_world.rtsp.stall(2.5)
    stall: dict[str, Any] | None = None
    deadline = time.monotonic() + 10
    while stall is None:
        assert time.monotonic() < deadline
        msg = await ws.receive(timeout=10)
        if msg.type == aiohttp.WSMsgType.BINARY:
            last_us = time.time_ns() // 1000
        else:
            data = json.loads(msg.data)
            assert data["type"] == "stall", data
            stall = data
    # since: the server's receipt of the last frame, just before ours
    assert last_us - 1_000_000 < stall["since_us"] <= last_us, (stall, last_us)
    assert live_world.service.stats()[0]["stalled_since_us"] == stall["since_us"]
    async with live_world.client.ws_connect(path) as late:
        texts: list[str] = []
        while "stall" not in texts:  # a viewer joining a stalled stream is told at once
            msg = await late.receive(timeout=5)
            if msg.type == aiohttp.WSMsgType.TEXT:
                texts.append(json.loads(msg.data)["type"])
    msg = await ws.receive(timeout=10)
    assert msg.type == aiohttp.WSMsgType.TEXT and json.loads(msg.data) == {"type": "resumed"}
    # the muxer held the last frame before the stall (a fragment needs the next frame for its
    # duration): it comes first, then camsim's next keyframe
    after = [(await ws.receive(timeout=5)).data for _ in range(3)]
    assert any(fragment_is_keyframe(f) for f in after)
    assert live_world.service.stats()[0]["stalled_since_us"] is None
    assert live_world.service.stats()[0]["starts"] == 1  # the same ffmpeg throughout
