"""camsim PTZ service: continuous moves integrate over (fake) time, presets, home, limits."""

from __future__ import annotations

import time

import pytest
from onvif import ONVIFCamera
from zeep.exceptions import Fault

from camsim.pytest_plugin import raw_soap
from vms.clock import FakeClock

TPTZ = "http://www.onvif.org/ver20/ptz/wsdl"
PROFILE = {"ProfileToken": "Profile_1"}


@pytest.fixture
def clock() -> FakeClock:
    # Wall time starts at the real "now" so WS-Security freshness checks pass.
    return FakeClock(start_us=time.time_ns() // 1000)


async def ptz_of(cam):  # type: ignore[no-untyped-def]
    onvif = ONVIFCamera("127.0.0.1", cam.http_port, cam.username, cam.password)
    await onvif.update_xaddrs()
    return onvif, await onvif.create_ptz_service()


async def position(ptz) -> tuple[float, float, float, str]:  # type: ignore[no-untyped-def]
    status = await ptz.GetStatus(PROFILE)
    pos = status.Position
    return pos.PanTilt.x, pos.PanTilt.y, pos.Zoom.x, status.MoveStatus.PanTilt


async def test_continuous_move_changes_position_over_time(camsim_factory, clock) -> None:
    fleet = await camsim_factory(count=1, rtsp=False, clock=clock)
    onvif, ptz = await ptz_of(fleet.cameras[0])
    try:
        assert await position(ptz) == (0.0, 0.0, 0.0, "IDLE")
        await ptz.ContinuousMove({**PROFILE, "Velocity": {"PanTilt": {"x": 0.5, "y": -0.25},
                                                          "Zoom": {"x": 0.1}},
                                  "Timeout": "PT10S"})
        clock.advance(1.0)
        pan, tilt, zoom, moving = await position(ptz)
        assert (pan, tilt, zoom) == pytest.approx((0.5, -0.25, 0.1))
        assert moving == "MOVING"
        clock.advance(1.0)
        pan, tilt, _, _ = await position(ptz)
        assert (pan, tilt) == pytest.approx((1.0, -0.5))
        clock.advance(5.0)  # clamps at the pan limit
        pan, tilt, _, _ = await position(ptz)
        assert pan == pytest.approx(1.0) and tilt == pytest.approx(-1.0)
        await ptz.Stop({**PROFILE, "PanTilt": True, "Zoom": True})
        frozen = await position(ptz)
        clock.advance(3.0)
        assert await position(ptz) == frozen
        assert frozen[3] == "IDLE"
    finally:
        await onvif.close()


async def test_continuous_move_timeout_is_honoured(camsim_factory, clock) -> None:
    fleet = await camsim_factory(count=1, rtsp=False, clock=clock)
    cam = fleet.cameras[0]
    onvif, ptz = await ptz_of(cam)
    try:
        await ptz.ContinuousMove({**PROFILE, "Velocity": {"PanTilt": {"x": -0.4, "y": 0}},
                                  "Timeout": "PT1S"})
        clock.advance(3.0)
        pan, _, _, moving = await position(ptz)
        assert pan == pytest.approx(-0.4) and moving == "IDLE"
        assert cam.state()["ptz"]["pan"] == pytest.approx(-0.4)
    finally:
        await onvif.close()


async def test_absolute_relative_presets_and_home(camsim_factory, clock) -> None:
    fleet = await camsim_factory(count=1, rtsp=False, clock=clock)
    onvif, ptz = await ptz_of(fleet.cameras[0])
    try:
        await ptz.AbsoluteMove({**PROFILE, "Position": {"PanTilt": {"x": 0.3, "y": 0.2},
                                                        "Zoom": {"x": 0.5}}})
        assert (await position(ptz))[:3] == pytest.approx((0.3, 0.2, 0.5))
        token = await ptz.SetPreset({**PROFILE, "PresetName": "gate"})
        presets = await ptz.GetPresets(PROFILE)
        assert [(p.token, p.Name) for p in presets] == [(token, "gate")]
        assert presets[0].PTZPosition.PanTilt.x == pytest.approx(0.3)

        await ptz.RelativeMove({**PROFILE, "Translation": {"PanTilt": {"x": 0.5, "y": -0.1},
                                                           "Zoom": {"x": 0.9}}})
        assert (await position(ptz))[:3] == pytest.approx((0.8, 0.1, 1.0))
        await ptz.SetHomePosition(PROFILE)
        await ptz.GotoPreset({**PROFILE, "PresetToken": token})
        assert (await position(ptz))[:3] == pytest.approx((0.3, 0.2, 0.5))
        await ptz.GotoHomePosition(PROFILE)
        assert (await position(ptz))[:3] == pytest.approx((0.8, 0.1, 1.0))
        await ptz.RemovePreset({**PROFILE, "PresetToken": token})
        assert await ptz.GetPresets(PROFILE) == []
        with pytest.raises(Fault):
            await ptz.GotoPreset({**PROFILE, "PresetToken": token})
        with pytest.raises(Fault):  # the sub profile has no PTZ configuration
            await ptz.GetStatus({"ProfileToken": "Profile_2"})
    finally:
        await onvif.close()


async def test_nodes_and_configurations(camsim_factory, onvif_schemas) -> None:
    fleet = await camsim_factory(count=1, rtsp=False)
    cam = fleet.cameras[0]
    onvif, ptz = await ptz_of(cam)
    try:
        nodes = await ptz.GetNodes()
        assert nodes[0].token == "PTZNodeToken_1" and nodes[0].HomeSupported
        node = await ptz.GetNode({"NodeToken": "PTZNodeToken_1"})
        assert node.SupportedPTZSpaces.ContinuousPanTiltVelocitySpace[0].XRange.Max == 1
        configs = await ptz.GetConfigurations()
        assert configs[0].NodeToken == "PTZNodeToken_1"
        config = await ptz.GetConfiguration({"PTZConfigurationToken": configs[0].token})
        assert config.PanTiltLimits.Range.XRange.Min == -1
    finally:
        await onvif.close()
    url = cam.onvif_url.replace("device_service", "ptz_service")
    for body_xml in (f'<GetNodes xmlns="{TPTZ}"/>', f'<GetConfigurations xmlns="{TPTZ}"/>',
                     f'<GetStatus xmlns="{TPTZ}"><ProfileToken>Profile_1</ProfileToken></GetStatus>',
                     f'<GetPresets xmlns="{TPTZ}"><ProfileToken>Profile_1</ProfileToken>'
                     "</GetPresets>"):
        status, body = await raw_soap(url, body_xml, username=cam.username, password=cam.password)
        assert status == 200, body
        onvif_schemas.validate_body("ptz.wsdl", body)


async def test_camera_without_ptz_has_no_ptz_service(camsim_factory) -> None:
    fleet = await camsim_factory(count=1, rtsp=False, ptz=False)
    cam = fleet.cameras[0]
    onvif = ONVIFCamera("127.0.0.1", cam.http_port, cam.username, cam.password)
    try:
        await onvif.update_xaddrs()
        assert TPTZ not in onvif.xaddrs
        assert cam.state()["ptz"] is None
    finally:
        await onvif.close()
