"""The event pumps in the whole server: a camera in service gets a pump (following
``CameraChanged``), its events reach the bus, its pump state shows in the camera API and page,
the raw-SOAP switch works for installers only, a removed camera's pump stops, and the server
stops its pumps quickly."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from tests.events.test_event_pump import control, next_event, wait_for
from tests.web.conftest import World, seed_world
from vms.bus import CameraChanged, CameraEvent
from vms.db import models as m

PASSWORD = "wiring-s3cret-pw"  # noqa: S105 - a test camera's login


async def test_pumps_follow_cameras_and_show_in_the_api(db_url: str, settings_factory,  # type: ignore[no-untyped-def]
                                                        aiohttp_client, camsim_factory) -> None:
    from vms.app import create_app
    from web.keys import BUS, GATEWAY, SECRETS, SERVICES

    fleet = await camsim_factory(count=1, rtsp=False, password=PASSWORD)
    camera = fleet.cameras[0]
    app = create_app(settings_factory(db_url))
    client = await aiohttp_client(app)
    site_a, _, cam_a, cam_b = await app[GATEWAY].write(seed_world, app)
    world = World(client=client, app=app, site_a=site_a, site_b=0, camera_a=cam_a,
                  camera_b=cam_b)
    secrets = app[SECRETS]

    def point_at_camsim() -> None:
        m.Camera.update(recording_mode="off").execute()  # no ffmpeg for these rows
        m.Camera.update(onvif_url=camera.onvif_url, username=camera.username,
                        password_enc=secrets.encrypt(PASSWORD),
                        updated_us=m.Camera.updated_us + 1).where(m.Camera.id == cam_a).execute()

    await app[GATEWAY].write(point_at_camsim)
    pumps = app[SERVICES]["event_pumps"]
    sub = app[BUS].subscribe(CameraEvent)
    app[BUS].publish(CameraChanged(cam_a))
    await wait_for(lambda: pumps.status(cam_a)["state"] == "subscribed", 10, "camera A's pump")

    fired = time.monotonic()
    await control(camera, "event", {"type": "doorbell"})
    event = await next_event(sub, lambda e: e.type == "doorbell", 1.0)
    assert time.monotonic() - fired < 1.0
    assert (event.camera_id, event.site_id) == (cam_a, site_a)

    await world.login("admin1")
    resp = await client.get(f"/api/v1/cameras/{cam_a}")
    assert resp.status == 200
    events = (await resp.json())["events"]
    assert events["state"] == "subscribed" and events["mode"] == "long_poll"
    assert events["last_message_us"] >= event.at_us and events["failures"] == 0
    assert events["soap_log"] is False
    page = await client.get(f"/cameras/{cam_a}")
    assert 'id="camera-events"' in await page.text()

    # the raw SOAP switch: installers and admins only, scoped by site, no credentials kept
    token = await world.login("viewer1")
    resp = await client.put(f"/api/v1/cameras/{cam_a}/events/soap-log", json={"enabled": True},
                            headers={"X-CSRF-Token": token})
    assert resp.status == 403
    token = await world.login("installer1")
    resp = await client.put(f"/api/v1/cameras/{cam_b}/events/soap-log", json={"enabled": True},
                            headers={"X-CSRF-Token": token})
    assert resp.status == 404  # camera B is another site's
    resp = await client.put(f"/api/v1/cameras/{cam_a}/events/soap-log", json={"enabled": "yes"},
                            headers={"X-CSRF-Token": token})
    assert resp.status == 400
    resp = await client.put(f"/api/v1/cameras/{cam_a}/events/soap-log", json={"enabled": True},
                            headers={"X-CSRF-Token": token})
    assert resp.status == 200 and (await resp.json())["enabled"] is True
    await control(camera, "event", {"type": "plate", "plate": "123ABC02"})
    await next_event(sub, lambda e: e.type == "plate", 1.0)

    async def logged() -> list[dict[str, Any]]:
        resp = await client.get(f"/api/v1/cameras/{cam_a}/events/soap-log")
        assert resp.status == 200
        return list((await resp.json())["exchanges"])

    deadline = time.monotonic() + 5
    while not any("123ABC02" in e["response"] for e in await logged()):
        assert time.monotonic() < deadline, "the plate's PullMessages answer was not logged"
        await asyncio.sleep(0.05)
    assert all(PASSWORD not in e["request"] + e["response"] for e in await logged())

    # removing camera A (the API's DELETE: onboarding publishes CameraChanged) stops its pump
    token = await world.login("admin1")
    resp = await client.delete(f"/api/v1/cameras/{cam_a}", headers={"X-CSRF-Token": token})
    assert resp.status == 200, await resp.text()
    await wait_for(lambda: pumps.pump(cam_a) is None, 5, "camera A's pump to stop")
    resp = await client.get(f"/api/v1/cameras/{cam_a}")
    assert (await resp.json())["events"]["state"] == "stopped"
    sub.close()

    # shutdown: the pump of a camera in service stops within a second or two
    def back_in_service() -> None:
        m.Camera.update(archived_us=None, mac=None, status="new",
                        updated_us=m.Camera.updated_us + 1).where(m.Camera.id == cam_a).execute()

    await app[GATEWAY].write(back_in_service)
    app[BUS].publish(CameraChanged(cam_a))
    await wait_for(lambda: pumps.status(cam_a)["state"] == "subscribed", 10, "the pump again")
    started = time.monotonic()
    await pumps.stop()
    assert time.monotonic() - started < 2.0
    assert pumps.pump(cam_a) is None
