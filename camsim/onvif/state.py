"""What one virtual camera knows about itself: identity, clock, encoders, PTZ, relays, inputs.

Plain dataclasses and small state machines, no SOAP. The services in this package read and change
them; :class:`camsim.camera.VirtualCamera` builds one :class:`CameraState` and fills in the hooks
that need the network (URLs of its own services, the RTSP server, reboot).
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from vms.clock import Clock

logger = logging.getLogger(__name__)

US = 1_000_000


@dataclass
class Identity:
    name: str
    mac: str
    serial: str
    manufacturer: str = "CamSim"
    model: str = "CS-2100"
    firmware: str = "V2.4.1 build 250301"
    hardware_id: str = "CS2100-A"
    location: str = "courtyard"


@dataclass(frozen=True)
class EncoderOptions:
    """What SetVideoEncoderConfiguration accepts; anything else is clamped or refused."""

    resolutions: tuple[tuple[int, int], ...]
    quality_min: float = 1.0
    quality_max: float = 10.0
    frame_rate_min: int = 1
    frame_rate_max: int = 25
    encoding_interval_min: int = 1
    encoding_interval_max: int = 1
    bitrate_min_kbps: int = 256
    bitrate_max_kbps: int = 8192
    gov_min: int = 1
    gov_max: int = 150
    h264_profiles: tuple[str, ...] = ("Baseline", "Main", "High")


MAIN_OPTIONS = EncoderOptions(resolutions=((1920, 1080), (1280, 720)))
SUB_OPTIONS = EncoderOptions(
    resolutions=((640, 360), (352, 288)), bitrate_min_kbps=64, bitrate_max_kbps=2048
)


def _clamp(value: float, low: float, high: float) -> float:
    return max(low, min(high, value))


@dataclass
class VideoEncoder:
    token: str
    name: str
    width: int
    height: int
    quality: float
    frame_rate_limit: int
    encoding_interval: int
    bitrate_limit_kbps: int
    gov_length: int
    h264_profile: str
    options: EncoderOptions
    use_count: int = 1
    session_timeout_s: int = 60

    def apply(self, *, width: int, height: int, quality: float, frame_rate_limit: int,
              encoding_interval: int, bitrate_limit_kbps: int, gov_length: int,
              h264_profile: str | None, name: str | None) -> None:
        """Store a new setting the way cameras do: clamp numbers, refuse unknown sizes.

        Raises ValueError for a resolution that is not one of the options (cameras answer
        ``ter:ConfigModify`` there).
        """
        opts = self.options
        if (width, height) not in opts.resolutions:
            raise ValueError(f"resolution {width}x{height} is not one of {opts.resolutions}")
        self.width, self.height = width, height
        self.quality = _clamp(quality, opts.quality_min, opts.quality_max)
        self.frame_rate_limit = int(_clamp(frame_rate_limit, opts.frame_rate_min, opts.frame_rate_max))
        self.encoding_interval = int(
            _clamp(encoding_interval, opts.encoding_interval_min, opts.encoding_interval_max)
        )
        self.bitrate_limit_kbps = int(
            _clamp(bitrate_limit_kbps, opts.bitrate_min_kbps, opts.bitrate_max_kbps)
        )
        self.gov_length = int(_clamp(gov_length, opts.gov_min, opts.gov_max))
        if h264_profile in opts.h264_profiles:
            self.h264_profile = h264_profile
        if name:
            self.name = name


@dataclass
class Profile:
    token: str
    name: str
    stream_path: str
    encoder: VideoEncoder
    ptz: bool


@dataclass
class Relay:
    token: str
    mode: str = "Bistable"
    delay_s: float = 5.0
    idle_state: str = "closed"
    active: bool = False
    monostable: bool = True
    """Whether SetRelayOutputSettings accepts Mode Monostable (the relay then returns to inactive
    by itself ``delay_s`` after being set active); False: a relay that only knows Bistable."""


@dataclass
class DigitalInput:
    token: str
    idle_state: str = "closed"
    active: bool = False


@dataclass
class PtzVector:
    pan: float = 0.0
    tilt: float = 0.0
    zoom: float = 0.0

    def clamped(self) -> PtzVector:
        return PtzVector(
            _clamp(self.pan, -1.0, 1.0), _clamp(self.tilt, -1.0, 1.0), _clamp(self.zoom, 0.0, 1.0)
        )


@dataclass
class Preset:
    token: str
    name: str
    position: PtzVector


class PtzState:
    """Pan/tilt/zoom in ONVIF generic spaces; a continuous move is integrated when read.

    Velocity 1.0 moves one unit of the generic space per second (so a full pan from -1 to 1 at
    full speed takes two seconds). Time comes from the camera's monotonic clock.
    """

    UNITS_PER_S = 1.0
    CALLS_KEPT = 512

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._base = PtzVector()
        self._base_us = clock.monotonic_us()
        self._velocity = PtzVector()
        self._until_us: int | None = None
        self.home = PtzVector()
        self.presets: dict[str, Preset] = {}
        self._next_preset = 1
        self.calls: deque[tuple[str, int]] = deque(maxlen=self.CALLS_KEPT)
        """(operation, wall-clock µs it arrived) of the last moves and stops, oldest first."""

    def record(self, operation: str) -> None:
        self.calls.append((operation, self._clock.now_us()))

    def position(self) -> PtzVector:
        now_us = self._clock.monotonic_us()
        end_us = now_us if self._until_us is None else min(now_us, self._until_us)
        dt_s = max(0, end_us - self._base_us) / US * self.UNITS_PER_S
        v = self._velocity
        return PtzVector(
            self._base.pan + v.pan * dt_s, self._base.tilt + v.tilt * dt_s, self._base.zoom + v.zoom * dt_s
        ).clamped()

    def moving(self) -> tuple[bool, bool]:
        """(pan/tilt moving, zoom moving)."""
        now_us = self._clock.monotonic_us()
        if self._until_us is not None and now_us >= self._until_us:
            return False, False
        pos, v = self.position(), self._velocity
        pt = (v.pan > 0 and pos.pan < 1) or (v.pan < 0 and pos.pan > -1) or (
            v.tilt > 0 and pos.tilt < 1) or (v.tilt < 0 and pos.tilt > -1)
        zoom = (v.zoom > 0 and pos.zoom < 1) or (v.zoom < 0 and pos.zoom > 0)
        return pt, zoom

    def _rebase(self, position: PtzVector) -> None:
        self._base = position.clamped()
        self._base_us = self._clock.monotonic_us()

    def continuous_move(self, velocity: PtzVector, timeout_s: float | None) -> None:
        self._rebase(self.position())
        self._velocity = velocity
        self._until_us = None if timeout_s is None else self._base_us + int(timeout_s * US)

    def stop(self, pan_tilt: bool = True, zoom: bool = True) -> None:
        self._rebase(self.position())
        v = self._velocity
        self._velocity = PtzVector(0.0 if pan_tilt else v.pan, 0.0 if pan_tilt else v.tilt,
                                   0.0 if zoom else v.zoom)

    def absolute_move(self, target: PtzVector) -> None:
        self._velocity = PtzVector()
        self._until_us = None
        self._rebase(target)

    def relative_move(self, delta: PtzVector) -> None:
        pos = self.position()
        self.absolute_move(PtzVector(pos.pan + delta.pan, pos.tilt + delta.tilt, pos.zoom + delta.zoom))

    def set_preset(self, name: str | None, token: str | None) -> str:
        if token is None or token not in self.presets:
            token = token or f"Preset_{self._next_preset}"
            self._next_preset += 1
        self.presets[token] = Preset(token, name or token, self.position())
        return token


@dataclass
class NtpSettings:
    from_dhcp: bool = False
    servers: list[str] = field(default_factory=lambda: ["pool.ntp.org"])


@dataclass
class CameraState:
    """Everything the SOAP services read and change; hooks are filled by VirtualCamera."""

    identity: Identity
    clock: Clock
    profiles: list[Profile]
    relays: list[Relay]
    inputs: list[DigitalInput]
    ptz: PtzState | None
    audio: str = "aac"
    clock_offset_us: int = 0
    hostname: str = ""
    ntp: NtpSettings = field(default_factory=NtpSettings)
    date_time_type: str = "NTP"
    tz: str = "UTC0"
    snapshot_uri: str = ""  # GetSnapshotUri's answer when set (else the camera's own endpoint)
    # hooks
    base_url: Callable[[], str] = lambda: "http://127.0.0.1"
    rtsp_url: Callable[[str], str] = lambda path: f"rtsp://127.0.0.1:554{path}"
    on_relay_change: Callable[[Relay], None] = lambda relay: None
    """Called after every change of a relay's state (the camera publishes the event, records it
    in its history and, for a monostable relay set active, arms the return to inactive)."""
    on_reboot: Callable[[], None] = lambda: None

    def now_us(self) -> int:
        """The camera's own wall clock (the machine clock plus its offset)."""
        return self.clock.now_us() + self.clock_offset_us

    def profile(self, token: str | None) -> Profile | None:
        return next((p for p in self.profiles if p.token == token), None)

    def encoder(self, token: str | None) -> VideoEncoder | None:
        return next((p.encoder for p in self.profiles if p.encoder.token == token), None)

    def relay(self, token: str | None) -> Relay | None:
        return next((r for r in self.relays if r.token == token), None)


def default_profiles() -> list[Profile]:
    main = VideoEncoder("VideoEncoderToken_1", "VideoEncoder_1", 1920, 1080, 5.0, 25, 1, 4096, 50,
                        "Main", MAIN_OPTIONS)
    sub = VideoEncoder("VideoEncoderToken_2", "VideoEncoder_2", 640, 360, 3.0, 15, 1, 512, 30,
                       "Main", SUB_OPTIONS)
    return [
        Profile("Profile_1", "mainStream", "/main", main, ptz=True),
        Profile("Profile_2", "subStream", "/sub", sub, ptz=False),
    ]
