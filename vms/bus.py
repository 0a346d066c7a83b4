"""The in-process event bus: how packages that must not import each other talk.

``onvif_bridge`` publishes camera events, ``recorder`` subscribes to start event recordings, ``web``
streams them to browsers — all through one :class:`EventBus` created by the composition root.
Messages are frozen dataclasses; each subscriber gets its own bounded queue, so a slow subscriber
loses its oldest messages (counted in ``dropped``) instead of slowing the publisher.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CameraEvent:
    """Something a camera reported (or the server inferred) at an instant."""

    camera_id: int
    site_id: int
    type: str  # motion | doorbell | plate | tamper | relay | generic
    state: bool | None
    at_us: int
    event_id: int | None = None
    topic: str = ""
    data: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class CameraChanged:
    """A camera was adopted, edited or removed; recorders and UIs refresh it."""

    camera_id: int
    reason: str = "config_change"


@dataclass(frozen=True)
class StatusChanged:
    """A camera's recording status changed."""

    camera_id: int
    status: str
    reason: str
    since_us: int


class Subscription:
    def __init__(self, bus: EventBus, kinds: tuple[type, ...], maxsize: int) -> None:
        self._bus = bus
        self.kinds = kinds
        self.queue: asyncio.Queue[object] = asyncio.Queue(maxsize=maxsize)
        self.dropped = 0

    def offer(self, message: object) -> None:
        if self.kinds and not isinstance(message, self.kinds):
            return
        if self.queue.full():
            try:
                self.queue.get_nowait()
            except asyncio.QueueEmpty:
                pass
            self.dropped += 1
        self.queue.put_nowait(message)

    async def get(self) -> object:
        return await self.queue.get()

    def close(self) -> None:
        self._bus._subscriptions.discard(self)

    def __aiter__(self) -> AsyncIterator[object]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[object]:
        while True:
            yield await self.queue.get()


class EventBus:
    def __init__(self) -> None:
        self._subscriptions: set[Subscription] = set()

    def subscribe(self, *kinds: type, maxsize: int = 1000) -> Subscription:
        """Receive messages of these types (all, if none given). Call ``close()`` when done."""
        sub = Subscription(self, kinds, maxsize)
        self._subscriptions.add(sub)
        return sub

    def publish(self, message: object) -> None:
        """Deliver to every subscriber now; never blocks. Call from the event loop thread."""
        for sub in list(self._subscriptions):
            sub.offer(message)

    @property
    def subscriber_count(self) -> int:
        return len(self._subscriptions)
