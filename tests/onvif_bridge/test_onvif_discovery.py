"""WS-Discovery over real UDP sockets on 127.0.0.1, against responders written here."""

from __future__ import annotations

import asyncio
import logging
import re
import socket
import time
from typing import Any

import pytest

from onvif_bridge import discovery
from onvif_bridge.discovery import discover, parse_targets, preferred_xaddr
from onvif_bridge.errors import DiscoveryTargetError

MATCH = """<?xml version="1.0" encoding="UTF-8"?>
<SOAP-ENV:Envelope xmlns:SOAP-ENV="http://www.w3.org/2003/05/soap-envelope"
 xmlns:wsa="http://schemas.xmlsoap.org/ws/2004/08/addressing"
 xmlns:d="http://schemas.xmlsoap.org/ws/2005/04/discovery"
 xmlns:dn="http://www.onvif.org/ver10/network/wsdl">
<SOAP-ENV:Header><wsa:RelatesTo>{relates}</wsa:RelatesTo>
<wsa:Action>http://schemas.xmlsoap.org/ws/2005/04/discovery/ProbeMatches</wsa:Action>
</SOAP-ENV:Header><SOAP-ENV:Body><d:ProbeMatches><d:ProbeMatch>
<wsa:EndpointReference><wsa:Address>{endpoint}</wsa:Address></wsa:EndpointReference>
<d:Types>dn:NetworkVideoTransmitter</d:Types>
<d:Scopes>onvif://www.onvif.org/name/Gate%202 onvif://www.onvif.org/hardware/SIM-1</d:Scopes>
<d:XAddrs>http://[fe80::1]/onvif/device_service http://127.0.0.1:{port}/onvif/device_service</d:XAddrs>
<d:MetadataVersion>3</d:MetadataVersion>
</d:ProbeMatch></d:ProbeMatches></SOAP-ENV:Body></SOAP-ENV:Envelope>"""

ANNOUNCE = """<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope"
 xmlns:a="http://schemas.xmlsoap.org/ws/2004/08/addressing"
 xmlns:d="http://schemas.xmlsoap.org/ws/2005/04/discovery"><s:Body><d:{kind}>
<a:EndpointReference><a:Address>urn:uuid:hello-1</a:Address></a:EndpointReference>
<d:XAddrs>http://127.0.0.1:8000/onvif/device_service</d:XAddrs>
<d:MetadataVersion>1</d:MetadataVersion></d:{kind}></s:Body></s:Envelope>"""


def message_id(probe: bytes) -> str:
    found = re.search(rb"<a:MessageID>([^<]+)</a:MessageID>", probe)
    assert found
    return found.group(1).decode()


def match_for(probe: bytes, endpoint: str, port: int = 80) -> bytes:
    return MATCH.format(relates=message_id(probe), endpoint=endpoint, port=port).encode()


async def collect(**kwargs: Any) -> list[Any]:
    return [device async for device in discover(**kwargs)]


# --- targets ---------------------------------------------------------------------------------


def test_parse_targets() -> None:
    assert parse_targets(["10.0.3.17"]) == [discovery.Target("10.0.3.17", 3702)]
    assert parse_targets(["10.0.3.17:3703"]) == [discovery.Target("10.0.3.17", 3703)]
    assert parse_targets(["[::1]:4000"]) == [discovery.Target("::1", 4000)]
    assert parse_targets(["::1"]) == [discovery.Target("::1", 3702)]
    assert len(parse_targets(["10.0.3.0/24"])) == 254
    assert len(parse_targets(["10.0.0.0/16"])) == 65_534
    assert parse_targets(["10.0.3.5/32"]) == [discovery.Target("10.0.3.5")]


@pytest.mark.parametrize("spec, message", [
    ("10.0.0.0/15", "limit is 65536"),
    ("10.0.0.0/8", "split it"),
    ("host:http", "not a number"),
    ("host:70000", "out of range"),
    ("10.0.0.0/33", "10.0.0.0/33"),
    ("", "empty"),
])
def test_bad_targets_are_refused(spec: str, message: str) -> None:
    with pytest.raises(DiscoveryTargetError, match=message):
        parse_targets([spec])


async def test_bad_target_raises_before_sending() -> None:
    with pytest.raises(DiscoveryTargetError):
        await collect(targets=["10.0.0.0/8"], interfaces=[], timeout_s=0.2)


# --- probing ---------------------------------------------------------------------------------


async def test_unicast_probe_finds_device_and_dedupes(responder_factory: Any) -> None:
    responder = await responder_factory(lambda probe, addr: [match_for(probe, "urn:uuid:cam-1")])
    started = time.monotonic()
    found = await collect(targets=[f"127.0.0.1:{responder.port}"], interfaces=[], timeout_s=1.0)
    assert time.monotonic() - started < 2.0
    assert len(responder.probes) == 3, "the probe is retransmitted"
    assert len({message_id(p) for p in responder.probes}) == 1, "retransmissions keep the MessageID"
    (device,) = found  # three answers, one device
    assert device.endpoint == "urn:uuid:cam-1"
    assert device.sender == f"127.0.0.1:{responder.port}"
    assert device.name == "Gate 2" and device.hardware == "SIM-1" and device.metadata_version == 3
    assert preferred_xaddr(device) == "http://127.0.0.1:80/onvif/device_service"
    assert b"dn:NetworkVideoTransmitter" in responder.probes[0]


async def test_retransmission_reaches_a_device_that_missed_probes(responder_factory: Any) -> None:
    def third_time_lucky(probe: bytes, addr: tuple[str, int]) -> list[bytes]:
        return [match_for(probe, "urn:uuid:late")] if len(responder.probes) == 3 else []

    responder = await responder_factory(third_time_lucky)
    found = await collect(targets=[f"127.0.0.1:{responder.port}"], interfaces=[], timeout_s=1.5)
    assert [d.endpoint for d in found] == ["urn:uuid:late"]


async def test_several_devices_are_yielded_as_they_arrive(responder_factory: Any) -> None:
    responders = [
        await responder_factory(lambda probe, addr, i=i: [match_for(probe, f"urn:uuid:cam-{i}")])
        for i in range(3)
    ]
    targets = [f"127.0.0.1:{r.port}" for r in responders]
    started = time.monotonic()
    async for device in discover(targets=targets, interfaces=[], timeout_s=5.0):
        assert device.endpoint.startswith("urn:uuid:cam-")
        assert time.monotonic() - started < 1.0, "first result streams before the window ends"
        break


async def test_hostile_and_garbled_replies_are_logged_and_skipped(
    responder_factory: Any, caplog: pytest.LogCaptureFixture
) -> None:
    xxe = (b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]>'
           b"<x>&e;</x>")

    def reply(probe: bytes, addr: tuple[str, int]) -> list[bytes]:
        return [xxe, b"\x00\xffgarbage", b"<not-soap/>", match_for(probe, "urn:uuid:good")]

    responder = await responder_factory(reply)
    with caplog.at_level(logging.WARNING, logger="onvif_bridge.discovery"):
        found = await collect(targets=[f"127.0.0.1:{responder.port}"], interfaces=[],
                              timeout_s=0.8, repeats=1)
    assert [d.endpoint for d in found] == ["urn:uuid:good"]
    warnings = [r.getMessage() for r in caplog.records]
    assert any(f"127.0.0.1:{responder.port}" in w and "DTD" in w for w in warnings), warnings
    assert any("not XML" in w for w in warnings)
    assert not any("root:" in w for w in warnings)


async def test_silent_target_ends_after_timeout() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))  # reads nothing, answers nothing
        port = sock.getsockname()[1]
        started = time.monotonic()
        assert await collect(targets=[f"127.0.0.1:{port}"], interfaces=[], timeout_s=0.5) == []
        assert 0.45 < time.monotonic() - started < 1.5


async def test_targets_without_interfaces_never_multicast(
    responder_factory: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    def forbidden() -> list[str]:
        raise AssertionError("listed the host's interfaces: would multicast on a real interface")

    monkeypatch.setattr(discovery, "local_ipv4_addresses", forbidden)
    responder = await responder_factory(lambda probe, addr: [])
    assert await collect(targets=[f"127.0.0.1:{responder.port}"], timeout_s=0.3) == []


async def test_early_break_closes_sockets(responder_factory: Any) -> None:
    responder = await responder_factory(lambda probe, addr: [match_for(probe, "urn:uuid:x")])
    agen = discover(targets=[f"127.0.0.1:{responder.port}"], interfaces=[], timeout_s=5.0)
    async for _device in agen:
        break
    await agen.aclose()  # type: ignore[attr-defined]


async def test_hello_and_bye_are_heard(unused_udp_port: int) -> None:
    async def announce() -> None:
        await asyncio.sleep(0.2)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            for kind in ("Hello", "Hello", "Bye"):
                sock.sendto(ANNOUNCE.format(kind=kind).encode(), ("127.0.0.1", unused_udp_port))
                await asyncio.sleep(0.05)

    task = asyncio.create_task(announce())
    found = await collect(interfaces=[], timeout_s=0.8, listen_announcements=True,
                          announcement_port=unused_udp_port)
    await task
    assert [(d.message, d.endpoint) for d in found] == [
        ("Hello", "urn:uuid:hello-1"), ("Bye", "urn:uuid:hello-1")]


@pytest.fixture
def unused_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_many_targets_all_found(responder_factory: Any) -> None:
    """Replies to a burst of probes must not overflow the socket (regression: 92 of 300)."""
    responders = [
        await responder_factory(lambda probe, addr, i=i: [match_for(probe, f"urn:uuid:m-{i}")])
        for i in range(300)
    ]
    found = await collect(targets=[f"127.0.0.1:{r.port}" for r in responders], interfaces=[],
                          timeout_s=1.0, repeats=1)
    assert len({d.endpoint for d in found}) == 300
