"""ONVIF Events service (``/onvif/event_service``) and pull-point subscriptions.

:class:`EventBroker` keeps the current state of every property event (motion, doorbell input,
relay, tamper) and a queue per pull-point subscription. A new subscription, and
SetSynchronizationPoint, get the current states as ``PropertyOperation="Initialized"``, as the
ONVIF Core spec asks. PullMessages long-polls: it answers at once when messages are queued, else
waits up to its Timeout (real time, it is a network wait). Subscriptions live at
``/onvif/subscription/<n>`` and expire at their TerminationTime (camera clock); after that they
answer a fault.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from camsim.onvif.soap import (
    NS,
    Request,
    Service,
    SoapFault,
    iso_z,
    parse_duration_s,
    parse_time_spec_us,
    text_local,
    x,
)
from camsim.onvif.state import CameraState

logger = logging.getLogger(__name__)

US = 1_000_000
SUBSCRIPTION_PATH = "/onvif/subscription"
DEFAULT_TERMINATION_S = 60
MAX_TERMINATION_S = 24 * 3600
MAX_PULL_TIMEOUT_S = 120.0
MAX_QUEUE = 1000
DIALECT = "http://www.onvif.org/ver10/tev/topicExpression/ConcreteSet"

VIDEO_SOURCE = "VideoSource_1"
VSC = "VideoSourceConfigToken_1"
VAC = "VideoAnalyticsToken_1"

MOTION_ALARM = "tns1:VideoSource/MotionAlarm"
CELL_MOTION = "tns1:RuleEngine/CellMotionDetector/Motion"
DIGITAL_INPUT = "tns1:Device/Trigger/DigitalInput"
RELAY = "tns1:Device/Trigger/Relay"
LICENSE_PLATE = "tns1:RuleEngine/LicensePlateDetector/LicensePlate"
TAMPER = "tns1:RuleEngine/TamperDetector/Tamper"

Items = tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class EventMessage:
    topic: str
    source: Items
    data: Items
    utc_us: int
    property_operation: str | None  # Initialized / Changed / Deleted; None for plain events

    def key(self) -> tuple[str, Items]:
        return self.topic, self.source

    def with_operation(self, operation: str, utc_us: int) -> EventMessage:
        return EventMessage(self.topic, self.source, self.data, utc_us, operation)

    def to_xml(self) -> str:
        op = f' PropertyOperation="{self.property_operation}"' if self.property_operation else ""
        return (
            f'<wsnt:NotificationMessage><wsnt:Topic Dialect="{DIALECT}">{self.topic}</wsnt:Topic>'
            f'<wsnt:Message><tt:Message UtcTime="{iso_z(self.utc_us, millis=True)}"{op}>'
            "<tt:Source>" + _items(self.source) + "</tt:Source>"
            "<tt:Data>" + _items(self.data) + "</tt:Data>"
            "</tt:Message></wsnt:Message></wsnt:NotificationMessage>"
        )


def _items(items: Items) -> str:
    return "".join(f'<tt:SimpleItem Name="{x(n)}" Value="{x(v)}"/>' for n, v in items)


@dataclass
class Subscription:
    ident: str
    termination_us: int
    queue: deque[EventMessage] = field(default_factory=lambda: deque(maxlen=MAX_QUEUE))
    wake: asyncio.Event = field(default_factory=asyncio.Event)

    def push(self, message: EventMessage) -> None:
        self.queue.append(message)
        self.wake.set()


class EventBroker:
    """Property states and pull-point queues for one camera."""

    def __init__(self, name: str, now_us: Callable[[], int]) -> None:
        self.name = name
        self._now_us = now_us
        self._properties: dict[tuple[str, Items], EventMessage] = {}
        self._subscriptions: dict[str, Subscription] = {}
        self._ids = itertools.count(1)
        self.no_long_poll_until_us = 0
        """Until this instant (camera clock) PullMessages answers at once, ignoring its Timeout,
        as some firmware does (fault ``no_long_poll``)."""

    def publish(self, topic: str, source: Items, data: Items, *, is_property: bool = True) -> None:
        now_us = self._now_us()
        if is_property:
            key = (topic, source)
            operation = "Changed" if key in self._properties else "Initialized"
            message = EventMessage(topic, source, data, now_us, operation)
            self._properties[key] = message
        else:
            message = EventMessage(topic, source, data, now_us, None)
        logger.debug("%s: event %s %s", self.name, topic, data)
        for sub in self.live():
            sub.push(message)

    def set_initial(self, topic: str, source: Items, data: Items) -> None:
        """Record a property's state without notifying (camera start-up)."""
        self._properties[(topic, source)] = EventMessage(topic, source, data, self._now_us(),
                                                         "Initialized")

    def synchronize(self, sub: Subscription) -> None:
        now_us = self._now_us()
        for message in self._properties.values():
            sub.push(message.with_operation("Initialized", now_us))

    def create(self, termination_us: int) -> Subscription:
        sub = Subscription(str(next(self._ids)), termination_us)
        self._subscriptions[sub.ident] = sub
        self.synchronize(sub)
        return sub

    def get(self, ident: str) -> Subscription:
        self._prune()
        sub = self._subscriptions.get(ident)
        if sub is None:
            raise SoapFault(
                f"subscription {ident!r} does not exist or has expired",
                subcodes=("ter:InvalidArgVal", "ter:ResourceUnknown"),
            )
        return sub

    def remove(self, ident: str) -> None:
        sub = self._subscriptions.pop(ident, None)
        if sub is not None:
            sub.wake.set()

    def drop_all(self) -> None:
        for ident in list(self._subscriptions):
            self.remove(ident)

    def live(self) -> list[Subscription]:
        self._prune()
        return list(self._subscriptions.values())

    def _prune(self) -> None:
        now_us = self._now_us()
        for ident in [i for i, s in self._subscriptions.items() if s.termination_us <= now_us]:
            logger.debug("%s: subscription %s expired", self.name, ident)
            self.remove(ident)

    def states(self) -> list[dict[str, object]]:
        return [
            {"topic": m.topic, "source": dict(m.source), "data": dict(m.data)}
            for m in self._properties.values()
        ]


def _describe(source: list[tuple[str, str]], data: list[tuple[str, str]], prop: bool) -> str:
    def items(pairs: list[tuple[str, str]]) -> str:
        return "".join(f'<tt:SimpleItemDescription Name="{n}" Type="{t}"/>' for n, t in pairs)

    return (
        f'<tt:MessageDescription IsProperty="{"true" if prop else "false"}">'
        f"<tt:Source>{items(source)}</tt:Source><tt:Data>{items(data)}</tt:Data>"
        "</tt:MessageDescription>"
    )


def topic_set_xml() -> str:
    ref = "tt:ReferenceToken"
    rule_src = [("VideoSourceConfigurationToken", ref), ("VideoAnalyticsConfigurationToken", ref),
                ("Rule", "xs:string")]
    return (
        "<wstop:TopicSet>"
        '<tns1:VideoSource wstop:topic="true"><MotionAlarm wstop:topic="true">'
        + _describe([("Source", ref)], [("State", "xs:boolean")], True)
        + "</MotionAlarm></tns1:VideoSource>"
        '<tns1:RuleEngine wstop:topic="true">'
        '<CellMotionDetector wstop:topic="true"><Motion wstop:topic="true">'
        + _describe(rule_src, [("IsMotion", "xs:boolean")], True)
        + "</Motion></CellMotionDetector>"
        '<TamperDetector wstop:topic="true"><Tamper wstop:topic="true">'
        + _describe(rule_src, [("IsTamper", "xs:boolean")], True)
        + "</Tamper></TamperDetector>"
        '<LicensePlateDetector wstop:topic="true"><LicensePlate wstop:topic="true">'
        + _describe(rule_src, [("PlateNumber", "xs:string"), ("Country", "xs:string"),
                               ("Confidence", "xs:float")], False)
        + "</LicensePlate></LicensePlateDetector></tns1:RuleEngine>"
        '<tns1:Device wstop:topic="true"><Trigger wstop:topic="true">'
        '<DigitalInput wstop:topic="true">'
        + _describe([("InputToken", ref)], [("LogicalState", "xs:boolean")], True)
        + '</DigitalInput><Relay wstop:topic="true">'
        + _describe([("RelayToken", ref)], [("LogicalState", "tt:RelayLogicalState")], True)
        + "</Relay></Trigger></tns1:Device>"
        "</wstop:TopicSet>"
    )


def service_capabilities() -> str:
    return (
        '<tev:Capabilities WSSubscriptionPolicySupport="false" WSPullPointSupport="true" '
        'WSPausableSubscriptionManagerInterfaceSupport="false" MaxNotificationProducers="0" '
        'MaxPullPoints="10" PersistentNotificationStorage="false"/>'
    )


def _termination(text: str | None, now_us: int) -> int:
    if not text:
        return now_us + DEFAULT_TERMINATION_S * US
    try:
        when_us = parse_time_spec_us(text, now_us)
    except ValueError:
        raise SoapFault(f"bad termination time {text!r}",
                        subcodes=("ter:InvalidArgVal", "ter:UnacceptableInitialTerminationTime")) from None
    if when_us <= now_us:
        raise SoapFault("termination time in the past",
                        subcodes=("ter:InvalidArgVal", "ter:UnacceptableInitialTerminationTime"))
    return min(when_us, now_us + MAX_TERMINATION_S * US)


def build(state: CameraState, broker: EventBroker, *,
          pull_point: bool = True) -> tuple[Service, Service]:
    """(event service at /onvif/event_service, subscription manager at /onvif/subscription/*).
    ``pull_point=False``: a camera without PullPoint (CreatePullPointSubscription answers
    ActionNotSupported), as firmware that offers only WS-BaseNotification does."""
    svc = Service("events", NS["tev"])
    subs = Service("subscription", NS["tev"])

    async def get_service_capabilities(req: Request) -> str:
        return ("<tev:GetServiceCapabilitiesResponse>" + service_capabilities()
                + "</tev:GetServiceCapabilitiesResponse>")

    async def get_event_properties(req: Request) -> str:
        return (
            "<tev:GetEventPropertiesResponse>"
            "<tev:TopicNamespaceLocation>http://www.onvif.org/onvif/ver10/topics/topicns.xml"
            "</tev:TopicNamespaceLocation><wsnt:FixedTopicSet>true</wsnt:FixedTopicSet>"
            + topic_set_xml()
            + "<wsnt:TopicExpressionDialect>http://www.onvif.org/ver10/tev/topicExpression/"
            "ConcreteSet</wsnt:TopicExpressionDialect>"
            "<wsnt:TopicExpressionDialect>http://docs.oasis-open.org/wsn/t-1/TopicExpression/"
            "Concrete</wsnt:TopicExpressionDialect>"
            "<tev:MessageContentFilterDialect>http://www.onvif.org/ver10/tev/messageContentFilter/"
            "ItemFilter</tev:MessageContentFilterDialect>"
            "<tev:MessageContentSchemaLocation>http://www.onvif.org/onvif/ver10/schema/onvif.xsd"
            "</tev:MessageContentSchemaLocation></tev:GetEventPropertiesResponse>"
        )

    async def create_pull_point_subscription(req: Request) -> str:
        now_us = state.now_us()
        termination_us = _termination(text_local(req.body, "InitialTerminationTime"), now_us)
        sub = broker.create(termination_us)
        address = f"{state.base_url()}{SUBSCRIPTION_PATH}/{sub.ident}"
        logger.info("%s: pull-point subscription %s created", state.identity.name, sub.ident)
        return (
            "<tev:CreatePullPointSubscriptionResponse><tev:SubscriptionReference>"
            f"<wsa5:Address>{x(address)}</wsa5:Address></tev:SubscriptionReference>"
            f"<wsnt:CurrentTime>{iso_z(now_us)}</wsnt:CurrentTime>"
            f"<wsnt:TerminationTime>{iso_z(termination_us)}</wsnt:TerminationTime>"
            "</tev:CreatePullPointSubscriptionResponse>"
        )

    def sub_of(req: Request) -> Subscription:
        return broker.get(req.path.rstrip("/").rsplit("/", 1)[-1])

    async def pull_messages(req: Request) -> str:
        sub = sub_of(req)
        try:
            timeout_s = parse_duration_s(text_local(req.body, "Timeout", default="PT1S") or "PT1S")
            limit = int(text_local(req.body, "MessageLimit", default="100") or "100")
        except ValueError:
            raise SoapFault("bad Timeout or MessageLimit", subcodes=("ter:InvalidArgVal",)) from None
        timeout_s = max(0.0, min(timeout_s, MAX_PULL_TIMEOUT_S))
        if state.now_us() < broker.no_long_poll_until_us:
            timeout_s = 0.0
        if not sub.queue and timeout_s > 0:
            sub.wake.clear()
            try:
                await asyncio.wait_for(sub.wake.wait(), timeout_s)
            except TimeoutError:
                pass
            sub = sub_of(req)  # unsubscribed or dropped (reboot) while waiting -> fault
        messages = [sub.queue.popleft() for _ in range(min(max(limit, 0), len(sub.queue)))]
        if not sub.queue:
            sub.wake.clear()
        now_us = state.now_us()
        return (
            f"<tev:PullMessagesResponse><tev:CurrentTime>{iso_z(now_us)}</tev:CurrentTime>"
            f"<tev:TerminationTime>{iso_z(sub.termination_us)}</tev:TerminationTime>"
            + "".join(m.to_xml() for m in messages)
            + "</tev:PullMessagesResponse>"
        )

    async def renew(req: Request) -> str:
        sub = sub_of(req)
        now_us = state.now_us()
        sub.termination_us = _termination(text_local(req.body, "TerminationTime"), now_us)
        return (
            f"<wsnt:RenewResponse><wsnt:TerminationTime>{iso_z(sub.termination_us)}"
            f"</wsnt:TerminationTime><wsnt:CurrentTime>{iso_z(now_us)}</wsnt:CurrentTime>"
            "</wsnt:RenewResponse>"
        )

    async def unsubscribe(req: Request) -> str:
        sub = sub_of(req)
        broker.remove(sub.ident)
        logger.info("%s: subscription %s removed", state.identity.name, sub.ident)
        return "<wsnt:UnsubscribeResponse/>"

    async def set_synchronization_point(req: Request) -> str:
        broker.synchronize(sub_of(req))
        return "<tev:SetSynchronizationPointResponse/>"

    svc.op("GetServiceCapabilities", get_service_capabilities)
    svc.op("GetEventProperties", get_event_properties)
    if pull_point:
        svc.op("CreatePullPointSubscription", create_pull_point_subscription)
    subs.op("PullMessages", pull_messages)
    subs.op("Renew", renew)
    subs.op("Unsubscribe", unsubscribe)
    subs.op("SetSynchronizationPoint", set_synchronization_point)
    return svc, subs
