"""Relay outputs as real cameras and camsim describe them: GetRelayOutputs of the Hikvision
fixtures (a dome with two Monostable PT5S alarm outputs, a bullet with none), camsim's
GetRelayOutputOptions with and without Monostable, xs:durations, and camsim's
SetRelayOutputSettings in both the DeviceIO and the Device flavour (answers valid per the WSDLs)."""

from __future__ import annotations

from pathlib import Path

import pytest

from camsim.pytest_plugin import raw_soap
from onvif_bridge.models import RelayOutput
from onvif_bridge.parsers import duration_s, parse_response

TMD = "http://www.onvif.org/ver10/deviceIO/wsdl"
TDS = "http://www.onvif.org/ver10/device/wsdl"
TT = "http://www.onvif.org/ver10/schema"


def test_hikvision_relay_outputs(shared_fixtures: Path) -> None:
    dome = parse_response((shared_fixtures / "hikvision-ds-2df7276-ael__GetRelayOutputs.xml")
                          .read_bytes())
    assert dome == (RelayOutput("AlarmOut_0", "Monostable", 5.0, "closed"),
                    RelayOutput("AlarmOut_1", "Monostable", 5.0, "closed"))
    # no options were given: a relay already Monostable is pulsed that way, with any delay
    assert dome[0].monostable_for(1)
    bullet = parse_response((shared_fixtures / "hikvision-ds-2cd2012-i__GetRelayOutputs.xml")
                            .read_bytes())
    assert bullet == ()


@pytest.mark.parametrize(("text", "seconds"), [
    ("PT5S", 5.0), ("PT0.5S", 0.5), ("PT1M30S", 90.0), ("PT1H", 3600.0), ("pt2s", 2.0),
    ("", None), ("5", None), ("PT", None), ("P1Y", None)])
def test_durations(text: str, seconds: float | None) -> None:
    assert duration_s(text) == seconds


async def test_camsim_options_and_settings_both_flavours(camsim_factory, onvif_schemas) -> None:  # type: ignore[no-untyped-def]
    fleet = await camsim_factory(count=2, rtsp=False, per_camera=[{"relay_monostable": True},
                                                                  {"relay_monostable": False}])
    mono, bistable = fleet.cameras
    options = []
    for cam in (mono, bistable):
        url = cam.onvif_url.replace("device_service", "deviceio_service")
        status, body = await raw_soap(url, f'<GetRelayOutputOptions xmlns="{TMD}"/>',
                                      username=cam.username, password=cam.password)
        assert status == 200
        onvif_schemas.validate_body("deviceio.wsdl", body)
        options.append(parse_response(body)["RelayOutputToken_1"])
    assert options[0].modes == ("Monostable", "Bistable")
    assert (options[0].delay_min_s, options[0].delay_max_s) == (1.0, 120.0)
    assert options[0].monostable_for(1) and not options[0].monostable_for(300)
    assert options[1].modes == ("Bistable",) and not options[1].monostable_for(1)

    props = (f'<Properties><tt:Mode xmlns:tt="{TT}">Monostable</tt:Mode>'
             f'<tt:DelayTime xmlns:tt="{TT}">PT2S</tt:DelayTime>'
             f'<tt:IdleState xmlns:tt="{TT}">open</tt:IdleState></Properties>')
    # DeviceIO: a RelayOutput with a token attribute
    url = mono.onvif_url.replace("device_service", "deviceio_service")
    status, body = await raw_soap(
        url, f'<SetRelayOutputSettings xmlns="{TMD}"><RelayOutput token="RelayOutputToken_1">'
             f'{props.replace("<Properties>", f"<Properties xmlns={chr(34)}{TT}{chr(34)}>")}'
             "</RelayOutput></SetRelayOutputSettings>",
        username=mono.username, password=mono.password)
    assert status == 200, body
    onvif_schemas.validate_body("deviceio.wsdl", body)
    assert mono.state()["relay_settings"]["RelayOutputToken_1"] == {
        "mode": "Monostable", "delay_s": 2.0, "idle_state": "open"}
    # Device: RelayOutputToken and Properties; a bistable-only relay refuses Monostable
    status, body = await raw_soap(
        bistable.onvif_url, f'<SetRelayOutputSettings xmlns="{TDS}"><RelayOutputToken>'
                            f"RelayOutputToken_1</RelayOutputToken>{props}"
                            "</SetRelayOutputSettings>",
        username=bistable.username, password=bistable.password)
    assert status == 400 and b"bistable only" in body
    status, body = await raw_soap(
        bistable.onvif_url, f'<SetRelayOutputSettings xmlns="{TDS}"><RelayOutputToken>'
                            f"RelayOutputToken_1</RelayOutputToken>"
                            f'{props.replace("Monostable", "Bistable")}</SetRelayOutputSettings>',
        username=bistable.username, password=bistable.password)
    assert status == 200, body
    onvif_schemas.validate_body("devicemgmt.wsdl", body)
    assert bistable.state()["relay_settings"]["RelayOutputToken_1"]["idle_state"] == "open"
