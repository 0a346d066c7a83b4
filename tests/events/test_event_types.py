"""Typed events from real vendors' PullMessages answers (../shared/fixtures/onvif) and the
normalisation of property events (Initialized / Changed / Deleted) into bus events."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from onvif_bridge.event_pump import EventPump, PumpCamera
from onvif_bridge.event_types import REGISTRY, typed
from onvif_bridge.models import EventKind, OnvifEvent, PullMessagesResult
from onvif_bridge.parsers import parse_response
from vms.bus import CameraEvent, EventBus
from vms.clock import FakeClock

FIXTURES = Path(__file__).resolve().parents[2].parent / "shared" / "fixtures" / "onvif"


@pytest.fixture
def load() -> Callable[[str], PullMessagesResult]:
    def read(name: str) -> PullMessagesResult:
        path = FIXTURES / name
        if not path.is_file():
            pytest.skip(f"real camera answer {path} not found (the shared folder beside the repo)")
        result = parse_response(path.read_bytes())
        assert isinstance(result, PullMessagesResult)
        return result

    return read


def pump_and_bus() -> tuple[EventPump, list[CameraEvent]]:
    bus = EventBus()
    sub = bus.subscribe(CameraEvent)
    pump = EventPump(PumpCamera(1, 2, "cam", "http://127.0.0.1:9/onvif/device_service", "u",
                                "p"), bus, FakeClock())
    published: list[CameraEvent] = []

    def drain() -> None:
        while not sub.queue.empty():
            message = sub.queue.get_nowait()
            assert isinstance(message, CameraEvent)
            published.append(message)

    original = pump.accept

    def accept(event: OnvifEvent, at_us: int) -> None:
        original(event, at_us)
        drain()

    pump.accept = accept  # type: ignore[method-assign]
    return pump, published


def event(topic: str, operation: str, data: dict[str, str],
          source: dict[str, str] | None = None) -> OnvifEvent:
    return OnvifEvent(topic=topic, utc_time_us=1_000_000, property_operation=operation,
                      source=source or {"Source": "VideoSource_1"}, data=data)


def test_registry_has_one_entry_per_kind() -> None:
    kinds = [parser.kind for parser in REGISTRY]
    assert sorted(kinds) == sorted({*kinds})
    assert set(kinds) == set(EventKind) - {EventKind.GENERIC}


def test_hikvision_answer_kinds(load) -> None:  # type: ignore[no-untyped-def]
    result = load("hikvision__PullMessages.xml")
    kinds = {e.topic.strip(): typed(e).kind for e in result.events}
    assert kinds["tns1:VideoSource/MotionAlarm"] is EventKind.MOTION
    assert kinds["tns1:RuleEngine/CellMotionDetector/Motion"] is EventKind.MOTION
    assert kinds["tns1:RuleEngine/FieldDetector/ObjectsInside"] is EventKind.MOTION
    assert kinds["tns1:RuleEngine/TamperDetector/Tamper"] is EventKind.TAMPER
    assert kinds["tns1:VideoSource/ImageTooDark/ImagingService"] is EventKind.TAMPER
    assert kinds["tns1:Monitoring/OperatingTime/LastReboot"] is EventKind.GENERIC


def test_hikvision_initial_states_publish_nothing_and_restate_nothing(load) -> None:  # type: ignore[no-untyped-def]
    """Hikvision's first answer: every property Initialized false; the Monitoring times (no
    boolean) are kept once as generic events; the same answer after a resubscribe publishes
    nothing."""
    result = load("hikvision__PullMessages.xml")
    pump, published = pump_and_bus()
    for e in result.events:
        pump.accept(e, 5)
    assert {p.type for p in published} == {"generic"}
    assert all(p.topic.strip().startswith("tns1:Monitoring/") for p in published)
    assert all(p.data["items"]["Status"] == "2025-04-17T15:31:49Z" for p in published)
    published.clear()
    for e in result.events:
        pump.accept(e, 6)
    assert published == []


def test_dvc_motion_changed_true(load) -> None:  # type: ignore[no-untyped-def]
    result = load("dvc-dcn-bm2220lpr__PullMessages__motion.xml")
    pump, published = pump_and_bus()
    for e in result.events:
        pump.accept(e, 5)
    assert [(p.type, p.state) for p in published] == [("motion", True), ("motion", True)]
    alarm = published[0]
    assert alarm.at_us == 5 and alarm.topic == "tns1:VideoSource/MotionAlarm"
    assert alarm.data["camera_time_us"] == result.events[0].utc_time_us
    assert alarm.data["source"] == {"Source": "VideoSource_token_1"}
    # the same "true" again is a repetition, not a new start
    published.clear()
    for e in result.events:
        pump.accept(e, 6)
    assert published == []


def test_property_lifecycle() -> None:
    pump, published = pump_and_bus()
    motion = "tns1:RuleEngine/CellMotionDetector/Motion"
    pump.accept(event(motion, "Initialized", {"IsMotion": "false"}), 1)
    assert published == []  # nothing started
    pump.accept(event(motion, "Changed", {"IsMotion": "true"}), 2)
    pump.accept(event(motion, "Initialized", {"IsMotion": "true"}), 3)  # after a resubscribe
    pump.accept(event(motion, "Changed", {"IsMotion": "false"}), 4)
    pump.accept(event(motion, "Changed", {"IsMotion": "true"}), 5)
    pump.accept(event(motion, "Deleted", {"IsMotion": "true"}), 6)  # the rule was removed
    assert [(p.at_us, p.state) for p in published] == [(2, True), (4, False), (5, True),
                                                       (6, False)]
    # a motion already on when we first subscribe is a start
    pump2, published2 = pump_and_bus()
    pump2.accept(event(motion, "Initialized", {"IsMotion": "true"}), 1)
    assert [(p.type, p.state) for p in published2] == [("motion", True)]
    # an Initialized "false" after a resubscribe ends a motion whose "off" was lost
    pump2.accept(event(motion, "Initialized", {"IsMotion": "false"}), 2)
    assert [(p.at_us, p.state) for p in published2] == [(1, True), (2, False)]


def test_doorbell_and_plate_are_pulses() -> None:
    pump, published = pump_and_bus()
    bell = "tns1:Device/Trigger/DigitalInput"
    src = {"InputToken": "DigitalInputToken_1"}
    pump.accept(event(bell, "Initialized", {"LogicalState": "false"}, src), 1)
    pump.accept(event(bell, "Changed", {"LogicalState": "true"}, src), 2)
    pump.accept(event(bell, "Changed", {"LogicalState": "false"}, src), 3)
    pump.accept(event(bell, "Changed", {"LogicalState": "true"}, src), 4)
    pump.accept(event(bell, "Initialized", {"LogicalState": "true"}, src), 5)
    assert [(p.type, p.state, p.at_us) for p in published] == [("doorbell", None, 2),
                                                               ("doorbell", None, 4)]
    published.clear()
    pump.accept(event("tns1:RuleEngine/LicensePlateDetector/LicensePlate", "",
                      {"PlateNumber": "123ABC02", "Country": "KZ", "Confidence": "87"}), 6)
    (plate,) = published
    assert (plate.type, plate.state) == ("plate", None)
    assert (plate.data["plate"], plate.data["country"]) == ("123ABC02", "KZ")
    assert plate.data["confidence"] == pytest.approx(0.87)  # 0..100 firmware scaled to 0..1


def test_relay_and_vendor_prefixes() -> None:
    relay = typed(event("tns1:Device/Trigger/Relay", "Changed", {"LogicalState": "active"},
                        {"RelayToken": "R1"}))
    assert (relay.kind, relay.state, relay.pulse) == (EventKind.RELAY, True, False)
    axis = typed(event("tnsaxis:CameraApplicationPlatform/VMD/Camera1Profile1", "Changed",
                       {"active": "1"}))
    assert (axis.kind, axis.state) == (EventKind.MOTION, True)
    unknown = typed(event("tns1:Device/HardwareFailure/StorageFailure", "Changed",
                          {"Failed": "true"}))
    assert unknown.kind is EventKind.GENERIC


def test_backoff_is_exponential_jittered_and_capped_at_a_minute() -> None:
    pump, _ = pump_and_bus()
    for failures, (low, high) in {1: (0.5, 1.0), 2: (1.0, 2.0), 3: (2.0, 4.0), 6: (16.0, 32.0),
                                  7: (30.0, 60.0), 50: (30.0, 60.0), 10_000: (30.0, 60.0)}.items():
        delays = [pump.backoff_s(failures) for _ in range(50)]
        assert all(low <= d <= high for d in delays), (failures, min(delays), max(delays))
        assert len(set(delays)) > 10  # jittered: cameras that failed together retry apart
