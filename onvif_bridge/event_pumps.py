"""Every camera's event pump, kept in line with the database.

:class:`EventPumps` is what the composition root holds (``_events_ctx`` in ``vms/app.py``): one
:class:`~onvif_bridge.event_pump.EventPump` per camera in service (not archived, enabled, with an
ONVIF address). It follows :class:`vms.bus.CameraChanged` messages and, for edits made without
one (the CLI, another process), polls the camera rows every ``poll_s``. A pump is restarted when
what it uses changes (address, login, site, name); a pump stopped by a wrong login
(``auth_failed``) or a camera without events (``unsupported``) starts again on any change of its
camera. ``status(camera_id)`` is the ``events`` object of the camera API; ``soap_log(camera_id)``
the camera's raw-SOAP switch (kept across restarts of its pump, in memory only).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

import peewee as pw

from onvif_bridge.event_pump import EventPump, PumpCamera, PumpOptions, PumpStatus
from onvif_bridge.event_soap import SoapLog
from vms.bus import CameraChanged, EventBus, Subscription
from vms.clock import Clock
from vms.db.gateway import Gateway
from vms.db.models import Camera
from vms.secrets import SecretBox, SecretError

log = logging.getLogger(__name__)

POLL_S = 30.0

_Row = tuple[int, int, str, str, str, str, int]
"""id, site id, name, onvif_url, username, password_enc, clock_offset_us."""


def _rows(camera_id: int | None = None) -> list[_Row]:
    """Cameras in service (runs on a reader thread)."""
    query = (Camera.select(Camera.id, Camera.site, Camera.name, Camera.onvif_url,
                           Camera.username, Camera.password_enc, Camera.clock_offset_us)
             .where(Camera.archived_us.is_null(), Camera.enabled == True,  # noqa: E712
                    Camera.onvif_url != ""))
    if camera_id is not None:
        query = query.where(Camera.id == camera_id)
    return [(c.id, c.site_id, c.name, c.onvif_url, c.username, c.password_enc,
             c.clock_offset_us) for c in query]


class EventPumps:
    """One event pump per camera in service."""

    def __init__(self, gateway: Gateway, secrets: SecretBox, bus: EventBus, clock: Clock, *,
                 options: PumpOptions | None = None, poll_s: float = POLL_S,
                 owns: Callable[[int], bool] | None = None) -> None:
        self.gw = gateway
        self.owns = owns
        """In a cluster: whether this node pumps a camera's events (it holds its lease); the
        next poll follows a lease that moved."""
        self.secrets = secrets
        self.bus = bus
        self.clock = clock
        self.options = options or PumpOptions()
        self.poll_s = poll_s
        self._pumps: dict[int, tuple[_Row, EventPump]] = {}
        self._logs: dict[int, SoapLog] = {}
        self._errors: dict[int, str] = {}
        self._lock = asyncio.Lock()
        self._background: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        await self.sync()
        sub = self.bus.subscribe(CameraChanged)
        self._background.append(asyncio.create_task(self._follow(sub), name="event-pumps-bus"))
        self._background.append(asyncio.create_task(self._poll(), name="event-pumps-poll"))

    async def stop(self) -> None:
        for task in self._background:
            task.cancel()
        await asyncio.gather(*self._background, return_exceptions=True)
        self._background.clear()
        async with self._lock:
            pumps = [pump for _, pump in self._pumps.values()]
            self._pumps.clear()
        await asyncio.gather(*(pump.stop() for pump in pumps), return_exceptions=True)

    async def _follow(self, sub: Subscription) -> None:
        try:
            async for message in sub:
                if isinstance(message, CameraChanged):
                    await self.sync(message.camera_id, force=True)
        finally:
            sub.close()

    async def _poll(self) -> None:
        while True:
            await asyncio.sleep(self.poll_s)
            try:
                await self.sync()
            except (pw.PeeweeError, OSError) as exc:  # a database hiccup: try again next time
                log.error("events: reading the cameras failed: %s", exc)

    async def sync(self, camera_id: int | None = None, *, force: bool = False) -> None:
        """Start, stop or restart pumps so they match the database (one camera, or all).
        ``force``: also restart a pump that gave up (``auth_failed``, ``unsupported``)."""
        rows = {row[0]: row for row in await self.gw.read(_rows, camera_id)
                if self.owns is None or self.owns(row[0])}
        async with self._lock:
            ids = [camera_id] if camera_id is not None else sorted({*rows, *self._pumps})
            stopping: list[EventPump] = []
            for cid in ids:
                row = rows.get(cid)
                current = self._pumps.get(cid)
                if current is not None:
                    gave_up = current[1].status.state in ("auth_failed", "unsupported")
                    if row == current[0] and not (force and gave_up):
                        continue
                    stopping.append(current[1])
                    del self._pumps[cid]
                if row is not None:
                    pump = self._make(row)
                    if pump is not None:
                        self._pumps[cid] = (row, pump)
                        pump.start()
            await asyncio.gather(*(pump.stop() for pump in stopping), return_exceptions=True)

    def _make(self, row: _Row) -> EventPump | None:
        cid, site_id, name, url, username, password_enc, offset = row
        try:
            password = self.secrets.decrypt(password_enc) if password_enc else ""
        except SecretError as exc:
            self._errors[cid] = f"camera password unreadable: {exc}"
            log.error("events: camera %r (id %s): %s", name, cid, self._errors[cid])
            return None
        self._errors.pop(cid, None)
        camera = PumpCamera(camera_id=cid, site_id=site_id, name=name, onvif_url=url,
                            username=username, password=password, clock_offset_us=offset)
        return EventPump(camera, self.bus, self.clock, options=self.options,
                         soap_log=self.soap_log(cid, name))

    def soap_log(self, camera_id: int, name: str = "") -> SoapLog:
        """The camera's raw-SOAP switch and its last exchanges."""
        found = self._logs.get(camera_id)
        if found is None:
            found = self._logs[camera_id] = SoapLog(f"{name!r} (id {camera_id})")
        return found

    def status(self, camera_id: int) -> dict[str, Any]:
        """The ``events`` object of ``GET /api/v1/cameras/{id}``."""
        entry = self._pumps.get(camera_id)
        status = entry[1].status if entry is not None else PumpStatus()
        out = status.as_dict()
        if entry is None and camera_id in self._errors:
            out["error"] = self._errors[camera_id]
        log_ = self._logs.get(camera_id)
        out["soap_log"] = bool(log_ is not None and log_.enabled)
        return out

    def pump(self, camera_id: int) -> EventPump | None:
        entry = self._pumps.get(camera_id)
        return entry[1] if entry is not None else None


def stopped_status() -> dict[str, Any]:
    """The ``events`` object of a camera when no pumps run on this server."""
    out = PumpStatus().as_dict()
    out["soap_log"] = False
    return out


__all__ = ["POLL_S", "EventPumps", "stopped_status"]
