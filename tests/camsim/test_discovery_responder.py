"""camsim WS-Discovery responder: unicast Probe on loopback only (no multicast here)."""

from __future__ import annotations

import asyncio
import socket
import uuid
import xml.etree.ElementTree as ET

WSA = "http://schemas.xmlsoap.org/ws/2004/08/addressing"
WSD = "http://schemas.xmlsoap.org/ws/2005/04/discovery"


def probe(message_id: str, types: str = "dn:NetworkVideoTransmitter", scopes: str = "") -> bytes:
    scopes_xml = f"<d:Scopes>{scopes}</d:Scopes>" if scopes else ""
    return (
        '<?xml version="1.0" encoding="UTF-8"?>'
        '<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope" '
        f'xmlns:a="{WSA}" xmlns:d="{WSD}" xmlns:dn="http://www.onvif.org/ver10/network/wsdl">'
        f"<s:Header><a:MessageID>{message_id}</a:MessageID>"
        "<a:To>urn:schemas-xmlsoap-org:ws:2005:04:discovery</a:To>"
        f"<a:Action>{WSD}/Probe</a:Action></s:Header>"
        f"<s:Body><d:Probe><d:Types>{types}</d:Types>{scopes_xml}</d:Probe></s:Body></s:Envelope>"
    ).encode()


async def exchange(sock: socket.socket, target: tuple[str, int], payload: bytes,
                   wait_s: float = 1.0) -> bytes | None:
    loop = asyncio.get_running_loop()
    await loop.sock_sendto(sock, payload, target)
    try:
        return await asyncio.wait_for(loop.sock_recv(sock, 65535), wait_s)
    except TimeoutError:
        return None


async def test_unicast_probe_gets_probe_match(camsim_factory) -> None:
    fleet = await camsim_factory(count=2, rtsp=False)
    cam = fleet.cameras[0]
    host, port = cam.info()["discovery"].rsplit(":", 1)
    assert host == "127.0.0.1"
    assert fleet.cameras[1].info()["discovery"] != cam.info()["discovery"]
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.setblocking(False)
        message_id = f"urn:uuid:{uuid.uuid4()}"
        answer = await exchange(sock, (host, int(port)), probe(message_id))
        assert answer is not None
        root = ET.fromstring(answer)
        assert root.findtext(f".//{{{WSA}}}RelatesTo") == message_id
        assert root.findtext(f".//{{{WSA}}}Action") == f"{WSD}/ProbeMatches"
        match = root.find(f".//{{{WSD}}}ProbeMatch")
        assert match is not None
        assert match.findtext(f"{{{WSD}}}XAddrs") == cam.onvif_url
        assert match.findtext(f"{{{WSA}}}EndpointReference/{{{WSA}}}Address", "").startswith(
            "urn:uuid:")
        assert "dn:NetworkVideoTransmitter" in match.findtext(f"{{{WSD}}}Types", "")
        scopes = match.findtext(f"{{{WSD}}}Scopes", "").split()
        assert f"onvif://www.onvif.org/name/{cam.name}" in scopes
        assert "onvif://www.onvif.org/type/video_encoder" in scopes

        # garbage is ignored silently, and the responder keeps answering afterwards
        assert await exchange(sock, (host, int(port)), b"\x00\xffnot xml", 0.3) is None
        assert await exchange(sock, (host, int(port)), b"<a><b></a>", 0.3) is None
        assert await exchange(sock, (host, int(port)), probe("urn:uuid:x", types="tds:Foo"),
                              0.3) is None
        assert await exchange(sock, (host, int(port)),
                              probe("urn:uuid:y", scopes="onvif://www.onvif.org/name/other"),
                              0.3) is None
        scoped = await exchange(sock, (host, int(port)),
                                probe("urn:uuid:z", types="",
                                      scopes="onvif://www.onvif.org/type"))
        assert scoped is not None and b"urn:uuid:z" in scoped


async def test_move_to_rebinds_and_keeps_mac(camsim_factory) -> None:
    fleet = await camsim_factory(count=1, rtsp=False)
    cam = fleet.cameras[0]
    before = cam.info()
    await cam.move_to("127.0.0.1", 0)
    after = cam.info()
    assert after["mac"] == before["mac"]
    assert after["onvif_url"] != before["onvif_url"]
    host, port = after["discovery"].rsplit(":", 1)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.setblocking(False)
        answer = await exchange(sock, (host, int(port)), probe("urn:uuid:moved"))
        assert answer is not None and after["onvif_url"].encode() in answer
