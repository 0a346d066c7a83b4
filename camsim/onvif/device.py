"""ONVIF Device service (``/onvif/device_service``): identity, time, capabilities, relays, reboot.

GetSystemDateAndTime answers without credentials, like every real camera, and reports the camera's
own clock (offset included) so a client can see the skew. A Manual SetSystemDateAndTime sets that
offset. Everything else needs a valid UsernameToken.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

from camsim.onvif import deviceio
from camsim.onvif.soap import NS, Request, Service, SoapFault, find_local, text_local, x
from camsim.onvif.state import CameraState

logger = logging.getLogger(__name__)

SERVICE_PATHS: dict[str, str] = {
    "device": "/onvif/device_service",
    "media": "/onvif/media_service",
    "ptz": "/onvif/ptz_service",
    "events": "/onvif/event_service",
    "deviceio": "/onvif/deviceio_service",
}

REBOOT_MESSAGE = "Rebooting in 2 seconds"


def scopes(state: CameraState) -> list[tuple[str, str]]:
    """(ScopeDef, ScopeItem) pairs; discovery advertises the same items."""
    ident = state.identity
    items = [
        ("Fixed", "onvif://www.onvif.org/type/video_encoder"),
        ("Fixed", "onvif://www.onvif.org/type/audio_encoder"),
        ("Fixed", "onvif://www.onvif.org/Profile/Streaming"),
        ("Fixed", "onvif://www.onvif.org/Profile/T"),
        ("Fixed", f"onvif://www.onvif.org/hardware/{ident.model}"),
        ("Configurable", f"onvif://www.onvif.org/name/{ident.name}"),
        ("Configurable", f"onvif://www.onvif.org/location/{ident.location}"),
        ("Configurable", f"onvif://www.onvif.org/MAC/{ident.mac}"),
    ]
    if state.ptz is not None:
        items.insert(2, ("Fixed", "onvif://www.onvif.org/type/ptz"))
    return items


def _xaddr(state: CameraState, service: str) -> str:
    return state.base_url() + SERVICE_PATHS[service]


def _datetime_xml(moment: datetime) -> str:
    return (
        f"<tt:Time><tt:Hour>{moment.hour}</tt:Hour><tt:Minute>{moment.minute}</tt:Minute>"
        f"<tt:Second>{moment.second}</tt:Second></tt:Time>"
        f"<tt:Date><tt:Year>{moment.year}</tt:Year><tt:Month>{moment.month}</tt:Month>"
        f"<tt:Day>{moment.day}</tt:Day></tt:Date>"
    )


def _version(major: int = 2, minor: int = 60) -> str:
    return f"<tt:Major>{major}</tt:Major><tt:Minor>{minor}</tt:Minor>"


def device_service_capabilities(state: CameraState) -> str:
    return (
        '<tds:Capabilities><tds:Network IPFilter="false" ZeroConfiguration="false" '
        'IPVersion6="false" DynDNS="false" Dot11Configuration="false" HostnameFromDHCP="false" '
        'NTP="1"/>'
        '<tds:Security TLS1.0="false" TLS1.1="false" TLS1.2="false" OnboardKeyGeneration="false" '
        'AccessPolicyConfig="false" DefaultAccessPolicy="true" Dot1X="false" '
        'RemoteUserHandling="false" X.509Token="false" SAMLToken="false" KerberosToken="false" '
        'UsernameToken="true" HttpDigest="true" RELToken="false"/>'
        '<tds:System DiscoveryResolve="false" DiscoveryBye="true" RemoteDiscovery="false" '
        'SystemBackup="false" SystemLogging="false" FirmwareUpgrade="false" '
        'HttpFirmwareUpgrade="false" HttpSystemBackup="false" HttpSystemLogging="false" '
        'HttpSupportInformation="false"/>'
        "</tds:Capabilities>"
    )


def build(state: CameraState) -> Service:
    """The Device service bound to ``state``."""
    svc = Service("device", NS["tds"])

    async def get_system_date_and_time(req: Request) -> str:
        now = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=state.now_us())
        return (
            "<tds:GetSystemDateAndTimeResponse><tds:SystemDateAndTime>"
            f"<tt:DateTimeType>{state.date_time_type}</tt:DateTimeType>"
            "<tt:DaylightSavings>false</tt:DaylightSavings>"
            f"<tt:TimeZone><tt:TZ>{x(state.tz)}</tt:TZ></tt:TimeZone>"
            f"<tt:UTCDateTime>{_datetime_xml(now)}</tt:UTCDateTime>"
            f"<tt:LocalDateTime>{_datetime_xml(now)}</tt:LocalDateTime>"
            "</tds:SystemDateAndTime></tds:GetSystemDateAndTimeResponse>"
        )

    async def set_system_date_and_time(req: Request) -> str:
        kind = text_local(req.body, "DateTimeType", default="Manual") or "Manual"
        if kind not in ("Manual", "NTP"):
            raise SoapFault(f"DateTimeType {kind!r}", subcodes=("ter:InvalidArgVal",))
        tz = text_local(req.body, "TimeZone", "TZ")
        if tz:
            state.tz = tz
        state.date_time_type = kind
        if kind == "Manual":
            utc = find_local(req.body, "UTCDateTime")
            if utc is None:
                raise SoapFault("Manual time without UTCDateTime",
                                subcodes=("ter:InvalidArgVal", "ter:InvalidDateTime"))
            try:
                moment = datetime(
                    int(text_local(utc, "Date", "Year") or ""),
                    int(text_local(utc, "Date", "Month") or ""),
                    int(text_local(utc, "Date", "Day") or ""),
                    int(text_local(utc, "Time", "Hour") or ""),
                    int(text_local(utc, "Time", "Minute") or ""),
                    int(text_local(utc, "Time", "Second") or ""),
                    tzinfo=UTC,
                )
            except ValueError:
                raise SoapFault("invalid UTCDateTime",
                                subcodes=("ter:InvalidArgVal", "ter:InvalidDateTime")) from None
            target_us = int(moment.timestamp()) * 1_000_000
            state.clock_offset_us = target_us - state.clock.now_us()
            logger.info("%s: clock set manually, offset now %.1f s",
                        state.identity.name, state.clock_offset_us / 1e6)
        return "<tds:SetSystemDateAndTimeResponse/>"

    async def get_device_information(req: Request) -> str:
        ident = state.identity
        return (
            "<tds:GetDeviceInformationResponse>"
            f"<tds:Manufacturer>{x(ident.manufacturer)}</tds:Manufacturer>"
            f"<tds:Model>{x(ident.model)}</tds:Model>"
            f"<tds:FirmwareVersion>{x(ident.firmware)}</tds:FirmwareVersion>"
            f"<tds:SerialNumber>{x(ident.serial)}</tds:SerialNumber>"
            f"<tds:HardwareId>{x(ident.hardware_id)}</tds:HardwareId>"
            "</tds:GetDeviceInformationResponse>"
        )

    def caps_device() -> str:
        return (
            f"<tt:Device><tt:XAddr>{x(_xaddr(state, 'device'))}</tt:XAddr>"
            "<tt:Network><tt:IPFilter>false</tt:IPFilter>"
            "<tt:ZeroConfiguration>false</tt:ZeroConfiguration>"
            "<tt:IPVersion6>false</tt:IPVersion6><tt:DynDNS>false</tt:DynDNS></tt:Network>"
            "<tt:System><tt:DiscoveryResolve>false</tt:DiscoveryResolve>"
            "<tt:DiscoveryBye>true</tt:DiscoveryBye><tt:RemoteDiscovery>false</tt:RemoteDiscovery>"
            "<tt:SystemBackup>false</tt:SystemBackup><tt:SystemLogging>false</tt:SystemLogging>"
            "<tt:FirmwareUpgrade>false</tt:FirmwareUpgrade>"
            f"<tt:SupportedVersions>{_version(2, 60)}</tt:SupportedVersions>"
            f"<tt:SupportedVersions>{_version(2, 0)}</tt:SupportedVersions></tt:System>"
            f"<tt:IO><tt:InputConnectors>{len(state.inputs)}</tt:InputConnectors>"
            f"<tt:RelayOutputs>{len(state.relays)}</tt:RelayOutputs></tt:IO>"
            "<tt:Security><tt:TLS1.1>false</tt:TLS1.1><tt:TLS1.2>false</tt:TLS1.2>"
            "<tt:OnboardKeyGeneration>false</tt:OnboardKeyGeneration>"
            "<tt:AccessPolicyConfig>false</tt:AccessPolicyConfig>"
            "<tt:X.509Token>false</tt:X.509Token><tt:SAMLToken>false</tt:SAMLToken>"
            "<tt:KerberosToken>false</tt:KerberosToken><tt:RELToken>false</tt:RELToken>"
            "</tt:Security></tt:Device>"
        )

    def caps_events() -> str:
        return (
            f"<tt:Events><tt:XAddr>{x(_xaddr(state, 'events'))}</tt:XAddr>"
            "<tt:WSSubscriptionPolicySupport>false</tt:WSSubscriptionPolicySupport>"
            "<tt:WSPullPointSupport>true</tt:WSPullPointSupport>"
            "<tt:WSPausableSubscriptionManagerInterfaceSupport>false"
            "</tt:WSPausableSubscriptionManagerInterfaceSupport></tt:Events>"
        )

    def caps_media() -> str:
        return (
            f"<tt:Media><tt:XAddr>{x(_xaddr(state, 'media'))}</tt:XAddr>"
            "<tt:StreamingCapabilities><tt:RTPMulticast>false</tt:RTPMulticast>"
            "<tt:RTP_TCP>true</tt:RTP_TCP><tt:RTP_RTSP_TCP>true</tt:RTP_RTSP_TCP>"
            "</tt:StreamingCapabilities>"
            "<tt:Extension><tt:ProfileCapabilities><tt:MaximumNumberOfProfiles>"
            f"{len(state.profiles)}</tt:MaximumNumberOfProfiles></tt:ProfileCapabilities>"
            "</tt:Extension></tt:Media>"
        )

    def caps_ptz() -> str:
        if state.ptz is None:
            return ""
        return f"<tt:PTZ><tt:XAddr>{x(_xaddr(state, 'ptz'))}</tt:XAddr></tt:PTZ>"

    def caps_extension() -> str:
        return (
            f"<tt:Extension><tt:DeviceIO><tt:XAddr>{x(_xaddr(state, 'deviceio'))}</tt:XAddr>"
            "<tt:VideoSources>1</tt:VideoSources><tt:VideoOutputs>0</tt:VideoOutputs>"
            "<tt:AudioSources>1</tt:AudioSources><tt:AudioOutputs>0</tt:AudioOutputs>"
            f"<tt:RelayOutputs>{len(state.relays)}</tt:RelayOutputs></tt:DeviceIO></tt:Extension>"
        )

    async def get_capabilities(req: Request) -> str:
        categories = [
            (c.text or "").strip() for c in req.body if c.tag.endswith("Category")
        ] or ["All"]
        parts: list[str] = []
        for category in categories:
            if category == "All":
                parts = [caps_device(), caps_events(), caps_media(), caps_ptz(), caps_extension()]
                break
            if category == "Device":
                parts.append(caps_device())
            elif category == "Events":
                parts.append(caps_events())
            elif category == "Media":
                parts.append(caps_media())
            elif category == "PTZ" and state.ptz is not None:
                parts.append(caps_ptz())
            else:
                raise SoapFault(
                    f"capability category {category!r} not supported",
                    code="Receiver", subcodes=("ter:ActionNotSupported", "ter:NoSuchService"),
                )
        return (
            "<tds:GetCapabilitiesResponse><tds:Capabilities>"
            + "".join(parts)
            + "</tds:Capabilities></tds:GetCapabilitiesResponse>"
        )

    async def get_services(req: Request) -> str:
        include = (text_local(req.body, "IncludeCapability", default="false") or "") == "true"
        from camsim.onvif import events, media, ptz

        entries = [
            ("device", NS["tds"], device_service_capabilities(state)),
            ("media", NS["trt"], media.service_capabilities(state)),
            ("events", NS["tev"], events.service_capabilities()),
            ("deviceio", NS["tmd"], deviceio.service_capabilities(state)),
        ]
        if state.ptz is not None:
            entries.insert(2, ("ptz", NS["tptz"], ptz.service_capabilities()))
        out = ["<tds:GetServicesResponse>"]
        for name, namespace, caps in entries:
            out.append(
                f"<tds:Service><tds:Namespace>{namespace}</tds:Namespace>"
                f"<tds:XAddr>{x(_xaddr(state, name))}</tds:XAddr>"
                + (f"<tds:Capabilities>{caps}</tds:Capabilities>" if include else "")
                + f"<tds:Version>{_version(2, 60)}</tds:Version></tds:Service>"
            )
        out.append("</tds:GetServicesResponse>")
        return "".join(out)

    async def get_service_capabilities(req: Request) -> str:
        return (
            "<tds:GetServiceCapabilitiesResponse>"
            + device_service_capabilities(state)
            + "</tds:GetServiceCapabilitiesResponse>"
        )

    async def get_scopes(req: Request) -> str:
        return (
            "<tds:GetScopesResponse>"
            + "".join(
                f"<tds:Scopes><tt:ScopeDef>{d}</tt:ScopeDef><tt:ScopeItem>{x(i)}</tt:ScopeItem>"
                "</tds:Scopes>"
                for d, i in scopes(state)
            )
            + "</tds:GetScopesResponse>"
        )

    async def get_network_interfaces(req: Request) -> str:
        host = state.base_url().split("//", 1)[1].rsplit(":", 1)[0]
        prefix = 8 if host.startswith("127.") else 24
        return (
            '<tds:GetNetworkInterfacesResponse><tds:NetworkInterfaces token="eth0">'
            "<tt:Enabled>true</tt:Enabled>"
            f"<tt:Info><tt:Name>eth0</tt:Name><tt:HwAddress>{x(state.identity.mac)}</tt:HwAddress>"
            "<tt:MTU>1500</tt:MTU></tt:Info>"
            "<tt:Link><tt:AdminSettings><tt:AutoNegotiation>true</tt:AutoNegotiation>"
            "<tt:Speed>100</tt:Speed><tt:Duplex>Full</tt:Duplex></tt:AdminSettings>"
            "<tt:OperSettings><tt:AutoNegotiation>true</tt:AutoNegotiation>"
            "<tt:Speed>100</tt:Speed><tt:Duplex>Full</tt:Duplex></tt:OperSettings>"
            "<tt:InterfaceType>6</tt:InterfaceType></tt:Link>"
            "<tt:IPv4><tt:Enabled>true</tt:Enabled><tt:Config>"
            f"<tt:Manual><tt:Address>{x(host)}</tt:Address>"
            f"<tt:PrefixLength>{prefix}</tt:PrefixLength></tt:Manual>"
            "<tt:DHCP>false</tt:DHCP></tt:Config></tt:IPv4>"
            "</tds:NetworkInterfaces></tds:GetNetworkInterfacesResponse>"
        )

    async def get_hostname(req: Request) -> str:
        return (
            "<tds:GetHostnameResponse><tds:HostnameInformation><tt:FromDHCP>false</tt:FromDHCP>"
            f"<tt:Name>{x(state.hostname or state.identity.name)}</tt:Name>"
            "</tds:HostnameInformation></tds:GetHostnameResponse>"
        )

    async def set_hostname(req: Request) -> str:
        name = text_local(req.body, "Name")
        if not name:
            raise SoapFault("empty hostname", subcodes=("ter:InvalidArgVal", "ter:InvalidHostname"))
        state.hostname = name
        return "<tds:SetHostnameResponse/>"

    async def get_ntp(req: Request) -> str:
        manual = "".join(
            f"<tt:NTPManual><tt:Type>IPv4</tt:Type><tt:IPv4Address>{x(s)}</tt:IPv4Address>"
            "</tt:NTPManual>"
            if s.replace(".", "").isdigit()
            else f"<tt:NTPManual><tt:Type>DNS</tt:Type><tt:DNSname>{x(s)}</tt:DNSname></tt:NTPManual>"
            for s in state.ntp.servers
        )
        return (
            "<tds:GetNTPResponse><tds:NTPInformation>"
            f"<tt:FromDHCP>{x(state.ntp.from_dhcp)}</tt:FromDHCP>{manual}"
            "</tds:NTPInformation></tds:GetNTPResponse>"
        )

    async def set_ntp(req: Request) -> str:
        state.ntp.from_dhcp = (text_local(req.body, "FromDHCP", default="false") == "true")
        servers: list[str] = []
        for child in req.body:
            if child.tag.endswith("NTPManual"):
                value = (text_local(child, "IPv4Address") or text_local(child, "DNSname")
                         or text_local(child, "IPv6Address"))
                if value:
                    servers.append(value)
        state.ntp.servers = servers
        return "<tds:SetNTPResponse/>"

    async def system_reboot(req: Request) -> str:
        logger.info("%s: SystemReboot requested", state.identity.name)
        state.on_reboot()
        return (
            f"<tds:SystemRebootResponse><tds:Message>{REBOOT_MESSAGE}</tds:Message>"
            "</tds:SystemRebootResponse>"
        )

    async def get_relay_outputs(req: Request) -> str:
        return (
            "<tds:GetRelayOutputsResponse>"
            + "".join(deviceio.relay_xml(r, "tds:RelayOutputs") for r in state.relays)
            + "</tds:GetRelayOutputsResponse>"
        )

    async def set_relay_output_state(req: Request) -> str:
        deviceio.set_relay_state(state, req)
        return "<tds:SetRelayOutputStateResponse/>"

    async def set_relay_output_settings(req: Request) -> str:
        deviceio.set_relay_settings(state, req)
        return "<tds:SetRelayOutputSettingsResponse/>"

    svc.op("GetSystemDateAndTime", get_system_date_and_time, public=True)
    svc.op("SetSystemDateAndTime", set_system_date_and_time)
    svc.op("GetDeviceInformation", get_device_information)
    svc.op("GetCapabilities", get_capabilities)
    svc.op("GetServices", get_services)
    svc.op("GetServiceCapabilities", get_service_capabilities)
    svc.op("GetScopes", get_scopes)
    svc.op("GetNetworkInterfaces", get_network_interfaces)
    svc.op("GetHostname", get_hostname)
    svc.op("SetHostname", set_hostname)
    svc.op("GetNTP", get_ntp)
    svc.op("SetNTP", set_ntp)
    svc.op("SystemReboot", system_reboot)
    svc.op("GetRelayOutputs", get_relay_outputs)
    svc.op("SetRelayOutputState", set_relay_output_state)
    svc.op("SetRelayOutputSettings", set_relay_output_settings)
    return svc
