"""camsim Events: pull-point subscriptions through the real client's PullPointManager."""

from __future__ import annotations

import asyncio
import datetime as dt
import time

import pytest
from onvif import ONVIFCamera
from zeep.exceptions import Fault

from camsim.pytest_plugin import raw_soap
from vms.clock import FakeClock

TEV = "http://www.onvif.org/ver10/events/wsdl"


def simple_items(message, part: str) -> dict[str, str]:  # type: ignore[no-untyped-def]
    """Name -> Value of tt:SimpleItem under Source or Data of a pulled tt:Message element."""
    parsed = getattr(message.Message._value_1, part)  # zeep parsed tt:Message strictly
    return {i.Name: i.Value for i in parsed.SimpleItem}


def topic_of(message) -> str:  # type: ignore[no-untyped-def]
    return message.Topic._value_1


def operation_of(message) -> str | None:  # type: ignore[no-untyped-def]
    return message.Message._value_1.PropertyOperation


async def subscribe(cam):  # type: ignore[no-untyped-def]
    onvif = ONVIFCamera("127.0.0.1", cam.http_port, cam.username, cam.password)
    await onvif.update_xaddrs()
    manager = await onvif.create_pullpoint_manager(dt.timedelta(seconds=60), lambda: None)
    return onvif, manager, manager.get_service()


async def pull(service, timeout_s: float = 1.0, limit: int = 100):  # type: ignore[no-untyped-def]
    answer = await service.PullMessages({"MessageLimit": limit,
                                         "Timeout": dt.timedelta(seconds=timeout_s)})
    return answer.NotificationMessage


async def test_doorbell_motion_plate_and_relay_events(camsim_factory) -> None:
    fleet = await camsim_factory(count=1, rtsp=False)
    cam = fleet.cameras[0]
    onvif, manager, service = await subscribe(cam)
    try:
        initial = await pull(service, 0)
        assert {topic_of(m) for m in initial} >= {
            "tns1:VideoSource/MotionAlarm", "tns1:Device/Trigger/DigitalInput",
            "tns1:Device/Trigger/Relay", "tns1:RuleEngine/TamperDetector/Tamper",
        }
        assert all(operation_of(m) == "Initialized" for m in initial)
        assert await pull(service, 0) == []

        cam.fire_event("doorbell", True)
        (ring,) = await pull(service)
        assert topic_of(ring) == "tns1:Device/Trigger/DigitalInput"
        assert simple_items(ring, "Source") == {"InputToken": "DigitalInputToken_1"}
        assert simple_items(ring, "Data") == {"LogicalState": "true"}
        assert operation_of(ring) == "Changed"

        cam.fire_event("motion", True)
        motion = await pull(service)
        assert [topic_of(m) for m in motion] == ["tns1:VideoSource/MotionAlarm",
                                                 "tns1:RuleEngine/CellMotionDetector/Motion"]
        assert simple_items(motion[0], "Data") == {"State": "true"}
        assert simple_items(motion[1], "Data") == {"IsMotion": "true"}

        cam.fire_event("plate", plate="777KZA02")
        (plate,) = await pull(service)
        assert topic_of(plate) == "tns1:RuleEngine/LicensePlateDetector/LicensePlate"
        data = simple_items(plate, "Data")
        assert data["PlateNumber"] == "777KZA02" and data["Country"] == "KZ"
        assert float(data["Confidence"]) > 0.5
        assert operation_of(plate) is None

        cam.fire_event("tamper", True)
        (tamper,) = await pull(service)
        assert simple_items(tamper, "Data") == {"IsTamper": "true"}

        deviceio = await onvif.create_deviceio_service()
        await deviceio.SetRelayOutputState({"RelayOutputToken": "RelayOutputToken_1",
                                            "LogicalState": "active"})
        (relay,) = await pull(service)
        assert topic_of(relay) == "tns1:Device/Trigger/Relay"
        assert simple_items(relay, "Data") == {"LogicalState": "active"}
    finally:
        await manager.shutdown()
        await onvif.close()


async def test_pull_messages_long_polls(camsim_factory) -> None:
    fleet = await camsim_factory(count=1, rtsp=False)
    cam = fleet.cameras[0]
    onvif, manager, service = await subscribe(cam)
    try:
        await pull(service, 0)
        started = time.monotonic()
        assert await pull(service, 0.4) == []
        assert 0.35 < time.monotonic() - started < 2.0

        loop = asyncio.get_running_loop()
        loop.call_later(0.2, cam.fire_event, "doorbell", True)
        started = time.monotonic()
        messages = await pull(service, 10)
        assert len(messages) == 1
        assert time.monotonic() - started < 3.0

        for _ in range(5):
            cam.fire_event("motion", True)
        assert len(await pull(service, 1, limit=3)) == 3
        assert len(await pull(service, 1, limit=100)) == 7
    finally:
        await manager.shutdown()
        await onvif.close()


async def test_sync_point_renew_unsubscribe(camsim_factory) -> None:
    fleet = await camsim_factory(count=1, rtsp=False)
    cam = fleet.cameras[0]
    onvif, manager, service = await subscribe(cam)
    try:
        await pull(service, 0)
        cam.fire_event("doorbell", True)
        await pull(service, 0)
        await service.SetSynchronizationPoint()
        synced = await pull(service, 0)
        states = {topic_of(m): simple_items(m, "Data") for m in synced}
        assert states["tns1:Device/Trigger/DigitalInput"] == {"LogicalState": "true"}
        assert all(operation_of(m) == "Initialized" for m in synced)

        subscription = await onvif.create_subscription_service("PullPointSubscription")
        renewed = await subscription.Renew({"TerminationTime": "PT120S"})
        assert (renewed.TerminationTime - renewed.CurrentTime).total_seconds() == 120
        assert cam.state()["subscriptions"] == 1
        await subscription.Unsubscribe()
        assert cam.state()["subscriptions"] == 0
        with pytest.raises(Fault):
            await pull(service, 0)
    finally:
        await manager.shutdown()
        await onvif.close()


async def test_expired_subscription_answers_fault(camsim_factory) -> None:
    clock = FakeClock(start_us=time.time_ns() // 1000)
    fleet = await camsim_factory(count=1, rtsp=False, clock=clock)
    cam = fleet.cameras[0]
    onvif = ONVIFCamera("127.0.0.1", cam.http_port, cam.username, cam.password)
    try:
        await onvif.update_xaddrs()
        events = await onvif.create_events_service()
        result = await events.CreatePullPointSubscription({"InitialTerminationTime": "PT10S"})
        assert (result.TerminationTime - result.CurrentTime).total_seconds() == 10
        address = result.SubscriptionReference.Address._value_1
        assert address.startswith(f"http://127.0.0.1:{cam.http_port}/onvif/subscription/")
        onvif.xaddrs[f"{TEV}/PullPointSubscription"] = address
        service = await onvif.create_pullpoint_service()
        await service.PullMessages({"MessageLimit": 10, "Timeout": dt.timedelta(seconds=0)})
        clock.advance(11)
        with pytest.raises(Fault):
            await service.PullMessages({"MessageLimit": 10, "Timeout": dt.timedelta(seconds=0)})
        assert cam.state()["subscriptions"] == 0
    finally:
        await onvif.close()


async def test_event_answers_validate_against_xsd(camsim_factory, onvif_schemas) -> None:
    fleet = await camsim_factory(count=1, rtsp=False)
    cam = fleet.cameras[0]
    url = cam.onvif_url.replace("device_service", "event_service")
    creds = {"username": cam.username, "password": cam.password}
    for body_xml in (f'<GetEventProperties xmlns="{TEV}"/>', f'<GetServiceCapabilities xmlns="{TEV}"/>'):
        status, body = await raw_soap(url, body_xml, **creds)
        assert status == 200, body
        onvif_schemas.validate_body("events.wsdl", body)
    status, body = await raw_soap(
        url, f'<CreatePullPointSubscription xmlns="{TEV}"><InitialTerminationTime>PT60S'
        "</InitialTerminationTime></CreatePullPointSubscription>", **creds)
    assert status == 200
    created = onvif_schemas.validate_body("events.wsdl", body)
    address = created.findtext("{*}SubscriptionReference/{*}Address")
    cam.fire_event("doorbell", True)
    cam.fire_event("plate")
    status, body = await raw_soap(
        address, f'<PullMessages xmlns="{TEV}"><Timeout>PT1S</Timeout><MessageLimit>50'
        "</MessageLimit></PullMessages>", **creds)
    assert status == 200
    pulled = onvif_schemas.validate_body("events.wsdl", body)
    assert len(pulled.findall("{*}NotificationMessage")) >= 7
    for message in pulled.iterfind(".//{http://www.onvif.org/ver10/schema}Message"):
        onvif_schemas.validate_element("onvif.xsd", message)
