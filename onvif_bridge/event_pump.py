"""One camera's event pump: PullPoint subscription → typed events → ``vms.bus.CameraEvent``.

Lifecycle (docs/design/events.md, "Subscription lifecycle"): measure the camera's clock
(GetSystemDateAndTime, no login), find its events service (GetServices, else GetCapabilities),
CreatePullPointSubscription (InitialTerminationTime PT120S), SetSynchronizationPoint, then
long-poll PullMessages (Timeout PT20S, MessageLimit 100). Every answer that carries CurrentTime and
TerminationTime (both in the camera's clock) gives the subscription's remaining life as their
*difference*; the pump renews when half of the granted life is left, on its own monotonic clock.
Any fault, timeout, HTTP error or unparsable answer drops the subscription (never Unsubscribe: a
rebooted camera has forgotten it anyway, and the camera's own expiry cleans up) and a new one is
made after a capped (60 s), jittered exponential backoff. A wrong login stops the pump in state
``auth_failed`` (a new pump starts when the camera's credentials change); a camera without a
PullPoint service leaves it ``unsupported``. A camera that answers PullMessages at once with
nothing (faster than 10 % of the timeout, 5 times in a row) is polled every second instead.

Normalisation (see :mod:`onvif_bridge.event_types`): property events publish True on start and
False on end; an Initialized that re-states what we already know (after every resubscribe) is
not published again, an Initialized "false" we knew nothing about opens nothing and is not
published; pulses (doorbell, plate) publish ``state=None``. ``at_us`` is our receive time; the
camera's own UtcTime and its measured clock offset go into ``data``. Publishing is
:meth:`vms.bus.EventBus.publish`, which never blocks.
"""

from __future__ import annotations

import asyncio
import logging
import random
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from onvif_bridge.errors import (
    OnvifAuthError,
    OnvifError,
    OnvifFault,
)
from onvif_bridge.event_soap import Endpoint, EventSoap, SoapLog, reference_parameters
from onvif_bridge.event_types import typed
from onvif_bridge.events import normalise_topic, parse_xs_datetime
from onvif_bridge.http import onto_host
from onvif_bridge.models import Capabilities, OnvifEvent, PullMessagesResult, SystemDateAndTime
from onvif_bridge.xml import Element, child, find_first, text
from vms.backoff import Backoff
from vms.bus import CameraEvent, EventBus
from vms.clock import Clock

logger = logging.getLogger(__name__)

US = 1_000_000
STATES = ("subscribing", "subscribed", "polling", "backoff", "auth_failed", "unsupported",
          "stopped")
MODES = ("long_poll", "fixed_poll")


@dataclass(frozen=True)
class PumpOptions:
    termination_s: int = 120
    pull_timeout_s: float = 20.0
    message_limit: int = 100
    request_timeout_s: float = 10.0
    """Time limit of a request other than PullMessages; PullMessages gets its timeout on top."""
    backoff_base_s: float = 1.0
    backoff_cap_s: float = 60.0
    fixed_poll_interval_s: float = 1.0
    fast_answer_ratio: float = 0.1
    fast_answers_to_switch: int = 5


@dataclass(frozen=True)
class PumpCamera:
    """What a pump needs to know about its camera."""

    camera_id: int
    site_id: int
    name: str
    onvif_url: str
    username: str
    password: str
    clock_offset_us: int | None = None
    """The offset stored at adoption (used until the pump has measured its own)."""


@dataclass
class PumpStatus:
    state: str = "stopped"
    mode: str = "long_poll"
    last_message_us: int | None = None
    failures: int = 0
    """Failures since the last successful subscription."""
    failures_total: int = 0
    subscriptions: int = 0
    """Subscriptions made since the pump started (1 + resubscribes)."""
    error: str = ""
    clock_offset_us: int | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"state": self.state, "mode": self.mode, "last_message_us": self.last_message_us,
                "failures": self.failures, "failures_total": self.failures_total,
                "subscriptions": self.subscriptions, "error": self.error,
                "clock_offset_us": self.clock_offset_us}


class Unsupported(OnvifError):
    """The camera has no (working) PullPoint events service."""


@dataclass
class _Subscription:
    endpoint: Endpoint
    granted_us: int
    """Life granted by the last Create/Renew (TerminationTime − CurrentTime)."""
    expires_mono_us: int
    renew_supported: bool = True


@dataclass
class _Known:
    """What we last knew of each property (topic, source) → value (state, or the raw items)."""

    values: dict[tuple[str, tuple[tuple[str, str], ...]], object] = field(default_factory=dict)


class EventPump:
    """The event pump of one camera. ``start()`` runs it as a task; ``await stop()`` ends it."""

    def __init__(self, camera: PumpCamera, bus: EventBus, clock: Clock, *,
                 options: PumpOptions | None = None, soap_log: SoapLog | None = None,
                 rng: random.Random | None = None) -> None:
        self.camera = camera
        self.bus = bus
        self.clock = clock
        self.options = options or PumpOptions()
        self.label = f"{camera.name!r} (id {camera.camera_id})"
        self.soap_log = soap_log or SoapLog(self.label)
        self.status = PumpStatus(clock_offset_us=camera.clock_offset_us)
        self._rng = rng or random.Random()  # noqa: S311 (jitter, not secrets)
        self._known = _Known()
        self._fast_answers = 0
        self._events_endpoint: Endpoint | None = None
        self._task: asyncio.Task[None] | None = None
        self.soap: EventSoap | None = None

    # -- lifecycle -----------------------------------------------------------------------------

    def start(self) -> asyncio.Task[None]:
        self._task = asyncio.create_task(self.run(), name=f"event-pump-{self.camera.camera_id}")
        return self._task

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        if self.status.state not in ("auth_failed", "unsupported"):
            self.status.state = "stopped"

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    async def run(self) -> None:
        opts = self.options
        session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(ssl=False, limit_per_host=2),
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=opts.request_timeout_s),
            cookie_jar=aiohttp.DummyCookieJar(),
        )
        try:
            self.soap = EventSoap(session, self.label, self.camera.username, self.camera.password,
                                  self.clock, self.soap_log, timeout_s=opts.request_timeout_s)
            while True:
                try:
                    await self._subscribed_session(self.soap)
                except OnvifAuthError as exc:
                    self.status.state = "auth_failed"
                    self.status.error = str(exc)
                    logger.warning("camera %s: events stopped: %s (fix the camera's credentials; "
                                   "the pump starts again when they change)", self.label, exc)
                    return
                except Unsupported as exc:
                    self.status.state = "unsupported"
                    self.status.error = str(exc)
                    logger.info("camera %s: no ONVIF events: %s", self.label, exc)
                    return
                except OnvifError as exc:
                    await self._failed(str(exc))
                except Exception as exc:  # noqa: BLE001
                    # A bug of ours met by one camera's odd answer must not end its events for
                    # good (nor look "subscribed" from a dead task): logged whole, then retried.
                    logger.exception("camera %s: events: unexpected error", self.label)
                    await self._failed(f"internal error: {type(exc).__name__}: {exc}")
        finally:
            await session.close()

    async def _failed(self, error: str) -> None:
        self.status.failures += 1
        self.status.failures_total += 1
        self.status.error = error
        self.status.state = "backoff"
        delay_s = self.backoff_s(self.status.failures)
        logger.info("camera %s: events: %s; new subscription in %.1f s", self.label, error,
                    delay_s)
        await asyncio.sleep(delay_s)

    def backoff_s(self, failures: int) -> float:
        """Jittered exponential delay before attempt ``failures`` + 1: half to all of
        ``base · 2^(failures − 1)``, capped at ``backoff_cap_s``."""
        return Backoff(self.options.backoff_base_s, self.options.backoff_cap_s,
                       rng=self._rng).delay_after(failures)

    # -- one subscription ----------------------------------------------------------------------

    async def _subscribed_session(self, soap: EventSoap) -> None:
        self.status.state = "subscribing"
        await self._measure_clock(soap)
        if self._events_endpoint is None:
            self._events_endpoint = await self._find_events_service(soap)
        sub = await self._create(soap, self._events_endpoint)
        await self._synchronise(soap, sub)
        self.status.subscriptions += 1
        self.status.failures = 0
        self.status.error = ""
        self.status.state = "polling" if self.status.mode == "fixed_poll" else "subscribed"
        logger.info("camera %s: events subscribed (%s)", self.label, self.status.mode)
        try:
            await self._pull_loop(soap, sub)
        except OnvifAuthError as exc:
            # The login worked a moment ago: a refusal now is the camera's clock jumping (a
            # reboot back to 1970, an NTP step) under our WS-Security stamp, not a wrong password.
            # Subscribe again (the clock is measured anew); a refusal *then* is final.
            raise OnvifError(f"{exc} during a subscription (its clock jumped?)") from None

    async def _measure_clock(self, soap: EventSoap) -> None:
        device = Endpoint(self.camera.onvif_url)
        before_us = self.clock.now_us()
        parsed: object = None
        try:
            try:
                parsed, _ = await soap.call("GetSystemDateAndTime",
                                            "<tds:GetSystemDateAndTime/>", device, auth=False)
            except OnvifAuthError:
                # DVC wants a login even for the time.
                parsed, _ = await soap.call("GetSystemDateAndTime",
                                            "<tds:GetSystemDateAndTime/>", device)
        except OnvifFault as fault:  # a camera that will not tell: the stored offset serves
            logger.info("camera %s: no time from GetSystemDateAndTime (%s)", self.label, fault)
        after_us = self.clock.now_us()
        if isinstance(parsed, SystemDateAndTime) and parsed.utc_us is not None:
            # Whole seconds, truncated: on average half a second later than said.
            offset = parsed.utc_us + US // 2 - (before_us + after_us) // 2
            soap.camera_offset_us = offset
            self.status.clock_offset_us = offset
        elif self.camera.clock_offset_us is not None:
            soap.camera_offset_us = self.camera.clock_offset_us

    async def _find_events_service(self, soap: EventSoap) -> Endpoint:
        device = Endpoint(self.camera.onvif_url)
        caps: Capabilities | None = None
        try:
            parsed, _ = await soap.call(
                "GetServices",
                "<tds:GetServices><tds:IncludeCapability>false</tds:IncludeCapability>"
                "</tds:GetServices>", device)
            if isinstance(parsed, Capabilities) and parsed.services:
                caps = parsed
        except OnvifFault as fault:
            logger.info("camera %s: GetServices refused (%s); GetCapabilities", self.label, fault)
        if caps is None:
            parsed, _ = await soap.call(
                "GetCapabilities",
                "<tds:GetCapabilities><tds:Category>All</tds:Category></tds:GetCapabilities>",
                device)
            caps = parsed if isinstance(parsed, Capabilities) else None
        xaddr = caps.xaddr("events") if caps is not None else None
        if not xaddr:
            raise Unsupported(f"camera {self.label} names no events service")
        try:
            return Endpoint(onto_host(xaddr, self.camera.onvif_url, keep_port=False))
        except ValueError:
            raise Unsupported(f"camera {self.label}: events service address unreadable") from None

    def _lifetime(self, root: Element, answer_mono_us: int,
                  default_us: int) -> tuple[int, int]:
        """(granted life, expiry on our monotonic clock) from an answer's CurrentTime and
        TerminationTime — their difference, both in the camera's clock."""
        current = parse_xs_datetime(text(find_first(root, "CurrentTime")))
        termination = parse_xs_datetime(text(find_first(root, "TerminationTime")))
        life_us = default_us
        if current is not None and termination is not None and termination > current:
            life_us = min(termination - current, 24 * 3600 * US)
        return life_us, answer_mono_us + life_us

    async def _create(self, soap: EventSoap, events: Endpoint) -> _Subscription:
        opts = self.options
        body = ("<tev:CreatePullPointSubscription><tev:InitialTerminationTime>"
                f"PT{opts.termination_s}S</tev:InitialTerminationTime>"
                "</tev:CreatePullPointSubscription>")
        try:
            _, root = await soap.call("CreatePullPointSubscription", body, events)
        except OnvifFault as fault:
            if fault.is_not_supported:
                raise Unsupported(f"camera {self.label}: no PullPoint support ({fault})") from None
            if "InvalidArgVal" not in fault.subcodes:
                raise
            # Firmware that refuses a relative InitialTerminationTime (older Dahua): its default.
            _, root = await soap.call("CreatePullPointSubscription",
                                      "<tev:CreatePullPointSubscription/>", events)
        answered_us = self.clock.monotonic_us()
        reference = find_first(root, "SubscriptionReference")
        address = text(child(reference, "Address")) if reference is not None else ""
        if not address:
            raise OnvifError(f"camera {self.label}: CreatePullPointSubscription without an "
                             "address")
        try:
            address = onto_host(address, self.camera.onvif_url, keep_port=False)
        except ValueError:
            raise OnvifError(f"camera {self.label}: subscription address unreadable") from None
        endpoint = Endpoint(address, reference_parameters(child(reference, "ReferenceParameters")))
        granted_us, expires_us = self._lifetime(root, answered_us, opts.termination_s * US)
        return _Subscription(endpoint, granted_us, expires_us)

    async def _synchronise(self, soap: EventSoap, sub: _Subscription) -> None:
        try:
            await soap.call("SetSynchronizationPoint", "<tev:SetSynchronizationPoint/>",
                            sub.endpoint)
        except OnvifFault as fault:
            if not fault.is_not_supported:
                raise
            logger.info("camera %s: no SetSynchronizationPoint (%s)", self.label, fault)

    async def _renew(self, soap: EventSoap, sub: _Subscription) -> None:
        opts = self.options
        try:
            _, root = await soap.call(
                "Renew", f"<wsnt:Renew><wsnt:TerminationTime>PT{opts.termination_s}S"
                         "</wsnt:TerminationTime></wsnt:Renew>", sub.endpoint)
        except OnvifFault as fault:
            if not fault.is_not_supported:
                raise  # ResourceUnknown: the camera forgot us (rebooted): resubscribe
            # Some Hikvision firmware has no Renew but extends the subscription on every pull.
            logger.info("camera %s: no Renew (%s); relying on PullMessages", self.label, fault)
            sub.renew_supported = False
            return
        sub.granted_us, sub.expires_mono_us = self._lifetime(
            root, self.clock.monotonic_us(), opts.termination_s * US)

    async def _pull_loop(self, soap: EventSoap, sub: _Subscription) -> None:
        opts = self.options
        while True:
            now_us = self.clock.monotonic_us()
            renew_at_us = sub.expires_mono_us - sub.granted_us // 2
            if sub.renew_supported and now_us >= renew_at_us:
                await self._renew(soap, sub)
                continue
            if not sub.renew_supported and now_us >= sub.expires_mono_us:
                raise OnvifError(f"camera {self.label}: subscription expired (no Renew)")
            timeout_s = opts.pull_timeout_s
            if sub.renew_supported:
                timeout_s = max(1.0, min(timeout_s, (renew_at_us - now_us) / US))
            timeout_s = float(int(timeout_s))
            body = (f"<tev:PullMessages><tev:Timeout>PT{int(timeout_s)}S</tev:Timeout>"
                    f"<tev:MessageLimit>{opts.message_limit}</tev:MessageLimit>"
                    "</tev:PullMessages>")
            started_us = self.clock.monotonic_us()
            parsed, root = await soap.call("PullMessages", body, sub.endpoint,
                                           timeout_s=timeout_s + opts.request_timeout_s)
            answered_us = self.clock.monotonic_us()
            received_at_us = self.clock.now_us()
            if not isinstance(parsed, PullMessagesResult):
                raise OnvifError(f"camera {self.label}: PullMessages answered something else")
            if parsed.current_time_us is not None and parsed.termination_time_us is not None:
                _, expires = self._lifetime(root, answered_us, sub.granted_us)
                sub.expires_mono_us = expires
            if parsed.events:
                self.status.last_message_us = received_at_us
                self._fast_answers = 0
                for event in parsed.events:
                    self.accept(event, received_at_us)
                continue
            if self.status.mode == "long_poll":
                if answered_us - started_us < opts.fast_answer_ratio * timeout_s * US:
                    self._fast_answers += 1
                    if self._fast_answers >= opts.fast_answers_to_switch:
                        self.status.mode = "fixed_poll"
                        self.status.state = "polling"
                        logger.warning(
                            "camera %s: answers PullMessages at once (%d times in a row); "
                            "polling every %g s instead", self.label, self._fast_answers,
                            opts.fixed_poll_interval_s)
                else:
                    self._fast_answers = 0
            if self.status.mode == "fixed_poll":
                await asyncio.sleep(opts.fixed_poll_interval_s)

    # -- events --------------------------------------------------------------------------------

    def accept(self, event: OnvifEvent, received_at_us: int) -> None:
        """Publish what one notification means (nothing for a re-statement or an idle state)."""
        meaning = typed(event)
        key = (normalise_topic(event.topic), tuple(sorted(event.source.items())))
        operation = event.property_operation.lower()
        value: object = meaning.state if meaning.state is not None else tuple(
            sorted(event.data.items()))
        known = self._known.values.get(key, _UNKNOWN)
        state: bool | None = meaning.state
        if operation == "deleted":
            self._known.values.pop(key, None)
            if known is not True or meaning.pulse:
                return
            state = False
        elif operation == "initialized":
            self._known.values[key] = value
            if known == value or meaning.pulse:
                return  # a re-statement (after every (re)subscribe), or a button's idle state
            if known is _UNKNOWN and meaning.state is False:
                return  # nothing started
        elif operation:  # Changed
            self._known.values[key] = value
            if meaning.pulse:
                if meaning.state is False:
                    return  # the button's release
            elif known == value:
                return  # the same state again (firmware repeating itself)
        if meaning.pulse:
            state = None
        data: dict[str, Any] = {
            "camera_time_us": event.utc_time_us,
            "clock_offset_us": self.status.clock_offset_us,
            "source": dict(event.source),
            "items": dict(event.data),
            "property_operation": event.property_operation,
            **meaning.extra,
        }
        self.bus.publish(CameraEvent(
            camera_id=self.camera.camera_id, site_id=self.camera.site_id,
            type=meaning.kind.value, state=state, at_us=received_at_us, topic=event.topic,
            data=data))


_UNKNOWN = object()


__all__ = ["MODES", "STATES", "EventPump", "PumpCamera", "PumpOptions", "PumpStatus",
           "Unsupported"]
