"""camsim Device service, driven by the real ONVIF client (onvif-zeep-async) over loopback."""

from __future__ import annotations

import asyncio
import datetime as dt
import os

import pytest
from onvif import ONVIFCamera
from zeep.exceptions import Fault

from camsim.pytest_plugin import raw_soap

TDS = "http://www.onvif.org/ver10/device/wsdl"


def client(camera, password: str | None = None, **kwargs) -> ONVIFCamera:  # type: ignore[no-untyped-def]
    return ONVIFCamera("127.0.0.1", camera.http_port, camera.username,
                       password if password is not None else camera.password, **kwargs)


def is_not_authorized(fault: Fault) -> bool:
    return any(getattr(s, "localname", str(s)).endswith("NotAuthorized") for s in fault.subcodes or [])


async def test_identity_capabilities_services_and_network(camsim_factory) -> None:
    fleet = await camsim_factory(count=1, rtsp=False, relays=2, inputs=1)
    cam = fleet.cameras[0]
    onvif = client(cam)
    try:
        await onvif.update_xaddrs()  # GetServices under the hood
        assert onvif.xaddrs["http://www.onvif.org/ver10/media/wsdl"].endswith("/onvif/media_service")
        assert "http://www.onvif.org/ver20/ptz/wsdl" in onvif.xaddrs
        assert "http://www.onvif.org/ver10/deviceIO/wsdl" in onvif.xaddrs
        dm = await onvif.create_devicemgmt_service()
        info = await dm.GetDeviceInformation()
        assert info.Manufacturer == "CamSim"
        assert info.Model.startswith("CS-")
        assert info.SerialNumber == cam.options.serial

        caps = await dm.GetCapabilities({"Category": "All"})
        assert caps.Media.XAddr == f"http://127.0.0.1:{cam.http_port}/onvif/media_service"
        assert caps.Events.WSPullPointSupport is True
        assert caps.PTZ.XAddr.endswith("/onvif/ptz_service")
        assert caps.Device.IO.RelayOutputs == 2
        # zeep's xs:any (##other) swallows tt:DeviceIO into _value_1, as with Hikvision's answer
        ext = caps.Extension.DeviceIO or caps.Extension._value_1[0]
        xaddr = ext.XAddr if hasattr(ext, "XAddr") else ext.findtext("{*}XAddr")
        assert xaddr.endswith("/onvif/deviceio_service")
        media_only = await dm.GetCapabilities({"Category": "Media"})
        assert media_only.Device is None and media_only.Media is not None

        services = await dm.GetServices({"IncludeCapability": True})
        by_ns = {s.Namespace: s for s in services}
        assert set(by_ns) >= {TDS, "http://www.onvif.org/ver10/media/wsdl",
                              "http://www.onvif.org/ver10/events/wsdl"}
        assert by_ns[TDS].Capabilities is not None
        assert by_ns[TDS].Version.Major == 2

        interfaces = await dm.GetNetworkInterfaces()
        assert interfaces[0].Info.HwAddress == cam.info()["mac"]
        assert interfaces[0].IPv4.Config.Manual[0].Address == "127.0.0.1"

        scopes = [s.ScopeItem for s in await dm.GetScopes()]
        assert f"onvif://www.onvif.org/name/{cam.name}" in scopes
        assert "onvif://www.onvif.org/type/video_encoder" in scopes

        assert (await dm.GetHostname()).Name == cam.name
        await dm.SetNTP({"FromDHCP": False,
                         "NTPManual": [{"Type": "IPv4", "IPv4Address": "10.0.0.1"}]})
        ntp = await dm.GetNTP()
        assert ntp.NTPManual[0].IPv4Address == "10.0.0.1"

        relays = await dm.GetRelayOutputs()
        assert [r.token for r in relays] == ["RelayOutputToken_1", "RelayOutputToken_2"]
        await dm.SetRelayOutputState({"RelayOutputToken": "RelayOutputToken_2",
                                      "LogicalState": "active"})
        assert cam.state()["relays"]["RelayOutputToken_2"] == "active"
    finally:
        await onvif.close()


async def test_wrong_password_is_not_authorized(camsim_camera) -> None:
    onvif = client(camsim_camera, password="not-the-password")
    try:
        dm = await onvif.create_devicemgmt_service()
        with pytest.raises(Fault) as caught:
            await dm.GetDeviceInformation()
        assert is_not_authorized(caught.value)
        # GetSystemDateAndTime stays open, like on real cameras
        answer = await dm.GetSystemDateAndTime()
        assert answer.UTCDateTime.Date.Year >= 2024
    finally:
        await onvif.close()


async def test_password_text_and_soap11_accepted_missing_token_refused(camsim_camera) -> None:
    cam = camsim_camera
    op = f'<GetDeviceInformation xmlns="{TDS}"/>'
    status, body = await raw_soap(cam.onvif_url, op, username=cam.username,
                                  password=cam.password, digest=False, soap11=True)
    assert status == 200 and b"<tds:Manufacturer>CamSim" in body
    assert b"http://schemas.xmlsoap.org/soap/envelope/" in body
    status, body = await raw_soap(cam.onvif_url, op)
    assert status == 401 and b"ter:NotAuthorized" in body


async def test_clock_offset_two_hours_rejects_digest_but_reports_time(camsim_factory) -> None:
    fleet = await camsim_factory(count=1, rtsp=False, clock_offset_s=7200)
    cam = fleet.cameras[0]
    onvif = client(cam)
    try:
        dm = await onvif.create_devicemgmt_service()
        with pytest.raises(Fault) as caught:
            await dm.GetDeviceInformation()
        assert is_not_authorized(caught.value)
        answer = await dm.GetSystemDateAndTime()
        d, t = answer.UTCDateTime.Date, answer.UTCDateTime.Time
        cam_time = dt.datetime(d.Year, d.Month, d.Day, t.Hour, t.Minute, t.Second, tzinfo=dt.UTC)
        skew = (cam_time - dt.datetime.now(dt.UTC)).total_seconds()
        assert 7190 < skew < 7210
        assert cam.state()["clock_offset_s"] == 7200
    finally:
        await onvif.close()
    # a client that reads the camera's time first (adjust_time) gets in
    adjusted = client(cam, adjust_time=True)
    try:
        await adjusted.update_xaddrs()
        dm = await adjusted.create_devicemgmt_service()
        assert (await dm.GetDeviceInformation()).Manufacturer == "CamSim"
    finally:
        await adjusted.close()


async def test_set_system_date_and_time_manual_sets_offset(camsim_camera) -> None:
    cam = camsim_camera
    onvif = client(cam)
    try:
        dm = await onvif.create_devicemgmt_service()
        target = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=3)
        await dm.SetSystemDateAndTime({
            "DateTimeType": "Manual", "DaylightSavings": False,
            "TimeZone": {"TZ": "UTC0"},
            "UTCDateTime": {
                "Date": {"Year": target.year, "Month": target.month, "Day": target.day},
                "Time": {"Hour": target.hour, "Minute": target.minute, "Second": target.second},
            },
        })
        assert -182 < cam.state()["clock_offset_s"] < -178
        answer = await dm.GetSystemDateAndTime()
        assert answer.DateTimeType == "Manual"
        # still within the 5 min digest tolerance, so we are not locked out
        assert (await dm.GetHostname()).Name == cam.name
    finally:
        await onvif.close()


async def test_replayed_nonce_and_stale_created_are_refused(camsim_camera) -> None:
    cam = camsim_camera
    op = f'<GetHostname xmlns="{TDS}"/>'
    nonce = os.urandom(16)
    created = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    first = await raw_soap(cam.onvif_url, op, username=cam.username, password=cam.password,
                           nonce=nonce, created=created)
    assert first[0] == 200
    replay = await raw_soap(cam.onvif_url, op, username=cam.username, password=cam.password,
                            nonce=nonce, created=created)
    assert replay[0] == 401 and b"NotAuthorized" in replay[1]
    stale = (dt.datetime.now(dt.UTC) - dt.timedelta(minutes=10)).strftime("%Y-%m-%dT%H:%M:%SZ")
    old = await raw_soap(cam.onvif_url, op, username=cam.username, password=cam.password,
                         created=stale)
    assert old[0] == 401


async def test_unknown_operation_and_garbage(camsim_camera) -> None:
    cam = camsim_camera
    status, body = await raw_soap(cam.onvif_url, f'<GetDot11Capabilities xmlns="{TDS}"/>',
                                  username=cam.username, password=cam.password)
    assert status == 500 and b"ter:ActionNotSupported" in body
    import aiohttp

    async with aiohttp.ClientSession() as session, session.post(cam.onvif_url,
                                                                data=b"<not xml") as resp:
        assert resp.status == 400
        assert b"env:Fault" in await resp.read()


async def test_device_information_validates_against_xsd(camsim_camera, onvif_schemas) -> None:
    cam = camsim_camera
    for op in ("GetDeviceInformation", "GetSystemDateAndTime", "GetNetworkInterfaces",
               "GetScopes", "GetHostname", "GetNTP", "GetRelayOutputs"):
        status, body = await raw_soap(cam.onvif_url, f'<{op} xmlns="{TDS}"/>',
                                      username=cam.username, password=cam.password)
        assert status == 200, body
        onvif_schemas.validate_body("devicemgmt.wsdl", body)
    for body_xml in (f'<GetCapabilities xmlns="{TDS}"><Category>All</Category></GetCapabilities>',
                     f'<GetServices xmlns="{TDS}"><IncludeCapability>true</IncludeCapability>'
                     "</GetServices>",
                     f'<GetServiceCapabilities xmlns="{TDS}"/>'):
        status, body = await raw_soap(cam.onvif_url, body_xml, username=cam.username,
                                      password=cam.password)
        assert status == 200
        onvif_schemas.validate_body("devicemgmt.wsdl", body)


async def test_system_reboot_makes_camera_unavailable_then_back(camsim_factory) -> None:
    fleet = await camsim_factory(count=1, rtsp=False, reboot_s=0.5)
    cam = fleet.cameras[0]
    onvif = client(cam)
    try:
        await onvif.update_xaddrs()
        events = await onvif.create_events_service()
        await events.CreatePullPointSubscription({"InitialTerminationTime": "PT60S"})
        assert cam.state()["subscriptions"] == 1
        dm = await onvif.create_devicemgmt_service()
        message = await dm.SystemReboot()
        assert "Rebooting" in message
        for _ in range(250):  # the reboot begins just after the answer is sent (≤ 5 s)
            if cam.rebooting:
                break
            await asyncio.sleep(0.02)
        assert cam.rebooting
        assert cam.state()["subscriptions"] == 0
        status = None
        try:
            status, _ = await raw_soap(cam.onvif_url, f'<GetSystemDateAndTime xmlns="{TDS}"/>')
        except OSError:  # aiohttp.ClientError derives from it here: connection refused/reset
            status = None
        assert status != 200
        for _ in range(40):
            await asyncio.sleep(0.1)
            if not cam.rebooting:
                break
        assert not cam.rebooting
        status, _ = await raw_soap(cam.onvif_url, f'<GetSystemDateAndTime xmlns="{TDS}"/>')
        assert status == 200
    finally:
        await onvif.close()
