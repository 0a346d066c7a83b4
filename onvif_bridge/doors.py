"""Door release: a camera's relay outputs, stored and refreshed, and the pulse that opens a door.

:class:`DoorService` is what the web layer and ``vms door`` call. A pulse sets a relay active for
``[intercom] pulse_seconds``:

- **Monostable** where the relay supports that delay (its options, or its current mode when the
  camera gives no options): SetRelayOutputSettings Mode Monostable + DelayTime before every pulse
  (a relay reset to Bistable behind our back must not stay open), then SetRelayOutputState active;
  the camera itself returns the relay to inactive. A camera that refuses the settings falls back
  to the next way.
- **Active, then inactive**: SetRelayOutputState active, then — whatever happens meanwhile — inactive
  again after the pulse. The second call is the server's promise: it runs in a ``finally``, as its
  own task that a cancelled request or caller does not cancel, retried (:data:`RELEASE_ATTEMPTS`),
  and :meth:`DoorService.stop` (server shutdown) cuts every pending pulse short and waits for its
  release. A release that fails every attempt is logged as an error and audited ``failed``.

Every pulse is audited (``door_release``) whatever its outcome: done, refused by the rate limit
(:class:`PulseLimiter`, per user and camera), camera unknown or unreachable, relay unknown. A
successful pulse also answers the camera's ringing doorbell events (:func:`vms.rings.answer_by_door`)
in the same transaction. Relays are listed at adoption (the interrogation reads them,
:func:`store_relays` keeps them with the camera) and by :meth:`DoorService.refresh`.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import re
from dataclasses import dataclass
from typing import Any

from onvif_bridge.configure import CameraAccess
from onvif_bridge.errors import OnvifError, OnvifFault
from onvif_bridge.models import RelayOutput
from onvif_bridge.onboarding_common import OnboardingError, StoredCamera
from onvif_bridge.relay_ops import list_relays, set_monostable, set_state
from vms import audit, rings
from vms.auth import Principal
from vms.clock import Clock
from vms.db import models as m

logger = logging.getLogger(__name__)

US = 1_000_000
RELEASE_ATTEMPTS = 3
RELEASE_RETRY_S = 0.5
WINDOW_US = 60 * US
RELAY_NAME_PATTERN = r"^[A-Za-z0-9_.:@+-]{1,64}$"
"""The relay tokens a pulse may name (ONVIF ReferenceTokens as cameras write them: AlarmOut_0,
RelayOutputToken_1); anything else is no relay of the camera (404, audited)."""


class DoorError(OnboardingError):
    """A pulse or relay request refused; ``kind`` as :class:`OnboardingError`'s, plus
    ``rate_limited`` (429, ``retry_after_s``)."""

    def __init__(self, message: str, kind: str = "invalid", *, retry_after_s: int = 0) -> None:
        super().__init__(message, kind)
        self.retry_after_s = retry_after_s


class PulseLimiter:
    """At most ``per_minute`` pulses per (user, camera) in any 60 s (in memory, per server)."""

    def __init__(self, clock: Clock, per_minute: int) -> None:
        self._clock = clock
        self.per_minute = per_minute
        self._hits: dict[tuple[Any, int], collections.deque[int]] = {}

    def take(self, who: Any, camera_id: int) -> int:
        """0 and the pulse counted, or the seconds to wait before the next one is allowed."""
        now = self._clock.monotonic_us()
        hits = self._hits.setdefault((who, camera_id), collections.deque())
        while hits and hits[0] <= now - WINDOW_US:
            hits.popleft()
        if len(hits) >= self.per_minute:
            return max(1, -(-(hits[0] + WINDOW_US - now) // US))
        hits.append(now)
        if len(self._hits) > 10_000:  # forget idle keys
            self._hits = {k: v for k, v in self._hits.items() if v and v[-1] > now - WINDOW_US}
        return 0


def _ms(seconds: float | None) -> int | None:
    return None if seconds is None else round(seconds * 1000)


def _relay_of(row: m.CameraRelay) -> RelayOutput:
    def s(ms: int | None) -> float | None:
        return None if ms is None else ms / 1000

    return RelayOutput(
        token=row.token, mode=row.mode, delay_s=s(row.delay_ms), idle_state=row.idle_state,
        modes=tuple(x for x in row.modes.split(",") if x), delay_min_s=s(row.delay_min_ms),
        delay_max_s=s(row.delay_max_ms),
        delay_choices_s=tuple(int(x) / 1000 for x in row.delay_choices_ms.split(",") if x))


def store_relays(camera_id: int, relays: tuple[RelayOutput, ...], now_us: int) -> None:
    """Keep exactly these relays for the camera (inside the caller's write transaction)."""
    tokens = [r.token for r in relays]
    m.CameraRelay.delete().where(m.CameraRelay.camera == camera_id,
                                 m.CameraRelay.token.not_in(tokens)).execute()
    for r in relays:
        fields = dict(mode=r.mode[:16], delay_ms=_ms(r.delay_s), idle_state=r.idle_state[:8],
                      modes=",".join(r.modes)[:64], delay_min_ms=_ms(r.delay_min_s),
                      delay_max_ms=_ms(r.delay_max_s),
                      delay_choices_ms=",".join(str(_ms(c)) for c in r.delay_choices_s)[:200],
                      listed_us=now_us)
        updated = m.CameraRelay.update(**fields).where(m.CameraRelay.camera == camera_id,
                                                       m.CameraRelay.token == r.token).execute()
        if not updated:
            m.CameraRelay.create(camera=camera_id, token=r.token, **fields)


def relay_view(row: m.CameraRelay, pulse_s: float) -> dict[str, Any]:
    relay = _relay_of(row)
    return {"token": relay.token, "mode": relay.mode, "delay_s": relay.delay_s,
            "idle_state": relay.idle_state, "modes": list(relay.modes),
            "monostable": relay.monostable_for(pulse_s), "listed_us": row.listed_us}


def _rows(camera_id: int) -> list[m.CameraRelay]:
    return list(m.CameraRelay.select().where(m.CameraRelay.camera == camera_id)
                .order_by(m.CameraRelay.token))


@dataclass
class _Pulse:
    method: str
    released: bool


class DoorService:
    """Relays and door pulses for the whole server (one instance; see the module docstring)."""

    def __init__(self, access: CameraAccess, clock: Clock, *, pulse_s: int, ring_s: int,
                 pulses_per_minute: int) -> None:
        self.access = access
        self.clock = clock
        self.pulse_s = pulse_s
        self.ring_us = ring_s * US
        self.limiter = PulseLimiter(clock, pulses_per_minute)
        self._locks: dict[tuple[int, str], asyncio.Lock] = {}
        self._tasks: set[asyncio.Future[Any]] = set()
        self._stopping = asyncio.Event()

    # -- relays ----------------------------------------------------------------------------------

    async def relays(self, principal: Principal | None, camera_id: int) -> list[dict[str, Any]]:
        """The camera's stored relays (a camera the principal does not see: not_found)."""
        cam = await self.access.load_camera(principal, camera_id)
        rows = await self.access.gateway.read(_rows, cam.id)
        return [relay_view(r, self.pulse_s) for r in rows]

    async def refresh(self, principal: Principal | None, camera_id: int) -> list[dict[str, Any]]:
        """Ask the camera for its relays again and store them."""
        cam = await self.access.load_camera(principal, camera_id)
        await self._list_and_store(cam)
        return await self.relays(principal, camera_id)

    async def _list_and_store(self, cam: StoredCamera) -> None:
        try:
            async with self.access.onvif_client(cam) as client:
                await client.measure_clock()
                await client.capabilities()
                relays = await list_relays(client)
        except OnvifError as exc:
            raise DoorError(f"camera {cam.name!r}: relays not listed: {exc}", "camera") from None
        await self.access.gateway.write(store_relays, cam.id, relays, self.clock.now_us())

    # -- the pulse -------------------------------------------------------------------------------

    async def pulse(self, principal: Principal | None, camera_id: int, token: str, *,
                    actor: str = "", address: str = "", limit: bool = True) -> dict[str, Any]:
        """Open the door: pulse relay ``token`` of the camera; audited whatever happens.

        ``limit``: apply the per-user rate limit (the command line does not). Raises DoorError
        (or OnboardingError from the camera look-up), each audited first."""
        gw = self.access.gateway
        try:
            cam = await self.access.load_camera(principal, camera_id)
        except OnboardingError as exc:
            await gw.write(self._audit, principal, actor, address, f"camera:{camera_id}", None,
                           exc.kind, {"camera_id": camera_id, "relay": token[:64], "error": str(exc)})
            raise
        target = f"{cam.name} / {token[:64]}"
        detail: dict[str, Any] = {"camera_id": cam.id, "relay": token[:64],
                                  "pulse_s": self.pulse_s}
        if limit and principal is not None:
            wait_s = self.limiter.take(principal.user_id, cam.id)
            if wait_s:
                await gw.write(self._audit, principal, actor, address, target, cam.site_id,
                               "rate_limited", {**detail, "retry_after_s": wait_s})
                raise DoorError(f"too many door releases of camera {cam.name!r}: at most "
                                f"{self.limiter.per_minute} a minute; try again in {wait_s} s",
                                "rate_limited", retry_after_s=wait_s)
        try:
            if not re.fullmatch(RELAY_NAME_PATTERN, token):
                raise DoorError(f"camera {cam.name!r} has no relay output {token[:64]!r}",
                                "not_found")
            rows = await gw.read(_rows, cam.id)
            if not rows:  # never listed (added before relays were kept, or by the CLI)
                await self._list_and_store(cam)
                rows = await gw.read(_rows, cam.id)
            row = next((r for r in rows if r.token == token), None)
            if row is None:
                raise DoorError(f"camera {cam.name!r} has no relay output {token!r}",
                                "not_found")
        except DoorError as exc:
            await gw.write(self._audit, principal, actor, address, target, cam.site_id,
                           "failed" if exc.kind == "camera" else exc.kind,
                           {**detail, "error": str(exc)})
            raise
        # The pulse and its audit run as the service's own task: a caller that goes away (a
        # closed request, a cancelled task) neither cuts the pulse nor skips the audit record.
        task = asyncio.ensure_future(self._pulse_audited(principal, actor, address, target, cam,
                                                         row, detail))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return await asyncio.shield(task)

    async def _pulse_audited(self, principal: Principal | None, actor: str, address: str,
                             target: str, cam: StoredCamera, row: m.CameraRelay,
                             detail: dict[str, Any]) -> dict[str, Any]:
        gw = self.access.gateway
        try:
            done = await self._locked_pulse(cam, row)
        except DoorError as exc:
            await gw.write(self._audit, principal, actor, address, target, cam.site_id,
                           "failed", {**detail, "error": str(exc)})
            raise
        except asyncio.CancelledError:  # the server's loop is going away: the relay was released
            with contextlib.suppress(Exception):
                await gw.write(self._audit, principal, actor, address, target, cam.site_id,
                               "cancelled", detail)
            raise
        detail = {**detail, "method": done.method, "released": done.released}
        answered = await gw.write(self._done, principal, actor, address, target, cam, detail)
        logger.info("camera %s: door released (relay %s, %s, %d s)", cam.name, row.token,
                    done.method, self.pulse_s)
        return {"camera_id": cam.id, "relay": row.token, "method": done.method,
                "pulse_s": self.pulse_s, "released": done.released,
                "answered": [e for e, _ in answered], "answered_sites": answered}

    def _audit(self, principal: Principal | None, actor: str, address: str, target: str,
               site_id: int | None, outcome: str, detail: dict[str, Any]) -> None:
        audit.record(self.clock, "door_release", principal=principal, username=actor,
                     target=target, site_id=site_id, address=address, outcome=outcome,
                     detail=detail)

    def _done(self, principal: Principal | None, actor: str, address: str, target: str,
              cam: StoredCamera, detail: dict[str, Any]) -> list[tuple[int, int]]:
        self._audit(principal, actor, address, target, cam.site_id, "ok", detail)
        return rings.answer_by_door(cam.id, principal, actor, self.clock.now_us(), self.ring_us)

    async def _locked_pulse(self, cam: StoredCamera, row: m.CameraRelay) -> _Pulse:
        lock = self._locks.setdefault((cam.id, row.token), asyncio.Lock())
        async with lock:
            try:
                async with self.access.onvif_client(cam) as client:
                    await client.measure_clock()
                    await client.capabilities()
                    relay = _relay_of(row)
                    if relay.monostable_for(self.pulse_s):
                        try:
                            await self._monostable(client, cam, relay)
                            return _Pulse("monostable", released=False)
                        except OnvifFault as fault:
                            logger.warning("camera %s: relay %s refused Monostable (%s); "
                                           "setting it active, then inactive", cam.name,
                                           relay.token, fault)
                    return await self._active_then_inactive(client, cam, relay.token)
            except OnvifError as exc:
                raise DoorError(f"camera {cam.name!r}: door not released: {exc}",
                                "camera") from None

    async def _monostable(self, client: Any, cam: StoredCamera, relay: RelayOutput) -> None:
        # Sent before every pulse, even when the stored settings already say so: a relay reset
        # to Bistable behind our back (its web page, a factory reset) would otherwise stay active.
        await set_monostable(client, relay.token, self.pulse_s, relay.idle_state)
        if relay.mode != "Monostable" or relay.delay_s != self.pulse_s:
            await self.access.gateway.write(self._settings_stored, cam.id, relay.token)
        await set_state(client, relay.token, True)

    def _settings_stored(self, camera_id: int, token: str) -> None:
        m.CameraRelay.update(mode="Monostable", delay_ms=self.pulse_s * 1000).where(
            m.CameraRelay.camera == camera_id, m.CameraRelay.token == token).execute()

    async def _active_then_inactive(self, client: Any, cam: StoredCamera, token: str) -> _Pulse:
        await set_state(client, token, True)
        try:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), self.pulse_s)
        finally:
            release = asyncio.ensure_future(self._release(client, cam, token))
            self._tasks.add(release)
            release.add_done_callback(self._tasks.discard)
            try:
                released = await asyncio.shield(release)
            except asyncio.CancelledError:
                # cancelled again: still wait for the release before the client is closed
                await asyncio.wait({release}, timeout=RELEASE_ATTEMPTS * (RELEASE_RETRY_S + 10))
                raise
        if not released:
            raise DoorError(f"camera {cam.name!r}: relay {token!r} was set active but did not "
                            "take 'inactive' again; check the door", "camera")
        return _Pulse("active_inactive", released=True)

    async def _release(self, client: Any, cam: StoredCamera, token: str) -> bool:
        for attempt in range(1, RELEASE_ATTEMPTS + 1):
            try:
                await set_state(client, token, False)
                return True
            except OnvifError as exc:
                logger.warning("camera %s: relay %s: setting it inactive failed (attempt %d of "
                               "%d): %s", cam.name, token, attempt, RELEASE_ATTEMPTS, exc)
                if attempt < RELEASE_ATTEMPTS:
                    await asyncio.sleep(RELEASE_RETRY_S)
        logger.error("camera %s: relay %s may still be active: 'inactive' failed %d times",
                     cam.name, token, RELEASE_ATTEMPTS)
        return False

    async def stop(self) -> None:
        """Shutdown: cut every pulse short, release its relay, wait for it (bounded)."""
        self._stopping.set()
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=RELEASE_ATTEMPTS * (RELEASE_RETRY_S + 10))


__all__ = ["DoorError", "DoorService", "PulseLimiter", "relay_view", "store_relays"]
