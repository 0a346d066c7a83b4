"""The events page in a real Chromium: an event published on the server's bus while the page is
open appears without a reload (the SSE feed), only for a user of the camera's site, and its link
opens playback at that instant."""

from __future__ import annotations

import time
from typing import Any

import pytest

from vms.bus import CameraEvent
from vms.db import models as m

pytestmark = pytest.mark.browser

PASSWORD = "browser-pass-123"


async def _signed_in_page(browser: Any, base: str, username: str) -> tuple[Any, Any]:
    context = await browser.new_context(base_url=base, locale="en-US")
    resp = await context.request.post("/api/v1/auth/login",
                                      data={"username": username, "password": PASSWORD})
    assert resp.status == 200
    page = await context.new_page()
    await page.goto("/")
    await page.click("nav a[href='/events']")
    await page.wait_for_url(f"{base}/events")
    await page.wait_for_selector("#events-live[data-connected='yes']")
    return context, page


async def test_a_new_event_appears_live_and_opens_playback(browser: Any, live_app: Any) -> None:
    app, base = live_app
    from web.keys import ACCOUNTS, BUS, CLOCK, GATEWAY

    accounts = app[ACCOUNTS]
    now = app[CLOCK].now_us()

    def seed() -> tuple[int, int, int, int]:
        site = accounts.create_site("Courtyard 7", "UTC")
        other = accounts.create_site("Elsewhere", "UTC")
        other_cam = m.Camera.create(site=other, name="Far gate", status_since_us=now,
                                    created_us=now, updated_us=now)
        accounts.create_user("guard", PASSWORD, "operator", ["Courtyard 7"])
        accounts.create_user("stranger", PASSWORD, "operator", ["Elsewhere"])
        cam = m.Camera.create(site=site, name="Entrance", status_since_us=now, created_us=now,
                              updated_us=now)
        return int(cam.id), int(site.id), int(other_cam.id), int(other.id)

    camera_id, site_id, other_cam_id, other_site_id = await app[GATEWAY].write(seed)
    context, page = await _signed_in_page(browser, base, "guard")
    other_context, other_page = await _signed_in_page(browser, base, "stranger")
    assert await page.locator("tr.event").count() == 0

    at_us = app[CLOCK].now_us()
    app[BUS].publish(CameraEvent(camera_id=camera_id, site_id=site_id, type="plate", state=None,
                                 at_us=at_us, topic="tns1:LicensePlate",
                                 data={"plate": "123ABC02", "camera_time_us": at_us}))
    started = time.monotonic()
    row = page.locator("tr.event")
    await row.first.wait_for(timeout=5000)
    appeared_s = time.monotonic() - started
    assert await row.count() == 1
    assert await row.first.get_attribute("data-start-us") == str(at_us)
    assert "123ABC02" in await row.first.inner_text()
    assert appeared_s < 2.0, appeared_s

    # the user of another site: the feed sent nothing of ours — an event of their own site,
    # published after ours, arrives alone
    app[BUS].publish(CameraEvent(camera_id=other_cam_id, site_id=other_site_id, type="doorbell",
                                 state=None, at_us=app[CLOCK].now_us()))
    await other_page.locator("tr.event").first.wait_for(timeout=5000)
    assert await other_page.locator("tr.event").count() == 1
    assert "Far gate" in await other_page.locator("tr.event").first.inner_text()
    await other_page.reload()
    assert await other_page.locator("tr.event").count() == 1
    assert "Entrance" not in await other_page.content()
    assert await page.locator("tr.event").count() == 1  # and ours does not see theirs

    await row.first.locator("a.event-play").nth(1).click()
    await page.wait_for_url(f"{base}/cameras/{camera_id}/playback?at={at_us}")
    assert await page.locator("[data-at]").first.get_attribute("data-at") == str(at_us)
    await context.close()
    await other_context.close()


async def test_a_doorbell_pressed_in_camsim_appears_live(browser: Any, settings_factory: Any,
                                                        camsim_factory: Any) -> None:
    """The same with nothing faked: the doorbell is pressed in a camsim camera and travels through
    its PullPoint pump, the store and the feed to the open page."""
    from aiohttp import web

    from tests.events.test_event_pump import control, wait_for
    from vms.app import create_app
    from vms.bus import CameraChanged
    from web.keys import ACCOUNTS, BUS, CLOCK, GATEWAY, SECRETS, SERVICES

    fleet = await camsim_factory(count=1, rtsp=False, password="browser-cam-pw-1")
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
            courtyard = accounts.create_site("Courtyard 9", "UTC")
            accounts.create_user("guard", PASSWORD, "operator", ["Courtyard 9"])
            cam = m.Camera.create(site=courtyard, name="Call panel", recording_mode="off",
                                  onvif_url=camera.onvif_url, username=camera.username,
                                  password_enc=secrets.encrypt("browser-cam-pw-1"),
                                  status_since_us=now, created_us=now, updated_us=now)
            return int(cam.id)

        camera_id = await app[GATEWAY].write(seed)
        app[BUS].publish(CameraChanged(camera_id))
        pumps = app[SERVICES]["event_pumps"]
        await wait_for(lambda: pumps.status(camera_id)["state"] == "subscribed", 15, "the pump")
        context, page = await _signed_in_page(browser, base, "guard")
        assert await page.locator("tr.event").count() == 0
        started = time.monotonic()
        await control(camera, "event", {"type": "doorbell"})
        row = page.locator("tr.event")
        await row.first.wait_for(timeout=5000)
        assert time.monotonic() - started < 2.0
        assert "Call panel" in await row.first.inner_text()
        at_us = await row.first.get_attribute("data-start-us")
        await row.first.locator("a.event-play").nth(1).click()
        await page.wait_for_url(f"{base}/cameras/{camera_id}/playback?at={at_us}")
        await context.close()
    finally:
        await runner.cleanup()
