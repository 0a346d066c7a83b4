"""The event store: camera events from the bus into ``Event`` rows, and the searches over them.

:class:`EventStore` subscribes to :class:`vms.bus.CameraEvent` (bounded queue, drops counted) and
writes through the gateway's writer in small batches: whatever has queued up while the previous
batch was written goes in one transaction, so a burst costs few transactions and a lone event is
written at once. Property events (``state`` True/False) become intervals: an "on" opens a row
(``end_us`` NULL), a repeated "on" while it is open continues it (no duplicate: a resubscribe's
"Initialized" state), an "off" closes it; an interval whose "off" never comes is closed
``[events] max_open_seconds`` after it started and marked ``data.closed = "max_open"``. Pulses
(``state`` None: doorbell, plate) have ``end_us = start_us``. ``start_us`` is our receive time; the
camera's own time and its measured clock offset stay in ``data``. Types a camera does not keep
(``Camera.event_types_kept``) are dropped.

Every stored row (and every interval closed) is offered to the store's listeners — the live feed
(``GET /api/v1/events/stream``) — each with its own bounded queue that counts what it drops; in a
cluster also to every other node's feed (:attr:`EventStore.relay`, vms/cluster_events.py).

The searches (:func:`search`, :func:`after_id`) are scoped by the asking principal's sites; plate
search matches the normalised text (:func:`normalise_plate`) anywhere in the plate.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import peewee as pw

from vms.auth import Principal
from vms.bus import CameraChanged, CameraEvent, EventBus, Subscription
from vms.clock import Clock
from vms.db import models as m
from vms.db.gateway import Gateway

log = logging.getLogger(__name__)

EVENT_TYPES = ("motion", "doorbell", "plate", "tamper", "relay", "generic")
BATCH_MAX = 200
"""At most this many bus messages in one write transaction."""
QUEUE_MAX = 10_000
"""The store's bus queue: a burst this large waits for the writer; beyond it the oldest drop."""
LISTENER_QUEUE_MAX = 256
"""Each live-feed client's queue; a client that cannot keep up loses its oldest items."""
PAGE_MAX = 500

# Cyrillic letters that look like Latin ones on a plate (Russian plates use only these 12).
_LOOKALIKE = str.maketrans("АВЕКМНОРСТУХ", "ABEKMHOPCTYX")


def normalise_plate(text: str) -> str:
    """Plate text for search: upper case, look-alike Cyrillic letters as Latin, without spaces,
    dashes and other separators. ``"123 авс 02"`` → ``"123ABC02"``."""
    upper = text.upper().translate(_LOOKALIKE)
    return "".join(ch for ch in upper if ch.isalnum())[:32]


def parse_types(text: str) -> frozenset[str]:
    """A comma-separated list of event types; unknown names raise ValueError naming them."""
    names = {t.strip() for t in text.split(",") if t.strip()}
    unknown = sorted(names - set(EVENT_TYPES))
    if unknown:
        raise ValueError(f"unknown event type(s) {', '.join(unknown)} "
                         f"(known: {', '.join(EVENT_TYPES)})")
    return frozenset(names)


def format_types(types: frozenset[str] | set[str]) -> str:
    return ",".join(t for t in EVENT_TYPES if t in types)


def _source(data: dict[str, Any]) -> str:
    """Which of a camera's sources (video source, input, rule) a property event is about: two
    motion rules of one camera are two intervals. ``data["source"]`` as the pump gives it."""
    source = data.get("source") if isinstance(data, dict) else None
    if source is None or source == "":
        return ""
    return json.dumps(source, sort_keys=True, default=str)


@dataclass(frozen=True)
class StoredEvent:
    """What the live feed sends: a new row (``kind="event"``), a row closed (``kind="end"``), or
    news about a row (``kind="answered"``: :meth:`EventStore.announce`)."""

    kind: str
    id: int
    site_id: int
    row: dict[str, Any]


class Listener:
    """One live-feed client: a bounded queue of :class:`StoredEvent` (None: the server stops)."""

    def __init__(self, store: EventStore, site_ids: frozenset[int] | None,
                 maxsize: int = LISTENER_QUEUE_MAX) -> None:
        self._store = store
        self.site_ids = site_ids
        self.queue: asyncio.Queue[StoredEvent | None] = asyncio.Queue(maxsize=maxsize)
        self.dropped = 0

    def offer(self, item: StoredEvent | None) -> None:
        if item is not None and self.site_ids is not None and item.site_id not in self.site_ids:
            return
        if self.queue.full():
            with contextlib.suppress(asyncio.QueueEmpty):
                self.queue.get_nowait()
            self.dropped += 1
            self._store.listener_dropped += 1
        self.queue.put_nowait(item)

    def close(self) -> None:
        self._store.listeners.discard(self)


@dataclass
class _CameraInfo:
    site_id: int
    kept: frozenset[str]
    name: str
    site_name: str


FEED_HEARTBEAT_S = 15.0
"""Default :attr:`EventStore.feed_heartbeat_s`: proxies drop idle connections after ~60 s."""


class EventStore:
    """The bus subscriber writing ``Event`` rows; see the module docstring."""

    def __init__(self, gateway: Gateway, bus: EventBus, clock: Clock, *,
                 max_open_s: int) -> None:
        self.gw = gateway
        self.bus = bus
        self.clock = clock
        self.max_open_us = max_open_s * 1_000_000
        self.feed_heartbeat_s = FEED_HEARTBEAT_S
        """Seconds of silence after which a live feed sends a heartbeat comment."""
        self.listeners: set[Listener] = set()
        self.stored = 0
        self.dropped_types = 0
        self.listener_dropped = 0
        self.closed_max_open = 0
        self._sub: Subscription | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._open: dict[tuple[int, str, str, str], int] = {}
        """(camera, type, topic, source) → the open interval's event id."""
        self._open_start: dict[int, int] = {}  # event id → start_us
        self._cameras: dict[int, _CameraInfo | None] = {}
        self.closing = False
        self.relay: Callable[[list[StoredEvent]], None] | None = None
        """In a cluster: sends what this node stored to the other nodes' feeds
        (vms/cluster_events.py), which hand it to :meth:`publish_remote`."""

    @property
    def bus_dropped(self) -> int:
        return self._sub.dropped if self._sub is not None else 0

    async def start(self) -> None:
        self._sub = self.bus.subscribe(CameraEvent, CameraChanged, maxsize=QUEUE_MAX)
        await self.gw.read(self._load_open)
        self._tasks.append(asyncio.create_task(self._run(self._sub), name="event-store"))
        self._tasks.append(asyncio.create_task(self._sweep_loop(), name="event-store-sweep"))

    async def _reload(self) -> None:
        """After a failed transaction: the open intervals as the database has them."""
        self._open.clear()
        self._open_start.clear()
        self._cameras.clear()
        with contextlib.suppress(Exception):
            await self.gw.read(self._load_open)

    def _load_open(self) -> None:
        rows = (m.Event.select(m.Event.id, m.Event.camera, m.Event.type, m.Event.topic,
                               m.Event.start_us, m.Event.data)
                .where(m.Event.end_us.is_null()).tuples())
        for eid, camera_id, etype, topic, start_us, data in rows:
            try:
                parsed = json.loads(data or "{}")
            except ValueError:
                parsed = {}
            self._open[(camera_id, etype, topic, _source(parsed))] = eid
            self._open_start[eid] = start_us

    def shutdown(self) -> None:
        """End every live feed (at server shutdown, before open requests are awaited)."""
        self.closing = True
        for listener in list(self.listeners):
            listener.offer(None)

    async def stop(self) -> None:
        self.shutdown()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
        if self._sub is not None:
            self._sub.close()

    def listen(self, site_ids: frozenset[int] | None) -> Listener:
        listener = Listener(self, site_ids)
        self.listeners.add(listener)
        if self.closing:
            listener.offer(None)
        return listener

    def announce(self, kind: str, event_id: int, site_id: int, row: dict[str, Any]) -> None:
        """Tell the live feeds of the site something about a stored event (``answered``: a
        doorbell was answered, vms/rings.py), sent as an SSE ``kind`` event without an id."""
        self._publish([StoredEvent(kind, event_id, site_id, row)])

    def _publish(self, items: list[StoredEvent]) -> None:
        for item in items:
            for listener in list(self.listeners):
                listener.offer(item)
        if self.relay is not None and items:
            self.relay(items)

    def publish_remote(self, items: list[StoredEvent]) -> None:
        """Events another node of the cluster stored: to this node's live feeds only."""
        for item in items:
            for listener in list(self.listeners):
                listener.offer(item)

    # -- writing -------------------------------------------------------------------------------

    async def _run(self, sub: Subscription) -> None:
        while True:
            batch = [await sub.get()]
            while len(batch) < BATCH_MAX and not sub.queue.empty():
                batch.append(sub.queue.get_nowait())
            try:
                stored = await self.gw.write(self._write_batch, batch)
            except Exception as exc:
                # e.g. a camera deleted meanwhile: the others of the batch must not be lost
                log.warning("event store: a batch of %d messages failed (%r); writing them one "
                            "by one", len(batch), exc)
                await self._reload()
                stored = []
                for message in batch:
                    try:
                        stored += await self.gw.write(self._write_batch, [message])
                    except Exception:
                        log.exception("event store: %r was not written", message)
                        await self._reload()
            self._publish(stored)

    def _camera(self, camera_id: int) -> _CameraInfo | None:
        if camera_id not in self._cameras:
            row = (m.Camera.select(m.Camera.site, m.Camera.event_types_kept, m.Camera.name,
                                   m.Site.name).join(m.Site).where(m.Camera.id == camera_id)
                   .tuples().first())
            if row is None:
                self._cameras[camera_id] = None
            else:
                site_id, kept, name, site_name = row
                try:
                    kept_types = parse_types(kept)
                except ValueError:
                    kept_types = frozenset(EVENT_TYPES)
                self._cameras[camera_id] = _CameraInfo(site_id, kept_types, name, site_name)
        return self._cameras[camera_id]

    def _write_batch(self, batch: list[object]) -> list[StoredEvent]:
        """On the writer thread: every message of the batch, in order, in one transaction."""
        out: list[StoredEvent] = []
        for message in batch:
            if isinstance(message, CameraChanged):
                self._cameras.pop(message.camera_id, None)
                continue
            if not isinstance(message, CameraEvent):
                continue
            item = self._apply(message)
            if item is not None:
                out.append(item)
        self.stored += sum(1 for i in out if i.kind == "event")
        return out

    def _apply(self, ev: CameraEvent) -> StoredEvent | None:
        info = self._camera(ev.camera_id)
        if info is None:
            return None
        etype = ev.type if ev.type in EVENT_TYPES else "generic"
        if etype not in info.kept:
            self.dropped_types += 1
            return None
        key = (ev.camera_id, etype, ev.topic[:300], _source(ev.data))
        if ev.state is False:
            eid = self._open.pop(key, None)
            if eid is None:
                return None  # an "off" for nothing open (a state sent after a resubscribe)
            self._open_start.pop(eid, None)
            m.Event.update(end_us=ev.at_us).where(m.Event.id == eid).execute()
            return StoredEvent("end", eid, info.site_id, {"id": eid, "end_us": ev.at_us})
        if ev.state is True and key in self._open:
            return None  # the same interval continues
        data = dict(ev.data)
        plate = ""
        if etype == "plate":
            plate = normalise_plate(str(data.get("plate", "")))
        end_us = ev.at_us if ev.state is None else None
        row = m.Event.create(camera=ev.camera_id, site=info.site_id, type=etype,
                             start_us=ev.at_us, end_us=end_us, topic=ev.topic[:300], plate=plate,
                             data=json.dumps(data, separators=(",", ":"), default=str))
        if ev.state is True:
            self._open[key] = row.id
            self._open_start[row.id] = ev.at_us
        view = {"id": row.id, "camera_id": ev.camera_id, "camera_name": info.name,
                "site_id": info.site_id, "site_name": info.site_name, "type": etype,
                "topic": ev.topic[:300], "start_us": ev.at_us, "end_us": end_us, "data": data}
        return StoredEvent("event", row.id, info.site_id, view)

    # -- closing intervals that never ended ----------------------------------------------------

    async def _sweep_loop(self) -> None:
        period = min(max(self.max_open_us / 4_000_000, 0.1), 30.0)
        while True:
            await asyncio.sleep(period)
            try:
                closed = await self.close_overdue()
            except Exception:
                log.exception("event store: closing overdue intervals failed")
                continue
            self._publish(closed)

    async def close_overdue(self) -> list[StoredEvent]:
        """Close every open interval that started more than ``max_open_seconds`` ago."""
        limit = self.clock.now_us() - self.max_open_us
        if not any(start < limit for start in list(self._open_start.values())):
            return []
        return await self.gw.write(self._close_overdue, limit)

    def _close_overdue(self, limit: int) -> list[StoredEvent]:
        out = []
        for key, eid in list(self._open.items()):
            start = self._open_start.get(eid)
            if start is None or start >= limit:
                continue
            row = m.Event.get_or_none(m.Event.id == eid)
            del self._open[key]
            self._open_start.pop(eid, None)
            if row is None or row.end_us is not None:
                continue
            try:
                data = json.loads(row.data or "{}")
            except ValueError:
                data = {}
            data["closed"] = "max_open"
            end_us = start + self.max_open_us
            m.Event.update(end_us=end_us, data=json.dumps(data, separators=(",", ":"))).where(
                m.Event.id == eid).execute()
            self.closed_max_open += 1
            out.append(StoredEvent("end", eid, row.site_id,
                                   {"id": eid, "end_us": end_us, "closed": "max_open"}))
        return out


# -- searching ---------------------------------------------------------------------------------

class BadCursor(ValueError):
    pass


@dataclass(frozen=True)
class EventQuery:
    site_id: int | None = None
    camera_id: int | None = None
    type: str | None = None
    from_us: int | None = None
    to_us: int | None = None
    plate: str = ""
    limit: int = 100
    cursor: str = ""


def _cursor(start_us: int, eid: int) -> str:
    return f"{start_us}_{eid}"


def _parse_cursor(text: str) -> tuple[int, int]:
    try:
        start, eid = text.split("_", 1)
        return int(start), int(eid)
    except ValueError:
        raise BadCursor(f"cursor {text!r} is not one this server gave (next_cursor)") from None


def _view(row: m.Event) -> dict[str, Any]:
    try:
        data = json.loads(row.data or "{}")
    except ValueError:
        data = {}
    return {"id": row.id, "camera_id": row.camera_id, "camera_name": row.camera.name,
            "site_id": row.site_id, "site_name": row.camera.site.name, "type": row.type,
            "topic": row.topic, "start_us": row.start_us, "end_us": row.end_us, "data": data}


def _scoped(principal: Principal) -> pw.ModelSelect:
    query = (m.Event.select(m.Event, m.Camera, m.Site).join(m.Camera)
             .join(m.Site, on=(m.Camera.site == m.Site.id)))
    if principal.site_ids is not None:
        query = query.where(m.Event.site.in_(sorted(principal.site_ids)))
    return query


def search(principal: Principal, q: EventQuery) -> dict[str, Any]:
    """Events newest first (by ``start_us``, then id), at most ``q.limit``; ``next_cursor`` gives
    the next page (None: no more). Call on a reader thread; the caller checked that the camera
    and site filters are the principal's."""
    query = _scoped(principal)
    if q.site_id is not None:
        query = query.where(m.Event.site == q.site_id)
    if q.camera_id is not None:
        query = query.where(m.Event.camera == q.camera_id)
    if q.type:
        query = query.where(m.Event.type == q.type)
    if q.from_us is not None:
        query = query.where(m.Event.start_us >= q.from_us)
    if q.to_us is not None:
        query = query.where(m.Event.start_us < q.to_us)
    plate = normalise_plate(q.plate)
    if q.plate:
        # letters and digits only: no LIKE wildcard can be in it. ``plate <> ''`` lets PostgreSQL
        # use the partial trigram index (migration 011), which answers ILIKE too.
        query = query.where((m.Event.plate != "") & m.Event.plate.contains(plate))
    if q.cursor:
        start_us, eid = _parse_cursor(q.cursor)
        query = query.where((m.Event.start_us < start_us)
                            | ((m.Event.start_us == start_us) & (m.Event.id < eid)))
    rows = list(query.order_by(m.Event.start_us.desc(), m.Event.id.desc()).limit(q.limit + 1))
    more = len(rows) > q.limit
    rows = rows[:q.limit]
    events = [_view(r) for r in rows]
    next_cursor = _cursor(rows[-1].start_us, rows[-1].id) if more and rows else None
    return {"events": events, "next_cursor": next_cursor}


def after_id(principal: Principal, last_id: int, limit: int = 1000) -> list[dict[str, Any]]:
    """Rows stored after ``last_id`` (oldest first) in the principal's sites: what a live feed
    reconnecting with ``Last-Event-ID`` missed."""
    query = _scoped(principal).where(m.Event.id > last_id).order_by(m.Event.id).limit(limit)
    return [_view(r) for r in query]


def max_id() -> int:
    return int(m.Event.select(pw.fn.MAX(m.Event.id)).scalar() or 0)


def collector(store: EventStore) -> Callable[[], dict[str, int]]:
    """The store's counters, for the metrics collector of the composition root."""
    def figures() -> dict[str, int]:
        return {"stored": store.stored, "bus_dropped": store.bus_dropped,
                "feed_dropped": store.listener_dropped, "closed_max_open": store.closed_max_open}
    return figures
