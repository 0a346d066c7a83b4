"""One virtual ONVIF camera: SOAP services, snapshot endpoint, RTSP, discovery and control API.

:class:`VirtualCamera` assembles the pieces of ``camsim.onvif`` around one
:class:`~camsim.onvif.state.CameraState`, binds them to sockets on the host it was given (loopback
by default; never a real interface unless told), and exposes the test hooks both as Python methods
(:meth:`fire_event`, :meth:`fault`, :meth:`state`, :meth:`set_clock_offset`, :meth:`move_to`) and,
through :mod:`camsim.control`, over HTTP. The RTSP side comes from :mod:`camsim.rtsp` when that
module is available.
"""

from __future__ import annotations

import asyncio
import base64
import collections
import logging
import uuid
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import TracebackType
from typing import Any, Protocol

from aiohttp import web

from camsim.control import build_control_app
from camsim.discovery import DiscoveryResponder
from camsim.onvif import device, deviceio, events, media, ptz
from camsim.onvif.events import EventBroker
from camsim.onvif.http import HttpAuth, SoapApp
from camsim.onvif.state import (
    CameraState,
    DigitalInput,
    Identity,
    PtzState,
    Relay,
    default_profiles,
)
from camsim.onvif.wsse import UsernameTokenChecker
from vms.clock import Clock, SystemClock

logger = logging.getLogger(__name__)

US = 1_000_000
EVENT_TYPES = ("doorbell", "motion", "plate", "tamper")
FAULT_KINDS = ("drop", "refuse", "stall", "reboot", "slow_soap", "bad_xml", "no_long_poll",
               "snapshot_404", "probe_bare", "probe_garbled", "clear")

# 32x18 grey JPEG, used for snapshots when camsim.media (ffmpeg) is not available.
FALLBACK_JPEG = base64.b64decode(
    "/9j//gAQTGF2YzYyLjI4LjEwMgD/2wBDAAgEBAQEBAUFBQUFBQYGBgYGBgYGBgYGBgYHBwcICAgHBwcGBgcHCAgICAkJ"
    "CQgICAgJCQoKCgwMCwsODg4RERT/3QAEAAL/xAGiAAABBQEBAQEBAQAAAAAAAAAAAQIDBAUGBwgJCgsBAAMBAQEBAQEBAQEA"
    "AAAAAAABAgMEBQYHCAkKCxAAAgEDAwIEAwUFBAQAAAF9AQIDAAQRBRIhMUEGE1FhByJxFDKBkaEII0KxwRVS0fAkM2Jyggk"
    "KFhcYGRolJicoKSo0NTY3ODk6Q0RFRkdISUpTVFVWV1hZWmNkZWZnaGlqc3R1dnd4eXqDhIWGh4iJipKTlJWWl5iZmqKjpK"
    "Wmp6ipqrKztLW2t7i5usLDxMXGx8jJytLT1NXW19jZ2uHi4+Tl5ufo6erx8vP09fb3+Pn6EQACAQIEBAMEBwUEBAABAncAA"
    "QIDEQQFITEGEkFRB2FxEyIygQgUQpGhscEJIzNS8BVictEKFiQ04SXxFxgZGiYnKCkqNTY3ODk6Q0RFRkdISUpTVFVWV1hZ"
    "WmNkZWZnaGlqc3R1dnd4eXqCg4SFhoeIiYqSk5SVlpeYmZqio6Slpqeoqaqys7S1tre4ubrCw8TFxsfIycrS09TV1tfY2dr"
    "i4+Tl5ufo6ery8/T19vf4+fr/wAARCAASACADASIAAhEAAxEA/9oADAMBAAIRAxEAPwDmaKKKQgooooA//9DmaKKKACiiig"
    "D/2Q=="
)


class _RtspLike(Protocol):
    time_offset_us: int
    username: str | None
    password: str | None

    @property
    def port(self) -> int: ...
    @property
    def session_count(self) -> int: ...
    def url(self, path: str) -> str: ...
    def add_stream(self, path: str, spec: Any) -> None: ...
    async def start(self) -> None: ...
    async def stop(self) -> None: ...
    def drop_sessions(self) -> None: ...
    def refuse(self, seconds: float) -> None: ...
    def stall(self, seconds: float) -> None: ...
    def backchannel_state(self) -> dict[str, Any]: ...


@dataclass(frozen=True)
class CameraOptions:
    """How one virtual camera is built. Ports 0 mean "any free port"."""

    name: str = "camsim-01"
    mac: str = "02:00:5e:00:00:01"
    serial: str = "CS2100-0000001"
    endpoint_uuid: str = field(default_factory=lambda: str(uuid.uuid4()))
    host: str = "127.0.0.1"
    http_port: int = 0
    rtsp_port: int = 0
    discovery_port: int = 0
    control_port: int = 0
    username: str = "admin"
    password: str = "admin"  # noqa: S105 - a default test camera login, like factory firmware
    manufacturer: str = "CamSim"
    model: str = "CS-2100"
    firmware: str = "V2.4.1 build 250301"
    location: str = "courtyard"
    clock_offset_s: float = 0.0
    audio: str = "aac"  # "aac" or "pcmu"
    ptz: bool = True
    relays: int = 1
    relay_monostable: bool = True
    """False: the relays refuse Mode Monostable (a client must set them inactive itself)."""
    inputs: int = 1
    rtsp: bool | None = None  # None: serve RTSP when camsim.rtsp is importable
    backchannel: bool = True
    """An ONVIF audio backchannel (a loudspeaker) on the RTSP streams; False: DESCRIBE with
    ``Require: www.onvif.org/ver20/backchannel`` answers 551."""
    multicast: bool = False  # WS-Discovery Hello/Bye + group membership; namespaces only
    multicast_interface: str | None = None
    reboot_s: float = 2.0
    cache_dir: Path | None = None
    pull_point: bool = True
    """False: CreatePullPointSubscription answers ActionNotSupported (no PullPoint events)."""
    hostname: str = ""
    """What GetHostname answers (empty: the camera's name); real cameras often say "localhost"."""
    snapshot_uri: str = ""
    """GetSnapshotUri answers this URL instead of the camera's own (a hostile or misconfigured
    camera naming another host); empty: the camera's own snapshot endpoint."""

    def __post_init__(self) -> None:
        if self.audio not in ("aac", "pcmu"):
            raise ValueError(f"camera {self.name!r}: audio must be 'aac' or 'pcmu', not {self.audio!r}")
        if self.relays < 0 or self.inputs < 0:
            raise ValueError(f"camera {self.name!r}: relays and inputs must be >= 0")


class VirtualCamera:
    """A running virtual camera. ``async with VirtualCamera(opts) as cam: ...``."""

    def __init__(self, options: CameraOptions | None = None, *, clock: Clock | None = None,
                 **overrides: Any) -> None:
        opts = replace(options or CameraOptions(), **overrides)
        self.options = opts
        self.name = opts.name
        self.clock: Clock = clock or SystemClock()
        self.host = opts.host
        self.username = opts.username
        self.password = opts.password
        self._http_port = opts.http_port
        self.state_model = CameraState(
            identity=Identity(
                name=opts.name, mac=opts.mac, serial=opts.serial, manufacturer=opts.manufacturer,
                model=opts.model, firmware=opts.firmware, location=opts.location,
            ),
            clock=self.clock,
            profiles=default_profiles(),
            relays=[Relay(f"RelayOutputToken_{i + 1}", monostable=opts.relay_monostable)
                    for i in range(opts.relays)],
            inputs=[DigitalInput(f"DigitalInputToken_{i + 1}") for i in range(opts.inputs)],
            ptz=PtzState(self.clock) if opts.ptz else None,
            audio=opts.audio,
            clock_offset_us=int(opts.clock_offset_s * US),
            snapshot_uri=opts.snapshot_uri,
            hostname=opts.hostname,
        )
        if not opts.ptz:
            for profile in self.state_model.profiles:
                profile.ptz = False
        st = self.state_model
        st.base_url = lambda: f"http://{self._url_host()}:{self._http_port}"
        st.rtsp_url = self._rtsp_url
        st.on_relay_change = self._relay_changed
        st.on_reboot = lambda: self._spawn(self._reboot(self.options.reboot_s))
        self.broker = EventBroker(opts.name, st.now_us)
        self._initial_event_states()
        self.checker = UsernameTokenChecker(opts.name, st.now_us, opts.username, opts.password)
        self.soap = SoapApp(opts.name, self.checker, monotonic_us=self.clock.monotonic_us,
                            after_request=self._sync_rtsp_clock)
        self.http_auth = HttpAuth(opts.name, lambda: self.username, lambda: self.password)
        self.soap.mount(device.SERVICE_PATHS["device"], device.build(st))
        self.soap.mount(device.SERVICE_PATHS["media"], media.build(st))
        if st.ptz is not None:
            self.soap.mount(device.SERVICE_PATHS["ptz"], ptz.build(st))
        event_svc, sub_svc = events.build(st, self.broker, pull_point=opts.pull_point)
        self.soap.mount(device.SERVICE_PATHS["events"], event_svc)
        self.soap.mount(events.SUBSCRIPTION_PATH, sub_svc, prefix=True)
        self.soap.mount(device.SERVICE_PATHS["deviceio"], deviceio.build(st))
        self.rtsp: _RtspLike | None = None
        self.discovery = DiscoveryResponder(
            name=opts.name,
            endpoint_uuid=opts.endpoint_uuid,
            xaddrs=lambda: [self.onvif_url],
            scopes=lambda: [item for _, item in device.scopes(self.state_model)],
            host=opts.host,
            port=opts.discovery_port,
            multicast=opts.multicast,
            interface=opts.multicast_interface,
            reply_style=self._probe_style,
        )
        self._fault_until_us: dict[str, int] = {}
        self._runner: web.AppRunner | None = None
        self._site: web.TCPSite | None = None
        self._control_runner: web.AppRunner | None = None
        self._control_port = 0
        self._tasks: set[asyncio.Task[None]] = set()
        self._snapshot_cache: dict[str, bytes] = {}
        self._relay_timers: dict[str, asyncio.TimerHandle] = {}
        self.relay_history: collections.deque[dict[str, Any]] = collections.deque(maxlen=100)
        """Every relay change, oldest first: token, state, at_us (wall), by (soap or timer)."""
        self.started = False

    # -- lifecycle -------------------------------------------------------------------------------

    async def start(self) -> VirtualCamera:
        opts = self.options
        try:
            await self._start_rtsp()
            app = web.Application()
            app.router.add_post("/onvif/{tail:.*}", self.soap.handle)
            app.router.add_get(media.SNAPSHOT_PATH + "/{token}", self.http_auth.protect(self._snapshot))
            self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
            await self._runner.setup()
            await self._bind_http(self.host, self._http_port)
            control = web.AppRunner(build_control_app(self), access_log=None, shutdown_timeout=1.0)
            await control.setup()
            self._control_runner = control
            control_site = web.TCPSite(control, self.host, opts.control_port)
            await control_site.start()
            self._control_port = _site_port(control_site)
            await self.discovery.start()
        except BaseException:
            await self.stop()
            raise
        self.started = True
        logger.info("%s: ONVIF at %s, discovery %s, control %s", self.name, self.onvif_url,
                    self.discovery.address, self.control_url)
        return self

    async def stop(self) -> None:
        self.started = False
        for handle in self._relay_timers.values():
            handle.cancel()
        self._relay_timers.clear()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        self.broker.drop_all()
        await self.discovery.stop()
        for runner in (self._control_runner, self._runner):
            if runner is not None:
                await runner.cleanup()
        self._runner = self._control_runner = None
        self._site = None
        if self.rtsp is not None:
            await self.rtsp.stop()
            self.rtsp = None

    async def __aenter__(self) -> VirtualCamera:
        return await self.start()

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.stop()

    async def _bind_http(self, host: str, port: int) -> None:
        assert self._runner is not None
        site = web.TCPSite(self._runner, host, port)
        await site.start()
        self._site = site
        self.host = host
        self._http_port = _site_port(site)

    async def _start_rtsp(self) -> None:
        opts = self.options
        if opts.rtsp is False:
            return
        try:
            from camsim.media import MAIN_SPEC, SUB_SPEC
            from camsim.rtsp import RtspServer
        except ImportError:
            if opts.rtsp:
                raise
            logger.warning("%s: camsim.rtsp not available; no RTSP server", self.name)
            return
        server = RtspServer(self.host, opts.rtsp_port, username=self.username,
                            password=self.password, clock=self.clock, cache_dir=opts.cache_dir,
                            backchannel=opts.backchannel)
        server.add_stream("/main", MAIN_SPEC)
        server.add_stream("/sub", SUB_SPEC)
        server.time_offset_us = self.state_model.clock_offset_us
        await server.start()
        self.rtsp = server

    def _spawn(self, coro: Any) -> None:
        task: asyncio.Task[None] = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- addresses -------------------------------------------------------------------------------

    def _url_host(self) -> str:
        return f"[{self.host}]" if ":" in self.host else self.host

    @property
    def http_port(self) -> int:
        return self._http_port

    @property
    def onvif_url(self) -> str:
        return f"http://{self._url_host()}:{self._http_port}{device.SERVICE_PATHS['device']}"

    @property
    def control_url(self) -> str:
        return f"http://{self._url_host()}:{self._control_port}/camsim"

    def _rtsp_url(self, path: str) -> str:
        if self.rtsp is not None:
            return self.rtsp.url(path)
        return f"rtsp://{self._url_host()}:{self.options.rtsp_port or 554}{path}"

    def info(self) -> dict[str, Any]:
        """What ``vms sim --json`` prints for this camera (the public contract)."""
        return {
            "name": self.name,
            "onvif_url": self.onvif_url,
            "discovery": self.discovery.address,
            "username": self.username,
            "password": self.password,
            "rtsp": {"main": self._rtsp_url("/main"), "sub": self._rtsp_url("/sub")},
            "mac": self.state_model.identity.mac,
            "control_url": self.control_url,
        }

    # -- snapshot --------------------------------------------------------------------------------

    def _faulty(self, kind: str) -> bool:
        return self.clock.monotonic_us() < self._fault_until_us.get(kind, 0)

    def _probe_style(self) -> str:
        return ("garbled" if self._faulty("probe_garbled") else
                "bare" if self._faulty("probe_bare") else "normal")

    async def _snapshot(self, request: web.Request) -> web.StreamResponse:
        if self._faulty("snapshot_404"):
            raise web.HTTPNotFound(text="no such page")
        token = request.match_info["token"]
        profile = self.state_model.profile(token)
        if profile is None:
            raise web.HTTPNotFound(text=f"no profile {token}")
        jpeg = self._snapshot_cache.get(profile.stream_path)
        if jpeg is None:
            jpeg = await self._make_snapshot(profile.stream_path)
            self._snapshot_cache[profile.stream_path] = jpeg
        return web.Response(body=jpeg, content_type="image/jpeg")

    async def _make_snapshot(self, stream_path: str) -> bytes:
        if self.options.rtsp is False:
            return FALLBACK_JPEG
        try:
            from camsim.media import MAIN_SPEC, SUB_SPEC, MediaError, snapshot_jpeg
        except ImportError:
            return FALLBACK_JPEG
        spec = MAIN_SPEC if stream_path == "/main" else SUB_SPEC
        try:
            return await snapshot_jpeg(spec, self.options.cache_dir)
        except (MediaError, OSError) as exc:
            logger.warning("%s: snapshot from clip failed (%s); serving a placeholder", self.name,
                           exc)
            return FALLBACK_JPEG

    # -- events ----------------------------------------------------------------------------------

    def _initial_event_states(self) -> None:
        b = self.broker
        b.set_initial(events.MOTION_ALARM, (("Source", events.VIDEO_SOURCE),), (("State", "false"),))
        b.set_initial(events.CELL_MOTION, self._rule_source("MyMotionDetectorRule"),
                      (("IsMotion", "false"),))
        b.set_initial(events.TAMPER, self._rule_source("MyTamperDetectorRule"),
                      (("IsTamper", "false"),))
        for inp in self.state_model.inputs:
            b.set_initial(events.DIGITAL_INPUT, (("InputToken", inp.token),),
                          (("LogicalState", "false"),))
        for relay in self.state_model.relays:
            b.set_initial(events.RELAY, (("RelayToken", relay.token),),
                          (("LogicalState", "inactive"),))

    @staticmethod
    def _rule_source(rule: str) -> tuple[tuple[str, str], ...]:
        return (("VideoSourceConfigurationToken", events.VSC),
                ("VideoAnalyticsConfigurationToken", events.VAC), ("Rule", rule))

    def _relay_changed(self, relay: Relay, by: str = "soap") -> None:
        state = "active" if relay.active else "inactive"
        self.relay_history.append({"token": relay.token, "state": state,
                                   "at_us": self.clock.now_us(), "by": by})
        timer = self._relay_timers.pop(relay.token, None)
        if timer is not None:
            timer.cancel()
        if relay.active and relay.mode == "Monostable":
            self._relay_timers[relay.token] = asyncio.get_running_loop().call_later(
                relay.delay_s, self._relay_timed_out, relay)
        self.broker.publish(events.RELAY, (("RelayToken", relay.token),),
                            (("LogicalState", state),))

    def _relay_timed_out(self, relay: Relay) -> None:
        """A monostable relay's DelayTime is over: back to inactive, as the hardware does."""
        self._relay_timers.pop(relay.token, None)
        if relay.active:
            relay.active = False
            logger.info("%s: relay %s back to inactive after %g s", self.name, relay.token,
                        relay.delay_s)
            self._relay_changed(relay, by="timer")

    def fire_event(self, type: str, state: bool = True, plate: str | None = None,
                   *, country: str = "KZ", confidence: float = 0.93, input_index: int = 0) -> None:
        """Raise an event as the camera's analytics or I/O would (``type`` as in the control API)."""
        flag = "true" if state else "false"
        if type == "doorbell":
            if not self.state_model.inputs:
                raise ValueError(f"camera {self.name!r} has no digital input for a doorbell")
            inp = self.state_model.inputs[input_index]
            inp.active = state
            self.broker.publish(events.DIGITAL_INPUT, (("InputToken", inp.token),),
                                (("LogicalState", flag),))
        elif type == "motion":
            self.broker.publish(events.MOTION_ALARM, (("Source", events.VIDEO_SOURCE),),
                                (("State", flag),))
            self.broker.publish(events.CELL_MOTION, self._rule_source("MyMotionDetectorRule"),
                                (("IsMotion", flag),))
        elif type == "plate":
            self.broker.publish(
                events.LICENSE_PLATE, self._rule_source("MyLicensePlateRule"),
                (("PlateNumber", plate or "123ABC02"), ("Country", country),
                 ("Confidence", f"{confidence:g}")),
                is_property=False,
            )
        elif type == "tamper":
            self.broker.publish(events.TAMPER, self._rule_source("MyTamperDetectorRule"),
                                (("IsTamper", flag),))
        else:
            raise ValueError(f"unknown event type {type!r}; expected one of {EVENT_TYPES}")
        logger.info("%s: fired %s event (state=%s)", self.name, type, state)

    # -- faults ----------------------------------------------------------------------------------

    async def fault(self, kind: str, seconds: float = 0.0) -> None:
        """Inject a failure (see the control API in DESIGN.md); ``clear`` undoes the SOAP ones."""
        if seconds < 0:
            raise ValueError("seconds must be >= 0")
        if kind == "reboot":
            self._spawn(self._reboot(seconds or self.options.reboot_s))
        elif kind == "slow_soap":
            self.soap.soap_delay_s = seconds
        elif kind == "bad_xml":
            self.soap.bad_xml_until_us = self.clock.monotonic_us() + int(seconds * US)
        elif kind == "no_long_poll":
            self.broker.no_long_poll_until_us = self.state_model.now_us() + int(seconds * US)
        elif kind in ("snapshot_404", "probe_bare", "probe_garbled"):
            self._fault_until_us[kind] = self.clock.monotonic_us() + int(seconds * US)
        elif kind == "clear":
            self._fault_until_us.clear()
            self.soap.soap_delay_s = 0.0
            self.soap.bad_xml_until_us = 0
            self.broker.no_long_poll_until_us = 0
        elif kind in ("drop", "refuse", "stall"):
            if self.rtsp is None:
                raise ValueError(f"camera {self.name!r} has no RTSP server for fault {kind!r}")
            if kind == "drop":
                self.rtsp.drop_sessions()
            elif kind == "refuse":
                self.rtsp.refuse(seconds)
            else:
                self.rtsp.stall(seconds)
        else:
            raise ValueError(f"unknown fault {kind!r}; expected one of {FAULT_KINDS}")
        logger.info("%s: fault %s for %.1f s", self.name, kind, seconds)

    async def _reboot(self, seconds: float) -> None:
        """Drop subscriptions and RTSP sessions, go deaf for ``seconds``, come back on the same port."""
        await asyncio.sleep(0.05)  # let the SystemReboot answer leave first
        logger.info("%s: rebooting for %.1f s", self.name, seconds)
        self.soap.available = False
        self.broker.drop_all()
        if self.rtsp is not None:
            self.rtsp.drop_sessions()
            self.rtsp.refuse(seconds)
        if self._site is not None:
            site, self._site = self._site, None
            await site.stop()
        await asyncio.sleep(seconds)
        if self._runner is not None:
            await self._bind_http(self.host, self._http_port)
        self.soap.available = True
        logger.info("%s: back after reboot", self.name)

    @property
    def rebooting(self) -> bool:
        return not self.soap.available

    # -- clock and addressing --------------------------------------------------------------------

    def set_clock_offset(self, seconds: float) -> None:
        """Make the camera's clock run ``seconds`` ahead (negative: behind) of the host clock."""
        self.state_model.clock_offset_us = int(seconds * US)
        self._sync_rtsp_clock()

    def _sync_rtsp_clock(self) -> None:
        if self.rtsp is not None:
            self.rtsp.time_offset_us = self.state_model.clock_offset_us

    async def move_to(self, host: str, port: int = 0) -> None:
        """Re-bind HTTP (and discovery) at a new address, as after a DHCP change; same MAC."""
        if self._site is not None:
            site, self._site = self._site, None
            await site.stop()
        await self._bind_http(host, port)
        await self.discovery.move_to(host)
        logger.info("%s: moved to %s", self.name, self.onvif_url)

    # -- state -----------------------------------------------------------------------------------

    def state(self) -> dict[str, Any]:
        st = self.state_model
        ptz_state: dict[str, Any] | None = None
        if st.ptz is not None:
            pos = st.ptz.position()
            pt_moving, zoom_moving = st.ptz.moving()
            ptz_state = {"pan": round(pos.pan, 6), "tilt": round(pos.tilt, 6),
                         "zoom": round(pos.zoom, 6), "moving": pt_moving or zoom_moving,
                         "presets": {t: p.name for t, p in st.ptz.presets.items()},
                         "calls": [{"op": op, "at_us": at_us} for op, at_us in st.ptz.calls]}
        return {
            "name": self.name,
            "available": self.soap.available,
            "ptz": ptz_state,
            "relays": {r.token: "active" if r.active else "inactive" for r in st.relays},
            "relay_settings": {r.token: {"mode": r.mode, "delay_s": r.delay_s,
                                         "idle_state": r.idle_state} for r in st.relays},
            "relay_history": list(self.relay_history),
            "inputs": {i.token: i.active for i in st.inputs},
            "subscriptions": len(self.broker.live()),
            "rtsp_sessions": self.rtsp.session_count if self.rtsp is not None else 0,
            "backchannel": self.rtsp.backchannel_state() if self.rtsp is not None else None,
            "clock_offset_s": st.clock_offset_us / US,
            "faults": {"slow_soap_s": self.soap.soap_delay_s,
                       "bad_xml": self.clock.monotonic_us() < self.soap.bad_xml_until_us,
                       "no_long_poll": st.now_us() < self.broker.no_long_poll_until_us},
            "soap_requests": dict(self.soap.requests),
            "encoders": {
                p.encoder.token: {"width": p.encoder.width, "height": p.encoder.height,
                                  "bitrate_kbps": p.encoder.bitrate_limit_kbps,
                                  "gov_length": p.encoder.gov_length}
                for p in st.profiles
            },
            "events": self.broker.states(),
        }


def _site_port(site: web.TCPSite) -> int:
    server = site._server  # aiohttp keeps the asyncio.Server here; the name is the only way in
    sockets = getattr(server, "sockets", None)
    if not sockets:
        raise RuntimeError("site is not listening")
    return int(sockets[0].getsockname()[1])

