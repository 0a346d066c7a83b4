"""Parsing real camera answers (shared fixtures) and our own quirk fixtures into models."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest

from onvif_bridge.errors import OnvifError, OnvifFault, OnvifHostileXmlError, OnvifParseError
from onvif_bridge.models import (
    Capabilities,
    DeviceInformation,
    DiscoveredDevice,
    EventKind,
    GenericResponse,
    MediaProfile,
    MediaUri,
    NetworkInterface,
    PullMessagesResult,
    SystemDateAndTime,
)
from onvif_bridge.parsers import parse_response
from vms.clock import datetime_to_us

Load = Callable[[str], bytes]


def test_every_shared_fixture_parses_or_fails_typed(fixtures_dir: Path) -> None:
    files = sorted(p for p in fixtures_dir.iterdir() if p.suffix == ".xml")
    assert len(files) > 200
    outcomes: dict[str, int] = {}
    for path in files:
        try:
            result = parse_response(path.read_bytes())
        except OnvifFault:
            outcome = "fault"
        except OnvifParseError:
            outcome = "parse_error"
        except OnvifError as exc:  # pragma: no cover - would be a new error type
            pytest.fail(f"{path.name}: unexpected typed error {exc!r}")
        else:
            outcome = type(result).__name__
        if "__fault" in path.name or "Error" in path.stem or "Notsupport" in path.name:
            assert outcome == "fault", f"{path.name} should be read as a SOAP fault, got {outcome}"
        outcomes[outcome] = outcomes.get(outcome, 0) + 1
    # the one JSON-quoted file is not XML at all; everything else is read
    assert outcomes.get("parse_error", 0) <= 2, outcomes
    assert outcomes["fault"] >= 25


def test_each_typed_operation_returns_its_model(fixtures_dir: Path) -> None:
    expected = {
        "GetDeviceInformation": DeviceInformation,
        "GetSystemDateAndTime": SystemDateAndTime,
        "GetCapabilities": Capabilities,
        "GetStreamUri": MediaUri,
        "GetSnapshotUri": MediaUri,
        "PullMessages": PullMessagesResult,
    }
    for path in sorted(fixtures_dir.glob("*.xml")):
        operation = path.stem.split("__")[1] if "__" in path.stem else ""
        if operation in expected and "fault" not in path.stem:
            assert isinstance(parse_response(path.read_bytes()), expected[operation]), path.name


def test_hikvision_get_profiles(load: Load) -> None:
    profiles = parse_response(load("hikvision-ds-2cd2012-i__GetProfiles.xml"))
    assert isinstance(profiles, tuple) and all(isinstance(p, MediaProfile) for p in profiles)
    main, sub = profiles[0], profiles[1]
    assert (main.token, main.name, main.encoding) == ("Profile_1", "mainStream", "H264")
    assert (main.width, main.height, main.fps) == (1280, 720, 10.0)
    assert (main.bitrate_kbps, main.gov_length, main.has_ptz) == (2048, 2, False)
    assert main.encoder is not None and main.encoder.token == "VideoEncoderToken_1"
    assert (sub.token, sub.width, sub.height, sub.bitrate_kbps) == ("Profile_2", 352, 240, 512)


def test_hikvision_ptz_dome_profiles_have_ptz(load: Load) -> None:
    profiles = parse_response(load("hikvision-ds-2df7276-ael__GetProfiles.xml"))
    assert all(p.has_ptz for p in profiles)
    assert profiles[0].audio_encoding == "G711"


def test_axis_unlimited_bitrate_is_none(load: Load) -> None:
    profiles = parse_response(load("axis-m2025-le__GetProfiles.xml"))
    assert profiles[0].bitrate_kbps is None  # Axis sends 2147483647
    assert profiles[1].encoding == "JPEG" and profiles[1].gov_length is None


def test_profile_without_encoder_details(load: Load) -> None:
    profiles = parse_response(load("unknown-hammeraj-onvif__GetProfilesResponseWithInvalidVideoEncoder.xml"))
    assert profiles[0].encoding is None and profiles[0].width is None


def test_media2_profiles_written_by_us(data_dir: Path) -> None:
    (profile,) = parse_response((data_dir / "media2__GetProfiles.xml").read_bytes())
    assert profile.token == "profile_1_h265" and profile.encoding == "H265"
    assert (profile.width, profile.height, profile.fps) == (2560, 1440, 25.0)
    assert (profile.bitrate_kbps, profile.gov_length, profile.has_ptz) == (4096, 50, True)


def test_dvc_pull_messages_motion(load: Load) -> None:
    result = parse_response(load("dvc-dcn-bm2220lpr__PullMessages__motion.xml"))
    assert isinstance(result, PullMessagesResult)
    alarm, cell = result.events
    assert alarm.topic == "tns1:VideoSource/MotionAlarm"
    assert alarm.kind is EventKind.MOTION and alarm.state is True
    assert alarm.property_operation == "Changed"
    assert alarm.source == {"Source": "VideoSource_token_1"}
    assert alarm.utc_time_us == datetime_to_us(datetime(2026, 10, 1, 4, 14, 37, 113000, tzinfo=UTC))
    assert cell.kind is EventKind.MOTION and cell.data == {"IsMotion": "true"}
    assert cell.source["Rule"] == "MotionDetectorRule"


def test_hikvision_pull_messages_kinds(load: Load) -> None:
    result = parse_response(load("hikvision__PullMessages.xml"))
    kinds = {e.topic: e.kind for e in result.events}
    assert kinds["tns1:RuleEngine/TamperDetector/Tamper"] is EventKind.TAMPER
    assert kinds["tns1:RuleEngine/CellMotionDetector/Motion"] is EventKind.MOTION
    assert all(e.state is False for e in result.events if e.property_operation == "Initialized"
               and e.kind is EventKind.MOTION)


def test_dvc_unauthorized_fault(load: Load) -> None:
    with pytest.raises(OnvifFault) as info:
        parse_response(load("dvc-dcn-bm2220lpr__GetSystemDateAndTime__fault-unauthorized.xml"))
    assert info.value.code == "Sender"
    assert info.value.is_auth
    assert "401" in info.value.reason


def test_hikvision_reveiver_misspelling(load: Load) -> None:
    with pytest.raises(OnvifFault) as info:
        parse_response(load("hikvision-ds-2cd2012-i__GetDot11Capabilities__fault.xml"))
    assert info.value.code == "Receiver" and info.value.raw_code == "env:Reveiver"
    assert info.value.subcodes == ("InvalidDot11", "ActionNotSupported")
    assert info.value.is_not_supported and not info.value.is_auth


def test_fault_subcodes_and_null_detail(load: Load) -> None:
    with pytest.raises(OnvifFault) as info:
        parse_response(load("hikvision-ds-2cd2012-i__GetCACertificates__fault.xml"))
    assert info.value.subcodes == ("ActionNotSupported", "InvalidOperation")
    assert info.value.detail == ""  # Hikvision sends "NULL"


def test_axis_media2_stream_uri(load: Load) -> None:
    uri = parse_response(load("axis-m2025-le__GetStreamUri__media2.xml"))
    assert uri.uri == ("rtsp://192.168.0.209/onvif-media/media.amp?profile=profile_1_h264"
                       "&sessiontimeout=60&streamtype=unicast")


def test_dahua_stream_and_snapshot(load: Load) -> None:
    stream = parse_response(load("dahua__GetStreamUri.xml"))
    assert stream.uri.startswith("rtsp://192.168.1.123:554/cam/realmonitor?channel=1&subtype=1")
    assert stream.invalid_after_connect is True
    snapshot = parse_response(load("dahua__GetSnapshotUri.xml"))
    assert snapshot.uri.startswith("http")


def test_dahua_capabilities(load: Load) -> None:
    caps = parse_response(load("dahua__GetCapabilities.xml"))
    assert caps.xaddr("media") == "http://192.168.1.123/onvif/media_service"
    assert caps.xaddr("device") == "http://192.168.1.123/onvif/device_service"
    assert caps.has("events") and caps.has("imaging")
    assert (caps.input_connectors, caps.relay_outputs) == (2, 1)


def test_hikvision_services(load: Load) -> None:
    caps = parse_response(load("hikvision-ds-2cd2012-i__GetServices.xml"))
    assert caps.xaddr("media") == "http://10.10.1.65/onvif/Media"
    assert caps.xaddr("deviceio") == "http://10.10.1.65/onvif/DeviceIO"
    assert caps.pull_point is True and caps.snapshot_uri is True
    device = next(s for s in caps.services if s.name == "device")
    assert device.version == "2.40"


def test_axis_services(load: Load) -> None:
    caps = parse_response(load("axis-m2025-le__GetServices.xml"))
    assert caps.has("media") and caps.has("media2")


def test_device_information(load: Load) -> None:
    info = parse_response(load("milesight-ms-c8165-pe__GetDeviceInformation.xml"))
    assert info == DeviceInformation("Milesight Technology Co.,Ltd.", "MS-C8165-PE",
                                     "61.8.0.3-r8", "EM82V102329001403", "V1.0")


def test_system_date_and_time(load: Load) -> None:
    value = parse_response(load("hikvision-ds-2cd2012-i__GetSystemDateAndTime.xml"))
    assert value.utc_us == datetime_to_us(datetime(2018, 2, 27, 18, 34, 41, tzinfo=UTC))
    assert value.date_time_type == "Manual" and value.time_zone == "CST7:00:00"


def test_network_interfaces_mac(load: Load) -> None:
    (iface,) = parse_response(load("hikvision-ds-2cd2012-i__GetNetworkInterfaces.xml"))
    assert iface == NetworkInterface(token="eth0", name="eth0", mac="c0:56:e3:f9:55:68",
                                     enabled=True, ipv4=("10.10.1.65",), dhcp=True)


def test_probe_matches(load: Load) -> None:
    (dvc,) = parse_response(load("dvc-dcn-bm2220lpr__ProbeMatches.xml"))
    assert isinstance(dvc, DiscoveredDevice)
    assert dvc.endpoint == "urn:uuid:00000000-0000-4000-8000-000000000008"
    assert dvc.xaddrs == ("http://192.0.2.14:80/onvif/device_service",
                          "http://[fe80::7]:80/onvif/device_service")
    assert (dvc.name, dvc.hardware, dvc.metadata_version) == ("DVC", "DCN-BM2220LPR", 10)
    assert "tdn:NetworkVideoTransmitter" in dvc.types
    (axis,) = parse_response(load("axis-m2025-le__ProbeMatches.xml"))
    assert axis.name == "AXIS M2025-LE" and len(axis.xaddrs) == 4
    (amcrest,) = parse_response(load("amcrest-ip5m-b1186e__ProbeMatches.xml"))
    assert amcrest.hardware == "IP5M-B1186E" and amcrest.name == "Amcrest"


def test_multipart_answer_is_unwrapped(load: Load) -> None:
    result = parse_response(load("hikvision-ds-2cd2012-i__GetSystemBackup.xml"))
    assert isinstance(result, GenericResponse) and result.operation == "GetSystemBackupResponse"


def test_json_quoted_answer_is_a_parse_error(load: Load) -> None:
    with pytest.raises(OnvifParseError, match="not XML"):
        parse_response(load("axis__InvalidGetVideoSourceConfigurations.xml"))


@pytest.mark.parametrize("data", [b"", b"   ", b"<a>", b"<a/>", b"\xff\xfe<x/>",
                                  b"<s:Envelope xmlns:s='http://www.w3.org/2003/05/soap-envelope'/>",
                                  b"<?xml version='1.0' encoding='nope'?><a/>"])
def test_garbage_is_a_parse_error(data: bytes) -> None:
    with pytest.raises(OnvifParseError):
        parse_response(data)


# --- hostile XML ------------------------------------------------------------------------------

ENVELOPE = ("<s:Envelope xmlns:s='http://www.w3.org/2003/05/soap-envelope'>"
            "<s:Body><x:GetHostnameResponse xmlns:x='http://www.onvif.org/ver10/device/wsdl'>"
            "<x:HostnameInformation><x:Name>{body}</x:Name></x:HostnameInformation>"
            "</x:GetHostnameResponse></s:Body></s:Envelope>")


def test_xxe_is_refused_without_reading_the_file() -> None:
    data = ('<?xml version="1.0"?><!DOCTYPE s:Envelope [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>'
            + ENVELOPE.format(body="&xxe;")).encode()
    with pytest.raises(OnvifHostileXmlError) as info:
        parse_response(data)
    assert "root:" not in str(info.value)


def test_external_dtd_is_refused() -> None:
    data = ('<?xml version="1.0"?><!DOCTYPE foo SYSTEM "http://127.0.0.1:9/evil.dtd">'
            + ENVELOPE.format(body="x")).encode()
    with pytest.raises(OnvifHostileXmlError):
        parse_response(data)


def test_billion_laughs_is_refused_quickly() -> None:
    entities = '<!ENTITY lol0 "lol">' + "".join(
        f'<!ENTITY lol{i} "{("&lol" + str(i - 1) + ";") * 10}">' for i in range(1, 10))
    data = (f'<?xml version="1.0"?><!DOCTYPE lolz [{entities}]>'
            + ENVELOPE.format(body="&lol9;")).encode()
    started = time.monotonic()
    with pytest.raises(OnvifHostileXmlError):
        parse_response(data)
    assert time.monotonic() - started < 0.5


def test_oversized_answer_is_refused() -> None:
    data = ENVELOPE.format(body="a" * (5 * 1024 * 1024)).encode()
    with pytest.raises(OnvifParseError, match="too large"):
        parse_response(data)
