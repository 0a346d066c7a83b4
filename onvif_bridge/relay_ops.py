"""ONVIF relay outputs (door locks): list them, set their mode, set their state.

Pure ONVIF operations over any client with ``call`` and ``offers`` (:class:`onvif_bridge.client.
OnvifClient`; a Protocol here, so the client's interrogation can list relays without an import
cycle). The DeviceIO service is used where the camera offers it, else the Device service's own
relay operations (older firmware has only those). DeviceIO's SetRelayOutputSettings carries a
``RelayOutput`` (token attribute and Properties), the Device service's a ``RelayOutputToken`` and
``Properties``: both are written here. Answers are read by :mod:`onvif_bridge.parsers`.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Mapping
from dataclasses import replace
from typing import Any, Protocol

from onvif_bridge.errors import OnvifFault, OnvifParseError
from onvif_bridge.models import RelayOutput
from onvif_bridge.parsers import expect

logger = logging.getLogger(__name__)


class RelayCaller(Protocol):
    label: str

    def offers(self, key: str) -> bool: ...

    async def call(self, key: str, operation: str, params: Mapping[str, Any] | None = None, *,
                   auth: bool = True) -> Any: ...


def _service(client: RelayCaller) -> str:
    return "deviceio" if client.offers("deviceio") else "devicemgmt"


async def list_relays(client: RelayCaller) -> tuple[RelayOutput, ...]:
    """The camera's relay outputs with their options (capabilities() must have been read).

    GetRelayOutputOptions is asked only of a DeviceIO service; a camera that refuses it keeps
    the relays without options (then only a relay already set Monostable is pulsed that way)."""
    key = _service(client)
    relays: tuple[RelayOutput, ...] = expect(await client.call(key, "GetRelayOutputs"), tuple,
                                             "GetRelayOutputs")
    if not relays or key != "deviceio":
        return relays
    try:
        options = expect(await client.call("deviceio", "GetRelayOutputOptions"), dict,
                         "GetRelayOutputOptions")
    except (OnvifFault, OnvifParseError) as exc:
        logger.info("camera %s: no relay output options (%s)", client.label, exc)
        return relays
    out = []
    for relay in relays:
        opt = options.get(relay.token)
        out.append(relay if opt is None else replace(
            relay, modes=opt.modes, delay_min_s=opt.delay_min_s, delay_max_s=opt.delay_max_s,
            delay_choices_s=opt.delay_choices_s))
    return tuple(out)


async def set_state(client: RelayCaller, token: str, active: bool) -> None:
    await client.call(_service(client), "SetRelayOutputState", {
        "RelayOutputToken": token, "LogicalState": "active" if active else "inactive"})


async def set_monostable(client: RelayCaller, token: str, delay_s: float,
                         idle_state: str) -> None:
    """Mode Monostable with ``delay_s``: the relay returns to inactive by itself that long after
    being set active."""
    properties = {"Mode": "Monostable", "DelayTime": dt.timedelta(seconds=delay_s),
                  "IdleState": idle_state if idle_state in ("open", "closed") else "closed"}
    key = _service(client)
    params: dict[str, Any] = (
        {"RelayOutput": {"token": token, "Properties": properties}} if key == "deviceio"
        else {"RelayOutputToken": token, "Properties": properties})
    await client.call(key, "SetRelayOutputSettings", params)


__all__ = ["RelayCaller", "list_relays", "set_monostable", "set_state"]
