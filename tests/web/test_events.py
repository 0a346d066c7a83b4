"""The event store, ``GET /api/v1/events``, the SSE feed, the page and ``vms events`` (issue 14).

Events are published as :class:`vms.bus.CameraEvent` on the app's own bus — the code path the
PullPoint pump feeds — and read back from the database, the API, the feed and the page, on SQLite
and PostgreSQL.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.web.conftest import World
from vms.bus import CameraEvent
from vms.db import models as m
from vms.events import normalise_plate
from web.keys import BUS, CLOCK, GATEWAY, SERVICES


def publish(world: World, camera_id: int, etype: str, state: bool | None, *, topic: str = "",
            at_us: int | None = None, **data: Any) -> int:
    at = at_us if at_us is not None else world.app[CLOCK].now_us()
    site = world.site_a if camera_id == world.camera_a else world.site_b
    world.app[BUS].publish(CameraEvent(camera_id=camera_id, site_id=site, type=etype,
                                       state=state, at_us=at, topic=topic,
                                       data={"camera_time_us": at - 5, "clock_offset_us": 5,
                                             **data}))
    return at


async def rows(world: World) -> list[m.Event]:
    return await world.app[GATEWAY].read(
        lambda: list(m.Event.select().order_by(m.Event.id)))


async def wait_rows(world: World, check, within: float = 1.0) -> list[m.Event]:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + within
    while True:
        found = await rows(world)
        if check(found):
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {within} s: {[(r.type, r.start_us, r.end_us) for r in found]}")
        await asyncio.sleep(0.02)


def test_plate_normalisation() -> None:
    assert normalise_plate("123 авс 02") == "123ABC02"
    assert normalise_plate("а123-вс 777") == "A123BC777"
    assert normalise_plate("ХМ-01") == "XM01"


async def test_pulses_and_intervals_reach_the_store_within_a_second(world: World) -> None:
    t0 = publish(world, world.camera_a, "doorbell", None, topic="tns1:Device/Trigger/DigitalInput")
    found = await wait_rows(world, lambda r: len(r) == 1)
    assert found[0].type == "doorbell" and found[0].start_us == found[0].end_us == t0
    assert found[0].site_id == world.site_a
    assert json.loads(found[0].data)["camera_time_us"] == t0 - 5

    on = publish(world, world.camera_a, "motion", True, topic="tns1:VideoSource/MotionAlarm")
    publish(world, world.camera_a, "motion", True, topic="tns1:VideoSource/MotionAlarm")  # again
    found = await wait_rows(world, lambda r: len(r) == 2)
    assert found[1].start_us == on and found[1].end_us is None
    off = publish(world, world.camera_a, "motion", False, topic="tns1:VideoSource/MotionAlarm")
    found = await wait_rows(world, lambda r: len(r) == 2 and r[1].end_us is not None)
    assert found[1].end_us == off
    # an "off" for nothing open stores nothing; a new "on" opens a new row
    publish(world, world.camera_a, "motion", False, topic="tns1:VideoSource/MotionAlarm")
    publish(world, world.camera_a, "motion", True, topic="tns1:VideoSource/MotionAlarm")
    found = await wait_rows(world, lambda r: len(r) == 3)
    assert found[2].end_us is None


async def test_an_interval_without_off_is_closed_after_the_maximum(db_url: str, settings_factory,
                                                                   aiohttp_client) -> None:  # type: ignore[no-untyped-def]
    from tests.web.conftest import seed_world
    from vms.app import create_app

    app = create_app(settings_factory(db_url, **{"events.max_open_seconds": 1}),
                     start_recorder=False)
    client = await aiohttp_client(app)
    site_a, site_b, cam_a, cam_b = await app[GATEWAY].write(seed_world, app)
    world = World(client=client, app=app, site_a=site_a, site_b=site_b, camera_a=cam_a,
                  camera_b=cam_b)
    at = publish(world, cam_a, "tamper", True, topic="tns1:VideoSource/ImageTooDark")
    found = await wait_rows(world, lambda r: len(r) == 1 and r[0].end_us is not None,
                            within=3.0)
    assert found[0].end_us == at + 1_000_000
    assert json.loads(found[0].data)["closed"] == "max_open"


async def test_types_a_camera_does_not_keep_are_dropped(world: World) -> None:
    admin = await world.login("admin1")
    resp = await world.client.put(f"/api/v1/cameras/{world.camera_a}/events/settings",
                                  json={"kept": ["doorbell"], "recorded": ["doorbell"]},
                                  headers={"X-CSRF-Token": admin})
    assert resp.status == 200, await resp.text()
    assert (await resp.json())["kept"] == ["doorbell"]
    publish(world, world.camera_a, "motion", None)
    publish(world, world.camera_a, "doorbell", None)
    found = await wait_rows(world, lambda r: len(r) >= 1)
    assert [r.type for r in found] == ["doorbell"]
    resp = await world.client.put(f"/api/v1/cameras/{world.camera_a}/events/settings",
                                  json={"kept": ["nonsense"], "recorded": []},
                                  headers={"X-CSRF-Token": admin})
    assert resp.status == 400 and "kept" in await resp.text()


async def test_plate_search_by_partial_cyrillic_text_and_scoping(world: World) -> None:
    publish(world, world.camera_a, "plate", None, plate="123ABC02", country="RU", confidence=0.9)
    publish(world, world.camera_a, "plate", None, plate="777XYZ01")
    publish(world, world.camera_b, "plate", None, plate="123ABC99")
    await wait_rows(world, lambda r: len(r) == 3)
    await world.login("viewer1")
    resp = await world.client.get("/api/v1/events", params={"plate": "123 авс"})
    assert resp.status == 200
    events = (await resp.json())["events"]
    assert [e["data"]["plate"] for e in events] == ["123ABC02"]  # site B's plate is not listed
    assert events[0]["camera_name"] == "Gate A" and events[0]["site_name"] == "Site A"
    resp = await world.client.get("/api/v1/events")
    assert {e["camera_id"] for e in (await resp.json())["events"]} == {world.camera_a}
    resp = await world.client.get("/api/v1/events", params={"camera_id": str(world.camera_b)})
    assert resp.status == 404
    resp = await world.client.get("/api/v1/events", params={"site_id": str(world.site_b)})
    assert resp.status == 404
    resp = await world.client.get("/api/v1/events", params={"type": "bogus"})
    assert resp.status == 400 and "bogus" in await resp.text()
    await world.login("viewer_b")
    resp = await world.client.get("/api/v1/events", params={"plate": "123"})
    assert [e["data"]["plate"] for e in (await resp.json())["events"]] == ["123ABC99"]
    page = await (await world.client.get("/events")).text()
    assert "123ABC99" in page and "123ABC02" not in page and "Gate A" not in page


async def test_pagination_newest_first(world: World) -> None:
    base = world.app[CLOCK].now_us()
    for i in range(7):
        publish(world, world.camera_a, "doorbell", None, at_us=base + i * 1000)
    await wait_rows(world, lambda r: len(r) == 7)
    await world.login("viewer1")
    seen: list[int] = []
    cursor = ""
    for _ in range(5):
        params = {"limit": "3", **({"cursor": cursor} if cursor else {})}
        body = await (await world.client.get("/api/v1/events", params=params)).json()
        seen += [e["start_us"] for e in body["events"]]
        cursor = body["next_cursor"]
        if not cursor:
            break
    assert seen == [base + i * 1000 for i in reversed(range(7))]
    body = await (await world.client.get("/api/v1/events", params={
        "from": str(base + 2000), "to": str(base + 4000)})).json()
    assert [e["start_us"] for e in body["events"]] == [base + 3000, base + 2000]
    resp = await world.client.get("/api/v1/events", params={"cursor": "garbage"})
    assert resp.status == 400


async def read_sse(resp: Any, count: int, within: float = 2.0) -> list[tuple[str | None, str, dict[str, Any]]]:  # noqa: E501
    """``count`` SSE messages (id, event, data) from a streaming answer."""
    out: list[tuple[str | None, str, dict[str, Any]]] = []
    eid: str | None = None
    kind = "message"
    deadline = time.monotonic() + within
    while len(out) < count:
        line = await asyncio.wait_for(resp.content.readline(), deadline - time.monotonic())
        text = line.decode().rstrip("\n")
        if text.startswith("id: "):
            eid = text[4:]
        elif text.startswith("event: "):
            kind = text[7:]
        elif text.startswith("data: "):
            out.append((eid, kind, json.loads(text[6:])))
            eid, kind = None, "message"
    return out


async def test_sse_feed_is_scoped_and_resumes_by_last_event_id(world: World) -> None:
    await world.login("viewer1")
    resp = await world.client.get("/api/v1/events/stream")
    assert resp.status == 200 and resp.headers["Content-Type"].startswith("text/event-stream")
    publish(world, world.camera_b, "doorbell", None)  # another site: never sent
    publish(world, world.camera_a, "motion", True, topic="m")
    publish(world, world.camera_a, "motion", False, topic="m")
    got = await read_sse(resp, 2)
    assert got[0][1] == "event" and got[0][2]["camera_id"] == world.camera_a
    first_id = got[0][0]
    assert first_id == str(got[0][2]["id"])
    assert got[1][1] == "end" and got[1][2]["id"] == got[0][2]["id"]
    resp.close()
    # while disconnected: one event of each site; resuming replays only site A's from the store
    publish(world, world.camera_b, "plate", None, plate="B1")
    publish(world, world.camera_a, "plate", None, plate="A1")
    await wait_rows(world, lambda r: len(r) == 4)
    resp = await world.client.get("/api/v1/events/stream", headers={"Last-Event-ID": first_id})
    got = await read_sse(resp, 1)
    assert got[0][2]["data"]["plate"] == "A1" and int(got[0][0]) > int(first_id)
    resp.close()


async def test_sse_feed_ends_at_shutdown(world: World) -> None:
    await world.login("viewer1")
    resp = await world.client.get("/api/v1/events/stream")
    assert resp.status == 200
    world.app[SERVICES]["events"].shutdown()
    body = await asyncio.wait_for(resp.content.read(), 2.0)  # the answer ends
    assert body.startswith(b"retry:")


def test_cli_events(engine: str, db_url: str, settings_factory, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from vms.db.gateway import Gateway

    settings = settings_factory(db_url)
    gw = Gateway(settings.database_url)
    gw.migrate()

    def seed() -> int:
        site = m.Site.create(name="S", created_us=0)
        cam = m.Camera.create(site=site, name="Gate", status_since_us=0, created_us=0,
                              updated_us=0)
        m.Event.create(camera=cam, site=site, type="plate", start_us=1_000, end_us=1_000,
                       plate="123ABC02", data=json.dumps({"plate": "123ABC02"}))
        m.Event.create(camera=cam, site=site, type="motion", start_us=2_000, end_us=None)
        return cam.id

    cam_id = gw.write_sync(seed)
    gw.close()
    config = tmp_path / "vms.toml"
    config.write_text(f'data_dir = "{settings.data_dir}"\n[database]\nurl = "{db_url}"\n')
    env = {"PYTHONPATH": str(Path(__file__).resolve().parents[2]), "PATH": "/usr/bin:/bin"}

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "vms", "events", "--config", str(config),
                               *args], capture_output=True, text=True, timeout=60, env=env)

    out = run("--plate", "123 авс", "--json")
    assert out.returncode == 0, out.stderr
    lines = [json.loads(x) for x in out.stdout.splitlines()]
    assert [e["data"]["plate"] for e in lines] == ["123ABC02"]
    out = run("--camera", str(cam_id))
    assert out.returncode == 0 and "ongoing" in out.stdout and "123ABC02" in out.stdout
    out = run("--camera", "999")
    assert out.returncode == 2 and "no camera 999" in out.stderr
    out = run("--from", "yesterday")
    assert out.returncode == 2 and "--from" in out.stderr


async def test_recorder_triggers_only_the_chosen_types(world: World) -> None:
    """The supervisor hands a camera's recorder only the event types it records on: a real
    (not started) event-mode StreamRecorder keeps a window for tamper, none for motion."""
    from recorder.run import StreamRecorder
    from recorder.supervisor import RecorderSupervisor, _Task
    from web.keys import SECRETS, SETTINGS

    sup = RecorderSupervisor(world.app[GATEWAY], world.app[SETTINGS], world.app[CLOCK],
                             world.app[SECRETS])
    await world.app[GATEWAY].write(lambda: m.Camera.update(
        event_types_recorded="tamper", recording_mode="event").where(
        m.Camera.id == world.camera_a).execute())
    wanted = await sup._wanted_streams(world.camera_a)
    config = wanted[(world.camera_a, "main")]
    rec = StreamRecorder(sup.gw, sup.settings, sup.clock, config, sup.options,
                         None)  # type: ignore[arg-type]  # never started: no volume needed
    sup._tasks[(world.camera_a, "main")] = _Task(rec, asyncio.get_running_loop().create_future())
    sup.camera_event(CameraEvent(world.camera_a, world.site_a, "motion", None, 10_000_000))
    sup.camera_event(CameraEvent(world.camera_a, world.site_a, "doorbell", None, 20_000_000))
    assert rec._keeps._keeps == []
    sup.camera_event(CameraEvent(world.camera_a, world.site_a, "tamper", None, 30_000_000))
    assert len(rec._keeps._keeps) == 1


async def test_camera_page_event_settings_form(world: World) -> None:
    csrf = await world.login("installer1")
    page = await (await world.client.get(f"/cameras/{world.camera_a}")).text()
    assert 'id="camera-events-settings"' in page
    resp = await world.client.post(f"/cameras/{world.camera_a}/events/settings",
                                   data={"csrf_token": csrf, "kept": ["plate", "doorbell"],
                                         "recorded": ["doorbell"]}, allow_redirects=False)
    assert resp.status == 303, await resp.text()
    body = await (await world.client.get(f"/api/v1/cameras/{world.camera_a}/events/settings"))\
        .json()
    assert body == {"camera_id": world.camera_a, "kept": ["doorbell", "plate"],
                    "recorded": ["doorbell"]}
    await world.login("viewer_b")
    resp = await world.client.get(f"/api/v1/cameras/{world.camera_a}/events/settings")
    assert resp.status == 404


@pytest.mark.engines("sqlite")  # the SSE transport; the events' queries run on both engines
async def test_sse_heartbeats_and_a_slow_client_counts_its_drops(world: World) -> None:
    world.app[SERVICES]["events"].feed_heartbeat_s = 0.2
    await world.login("viewer1")
    resp = await world.client.get("/api/v1/events/stream")
    seen = b""
    deadline = time.monotonic() + 2.0
    while b": heartbeat" not in seen and time.monotonic() < deadline:
        seen += await asyncio.wait_for(resp.content.readline(), 2.0)
    assert b": heartbeat" in seen
    resp.close()
    # a listener that never reads: its queue stays bounded and what it lost is counted
    store = world.app[SERVICES]["events"]
    listener = store.listen(None)
    from vms.events import LISTENER_QUEUE_MAX

    before = store.listener_dropped
    for _ in range(LISTENER_QUEUE_MAX + 10):
        publish(world, world.camera_a, "doorbell", None)
    await wait_rows(world, lambda r: len(r) == LISTENER_QUEUE_MAX + 10, within=10.0)
    assert listener.queue.qsize() == LISTENER_QUEUE_MAX
    assert listener.dropped == 10 and store.listener_dropped - before == 10
    listener.close()
    metrics = await (await world.client.get("/metrics")).text()
    assert 'vms_events_dropped_total{subscriber="feed"} 10.0' in metrics
    assert f"vms_events_stored_total {LISTENER_QUEUE_MAX + 10}.0" in metrics


async def test_one_bad_message_does_not_lose_its_batch(world: World) -> None:
    publish(world, world.camera_b, "doorbell", None)
    await wait_rows(world, lambda r: len(r) == 1)  # camera B is now known to the store

    def delete_b() -> None:
        m.Event.delete().where(m.Event.camera == world.camera_b).execute()
        m.CameraStream.delete().where(m.CameraStream.camera == world.camera_b).execute()
        m.Camera.delete().where(m.Camera.id == world.camera_b).execute()

    await world.app[GATEWAY].write(delete_b)
    # both in one batch: B's insert fails (no such camera), A's must still be stored
    publish(world, world.camera_b, "doorbell", None)
    at = publish(world, world.camera_a, "doorbell", None)
    found = await wait_rows(world, lambda r: len(r) == 1 and r[0].camera_id == world.camera_a)
    assert found[0].start_us == at


async def test_event_settings_change_is_audited(world: World) -> None:
    csrf = await world.login("installer1")
    resp = await world.client.put(f"/api/v1/cameras/{world.camera_a}/events/settings",
                                  json={"kept": ["plate"], "recorded": []},
                                  headers={"X-CSRF-Token": csrf})
    assert resp.status == 200

    def last() -> m.AuditLog:
        return m.AuditLog.select().order_by(m.AuditLog.id.desc()).first()

    row = await world.app[GATEWAY].read(last)
    assert row.action == "camera_event_settings" and row.username == "installer1"
    assert json.loads(row.detail) == {"kept": ["plate"], "recorded": []}
    csrf_b = await world.login("viewer_b")
    resp = await world.client.put(f"/api/v1/cameras/{world.camera_a}/events/settings",
                                  json={"kept": [], "recorded": []},
                                  headers={"X-CSRF-Token": csrf_b})
    assert resp.status == 403  # a viewer may not change it (and never sees site A's camera)


async def test_sources_are_separate_intervals_and_a_restart_continues_them(
        world: World) -> None:
    from vms.events import EventStore

    topic = "tns1:RuleEngine/CellMotionDetector/Motion"
    publish(world, world.camera_a, "motion", True, topic=topic, source={"Rule": "r1"})
    publish(world, world.camera_a, "motion", True, topic=topic, source={"Rule": "r2"})
    await wait_rows(world, lambda r: len(r) == 2)
    publish(world, world.camera_a, "motion", False, topic=topic, source={"Rule": "r1"})
    found = await wait_rows(world, lambda r: r[0].end_us is not None)
    assert found[1].end_us is None
    # a second store (a restarted server) knows r2 is open: its "on" continues, its "off" closes
    bus = world.app[BUS]
    old = world.app[SERVICES]["events"]
    await old.stop()
    store = EventStore(world.app[GATEWAY], bus, world.app[CLOCK], max_open_s=3600)
    await store.start()
    try:
        publish(world, world.camera_a, "motion", True, topic=topic, source={"Rule": "r2"})
        off = publish(world, world.camera_a, "motion", False, topic=topic, source={"Rule": "r2"})
        found = await wait_rows(world, lambda r: r[1].end_us is not None)
        assert len(found) == 2 and found[1].end_us == off
    finally:
        await store.stop()
