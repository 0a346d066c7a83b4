"""ONVIF device/media client: interrogate a camera, change its clock, encoders, name.

Requests are built by onvif-zeep-async (its bundled WSDLs and WS-Security UsernameToken with a
time shift); every answer is read as raw bytes by :mod:`onvif_bridge.parsers`, the same code the
real-camera fixtures test, so no zeep object leaves this module and every failure is one of our
typed errors. Expected failures per operation are ``_EXPECTED`` below; auth errors
(:class:`OnvifAuthError`: don't retry, tell the user) are told apart from "not ready"
(:class:`OnvifUnreachableError`: retry with backoff).

Clock policy (see :data:`MAX_CLOCK_SKEW_S`): GetSystemDateAndTime is asked first without
credentials; the offset (camera − our clock) is measured and, by default, the WS-Security
``Created`` stamp is shifted by it so a skewed camera still accepts our login. A camera more than
60 s off is reported ``clock_skew`` (WS-Security implementations commonly reject stamps a few
seconds to five minutes off, and recordings and events would carry the wrong time); the
installer fixes it with :meth:`OnvifClient.set_system_clock`.

Every answer is read with a byte limit and a time limit (:mod:`onvif_bridge.http`), and requests
go only to the camera's own host. Snapshots (an HTTP GET, not SOAP) are :mod:`onvif_bridge.snapshot`.
Passwords are never logged; URLs are logged through :func:`redact_url`.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import aiohttp
import onvif
import zeep.exceptions
from onvif.client import ONVIFService
from onvif.definition import SERVICES
from onvif.exceptions import ONVIFError

from onvif_bridge.errors import (
    OnvifAuthError,
    OnvifError,
    OnvifFault,
    OnvifHttpStatusError,
    OnvifParseError,
    OnvifTooLargeError,
    OnvifUnreachableError,
)
from onvif_bridge.http import BoundedTransport, onto_host
from onvif_bridge.models import (
    Capabilities,
    DeviceInformation,
    DeviceReport,
    Hostname,
    MediaProfile,
    MediaUri,
    NetworkInterface,
    ProfileReport,
    Status,
    SystemDateAndTime,
    VideoEncoderConfig,
)
from onvif_bridge.parsers import expect, parse_response
from onvif_bridge.relay_ops import list_relays
from onvif_bridge.xml import MAX_XML_BYTES
from vms.clock import Clock, SystemClock, us_to_datetime

logger = logging.getLogger(__name__)

MAX_CLOCK_SKEW_S = 60.0
"""Beyond this the camera is reported ``clock_skew``."""
DEFAULT_TIMEOUT_S = 10.0
_HALF_SECOND_US = 500_000
_WSDL_DIR = Path(onvif.__file__).parent / "wsdl"
_SERVICE_KEYS = {"device": "devicemgmt", "media": "media", "ptz": "ptz", "events": "events",
                 "imaging": "imaging", "deviceio": "deviceio"}
_TRANSPORT_ERRORS = (aiohttp.ClientError, OSError, TimeoutError, ONVIFError, RuntimeError)
# One tuple of expected exceptions per operation kind (callers catch these, nothing broader).
EXPECTED_ERRORS: tuple[type[Exception], ...] = (OnvifError,)
_MIME_RE = re.compile(r"[a-z0-9.+-]{1,40}/[a-z0-9.+-]{1,60}")


def redact_url(url: str) -> str:
    """``rtsp://admin:secret@10.0.3.17/s`` → ``rtsp://***@10.0.3.17/s`` (for logs and messages)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparseable url>"
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    try:
        port = parts.port
    except ValueError:
        port = None
    netloc = f"***@{host}" + (f":{port}" if port else "")
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def device_xaddr(target: str) -> str:
    """The device-service URL for ``http://…``, ``HOST:PORT`` or ``HOST`` (port 80)."""
    target = target.strip()
    if target.startswith(("http://", "https://")):
        return target
    if target.startswith("[") or target.count(":") <= 1:
        return f"http://{target}/onvif/device_service"
    return f"http://[{target}]/onvif/device_service"  # bare IPv6


def _address(xaddr: str) -> str:
    parts = urlsplit(xaddr)
    host = parts.hostname or xaddr
    if ":" in host:
        host = f"[{host}]"
    try:
        port = parts.port
    except ValueError:
        port = None
    return f"{host}:{port or (443 if parts.scheme == 'https' else 80)}"


class OnvifClient:
    """One camera's ONVIF endpoints; use as ``async with OnvifClient(...) as client:``.

    Safe to use for many cameras concurrently (one client per camera). ``timeout_s`` bounds
    each request, ``max_answer_bytes`` each answer (read with the limit: :mod:`onvif_bridge.http`).
    Requests go only to the device's own host: a service address the camera names on another
    host is moved onto the device's ``host:port`` (see :meth:`capabilities`).
    """

    def __init__(
        self,
        xaddr_or_host_port: str,
        username: str,
        password: str,
        *,
        clock: Clock | None = None,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        name: str | None = None,
        compensate_clock: bool = True,
        max_answer_bytes: int = MAX_XML_BYTES,
    ) -> None:
        self.xaddr = device_xaddr(xaddr_or_host_port)
        self.address = _address(self.xaddr)
        self.name = name
        self.label = f"{name!r} ({self.address})" if name else self.address
        self._username = username
        self._password = password
        self._clock = clock or SystemClock()
        self._timeout_s = timeout_s
        self._compensate = compensate_clock
        self._max_answer_bytes = max_answer_bytes
        self._session: aiohttp.ClientSession | None = None
        self._xaddrs: dict[str, str] = {"devicemgmt": self.xaddr}
        self._services: dict[tuple[str, str], ONVIFService] = {}
        self._wsse_shift: dt.timedelta | None = None
        self.clock_offset_us: int | None = None

    async def __aenter__(self) -> OnvifClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def close(self) -> None:
        services, self._services = self._services, {}
        for service in services.values():
            try:
                await service.close()
            except _TRANSPORT_ERRORS as exc:  # closing a dead connection
                logger.debug("camera %s: closing service: %s", self.label, exc)
        session, self._session = self._session, None
        if session is not None:
            await session.close()

    def offers(self, key: str) -> bool:
        """Whether the camera named a ``key`` service (``deviceio``…) in capabilities()."""
        return key in self._xaddrs

    # --- transport ------------------------------------------------------------------------

    def _http(self) -> aiohttp.ClientSession:
        """This client's connection pool (every service of the camera shares it)."""
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(ssl=False, limit_per_host=4),
                timeout=aiohttp.ClientTimeout(total=self._timeout_s,
                                              sock_connect=self._timeout_s),
                cookie_jar=aiohttp.DummyCookieJar(),
            )
        return self._session

    async def _service(self, key: str) -> ONVIFService:
        xaddr = self._xaddrs.get(key)
        if xaddr is None:
            raise OnvifError(f"camera {self.label} offers no {key} service")
        cache_key = (key, xaddr)
        service = self._services.get(cache_key)
        if service is None:
            definition = SERVICES[key]
            binding = "{{{}}}{}".format(definition["ns"], definition["binding"])
            service = ONVIFService(
                xaddr, self._username, self._password, str(_WSDL_DIR / definition["wsdl"]),
                encrypt=True, no_cache=True, dt_diff=self._wsse_shift, binding_name=binding,
            )
            # Before setup(): zeep's clients are built on it, so every call is bounded.
            service.transport = BoundedTransport(self._http(), max_bytes=self._max_answer_bytes)
            await service.setup()
            self._services[cache_key] = service
        return service

    async def call(
        self, key: str, operation: str, params: Mapping[str, Any] | None = None, *,
        auth: bool = True,
    ) -> Any:
        """Send ``operation`` to service ``key`` and parse the answer (see parse_response).

        An HTTP error status is reported as such (:class:`OnvifHttpStatusError`) unless the
        answer is a SOAP fault: an HTML error page is not "hostile XML". An answer longer than
        ``max_answer_bytes`` is cut off (:class:`OnvifTooLargeError`).
        """
        service = await self._service(key)
        client = service.zeep_client if auth else service.zeep_client_authless
        proxy = service.ws_client if auth else service.ws_client_authless
        assert client is not None and proxy is not None
        envelope = client.create_message(proxy, operation, **dict(params or {}))
        headers = {"Content-Type": "application/soap+xml; charset=utf-8"}
        try:
            async with asyncio.timeout(self._timeout_s):
                response = await service.transport.post_xml(service.xaddr, envelope, headers)
        except TimeoutError:
            raise OnvifUnreachableError(
                f"camera {self.label}: no answer to {operation} within {self._timeout_s:g} s"
            ) from None
        except OnvifTooLargeError as exc:
            raise OnvifTooLargeError(f"camera {self.label}: {operation}: {exc.reason}",
                                     exc.limit_bytes) from None
        except _TRANSPORT_ERRORS as exc:
            raise OnvifUnreachableError(
                f"camera {self.label}: cannot reach {redact_url(service.xaddr)} "
                f"({type(exc).__name__}: {exc})"
            ) from None
        status = int(response.status_code)
        content = bytes(response.content or b"")
        if status in (401, 403):
            raise OnvifAuthError(f"camera {self.label}: wrong user name or password (HTTP {status})")
        try:
            result = parse_response(content)
        except OnvifFault as fault:
            if fault.is_auth:
                raise OnvifAuthError(
                    f"camera {self.label}: wrong user name or password "
                    f"(ONVIF {'/'.join(fault.subcodes) or fault.code}: {fault.reason})"
                ) from None
            raise
        except OnvifParseError as exc:
            if status >= 300:  # an error page, not SOAP: its status is the news, not its body
                raise self._status_error(operation, status, response.headers) from None
            raise OnvifParseError(
                f"camera {self.label}: unreadable answer to {operation} (HTTP {status}): "
                f"{exc.reason}"
            ) from None
        if status >= 300:
            raise self._status_error(operation, status, response.headers)
        return result

    def _status_error(self, operation: str, status: int,
                      headers: Mapping[str, str]) -> OnvifHttpStatusError:
        kind = str(headers.get("Content-Type", "")).split(";", 1)[0].strip().lower()
        what = f"{kind} answer" if _MIME_RE.fullmatch(kind) else "an answer"
        return OnvifHttpStatusError(
            f"camera {self.label}: HTTP {status} to {operation} ({what}, not SOAP)", status)

    # --- clock ----------------------------------------------------------------------------

    async def measure_clock(self) -> SystemDateAndTime:
        """Ask the time without credentials (ONVIF allows it), set ``clock_offset_us`` and the
        WS-Security time shift. Some firmware (DVC) wants a login even for this; then we retry
        with one."""
        before_us = self._clock.now_us()
        try:
            answer = await self.call("devicemgmt", "GetSystemDateAndTime", auth=False)
        except OnvifAuthError:
            answer = await self.call("devicemgmt", "GetSystemDateAndTime")
        after_us = self._clock.now_us()
        value: SystemDateAndTime = expect(answer, SystemDateAndTime, "GetSystemDateAndTime")
        if value.utc_us is None:
            logger.warning("camera %s: GetSystemDateAndTime without UTC time", self.label)
            return value
        # The camera answers in whole seconds (truncated): its true time is on average half a
        # second later than it says. Error bound: ±0.5 s plus half the round trip.
        self.clock_offset_us = value.utc_us + _HALF_SECOND_US - (before_us + after_us) // 2
        if self._compensate:
            # zeep stamps WS-Security "Created" from the host's system clock, so the shift is
            # measured against that clock (equal to ours unless a test injects a fake one).
            system_now_us = int(dt.datetime.now(dt.UTC).timestamp() * 1_000_000)
            shift_us = value.utc_us + _HALF_SECOND_US - system_now_us
            self._wsse_shift = dt.timedelta(microseconds=shift_us)
            for service in self._services.values():
                await service.close()
            self._services.clear()
        return value

    async def set_system_clock(self) -> SystemDateAndTime:
        """SetSystemDateAndTime Manual, UTC = our clock; returns the camera's time re-read."""
        now = us_to_datetime(self._clock.now_us())
        await self.call("devicemgmt", "SetSystemDateAndTime", {
            "DateTimeType": "Manual",
            "DaylightSavings": False,
            "UTCDateTime": {
                "Date": {"Year": now.year, "Month": now.month, "Day": now.day},
                "Time": {"Hour": now.hour, "Minute": now.minute, "Second": now.second},
            },
        })
        logger.info("camera %s: clock set to our UTC time", self.label)
        return await self.measure_clock()

    async def set_ntp(self, servers: list[str], *, from_dhcp: bool = False) -> None:
        manual = []
        for server in servers:
            kind = "IPv4" if server.replace(".", "").isdigit() else "DNS"
            entry: dict[str, str] = {"Type": kind}
            entry["IPv4Address" if kind == "IPv4" else "DNSname"] = server
            manual.append(entry)
        await self.call("devicemgmt", "SetNTP", {"FromDHCP": from_dhcp, "NTPManual": manual})
        await self.call("devicemgmt", "SetSystemDateAndTime",
                        {"DateTimeType": "NTP", "DaylightSavings": False})

    # --- device ---------------------------------------------------------------------------

    async def device_information(self) -> DeviceInformation:
        answer = await self.call("devicemgmt", "GetDeviceInformation")
        return expect(answer, DeviceInformation, "GetDeviceInformation")  # type: ignore[no-any-return]

    async def network_interfaces(self) -> tuple[NetworkInterface, ...]:
        answer = await self.call("devicemgmt", "GetNetworkInterfaces")
        return expect(answer, tuple, "GetNetworkInterfaces")  # type: ignore[no-any-return]

    async def hostname(self) -> Hostname:
        return expect(await self.call("devicemgmt", "GetHostname"), Hostname, "GetHostname")  # type: ignore[no-any-return]

    async def set_hostname(self, name: str) -> Hostname:
        await self.call("devicemgmt", "SetHostname", {"Name": name})
        return await self.hostname()

    async def reboot(self) -> None:
        await self.call("devicemgmt", "SystemReboot")
        logger.info("camera %s: reboot requested", self.label)

    async def capabilities(self) -> Capabilities:
        """GetServices, falling back to GetCapabilities; remembers the service addresses."""
        try:
            answer = await self.call("devicemgmt", "GetServices", {"IncludeCapability": True})
            caps: Capabilities = expect(answer, Capabilities, "GetServices")
        except OnvifFault as fault:
            logger.info("camera %s: GetServices refused (%s), using GetCapabilities",
                        self.label, fault)
            caps = None  # type: ignore[assignment]
        if caps is None or not caps.services:
            answer = await self.call("devicemgmt", "GetCapabilities", {"Category": "All"})
            caps = expect(answer, Capabilities, "GetCapabilities")
        for service in caps.services:
            key = _SERVICE_KEYS.get(service.name)
            if key and key != "devicemgmt":
                self._xaddrs[key] = self._on_device_host(
                    f"{service.name} service", service.xaddr, keep_port=False,
                    fallback=self.xaddr)
        return caps

    def _on_device_host(self, what: str, url: str, *, keep_port: bool, fallback: str) -> str:
        """``url`` moved onto the device's host (:func:`onvif_bridge.http.onto_host`: our
        requests and ffmpeg's carry the camera's login); ``fallback`` when it is unreadable."""
        try:
            moved = onto_host(url, self.xaddr, keep_port=keep_port)
        except ValueError:
            logger.warning("camera %s: %s address unreadable; not used", self.label, what)
            return fallback
        if moved != url:
            logger.warning("camera %s: %s named on another host (%s); using %s", self.label,
                           what, redact_url(url), redact_url(moved))
        return moved

    # --- media ----------------------------------------------------------------------------

    async def profiles(self) -> tuple[MediaProfile, ...]:
        return expect(await self.call("media", "GetProfiles"), tuple, "GetProfiles")  # type: ignore[no-any-return]

    async def stream_uri(self, profile_token: str) -> str:
        answer = await self.call("media", "GetStreamUri", {
            "StreamSetup": {"Stream": "RTP-Unicast", "Transport": {"Protocol": "RTSP"}},
            "ProfileToken": profile_token,
        })
        uri = str(expect(answer, MediaUri, "GetStreamUri").uri)
        return self._on_device_host("stream", uri, keep_port=True, fallback="") if uri else uri

    async def snapshot_uri(self, profile_token: str) -> str:
        answer = await self.call("media", "GetSnapshotUri", {"ProfileToken": profile_token})
        return expect(answer, MediaUri, "GetSnapshotUri").uri  # type: ignore[no-any-return]

    async def video_encoder(self, token: str) -> VideoEncoderConfig:
        answer = await self.call("media", "GetVideoEncoderConfiguration",
                                 {"ConfigurationToken": token})
        return expect(answer, VideoEncoderConfig, "GetVideoEncoderConfiguration")  # type: ignore[no-any-return]

    async def set_video_encoder(
        self, profile_token: str, *, width: int | None = None, height: int | None = None,
        fps: float | None = None, bitrate_kbps: int | None = None, gov_length: int | None = None,
    ) -> VideoEncoderConfig:
        """Change the profile's encoder; returns what the camera accepted (re-read after set)."""
        profile = next((p for p in await self.profiles() if p.token == profile_token), None)
        if profile is None or profile.encoder is None:
            raise OnvifError(f"camera {self.label}: no profile {profile_token!r} with an encoder")
        media = await self._service("media")
        assert media.ws_client is not None
        token = profile.encoder.token
        try:
            async with asyncio.timeout(self._timeout_s):
                # The full configuration must be sent back: read it as a zeep object, edit it.
                config = await media.ws_client.GetVideoEncoderConfiguration(
                    ConfigurationToken=token)
                if width is not None and height is not None:
                    config.Resolution.Width, config.Resolution.Height = width, height
                if config.RateControl is not None:
                    if fps is not None:
                        config.RateControl.FrameRateLimit = round(fps)
                    if bitrate_kbps is not None:
                        config.RateControl.BitrateLimit = bitrate_kbps
                if gov_length is not None and config.H264 is not None:
                    config.H264.GovLength = gov_length
                await media.ws_client.SetVideoEncoderConfiguration(
                    Configuration=config, ForcePersistence=True)
        except zeep.exceptions.Fault as fault:
            raise OnvifFault(code=str(fault.code or "Receiver"), reason=str(fault.message)) from None
        except TimeoutError:
            raise OnvifUnreachableError(f"camera {self.label}: encoder change timed out") from None
        except (zeep.exceptions.Error, *_TRANSPORT_ERRORS) as exc:
            raise OnvifUnreachableError(
                f"camera {self.label}: encoder change failed ({type(exc).__name__}: {exc})"
            ) from None
        accepted = await self.video_encoder(token)
        logger.info("camera %s: encoder %s now %sx%s %s fps %s kbps gov %s", self.label, token,
                    accepted.width, accepted.height, accepted.fps, accepted.bitrate_kbps,
                    accepted.gov_length)
        return accepted


def _fail(client: OnvifClient, status: Status, message: str, **fields: Any) -> DeviceReport:
    """A failed interrogation: ``address`` stays a plain ``host:port`` (the name is apart and in
    the message)."""
    logger.warning("camera %s: %s", client.label, message)
    return DeviceReport(address=client.address, name=client.name, status=status, message=message,
                        **fields)


async def interrogate(
    xaddr_or_host_port: str,
    username: str,
    password: str,
    *,
    clock: Clock | None = None,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    name: str | None = None,
    max_clock_skew_s: float = MAX_CLOCK_SKEW_S,
    compensate_clock: bool = True,
) -> DeviceReport:
    """Find out everything needed to adopt a camera; never raises for camera-side problems.

    Status is one of :class:`Status`; ``message`` says what to do. ``timeout_s`` bounds each
    request. With ``compensate_clock=False`` a skewed camera is reported at once (no login tried).
    """
    async with OnvifClient(xaddr_or_host_port, username, password, clock=clock,
                           timeout_s=timeout_s, name=name,
                           compensate_clock=compensate_clock) as client:
        return await _interrogate(client, max_clock_skew_s)


async def _interrogate(client: OnvifClient, max_clock_skew_s: float) -> DeviceReport:
    label = client.label
    base: dict[str, Any] = {"xaddr": client.xaddr}
    warnings: list[str] = []
    skewed = False
    try:
        date_time = await client.measure_clock()
        base.update(date_time=date_time, clock_offset_us=client.clock_offset_us)
        offset = client.clock_offset_us
        if offset is not None and abs(offset) > max_clock_skew_s * 1_000_000:
            skewed = True
            if not client._compensate:
                return _fail(client, Status.CLOCK_SKEW, _skew_message(label, offset), **base)
        info = await client.device_information()
        base["device_info"] = info
        try:
            interfaces = await client.network_interfaces()
            base["network_interfaces"] = interfaces
            base["mac"] = next((i.mac for i in interfaces if i.mac and i.enabled is not False),
                               None)
        except (OnvifFault, OnvifParseError) as exc:
            warnings.append(f"no MAC address: {exc}")
        try:
            base["hostname"] = (await client.hostname()).name or None
        except (OnvifFault, OnvifParseError) as exc:
            warnings.append(f"no hostname: {exc}")
        caps = await client.capabilities()
        base["capabilities"] = caps
        if not caps.has("media"):
            what = "only Media2, which is not supported yet" if caps.has("media2") else "none"
            return _fail(client, Status.NO_MEDIA,
                         f"camera {label}: no ONVIF media service ({what}); cannot stream",
                         warnings=tuple(warnings), **base)
        profiles = await client.profiles()
        reports = []
        for profile in profiles:
            stream = snapshot = None
            error = None
            try:
                stream = await client.stream_uri(profile.token)
            except (OnvifFault, OnvifParseError) as exc:
                error = f"no stream URI: {exc}"
            try:
                snapshot = await client.snapshot_uri(profile.token)
            except (OnvifFault, OnvifParseError) as exc:
                logger.info("camera %s: profile %s has no snapshot URI: %s", label,
                            profile.token, exc)
            reports.append(ProfileReport(profile, stream, snapshot, error))
        base["profiles"] = tuple(reports)
        try:  # door relays: never a reason to refuse a camera (refresh them later)
            base["relays"] = await list_relays(client)
        except OnvifError as exc:
            warnings.append(f"relay outputs not listed: {exc}")
    except OnvifAuthError as exc:
        if skewed:
            return _fail(client, Status.CLOCK_SKEW,
                         _skew_message(label, client.clock_offset_us or 0) + f"; {exc}", **base)
        return _fail(client, Status.AUTH_FAILED, f"camera {label}: wrong password ({_why(exc)})",
                     **base)
    except OnvifUnreachableError as exc:
        return _fail(client, Status.UNREACHABLE, str(exc), **base)
    except OnvifFault as exc:
        return _fail(client, Status.BAD_RESPONSE, f"camera {label}: refused a request ({exc})",
                     **base)
    except OnvifError as exc:
        return _fail(client, Status.BAD_RESPONSE, f"{exc}", **base)
    streams = [r for r in base["profiles"] if r.stream_uri]
    if not streams:
        return _fail(client, Status.NO_MEDIA,
                     f"camera {label}: no media profile with an RTSP stream",
                     warnings=tuple(warnings), **base)
    if skewed:
        return _fail(client, Status.CLOCK_SKEW,
                     _skew_message(label, client.clock_offset_us or 0),
                     warnings=tuple(warnings), **base)
    logger.info("camera %s: interrogated, %d profile(s)", label, len(base["profiles"]))
    return DeviceReport(address=client.address, name=client.name, status=Status.OK,
                        message=f"camera {label}: ok", warnings=tuple(warnings), **base)


def _why(exc: OnvifAuthError) -> str:
    """The reason in an auth error's last parentheses (``HTTP 401``, ``ONVIF NotAuthorized``):
    the message around it already names the camera, so it is said once."""
    text = str(exc)
    return text.rsplit("(", 1)[1].rstrip(")") if text.endswith(")") else text


def _skew_message(label: str, offset_us: int) -> str:
    direction = "ahead of" if offset_us > 0 else "behind"
    return (f"camera {label}: clock is {abs(offset_us) / 1e6:.0f} s {direction} the server's; "
            "set its clock (or NTP) before adopting it")


async def set_system_clock(
    xaddr_or_host_port: str, username: str, password: str, *, clock: Clock | None = None,
    timeout_s: float = DEFAULT_TIMEOUT_S,
) -> int | None:
    """Set the camera's clock to ours (Manual UTC); returns the remaining offset (µs)."""
    async with OnvifClient(xaddr_or_host_port, username, password, clock=clock,
                           timeout_s=timeout_s) as client:
        await client.measure_clock()
        await client.set_system_clock()
        return client.clock_offset_us


__all__ = [
    "DEFAULT_TIMEOUT_S",
    "MAX_CLOCK_SKEW_S",
    "OnvifClient",
    "device_xaddr",
    "interrogate",
    "redact_url",
    "set_system_clock",
]
