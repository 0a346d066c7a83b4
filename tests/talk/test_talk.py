"""Talk-back end to end: a tone over the talk WebSocket arrives at camsim's loudspeaker.

Real parts throughout: the whole app (without recording) behind aiohttp's test client, camsim
virtual cameras (one with an ONVIF audio backchannel, one without) adopted straight into the
database with encrypted passwords (so the server's RTSP client must pass camsim's Digest
challenge), and what arrived read back through camsim's control API (``GET {control_url}/state``:
packets, seconds, the dominant frequency measured by camsim, sequence and timestamp checks).
"""

from __future__ import annotations

import asyncio
import json
import time
from array import array
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest
import pytest_asyncio

from tests.talk.conftest import USER_PASSWORD, seed_talk, tone_pcm
from web.keys import GATEWAY

pytestmark = pytest.mark.asyncio(loop_scope="module")

CAM_PASSWORD = "Talk-S3cret#pw"
FRAME_S = 0.04


@dataclass
class TalkWorld:
    client: Any
    app: Any
    ids: dict[str, int]
    controls: dict[str, str]

    async def login(self, username: str) -> None:
        self.client.session.cookie_jar.clear()
        resp = await self.client.post("/api/v1/auth/login",
                                      json={"username": username, "password": USER_PASSWORD})
        assert resp.status == 200, await resp.text()

    async def camsim_state(self, camera: str) -> dict[str, Any]:
        async with aiohttp.ClientSession() as http, \
                http.get(f"{self.controls[camera]}/state") as resp:
            assert resp.status == 200
            state: dict[str, Any] = await resp.json()
            return state

    async def wait_state(self, camera: str, ok: Any, timeout_s: float = 5.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout_s
        while True:
            state = await self.camsim_state(camera)
            if ok(state) or time.monotonic() > deadline:
                return state
            await asyncio.sleep(0.1)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def talk_world(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[TalkWorld]:
    """One app and two cameras for the module (the tests do not depend on each other's order)."""
    from aiohttp.test_utils import TestClient, TestServer

    from camsim.fleet import Fleet
    from vms.app import create_app
    from vms.config import load_settings

    fleet = Fleet(2, password=CAM_PASSWORD,
                  per_camera=[{}, {"backchannel": False, "audio": "pcmu"}])
    await fleet.start()
    panel, mute = fleet.cameras
    try:
        data = tmp_path_factory.mktemp("talk") / "data"
        app = create_app(load_settings(None, env={}, overrides={"data_dir": data,
                                                                 "server.port": 0}),
                         start_recorder=False)
        client = TestClient(TestServer(app))
        await client.start_server()
        try:
            ids = seed_talk(app, [("Panel", "A", panel.info()["rtsp"]["main"], CAM_PASSWORD),
                                  ("Mute", "A", mute.info()["rtsp"]["main"], CAM_PASSWORD),
                                  ("Other", "B", panel.info()["rtsp"]["main"], CAM_PASSWORD)])
            yield TalkWorld(client, app, ids, {"Panel": panel.control_url,
                                               "Mute": mute.control_url})
        finally:
            await client.close()
    finally:
        await fleet.stop()


async def _first_json(ws: Any, timeout_s: float = 10.0) -> dict[str, Any]:
    msg = await ws.receive(timeout=timeout_s)
    assert msg.type == aiohttp.WSMsgType.TEXT, msg
    data: dict[str, Any] = json.loads(msg.data)
    return data


async def test_a_tone_reaches_the_panel_and_the_session_ends_with_the_socket(
        talk_world: TalkWorld) -> None:
    from vms.db import models as m

    world = talk_world
    await world.login("resident_a")
    tone = tone_pcm(1000, 2.0)
    frame = int(FRAME_S * 8000) * 2
    before = (await world.camsim_state("Panel"))["backchannel"]["sessions_total"]
    async with world.client.ws_connect(f"/api/v1/cameras/{world.ids['Panel']}/talk") as ws:
        ready = await _first_json(ws)
        assert ready == {"type": "ready", "codec": "PCMU", "rate": 8000, "format": "s16le"}
        during = await world.camsim_state("Panel")
        assert during["backchannel"]["sessions_active"] == 1 and during["rtsp_sessions"] == 1
        start = time.monotonic()
        for i, offset in enumerate(range(0, len(tone), frame)):  # as a browser does: real time
            await ws.send_bytes(tone[offset:offset + frame])
            await asyncio.sleep(max(0.0, start + (i + 1) * FRAME_S - time.monotonic()))
        state = await world.wait_state("Panel", lambda s: s["backchannel"]["seconds"] >= 1.96)
    back = state["backchannel"]
    print("camsim backchannel:", json.dumps(back))
    assert abs(back["frequency_hz"] - 1000) <= 50, back
    assert 1.96 <= back["seconds"] <= 2.0, back  # all but the last part-packet
    assert back["packets"] == int(back["seconds"] * 8000) // 160
    assert back["arrival_span_s"] >= 1.7, back  # paced at 20 ms a packet, not one burst
    assert back["seq_gaps"] == 0 and back["timestamp_errors"] == 0, back
    assert back["bad_payload_types"] == 0 and back["peak"] > 8000
    # timestamps follow real time, through any underrun the sender's jitter caused
    assert back["talkspurts"] >= 1 and abs(back["rtp_span_s"] - back["arrival_span_s"]) < 0.3

    # closing the socket ends the RTSP session (TEARDOWN, connection closed)
    after = await world.wait_state("Panel", lambda s: s["rtsp_sessions"] == 0, timeout_s=3.0)
    assert after["rtsp_sessions"] == 0 and after["backchannel"]["sessions_active"] == 0, after
    assert after["backchannel"]["sessions_total"] == before + 1

    rows = await world.app[GATEWAY].read(
        lambda: [(r.username, r.outcome, r.target)
                 for r in m.AuditLog.select().where(m.AuditLog.action == "talk")
                 .order_by(m.AuditLog.id.desc()).limit(1)])
    assert rows == [("resident_a", "ok", f"camera {world.ids['Panel']} (Panel)")]


async def test_rights_errors_and_takeover(talk_world: TalkWorld) -> None:
    world = talk_world
    panel = f"/api/v1/cameras/{world.ids['Panel']}/talk"

    await world.login("operator_a")  # may watch Site A, but not answer its doors
    with pytest.raises(aiohttp.WSServerHandshakeError) as err:
        await world.client.ws_connect(panel)
    assert err.value.status == 403

    before = (await world.camsim_state("Panel"))["backchannel"]["sessions_total"]
    await world.login("viewer_b")  # has the door right, on Site B only
    with pytest.raises(aiohttp.WSServerHandshakeError) as err:
        await world.client.ws_connect(panel)
    assert err.value.status == 404
    assert (await world.camsim_state("Panel"))["backchannel"]["sessions_total"] == before

    await world.login("resident_a")
    with pytest.raises(aiohttp.WSServerHandshakeError) as err:
        await world.client.ws_connect(panel, headers={"Origin": "http://evil.example"})
    assert err.value.status == 403

    # a camera without a backchannel: a clear error, then the socket closes
    async with world.client.ws_connect(f"/api/v1/cameras/{world.ids['Mute']}/talk") as ws:
        error = await _first_json(ws)
        closed = await ws.receive(timeout=5)
    assert error["type"] == "error" and error["code"] == "no_backchannel", error
    assert "no audio backchannel" in error["message"] and "Mute" in error["message"]
    assert closed.type == aiohttp.WSMsgType.CLOSE and ws.close_code == 4000

    # one talk session per camera: the second one takes over, the first is told by whom
    async with world.client.ws_connect(panel) as first:
        assert (await _first_json(first))["type"] == "ready"
        async with world.client.ws_connect(panel) as second:
            assert (await _first_json(second))["type"] == "ready"
            ended = await _first_json(first)
            assert ended == {"type": "ended", "reason": "taken over by resident_a"}
            state = await world.wait_state(
                "Panel", lambda s: s["backchannel"]["sessions_active"] == 1 and
                s["rtsp_sessions"] == 1)
            assert state["backchannel"]["sessions_total"] == before + 2
            assert state["rtsp_sessions"] == 1, state
            # the panel hangs up (a reboot, a network cut): the talker is told
            async with aiohttp.ClientSession() as http, http.post(
                    f"{world.controls['Panel']}/fault", json={"kind": "drop"}) as resp:
                assert resp.status == 200
            ended = await _first_json(second, timeout_s=5.0)
            assert ended["type"] == "ended" and "camera ended the session" in ended["reason"]
    state = await world.wait_state("Panel", lambda s: s["rtsp_sessions"] == 0)
    assert state["rtsp_sessions"] == 0 and state["backchannel"]["sessions_active"] == 0


async def test_listening_to_a_camera_plays_its_sound_as_aac(talk_world: TalkWorld,
                                                           tmp_path: Any) -> None:
    """The panel's own sound for the live page: camsim's 1 kHz tone, from an AAC camera and from
    a G.711 camera (transcoded: MP4 cannot carry G.711), decoded back with PyAV."""
    import av

    from camsim.backchannel import dominant_frequency

    world = talk_world
    await world.login("resident_a")
    for name in ("Panel", "Mute"):
        async with world.client.ws_connect(f"/api/v1/cameras/{world.ids[name]}/listen") as ws:
            init_msg = await _first_json(ws, timeout_s=20)
            init = (await ws.receive(timeout=5)).data
            fragments: list[bytes] = []
            start = time.monotonic()
            while time.monotonic() - start < 1.0:
                msg = await ws.receive(timeout=5)
                assert msg.type == aiohttp.WSMsgType.BINARY, msg
                fragments.append(msg.data)
        assert init_msg == {"type": "init", "codec": "mp4a.40.2",
                            "mime": 'audio/mp4; codecs="mp4a.40.2"'}
        assert 10 <= len(fragments) <= 30, len(fragments)  # one a 64 ms AAC frame
        path = tmp_path / f"{name}.mp4"
        path.write_bytes(init + b"".join(fragments))
        samples = array("h")
        with av.open(str(path)) as container:
            stream = container.streams.audio[0]
            assert stream.codec_context.name == "aac" and stream.rate == 16000
            for frame in container.decode(stream):
                floats = array("f", bytes(frame.planes[0]))[:frame.samples]
                samples.extend(int(max(-1.0, min(1.0, x)) * 32767) for x in floats)
        frequency = dominant_frequency(samples, 16000)
        assert frequency is not None and abs(frequency - 1000) < 20, (name, frequency)


async def test_a_burst_is_bounded_and_a_silence_keeps_the_clock(talk_world: TalkWorld) -> None:
    """2 s sent at once: only the newest 0.5 s is kept (the delay stays bounded). Then a silence
    and a second talkspurt: its first packet has the marker bit, and the RTP timestamps jump by
    the silence (they follow real time) while the sequence numbers stay consecutive."""
    world = talk_world
    await world.login("resident_a")
    tone = tone_pcm(1000, 2.0)
    async with world.client.ws_connect(f"/api/v1/cameras/{world.ids['Panel']}/talk") as ws:
        assert (await _first_json(ws))["type"] == "ready"
        await ws.send_bytes(tone[:16000])  # the largest frames the socket takes: 1 s each
        await ws.send_bytes(tone[16000:])
        first = await world.wait_state("Panel", lambda s: s["backchannel"]["seconds"] >= 0.5)
        await asyncio.sleep(0.4)  # drained, then silent
        drained = await world.camsim_state("Panel")
        assert drained["backchannel"]["seconds"] == first["backchannel"]["seconds"]
        for offset in range(0, 3200, 640):  # 0.2 s more, in real time
            await ws.send_bytes(tone[offset:offset + 640])
            await asyncio.sleep(FRAME_S)
        state = await world.wait_state(
            "Panel", lambda s: s["backchannel"]["seconds"] >= first["backchannel"]["seconds"] + 0.2)
    back = state["backchannel"]
    print("camsim backchannel:", json.dumps(back))
    assert 0.5 <= first["backchannel"]["seconds"] <= 0.56, first  # 2 s sent, 0.5 s kept
    assert 0.7 <= back["seconds"] <= 0.76 and back["talkspurts"] == 2, back
    assert back["seq_gaps"] == 0 and back["timestamp_errors"] == 0, back
    assert back["rtp_span_s"] >= back["seconds"] + 0.3, back  # the silence is in the timestamps
    assert abs(back["rtp_span_s"] - back["arrival_span_s"]) < 0.3, back
