"""Discovery never drops a camera silently: a bare ``<ProbeMatch>`` (no ``<ProbeMatches>`` around
it, as some cameras send) is read, and a reply nobody could read is reported with why — by
:func:`discover`, and by ``vms discover --json``."""

from __future__ import annotations

import json
import socket
import threading
from typing import Any

import pytest

from onvif_bridge.discovery import discover
from onvif_bridge.wsd import parse_discovery

BARE = b"""<?xml version="1.0" encoding="UTF-8"?>
<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope"
 xmlns:a="http://schemas.xmlsoap.org/ws/2004/08/addressing"
 xmlns:d="http://schemas.xmlsoap.org/ws/2005/04/discovery">
<s:Header><a:Action>http://schemas.xmlsoap.org/ws/2005/04/discovery/ProbeMatches</a:Action>
</s:Header><s:Body><d:ProbeMatch>
<a:EndpointReference><a:Address>urn:uuid:bare-1</a:Address></a:EndpointReference>
<d:Types>dn:NetworkVideoTransmitter</d:Types>
<d:XAddrs>http://10.0.3.17/onvif/device_service</d:XAddrs>
</d:ProbeMatch></s:Body></s:Envelope>"""


def test_a_bare_probe_match_is_read() -> None:
    (device,) = parse_discovery(BARE, "10.0.3.17:3702")
    assert device.endpoint == "urn:uuid:bare-1"
    assert device.xaddrs == ("http://10.0.3.17/onvif/device_service",)


async def test_bare_and_unreadable_replies_from_camsim(camsim_factory: Any) -> None:
    fleet = await camsim_factory(count=3)
    bare, garbled, normal = fleet.cameras
    await bare.fault("probe_bare", 60)
    await garbled.fault("probe_garbled", 60)
    targets = [c.info()["discovery"] for c in fleet.cameras]
    found = [d async for d in discover(targets, interfaces=[], timeout_s=0.6, repeats=2)]
    by_sender = {d.sender: d for d in found}
    assert len(found) == 3, found
    for camera in (bare, normal):
        device = by_sender[camera.info()["discovery"]]
        assert device.message == "ProbeMatch"
        assert device.xaddrs == (camera.info()["onvif_url"],)
    unread = by_sender[garbled.info()["discovery"]]
    assert unread.message == "Unparsed" and unread.endpoint.startswith("unparsed:")
    assert "XML" in unread.error, unread.error  # why: the reply was cut off


@pytest.fixture
def garbling_device() -> Any:
    """A device on loopback that answers every Probe with half a ProbeMatch (a thread, so the
    synchronous CLI can run its own event loop)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(0.1)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                _data, addr = sock.recvfrom(65535)
            except TimeoutError:
                continue
            sock.sendto(BARE[: len(BARE) // 2], addr)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield f"127.0.0.1:{sock.getsockname()[1]}"
    stop.set()
    thread.join(2)
    sock.close()


def test_vms_discover_json_lists_an_unreadable_reply(garbling_device: str,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    from vms.cli import main

    assert main(["discover", "--target", garbling_device, "--timeout", "0.4", "--json"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len(rows) == 1, rows
    assert rows[0]["address"] == garbling_device and rows[0]["status"] == "unparsed"
    assert "could not be read" in rows[0]["message"] and "XML" in rows[0]["message"]
