"""Typed camera events: a registry of parsers from ONVIF topics and items to our event types.

Each :class:`EventParser` in :data:`REGISTRY` owns one kind (``motion``, ``doorbell``, ``plate``,
``tamper``, ``relay``); the first whose ``matches`` accepts an :class:`~onvif_bridge.models.OnvifEvent`
turns it into a :class:`TypedEvent`, anything no entry accepts becomes ``generic`` with its raw
topic and items kept. Each entry carries a comment naming the vendor quirk it handles; adding a
vendor means adding or widening one entry, never an if/elif chain.

Topics are compared without namespace prefixes and in lower case (``tns1:``, ``tnsaxis:``, none),
by :func:`onvif_bridge.events.normalise_topic`. Property events keep their boolean state (the
pump turns Initialized/Changed/Deleted into start and end); pulses (doorbell, plate) carry
``state=None``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from onvif_bridge.events import event_state, normalise_topic
from onvif_bridge.models import EventKind, OnvifEvent


@dataclass(frozen=True, slots=True)
class TypedEvent:
    """What an ONVIF notification means for us."""

    kind: EventKind
    pulse: bool
    """True: a momentary event (doorbell press, plate read): published with ``state=None``."""
    state: bool | None
    """The property's state (True: started, False: ended); None when it carries none."""
    extra: dict[str, Any] = field(default_factory=dict)
    """Members added to the published event's ``data`` (``plate``, ``country``, ``confidence``)."""


def _topic_has(*needles: str) -> Callable[[str, OnvifEvent], bool]:
    def match(norm: str, event: OnvifEvent) -> bool:
        return any(needle in norm for needle in needles)

    return match


def _lookup(items: dict[str, str], *names: str) -> str | None:
    lowered = {key.lower(): value for key, value in items.items()}
    for name in names:
        value = lowered.get(name.lower())
        if value is not None and value.strip():
            return value.strip()
    return None


def _plate_items(event: OnvifEvent) -> dict[str, Any]:
    items = {**event.source, **event.data}
    extra: dict[str, Any] = {
        # camsim and DVC's LPR firmware say PlateNumber; Hikvision ANPR "LicensePlate";
        # Axis/Milesight analytics "PlateText" / "Plate".
        "plate": _lookup(items, "PlateNumber", "LicensePlate", "PlateText", "Plate",
                         "LicensePlateNumber", "Number"),
        "country": _lookup(items, "Country", "CountryCode", "Nation", "Region"),
        "confidence": None,
    }
    confidence = _lookup(items, "Confidence", "Likelihood", "Score")
    if confidence is not None:
        try:
            value = float(confidence)
        except ValueError:
            value = None
        if value is not None and value == value and value not in (float("inf"), float("-inf")):
            # Some firmware states 0..100 (Hikvision), ONVIF 0..1.
            extra["confidence"] = value / 100.0 if value > 1.0 else value
    return extra


def _no_extra(event: OnvifEvent) -> dict[str, Any]:
    return {}


def _plate_matches(norm: str, event: OnvifEvent) -> bool:
    if any(needle in norm for needle in ("licenseplate", "licenceplate", "/plate", "anpr", "lpr")):
        return True
    # Milesight/Uniview put the plate under a generic RuleEngine topic: the item names tell.
    return any("plate" in key.lower() for key in (*event.data, *event.source))


@dataclass(frozen=True, slots=True)
class EventParser:
    kind: EventKind
    pulse: bool
    matches: Callable[[str, OnvifEvent], bool]
    details: Callable[[OnvifEvent], dict[str, Any]] = _no_extra


REGISTRY: tuple[EventParser, ...] = (
    # Plates first: an LPR camera's plate topic may also say "motion"/"vehicle" (DVC
    # DCN-BM2220LPR sends plates and motion); the reading is a pulse with the plate text.
    EventParser(EventKind.PLATE, True, _plate_matches, _plate_items),
    # Intercom call button: ONVIF Device/Trigger/DigitalInput (LogicalState true on press, camsim
    # and DVC/Dahua door stations); Hikvision/Dahua VTO firmware also names it CallButton or
    # Doorbell. A press is a pulse: the release ("false") is not published.
    EventParser(EventKind.DOORBELL, True,
                _topic_has("digitalinput", "doorbell", "callbutton", "call/", "/ring")),
    # Tamper: tns1:RuleEngine/TamperDetector/Tamper (IsTamper, Hikvision, camsim); Hikvision and
    # Axis report a covered or dark lens as VideoSource/ImageTooDark (ImageTooBlurry/Bright,
    # GlobalSceneChange) with State; analog encoders VideoSource/SignalLoss.
    EventParser(EventKind.TAMPER, False,
                _topic_has("tamper", "globalscenechange", "imagetoodark", "imagetooblurry",
                           "imagetoobright", "signalloss")),
    # Relay outputs: Device/Trigger/Relay, LogicalState "active"/"inactive" (not true/false:
    # ONVIF's RelayLogicalState; camsim, Hikvision).
    EventParser(EventKind.RELAY, False, _topic_has("trigger/relay", "relayoutput", "/relay")),
    # Motion: VideoSource/MotionAlarm (State; Hikvision, DVC), RuleEngine/CellMotionDetector/
    # Motion (IsMotion; Hikvision, DVC, camsim), Hikvision's field detector
    # RuleEngine/FieldDetector/ObjectsInside (IsInside) and line crossing (LineDetector/Crossed),
    # Axis VMD4 (tnsaxis:CameraApplicationPlatform/VMD/..., "active"), Dahua "Intrusion".
    EventParser(EventKind.MOTION, False,
                _topic_has("motion", "fielddetector", "linedetector", "objectsinside",
                           "intrusion", "crossed", "/vmd")),
)


def typed(event: OnvifEvent) -> TypedEvent:
    """The registry's reading of ``event`` (``generic`` when no entry claims it)."""
    norm = normalise_topic(event.topic)
    state = event_state(event.data)
    for parser in REGISTRY:
        if parser.matches(norm, event):
            return TypedEvent(parser.kind, parser.pulse, state, parser.details(event))
    return TypedEvent(EventKind.GENERIC, False, state, {})


__all__ = ["REGISTRY", "EventParser", "TypedEvent", "typed"]
