"""Events stored by any node reach every node's live feed (a cluster on PostgreSQL).

The event store (vms/events.py) hands what it stored to :meth:`ClusterEvents.relay`, which sends
each item with ``pg_notify('vms_events', …)`` (one JSON payload per event: the node's name, the
item's kind, id, site and row) from a thread of its own; the same thread ``LISTEN``\\ s on the
channel and gives every other node's items to :meth:`vms.events.EventStore.publish_remote` on the
event loop, so a browser's ``/api/v1/events/stream`` on node A shows the doorbell that node B's
event pump stored. Delivery is PostgreSQL's: at most once, to the nodes listening at that moment;
a feed that reconnects catches up from the database by ``Last-Event-ID`` as it does on one node.
A payload over PostgreSQL's 8000-byte limit is not sent (counted in ``too_big``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import queue
import threading
from typing import Any

from vms.events import EventStore, StoredEvent

log = logging.getLogger(__name__)

CHANNEL = "vms_events"
MAX_PAYLOAD_BYTES = 7900


class ClusterEvents:
    """One thread: sends this node's items, listens for the others'."""

    def __init__(self, database_url: str, node: str, store: EventStore) -> None:
        self.url = database_url
        self.node = node
        self.store = store
        self._outbox: queue.SimpleQueue[str] = queue.SimpleQueue()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.sent = 0
        self.received = 0
        self.too_big = 0

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self.store.relay = self.relay
        self._thread = threading.Thread(target=self._run, name="cluster-events", daemon=True)
        self._thread.start()

    async def stop(self) -> None:
        self.store.relay = None
        self._stop.set()
        if self._thread is not None:
            await asyncio.to_thread(self._thread.join, 5)

    def relay(self, items: list[StoredEvent]) -> None:
        """On the event loop: queue this node's items for the other nodes."""
        for item in items:
            payload = json.dumps({"node": self.node, "kind": item.kind, "id": item.id,
                                  "site_id": item.site_id, "row": item.row},
                                 default=str, separators=(",", ":"))
            if len(payload.encode()) > MAX_PAYLOAD_BYTES:
                self.too_big += 1
                continue
            self._outbox.put(payload)

    def _run(self) -> None:
        import psycopg

        while not self._stop.is_set():
            try:
                with psycopg.connect(self.url, autocommit=True, connect_timeout=5,
                                     application_name=f"vms-events-{self.node}"[:63]) as conn:
                    conn.execute(f"LISTEN {CHANNEL}")
                    while not self._stop.is_set():
                        self._send(conn)
                        for note in conn.notifies(timeout=0.2, stop_after=100):
                            self._received(note.payload)
            except psycopg.Error as exc:
                log.warning("cluster events: %s; reconnecting", str(exc).strip())
                self._stop.wait(1.0)

    def _send(self, conn: Any) -> None:
        while True:
            try:
                payload = self._outbox.get_nowait()
            except queue.Empty:
                return
            conn.execute("SELECT pg_notify(%s, %s)", (CHANNEL, payload))
            self.sent += 1

    def _received(self, payload: str) -> None:
        try:
            data = json.loads(payload)
            if data.get("node") == self.node:
                return
            item = StoredEvent(kind=str(data["kind"]), id=int(data["id"]),
                               site_id=int(data["site_id"]), row=dict(data["row"]))
        except (ValueError, KeyError, TypeError) as exc:
            log.warning("cluster events: a malformed notification was ignored (%s)", exc)
            return
        self.received += 1
        if self._loop is not None and not self._loop.is_closed():
            with contextlib.suppress(RuntimeError):
                self._loop.call_soon_threadsafe(self.store.publish_remote, [item])
