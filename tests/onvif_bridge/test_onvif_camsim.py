"""The client against virtual cameras (camsim) on 127.0.0.1: discovery, interrogation, faults."""

from __future__ import annotations

import logging
from typing import Any

import aiohttp
import pytest

from onvif_bridge.client import OnvifClient, interrogate, redact_url
from onvif_bridge.discovery import discover, preferred_xaddr
from onvif_bridge.errors import OnvifAuthError
from onvif_bridge.models import Status
from onvif_bridge.snapshot import get_snapshot
from vms.clock import SystemClock

pytest.importorskip("camsim.pytest_plugin", reason="camsim's pytest plugin is not there yet")


async def test_unicast_discovery_finds_each_camera(camsim_factory: Any) -> None:
    fleet = await camsim_factory(count=2)
    infos = [camera.info() for camera in fleet.cameras]
    found = [d async for d in discover(targets=[i["discovery"] for i in infos], interfaces=[],
                                       timeout_s=1.0)]
    assert len(found) == 2
    assert {d.sender for d in found} == {i["discovery"] for i in infos}
    by_sender = {d.sender: d for d in found}
    for info in infos:
        device = by_sender[info["discovery"]]
        assert preferred_xaddr(device) == info["onvif_url"]
        assert device.name


async def test_interrogate_ok(camsim_camera: Any) -> None:
    info = camsim_camera.info()
    report = await interrogate(info["onvif_url"], info["username"], info["password"],
                               clock=SystemClock(), timeout_s=5.0, name=info["name"])
    assert report.status is Status.OK, report.message
    assert report.mac == info["mac"]
    assert report.device_info is not None and report.device_info.manufacturer
    assert abs(report.clock_offset_us or 0) < 2_000_000
    assert report.capabilities is not None and report.capabilities.has("media")
    assert report.profiles and all(p.stream_uri for p in report.profiles)
    main = report.profiles[0]
    assert main.stream_uri is not None and main.stream_uri.startswith("rtsp://127.0.0.1:")
    assert main.profile.encoding in ("H264", "H265") and main.profile.width
    if main.snapshot_uri:
        jpeg = await get_snapshot(main.snapshot_uri, info["username"], info["password"],
                                  camera_host="127.0.0.1", timeout_s=5.0)
        assert jpeg[:2] == b"\xff\xd8"


async def test_wrong_password_is_auth_failed(camsim_camera: Any) -> None:
    info = camsim_camera.info()
    report = await interrogate(info["onvif_url"], info["username"], "not-the-password",
                               clock=SystemClock(), timeout_s=5.0, name=info["name"])
    assert report.status is Status.AUTH_FAILED, report.message
    assert "wrong password" in report.message
    assert "not-the-password" not in report.message


async def test_unreachable(unused_tcp_port: int) -> None:
    report = await interrogate(f"127.0.0.1:{unused_tcp_port}", "admin", "x", timeout_s=2.0)
    assert report.status is Status.UNREACHABLE, report.message


async def test_clock_skew_detected_then_fixed(camsim_factory: Any) -> None:
    fleet = await camsim_factory(count=1, per_camera=[{"clock_offset_s": 7200}])
    info = fleet.cameras[0].info()
    report = await interrogate(info["onvif_url"], info["username"], info["password"],
                               clock=SystemClock(), timeout_s=5.0)
    assert report.status is Status.CLOCK_SKEW, report.message
    assert abs((report.clock_offset_us or 0) - 7_200_000_000) < 3_000_000
    assert "ahead" in report.message
    async with OnvifClient(info["onvif_url"], info["username"], info["password"],
                           timeout_s=5.0) as client:
        await client.measure_clock()
        await client.set_system_clock()
        assert abs(client.clock_offset_us or 0) < 2_000_000
    again = await interrogate(info["onvif_url"], info["username"], info["password"],
                              clock=SystemClock(), timeout_s=5.0)
    assert again.status is Status.OK, again.message


async def test_malformed_soap_is_bad_response(camsim_camera: Any,
                                              caplog: pytest.LogCaptureFixture) -> None:
    info = camsim_camera.info()
    async with aiohttp.ClientSession() as session:
        async with session.post(f"{info['control_url']}/fault",
                                json={"kind": "bad_xml", "seconds": 30}) as response:
            assert response.status < 300
    with caplog.at_level(logging.WARNING, logger="onvif_bridge.client"):
        report = await interrogate(info["onvif_url"], info["username"], info["password"],
                                   timeout_s=5.0)
    assert report.status is Status.BAD_RESPONSE, report.message
    assert "unreadable answer" in report.message
    assert any("unreadable answer" in r.getMessage() for r in caplog.records)


async def test_set_video_encoder_returns_accepted(camsim_camera: Any) -> None:
    info = camsim_camera.info()
    async with OnvifClient(info["onvif_url"], info["username"], info["password"],
                           timeout_s=5.0) as client:
        await client.measure_clock()
        await client.capabilities()
        profile = (await client.profiles())[0]
        accepted = await client.set_video_encoder(profile.token, width=1280, height=720,
                                                  fps=15, bitrate_kbps=1500, gov_length=30)
        assert (accepted.width, accepted.height) == (1280, 720)
        assert accepted.bitrate_kbps == 1500 and accepted.gov_length == 30


async def test_snapshot_with_wrong_password(camsim_camera: Any) -> None:
    info = camsim_camera.info()
    report = await interrogate(info["onvif_url"], info["username"], info["password"],
                               timeout_s=5.0)
    uri = next((p.snapshot_uri for p in report.profiles if p.snapshot_uri), None)
    if uri is None:
        pytest.skip("camsim offers no snapshot URI")
    with pytest.raises(OnvifAuthError):
        await get_snapshot(uri, info["username"], "wrong", camera_host="127.0.0.1",
                           timeout_s=5.0)


def test_redact_url() -> None:
    assert redact_url("rtsp://admin:s3cret@10.0.3.17:554/main") == "rtsp://***@10.0.3.17:554/main"
    assert redact_url("rtsp://10.0.3.17/main") == "rtsp://10.0.3.17/main"
    assert "s3cret" not in redact_url("http://u:s3cret@[fe80::1]/x")


@pytest.fixture
def unused_tcp_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
