"""ONVIF PTZ ver20 service (``/onvif/ptz_service``) over a :class:`~camsim.onvif.state.PtzState`.

Generic spaces only (pan/tilt -1..1, zoom 0..1). ContinuousMove sets a velocity that is
integrated against the clock whenever the position is read, stopping at the limits or when its
Timeout runs out; Absolute/Relative moves and presets are instantaneous. Moves and stops are recorded with the
time they arrived (``PtzState.calls``, shown by the control API's state) for the PTZ benchmark.
"""

from __future__ import annotations

import logging
import xml.etree.ElementTree as ET  # noqa: S405 - tree walking only

from camsim.onvif.soap import (
    NS,
    Request,
    Service,
    SoapFault,
    find_local,
    iso_z,
    parse_duration_s,
    text_local,
    x,
)
from camsim.onvif.state import CameraState, PtzState, PtzVector

logger = logging.getLogger(__name__)

NODE = "PTZNodeToken_1"
CONFIG = "PTZConfigToken_1"
_SP = "http://www.onvif.org/ver10/tptz/"
PT_POSITION = _SP + "PanTiltSpaces/PositionGenericSpace"
ZOOM_POSITION = _SP + "ZoomSpaces/PositionGenericSpace"
PT_TRANSLATION = _SP + "PanTiltSpaces/TranslationGenericSpace"
ZOOM_TRANSLATION = _SP + "ZoomSpaces/TranslationGenericSpace"
PT_VELOCITY = _SP + "PanTiltSpaces/VelocityGenericSpace"
ZOOM_VELOCITY = _SP + "ZoomSpaces/VelocityGenericSpace"
PT_SPEED = _SP + "PanTiltSpaces/GenericSpeedSpace"
ZOOM_SPEED = _SP + "ZoomSpaces/ZoomGenericSpeedSpace"
DEFAULT_TIMEOUT_S = 10


def _range(low: float, high: float, tag: str = "tt:XRange") -> str:
    return f"<{tag}><tt:Min>{low:g}</tt:Min><tt:Max>{high:g}</tt:Max></{tag}>"


def _space2d(tag: str, uri: str, low: float, high: float) -> str:
    return (f"<{tag}><tt:URI>{uri}</tt:URI>{_range(low, high)}"
            f"{_range(low, high, 'tt:YRange')}</{tag}>")


def _space1d(tag: str, uri: str, low: float, high: float) -> str:
    return f"<{tag}><tt:URI>{uri}</tt:URI>{_range(low, high)}</{tag}>"


def _spaces() -> str:
    """The generic spaces our one node supports, and our one configuration allows."""
    return (
        _space2d("tt:AbsolutePanTiltPositionSpace", PT_POSITION, -1, 1)
        + _space1d("tt:AbsoluteZoomPositionSpace", ZOOM_POSITION, 0, 1)
        + _space2d("tt:RelativePanTiltTranslationSpace", PT_TRANSLATION, -1, 1)
        + _space1d("tt:RelativeZoomTranslationSpace", ZOOM_TRANSLATION, -1, 1)
        + _space2d("tt:ContinuousPanTiltVelocitySpace", PT_VELOCITY, -1, 1)
        + _space1d("tt:ContinuousZoomVelocitySpace", ZOOM_VELOCITY, -1, 1)
        + _space1d("tt:PanTiltSpeedSpace", PT_SPEED, 0, 1)
        + _space1d("tt:ZoomSpeedSpace", ZOOM_SPEED, 0, 1)
    )


def service_capabilities() -> str:
    return '<tptz:Capabilities EFlip="false" Reverse="false" GetCompatibleConfigurations="false"/>'


def configuration_xml(tag: str) -> str:
    return (
        f'<{tag} token="{CONFIG}"><tt:Name>PTZConfig_1</tt:Name><tt:UseCount>1</tt:UseCount>'
        f"<tt:NodeToken>{NODE}</tt:NodeToken>"
        f"<tt:DefaultAbsolutePantTiltPositionSpace>{PT_POSITION}"
        "</tt:DefaultAbsolutePantTiltPositionSpace>"
        f"<tt:DefaultAbsoluteZoomPositionSpace>{ZOOM_POSITION}</tt:DefaultAbsoluteZoomPositionSpace>"
        f"<tt:DefaultRelativePanTiltTranslationSpace>{PT_TRANSLATION}"
        "</tt:DefaultRelativePanTiltTranslationSpace>"
        f"<tt:DefaultRelativeZoomTranslationSpace>{ZOOM_TRANSLATION}"
        "</tt:DefaultRelativeZoomTranslationSpace>"
        f"<tt:DefaultContinuousPanTiltVelocitySpace>{PT_VELOCITY}"
        "</tt:DefaultContinuousPanTiltVelocitySpace>"
        f"<tt:DefaultContinuousZoomVelocitySpace>{ZOOM_VELOCITY}"
        "</tt:DefaultContinuousZoomVelocitySpace>"
        f'<tt:DefaultPTZSpeed><tt:PanTilt x="1" y="1" space="{PT_SPEED}"/>'
        f'<tt:Zoom x="1" space="{ZOOM_SPEED}"/></tt:DefaultPTZSpeed>'
        f"<tt:DefaultPTZTimeout>PT{DEFAULT_TIMEOUT_S}S</tt:DefaultPTZTimeout>"
        f"<tt:PanTiltLimits>{_space2d('tt:Range', PT_POSITION, -1, 1)}</tt:PanTiltLimits>"
        f"<tt:ZoomLimits>{_space1d('tt:Range', ZOOM_POSITION, 0, 1)}</tt:ZoomLimits>"
        f"</{tag}>"
    )


def configuration_options_xml() -> str:
    """The options of our one configuration: the node's spaces and a Timeout range (PT1S..PT600S,
    as the Hikvision DS-2DF7276-AEL answers)."""
    return (
        "<tptz:PTZConfigurationOptions><tt:Spaces>" + _spaces()
        + "</tt:Spaces><tt:PTZTimeout><tt:Min>PT1S</tt:Min><tt:Max>PT600S</tt:Max></tt:PTZTimeout>"
        "</tptz:PTZConfigurationOptions>"
    )


def node_xml(tag: str) -> str:
    return (
        f'<{tag} token="{NODE}" FixedHomePosition="false" GeoMove="false">'
        "<tt:Name>PTZNode_1</tt:Name><tt:SupportedPTZSpaces>" + _spaces()
        + "</tt:SupportedPTZSpaces><tt:MaximumNumberOfPresets>100</tt:MaximumNumberOfPresets>"
        f"<tt:HomeSupported>true</tt:HomeSupported></{tag}>"
    )


def vector_xml(pos: PtzVector, pt_space: str, zoom_space: str) -> str:
    return (
        f'<tt:PanTilt x="{pos.pan:.6g}" y="{pos.tilt:.6g}" space="{pt_space}"/>'
        f'<tt:Zoom x="{pos.zoom:.6g}" space="{zoom_space}"/>'
    )


def _read_vector(node: ET.Element | None, base: PtzVector | None = None) -> PtzVector:
    """PanTilt x/y and Zoom x from a PTZVector/PTZSpeed element; missing parts from ``base``."""
    out = PtzVector() if base is None else PtzVector(base.pan, base.tilt, base.zoom)
    if node is None:
        return out
    try:
        pan_tilt = find_local(node, "PanTilt")
        if pan_tilt is not None:
            out.pan = float(pan_tilt.get("x", out.pan))
            out.tilt = float(pan_tilt.get("y", out.tilt))
        zoom = find_local(node, "Zoom")
        if zoom is not None:
            out.zoom = float(zoom.get("x", out.zoom))
    except ValueError:
        raise SoapFault("PTZ vector is not numeric", subcodes=("ter:InvalidArgVal",)) from None
    return out


def _check_config(req: Request, element: str) -> None:
    """A fault unless the request's ``element`` names our one configuration."""
    token = text_local(req.body, element)
    if token != CONFIG:
        raise SoapFault(f"no PTZ configuration {token!r}",
                        subcodes=("ter:InvalidArgVal", "ter:NoConfig"))


def build(state: CameraState) -> Service:
    svc = Service("ptz", NS["tptz"])

    def ptz_for(req: Request) -> PtzState:
        token = text_local(req.body, "ProfileToken")
        profile = state.profile(token)
        if profile is None:
            raise SoapFault(f"no profile {token!r}", subcodes=("ter:InvalidArgVal", "ter:NoProfile"))
        if not profile.ptz or state.ptz is None:
            raise SoapFault(f"profile {token!r} has no PTZ",
                            subcodes=("ter:InvalidArgVal", "ter:NoPTZProfile"))
        return state.ptz

    async def get_service_capabilities(req: Request) -> str:
        return ("<tptz:GetServiceCapabilitiesResponse>" + service_capabilities()
                + "</tptz:GetServiceCapabilitiesResponse>")

    async def get_nodes(req: Request) -> str:
        return f"<tptz:GetNodesResponse>{node_xml('tptz:PTZNode')}</tptz:GetNodesResponse>"

    async def get_node(req: Request) -> str:
        token = text_local(req.body, "NodeToken")
        if token != NODE:
            raise SoapFault(f"no PTZ node {token!r}", subcodes=("ter:InvalidArgVal", "ter:NoEntity"))
        return f"<tptz:GetNodeResponse>{node_xml('tptz:PTZNode')}</tptz:GetNodeResponse>"

    async def get_configurations(req: Request) -> str:
        return ("<tptz:GetConfigurationsResponse>" + configuration_xml("tptz:PTZConfiguration")
                + "</tptz:GetConfigurationsResponse>")

    async def get_configuration(req: Request) -> str:
        _check_config(req, "PTZConfigurationToken")
        return ("<tptz:GetConfigurationResponse>" + configuration_xml("tptz:PTZConfiguration")
                + "</tptz:GetConfigurationResponse>")

    async def get_configuration_options(req: Request) -> str:
        _check_config(req, "ConfigurationToken")
        return ("<tptz:GetConfigurationOptionsResponse>" + configuration_options_xml()
                + "</tptz:GetConfigurationOptionsResponse>")

    async def get_status(req: Request) -> str:
        ptz = ptz_for(req)
        pos = ptz.position()
        pt_moving, zoom_moving = ptz.moving()
        return (
            "<tptz:GetStatusResponse><tptz:PTZStatus><tt:Position>"
            + vector_xml(pos, PT_POSITION, ZOOM_POSITION)
            + "</tt:Position><tt:MoveStatus>"
            f"<tt:PanTilt>{'MOVING' if pt_moving else 'IDLE'}</tt:PanTilt>"
            f"<tt:Zoom>{'MOVING' if zoom_moving else 'IDLE'}</tt:Zoom></tt:MoveStatus>"
            f"<tt:UtcTime>{iso_z(state.now_us())}</tt:UtcTime>"
            "</tptz:PTZStatus></tptz:GetStatusResponse>"
        )

    async def continuous_move(req: Request) -> str:
        ptz = ptz_for(req)
        ptz.record("ContinuousMove")
        velocity = _read_vector(find_local(req.body, "Velocity"))
        timeout_text = text_local(req.body, "Timeout")
        try:
            timeout_s = parse_duration_s(timeout_text) if timeout_text else DEFAULT_TIMEOUT_S
        except ValueError:
            raise SoapFault("Timeout is not a duration", subcodes=("ter:InvalidArgVal",)) from None
        ptz.continuous_move(velocity, float(timeout_s))
        return "<tptz:ContinuousMoveResponse/>"

    async def stop(req: Request) -> str:
        ptz = ptz_for(req)
        ptz.record("Stop")
        pan_tilt = text_local(req.body, "PanTilt", default="true") != "false"
        zoom = text_local(req.body, "Zoom", default="true") != "false"
        ptz.stop(pan_tilt, zoom)
        return "<tptz:StopResponse/>"

    async def absolute_move(req: Request) -> str:
        ptz = ptz_for(req)
        ptz.record("AbsoluteMove")
        ptz.absolute_move(_read_vector(find_local(req.body, "Position"), ptz.position()))
        return "<tptz:AbsoluteMoveResponse/>"

    async def relative_move(req: Request) -> str:
        ptz = ptz_for(req)
        ptz.record("RelativeMove")
        ptz.relative_move(_read_vector(find_local(req.body, "Translation")))
        return "<tptz:RelativeMoveResponse/>"

    async def get_presets(req: Request) -> str:
        ptz = ptz_for(req)
        return (
            "<tptz:GetPresetsResponse>"
            + "".join(
                f'<tptz:Preset token="{x(p.token)}"><tt:Name>{x(p.name)}</tt:Name><tt:PTZPosition>'
                + vector_xml(p.position, PT_POSITION, ZOOM_POSITION)
                + "</tt:PTZPosition></tptz:Preset>"
                for p in ptz.presets.values()
            )
            + "</tptz:GetPresetsResponse>"
        )

    async def set_preset(req: Request) -> str:
        ptz = ptz_for(req)
        token = ptz.set_preset(text_local(req.body, "PresetName"), text_local(req.body, "PresetToken"))
        return (f"<tptz:SetPresetResponse><tptz:PresetToken>{x(token)}</tptz:PresetToken>"
                "</tptz:SetPresetResponse>")

    def preset_or_fault(ptz: PtzState, req: Request) -> str:
        token = text_local(req.body, "PresetToken") or ""
        if token not in ptz.presets:
            raise SoapFault(f"no preset {token!r}", subcodes=("ter:InvalidArgVal", "ter:NoToken"))
        return token

    async def goto_preset(req: Request) -> str:
        ptz = ptz_for(req)
        ptz.absolute_move(ptz.presets[preset_or_fault(ptz, req)].position)
        return "<tptz:GotoPresetResponse/>"

    async def remove_preset(req: Request) -> str:
        ptz = ptz_for(req)
        del ptz.presets[preset_or_fault(ptz, req)]
        return "<tptz:RemovePresetResponse/>"

    async def goto_home(req: Request) -> str:
        ptz = ptz_for(req)
        ptz.absolute_move(ptz.home)
        return "<tptz:GotoHomePositionResponse/>"

    async def set_home(req: Request) -> str:
        ptz = ptz_for(req)
        ptz.home = ptz.position()
        return "<tptz:SetHomePositionResponse/>"

    svc.op("GetServiceCapabilities", get_service_capabilities)
    svc.op("GetNodes", get_nodes)
    svc.op("GetNode", get_node)
    svc.op("GetConfigurations", get_configurations)
    svc.op("GetConfiguration", get_configuration)
    svc.op("GetConfigurationOptions", get_configuration_options)
    svc.op("GetStatus", get_status)
    svc.op("ContinuousMove", continuous_move)
    svc.op("Stop", stop)
    svc.op("AbsoluteMove", absolute_move)
    svc.op("RelativeMove", relative_move)
    svc.op("GetPresets", get_presets)
    svc.op("SetPreset", set_preset)
    svc.op("GotoPreset", goto_preset)
    svc.op("RemovePreset", remove_preset)
    svc.op("GotoHomePosition", goto_home)
    svc.op("SetHomePosition", set_home)
    return svc
