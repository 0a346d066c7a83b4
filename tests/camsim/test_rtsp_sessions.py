"""camsim's RTSP sessions against real clients on 127.0.0.1: Digest auth (ffmpeg and the tiny RTSP
client of tests/camsim/rtsp_client.py), UDP sessions that time out without keep-alives, unknown
paths and transports.
"""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

from camsim.rtsp import RtspServer
from tests.camsim.rtsp_client import PASSWORD, SMALL, USER, MiniRtsp, creds_url, run_ffmpeg

# ----------------------------------------------------------------------------- tests


async def test_digest_auth(server: RtspServer, tmp_path: Path) -> None:
    anonymous = MiniRtsp(server.url("/main"))
    await anonymous.connect()
    status, headers, _ = await anonymous.request("DESCRIBE")
    assert status == 401 and headers["www-authenticate"].startswith("Digest ")
    assert 'realm="' in headers["www-authenticate"] and 'nonce="' in headers["www-authenticate"]
    await anonymous.close()

    wrong = MiniRtsp(server.url("/main"), USER, "wrong")
    await wrong.connect()
    status, _, _ = await wrong.request("DESCRIBE")
    assert status == 401
    await wrong.close()

    rc, err = await run_ffmpeg(
        "-rtsp_transport", "tcp", "-i", creds_url(server, "/main", "wrong"), "-t", "1",
        "-f", "null", "-",
    )
    assert rc != 0 and "401" in err

    # Credentials can change at run time.
    server.password = "n3w"
    right = MiniRtsp(server.url("/main"), USER, "n3w")
    await right.connect()
    await right.play_tcp()
    await right.read_for(0.3)
    await right.close()
    assert right.rtp(0)


async def test_udp_session_times_out_without_keepalive(server: RtspServer) -> None:
    server.session_timeout_s = 1
    rtp_sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    rtp_sock.bind(("127.0.0.1", 0))
    rtp_sock.setblocking(False)
    port = rtp_sock.getsockname()[1]
    client = MiniRtsp(server.url("/main"), USER, PASSWORD)
    await client.connect()
    try:
        _, headers, _ = await client.request("DESCRIBE")
        status, headers, _ = await client.request(
            "SETUP", server.url("/main") + "/trackID=0",
            {"Transport": f"RTP/AVP;unicast;client_port={port}-{port + 1}"},
        )
        assert status == 200
        assert "server_port=" in headers["transport"] and "timeout=1" in headers["session"]
        client.session = headers["session"].split(";")[0]
        status, _, _ = await client.request("PLAY", server.url("/main"))
        assert status == 200
        await asyncio.sleep(0.3)
        data, addr = rtp_sock.recvfrom(2000)
        assert data[0] == 0x80 and addr[0] == "127.0.0.1"
        assert server.sessions()[0]["transport"] == "udp"
        for _ in range(5):  # GET_PARAMETER keep-alives hold the session open past its timeout
            await asyncio.sleep(0.4)
            status, _, _ = await client.request("GET_PARAMETER", server.url("/main"))
            assert status == 200
        assert server.session_count == 1
        for _ in range(40):
            await asyncio.sleep(0.1)
            if server.session_count == 0:
                break
        assert server.session_count == 0, "session expired without keep-alive"
    finally:
        rtp_sock.close()
        await client.close()


async def test_unknown_path_and_transport(server: RtspServer) -> None:
    client = MiniRtsp(server.url("/nope"), USER, PASSWORD)
    await client.connect()
    status, _, _ = await client.request("DESCRIBE")
    assert status == 404
    server.add_stream("/late", SMALL)  # streams may be added while running
    status, _, body = await client.request("DESCRIBE", server.url("/late"))
    assert status == 200 and b"m=video" in body
    status, headers, _ = await client.request("OPTIONS")
    assert status == 200 and "GET_PARAMETER" in headers["public"]
    status, _, _ = await client.request(
        "SETUP", server.url("/main") + "/trackID=0", {"Transport": "RTP/AVP;multicast"}
    )
    assert status == 461
    await client.close()
