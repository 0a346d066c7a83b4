"""camsim DeviceIO: relay outputs (door lock) and digital inputs (call button)."""

from __future__ import annotations

import pytest
from onvif import ONVIFCamera
from zeep.exceptions import Fault

from camsim.pytest_plugin import raw_soap

TMD = "http://www.onvif.org/ver10/deviceIO/wsdl"


async def test_relays_and_inputs(camsim_factory, onvif_schemas) -> None:
    fleet = await camsim_factory(count=1, rtsp=False, relays=2, inputs=3)
    cam = fleet.cameras[0]
    onvif = ONVIFCamera("127.0.0.1", cam.http_port, cam.username, cam.password)
    try:
        await onvif.update_xaddrs()
        io = await onvif.create_deviceio_service()
        relays = await io.GetRelayOutputs()
        assert [r.token for r in relays] == ["RelayOutputToken_1", "RelayOutputToken_2"]
        assert relays[0].Properties.Mode == "Bistable"
        assert relays[0].Properties.IdleState == "closed"
        options = await io.GetRelayOutputOptions({"RelayOutputToken": "RelayOutputToken_1"})
        assert "Monostable" in options[0].Mode
        inputs = await io.GetDigitalInputs()
        assert [i.token for i in inputs] == [f"DigitalInputToken_{n}" for n in (1, 2, 3)]

        await io.SetRelayOutputState({"RelayOutputToken": "RelayOutputToken_1",
                                      "LogicalState": "active"})
        assert cam.state()["relays"] == {"RelayOutputToken_1": "active",
                                         "RelayOutputToken_2": "inactive"}
        await io.SetRelayOutputState({"RelayOutputToken": "RelayOutputToken_1",
                                      "LogicalState": "inactive"})
        assert cam.state()["relays"]["RelayOutputToken_1"] == "inactive"
        with pytest.raises(Fault):
            await io.SetRelayOutputState({"RelayOutputToken": "nope", "LogicalState": "active"})
    finally:
        await onvif.close()
    url = cam.onvif_url.replace("device_service", "deviceio_service")
    for op in ("GetDigitalInputs", "GetRelayOutputOptions", "GetServiceCapabilities"):
        status, body = await raw_soap(url, f'<{op} xmlns="{TMD}"/>', username=cam.username,
                                      password=cam.password)
        assert status == 200, body
        onvif_schemas.validate_body("deviceio.wsdl", body)
    # deviceio.wsdl declares GetRelayOutputs with the Device service's (tds) elements
    status, body = await raw_soap(url, '<GetRelayOutputs xmlns="http://www.onvif.org/ver10/'
                                  'device/wsdl"/>', username=cam.username, password=cam.password)
    assert status == 200
    onvif_schemas.validate_body("devicemgmt.wsdl", body)
