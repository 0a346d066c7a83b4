"""PTZ answers read into plain dataclasses: nodes, configurations and their options, presets,
status, and the :class:`PtzCapabilities` a camera is stored with.

Pure functions over elements of a SOAP Body (parsed safely by :mod:`onvif_bridge.xml`); the
dispatcher in :mod:`onvif_bridge.parsers` calls :func:`parse_ptz_operation` for PTZ answers, so
the real-camera fixtures test the same code the live client runs. Names are matched by local name
(vendors vary the prefixes). Vendor quirks are handled where met, with the vendor named.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from typing import Any

from onvif_bridge.errors import OnvifParseError
from onvif_bridge.events import parse_xs_datetime
from onvif_bridge.xml import (
    Element,
    attr,
    child,
    children,
    local,
    read_bool,
    read_float,
    required_child,
    text,
)

PTZ_NAMESPACE = "http://www.onvif.org/ver20/ptz/wsdl"
_TPTZ = "http://www.onvif.org/ver10/tptz/"
GENERIC = {
    "pt_position": _TPTZ + "PanTiltSpaces/PositionGenericSpace",
    "zoom_position": _TPTZ + "ZoomSpaces/PositionGenericSpace",
    "pt_translation": _TPTZ + "PanTiltSpaces/TranslationGenericSpace",
    "zoom_translation": _TPTZ + "ZoomSpaces/TranslationGenericSpace",
    "pt_velocity": _TPTZ + "PanTiltSpaces/VelocityGenericSpace",
    "zoom_velocity": _TPTZ + "ZoomSpaces/VelocityGenericSpace",
}
"""The ONVIF generic spaces: the only ones we send moves in."""

SPACE_KINDS = {
    "AbsolutePanTiltPositionSpace": "pt_position",
    "AbsoluteZoomPositionSpace": "zoom_position",
    "RelativePanTiltTranslationSpace": "pt_translation",
    "RelativeZoomTranslationSpace": "zoom_translation",
    "ContinuousPanTiltVelocitySpace": "pt_velocity",
    "ContinuousZoomVelocitySpace": "zoom_velocity",
    "PanTiltSpeedSpace": "pt_speed",
    "ZoomSpeedSpace": "zoom_speed",
}
_DURATION_RE = re.compile(
    r"^P(?:(?P<d>\d+(?:\.\d+)?)D)?(?:T(?:(?P<h>\d+(?:\.\d+)?)H)?(?:(?P<m>\d+(?:\.\d+)?)M)?"
    r"(?:(?P<s>\d+(?:\.\d+)?)S)?)?$")


@dataclass(frozen=True, slots=True)
class Range:
    low: float
    high: float


@dataclass(frozen=True, slots=True)
class PtzSpace:
    """One coordinate space a node supports: its URI and ranges (``y`` absent for zoom)."""

    uri: str
    x: Range
    y: Range | None = None


@dataclass(frozen=True, slots=True)
class PtzSpaces:
    """Spaces by kind (``pt_velocity``, ``zoom_position``…; see :data:`SPACE_KINDS`)."""

    by_kind: dict[str, tuple[PtzSpace, ...]] = field(default_factory=dict)

    def generic(self, kind: str) -> PtzSpace | None:
        """The generic space of ``kind`` (the first space of that kind when none is generic)."""
        spaces = self.by_kind.get(kind, ())
        want = GENERIC.get(kind)
        return next((s for s in spaces if s.uri == want), spaces[0] if spaces else None)


@dataclass(frozen=True, slots=True)
class PtzNode:
    token: str
    name: str
    spaces: PtzSpaces
    max_presets: int
    home_supported: bool
    fixed_home: bool | None


@dataclass(frozen=True, slots=True)
class PtzConfiguration:
    token: str
    node_token: str
    default_timeout_s: float | None


@dataclass(frozen=True, slots=True)
class PtzConfigurationOptions:
    spaces: PtzSpaces
    timeout_min_s: float | None
    timeout_max_s: float | None


@dataclass(frozen=True, slots=True)
class PtzVector:
    """A position, translation or velocity: pan and tilt (x, y) and zoom; None when absent."""

    pan: float | None = None
    tilt: float | None = None
    zoom: float | None = None


@dataclass(frozen=True, slots=True)
class PtzPreset:
    token: str
    name: str
    position: PtzVector | None = None


@dataclass(frozen=True, slots=True)
class PtzStatus:
    position: PtzVector | None
    pan_tilt_moving: bool | None
    zoom_moving: bool | None
    utc_us: int | None
    error: str = ""


@dataclass(frozen=True, slots=True)
class PresetToken:
    """SetPreset's answer: the token of the preset saved."""

    token: str


@dataclass(frozen=True, slots=True)
class PtzCapabilities:
    """What a PTZ camera can do, as stored with it (``camera.ptz_caps``, JSON) at adoption.

    ``profile_token`` is the media profile moves are sent for. Velocity, translation and position
    ranges are those of the generic spaces (usually -1..1, zoom 0..1); our API's -1..1 is scaled
    onto them. ``timeout_*_s`` bound ContinuousMove's Timeout.
    """

    profile_token: str
    node_token: str = ""
    continuous: bool = False
    continuous_zoom: bool = False
    relative: bool = False
    relative_zoom: bool = False
    absolute: bool = False
    absolute_zoom: bool = False
    presets: bool = False
    max_presets: int = 0
    home: bool = False
    fixed_home: bool | None = None
    pan_velocity: Range | None = None
    tilt_velocity: Range | None = None
    zoom_velocity: Range | None = None
    pan_translation: Range | None = None
    tilt_translation: Range | None = None
    zoom_translation: Range | None = None
    pan_position: Range | None = None
    tilt_position: Range | None = None
    zoom_position: Range | None = None
    timeout_min_s: float | None = None
    timeout_max_s: float | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PtzCapabilities:
        """The stored JSON back (unknown keys ignored, so older rows still read)."""
        known = {f for f in cls.__dataclass_fields__}
        values: dict[str, Any] = {}
        for key, value in data.items():
            if key not in known:
                continue
            if isinstance(value, dict) and {"low", "high"} <= set(value):
                value = Range(float(value["low"]), float(value["high"]))
            values[key] = value
        if not isinstance(values.get("profile_token"), str):
            raise ValueError("stored PTZ capabilities without a profile token")
        return cls(**values)


# --- small readers ------------------------------------------------------------------------------

def parse_duration_s(value: str) -> float | None:
    """``PT1S``, ``PT600S``, ``PT0H0M1S``, ``P1DT2H`` → seconds; None when unreadable."""
    match = _DURATION_RE.match(value.strip().upper())
    if match is None or not any(match.groupdict().values()):
        return None
    parts = {k: float(v) for k, v in match.groupdict().items() if v}
    return (parts.get("d", 0.0) * 86400 + parts.get("h", 0.0) * 3600 + parts.get("m", 0.0) * 60
            + parts.get("s", 0.0))


def _range(element: Element | None) -> Range | None:
    if element is None:
        return None
    low, high = read_float(text(element, "Min")), read_float(text(element, "Max"))
    if low is None or high is None:
        return None
    return Range(min(low, high), max(low, high))


def parse_spaces(element: Element | None) -> PtzSpaces:
    """``SupportedPTZSpaces`` (a node) or ``Spaces`` (configuration options)."""
    found: dict[str, list[PtzSpace]] = {}
    if element is None:
        return PtzSpaces()
    for item in element:
        kind = SPACE_KINDS.get(local(item.tag))
        x = _range(child(item, "XRange"))
        if kind is None or x is None:
            continue
        found.setdefault(kind, []).append(
            PtzSpace(text(item, "URI"), x, _range(child(item, "YRange"))))
    return PtzSpaces({k: tuple(v) for k, v in found.items()})


def parse_vector(element: Element | None) -> PtzVector | None:
    """A ``PTZVector``/``PTZSpeed`` (``PanTilt x= y=``, ``Zoom x=``); None when neither is there."""
    if element is None:
        return None
    pan_tilt, zoom = child(element, "PanTilt"), child(element, "Zoom")
    if pan_tilt is None and zoom is None:
        return None
    return PtzVector(pan=read_float(attr(pan_tilt, "x")) if pan_tilt is not None else None,
                     tilt=read_float(attr(pan_tilt, "y")) if pan_tilt is not None else None,
                     zoom=read_float(attr(zoom, "x")) if zoom is not None else None)


# --- one element each ---------------------------------------------------------------------------

def parse_node(element: Element) -> PtzNode:
    token = attr(element, "token")
    if not token:
        raise OnvifParseError("PTZNode without a token")
    presets = text(element, "MaximumNumberOfPresets")
    return PtzNode(
        token=token, name=text(element, "Name"),
        spaces=parse_spaces(child(element, "SupportedPTZSpaces")),
        max_presets=int(read_float(presets) or 0),
        home_supported=bool(read_bool(text(element, "HomeSupported"))),
        fixed_home=read_bool(attr(element, "FixedHomePosition")),
    )


def parse_configuration(element: Element) -> PtzConfiguration:
    token = attr(element, "token")
    if not token:
        raise OnvifParseError("PTZConfiguration without a token")
    return PtzConfiguration(token=token, node_token=text(element, "NodeToken"),
                            default_timeout_s=parse_duration_s(text(element,
                                                                    "DefaultPTZTimeout")))


def parse_configuration_options(element: Element) -> PtzConfigurationOptions:
    timeout = child(element, "PTZTimeout")
    return PtzConfigurationOptions(
        spaces=parse_spaces(child(element, "Spaces")),
        timeout_min_s=parse_duration_s(text(timeout, "Min")) if timeout is not None else None,
        timeout_max_s=parse_duration_s(text(timeout, "Max")) if timeout is not None else None,
    )


def parse_preset(element: Element) -> PtzPreset:
    token = attr(element, "token")
    if not token:
        raise OnvifParseError("PTZ Preset without a token")
    return PtzPreset(token=token, name=text(element, "Name"),
                     position=parse_vector(child(element, "PTZPosition")))


def parse_status(element: Element) -> PtzStatus:
    move = child(element, "MoveStatus")

    def moving(name: str) -> bool | None:
        value = text(move, name).upper() if move is not None else ""
        return None if not value else value == "MOVING"

    utc = text(element, "UtcTime")
    error = text(element, "Error")
    # Hikvision DS-2DF7276-AEL: no MoveStatus, and Error "NO error" when there is none
    return PtzStatus(position=parse_vector(child(element, "Position")),
                     pan_tilt_moving=moving("PanTilt"), zoom_moving=moving("Zoom"),
                     utc_us=parse_xs_datetime(utc) if utc else None,
                     error="" if error.lower() in ("", "no error", "none") else error)


# --- dispatch -----------------------------------------------------------------------------------

PTZ_ANSWERS = ("GetNodesResponse", "GetNodeResponse", "GetConfigurationsResponse",
               "GetConfigurationResponse", "GetConfigurationOptionsResponse",
               "GetPresetsResponse", "SetPresetResponse", "GetStatusResponse")
"""PTZ answers parsed into models; the rest (moves, stop, goto…) are empty acknowledgements."""


def is_ptz_answer(operation: Element) -> bool:
    name = local(operation.tag)
    if name in ("GetNodesResponse", "GetNodeResponse", "GetPresetsResponse",
                "SetPresetResponse", "GetConfigurationOptionsResponse"):
        return True
    # GetStatus/GetConfiguration(s) exist in other services: only the PTZ namespace's are ours
    return name in PTZ_ANSWERS and operation.tag.startswith("{" + PTZ_NAMESPACE + "}")


def parse_ptz_operation(operation: Element) -> Any:
    """The model of one PTZ answer element (see :data:`PTZ_ANSWERS`)."""
    name = local(operation.tag)
    if name == "GetNodesResponse":
        return tuple(parse_node(n) for n in children(operation, "PTZNode"))
    if name == "GetNodeResponse":
        return parse_node(required_child(operation, "PTZNode"))
    if name == "GetConfigurationsResponse":
        return tuple(parse_configuration(c) for c in children(operation, "PTZConfiguration"))
    if name == "GetConfigurationResponse":
        return parse_configuration(required_child(operation, "PTZConfiguration"))
    if name == "GetConfigurationOptionsResponse":
        return parse_configuration_options(
            required_child(operation, "PTZConfigurationOptions", what="options"))
    if name == "GetPresetsResponse":
        return tuple(parse_preset(p) for p in children(operation, "Preset"))
    if name == "SetPresetResponse":
        token = text(operation, "PresetToken")
        if not token:
            raise OnvifParseError("SetPresetResponse without a PresetToken")
        return PresetToken(token)
    if name == "GetStatusResponse":
        return parse_status(required_child(operation, "PTZStatus"))
    raise OnvifParseError(f"not a PTZ answer: <{name}>")


# --- capabilities -------------------------------------------------------------------------------

def capabilities_from(profile_token: str, node: PtzNode | None,
                      options: PtzConfigurationOptions | None,
                      configuration: PtzConfiguration | None = None) -> PtzCapabilities:
    """Capabilities from a node (GetNodes) and the configuration's options (GetConfigurationOptions).

    A space counts when either lists it (the options are what this configuration allows; some
    firmware answers only one of the two). Ranges come from the options first."""
    sources = [s for s in ((options.spaces if options else None),
                           (node.spaces if node else None)) if s is not None]

    def space(kind: str) -> PtzSpace | None:
        return next((sp for sp in (s.generic(kind) for s in sources) if sp is not None), None)

    pt_velocity, zoom_velocity = space("pt_velocity"), space("zoom_velocity")
    pt_translation, zoom_translation = space("pt_translation"), space("zoom_translation")
    pt_position, zoom_position = space("pt_position"), space("zoom_position")
    max_presets = node.max_presets if node else 0
    return PtzCapabilities(
        profile_token=profile_token,
        node_token=node.token if node else (configuration.node_token if configuration else ""),
        continuous=pt_velocity is not None, continuous_zoom=zoom_velocity is not None,
        relative=pt_translation is not None, relative_zoom=zoom_translation is not None,
        absolute=pt_position is not None, absolute_zoom=zoom_position is not None,
        presets=max_presets > 0, max_presets=max_presets,
        home=bool(node and node.home_supported), fixed_home=node.fixed_home if node else None,
        pan_velocity=pt_velocity.x if pt_velocity else None,
        tilt_velocity=pt_velocity.y if pt_velocity else None,
        zoom_velocity=zoom_velocity.x if zoom_velocity else None,
        pan_translation=pt_translation.x if pt_translation else None,
        tilt_translation=pt_translation.y if pt_translation else None,
        zoom_translation=zoom_translation.x if zoom_translation else None,
        pan_position=pt_position.x if pt_position else None,
        tilt_position=pt_position.y if pt_position else None,
        zoom_position=zoom_position.x if zoom_position else None,
        timeout_min_s=options.timeout_min_s if options else None,
        timeout_max_s=options.timeout_max_s if options else None,
    )


__all__ = [
    "GENERIC",
    "PresetToken",
    "PtzCapabilities",
    "PtzConfiguration",
    "PtzConfigurationOptions",
    "PtzNode",
    "PtzPreset",
    "PtzSpace",
    "PtzSpaces",
    "PtzStatus",
    "PtzVector",
    "Range",
    "capabilities_from",
    "is_ptz_answer",
    "parse_duration_s",
    "parse_ptz_operation",
]
