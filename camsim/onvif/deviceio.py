"""ONVIF DeviceIO service (``/onvif/deviceio_service``): relay outputs (the door lock) and
digital inputs (the intercom call button).

Changing a relay goes through :func:`set_relay_state`, which both the Device and the DeviceIO
services call, so the ``tns1:Device/Trigger/Relay`` event fires whichever way a client chose.
"""

from __future__ import annotations

import logging

from camsim.onvif.soap import NS, Request, Service, SoapFault, text_local, x
from camsim.onvif.state import CameraState, Relay

logger = logging.getLogger(__name__)


def relay_xml(relay: Relay, tag: str) -> str:
    return (
        f'<{tag} token="{x(relay.token)}"><tt:Properties><tt:Mode>{relay.mode}</tt:Mode>'
        f"<tt:DelayTime>PT{relay.delay_s}S</tt:DelayTime><tt:IdleState>{relay.idle_state}"
        f"</tt:IdleState></tt:Properties></{tag}>"
    )


def set_relay_state(state: CameraState, req: Request) -> None:
    """Apply a SetRelayOutputState request (Device or DeviceIO flavour)."""
    token = text_local(req.body, "RelayOutputToken")
    logical = text_local(req.body, "LogicalState")
    relay = state.relay(token)
    if relay is None:
        raise SoapFault(f"no relay output {token!r}",
                        subcodes=("ter:InvalidArgVal", "ter:RelayToken"))
    if logical not in ("active", "inactive"):
        raise SoapFault(f"LogicalState {logical!r}", subcodes=("ter:InvalidArgVal",))
    active = logical == "active"
    if relay.active != active:
        relay.active = active
        logger.info("%s: relay %s now %s", state.identity.name, relay.token, logical)
        state.on_relay_change(relay)


def service_capabilities(state: CameraState) -> str:
    return (
        f'<tmd:Capabilities VideoSources="1" VideoOutputs="0" AudioSources="1" AudioOutputs="0" '
        f'RelayOutputs="{len(state.relays)}" DigitalInputs="{len(state.inputs)}" '
        'SerialPorts="0" DigitalInputOptions="true"/>'
    )


def build(state: CameraState) -> Service:
    svc = Service("deviceio", NS["tmd"])

    async def get_service_capabilities(req: Request) -> str:
        return (
            "<tmd:GetServiceCapabilitiesResponse>" + service_capabilities(state)
            + "</tmd:GetServiceCapabilitiesResponse>"
        )

    # deviceio.wsdl reuses the Device service's elements for these two (tds:, not tmd:).
    async def get_relay_outputs(req: Request) -> str:
        return (
            "<tds:GetRelayOutputsResponse>"
            + "".join(relay_xml(r, "tds:RelayOutputs") for r in state.relays)
            + "</tds:GetRelayOutputsResponse>"
        )

    async def set_relay_output_state(req: Request) -> str:
        set_relay_state(state, req)
        return "<tds:SetRelayOutputStateResponse/>"

    async def get_relay_output_options(req: Request) -> str:
        token = text_local(req.body, "RelayOutputToken")
        relays = [r for r in state.relays if token in (None, "", r.token)]
        if token and not relays:
            raise SoapFault(f"no relay output {token!r}",
                            subcodes=("ter:InvalidArgVal", "ter:RelayToken"))
        return (
            "<tmd:GetRelayOutputOptionsResponse>"
            + "".join(
                f'<tmd:RelayOutputOptions token="{x(r.token)}"><tmd:Mode>Monostable</tmd:Mode>'
                "<tmd:Mode>Bistable</tmd:Mode><tmd:DelayTimes>1 120</tmd:DelayTimes>"
                "<tmd:Discrete>false</tmd:Discrete></tmd:RelayOutputOptions>"
                for r in relays
            )
            + "</tmd:GetRelayOutputOptionsResponse>"
        )

    async def get_digital_inputs(req: Request) -> str:
        return (
            "<tmd:GetDigitalInputsResponse>"
            + "".join(
                f'<tmd:DigitalInputs token="{x(i.token)}" IdleState="{i.idle_state}"/>'
                for i in state.inputs
            )
            + "</tmd:GetDigitalInputsResponse>"
        )

    svc.op("GetServiceCapabilities", get_service_capabilities)
    svc.op("GetRelayOutputs", get_relay_outputs)
    svc.op("SetRelayOutputState", set_relay_output_state)
    svc.op("GetRelayOutputOptions", get_relay_output_options)
    svc.op("GetDigitalInputs", get_digital_inputs)
    return svc
