"""The event pump against camsim: events reach the bus within a second and keep doing so through
reboots, slow and broken answers; a wrong password stops it quietly; a camera that does not
long-poll is polled every second; the raw SOAP log keeps no credentials."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import pytest

from onvif_bridge.event_pump import EventPump, PumpCamera, PumpOptions
from vms.bus import CameraEvent, EventBus, Subscription
from vms.clock import SystemClock

PASSWORD = "pump-s3cret-pw"  # noqa: S105 - a test camera's login
FAST = PumpOptions(backoff_base_s=0.2, backoff_cap_s=1.0, request_timeout_s=2.0)


async def control(camera: Any, path: str, body: dict[str, Any]) -> None:
    async with aiohttp.ClientSession() as session, session.post(
            f"{camera.control_url}/{path}", json=body) as response:
        assert response.status == 200, await response.text()


async def next_event(sub: Subscription, accept: Callable[[CameraEvent], bool],
                     timeout_s: float) -> CameraEvent:
    deadline = time.monotonic() + timeout_s
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError("no matching event on the bus in time")
        message = await asyncio.wait_for(sub.get(), left)
        assert isinstance(message, CameraEvent)
        if accept(message):
            return message


async def wait_for(condition: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


@pytest.fixture
async def camera(camsim_factory):  # type: ignore[no-untyped-def]
    fleet = await camsim_factory(count=1, rtsp=False, password=PASSWORD, reboot_s=1.0)
    return fleet.cameras[0]


def pump_for(camera: Any, bus: EventBus, *, password: str = PASSWORD,
             options: PumpOptions = FAST) -> EventPump:
    return EventPump(PumpCamera(camera_id=7, site_id=3, name="gate", onvif_url=camera.onvif_url,
                                username=camera.username, password=password),
                     bus, SystemClock(), options=options)


@pytest.fixture
async def running(camera: Any) -> AsyncIterator[tuple[EventPump, Subscription]]:
    bus = EventBus()
    sub = bus.subscribe(CameraEvent)
    pump = pump_for(camera, bus)
    pump.start()
    try:
        await wait_for(lambda: pump.status.state == "subscribed", 5, "the subscription")
        yield pump, sub
    finally:
        await pump.stop()
        sub.close()


async def fire_and_receive(camera: Any, sub: Subscription, body: dict[str, Any],
                           accept: Callable[[CameraEvent], bool],
                           timeout_s: float = 1.0) -> tuple[CameraEvent, float]:
    fired = time.monotonic()
    await control(camera, "event", body)
    event = await next_event(sub, accept, timeout_s)
    return event, time.monotonic() - fired


async def test_typed_events_reach_the_bus_within_a_second(camera: Any, running) -> None:  # type: ignore[no-untyped-def]
    pump, sub = running
    before_us = SystemClock().now_us()

    bell, latency = await fire_and_receive(camera, sub, {"type": "doorbell"},
                                           lambda e: e.type == "doorbell")
    assert latency < 1.0
    assert (bell.camera_id, bell.site_id, bell.state) == (7, 3, None)
    assert bell.topic == "tns1:Device/Trigger/DigitalInput"
    assert bell.at_us >= before_us
    assert bell.data["source"] == {"InputToken": "DigitalInputToken_1"}
    assert isinstance(bell.data["camera_time_us"], int)
    assert abs(bell.data["camera_time_us"] - bell.at_us) < 2_000_000
    assert isinstance(bell.data["clock_offset_us"], int)

    # camsim, like Hikvision and DVC, says motion twice: VideoSource/MotionAlarm and
    # RuleEngine/CellMotionDetector/Motion, each its own event (topic and source kept)
    on, latency = await fire_and_receive(camera, sub, {"type": "motion", "state": True},
                                         lambda e: e.type == "motion" and "Cell" in e.topic)
    assert on.state is True and latency < 1.0
    assert on.data["source"]["Rule"] == "MyMotionDetectorRule"
    off, latency = await fire_and_receive(camera, sub, {"type": "motion", "state": False},
                                          lambda e: e.type == "motion" and "Cell" in e.topic)
    assert off.state is False and latency < 1.0

    tamper, latency = await fire_and_receive(camera, sub, {"type": "tamper", "state": True},
                                             lambda e: e.type == "tamper")
    assert tamper.state is True and latency < 1.0

    plate, latency = await fire_and_receive(camera, sub, {"type": "plate", "plate": "777KZA01"},
                                            lambda e: e.type == "plate")
    assert latency < 1.0 and plate.state is None
    assert plate.data["plate"] == "777KZA01" and plate.data["country"] == "KZ"
    assert plate.data["confidence"] == pytest.approx(0.93)
    assert pump.status.last_message_us is not None and pump.status.failures == 0


async def test_reboot_is_recovered_and_the_next_event_arrives(camera: Any, running) -> None:  # type: ignore[no-untyped-def]
    pump, sub = running
    made = pump.status.subscriptions
    await control(camera, "fault", {"kind": "reboot", "seconds": 1})
    await wait_for(lambda: pump.status.subscriptions > made and pump.status.state == "subscribed",
                   15, "a new subscription after the reboot")
    assert pump.status.failures_total >= 1
    event, latency = await fire_and_receive(camera, sub, {"type": "doorbell"},
                                            lambda e: e.type == "doorbell")
    assert latency < 1.0


async def test_initialized_after_resubscribe_is_not_published_again(camera: Any, running) -> None:  # type: ignore[no-untyped-def]
    """Motion on, reboot (all subscriptions lost), the camera re-states "motion on" as
    Initialized: no second "on" reaches the bus; the later "off" does."""
    pump, sub = running
    on, _ = await fire_and_receive(camera, sub, {"type": "motion", "state": True},
                                   lambda e: e.type == "motion" and "Cell" in e.topic)
    made = pump.status.subscriptions
    await control(camera, "fault", {"kind": "reboot", "seconds": 1})
    await wait_for(lambda: pump.status.subscriptions > made and pump.status.state == "subscribed",
                   15, "a new subscription after the reboot")
    off, _ = await fire_and_receive(camera, sub, {"type": "motion", "state": False},
                                    lambda e: e.type == "motion" and "Cell" in e.topic)
    assert off.state is False  # the first motion event after the reboot is the "off"


async def test_bad_xml_does_not_stop_the_pump_for_long(camera: Any, running) -> None:  # type: ignore[no-untyped-def]
    pump, sub = running
    await control(camera, "fault", {"kind": "bad_xml", "seconds": 2})
    fault_until = time.monotonic() + 2
    # the long-poll in flight answers this event; the next PullMessages meets the broken XML
    # (the event itself may be lost: a pulse between two subscriptions cannot be re-synchronised)
    await control(camera, "event", {"type": "doorbell"})
    await wait_for(lambda: pump.status.failures >= 1, 5, "the pump to notice the broken XML")
    assert "unreadable answer" in pump.status.error
    await wait_for(lambda: pump.status.state == "subscribed", 10, "a new subscription")
    assert time.monotonic() - fault_until < 3  # backoff capped at 1 s here
    _, latency = await fire_and_receive(camera, sub, {"type": "doorbell"},
                                        lambda e: e.type == "doorbell")
    assert latency < 1.0


async def test_slow_soap_does_not_stop_the_pump_for_long(camera: Any, running) -> None:  # type: ignore[no-untyped-def]
    pump, sub = running
    # slower than the request limit (2 s here): after a reboot every new subscription times out
    await control(camera, "fault", {"kind": "slow_soap", "seconds": 3})
    made = pump.status.subscriptions
    await control(camera, "fault", {"kind": "reboot", "seconds": 0.5})
    await wait_for(lambda: pump.status.failures >= 2 and "no answer" in pump.status.error, 15,
                   "timeouts while the camera is slow")
    assert pump.status.subscriptions == made
    await control(camera, "fault", {"kind": "clear"})
    cleared = time.monotonic()
    await wait_for(lambda: pump.status.subscriptions > made, 10, "a new subscription")
    assert time.monotonic() - cleared < 3
    _, latency = await fire_and_receive(camera, sub, {"type": "doorbell"},
                                        lambda e: e.type == "doorbell")
    assert latency < 1.0


async def test_wrong_password_stops_the_pump_without_a_retry_storm(camera: Any) -> None:
    bus = EventBus()
    pump = pump_for(camera, bus, password="not-the-password")
    pump.start()
    try:
        await wait_for(lambda: pump.status.state == "auth_failed", 5, "auth_failed")
        assert "wrong user name or password" in pump.status.error
        counted = sum(camera.soap.requests.values())
        await asyncio.sleep(3)  # the quiet period the test is about, not a synchronisation
        assert sum(camera.soap.requests.values()) == counted <= 3
        assert pump.status.state == "auth_failed" and not pump.running
    finally:
        await pump.stop()
    assert pump.status.state == "auth_failed"


async def test_camera_that_does_not_long_poll_is_polled_every_second(camera: Any) -> None:
    await control(camera, "fault", {"kind": "no_long_poll", "seconds": 600})
    bus = EventBus()
    sub = bus.subscribe(CameraEvent)
    pump = pump_for(camera, bus)
    pump.start()
    try:
        await wait_for(lambda: pump.status.mode == "fixed_poll", 5, "fixed polling")
        assert pump.status.state == "polling"
        pulls = camera.soap.requests.get("PullMessages", 0)
        started = time.monotonic()
        await asyncio.sleep(3)  # counting the polls of 3 s, not a synchronisation
        rate = (camera.soap.requests["PullMessages"] - pulls) / (time.monotonic() - started)
        assert 0.5 < rate < 2.0, rate
        # a poll a second: the event waits for the next one (the wait below is longer, so a slow
        # poll fails on the latency, naming it, rather than on a timeout)
        _, latency = await fire_and_receive(camera, sub, {"type": "doorbell"},
                                            lambda e: e.type == "doorbell", timeout_s=3.0)
        assert latency < 1.5, latency
    finally:
        await pump.stop()
        sub.close()


async def test_soap_log_keeps_exchanges_without_credentials(camera: Any) -> None:
    bus = EventBus()
    pump = pump_for(camera, bus)
    pump.soap_log.set(True)
    pump.start()
    try:
        await wait_for(lambda: pump.status.state == "subscribed", 5, "the subscription")
        await wait_for(lambda: len(pump.soap_log.exchanges) >= 4, 5, "logged exchanges")
    finally:
        await pump.stop()
    operations = [e.operation for e in pump.soap_log.exchanges]
    assert operations[:4] == ["GetSystemDateAndTime", "GetServices",
                              "CreatePullPointSubscription", "SetSynchronizationPoint"]
    create = pump.soap_log.exchanges[2]
    assert "[redacted]" in create.request and "SubscriptionReference" in create.response
    for exchange in pump.soap_log.exchanges:
        text = exchange.request + exchange.response
        assert PASSWORD not in text and "PasswordDigest" not in text and "Nonce" not in text
        assert camera.username not in exchange.request.replace("[redacted]", "")


async def test_renews_from_the_cameras_own_times_when_its_clock_is_an_hour_off(
        camsim_factory) -> None:  # type: ignore[no-untyped-def]
    """The camera's clock is an hour ahead: its TerminationTime compared with our clock would look
    an hour away and the subscription would lapse. Renewing from CurrentTime/TerminationTime's
    difference keeps one subscription alive across several lifetimes (4 s each here); the login
    is stamped in the camera's time (camsim refuses a Created 5 minutes off)."""
    fleet = await camsim_factory(count=1, rtsp=False, password=PASSWORD, clock_offset_s=3600)
    camera = fleet.cameras[0]
    bus = EventBus()
    sub = bus.subscribe(CameraEvent)
    pump = pump_for(camera, bus, options=PumpOptions(termination_s=4, request_timeout_s=2.0))
    pump.start()
    try:
        await wait_for(lambda: pump.status.state == "subscribed", 5, "the subscription")
        assert pump.status.clock_offset_us is not None
        assert abs(pump.status.clock_offset_us - 3600 * 1_000_000) < 1_500_000
        await wait_for(lambda: camera.soap.requests.get("Renew", 0) >= 4, 15, "four renewals")
        assert pump.status.subscriptions == 1 and pump.status.failures_total == 0
        assert camera.state()["subscriptions"] == 1
        bell, latency = await fire_and_receive(camera, sub, {"type": "doorbell"},
                                               lambda e: e.type == "doorbell")
        assert latency < 1.0
        # at_us is our receive time; the camera's own time is kept beside it
        assert abs(bell.data["camera_time_us"] - bell.at_us - 3600 * 1_000_000) < 2_000_000
    finally:
        await pump.stop()
        sub.close()


async def test_a_clock_jump_mid_subscription_is_no_wrong_password(camera: Any) -> None:
    """The camera's clock jumps an hour back (NTP step, reboot): it refuses our next WS-Security
    stamp (its subscription stays valid: it ends in the camera's own time). The login worked a
    moment ago, so the pump subscribes again (measuring the clock anew) instead of stopping at
    auth_failed."""
    bus = EventBus()
    sub = bus.subscribe(CameraEvent)
    pump = pump_for(camera, bus, options=PumpOptions(pull_timeout_s=2, request_timeout_s=2.0))
    pump.start()
    try:
        await wait_for(lambda: pump.status.state == "subscribed", 5, "the subscription")
        made = pump.status.subscriptions
        camera.set_clock_offset(-3600)
        # the next request (after the long-poll in flight, 2 s here) is refused (NotAuthorized)
        await wait_for(lambda: pump.status.subscriptions > made
                       and pump.status.state == "subscribed", 10,
                       "a new subscription after the clock jump")
        assert pump.status.failures_total >= 1
        assert abs((pump.status.clock_offset_us or 0) + 3600 * 1_000_000) < 1_500_000
        _, latency = await fire_and_receive(camera, sub, {"type": "doorbell"},
                                            lambda e: e.type == "doorbell")
        assert latency < 1.0
    finally:
        await pump.stop()
        sub.close()


async def test_camera_without_pull_point_is_unsupported_and_left_alone(camsim_factory) -> None:  # type: ignore[no-untyped-def]
    fleet = await camsim_factory(count=1, rtsp=False, password=PASSWORD, pull_point=False)
    camera = fleet.cameras[0]
    pump = pump_for(camera, EventBus())
    pump.start()
    try:
        await wait_for(lambda: pump.status.state == "unsupported", 5, "unsupported")
        assert "ActionNotSupported" in pump.status.error
        counted = sum(camera.soap.requests.values())
        await asyncio.sleep(1)  # the quiet period the test is about, not a synchronisation
        assert sum(camera.soap.requests.values()) == counted and not pump.running
    finally:
        await pump.stop()
    assert pump.status.state == "unsupported"
