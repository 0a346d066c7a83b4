"""Plain frozen dataclasses that leave ``onvif_bridge``: what a camera told us, in our units.

No zeep object, XML element or naive datetime crosses this edge. Instants are integer UTC
microseconds (``*_us``), bit rates kbit/s (``*_kbps``), sizes in pixels. Optional fields are
``None`` when the camera did not say (many fill fields with ``NULL`` or leave them empty).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class EventKind(StrEnum):
    """Normalised event type, matching the ``type`` of the events API."""

    MOTION = "motion"
    DOORBELL = "doorbell"
    PLATE = "plate"
    TAMPER = "tamper"
    RELAY = "relay"
    GENERIC = "generic"


class Status(StrEnum):
    """Outcome of interrogating one camera."""

    OK = "ok"
    UNREACHABLE = "unreachable"
    AUTH_FAILED = "auth_failed"
    CLOCK_SKEW = "clock_skew"
    NO_MEDIA = "no_media"
    BAD_RESPONSE = "bad_response"


@dataclass(frozen=True, slots=True)
class DiscoveredDevice:
    """One device seen by WS-Discovery (a ProbeMatch, or a Hello/Bye announcement)."""

    endpoint: str
    """EndpointReference address, the device's stable identity (``urn:uuid:…``)."""
    xaddrs: tuple[str, ...]
    types: tuple[str, ...]
    scopes: tuple[str, ...]
    sender: str
    """``host:port`` the datagram came from."""
    metadata_version: int | None = None
    name: str | None = None
    """From the ``onvif://www.onvif.org/name/…`` scope, percent-decoded."""
    hardware: str | None = None
    """From the ``onvif://www.onvif.org/hardware/…`` scope."""
    location: str | None = None
    message: str = "ProbeMatch"
    """``ProbeMatch``, ``Hello``, ``Bye``, or ``Unparsed``: a sender whose replies we could not read
    (``error`` says why; ``endpoint`` is ``unparsed:<sender>``)."""
    error: str = ""


@dataclass(frozen=True, slots=True)
class DeviceInformation:
    manufacturer: str
    model: str
    firmware_version: str
    serial_number: str
    hardware_id: str


@dataclass(frozen=True, slots=True)
class SystemDateAndTime:
    utc_us: int | None
    """The camera's UTC clock (one-second resolution), None when it did not send UTCDateTime."""
    date_time_type: str = ""
    """``Manual`` or ``NTP``."""
    daylight_savings: bool | None = None
    time_zone: str = ""
    """POSIX TZ string as the camera sent it (``CST-8``), "" when absent."""


@dataclass(frozen=True, slots=True)
class NetworkInterface:
    token: str
    name: str
    mac: str | None
    """Lower-case ``aa:bb:cc:dd:ee:ff``; None when the camera did not send a valid one."""
    enabled: bool | None
    ipv4: tuple[str, ...] = ()
    dhcp: bool | None = None


@dataclass(frozen=True, slots=True)
class ServiceInfo:
    """One ONVIF service endpoint (from GetServices or GetCapabilities)."""

    name: str
    """Short name: device, media, media2, ptz, events, imaging, deviceio, analytics, recording,
    search, replay, …, or the namespace itself when unknown."""
    namespace: str
    xaddr: str
    version: str = ""


@dataclass(frozen=True, slots=True)
class Capabilities:
    """Which services the device offers and where (GetServices or GetCapabilities)."""

    services: tuple[ServiceInfo, ...]
    input_connectors: int | None = None
    relay_outputs: int | None = None
    pull_point: bool | None = None
    snapshot_uri: bool | None = None

    def xaddr(self, name: str) -> str | None:
        for service in self.services:
            if service.name == name:
                return service.xaddr
        return None

    def has(self, name: str) -> bool:
        return self.xaddr(name) is not None


@dataclass(frozen=True, slots=True)
class VideoEncoderConfig:
    token: str
    name: str = ""
    encoding: str | None = None
    """``H264``, ``H265``, ``JPEG`` or ``MPEG4`` (upper case)."""
    width: int | None = None
    height: int | None = None
    fps: float | None = None
    bitrate_kbps: int | None = None
    gov_length: int | None = None
    quality: float | None = None
    h264_profile: str | None = None


@dataclass(frozen=True, slots=True)
class MediaProfile:
    token: str
    name: str
    encoding: str | None
    width: int | None
    height: int | None
    fps: float | None
    bitrate_kbps: int | None
    gov_length: int | None
    has_ptz: bool
    fixed: bool | None = None
    video_source_token: str | None = None
    encoder: VideoEncoderConfig | None = None
    audio_encoding: str | None = None


@dataclass(frozen=True, slots=True)
class MediaUri:
    uri: str
    invalid_after_connect: bool | None = None
    invalid_after_reboot: bool | None = None
    timeout: str = ""


@dataclass(frozen=True, slots=True)
class OnvifEvent:
    topic: str
    """Topic with the conventional prefix as sent, e.g. ``tns1:VideoSource/MotionAlarm``."""
    utc_time_us: int | None
    property_operation: str
    """``Initialized``, ``Changed``, ``Deleted`` or "" (stateless events)."""
    source: dict[str, str]
    data: dict[str, str]
    kind: EventKind = EventKind.GENERIC
    state: bool | None = None
    """The boolean the event carries (IsMotion, State, LogicalState…), if any."""


@dataclass(frozen=True, slots=True)
class PullMessagesResult:
    current_time_us: int | None
    termination_time_us: int | None
    events: tuple[OnvifEvent, ...]


@dataclass(frozen=True, slots=True)
class Hostname:
    name: str
    from_dhcp: bool | None


@dataclass(frozen=True, slots=True)
class GenericResponse:
    """An answer we read as well-formed SOAP but have no dedicated model for."""

    operation: str
    namespace: str = ""


@dataclass(frozen=True, slots=True)
class RelayOutput:
    """A relay output (a door lock) as GetRelayOutputs reports it, plus what GetRelayOutputOptions
    says it can do (``modes`` empty: the camera did not say)."""

    token: str
    mode: str = ""
    """``Monostable`` or ``Bistable`` (its current setting)."""
    delay_s: float | None = None
    idle_state: str = ""
    """``open`` or ``closed``."""
    modes: tuple[str, ...] = ()
    delay_min_s: float | None = None
    delay_max_s: float | None = None
    delay_choices_s: tuple[float, ...] = ()
    """Discrete DelayTimes, when the camera lists values instead of a range."""

    def monostable_for(self, pulse_s: float) -> bool:
        """Whether a Monostable pulse of ``pulse_s`` seconds may be asked of this relay: the
        options list Monostable with that delay, or (no options) it is set Monostable already."""
        if not self.modes:
            return self.mode == "Monostable"
        if "Monostable" not in self.modes:
            return False
        if self.delay_choices_s:
            return any(abs(c - pulse_s) < 1e-6 for c in self.delay_choices_s)
        low = self.delay_min_s if self.delay_min_s is not None else 0.0
        high = self.delay_max_s if self.delay_max_s is not None else float("inf")
        return low <= pulse_s <= high


@dataclass(frozen=True, slots=True)
class ProfileReport:
    profile: MediaProfile
    stream_uri: str | None
    snapshot_uri: str | None
    error: str | None = None


@dataclass(frozen=True, slots=True)
class DeviceReport:
    """What interrogating one camera found; ``status`` says whether it can be adopted."""

    address: str
    """``host:port`` of the device service, nothing else (the name is :attr:`name`)."""
    status: Status
    message: str
    """One line for a person, e.g. ``camera 10.0.3.17:80: wrong password (ONVIF NotAuthorized)``."""
    xaddr: str = ""
    clock_offset_us: int | None = None
    """Camera clock minus our clock, microseconds (±1 s: the camera answers in whole seconds)."""
    device_info: DeviceInformation | None = None
    mac: str | None = None
    network_interfaces: tuple[NetworkInterface, ...] = ()
    capabilities: Capabilities | None = None
    profiles: tuple[ProfileReport, ...] = ()
    hostname: str | None = None
    date_time: SystemDateAndTime | None = None
    warnings: tuple[str, ...] = field(default=())
    name: str | None = None
    """The name we were given for the device (WS-Discovery's, or the installer's)."""
    relays: tuple[RelayOutput, ...] = ()
    """Relay outputs (door locks), stored at adoption (:mod:`onvif_bridge.relay_ops`)."""
