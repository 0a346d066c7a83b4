"""ONVIF PTZ client: capabilities, one function per move mode, stop, presets and home.

Every function takes a connected :class:`~onvif_bridge.client.OnvifClient` (clock measured,
services known) and the camera's :class:`~onvif_bridge.ptz_parse.PtzCapabilities`; answers are
read by :mod:`onvif_bridge.ptz_parse` through the client's one parser, so failures are our typed
errors (:class:`~onvif_bridge.errors.OnvifError`). Our velocities, translations and positions are
-1..1 (zoom position 0..1) and are scaled onto the ranges the camera declares for the generic
spaces. A mode the camera does not declare is refused with :class:`PtzUnsupported` before anything
is sent. The moves are separate functions on purpose (:data:`MOVES`): a caller picks one, there
is no mode switch to get wrong.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from onvif_bridge.client import OnvifClient
from onvif_bridge.errors import OnvifError, OnvifFault, OnvifParseError
from onvif_bridge.models import MediaProfile
from onvif_bridge.parsers import expect
from onvif_bridge.ptz_parse import (
    GENERIC,
    PresetToken,
    PtzCapabilities,
    PtzConfiguration,
    PtzConfigurationOptions,
    PtzNode,
    PtzPreset,
    PtzStatus,
    PtzVector,
    Range,
    capabilities_from,
)

logger = logging.getLogger(__name__)

DEFAULT_MOVE_TIMEOUT_S = 10.0
"""ContinuousMove's Timeout (clamped to the camera's range): the camera stops by itself after it
even if every Stop were lost. The server refreshes a longer hold (:mod:`onvif_bridge.ptz_control`)."""


class PtzUnsupported(OnvifError):
    """The camera does not declare what was asked (no PTZ, no relative move, no presets…)."""


def _scale(value: float, span: Range | None) -> float:
    """-1..1 onto the camera's range (its generic space is usually -1..1 already)."""
    if span is None:
        return value
    return value * span.high if value >= 0 else -value * span.low


def _position(value: float, span: Range | None) -> float:
    """-1..1 (or 0..1 for zoom) onto the position range, linearly between its ends."""
    if span is None:
        return value
    low = -1.0 if span.low < 0 else 0.0
    fraction = (value - low) / (1.0 - low)
    return span.low + fraction * (span.high - span.low)


def _vector(pan: float | None, tilt: float | None, zoom: float | None,
            pt_space: str, zoom_space: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if pan is not None or tilt is not None:
        out["PanTilt"] = {"x": pan or 0.0, "y": tilt or 0.0, "space": pt_space}
    if zoom is not None:
        out["Zoom"] = {"x": zoom, "space": zoom_space}
    return out


def _need(caps: PtzCapabilities, flag: bool, what: str) -> None:
    if not flag:
        raise PtzUnsupported(f"this camera does not support {what}")


def move_timeout_s(caps: PtzCapabilities, wanted_s: float = DEFAULT_MOVE_TIMEOUT_S) -> float:
    low = caps.timeout_min_s if caps.timeout_min_s is not None else 1.0
    high = caps.timeout_max_s if caps.timeout_max_s is not None else wanted_s
    return max(low, min(high, wanted_s))


# --- capabilities -------------------------------------------------------------------------------

def ptz_profile(profiles: tuple[MediaProfile, ...], preferred: str = "") -> str | None:
    """The profile token to send PTZ requests for: ``preferred`` (the main stream's) when it has
    a PTZ configuration, else the first that has one; None when none does."""
    with_ptz = [p.token for p in profiles if p.has_ptz]
    if not with_ptz:
        return None
    return preferred if preferred in with_ptz else with_ptz[0]


async def read_capabilities(client: OnvifClient, profile_token: str) -> PtzCapabilities:
    """GetConfigurations, GetConfigurationOptions and GetNodes → capabilities.

    The client must know the PTZ service (``await client.capabilities()`` first). A camera that
    refuses the options (or the nodes) is described from what it did answer."""
    configs: tuple[PtzConfiguration, ...] = expect(
        await client.call("ptz", "GetConfigurations"), tuple, "GetConfigurations")
    config = configs[0] if configs else None
    options: PtzConfigurationOptions | None = None
    if config is not None:
        try:
            options = expect(await client.call("ptz", "GetConfigurationOptions",
                                               {"ConfigurationToken": config.token}),
                             PtzConfigurationOptions, "GetConfigurationOptions")
        except (OnvifFault, OnvifParseError) as exc:
            logger.info("camera %s: no PTZ configuration options (%s)", client.label, exc)
    node: PtzNode | None = None
    try:
        nodes: tuple[PtzNode, ...] = expect(await client.call("ptz", "GetNodes"), tuple,
                                            "GetNodes")
        wanted = config.node_token if config is not None else ""
        node = next((n for n in nodes if n.token == wanted), nodes[0] if nodes else None)
    except (OnvifFault, OnvifParseError) as exc:
        logger.info("camera %s: no PTZ nodes (%s)", client.label, exc)
    if node is None and options is None:
        raise PtzUnsupported(f"camera {client.label}: PTZ service answers no node or options")
    return capabilities_from(profile_token, node, options, config)


async def probe_capabilities(client: OnvifClient, profiles: tuple[MediaProfile, ...],
                             preferred: str = "") -> PtzCapabilities | None:
    """The camera's PTZ capabilities, or None when it has no PTZ service or no profile with a PTZ
    configuration. The client's clock must be measured (``measure_clock``)."""
    services = await client.capabilities()
    if not services.has("ptz"):
        return None
    token = ptz_profile(profiles, preferred)
    if token is None:
        return None
    return await read_capabilities(client, token)


def caps_json(caps: PtzCapabilities | None) -> str:
    """What ``camera.ptz_caps`` stores: the capabilities as JSON, ``{}`` for no PTZ."""
    return json.dumps(caps.as_dict() if caps is not None else {}, sort_keys=True)


def caps_from_json(stored: str) -> PtzCapabilities | None:
    """``camera.ptz_caps`` read back; None for no PTZ, never read, or unreadable."""
    if not stored:
        return None
    try:
        data = json.loads(stored)
        return PtzCapabilities.from_dict(data) if data else None
    except (ValueError, TypeError) as exc:
        logger.warning("stored PTZ capabilities unreadable (%s); refresh them", exc)
        return None


# --- moves: one function per mode ---------------------------------------------------------------

async def continuous_move(client: OnvifClient, caps: PtzCapabilities, pan: float, tilt: float,
                          zoom: float, *, timeout_s: float = DEFAULT_MOVE_TIMEOUT_S) -> None:
    """Start (or change) a continuous move: velocities -1..1; the camera stops by itself after
    ``timeout_s`` (clamped to its range)."""
    _need(caps, caps.continuous or caps.continuous_zoom, "continuous moves")
    velocity = _vector(
        _scale(pan, caps.pan_velocity) if caps.continuous else None,
        _scale(tilt, caps.tilt_velocity) if caps.continuous else None,
        _scale(zoom, caps.zoom_velocity) if caps.continuous_zoom else None,
        GENERIC["pt_velocity"], GENERIC["zoom_velocity"])
    await client.call("ptz", "ContinuousMove", {
        "ProfileToken": caps.profile_token, "Velocity": velocity,
        "Timeout": f"PT{move_timeout_s(caps, timeout_s):g}S"})


async def stop(client: OnvifClient, caps: PtzCapabilities) -> None:
    """Stop pan, tilt and zoom."""
    await client.call("ptz", "Stop", {"ProfileToken": caps.profile_token, "PanTilt": True,
                                      "Zoom": True})


async def relative_move(client: OnvifClient, caps: PtzCapabilities, pan: float, tilt: float,
                        zoom: float = 0.0) -> None:
    """Move by a translation (-1..1 of the generic translation space): click-to-centre."""
    _need(caps, caps.relative, "relative moves")
    translation = _vector(_scale(pan, caps.pan_translation), _scale(tilt, caps.tilt_translation),
                          _scale(zoom, caps.zoom_translation) if caps.relative_zoom and zoom
                          else None,
                          GENERIC["pt_translation"], GENERIC["zoom_translation"])
    await client.call("ptz", "RelativeMove", {"ProfileToken": caps.profile_token,
                                              "Translation": translation})


async def absolute_move(client: OnvifClient, caps: PtzCapabilities, pan: float, tilt: float,
                        zoom: float | None = None) -> None:
    """Move to a position: pan and tilt -1..1, zoom 0..1 (None: unchanged)."""
    _need(caps, caps.absolute, "absolute moves")
    position = _vector(_position(pan, caps.pan_position), _position(tilt, caps.tilt_position),
                       _position(zoom, caps.zoom_position) if zoom is not None
                       and caps.absolute_zoom else None,
                       GENERIC["pt_position"], GENERIC["zoom_position"])
    await client.call("ptz", "AbsoluteMove", {"ProfileToken": caps.profile_token,
                                              "Position": position})


Move = Callable[..., Awaitable[None]]
MOVES: dict[str, Move] = {"continuous": continuous_move, "relative": relative_move,
                          "absolute": absolute_move}
"""The move modes by name (the CLI and the API pick one; each is its own function)."""


# --- presets and home ---------------------------------------------------------------------------

async def presets(client: OnvifClient, caps: PtzCapabilities) -> tuple[PtzPreset, ...]:
    """The presets that are set. Hikvision lists every one of its 256 slots; an unset slot has
    no Name, and those are left out."""
    _need(caps, caps.presets, "presets")
    answer: tuple[PtzPreset, ...] = expect(
        await client.call("ptz", "GetPresets", {"ProfileToken": caps.profile_token}), tuple,
        "GetPresets")
    return tuple(p for p in answer if p.name)


async def set_preset(client: OnvifClient, caps: PtzCapabilities, name: str,
                     token: str | None = None) -> str:
    """Save the current position as a preset named ``name``; with ``token``, overwrite (or
    rename) that preset. Returns the preset's token."""
    _need(caps, caps.presets, "presets")
    params: dict[str, Any] = {"ProfileToken": caps.profile_token, "PresetName": name}
    if token is not None:
        params["PresetToken"] = token
    answer: PresetToken = expect(await client.call("ptz", "SetPreset", params), PresetToken,
                                 "SetPreset")
    return answer.token


async def goto_preset(client: OnvifClient, caps: PtzCapabilities, token: str) -> None:
    _need(caps, caps.presets, "presets")
    await client.call("ptz", "GotoPreset", {"ProfileToken": caps.profile_token,
                                            "PresetToken": token})


async def remove_preset(client: OnvifClient, caps: PtzCapabilities, token: str) -> None:
    _need(caps, caps.presets, "presets")
    await client.call("ptz", "RemovePreset", {"ProfileToken": caps.profile_token,
                                              "PresetToken": token})


async def goto_home(client: OnvifClient, caps: PtzCapabilities) -> None:
    _need(caps, caps.home, "a home position")
    await client.call("ptz", "GotoHomePosition", {"ProfileToken": caps.profile_token})


async def set_home(client: OnvifClient, caps: PtzCapabilities) -> None:
    _need(caps, caps.home and caps.fixed_home is not True, "setting the home position")
    await client.call("ptz", "SetHomePosition", {"ProfileToken": caps.profile_token})


async def status(client: OnvifClient, caps: PtzCapabilities) -> PtzStatus:
    answer: PtzStatus = expect(
        await client.call("ptz", "GetStatus", {"ProfileToken": caps.profile_token}), PtzStatus,
        "GetStatus")
    return answer


__all__ = [
    "DEFAULT_MOVE_TIMEOUT_S",
    "MOVES",
    "PtzUnsupported",
    "PtzVector",
    "absolute_move",
    "caps_from_json",
    "caps_json",
    "continuous_move",
    "goto_home",
    "goto_preset",
    "move_timeout_s",
    "presets",
    "probe_capabilities",
    "ptz_profile",
    "read_capabilities",
    "relative_move",
    "remove_preset",
    "set_home",
    "set_preset",
    "status",
    "stop",
]
