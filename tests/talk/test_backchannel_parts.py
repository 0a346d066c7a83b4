"""The parts of talk-back on their own: camsim's SDP with and without the ONVIF ``Require``
header (read with the server's RTSP client over a real socket), the server's SDP reading, and the
two independent G.711 μ-law codecs (the server's encoder, camsim's decoder) against each other."""

from __future__ import annotations

import math
import struct
from array import array

import pytest

from camsim.backchannel import dominant_frequency, ulaw_decode
from camsim.media import ClipSpec
from camsim.rtsp import RtspServer
from recorder.backchannel import REQUIRE_TAG, TalkError, backchannel_track, pcm16_to_ulaw
from recorder.rtsp_client import RtspConnection, RtspError

CLIP = ClipSpec(width=320, height=180, fps=25, bitrate_kbps=300, audio="aac", seconds=10)


async def _describe(server: RtspServer, headers: dict[str, str]) -> tuple[int, str]:
    conn = RtspConnection(server.url("/main"), "admin", "pw-1", timeout_s=5)
    await conn.connect()
    try:
        answer = await conn.request("DESCRIBE", server.url("/main"), headers)
        return answer.status, answer.body.decode()
    finally:
        await conn.close()


async def test_camsim_adds_the_backchannel_track_only_when_required() -> None:
    for enabled in (True, False):
        server = RtspServer(username="admin", password="pw-1", backchannel=enabled)
        server.add_stream("/main", CLIP)
        await server.start()
        try:
            status, plain = await _describe(server, {})
            assert status == 200 and "sendonly" not in plain and plain.count("m=") == 2
            status, sdp = await _describe(server, {"Require": REQUIRE_TAG})
            if enabled:
                assert status == 200 and sdp.startswith(plain.split("o=")[0])
                assert sdp.count("m=") == 3
                tail = sdp[sdp.rindex("m="):].split("\r\n")
                assert tail[:4] == ["m=audio 0 RTP/AVP 0", "a=rtpmap:0 PCMU/8000", "a=sendonly",
                                    "a=control:trackID=2"]
                assert backchannel_track(sdp, server.url("/main")) == (
                    server.url("/main") + "/trackID=2", 0)
            else:
                assert status == 551
            with pytest.raises(RtspError) as err:  # a wrong password is named as such
                conn = RtspConnection(server.url("/main"), "admin", "wrong", timeout_s=5)
                await conn.connect()
                try:
                    await conn.request("DESCRIBE", server.url("/main"))
                finally:
                    await conn.close()
            assert err.value.status == 401 and "password" in str(err.value)
        finally:
            await server.stop()


def test_sdp_reading() -> None:
    base = "rtsp://10.0.0.5/Streaming/channels/101"
    video = "m=video 0 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\na=recvonly\r\n"
    # absolute control URL, several payload types, PCMU without an rtpmap (static type 0)
    sdp = video + "m=audio 0 RTP/AVP 8 0\r\na=control:rtsp://10.0.0.5/back\r\na=sendonly\r\n"
    assert backchannel_track(sdp, base) == ("rtsp://10.0.0.5/back", 0)
    with pytest.raises(TalkError) as err:
        backchannel_track(video + "m=audio 0 RTP/AVP 8\r\na=rtpmap:8 PCMA/8000\r\n"
                          "a=sendonly\r\na=control:trackID=5\r\n", base)
    assert err.value.code == "codec" and "PCMA/8000" in str(err.value)
    with pytest.raises(TalkError) as err:  # a receiving audio track is not a backchannel
        backchannel_track(video + "m=audio 0 RTP/AVP 0\r\na=recvonly\r\n", base)
    assert err.value.code == "no_backchannel"


def test_ulaw_round_trip_and_frequency() -> None:
    samples = [int(20000 * math.sin(2 * math.pi * 440 * i / 8000)) for i in range(8000)]
    encoded = pcm16_to_ulaw(struct.pack(f"<{len(samples)}h", *samples))
    assert len(encoded) == len(samples)
    decoded = ulaw_decode(encoded)
    for original, back in zip(samples, decoded, strict=True):  # G.711: ~3% error at most
        assert abs(original - back) <= max(8, abs(original) * 0.035), (original, back)
    assert pcm16_to_ulaw(struct.pack("<3h", 0, 32767, -32768)) == bytes((0xFF, 0x80, 0x00))
    frequency = dominant_frequency(decoded)
    assert frequency is not None and abs(frequency - 440) < 2
    assert dominant_frequency(array("h", bytes(8000))) is None  # silence
    with pytest.raises(TalkError):
        pcm16_to_ulaw(b"\x00\x01\x02")
