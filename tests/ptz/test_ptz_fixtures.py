"""PTZ answers of real cameras (the shared fixtures) read into our dataclasses and capabilities.

The Hikvision DS-2DF7276-AEL (a PTZ dome, firmware V5.1.6) and the gBillal/ex_onvif captures of
an unnamed camera; skipped with a reason when the shared folder is absent.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from onvif_bridge.errors import OnvifParseError
from onvif_bridge.parsers import parse_response
from onvif_bridge.ptz_parse import (
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
    parse_duration_s,
)

HIK = "hikvision-ds-2df7276-ael__"
GB = "unknown-gBillal-ex_onvif__"


def read(folder: Path, name: str) -> object:
    return parse_response((folder / name).read_bytes())


def test_hikvision_ptz_dome_capabilities(shared_fixtures: Path) -> None:
    nodes = read(shared_fixtures, HIK + "GetNodes.xml")
    assert isinstance(nodes, tuple) and len(nodes) == 1
    node = nodes[0]
    assert isinstance(node, PtzNode)
    assert node.token == "PTZNODETOKEN" and node.max_presets == 256 and node.home_supported
    # the FOV and millimetre velocity spaces are listed too; the generic one is what we use
    assert len(node.spaces.by_kind["pt_velocity"]) == 2
    assert node.spaces.generic("pt_velocity").x == Range(-1.0, 1.0)  # type: ignore[union-attr]

    options = read(shared_fixtures, HIK + "GetConfigurationOptions__ptz.xml")
    assert isinstance(options, PtzConfigurationOptions)
    assert (options.timeout_min_s, options.timeout_max_s) == (1.0, 600.0)
    configs = read(shared_fixtures, HIK + "GetConfigurations__ptz.xml")
    assert isinstance(configs, tuple) and isinstance(configs[0], PtzConfiguration)
    assert configs[0].node_token == node.token and configs[0].default_timeout_s == 300.0

    caps = capabilities_from("Profile_1", node, options, configs[0])
    assert caps.continuous and caps.continuous_zoom and caps.relative and caps.absolute
    assert caps.presets and caps.home and caps.max_presets == 256
    assert caps.pan_velocity == Range(-1.0, 1.0) and caps.zoom_velocity == Range(-1.0, 1.0)
    assert caps.zoom_position == Range(0.0, 1.0)
    assert PtzCapabilities.from_dict(caps.as_dict()) == caps  # what the database keeps


def test_hikvision_presets_status_and_acknowledgements(shared_fixtures: Path) -> None:
    presets = read(shared_fixtures, HIK + "GetPresets.xml")
    assert isinstance(presets, tuple) and all(isinstance(p, PtzPreset) for p in presets)
    named = {p.token: p.name for p in presets if p.name}  # the camera lists all 256 slots
    assert len(presets) > 200 and named["4"] == "Parking" and named["5"] == "West"
    assert named["33"] == "Auto-flip" and "7" not in named
    saved = read(shared_fixtures, HIK + "SetPreset.xml")
    assert saved == PresetToken("6")
    status = read(shared_fixtures, HIK + "GetStatus__ptz.xml")
    assert isinstance(status, PtzStatus)
    assert status.position == PtzVector(0.333167, -0.682, 0.0)
    assert status.pan_tilt_moving is None and status.error == ""  # "NO error", no MoveStatus
    for op in ("ContinuousMove", "Stop", "RelativeMove", "AbsoluteMove", "GotoPreset",
               "RemovePreset", "GotoHomePosition", "SetHomePosition"):
        answer = read(shared_fixtures, HIK + f"{op}.xml")
        assert getattr(answer, "operation", "") == f"{op}Response", op


def test_ex_onvif_camera(shared_fixtures: Path) -> None:
    nodes = read(shared_fixtures, GB + "GetPtzNodes.xml")
    assert isinstance(nodes, tuple)
    caps = capabilities_from("p", nodes[0], None)
    assert caps.max_presets == 300 and caps.continuous and caps.relative
    assert caps.timeout_min_s is None  # no options read
    configs = read(shared_fixtures, GB + "GetPtzConfigurations.xml")
    assert isinstance(configs, tuple) and configs[0].default_timeout_s == 1.0  # PT0H0M1S
    presets = read(shared_fixtures, GB + "GetPtzPresets.xml")
    assert isinstance(presets, tuple)
    assert presets[1] == PtzPreset("PresetToken002", "Parking", PtzVector(-0.3, -0.1, 0.5))
    status = read(shared_fixtures, GB + "GetPtzStatus.xml")
    assert isinstance(status, PtzStatus) and status.pan_tilt_moving is False
    assert read(shared_fixtures, GB + "SetPtzPreset.xml") == PresetToken("PresetToken001")


def test_durations_and_broken_answers() -> None:
    assert parse_duration_s("PT0.5S") == 0.5 and parse_duration_s("P1DT1M") == 86460
    assert parse_duration_s("") is None and parse_duration_s("5 seconds") is None
    envelope = ('<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope" '
                'xmlns:tptz="http://www.onvif.org/ver20/ptz/wsdl"><s:Body>{}</s:Body></s:Envelope>')
    with pytest.raises(OnvifParseError, match="without a PresetToken"):
        parse_response(envelope.format("<tptz:SetPresetResponse/>").encode())
    with pytest.raises(OnvifParseError, match="without a token"):
        parse_response(envelope.format(
            "<tptz:GetNodesResponse><tptz:PTZNode/></tptz:GetNodesResponse>").encode())
    # a node whose ranges are not numbers: the space is left out, not a crash
    odd = parse_response(envelope.format(
        '<tptz:GetNodesResponse><tptz:PTZNode token="n"><SupportedPTZSpaces>'
        "<ContinuousPanTiltVelocitySpace><URI>u</URI><XRange><Min>x</Min><Max>1</Max></XRange>"
        "</ContinuousPanTiltVelocitySpace></SupportedPTZSpaces></tptz:PTZNode>"
        "</tptz:GetNodesResponse>").encode())
    assert isinstance(odd, tuple) and not capabilities_from("p", odd[0], None).continuous
