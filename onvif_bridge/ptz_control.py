"""The server's PTZ control: move sessions with a dead-man timer, who holds control, audit.

One :class:`PtzControl` per server. A *move session* is one press-and-hold: it starts with a
ContinuousMove and ends with a Stop when its holder releases, when its keep-alives stop for
:attr:`PtzOptions.deadman_s` (~500 ms: a closed tab, a phone that lost signal), when its WebSocket
closes, or after :attr:`PtzOptions.max_move_s` at the latest — the camera never keeps turning on its
own. The camera's own ContinuousMove Timeout is a last line behind these (refreshed while a long
hold lasts). The last operator to move wins: a move by someone else takes the session over
(without a Stop in between), and everyone watching the camera is told who moves it
(:meth:`PtzControl.subscribe`). Every session, preset and home call is audited (``ptz``).

Requests to one camera go out one at a time, in order (a per-camera lock), over one ONVIF
connection kept open while the camera is in use (closed after :attr:`PtzOptions.idle_close_s`),
so a press costs one SOAP round trip. See docs/design/ptz.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from onvif_bridge import ptz
from onvif_bridge.adopt import Onboarding
from onvif_bridge.client import OnvifClient
from onvif_bridge.errors import OnvifError, OnvifFault, OnvifParseError
from onvif_bridge.onboarding_common import OnboardingError, StoredCamera
from onvif_bridge.ptz_parse import PtzCapabilities
from vms import audit
from vms.auth import Principal
from vms.db import models as m

logger = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass(frozen=True)
class PtzOptions:
    deadman_s: float = 0.5
    """A move whose keep-alives stop for this long is stopped by the server."""
    max_move_s: float = 120.0
    """No move session lasts longer: a stuck key or script stops here."""
    camera_timeout_s: float = 10.0
    """ContinuousMove's Timeout sent to the camera (refreshed 2 s before it runs out)."""
    idle_close_s: float = 60.0
    """An unused camera connection is closed after this long."""


@dataclass
class _Session:
    owner: str
    username: str
    user_id: int | None
    started_us: int
    started_s: float
    alive_s: float
    refreshed_s: float
    velocity: tuple[float, float, float]
    address: str = ""
    task: asyncio.Task[None] | None = None


@dataclass
class _Camera:
    """One camera's PTZ state: connection, capabilities, the session, the watchers."""

    id: int
    name: str
    site_id: int
    stored: StoredCamera
    caps: PtzCapabilities | None
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    client: OnvifClient | None = None
    session: _Session | None = None
    used_s: float = 0.0
    last_user: str = ""
    last_us: int | None = None
    listeners: set[asyncio.Queue[dict[str, Any]]] = field(default_factory=set)


def new_owner(kind: str = "ws") -> str:
    """An owner id for one control connection (a WebSocket, or one user's HTTP moves)."""
    return f"{kind}:{secrets.token_hex(8)}"


class PtzControl:
    """PTZ for the web layer and the CLI. ``onboarding`` loads cameras (scoped by the principal;
    ``None``: every camera, for the command line) and makes their ONVIF clients."""

    def __init__(self, onboarding: Onboarding, options: PtzOptions | None = None, *,
                 actor: str = "") -> None:
        self.onboarding = onboarding
        self.actor = actor
        """Who acts when no principal is given (the command line: ``cli:<user>``)."""
        self.gateway = onboarding.gateway
        self.clock = onboarding.clock
        self.options = options or PtzOptions()
        self._cameras: dict[int, _Camera] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._janitor: asyncio.Task[None] | None = None
        self.sessions_started = 0
        self.sessions_ended: dict[str, int] = {}

    # --- life -----------------------------------------------------------------------------------

    async def start(self) -> None:
        self._janitor = asyncio.create_task(self._close_idle(), name="ptz-idle")

    async def close(self) -> None:
        """Stop every move in progress (a Stop to each camera), close the connections."""
        if self._janitor is not None:
            self._janitor.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._janitor
        for cam in list(self._cameras.values()):
            if cam.session is not None:
                await self._end(cam, cam.session, "shutdown")
            await self._drop_client(cam)
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=5)

    def shutdown(self) -> None:
        """Tell every control connection to close (the server is stopping)."""
        for cam in self._cameras.values():
            for queue in list(cam.listeners):
                with contextlib.suppress(asyncio.QueueFull):
                    queue.put_nowait({"closed": True})

    async def _close_idle(self) -> None:
        while True:
            await asyncio.sleep(min(10.0, self.options.idle_close_s))
            now = _now_s()
            for cam in list(self._cameras.values()):
                if (cam.client is not None and cam.session is None and not cam.lock.locked()
                        and now - cam.used_s > self.options.idle_close_s):
                    await self._drop_client(cam)

    def _spawn(self, coro: Awaitable[Any], name: str) -> None:
        task = asyncio.ensure_future(coro)
        task.set_name(name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # --- cameras --------------------------------------------------------------------------------

    async def camera(self, principal: Principal | None, camera_id: int) -> _Camera:
        """The camera if the principal sees it (OnboardingError ``not_found`` otherwise)."""
        stored = await self.onboarding.load_camera(principal, camera_id)
        cam = self._cameras.get(camera_id)
        if cam is None:
            raw = await self._stored_caps(camera_id)
            cam = _Camera(stored.id, stored.name, stored.site_id, stored,
                          ptz.caps_from_json(raw or ""))
            cam = self._cameras.setdefault(camera_id, cam)
            if not raw and stored.onvif_url:  # adopted before PTZ was read: read it once now
                with contextlib.suppress(OnboardingError):
                    await self._refresh(cam)
        else:
            if (stored.onvif_url, stored.username, stored.password) != (
                    cam.stored.onvif_url, cam.stored.username, cam.stored.password):
                await self._drop_client(cam)  # re-bound or new credentials: connect afresh
                cam.caps = ptz.caps_from_json(await self._stored_caps(camera_id))
            cam.stored = stored
        return cam

    async def _stored_caps(self, camera_id: int) -> str:
        raw = await self.gateway.read(
            lambda: m.Camera.select(m.Camera.ptz_caps).where(m.Camera.id == camera_id).scalar())
        return str(raw or "")

    def _caps(self, cam: _Camera) -> PtzCapabilities:
        if cam.caps is None:
            raise OnboardingError(f"camera {cam.name!r} has no PTZ (or its capabilities were not "
                                  "read: refresh them)", "conflict")
        return cam.caps

    async def _client(self, cam: _Camera) -> OnvifClient:
        """The camera's open connection (caller holds ``cam.lock``)."""
        if cam.client is None:
            client = self.onboarding.onvif_client(cam.stored)
            try:
                await client.measure_clock()
                await client.capabilities()
            except BaseException:
                await client.close()
                raise
            cam.client = client
        cam.used_s = _now_s()
        return cam.client

    async def _drop_client(self, cam: _Camera) -> None:
        client, cam.client = cam.client, None
        if client is not None:
            await client.close()

    async def _call(self, cam: _Camera, fn: Callable[..., Awaitable[T]], *args: Any,
                    **kwargs: Any) -> T:
        """``fn(client, caps, …)`` in the camera's order, errors as OnboardingError."""
        caps = self._caps(cam)
        async with cam.lock:
            try:
                return await fn(await self._client(cam), caps, *args, **kwargs)
            except ptz.PtzUnsupported as exc:
                raise OnboardingError(f"camera {cam.name!r}: {exc}", "conflict") from None
            except (OnvifFault, OnvifParseError) as exc:
                raise OnboardingError(f"camera {cam.name!r} refused: {exc}", "camera") from None
            except OnvifError as exc:
                await self._drop_client(cam)  # unreachable, auth: reconnect next time
                raise OnboardingError(str(exc), "camera") from None

    async def _refresh(self, cam: _Camera) -> PtzCapabilities | None:
        async with cam.lock:
            try:
                client = await self._client(cam)
                profiles = await client.profiles()
                main = cam.stored.streams.get("main")
                caps = await ptz.probe_capabilities(client, profiles,
                                                    main.profile_token if main else "")
            except OnvifError as exc:
                await self._drop_client(cam)
                raise OnboardingError(f"camera {cam.name!r}: PTZ capabilities not read: {exc}",
                                      "camera") from None
        stored = ptz.caps_json(caps)
        await self.gateway.write(lambda: m.Camera.update(ptz_caps=stored).where(
            m.Camera.id == cam.id).execute())
        cam.caps = caps
        return caps

    # --- reading --------------------------------------------------------------------------------

    def state(self, cam: _Camera) -> dict[str, Any]:
        """Capabilities and who moves the camera now (or moved it last)."""
        session = cam.session
        return {
            "camera_id": cam.id,
            "capabilities": cam.caps.as_dict() if cam.caps is not None else None,
            "moving": session is not None,
            "user": session.username if session is not None else (cam.last_user or None),
            "since_us": session.started_us if session is not None else cam.last_us,
            "deadman_ms": round(self.options.deadman_s * 1000),
            "max_move_ms": round(self.options.max_move_s * 1000),
        }

    async def describe(self, principal: Principal | None, camera_id: int) -> dict[str, Any]:
        return self.state(await self.camera(principal, camera_id))

    async def refresh(self, principal: Principal | None, camera_id: int) -> dict[str, Any]:
        """Read the capabilities from the camera again and store them."""
        cam = await self.camera(principal, camera_id)
        await self._refresh(cam)
        return self.state(cam)

    async def status(self, principal: Principal | None, camera_id: int) -> dict[str, Any]:
        cam = await self.camera(principal, camera_id)
        value = await self._call(cam, ptz.status)
        pos = value.position
        return {"pan": pos.pan if pos else None, "tilt": pos.tilt if pos else None,
                "zoom": pos.zoom if pos else None, "pan_tilt_moving": value.pan_tilt_moving,
                "zoom_moving": value.zoom_moving, "error": value.error}

    # --- watchers -------------------------------------------------------------------------------

    def subscribe(self, cam: _Camera) -> asyncio.Queue[dict[str, Any]]:
        """A queue of this camera's control changes (``{"moving", "user", "owner", …}``)."""
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(maxsize=64)
        cam.listeners.add(queue)
        return queue

    def unsubscribe(self, cam: _Camera, queue: asyncio.Queue[dict[str, Any]]) -> None:
        cam.listeners.discard(queue)

    def _announce(self, cam: _Camera, reason: str, owner: str | None) -> None:
        message = {**self.state(cam), "reason": reason, "owner": owner}
        for queue in list(cam.listeners):
            if queue.full():  # a watcher that cannot keep up only needs the newest state
                with contextlib.suppress(asyncio.QueueEmpty):
                    queue.get_nowait()
            queue.put_nowait(message)

    def _audit(self, cam: _Camera, principal: Principal | None, detail: dict[str, Any], *,
               username: str = "", address: str = "", outcome: str = "ok") -> None:
        """Written off the request's path (the move is not held up by the database writer)."""
        def write() -> None:
            audit.record(self.clock, "ptz", principal=principal, username=username or self.actor,
                         target=cam.name, site_id=cam.site_id, address=address, outcome=outcome,
                         detail={"camera_id": cam.id, **detail})

        self._spawn(self.gateway.write(write), f"ptz-audit-{cam.id}")

    # --- continuous moves: sessions -------------------------------------------------------------

    async def move(self, principal: Principal | None, cam: _Camera, pan: float, tilt: float,
                   zoom: float, *, owner: str, address: str = "",
                   username: str = "") -> dict[str, Any]:
        """Start, change or keep alive ``owner``'s move; takes over anyone else's."""
        if pan == 0 and tilt == 0 and zoom == 0:
            await self.stop(cam, owner=owner, reason="released")
            return self.state(cam)
        velocity = (pan, tilt, zoom)
        now = _now_s()
        session = cam.session
        if session is not None and session.owner == owner:
            session.alive_s = now
            if session.velocity != velocity:
                session.velocity = velocity
                await self._call(cam, ptz.continuous_move, pan, tilt, zoom,
                                 timeout_s=self.options.camera_timeout_s)
                session.refreshed_s = _now_s()
            return self.state(cam)
        name = principal.username if principal is not None else (username or self.actor)
        new = _Session(owner=owner, username=name,
                       user_id=principal.user_id if principal is not None else None,
                       started_us=self.clock.now_us(), started_s=now, alive_s=now,
                       refreshed_s=now, velocity=velocity, address=address)
        previous = session
        cam.session = new  # the last to move wins: from now on the old holder's calls are stale
        if previous is not None:
            self._finish(cam, previous, f"taken over by {name}")
        try:
            await self._call(cam, ptz.continuous_move, pan, tilt, zoom,
                             timeout_s=self.options.camera_timeout_s)
        except BaseException:
            if cam.session is new:
                cam.session = None
                self._finish(cam, new, "camera_error")
            raise
        if cam.session is not new:  # ended while the camera answered (released at once)
            return self.state(cam)
        new.refreshed_s = _now_s()
        new.task = asyncio.create_task(self._watch(cam, new), name=f"ptz-deadman-{cam.id}")
        self.sessions_started += 1
        self._audit(cam, principal, {"op": "move", "pan": pan, "tilt": tilt, "zoom": zoom,
                                     "started_us": new.started_us},
                    username=name, address=address)
        self._announce(cam, "moving", owner)
        return self.state(cam)

    def keepalive(self, cam: _Camera, owner: str) -> bool:
        """The holder is still pressing; False when ``owner`` holds no session (taken over)."""
        session = cam.session
        if session is None or session.owner != owner:
            return False
        session.alive_s = _now_s()
        return True

    async def stop(self, cam: _Camera, *, owner: str | None = None,
                   reason: str = "released") -> bool:
        """End the move: ``owner``'s only (a release), or any (``owner=None``: the stop button,
        the API's stop). A Stop is sent even with no session (the camera may still be moving
        from elsewhere) when ``owner`` is None. Returns whether a session was ended."""
        session = cam.session
        if session is not None and (owner is None or session.owner == owner):
            await self._end(cam, session, reason)
            return True
        if owner is None:
            await self._call(cam, ptz.stop)
        return False

    async def release(self, cam: _Camera, owner: str) -> None:
        """The holder's connection closed: its move (if it still holds one) stops now."""
        if cam.session is not None and cam.session.owner == owner:
            await self._end(cam, cam.session, "connection_closed")

    async def _watch(self, cam: _Camera, session: _Session) -> None:
        """The dead-man timer of one session: sleeps until the next deadline, no polling."""
        opts = self.options
        refresh_every_s = max(0.5, ptz.move_timeout_s(self._caps(cam), opts.camera_timeout_s) - 2)
        while cam.session is session:
            now = _now_s()
            if now >= session.alive_s + opts.deadman_s:
                reason = "keepalive_lost"
                break
            if now >= session.started_s + opts.max_move_s:
                reason = "max_duration"
                break
            if now >= session.refreshed_s + refresh_every_s:
                session.refreshed_s = now
                pan, tilt, zoom = session.velocity
                try:
                    await self._call(cam, ptz.continuous_move, pan, tilt, zoom,
                                     timeout_s=opts.camera_timeout_s)
                except OnboardingError as exc:
                    logger.warning("camera %s: PTZ move not refreshed: %s", cam.name, exc)
                continue
            wake = min(session.alive_s + opts.deadman_s, session.started_s + opts.max_move_s,
                       session.refreshed_s + refresh_every_s)
            await asyncio.sleep(max(0.0, wake - now))
        else:
            return
        logger.info("camera %s: PTZ move of %s stopped by the server (%s)", cam.name,
                    session.username, reason)
        await self._end(cam, session, reason, from_watch=True)

    async def _end(self, cam: _Camera, session: _Session, reason: str, *,
                   from_watch: bool = False) -> None:
        """End ``session`` (if still current) with a Stop to the camera."""
        if cam.session is not session:
            return
        cam.session = None
        self._finish(cam, session, reason, cancel=not from_watch)
        for attempt in (1, 2):
            try:
                await self._call(cam, ptz.stop)
                break
            except OnboardingError as exc:
                logger.warning("camera %s: PTZ Stop failed (attempt %d): %s", cam.name,
                               attempt, exc)
        self._announce(cam, reason, session.owner)

    def _finish(self, cam: _Camera, session: _Session, reason: str, *,
                cancel: bool = True) -> None:
        if cancel and session.task is not None and session.task is not asyncio.current_task():
            session.task.cancel()
        cam.last_user, cam.last_us = session.username, session.started_us
        ended_us = self.clock.now_us()
        self.sessions_ended[reason.split(" ")[0]] = (
            self.sessions_ended.get(reason.split(" ")[0], 0) + 1)
        self._audit(cam, None, {"op": "move_end", "reason": reason,
                                "started_us": session.started_us, "ended_us": ended_us,
                                "duration_ms": (ended_us - session.started_us) // 1000},
                    username=session.username, address=session.address)

    # --- one-shot commands ----------------------------------------------------------------------

    async def _one_shot(self, principal: Principal | None, cam: _Camera, op: str,
                        fn: Callable[..., Awaitable[T]], *args: Any, address: str = "",
                        detail: dict[str, Any] | None = None) -> T:
        """A command that moves the camera (or changes its presets): it ends a running move
        session (the last to act wins), is audited, and tells the watchers."""
        if cam.session is not None:
            session = cam.session
            cam.session = None
            self._finish(cam, session, f"taken over by {principal.username if principal else ''}")
        result = await self._call(cam, fn, *args)
        self._audit(cam, principal, {"op": op, **(detail or {})}, address=address)
        if principal is not None:
            cam.last_user, cam.last_us = principal.username, self.clock.now_us()
        self._announce(cam, op, None)
        return result

    async def relative_move(self, principal: Principal | None, cam: _Camera, pan: float,
                            tilt: float, zoom: float = 0.0, *, address: str = "") -> None:
        await self._one_shot(principal, cam, "relative_move", ptz.relative_move, pan, tilt, zoom,
                             address=address, detail={"pan": pan, "tilt": tilt, "zoom": zoom})

    async def absolute_move(self, principal: Principal | None, cam: _Camera, pan: float,
                            tilt: float, zoom: float | None = None, *, address: str = "") -> None:
        await self._one_shot(principal, cam, "absolute_move", ptz.absolute_move, pan, tilt, zoom,
                             address=address, detail={"pan": pan, "tilt": tilt, "zoom": zoom})

    async def presets(self, principal: Principal | None, cam: _Camera) -> list[dict[str, Any]]:
        found = await self._call(cam, ptz.presets)
        return [{"token": p.token, "name": p.name} for p in found]

    async def save_preset(self, principal: Principal | None, cam: _Camera, name: str,
                          token: str | None = None, *, address: str = "") -> str:
        """Save the current position (``token``: over that preset)."""
        return await self._one_shot(principal, cam, "preset_set", ptz.set_preset, name, token,
                                    address=address, detail={"name": name, "token": token})

    async def rename_preset(self, principal: Principal | None, cam: _Camera, token: str,
                            name: str, *, address: str = "") -> None:
        """ONVIF has no rename: SetPreset with the token saves the *current* position under the
        new name. So the camera first goes to the preset, and the name is set once it stands
        still there (:func:`_wait_still`, at most :data:`STILL_WAIT_S`)."""
        known = {p["token"] for p in await self.presets(principal, cam)}
        if token not in known:
            raise OnboardingError(f"camera {cam.name!r} has no preset {token!r}", "not_found")
        await self._call(cam, ptz.goto_preset, token)
        await self._call(cam, _wait_still)
        await self._one_shot(principal, cam, "preset_rename", ptz.set_preset, name, token,
                             address=address, detail={"name": name, "token": token})

    async def goto_preset(self, principal: Principal | None, cam: _Camera, token: str, *,
                          address: str = "") -> None:
        await self._one_shot(principal, cam, "preset_goto", ptz.goto_preset, token,
                             address=address, detail={"token": token})

    async def remove_preset(self, principal: Principal | None, cam: _Camera, token: str, *,
                            address: str = "") -> None:
        await self._one_shot(principal, cam, "preset_remove", ptz.remove_preset, token,
                             address=address, detail={"token": token})

    async def goto_home(self, principal: Principal | None, cam: _Camera, *,
                        address: str = "") -> None:
        await self._one_shot(principal, cam, "home_goto", ptz.goto_home, address=address)

    async def set_home(self, principal: Principal | None, cam: _Camera, *,
                       address: str = "") -> None:
        await self._one_shot(principal, cam, "home_set", ptz.set_home, address=address)


STILL_WAIT_S = 10.0


async def _wait_still(client: OnvifClient, caps: PtzCapabilities) -> None:
    """Until the camera stands still: its MoveStatus says IDLE, or (Hikvision sends no
    MoveStatus) its position is the same in two readings 0.2 s apart; at most STILL_WAIT_S."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + STILL_WAIT_S
    before = None
    while loop.time() < deadline:
        value = await ptz.status(client, caps)
        if value.pan_tilt_moving is False and value.zoom_moving is not True:
            return
        if value.pan_tilt_moving is None and before is not None and value.position == before:
            return
        before = value.position
        await asyncio.sleep(0.2)
    logger.warning("camera %s: still moving after %.0f s; preset saved where it is",
                   client.label, STILL_WAIT_S)


def _now_s() -> float:
    return asyncio.get_running_loop().time()


__all__ = ["PtzControl", "PtzOptions", "new_owner"]
