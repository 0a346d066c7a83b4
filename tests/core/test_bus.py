"""The core event bus: typed subscriptions, bounded queues, no blocking publisher."""

from __future__ import annotations

import asyncio

from vms.bus import CameraChanged, CameraEvent, EventBus


async def test_subscribers_get_the_kinds_they_asked_for() -> None:
    bus = EventBus()
    events = bus.subscribe(CameraEvent)
    everything = bus.subscribe()
    bus.publish(CameraChanged(1))
    bus.publish(CameraEvent(camera_id=1, site_id=1, type="doorbell", state=True, at_us=5))
    assert await asyncio.wait_for(events.get(), 1) == CameraEvent(1, 1, "doorbell", True, 5)
    assert isinstance(await everything.get(), CameraChanged)
    assert isinstance(await everything.get(), CameraEvent)
    events.close()
    assert bus.subscriber_count == 1


async def test_a_slow_subscriber_loses_oldest_messages_not_the_publisher() -> None:
    bus = EventBus()
    sub = bus.subscribe(maxsize=3)
    for i in range(10):
        bus.publish(CameraChanged(i))
    got = [(await sub.get()).camera_id for _ in range(3)]  # type: ignore[attr-defined]
    assert got == [7, 8, 9]
    assert sub.dropped == 7
