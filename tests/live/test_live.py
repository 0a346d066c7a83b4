"""Live view over WebSocket against a camsim camera: media that decodes, sharing, stopping, scope."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from camsim.sei import find_capture_times
from recorder.live import (
    Fmp4Splitter,
    LiveMessage,
    LiveSource,
    Viewer,
    codec_string,
    fragment_is_keyframe,
    live_argv,
    live_input,
)
from tests.live.conftest import CAMERA_PASSWORD, LiveWorld


async def receive(ws: Any, seconds: float) -> tuple[dict[str, Any], bytes, list[tuple[float, bytes]]]:
    """The init message, the init segment, and ``[(receive time, fragment)]`` for ``seconds``."""
    msg = await ws.receive(timeout=20)
    assert msg.type == aiohttp.WSMsgType.TEXT, msg
    init_msg = json.loads(msg.data)
    assert init_msg["type"] == "init"
    msg = await ws.receive(timeout=5)
    assert msg.type == aiohttp.WSMsgType.BINARY
    init = msg.data
    fragments: list[tuple[float, bytes]] = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        msg = await ws.receive(timeout=5)
        assert msg.type == aiohttp.WSMsgType.BINARY, msg
        fragments.append((time.time(), msg.data))
    return init_msg, init, fragments


async def wait_until(predicate: Any, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.05)


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


async def test_websocket_media_decodes_with_low_latency(live_world: LiveWorld,
                                                        tmp_path: Path) -> None:
    import av

    await live_world.login("viewer_a")
    async with live_world.client.ws_connect(f"/api/v1/cameras/{live_world.camera}/live") as ws:
        init_msg, init, fragments = await receive(ws, 2.0)
    assert init_msg["codec"].startswith("avc1.") and init_msg["stream"] == "main"
    assert init_msg["mime"] == f'video/mp4; codecs="{init_msg["codec"]}"'
    assert codec_string(init) == init_msg["codec"]
    # one fragment a frame at 25 fps, from the first keyframe
    assert len(fragments) >= 20, len(fragments)
    span_s = fragments[-1][0] - fragments[0][0]
    assert 20 <= (len(fragments) - 1) / span_s <= 30, (len(fragments), span_s)
    assert fragment_is_keyframe(fragments[0][1]), "a viewer must start on a keyframe"
    assert sum(fragment_is_keyframe(f) for _, f in fragments) >= 1

    path = tmp_path / "live.mp4"
    path.write_bytes(init + b"".join(f for _, f in fragments))
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        frames = list(container.decode(stream))
    assert len(frames) >= len(fragments) - 1
    assert (frames[0].width, frames[0].height) == (320, 180)

    # glass to glass (camsim's capture time vs our receive time) of the steady-state fragments
    latencies = []
    for received_s, fragment in fragments[len(fragments) // 2:]:
        times = find_capture_times(fragment[fragment.index(b"mdat") + 4:])
        assert times, "every camsim frame carries its capture time"
        latencies.append(received_s - times[0] / 1e6)
    assert max(latencies) < 1.0, latencies  # loopback, no transcoding: well under the 3 s target


async def test_sub_stream_and_bad_requests(live_world: LiveWorld) -> None:
    await live_world.login("viewer_a")
    camera = live_world.camera
    async with live_world.client.ws_connect(f"/api/v1/cameras/{camera}/live?stream=sub") as ws:
        init_msg, init, fragments = await receive(ws, 0.5)
    assert init_msg["stream"] == "sub"
    assert fragments
    resp = await live_world.client.get(f"/api/v1/cameras/{camera}/live")
    assert resp.status == 400  # not a WebSocket upgrade
    resp = await live_world.client.get(f"/api/v1/cameras/{camera}/live?stream=third")
    assert resp.status == 400
    with pytest.raises(aiohttp.WSServerHandshakeError) as err:
        await live_world.client.ws_connect(f"/api/v1/cameras/{camera}/live",
                                           headers={"Origin": "http://evil.example"})
    assert err.value.status == 403


async def test_viewer_of_another_site_gets_404_before_upgrade(live_world: LiveWorld) -> None:
    await live_world.login("viewer_b")
    for path in (f"/api/v1/cameras/{live_world.camera}/live",
                 f"/api/v1/cameras/{live_world.camera}/live?stream=sub",
                 "/api/v1/cameras/999999/live"):
        with pytest.raises(aiohttp.WSServerHandshakeError) as err:
            await live_world.client.ws_connect(path)
        assert err.value.status == 404, path
    assert live_world.service.stats() == []  # nothing was started for them
    assert live_world.rtsp.session_count == 0
    resp = await live_world.client.get(f"/cameras/{live_world.camera}/live")
    assert resp.status == 404
    live_world.client.session.cookie_jar.clear()
    with pytest.raises(aiohttp.WSServerHandshakeError) as err:
        await live_world.client.ws_connect(f"/api/v1/cameras/{live_world.camera}/live")
    assert err.value.status == 401


async def test_two_viewers_share_one_ffmpeg_which_stops_after_the_last(
        live_world: LiveWorld) -> None:
    await live_world.login("viewer_a")
    client = live_world.client
    service = live_world.service
    path = f"/api/v1/cameras/{live_world.camera}/live"
    ws1 = await client.ws_connect(path)
    _, _, first = await receive(ws1, 0.3)
    ws2 = await client.ws_connect(path)
    _, init2, second = await receive(ws2, 0.5)  # joins mid-stream: init, then from a keyframe
    assert fragment_is_keyframe(second[0][1])
    stats = service.stats()
    assert len(stats) == 1 and stats[0]["viewers"] == 2 and stats[0]["starts"] == 1, stats
    pid = stats[0]["pid"]
    assert isinstance(pid, int) and pid_alive(pid)
    assert live_world.rtsp.session_count == 1  # one camera connection for both viewers

    await ws1.close()
    await wait_until(lambda: service.stats() and service.stats()[0]["viewers"] == 1, 3)
    msg = await ws2.receive(timeout=5)  # the other viewer is not disturbed
    assert msg.type == aiohttp.WSMsgType.BINARY
    await ws2.close()
    # the grace period (0.5 s here) passes, then ffmpeg is terminated and reaped
    await wait_until(lambda: service.stats() == [], 5)
    assert not pid_alive(pid)
    await wait_until(lambda: live_world.rtsp.session_count == 0, 5)

    # a viewer arriving later starts a fresh ffmpeg
    async with client.ws_connect(path) as ws3:
        _, _, frags = await receive(ws3, 0.2)
        assert frags
        assert service.stats()[0]["pid"] != pid


async def test_a_viewer_back_within_the_grace_period_reuses_the_ffmpeg(
        live_world: LiveWorld) -> None:
    await live_world.login("viewer_a")
    path = f"/api/v1/cameras/{live_world.camera}/live"
    async with live_world.client.ws_connect(path) as ws:
        await receive(ws, 0.1)
    pid = live_world.service.stats()[0]["pid"]
    async with live_world.client.ws_connect(path) as ws:  # a page reload
        await receive(ws, 0.1)
        assert live_world.service.stats()[0]["pid"] == pid


async def test_camera_lost_viewers_get_a_status_then_a_new_init(live_world: LiveWorld) -> None:
    await live_world.login("viewer_a")
    async with live_world.client.ws_connect(f"/api/v1/cameras/{live_world.camera}/live") as ws:
        await receive(ws, 0.3)
        live_world.rtsp.drop_sessions()
        kinds: list[str] = []
        deadline = time.monotonic() + 20
        while "init" not in kinds:
            assert time.monotonic() < deadline, kinds
            msg = await ws.receive(timeout=20)
            if msg.type == aiohttp.WSMsgType.TEXT:
                kinds.append(json.loads(msg.data)["type"])
        assert "status" in kinds
        msg = await ws.receive(timeout=5)
        assert msg.type == aiohttp.WSMsgType.BINARY and codec_string(msg.data).startswith("avc1")
    assert live_world.service.stats()[0]["starts"] == 2


async def test_camera_password_never_logged(live_world: LiveWorld,
                                            caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    await live_world.login("viewer_a")
    async with live_world.client.ws_connect(f"/api/v1/cameras/{live_world.camera}/live") as ws:
        await receive(ws, 0.2)
    await wait_until(lambda: live_world.service.stats() == [], 5)
    assert "starting" in caplog.text and "rtsp://admin:***@127.0.0.1" in caplog.text
    assert CAMERA_PASSWORD not in caplog.text
    source = LiveSource(1, "cam", "main", "rtsp://127.0.0.1:554/main", "admin", "p@ss:/w")
    src = live_input(source)
    assert src.stdin is not None and b"rtsp://admin:p%40ss%3A%2Fw@127.0.0.1:554/main" in src.stdin
    assert not any("p%40ss" in a or "p@ss" in a for a in live_argv("ffmpeg", src))
    assert src.shown == "rtsp://admin:***@127.0.0.1:554/main"


def test_splitter_cuts_any_byte_stream_into_init_and_fragments() -> None:
    def box(kind: bytes, payload: bytes) -> bytes:
        return (8 + len(payload)).to_bytes(4, "big") + kind + payload

    init = box(b"ftyp", b"isom0000") + box(b"moov", b"x" * 50)
    frags = [box(b"moof", bytes([i]) * 20) + box(b"mdat", bytes([i]) * (100 + i)) for i in range(5)]
    stream = init + b"".join(frags)
    for step in (1, 7, 64, len(stream)):
        splitter = Fmp4Splitter()
        out = []
        for i in range(0, len(stream), step):
            out += splitter.feed(stream[i:i + step])
        assert out == [("init", init)] + [("fragment", f) for f in frags], step


def test_slow_viewer_is_dropped_not_buffered_forever() -> None:
    viewer = Viewer(stream=None, max_queued=3)  # type: ignore[arg-type]
    for _ in range(3):
        viewer.offer(LiveMessage("fragment", b"x"))
    assert not viewer.closed
    viewer.offer(LiveMessage("fragment", b"x"))
    assert viewer.closed and viewer.close_reason == "fell behind the live stream"
    assert viewer.queue.qsize() == 1  # only the "closed" marker is kept


async def test_a_removed_camera_ends_its_stream(live_world: LiveWorld) -> None:
    from vms.db import models as m
    from web.keys import GATEWAY

    await live_world.login("viewer_a")
    async with live_world.client.ws_connect(f"/api/v1/cameras/{live_world.camera}/live") as ws:
        await receive(ws, 0.2)
        await live_world.app[GATEWAY].write(
            lambda: m.Camera.delete().where(m.Camera.id == live_world.camera).execute())
        live_world.rtsp.drop_sessions()  # the ffmpeg ends; the restart finds no camera
        closed = None
        while closed is None:
            msg = await ws.receive(timeout=10)
            assert msg.type != aiohttp.WSMsgType.CLOSED, "closed without saying why"
            if msg.type == aiohttp.WSMsgType.TEXT and json.loads(msg.data)["type"] == "closed":
                closed = json.loads(msg.data)["message"]
    assert "no camera" in closed
    await wait_until(lambda: live_world.service.stats() == [], 5)
