"""ONVIF DeviceIO service (``/onvif/deviceio_service``): relay outputs (the door lock) and
digital inputs (the intercom call button).

Changing a relay goes through :func:`set_relay_state`, which both the Device and the DeviceIO
services call, so the ``tns1:Device/Trigger/Relay`` event fires whichever way a client chose.
:func:`set_relay_settings` is SetRelayOutputSettings in both flavours (DeviceIO sends a
``RelayOutput`` with a token attribute, Device a ``RelayOutputToken`` and ``Properties``); a
Monostable relay set active returns to inactive by itself after its DelayTime (the camera arms the
timer in its ``on_relay_change`` hook). A relay built with ``monostable=False`` refuses Monostable.
"""

from __future__ import annotations

import logging
import re

from camsim.onvif.soap import NS, Request, Service, SoapFault, find_local, text_local, x
from camsim.onvif.state import CameraState, Relay

logger = logging.getLogger(__name__)


_DURATION_RE = re.compile(r"^PT(?:(\d+)H)?(?:(\d+)M)?(?:(\d+(?:\.\d+)?)S)?$")


def relay_xml(relay: Relay, tag: str) -> str:
    return (
        f'<{tag} token="{x(relay.token)}"><tt:Properties><tt:Mode>{relay.mode}</tt:Mode>'
        f"<tt:DelayTime>PT{relay.delay_s:g}S</tt:DelayTime><tt:IdleState>{relay.idle_state}"
        f"</tt:IdleState></tt:Properties></{tag}>"
    )


def _duration_s(text: str | None) -> float:
    match = _DURATION_RE.match(text or "")
    if match is None or not any(match.groups()):
        raise SoapFault(f"DelayTime {text!r} is not an xs:duration we read",
                        subcodes=("ter:InvalidArgVal", "ter:DelayTime"))
    hours, minutes, seconds = match.groups()
    return int(hours or 0) * 3600 + int(minutes or 0) * 60 + float(seconds or 0)


def set_relay_settings(state: CameraState, req: Request) -> None:
    """Apply a SetRelayOutputSettings request (Device or DeviceIO flavour)."""
    holder = find_local(req.body, "RelayOutput")
    if holder is not None:  # DeviceIO: <RelayOutput token="..."><tt:Properties>...
        token = holder.get("token")
    else:  # Device: <RelayOutputToken/><Properties/>
        holder, token = req.body, text_local(req.body, "RelayOutputToken")
    relay = state.relay(token)
    if relay is None:
        raise SoapFault(f"no relay output {token!r}",
                        subcodes=("ter:InvalidArgVal", "ter:RelayToken"))
    mode = text_local(holder, "Properties", "Mode")
    idle = text_local(holder, "Properties", "IdleState")
    delay_s = _duration_s(text_local(holder, "Properties", "DelayTime"))
    if mode not in ("Monostable", "Bistable") or idle not in ("open", "closed"):
        raise SoapFault(f"Mode {mode!r} / IdleState {idle!r}", subcodes=("ter:InvalidArgVal",))
    if mode == "Monostable" and not relay.monostable:
        raise SoapFault("this relay output is bistable only",
                        subcodes=("ter:InvalidArgVal", "ter:ModeError"))
    if mode == "Monostable" and not 1 <= delay_s <= 120:
        raise SoapFault(f"DelayTime {delay_s:g} s is outside 1..120 s",
                        subcodes=("ter:InvalidArgVal", "ter:DelayTimeError"))
    relay.mode, relay.idle_state, relay.delay_s = mode, idle, delay_s
    logger.info("%s: relay %s settings %s, %g s, idle %s", state.identity.name, relay.token, mode,
                delay_s, idle)


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

    async def set_relay_output_settings(req: Request) -> str:
        set_relay_settings(state, req)
        return "<tmd:SetRelayOutputSettingsResponse/>"

    async def get_relay_output_options(req: Request) -> str:
        token = text_local(req.body, "RelayOutputToken")
        relays = [r for r in state.relays if token in (None, "", r.token)]
        if token and not relays:
            raise SoapFault(f"no relay output {token!r}",
                            subcodes=("ter:InvalidArgVal", "ter:RelayToken"))
        return (
            "<tmd:GetRelayOutputOptionsResponse>"
            + "".join(
                f'<tmd:RelayOutputOptions token="{x(r.token)}">'
                + ("<tmd:Mode>Monostable</tmd:Mode>" if r.monostable else "")
                + "<tmd:Mode>Bistable</tmd:Mode>"
                + ("<tmd:DelayTimes>1 120</tmd:DelayTimes><tmd:Discrete>false</tmd:Discrete>"
                   if r.monostable else "")
                + "</tmd:RelayOutputOptions>"
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
    svc.op("SetRelayOutputSettings", set_relay_output_settings)
    svc.op("GetRelayOutputOptions", get_relay_output_options)
    svc.op("GetDigitalInputs", get_digital_inputs)
    return svc
