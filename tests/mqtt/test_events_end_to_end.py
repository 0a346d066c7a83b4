"""Camera events end to end, with nothing between camsim and the user but our code: a doorbell,
motion, tamper and a plate fired in a camsim camera go through the camera's PullPoint pump to the
event store (``GET /api/v1/events``), the live feed of a viewer of that site (SSE) and Mosquitto,
each within a second; a viewer of another site sees none of them, over the API and the feed."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import aiohttp

from tests.events.test_event_pump import control, wait_for
from tests.mqtt.broker import Space, listen
from tests.web.conftest import PASSWORD as USER_PASSWORD
from tests.web.conftest import seed_world
from vms.bus import CameraChanged
from vms.db import models as m

CAMERA_PASSWORD = "e2e-events-cam-pw"  # noqa: S105 - a test camera's login
FIRED = (
    ({"type": "doorbell"}, "doorbell"),
    ({"type": "motion", "state": True}, "motion"),
    ({"type": "tamper", "state": True}, "tamper"),
    ({"type": "plate", "plate": "123АВС02"}, "plate"),  # Cyrillic А, В, С from the camera
)


async def signed_in(base: str, username: str) -> aiohttp.ClientSession:
    session = aiohttp.ClientSession(base_url=base, cookie_jar=aiohttp.CookieJar(unsafe=True))
    async with session.post("/api/v1/auth/login",
                            json={"username": username, "password": USER_PASSWORD}) as resp:
        assert resp.status == 200, await resp.text()
    return session


class Feed:
    """A live feed (``GET /api/v1/events/stream``) read in the background."""

    def __init__(self, session: aiohttp.ClientSession) -> None:
        self.session = session
        self.events: list[tuple[float, dict[str, Any]]] = []
        self.task: asyncio.Task[None] | None = None
        self.open = asyncio.Event()

    async def _read(self) -> None:
        async with self.session.get("/api/v1/events/stream") as resp:
            assert resp.status == 200
            self.open.set()
            kind = "message"
            async for raw in resp.content:
                line = raw.decode().rstrip("\n")
                if line.startswith("event: "):
                    kind = line[7:]
                elif line.startswith("data: "):
                    if kind == "event":
                        self.events.append((time.monotonic(), json.loads(line[6:])))
                    kind = "message"

    async def start(self) -> None:
        self.task = asyncio.create_task(self._read())
        await asyncio.wait_for(self.open.wait(), 5)

    async def close(self) -> None:
        if self.task is not None:
            self.task.cancel()
            await asyncio.gather(self.task, return_exceptions=True)
        await self.session.close()


async def test_camsim_events_reach_store_feed_and_mqtt_within_a_second(
        engine: str, db_url: str, settings_factory: Any, aiohttp_client: Any, camsim_factory: Any,
        shared_broker: int, space: Space) -> None:
    from vms.app import create_app
    from web.keys import BUS, GATEWAY, SECRETS, SERVICES

    fleet = await camsim_factory(count=1, rtsp=False, password=CAMERA_PASSWORD)
    camera = fleet.cameras[0]
    settings = settings_factory(db_url, **{
        "mqtt.url": f"mqtt://127.0.0.1:{shared_broker}", "mqtt.topic_prefix": space.prefix,
        "mqtt.discovery_prefix": space.discovery_prefix})
    app = create_app(settings)
    client = await aiohttp_client(app)
    _site_a, _site_b, cam_a, _cam_b = await app[GATEWAY].write(seed_world, app)
    secrets = app[SECRETS]

    def point_at_camsim() -> None:
        m.Camera.update(recording_mode="off").execute()  # events only: no ffmpeg here
        m.Camera.update(onvif_url=camera.onvif_url, username=camera.username,
                        password_enc=secrets.encrypt(CAMERA_PASSWORD),
                        updated_us=m.Camera.updated_us + 1).where(m.Camera.id == cam_a).execute()

    await app[GATEWAY].write(point_at_camsim)
    app[BUS].publish(CameraChanged(cam_a))
    pumps = app[SERVICES]["event_pumps"]
    await wait_for(lambda: pumps.status(cam_a)["state"] == "subscribed", 15, "the pump")

    base = str(client.make_url("/"))
    ours = Feed(await signed_in(base, "viewer1"))  # site A: camera A's site
    theirs = Feed(await signed_in(base, "viewer_b"))
    try:
        await ours.start()
        await theirs.start()
        async with listen(shared_broker, *space.topics) as heard:
            for body, kind in FIRED:
                fired = time.monotonic()
                await control(camera, "event", body)

                def stored(kind: str = kind) -> bool:
                    return any(e["type"] == kind and e["camera_id"] == cam_a
                               for _, e in ours.events)

                await wait_for(stored, 1.0, f"{kind} on the live feed")
                got_at, row = next((t, e) for t, e in ours.events if e["type"] == kind)
                assert got_at - fired < 1.0
                async with ours.session.get("/api/v1/events",
                                            params={"camera_id": str(cam_a),
                                                    "type": kind}) as resp:
                    assert resp.status == 200
                    listed = (await resp.json())["events"]
                # in the store (camsim, like Hikvision, states motion under two topics: two rows)
                assert row["id"] in [e["id"] for e in listed]
                message = await heard.wait_for(
                    lambda r, kind=kind: r.topic.startswith(f"{space.prefix}/")
                    and r.topic.endswith(f"/{kind}"), timeout_s=1.0, what=f"{kind} on MQTT")
                assert message.at - fired < 1.0
                payload = json.loads(message.payload)
                assert payload["camera_id"] == cam_a and payload["type"] == kind
            plate_row = next(e for _, e in ours.events if e["type"] == "plate")
            assert plate_row["data"]["plate"] == "123АВС02"
        # the plate, searched the way a person types it, by a part in Latin and Cyrillic letters
        async with ours.session.get("/api/v1/events", params={"plate": "3 авс"}) as resp:
            assert [e["id"] for e in (await resp.json())["events"]] == [plate_row["id"]]
        # another site's viewer: nothing, over the API and the feed
        async with theirs.session.get("/api/v1/events") as resp:
            assert resp.status == 200
            assert [e for e in (await resp.json())["events"] if e["camera_id"] == cam_a] == []
        async with theirs.session.get("/api/v1/events",
                                      params={"camera_id": str(cam_a)}) as resp:
            assert resp.status == 404
        assert theirs.events == []
    finally:
        await ours.close()
        await theirs.close()
