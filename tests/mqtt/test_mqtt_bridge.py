"""The MQTT bridge against a real Mosquitto: camera events on a running app's bus reach the broker
within a second on ``<prefix>/<site>/<camera>/<type>``; Home Assistant discovery configs are
retained and follow cameras added, renamed and removed; availability is retained, with a last will
that speaks when the server is killed; a broker that is down at start (or goes away) is connected
to when it comes back, and what could not wait is counted."""

from __future__ import annotations

import asyncio
import json
import re
import time
from pathlib import Path
from typing import Any

import aiomqtt
import pytest

from tests.mqtt.broker import PrivateBroker, Received, Space, free_port, listen, retained
from tests.serve_process import ServeProcess
from vms.bus import CameraChanged, CameraEvent
from vms.db import models as m


def seed(app: Any) -> dict[str, int]:
    """Two sites, three cameras (one with a Cyrillic name); run through the gateway writer."""
    from web.keys import ACCOUNTS, CLOCK

    now = app[CLOCK].now_us()
    a = app[ACCOUNTS].create_site("Site A", "UTC")
    b = app[ACCOUNTS].create_site("Школа №5", "Asia/Almaty")
    ids = {"site_a": a.id, "site_b": b.id}
    for key, site, name in (("gate", a, "Gate A"), ("door", a, "Front door"),
                            ("yard", b, "Двор")):
        cam = m.Camera.create(site=site, name=name, manufacturer="CamSim", model="CS-2100",
                              firmware="1.2", status_since_us=now, created_us=now,
                              updated_us=now)
        ids[key] = cam.id
    return ids


async def start_app(settings_factory: Any, aiohttp_client: Any, db_url: str, port: int,
                    space: Space, **overrides: Any) -> tuple[Any, Any, dict[str, int]]:
    from vms.app import create_app
    from web.keys import BUS, GATEWAY

    settings = settings_factory(db_url, **{
        "mqtt.url": f"mqtt://127.0.0.1:{port}", "mqtt.topic_prefix": space.prefix,
        "mqtt.discovery_prefix": space.discovery_prefix, **overrides})
    app = create_app(settings, start_recorder=False)
    client = await aiohttp_client(app)
    ids = await app[GATEWAY].write(seed, app)
    for key in ("gate", "door", "yard"):  # as adoption announces a camera
        app[BUS].publish(CameraChanged(ids[key]))
    return app, client, ids


async def metrics(client: Any) -> dict[str, float]:
    resp = await client.get("/metrics")
    assert resp.status == 200
    out = {}
    for line in (await resp.text()).splitlines():
        match = re.match(r'^(vms_mqtt_\w+|vms_events_dropped_total\{subscriber="mqtt"\}) (\S+)$',
                         line)
        if match:
            out[match.group(1)] = float(match.group(2))
    return out


async def wait_metric(client: Any, name: str, check: Any, timeout_s: float = 10.0) -> float:
    deadline = time.monotonic() + timeout_s
    while True:
        value = (await metrics(client)).get(name)
        if value is not None and check(value):
            return value
        assert time.monotonic() < deadline, f"{name} is {value} after {timeout_s} s"
        await asyncio.sleep(0.05)


def bridge(app: Any) -> Any:
    from web.keys import SERVICES

    return app[SERVICES]["mqtt"]


def disc(space: Space, component: str, uuid: str, type_: str) -> str:
    node = space.prefix.replace("/", "_")
    return f"{space.discovery_prefix}/{component}/{node}/{uuid}_{type_}/config"


async def camera_uuids(app: Any) -> dict[int, str]:
    from web.keys import GATEWAY

    return await app[GATEWAY].read(lambda: dict(m.Camera.select(m.Camera.id, m.Camera.uuid)
                                                .tuples()))


async def test_events_reach_mqtt_within_a_second(engine: str, db_url: str, settings_factory: Any,
                                                 aiohttp_client: Any, shared_broker: int,
                                                 space: Space) -> None:
    from web.keys import BUS

    async with listen(shared_broker, *space.topics) as heard:
        app, client, ids = await start_app(settings_factory, aiohttp_client, db_url,
                                           shared_broker, space)
        await heard.wait_for(lambda r: r.topic == f"{space.prefix}/availability"
                             and r.payload == b"online", what="online")
        uuids = await camera_uuids(app)
        gate_motion = disc(space, "binary_sensor", uuids[ids["gate"]], "motion")
        await heard.wait_for(lambda r: r.topic == gate_motion, what="gate's discovery config")
        bridge(app).pulse_s = 0.5
        bus = app[BUS]
        at_us = 1_796_000_000_123_456  # 2026-11-30T00:53:20.123456Z
        sent = time.monotonic()
        bus.publish(CameraEvent(ids["gate"], ids["site_a"], "motion", True, at_us, event_id=7,
                                topic="tns1:VideoSource/MotionAlarm", data={"source": "vs0"}))
        event = await heard.wait_for(lambda r: r.topic == f"{space.prefix}/site-a/gate-a/motion",
                                     timeout_s=1.0, what="motion event")
        assert event.at - sent < 1.0 and not event.retain
        assert json.loads(event.payload) == {
            "camera_id": ids["gate"], "camera": "Gate A", "camera_uuid": uuids[ids["gate"]],
            "site_id": ids["site_a"], "site": "Site A", "type": "motion", "state": True,
            "at_us": at_us, "time": "2026-11-30T00:53:20.123456Z", "event_id": 7,
            "topic": "tns1:VideoSource/MotionAlarm", "data": {"source": "vs0"}}
        state = f"{space.prefix}/site-a/gate-a/motion/state"
        await heard.wait_for(lambda r: r.topic == state and r.payload == b"ON", 1.0, "motion ON")

        bus.publish(CameraEvent(ids["gate"], ids["site_a"], "motion", False, at_us + 1))
        await heard.wait_for(lambda r: r.topic == state and r.payload == b"OFF", 1.0,
                             "motion OFF")

        # a doorbell pulse: ON at once, OFF after pulse_s
        bell = f"{space.prefix}/shkola-5/dvor/doorbell"
        bus.publish(CameraEvent(ids["yard"], ids["site_b"], "doorbell", None, at_us + 2))
        pressed = await heard.wait_for(lambda r: r.topic == bell, 1.0, "doorbell event")
        assert json.loads(pressed.payload)["state"] is None
        on = await heard.wait_for(lambda r: r.topic == f"{bell}/state" and r.payload == b"ON",
                                  1.0, "doorbell ON")
        off = await heard.wait_for(lambda r: r.topic == f"{bell}/state" and r.payload == b"OFF"
                                   and r.at > on.at, 3.0, "doorbell OFF")
        assert 0.4 < off.at - on.at < 2.0

        # a plate: the event, and the sensor's state is the plate text
        bus.publish(CameraEvent(ids["door"], ids["site_a"], "plate", None, at_us + 3,
                                data={"plate": "123ABC02", "country": "KZ", "confidence": 0.93}))
        plate = await heard.wait_for(lambda r: r.topic == f"{space.prefix}/site-a/front-door/plate",
                                     1.0, "plate event")
        assert json.loads(plate.payload)["data"]["plate"] == "123ABC02"
        await heard.wait_for(lambda r: r.topic == f"{space.prefix}/site-a/front-door/plate/state"
                             and r.payload == b"123ABC02", 1.0, "plate state")

        # an unknown type is published as it came; a type unfit for a topic as generic
        bus.publish(CameraEvent(ids["gate"], ids["site_a"], "relay", True, at_us + 4))
        bus.publish(CameraEvent(ids["gate"], ids["site_a"], "a/#", True, at_us + 5))
        await heard.wait_for(lambda r: r.topic == f"{space.prefix}/site-a/gate-a/relay", 1.0)
        generic = await heard.wait_for(
            lambda r: r.topic == f"{space.prefix}/site-a/gate-a/generic", 1.0)
        assert json.loads(generic.payload)["type"] == "generic"

        figures = await metrics(client)
        assert figures["vms_mqtt_connected"] == 1
        assert figures["vms_mqtt_events_published_total"] == 6
        assert figures['vms_events_dropped_total{subscriber="mqtt"}'] == 0

    # what a Home Assistant starting now would read: retained configs and states
    now = await retained(shared_broker, *space.topics)
    assert now[f"{space.prefix}/availability"] == b"online"
    assert now[f"{space.prefix}/site-a/gate-a/motion/state"] == b"OFF"
    assert now[f"{space.prefix}/shkola-5/dvor/doorbell/state"] == b"OFF"
    assert now[f"{space.prefix}/site-a/front-door/plate/state"] == b"123ABC02"
    configs = {t: json.loads(p) for t, p in now.items() if t.startswith(space.discovery_prefix)}
    assert len(configs) == 3 * 4  # three cameras: motion, doorbell, tamper, plate
    yard = uuids[ids["yard"]]
    motion = configs[disc(space, "binary_sensor", uuids[ids["gate"]], "motion")]
    assert motion["state_topic"] == f"{space.prefix}/site-a/gate-a/motion/state"
    assert motion["device_class"] == "motion"
    assert (motion["payload_on"], motion["payload_off"]) == ("ON", "OFF")
    assert motion["availability_topic"] == f"{space.prefix}/availability"
    assert motion["device"]["name"] == "Gate A" and motion["device"]["model"] == "CS-2100"
    assert configs[disc(space, "binary_sensor", yard, "doorbell")]["device"]["suggested_area"] \
        == "Школа №5"
    assert configs[disc(space, "binary_sensor", yard, "tamper")]["device_class"] == "tamper"
    assert configs[disc(space, "sensor", yard, "plate")]["state_topic"] \
        == f"{space.prefix}/shkola-5/dvor/plate/state"
    assert len({c["unique_id"] for c in configs.values()}) == 12


async def test_discovery_follows_renamed_and_removed_cameras(
        engine: str, db_url: str, settings_factory: Any, aiohttp_client: Any, shared_broker: int,
        space: Space) -> None:
    from web.keys import BUS, CLOCK, GATEWAY, SERVICES

    # a config of this node left on the broker by a camera that no longer exists
    node = space.prefix.replace("/", "_")
    stale = f"{space.discovery_prefix}/binary_sensor/{node}/deadbeef_motion/config"
    async with aiomqtt.Client("127.0.0.1", shared_broker) as other:
        await other.publish(stale, b'{"name": "Motion"}', qos=1, retain=True)

    async with listen(shared_broker, *space.topics) as heard:
        app, client, ids = await start_app(settings_factory, aiohttp_client, db_url,
                                           shared_broker, space)
        uuids = await camera_uuids(app)
        gate = uuids[ids["gate"]]
        await heard.wait_for(lambda r: r.topic == disc(space, "binary_sensor", gate, "motion"),
                             what="gate's config")
        await heard.wait_for(lambda r: r.topic == stale and r.payload == b"", what="stale cleared")

        # renamed (and its motion is on): configs name it anew, its state moves with its slug
        app[BUS].publish(CameraEvent(ids["gate"], ids["site_a"], "motion", True, 1))
        await heard.wait_for(lambda r: r.topic == f"{space.prefix}/site-a/gate-a/motion/state"
                             and r.payload == b"ON", what="motion ON")
        now = app[CLOCK].now_us()
        await app[GATEWAY].write(lambda: m.Camera.update(name="North gate", updated_us=now)
                                 .where(m.Camera.id == ids["gate"]).execute())
        mark = time.monotonic()
        app[BUS].publish(CameraChanged(ids["gate"]))
        renamed = await heard.wait_for(
            lambda r: r.topic == disc(space, "binary_sensor", gate, "motion") and r.at > mark,
            2.0, "renamed config")
        config = json.loads(renamed.payload)
        assert config["device"]["name"] == "North gate"
        assert config["state_topic"] == f"{space.prefix}/site-a/north-gate/motion/state"
        await heard.wait_for(lambda r: r.topic == f"{space.prefix}/site-a/north-gate/motion/state"
                             and r.payload == b"ON", 2.0, "state under the new slug")
        await heard.wait_for(lambda r: r.topic == f"{space.prefix}/site-a/gate-a/motion/state"
                             and r.payload == b"" and r.at > mark, 2.0, "old state cleared")

        # a camera adopted while running: its configs appear once it is announced
        def add() -> int:
            return int(m.Camera.create(site=ids["site_b"], name="Gym", status_since_us=now,
                                       created_us=now, updated_us=now).id)

        gym = await app[GATEWAY].write(add)
        app[BUS].publish(CameraChanged(gym))
        gym_uuid = (await camera_uuids(app))[gym]
        await heard.wait_for(lambda r: r.topic == disc(space, "sensor", gym_uuid, "plate"), 2.0)

        # removed through onboarding (as the API does): the root announces it, the bridge clears
        # its configs with empty retained messages
        mark = time.monotonic()
        await app[SERVICES]["onboarding"].remove(None, ids["door"])
        door = uuids[ids["door"]]
        for component, type_ in (("binary_sensor", "motion"), ("binary_sensor", "doorbell"),
                                 ("binary_sensor", "tamper"), ("sensor", "plate")):
            topic = disc(space, component, door, type_)

            def cleared(r: Received, topic: str = topic) -> bool:
                return r.topic == topic and r.payload == b"" and r.at > mark

            await heard.wait_for(cleared, 2.0, f"{type_} cleared")

    now_retained = await retained(shared_broker, *space.topics)
    configs = [t for t in now_retained if t.startswith(space.discovery_prefix)]
    assert stale not in now_retained
    assert not [t for t in configs if door in t]
    assert len(configs) == 3 * 4  # gate, yard, gym
    assert f"{space.prefix}/site-a/gate-a/motion/state" not in now_retained
    assert not [t for t in now_retained if "/front-door/" in t]


async def test_edits_made_elsewhere_are_found_by_the_periodic_reread(
        sqlite_only: str, settings_factory: Any, aiohttp_client: Any, shared_broker: int,
        space: Space) -> None:
    """A site renamed with no announcement on the bus (the CLI, another process): the bridge's
    periodic re-read of the cameras publishes the configs anew."""
    from web.keys import BUS, GATEWAY

    async with listen(shared_broker, *space.topics) as heard:
        app, _, ids = await start_app(settings_factory, aiohttp_client, sqlite_only,
                                      shared_broker, space)
        uuids = await camera_uuids(app)
        gate = disc(space, "binary_sensor", uuids[ids["gate"]], "motion")
        await heard.wait_for(lambda r: r.topic == gate, what="gate's config")
        bridge(app).refresh_s = 0.3
        app[BUS].publish(CameraEvent(ids["yard"], ids["site_b"], "motion", True, 1))  # wakes it
        await heard.wait_for(lambda r: r.topic == f"{space.prefix}/shkola-5/dvor/motion", 1.0)
        mark = time.monotonic()
        await app[GATEWAY].write(lambda: m.Site.update(name="Main campus")
                                 .where(m.Site.id == ids["site_a"]).execute())
        renamed = await heard.wait_for(lambda r: r.topic == gate and r.at > mark, 3.0,
                                       "config after the site's rename")
        config = json.loads(renamed.payload)
        assert config["device"]["suggested_area"] == "Main campus"
        assert config["state_topic"] == f"{space.prefix}/main-campus/gate-a/motion/state"
        await heard.wait_for(lambda r: r.topic == f"{space.prefix}/site-a/gate-a/motion/state"
                             and r.payload == b"" and r.at > mark, 2.0, "old state cleared")


async def test_discovery_off(engine: str, db_url: str, settings_factory: Any,
                             aiohttp_client: Any, shared_broker: int, space: Space) -> None:
    from web.keys import BUS

    async with listen(shared_broker, *space.topics) as heard:
        app, _, ids = await start_app(settings_factory, aiohttp_client, db_url, shared_broker,
                                      space, **{"mqtt.discovery": False})
        await heard.wait_for(lambda r: r.topic == f"{space.prefix}/availability"
                             and r.payload == b"online")
        app[BUS].publish(CameraEvent(ids["gate"], ids["site_a"], "tamper", True, 1))
        await heard.wait_for(lambda r: r.topic == f"{space.prefix}/site-a/gate-a/tamper", 1.0)
    assert not [t for t in await retained(shared_broker, *space.topics)
                if t.startswith(space.discovery_prefix)]


async def test_broker_down_at_start_then_up_then_gone_and_back(
        sqlite_only: str, settings_factory: Any, aiohttp_client: Any,
        private_broker: PrivateBroker, space: Space) -> None:
    from web.keys import BUS

    app, client, ids = await start_app(settings_factory, aiohttp_client, sqlite_only,
                                       private_broker.port, space)
    resp = await client.get("/healthz")
    assert resp.status == 200  # the server runs without its broker
    await wait_metric(client, "vms_mqtt_connect_failures_total", lambda v: v >= 1)
    assert (await metrics(client))["vms_mqtt_connected"] == 0
    # events while the broker is away wait in a bounded queue; beyond it they are counted
    size = bridge(app).queue_size
    for i in range(size + 5):
        app[BUS].publish(CameraEvent(ids["gate"], ids["site_a"], "motion", i % 2 == 0, i + 1))
    figures = await metrics(client)
    assert figures['vms_events_dropped_total{subscriber="mqtt"}'] == 5
    assert figures["vms_mqtt_backlog"] == size

    def configs_seen(heard: Any) -> set[str]:
        return {r.topic for r in heard.messages
                if r.topic.startswith(space.discovery_prefix) and r.payload}

    private_broker.start()
    async with listen(private_broker.port, *space.topics) as heard:
        await heard.wait_for(lambda r: r.topic == f"{space.prefix}/availability"
                             and r.payload == b"online", 15.0, "online")
        # the last of the waiting events (i = size + 4: even, motion on) sets the retained state
        await heard.wait_for(lambda r: r.topic == f"{space.prefix}/site-a/gate-a/motion/state"
                             and r.payload == b"ON" and len(configs_seen(heard)) == 12, 10.0)
        await wait_metric(client, "vms_mqtt_events_published_total", lambda v: v == size)
        app[BUS].publish(CameraEvent(ids["door"], ids["site_a"], "tamper", True, 99))
        await heard.wait_for(lambda r: r.topic == f"{space.prefix}/site-a/front-door/tamper",
                             1.0)
        await heard.wait_for(lambda r: r.topic == f"{space.prefix}/site-a/front-door/tamper/state"
                             and r.payload == b"ON", 1.0)
    figures = await metrics(client)
    assert figures["vms_mqtt_connected"] == 1 and figures["vms_mqtt_backlog"] == 0
    assert figures['vms_events_dropped_total{subscriber="mqtt"}'] == 5

    # the broker dies (and forgets every retained message); back, it is told everything again
    private_broker.stop()
    await wait_metric(client, "vms_mqtt_connected", lambda v: v == 0, timeout_s=15)
    private_broker.start()
    async with listen(private_broker.port, *space.topics) as heard:
        await heard.wait_for(lambda r: r.topic == f"{space.prefix}/availability"
                             and r.payload == b"online", 15.0, "online again")
        await heard.wait_for(lambda r: r.topic == f"{space.prefix}/site-a/front-door/tamper/state"
                             and r.payload == b"ON" and len(configs_seen(heard)) == 12, 10.0)
    assert (await metrics(client))["vms_mqtt_connections_total"] == 2


@pytest.fixture
def sqlite_only(db_url: str, engine: str) -> str:
    if engine != "sqlite":
        pytest.skip("the server's process lifecycle does not depend on the database engine")
    return db_url


@pytest.mark.slow
async def test_availability_and_last_will_of_a_real_server(
        sqlite_only: str, tmp_path: Path, shared_broker: int, space: Space) -> None:
    port = free_port()
    config = tmp_path / "vms.toml"
    config.write_text(f'data_dir = "data"\n[server]\nport = {port}\n'
                      f'[mqtt]\nurl = "mqtt://127.0.0.1:{shared_broker}"\n'
                      f'topic_prefix = "{space.prefix}"\n'
                      f'discovery_prefix = "{space.discovery_prefix}"\n')
    server = ServeProcess(config, port, log_path=tmp_path / "server.log")
    availability = f"{space.prefix}/availability"
    async with listen(shared_broker, availability) as heard:
        try:
            await server.start()
            await heard.wait_for(lambda r: r.payload == b"online", 10.0, "online")
            await server.stop()  # SIGTERM: the server says offline itself
            offline = await heard.wait_for(lambda r: r.payload == b"offline", 5.0,
                                           "offline on stop")
            await server.start()
            online = await heard.wait_for(lambda r: r.payload == b"online" and r.at > offline.at,
                                          10.0, "online again")
            await server.kill9()  # no goodbye: the broker publishes the last will
            await heard.wait_for(lambda r: r.payload == b"offline" and r.at > online.at, 5.0,
                                 "the last will")
        finally:
            await server.stop()
    assert (await retained(shared_broker, availability))[availability] == b"offline"
