"""ONVIF event messages (PullMessages answers and WS-BaseNotification Notify) into OnvifEvent.

Each ``wsnt:NotificationMessage`` becomes one :class:`OnvifEvent` with its topic, UTC time,
property operation, Source and Data items, a normalised :class:`EventKind` and the boolean state
it carries. Topic matching is by lower-cased segment text with namespace prefixes removed,
because vendors use ``tns1:``, their own prefixes or none at all.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from onvif_bridge.models import EventKind, OnvifEvent, PullMessagesResult
from onvif_bridge.xml import Element, attr, child, children, local, text

logger = logging.getLogger(__name__)

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

# Order matters: a plate read is also "motion" in some firmware topics.
_KIND_RULES: tuple[tuple[EventKind, tuple[str, ...]], ...] = (
    (EventKind.PLATE, ("licenseplate", "plate", "anpr", "lpr/")),
    (EventKind.DOORBELL, ("digitalinput", "doorbell", "callbutton")),
    (EventKind.TAMPER, ("tamper", "globalscenechange", "imagetoodark", "imagetooblurry",
                        "imagetoobright", "signalloss")),
    (EventKind.RELAY, ("relay",)),
    (EventKind.MOTION, ("motion", "fielddetector", "linedetector", "objectsinside", "intrusion",
                        "crossed")),
)

_STATE_KEYS = ("IsMotion", "State", "LogicalState", "IsTamper", "IsInside", "Active", "Value")
_TRUE = frozenset({"true", "1", "active", "on", "yes"})
_FALSE = frozenset({"false", "0", "inactive", "off", "no"})


def parse_xs_datetime(value: str) -> int | None:
    """An xs:dateTime as UTC microseconds; a value without offset is taken as UTC (ONVIF says
    UtcTime); None when unreadable."""
    value = value.strip()
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    try:
        delta = parsed - _EPOCH
    except OverflowError:
        return None
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def normalise_topic(topic: str) -> str:
    """``tns1:RuleEngine/CellMotionDetector/Motion`` → ``ruleengine/cellmotiondetector/motion``."""
    return "/".join(part.rsplit(":", 1)[-1] for part in topic.strip().split("/")).lower()


def classify(topic: str, data: dict[str, str]) -> EventKind:
    norm = normalise_topic(topic)
    for kind, needles in _KIND_RULES:
        if any(needle in norm for needle in needles):
            return kind
    if any("plate" in key.lower() for key in data):
        return EventKind.PLATE
    return EventKind.GENERIC


def event_state(data: dict[str, str]) -> bool | None:
    lowered = {key.lower(): value for key, value in data.items()}
    for key in _STATE_KEYS:
        value = lowered.get(key.lower())
        if value is None:
            continue
        value = value.strip().lower()
        if value in _TRUE:
            return True
        if value in _FALSE:
            return False
    return None


def _items(element: Element | None) -> dict[str, str]:
    items: dict[str, str] = {}
    if element is None:
        return items
    for item in element:
        kind = local(item.tag)
        name = attr(item, "Name")
        if not name:
            continue
        if kind == "SimpleItem":
            items[name] = attr(item, "Value")
        elif kind == "ElementItem":
            items[name] = " ".join(t.strip() for t in item.itertext() if t.strip())
    return items


def parse_notification(message: Element) -> OnvifEvent | None:
    """One ``NotificationMessage``; None when it has no topic (logged by the caller)."""
    topic = text(message, "Topic")
    if not topic:
        return None
    inner = child(message, "Message", "Message")
    if inner is None:
        # Some firmwares put tt:Message straight in wsnt:Message's place.
        inner = child(message, "Message")
    source = _items(child(inner, "Source"))
    data = _items(child(inner, "Data"))
    utc_text = attr(inner, "UtcTime")
    utc_time_us = parse_xs_datetime(utc_text)
    if utc_text and utc_time_us is None:
        logger.warning("event %s: unreadable UtcTime %r, keeping the event without a time",
                       topic, utc_text[:64])
    return OnvifEvent(
        topic=topic,
        utc_time_us=utc_time_us,
        property_operation=attr(inner, "PropertyOperation"),
        source=source,
        data=data,
        kind=classify(topic, data),
        state=event_state(data),
    )


def parse_pull_messages_element(operation: Element) -> PullMessagesResult:
    """A ``PullMessagesResponse`` or ``Notify`` element."""
    events = []
    for message in children(operation, "NotificationMessage"):
        event = parse_notification(message)
        if event is None:
            logger.warning("event message without a topic skipped")
            continue
        events.append(event)
    return PullMessagesResult(
        current_time_us=parse_xs_datetime(text(operation, "CurrentTime")),
        termination_time_us=parse_xs_datetime(text(operation, "TerminationTime")),
        events=tuple(events),
    )
