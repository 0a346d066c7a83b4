"""The MQTT bridge: camera events from the core bus to an MQTT broker, with Home Assistant
discovery (topics and payloads: vms/mqtt_messages.py).

One task keeps a connection to the broker (aiomqtt, MQTT 5) and reconnects after any failure with
a capped, jittered backoff; the server runs on without a broker, says so in its log and in
``/metrics`` (``vms_mqtt_connected``). The bridge reads the bus through its own bounded
subscription: the publisher is never blocked, and when the queue is full (a slow or absent broker)
the oldest events are dropped and counted (``vms_events_dropped_total{subscriber="mqtt"}``); the
event store keeps them regardless. On every (re)connection it publishes ``online`` on the retained
availability topic (the last will says ``offline``), every camera's discovery configs and retained
states; it follows :class:`vms.bus.CameraChanged` (and re-reads the cameras every
``refresh_s``, for edits made by another process) to publish configs of new or renamed cameras and
clear those of removed ones with empty retained messages. Configs of this node left on the
broker for cameras it no longer has (e.g. removed while the server was down) are cleared too.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import secrets
import ssl
import time
from collections.abc import Iterator
from dataclasses import replace
from urllib.parse import unquote, urlsplit

import aiomqtt
from paho.mqtt.subscribeoptions import SubscribeOptions
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from vms.backoff import Backoff
from vms.bus import CameraChanged, CameraEvent, EventBus, Subscription
from vms.config import MqttSettings
from vms.db import models as m
from vms.db.gateway import Gateway
from vms.mqtt_messages import (
    BINARY_TYPES,
    OFF,
    STATE_TYPES,
    CameraInfo,
    Topics,
    camera_infos,
    discovery_config,
    event_payload,
    state_value,
    unknown_camera,
)

log = logging.getLogger(__name__)

_TYPE_RE = re.compile(r"[a-z][a-z0-9_]{0,31}")


class MqttUrlError(ValueError):
    """``[mqtt] url`` is not a broker URL."""


def parse_url(url: str) -> tuple[str, int, str | None, str | None, bool]:
    """``mqtt[s]://[user[:password]@]host[:port]`` → (host, port, user, password, tls)."""
    parts = urlsplit(url)
    if parts.scheme not in ("mqtt", "mqtts") or not parts.hostname:
        shown = f"{parts.scheme}://{parts.hostname or ''}" if parts.scheme else url.split("@")[-1]
        raise MqttUrlError(f"[mqtt] url {shown!r}: expected mqtt://host[:port] or "
                           "mqtts://host[:port] (user and password optional)")
    try:
        port = parts.port or (8883 if parts.scheme == "mqtts" else 1883)
    except ValueError:
        raise MqttUrlError(f"[mqtt] url: bad port in {parts.scheme}://{parts.hostname}") from None
    return (parts.hostname, port, unquote(parts.username) if parts.username else None,
            unquote(parts.password) if parts.password else None, parts.scheme == "mqtts")


def load_cameras() -> dict[int, CameraInfo]:
    """Every camera with its site (run on a reader thread: ``gateway.read(load_cameras)``)."""
    query = (m.Camera.select(m.Camera.id, m.Camera.uuid, m.Camera.name, m.Camera.site,
                             m.Site.name, m.Camera.manufacturer, m.Camera.model,
                             m.Camera.firmware, m.Camera.archived_us)
             .join(m.Site).tuples())
    return camera_infos((cid, uuid, name, site_id, site, manu, model, fw, archived is not None)
                        for cid, uuid, name, site_id, site, manu, model, fw, archived in query)


class MqttBridge:
    """Publishes the bus's :class:`CameraEvent` messages to MQTT; see the module docstring.

    ``queue_size`` bounds the events waiting for the broker; ``pulse_s`` is how long a pulse
    (``state`` None: a doorbell press) keeps its binary sensor ``ON``; reconnection waits
    ``backoff_min_s``, doubling up to ``backoff_max_s``, each wait jittered (50–100 %)."""

    def __init__(self, gateway: Gateway, settings: MqttSettings, bus: EventBus, *,
                 queue_size: int = 1000, pulse_s: float = 5.0, refresh_s: float = 30.0,
                 backoff_min_s: float = 0.5, backoff_max_s: float = 30.0) -> None:
        self.host, self.port, self._user, self._password, self._tls = parse_url(settings.url)
        self.gw = gateway
        self.bus = bus
        self.topics = Topics(settings.topic_prefix, settings.discovery_prefix)
        self.discovery = settings.discovery
        self.queue_size = queue_size
        self.pulse_s = pulse_s
        self.refresh_s = refresh_s
        self.backoff_min_s = backoff_min_s
        self.backoff_max_s = backoff_max_s
        # figures for /metrics
        self.connected = False
        self.connections = 0
        self.connect_failures = 0
        self.published = 0
        self.events_published = 0
        self.lost = 0  # events taken from the queue but not published (connection lost)
        # state
        self._events: Subscription | None = None
        self._changes: Subscription | None = None
        self._cameras: dict[int, CameraInfo] = {}
        self._published: dict[int, CameraInfo] = {}  # cameras whose configs/states are out
        self._expected: set[str] = set()  # discovery objects of ours that should exist
        self._states: dict[tuple[int, str], str] = {}
        self._pending: set[tuple[int, str]] = set()
        self._pulse_timers: dict[tuple[int, str], asyncio.TimerHandle] = {}
        self._refresh = asyncio.Event()
        self._wake = asyncio.Event()
        self._refreshed_at = 0.0
        self._tasks: list[asyncio.Task[None]] = []
        self._stopping = False
        """Set by :meth:`stop`: a cancellation that arrives while aiomqtt connects can come out as
        an ``MqttError``, so the connection loop also checks this before it waits to retry."""
        self._client: aiomqtt.Client | None = None

    @property
    def where(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def dropped(self) -> int:
        """Events that never reached the broker: dropped from the full queue, or lost with a
        connection."""
        return (self._events.dropped if self._events is not None else 0) + self.lost

    @property
    def backlog(self) -> int:
        return self._events.queue.qsize() if self._events is not None else 0

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        """Subscribe to the bus and start connecting (returns at once; never fails for want of a
        broker)."""
        self._stopping = False
        self._events = self.bus.subscribe(CameraEvent, maxsize=self.queue_size)
        self._changes = self.bus.subscribe(CameraChanged, maxsize=100)
        self._tasks = [asyncio.create_task(self._run(), name="mqtt-bridge"),
                       asyncio.create_task(self._watch_changes(), name="mqtt-changes")]

    async def stop(self, timeout_s: float = 3.0) -> None:
        """Say ``offline`` (when connected), disconnect cleanly and end the tasks."""
        self._stopping = True
        client = self._client
        if client is not None and self.connected:
            with contextlib.suppress(aiomqtt.MqttError, TimeoutError):
                await asyncio.wait_for(client.publish(self.topics.availability, b"offline",
                                                      qos=1, retain=True), timeout_s)
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
        for handle in self._pulse_timers.values():
            handle.cancel()
        self._pulse_timers.clear()
        for sub in (self._events, self._changes):
            if sub is not None:
                sub.close()
        self.connected = False

    async def _watch_changes(self) -> None:
        assert self._changes is not None
        async for _ in self._changes:
            self._refresh.set()
            self._wake.set()

    # -- the connection ----------------------------------------------------------------------

    def _new_client(self) -> aiomqtt.Client:
        tls = ssl.create_default_context() if self._tls else None
        return aiomqtt.Client(
            self.host, self.port, username=self._user, password=self._password,
            identifier=f"vms-{self.topics.node}-{secrets.token_hex(4)}",
            protocol=aiomqtt.ProtocolVersion.V5, keepalive=30, timeout=10, tls_context=tls,
            will=aiomqtt.Will(self.topics.availability, b"offline", qos=1, retain=True))

    async def _run(self) -> None:
        backoff = Backoff(self.backoff_min_s, self.backoff_max_s)
        outage_logged = False
        while not self._stopping:  # until stop()
            connected_at = None
            try:
                client = self._new_client()
                async with client:
                    connected_at = time.monotonic()
                    self._client = client
                    self.connections += 1
                    log.info("MQTT: connected to %s (topics under %s/)", self.where,
                             self.topics.prefix)
                    outage_logged = False
                    await self._session(client)
            except* aiomqtt.MqttError as group:
                exc = group.exceptions[0]
                if connected_at is None:
                    self.connect_failures += 1
                if not outage_logged:
                    log.warning("MQTT: broker %s %s (%s); the server runs on, events go to MQTT "
                                "again once it is back (retrying with backoff up to %g s)",
                                self.where, "lost" if connected_at is not None else "unreachable",
                                exc, self.backoff_max_s)
                    outage_logged = True
                else:
                    log.debug("MQTT: broker %s still unreachable (%s)", self.where, exc)
            except* Exception:  # a bug or a database failure must not end the bridge for good
                log.exception("MQTT: bridge session failed; reconnecting")
            finally:
                self.connected = False
                self._client = None
            if self._stopping:
                return
            if connected_at is not None and time.monotonic() - connected_at > self.backoff_max_s:
                backoff.reset()  # it held a while: start again from short waits
            await asyncio.sleep(backoff.next_delay_s())

    async def _session(self, client: aiomqtt.Client) -> None:
        await self._publish(client, self.topics.availability, "online", retain=True)
        self.connected = True
        await self._reconcile(client, force=True)
        tasks = [self._send_loop(client)]
        if self.discovery:
            await client.subscribe(self.topics.discovery_filter,
                                   options=SubscribeOptions(qos=1, noLocal=True))
            tasks.append(self._read_loop(client))
        async with asyncio.TaskGroup() as group:
            for coro in tasks:
                group.create_task(coro)

    async def _publish(self, client: aiomqtt.Client, topic: str, payload: str | bytes, *,
                       retain: bool = False) -> None:
        await client.publish(topic, payload, qos=1, retain=retain)
        self.published += 1

    # -- events ------------------------------------------------------------------------------

    async def _send_loop(self, client: aiomqtt.Client) -> None:
        assert self._events is not None
        queue = self._events.queue
        while True:
            if self._changes_pending() or time.monotonic() - self._refreshed_at > self.refresh_s:
                await self._reconcile(client)
            for _ in range(100):  # a batch, then states and camera changes get their turn
                try:
                    message = queue.get_nowait()
                except asyncio.QueueEmpty:
                    break
                if isinstance(message, CameraEvent):
                    await self._send_event(client, message)
            await self._send_states(client)
            if queue.empty() and not self._changes_pending() and not self._pending:
                message = await self._wait(queue)
                if isinstance(message, CameraEvent):
                    await self._send_event(client, message)

    async def _wait(self, queue: asyncio.Queue[object]) -> object | None:
        """The next event, or None when woken (states, camera changes) or the refresh is due."""
        self._wake.clear()
        getter = asyncio.ensure_future(queue.get())
        waker = asyncio.ensure_future(self._wake.wait())
        timeout_s = max(0.0, self.refresh_s - (time.monotonic() - self._refreshed_at))
        try:
            await asyncio.wait((getter, waker), timeout=timeout_s,
                               return_when=asyncio.FIRST_COMPLETED)
        finally:
            waker.cancel()
            if not getter.done():
                getter.cancel()
        if getter.done() and not getter.cancelled():
            return getter.result()
        return None

    def _changes_pending(self) -> bool:
        """A camera change was announced and not yet applied (seen or still in the queue)."""
        return self._refresh.is_set() or (self._changes is not None
                                          and not self._changes.queue.empty())

    async def _send_event(self, client: aiomqtt.Client, event: CameraEvent) -> None:
        if self._changes_pending():  # a change announced before the event applies before it
            await self._reconcile(client)
        cam = self._cameras.get(event.camera_id)
        if cam is None and time.monotonic() - self._refreshed_at > 1.0:
            await self._reconcile(client)  # a camera adopted without being announced
            cam = self._cameras.get(event.camera_id)
        if cam is None:
            cam = unknown_camera(event.camera_id, event.site_id)
        type_ = event.type if _TYPE_RE.fullmatch(event.type) else "generic"
        payload = json.dumps(event_payload(cam, replace(event, type=type_)), default=str,
                             separators=(",", ":"), ensure_ascii=False)
        try:
            await self._publish(client, self.topics.event(cam, type_), payload)
        except aiomqtt.MqttError:
            self.lost += 1
            raise
        self.events_published += 1
        value = state_value(event)
        if value is None or not cam.uuid or cam.archived:
            return
        key = (cam.id, type_)
        self._set_state(key, value)
        if type_ in BINARY_TYPES and event.state is None:
            self._start_pulse(key)
        elif key in self._pulse_timers:
            self._pulse_timers.pop(key).cancel()

    def _set_state(self, key: tuple[int, str], value: str) -> None:
        self._states[key] = value
        self._pending.add(key)

    def _start_pulse(self, key: tuple[int, str]) -> None:
        if key in self._pulse_timers:
            self._pulse_timers.pop(key).cancel()
        loop = asyncio.get_running_loop()
        self._pulse_timers[key] = loop.call_later(self.pulse_s, self._end_pulse, key)

    def _end_pulse(self, key: tuple[int, str]) -> None:
        self._pulse_timers.pop(key, None)
        self._set_state(key, OFF)
        self._wake.set()

    async def _send_states(self, client: aiomqtt.Client) -> None:
        while self._pending:
            key = self._pending.pop()
            cam = self._published.get(key[0])
            if cam is None:
                continue
            try:
                await self._publish(client, self.topics.state(cam, key[1]), self._states[key],
                                    retain=True)
            except aiomqtt.MqttError:
                self._pending.add(key)
                raise

    # -- cameras and discovery ---------------------------------------------------------------

    async def _reconcile(self, client: aiomqtt.Client, *, force: bool = False) -> None:
        """Bring the broker in line with the cameras: configs and states of new, renamed or
        moved cameras published, those of removed ones cleared. ``force``: publish all (a new
        connection: the broker may have lost its retained messages)."""
        self._refresh.clear()
        while self._changes is not None and not self._changes.queue.empty():
            self._changes.queue.get_nowait()  # all applied by the read below
        cameras = await self.gw.read(load_cameras)
        self._cameras = cameras
        self._refreshed_at = time.monotonic()
        live = {cid: cam for cid, cam in cameras.items() if not cam.archived}
        for cid in [cid for cid in self._published if cid not in live]:
            gone = self._published.pop(cid)
            log.info("MQTT: camera %s removed; clearing its discovery configs", gone.name)
            await self._clear(client, gone)
        for cid, cam in live.items():
            old = self._published.get(cid)
            if old == cam and not force:
                continue
            if old is not None and (old.slug, old.site_slug) != (cam.slug, cam.site_slug):
                await self._clear(client, old, configs=False)  # its state topics moved
            self._published[cid] = cam
            self._expected.update(f"{cam.uuid}_{t}" for t in STATE_TYPES)
            if self.discovery:
                for type_ in STATE_TYPES:
                    config = json.dumps(discovery_config(self.topics, cam, type_),
                                        separators=(",", ":"), ensure_ascii=False)
                    await self._publish(client, self.topics.discovery(cam, type_), config,
                                        retain=True)
            for type_ in BINARY_TYPES:
                self._states.setdefault((cid, type_), OFF)
            self._pending.update(k for k in self._states if k[0] == cid)
        await self._send_states(client)

    async def _clear(self, client: aiomqtt.Client, cam: CameraInfo, *,
                     configs: bool = True) -> None:
        """Empty retained messages on a camera's state topics (and discovery configs)."""
        for type_ in STATE_TYPES:
            await self._publish(client, self.topics.state(cam, type_), b"", retain=True)
            if configs:
                self._states.pop((cam.id, type_), None)
                self._pending.discard((cam.id, type_))
                self._expected.discard(f"{cam.uuid}_{type_}")
                if self.discovery:
                    await self._publish(client, self.topics.discovery(cam, type_), b"",
                                        retain=True)

    async def _read_loop(self, client: aiomqtt.Client) -> None:
        """Discovery configs of this node on the broker that no camera of ours has: cleared."""
        async for message in client.messages:
            if not message.payload:
                continue
            topic = message.topic.value
            obj = self.topics.object_of(topic)
            if obj is not None and obj not in self._expected:
                log.info("MQTT: clearing stale discovery config %s", topic)
                await self._publish(client, topic, b"", retain=True)


class MqttCollector:
    """The bridge's figures for ``/metrics``, read when scraped."""

    def __init__(self, bridge: MqttBridge) -> None:
        self.bridge = bridge

    def describe(self) -> Iterator[Metric]:
        return self.collect()

    def collect(self) -> Iterator[Metric]:
        b = self.bridge
        yield GaugeMetricFamily("vms_mqtt_connected",
                                "1 while connected to the MQTT broker, else 0",
                                value=1 if b.connected else 0)
        yield CounterMetricFamily("vms_mqtt_connections", "Connections made to the MQTT broker",
                                  value=b.connections)
        yield CounterMetricFamily("vms_mqtt_connect_failures",
                                  "Attempts to connect to the MQTT broker that failed",
                                  value=b.connect_failures)
        yield CounterMetricFamily("vms_mqtt_messages_published",
                                  "MQTT messages published (events, states, discovery)",
                                  value=b.published)
        yield CounterMetricFamily("vms_mqtt_events_published", "Camera events published to MQTT",
                                  value=b.events_published)
        yield GaugeMetricFamily("vms_mqtt_backlog", "Camera events waiting for the MQTT broker",
                                value=b.backlog)
        # its drops are one series of ``vms_events_dropped_total{subscriber="mqtt"}``, which the
        # event store's collector (vms/app.py) emits with the other subscribers' (one family)
