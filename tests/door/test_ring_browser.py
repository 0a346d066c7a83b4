"""The doorbell in a real Chromium, nothing faked: the call button is pressed in a camsim
intercom, the event travels through its PullPoint pump, the store and the live feed, and every
open page of the site's resident rings — on a phone (390×844): a banner with the camera's picture,
a WebAudio tone, "Open door" — while a resident of another site hears nothing. "Open door" pulses
camsim's relay (active, then inactive), answers the ring and writes the audit record; the live
view's own "Open door" button does the same."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from vms.db import models as m

pytestmark = pytest.mark.browser

PASSWORD = "ring-browser-pw-1"
CAMERA_PASSWORD = "ring-cam-pw-1"  # noqa: S105 - a test camera's login
TOKEN = "RelayOutputToken_1"


async def _page(browser: Any, base: str, username: str, **context_options: Any) -> tuple[Any, Any]:
    grant = context_options.pop("grant", ())
    context = await browser.new_context(base_url=base, locale="en-US", **context_options)
    if grant:
        await context.grant_permissions(list(grant), origin=base)
    # the browser's own Notification, wrapped to see what the page shows (the outer boundary)
    await context.add_init_script("""
      window.__notified = [];
      if (window.Notification) {
        window.Notification = new Proxy(window.Notification, {
          construct(target, args) {
            window.__notified.push(args[0]);
            return Reflect.construct(target, args);
          },
          get(target, key) { return Reflect.get(target, key); },
        });
      }""")
    resp = await context.request.post("/api/v1/auth/login",
                                      data={"username": username, "password": PASSWORD})
    assert resp.status == 200
    page = await context.new_page()
    await page.goto("/")
    await page.wait_for_selector("html[data-ring-feed='open']", timeout=5000)
    return context, page


async def test_a_doorbell_rings_the_sites_phone_and_open_door_pulses(
        browser: Any, settings_factory: Any, camsim_factory: Any) -> None:
    from aiohttp import web

    from tests.events.test_event_pump import control, wait_for
    from vms.app import create_app
    from vms.bus import CameraChanged
    from web.keys import ACCOUNTS, BUS, CLOCK, GATEWAY, SECRETS, SERVICES

    fleet = await camsim_factory(count=1, rtsp=False, password=CAMERA_PASSWORD)
    camera = fleet.cameras[0]
    app = create_app(settings_factory())  # with the recorder's side: the event pumps run
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    base = f"http://127.0.0.1:{runner.addresses[0][1]}"
    try:
        accounts, secrets, now = app[ACCOUNTS], app[SECRETS], app[CLOCK].now_us()

        def seed() -> int:
            courtyard = accounts.create_site("Courtyard 12", "UTC")
            accounts.create_site("Courtyard 14", "UTC")
            accounts.create_user("resident", PASSWORD, "viewer", ["Courtyard 12"])
            accounts.create_user("neighbour", PASSWORD, "viewer", ["Courtyard 14"])
            cam = m.Camera.create(site=courtyard, name="Entrance 3", recording_mode="off",
                                  onvif_url=camera.onvif_url, username=camera.username,
                                  password_enc=secrets.encrypt(CAMERA_PASSWORD),
                                  status_since_us=now, created_us=now, updated_us=now)
            for kind, token in (("main", "Profile_1"), ("sub", "Profile_2")):
                m.CameraStream.create(camera=cam, kind=kind, profile_token=token,
                                      rtsp_url=camera.info()["rtsp"][kind], record=False)
            return int(cam.id)

        camera_id = await app[GATEWAY].write(seed)
        await app[SERVICES]["doors"].refresh(None, camera_id)
        app[BUS].publish(CameraChanged(camera_id))
        pumps = app[SERVICES]["event_pumps"]
        (phone, page), (other, other_page), _ = await asyncio.gather(
            _page(browser, base, "resident", viewport={"width": 390, "height": 844},
                  is_mobile=True, has_touch=True, grant=["notifications"]),
            _page(browser, base, "neighbour"),
            wait_for(lambda: pumps.status(camera_id)["state"] == "subscribed", 15, "the pump"))
        await page.tap("main")  # a tap: the browser lets the page make sound from now on
        started = time.monotonic()
        await control(camera, "event", {"type": "doorbell"})
        banner = page.locator(".ring-banner")
        await banner.wait_for(timeout=5000)
        assert time.monotonic() - started < 2.0
        assert "Entrance 3" in await banner.locator(".ring-title").inner_text()
        await page.wait_for_selector(".ring-banner[data-sound='playing']", timeout=3000)
        picture = banner.locator(".ring-picture")
        deadline = time.monotonic() + 5
        while await picture.evaluate("img => img.naturalWidth") == 0:  # the camera's JPEG
            assert time.monotonic() < deadline, "the banner shows no picture"
            await page.wait_for_timeout(50)
        box = await banner.bounding_box()
        assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= 390
        assert await page.evaluate("document.documentElement.dataset.ringing") == "yes"
        assert await page.evaluate("window.__notified") == ["Someone is at the door: Entrance 3"]
        # the other courtyard's resident: nothing rings
        await other_page.wait_for_timeout(500)
        assert await other_page.locator(".ring-banner").count() == 0

        # "Open door" on the phone: camsim's relay goes active, then back to inactive
        door = banner.locator(".ring-door .door-open")
        await door.wait_for(timeout=3000)
        await door.tap()
        await page.wait_for_selector(".ring-door[data-state='opened']", timeout=5000)
        await wait_for(lambda: len(camera.relay_history) >= 2, 3, "the relay to drop again")
        assert [h["state"] for h in camera.relay_history] == ["active", "inactive"]
        await page.wait_for_selector("html[data-ringing='no']", timeout=5000)

        def answered() -> list[tuple[str, str, str]]:
            rows = (m.RingAnswer.select(m.RingAnswer, m.Event).join(m.Event)
                    .where(m.Event.camera == camera_id))
            audit = m.AuditLog.select().where(m.AuditLog.action == "door_release")
            return ([(a.how, a.username, a.event.type) for a in rows]
                    + [(r.outcome, r.username, "audit") for r in audit])

        assert await app[GATEWAY].read(answered) == [("door", "resident", "doorbell"),
                                                     ("ok", "resident", "audit")]
        # the live view has its own "Open door" button
        await page.goto(f"/cameras/{camera_id}/live?stream=sub")
        live_door = page.locator("[data-door-camera] .door-open")
        await live_door.wait_for(timeout=5000)
        await live_door.tap()
        await page.wait_for_selector("[data-door-camera][data-state='opened']", timeout=5000)
        await wait_for(lambda: len(camera.relay_history) >= 4, 3, "the second pulse")
        await phone.close()
        await other.close()
    finally:
        await runner.cleanup()
