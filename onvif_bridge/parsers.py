"""Pure functions from raw SOAP answers (bytes) to :mod:`onvif_bridge.models` dataclasses.

:func:`parse_response` reads any answer a camera may send: it returns a model for the operations
we use, a :class:`GenericResponse` for other well-formed answers, and raises
:class:`OnvifFault` for SOAP faults or :class:`OnvifParseError` for anything unreadable. The
live client (:mod:`onvif_bridge.client`) sends requests through onvif-zeep-async and reads every
answer with these same functions, so the real-camera fixtures test the code that runs.

Vendor quirks are handled where they are met, with the vendor named.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from onvif_bridge.errors import OnvifFault, OnvifParseError
from onvif_bridge.events import parse_pull_messages_element, parse_xs_datetime
from onvif_bridge.models import (
    Capabilities,
    DeviceInformation,
    GenericResponse,
    Hostname,
    MediaProfile,
    MediaUri,
    NetworkInterface,
    RelayOutput,
    ServiceInfo,
    SystemDateAndTime,
    VideoEncoderConfig,
)
from onvif_bridge.ptz_parse import is_ptz_answer, parse_ptz_operation
from onvif_bridge.wsd import parse_discovery_element
from onvif_bridge.xml import (
    Element,
    attr,
    child,
    children,
    find_first,
    local,
    namespace,
    not_null,
    parse_xml,
    read_bool,
    read_float,
    read_int,
    required_child,
    soap_body,
    text,
)

NAMESPACES: dict[str, str] = {
    "http://www.onvif.org/ver10/device/wsdl": "device",
    "http://www.onvif.org/ver10/media/wsdl": "media",
    "http://www.onvif.org/ver20/media/wsdl": "media2",
    "http://www.onvif.org/ver20/ptz/wsdl": "ptz",
    "http://www.onvif.org/ver10/events/wsdl": "events",
    "http://www.onvif.org/ver20/imaging/wsdl": "imaging",
    "http://www.onvif.org/ver10/deviceIO/wsdl": "deviceio",
    "http://www.onvif.org/ver20/analytics/wsdl": "analytics",
    "http://www.onvif.org/ver10/recording/wsdl": "recording",
    "http://www.onvif.org/ver10/search/wsdl": "search",
    "http://www.onvif.org/ver10/replay/wsdl": "replay",
    "http://www.onvif.org/ver10/receiver/wsdl": "receiver",
    "http://www.onvif.org/ver10/display/wsdl": "display",
    "http://www.onvif.org/ver10/analyticsdevice/wsdl": "analyticsdevice",
    "http://www.onvif.org/ver10/accesscontrol/wsdl": "accesscontrol",
    "http://www.onvif.org/ver10/doorcontrol/wsdl": "doorcontrol",
}
_CAPABILITY_NAMES = {name: ns for ns, name in NAMESPACES.items()}
# GetCapabilities element names (Device, Media, PTZ, Events, Imaging, Analytics, and under
# Extension: DeviceIO, Recording, Search, Replay, Receiver, Display, AnalyticsDevice).
_CAPABILITY_ELEMENTS = {
    "device": "device", "media": "media", "ptz": "ptz", "events": "events",
    "imaging": "imaging", "analytics": "analytics", "deviceio": "deviceio",
    "recording": "recording", "search": "search", "replay": "replay", "receiver": "receiver",
    "display": "display", "analyticsdevice": "analyticsdevice",
}

_FAULT_CODES = {
    "sender": "Sender", "client": "Sender",
    "receiver": "Receiver", "server": "Receiver",
    # Hikvision DS-2CD2012-I / DS-2DF7276-AEL (GetDot11Capabilities) send env:Reveiver.
    "reveiver": "Receiver", "reciever": "Receiver",
    "versionmismatch": "VersionMismatch", "mustunderstand": "MustUnderstand",
    "dataencodingunknown": "DataEncodingUnknown",
}

# Axis reports "no limit" as 2^31-1 kbit/s.
_UNLIMITED_KBPS = 2_000_000_000
_MAC_RE = re.compile(r"^[0-9a-f]{2}([:-]?)[0-9a-f]{2}(\1[0-9a-f]{2}){4}$")


def _strip_prefix(value: str) -> str:
    return value.strip().rsplit(":", 1)[-1]


# --- faults ---------------------------------------------------------------------------------


def fault_from_element(fault: Element) -> OnvifFault:
    """A SOAP 1.2 (``Code/Value``, ``Subcode``…) or SOAP 1.1 (``faultcode``) fault."""
    code_element = child(fault, "Code")
    subcodes: list[str] = []
    if code_element is not None:
        raw_code = text(code_element, "Value")
        sub = child(code_element, "Subcode")
        depth = 0
        while sub is not None and depth < 16:
            value = _strip_prefix(text(sub, "Value"))
            if value:
                subcodes.append(value)
            sub = child(sub, "Subcode")
            depth += 1
        reason = " ".join(
            t.text.strip() for t in children(child(fault, "Reason") or fault, "Text") if t.text
        )
        detail_element = child(fault, "Detail")
    else:
        raw_code = text(fault, "faultcode")
        reason = text(fault, "faultstring")
        detail_element = child(fault, "detail")
        # SOAP 1.1 subcodes are dotted: "SOAP-ENV:Client.ter:NotAuthorized"
        parts = raw_code.split(".")
        raw_code = parts[0]
        subcodes.extend(_strip_prefix(p) for p in parts[1:] if _strip_prefix(p))
    detail = ""
    if detail_element is not None:
        detail = not_null(" ".join(t.strip() for t in detail_element.itertext() if t.strip()))
    bare = _strip_prefix(raw_code)
    code = _FAULT_CODES.get(bare.lower(), bare or "Unknown")
    return OnvifFault(code=code, subcodes=tuple(subcodes), reason=not_null(reason), detail=detail,
                      raw_code=raw_code)


def parse_fault(data: bytes) -> OnvifFault:
    """The fault in ``data`` as an exception value (not raised); OnvifParseError if none."""
    body = soap_body(parse_xml(data))
    operation = next(iter(body), None)
    if operation is None or local(operation.tag) != "Fault":
        raise OnvifParseError("answer is not a SOAP fault")
    return fault_from_element(operation)


# --- device ---------------------------------------------------------------------------------


def device_information(op: Element) -> DeviceInformation:
    return DeviceInformation(
        manufacturer=not_null(text(op, "Manufacturer")),
        model=not_null(text(op, "Model")),
        firmware_version=not_null(text(op, "FirmwareVersion")),
        serial_number=not_null(text(op, "SerialNumber")),
        hardware_id=not_null(text(op, "HardwareId")),
    )


def _date_time_us(element: Element | None) -> int | None:
    if element is None:
        return None
    values = [
        read_int(text(element, "Date", "Year")), read_int(text(element, "Date", "Month")),
        read_int(text(element, "Date", "Day")), read_int(text(element, "Time", "Hour")),
        read_int(text(element, "Time", "Minute")), read_int(text(element, "Time", "Second")),
    ]
    if any(v is None for v in values):
        return None
    year, month, day, hour, minute, second = (int(v) for v in values if v is not None)
    try:
        # A leap second (":60") is read as ":59".
        moment = datetime(year, month, day, hour, minute, min(second, 59), tzinfo=UTC)
    except (ValueError, OverflowError):
        return None
    return parse_xs_datetime(moment.isoformat())


def system_date_and_time(op: Element) -> SystemDateAndTime:
    info = child(op, "SystemDateAndTime")
    if info is None:
        raise OnvifParseError("GetSystemDateAndTimeResponse without SystemDateAndTime")
    return SystemDateAndTime(
        utc_us=_date_time_us(child(info, "UTCDateTime")),
        date_time_type=text(info, "DateTimeType"),
        daylight_savings=read_bool(text(info, "DaylightSavings")),
        time_zone=not_null(text(info, "TimeZone", "TZ")),
    )


def normalise_mac(value: str) -> str | None:
    value = value.strip().lower()
    if not _MAC_RE.match(value):
        return None
    digits = re.sub(r"[^0-9a-f]", "", value)
    if digits in ("000000000000", "ffffffffffff"):
        return None
    return ":".join(digits[i : i + 2] for i in range(0, 12, 2))


def network_interfaces(op: Element) -> tuple[NetworkInterface, ...]:
    found = []
    for iface in children(op, "NetworkInterfaces"):
        config = child(iface, "IPv4", "Config")
        addresses = []
        if config is not None:
            for kind in ("Manual", "FromDHCP", "LinkLocal"):
                for entry in children(config, kind):
                    address = text(entry, "Address")
                    if address and address not in addresses:
                        addresses.append(address)
        found.append(
            NetworkInterface(
                token=attr(iface, "token"),
                name=text(iface, "Info", "Name"),
                mac=normalise_mac(text(iface, "Info", "HwAddress")),
                enabled=read_bool(text(iface, "Enabled")),
                ipv4=tuple(addresses),
                dhcp=read_bool(text(config, "DHCP")) if config is not None else None,
            )
        )
    return tuple(found)


def hostname(op: Element) -> Hostname:
    info = child(op, "HostnameInformation")
    return Hostname(name=not_null(text(info, "Name")), from_dhcp=read_bool(text(info, "FromDHCP")))


def services(op: Element) -> Capabilities:
    """GetServices (with or without IncludeCapability)."""
    found = []
    pull_point = snapshot = None
    relays = inputs = None
    for service in children(op, "Service"):
        ns = text(service, "Namespace")
        xaddr = text(service, "XAddr")
        if not ns or not xaddr:
            continue
        name = NAMESPACES.get(ns, ns)
        version = ""
        major, minor = text(service, "Version", "Major"), text(service, "Version", "Minor")
        if major:
            version = f"{major}.{minor or '0'}"
        found.append(ServiceInfo(name=name, namespace=ns, xaddr=xaddr, version=version))
        caps = child(service, "Capabilities", "Capabilities")
        if caps is None:
            continue
        if name == "events":
            pull_point = read_bool(attr(caps, "WSPullPointSupport"))
        elif name in ("media", "media2") and snapshot is None:
            snapshot = read_bool(attr(caps, "SnapshotUri"))
        elif name == "deviceio":
            relays = read_int(attr(caps, "RelayOutputs"))
            inputs = read_int(attr(caps, "DigitalInputs"))
    return Capabilities(services=tuple(found), input_connectors=inputs, relay_outputs=relays,
                        pull_point=pull_point, snapshot_uri=snapshot)


def capabilities(op: Element) -> Capabilities:
    """GetCapabilities (the pre-GetServices way; Dahua still leans on it)."""
    caps = child(op, "Capabilities")
    if caps is None:
        raise OnvifParseError("GetCapabilitiesResponse without Capabilities")
    found: list[ServiceInfo] = []
    elements = list(caps)
    extension = child(caps, "Extension")
    if extension is not None:
        elements.extend(extension)
    for element in elements:
        name = _CAPABILITY_ELEMENTS.get(local(element.tag).lower())
        xaddr = text(element, "XAddr")
        if name is None or not xaddr or any(s.name == name for s in found):
            continue
        found.append(ServiceInfo(name=name, namespace=_CAPABILITY_NAMES.get(name, ""),
                                 xaddr=xaddr))
    io = child(caps, "Device", "IO")
    deviceio = child(extension, "DeviceIO")
    inputs = read_int(text(io, "InputConnectors")) if io is not None else None
    relays = read_int(text(io, "RelayOutputs")) if io is not None else None
    if deviceio is not None:
        inputs = inputs if inputs is not None else read_int(text(deviceio, "DigitalInputs"))
        relays = relays if relays is not None else read_int(text(deviceio, "RelayOutputs"))
    events = child(caps, "Events")
    return Capabilities(
        services=tuple(found),
        input_connectors=inputs,
        relay_outputs=relays,
        pull_point=read_bool(text(events, "WSPullPointSupport")) if events is not None else None,
    )


# --- media ----------------------------------------------------------------------------------


def video_encoder(element: Element) -> VideoEncoderConfig:
    """A ver10 VideoEncoderConfiguration or a Media2 ``Configurations/VideoEncoder``."""
    rate = child(element, "RateControl")
    encoding = not_null(text(element, "Encoding")).upper() or None
    gov = read_int(attr(element, "GovLength"))  # Media2 carries it as an attribute
    profile = attr(element, "Profile") or None
    for codec in ("H264", "H265", "MPEG4"):
        codec_element = child(element, codec)
        if codec_element is not None:
            gov = gov if gov is not None else read_int(text(codec_element, "GovLength"))
            profile = profile or not_null(text(codec_element, f"{codec}Profile")) or None
    if gov is None:
        gov = read_int(text(element, "GovLength"))
    bitrate = read_int(text(rate, "BitrateLimit")) if rate is not None else None
    if bitrate is not None and (bitrate >= _UNLIMITED_KBPS or bitrate < 0):
        bitrate = None
    fps = read_float(text(rate, "FrameRateLimit")) if rate is not None else None
    width = read_int(text(element, "Resolution", "Width"))
    height = read_int(text(element, "Resolution", "Height"))
    return VideoEncoderConfig(
        token=attr(element, "token"),
        name=not_null(text(element, "Name")),
        encoding="H264" if encoding == "AVC" else ("H265" if encoding == "HEVC" else encoding),
        width=width if width and width > 0 else None,
        height=height if height and height > 0 else None,
        fps=fps if fps and fps > 0 else None,
        bitrate_kbps=bitrate,
        gov_length=gov if gov and gov > 0 else None,
        quality=read_float(text(element, "Quality")),
        h264_profile=profile,
    )


def media_profile(element: Element) -> MediaProfile:
    configurations = child(element, "Configurations")  # Media2
    if configurations is not None:
        encoder_element = child(configurations, "VideoEncoder")
        source = child(configurations, "VideoSource")
        ptz = child(configurations, "PTZ")
        audio = child(configurations, "AudioEncoder")
    else:
        encoder_element = child(element, "VideoEncoderConfiguration")
        source = child(element, "VideoSourceConfiguration")
        ptz = child(element, "PTZConfiguration")
        audio = child(element, "AudioEncoderConfiguration")
    encoder = video_encoder(encoder_element) if encoder_element is not None else None
    token = attr(element, "token")
    if not token:
        raise OnvifParseError("media profile without a token")
    return MediaProfile(
        token=token,
        name=not_null(text(element, "Name")),
        encoding=encoder.encoding if encoder else None,
        width=encoder.width if encoder else None,
        height=encoder.height if encoder else None,
        fps=encoder.fps if encoder else None,
        bitrate_kbps=encoder.bitrate_kbps if encoder else None,
        gov_length=encoder.gov_length if encoder else None,
        has_ptz=ptz is not None,
        fixed=read_bool(attr(element, "fixed")),
        video_source_token=not_null(text(source, "SourceToken")) or None,
        encoder=encoder,
        audio_encoding=(not_null(text(audio, "Encoding")) or None) if audio is not None else None,
    )


def media_uri(op: Element) -> MediaUri:
    holder = child(op, "MediaUri")
    uri = text(holder, "Uri") if holder is not None else text(op, "Uri")  # Media2: tr2:Uri
    if not uri:
        raise OnvifParseError(f"{local(op.tag)} without a Uri")
    return MediaUri(
        uri=uri,
        invalid_after_connect=read_bool(text(holder, "InvalidAfterConnect")),
        invalid_after_reboot=read_bool(text(holder, "InvalidAfterReboot")),
        timeout=text(holder, "Timeout"),
    )


_DURATION_RE = re.compile(r"^P(?:\d+D)?T?(?:(\d+)H)?(?:(\d+)M)?(?:(\d+(?:\.\d+)?)S)?$")


def duration_s(value: str) -> float | None:
    """An xs:duration of hours, minutes and seconds (``PT5S``, ``PT1M30S``, ``PT0.5S``) in
    seconds; None when unreadable or empty."""
    match = _DURATION_RE.match(value.strip().upper())
    if match is None or not value.strip() or not any(match.groups()):
        return None
    hours, minutes, seconds = match.groups()
    return int(hours or 0) * 3600 + int(minutes or 0) * 60 + float(seconds or 0)


def relay_outputs(op: Element) -> tuple[RelayOutput, ...]:
    """GetRelayOutputs (Device or DeviceIO): Hikvision answers an empty response when the camera
    has none (DS-2CD2012-I), Monostable PT5S ones on its PTZ domes (DS-2DF7276-AEL)."""
    out = []
    for relay in children(op, "RelayOutputs"):
        token = attr(relay, "token")
        if not token:
            continue
        out.append(RelayOutput(token=token[:64], mode=text(relay, "Properties", "Mode"),
                               delay_s=duration_s(text(relay, "Properties", "DelayTime")),
                               idle_state=text(relay, "Properties", "IdleState")))
    return tuple(out)


def relay_output_options(op: Element) -> dict[str, RelayOutput]:
    """GetRelayOutputOptions (DeviceIO): token → a RelayOutput holding only the options."""
    out: dict[str, RelayOutput] = {}
    for options in children(op, "RelayOutputOptions"):
        token = attr(options, "token")
        modes = tuple(m.text.strip() for m in children(options, "Mode") if m.text)
        delays = [read_float(v) for v in text(options, "DelayTimes").split()]
        values = tuple(v for v in delays if v is not None)
        discrete = read_bool(text(options, "Discrete")) is True
        low = high = None
        if values and not discrete:
            low, high = min(values), max(values)
        out[token] = RelayOutput(token=token, modes=modes, delay_min_s=low, delay_max_s=high,
                                 delay_choices_s=values if discrete else ())
    return out


# --- dispatch -------------------------------------------------------------------------------

ParsedResponse = Any
"""What :func:`parse_response` returns: one of the models, or a tuple of them."""


def parse_operation(operation: Element) -> ParsedResponse:
    """Read the first element of a SOAP Body."""
    name = local(operation.tag)
    if name == "Fault":
        raise fault_from_element(operation)
    if name in ("GetDeviceInformationResponse",):
        return device_information(operation)
    if name == "GetSystemDateAndTimeResponse":
        return system_date_and_time(operation)
    if name == "GetNetworkInterfacesResponse":
        return network_interfaces(operation)
    if name == "GetHostnameResponse":
        return hostname(operation)
    if name == "GetServicesResponse":
        return services(operation)
    if name == "GetCapabilitiesResponse":
        return capabilities(operation)
    if name == "GetProfilesResponse":
        return tuple(media_profile(p) for p in children(operation, "Profiles"))
    if name == "GetProfileResponse":
        return media_profile(required_child(operation, "Profile"))
    if name in ("GetStreamUriResponse", "GetSnapshotUriResponse"):
        return media_uri(operation)
    if name in ("GetVideoEncoderConfigurationsResponse",):
        return tuple(video_encoder(c) for c in children(operation, "Configurations"))
    if name == "GetVideoEncoderConfigurationResponse":
        return video_encoder(required_child(operation, "Configuration"))
    if name == "GetRelayOutputsResponse":
        return relay_outputs(operation)
    if name == "GetRelayOutputOptionsResponse":
        return relay_output_options(operation)
    if name in ("PullMessagesResponse", "Notify"):
        return parse_pull_messages_element(operation)
    if is_ptz_answer(operation):
        return parse_ptz_operation(operation)
    return GenericResponse(operation=name, namespace=namespace(operation.tag))


def parse_response(data: bytes) -> ParsedResponse:
    """Parse any SOAP answer (or WS-Discovery message) a camera sends.

    Returns a model (see :func:`parse_operation`), raises :class:`OnvifFault` for a SOAP fault
    and :class:`OnvifParseError` for anything we cannot read. Never raises anything else.
    """
    root = parse_xml(data)
    body = soap_body(root)
    operation = next((e for e in body if isinstance(e.tag, str)), None)
    if operation is None:
        raise OnvifParseError("empty SOAP Body")
    if local(operation.tag) in ("ProbeMatches", "Hello", "Bye", "Probe"):
        if local(operation.tag) == "Probe":
            return GenericResponse(operation="Probe", namespace=namespace(operation.tag))
        return parse_discovery_element(root)
    return parse_operation(operation)


def expect(result: ParsedResponse, kind: type, operation: str) -> Any:
    """Check that ``result`` is what ``operation`` should answer, else OnvifParseError."""
    if isinstance(result, kind):
        return result
    got = result.operation if isinstance(result, GenericResponse) else type(result).__name__
    raise OnvifParseError(f"{operation}: unexpected answer <{got}>")


__all__ = [
    "NAMESPACES",
    "ParsedResponse",
    "capabilities",
    "device_information",
    "expect",
    "fault_from_element",
    "find_first",
    "media_profile",
    "media_uri",
    "network_interfaces",
    "parse_fault",
    "parse_operation",
    "parse_response",
    "relay_output_options",
    "relay_outputs",
    "services",
    "system_date_and_time",
    "video_encoder",
]
