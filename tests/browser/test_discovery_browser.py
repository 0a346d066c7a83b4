"""The installer's whole job in a real browser: scan a subnet (a /29 of 127.0.0.0/8 with camsim
cameras bound there on the WS-Discovery port) with one credentials form, read each row's status in
plain words, adopt one camera with its row button and the rest with "adopt all ready" (the scan's
own credentials), add one by RTSP URL, then rename, move and remove it on its camera page."""

from __future__ import annotations

import asyncio
import random
from typing import Any

import pytest

pytestmark = pytest.mark.browser

PASSWORD = "browser-pass-123"
CAM_PASSWORD = "cam-pass-5678"


async def until(page: Any, expression: str, timeout_s: float = 15.0) -> None:
    """Poll ``expression`` in the page (wait_for_function would need 'unsafe-eval' under our CSP)."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not await page.evaluate(expression):
        assert asyncio.get_running_loop().time() < deadline, f"not true in time: {expression}"
        await asyncio.sleep(0.1)


async def test_installer_scans_adopts_adds_and_manages_cameras(browser: Any, live_app: Any,
                                                               camsim_factory: Any) -> None:
    app, base = live_app
    from web.keys import ACCOUNTS, GATEWAY

    # three cameras on the discovery port of three addresses of a loopback /29 (another /29 per
    # run, so parallel runs do not meet); the third has another password
    net = f"127.{random.randint(1, 254)}.{random.randint(1, 254)}"
    fleet = await camsim_factory(count=3, password=CAM_PASSWORD, per_camera=[
        {"host": f"{net}.2", "discovery_port": 3702}, {"host": f"{net}.3", "discovery_port": 3702},
        {"host": f"{net}.4", "discovery_port": 3702, "password": "another-pass"}])
    accounts = app[ACCOUNTS]

    def seed() -> None:
        accounts.create_site("School 12", "Asia/Almaty")
        accounts.create_site("Courtyard 7", "Asia/Almaty")
        accounts.create_user("admin", PASSWORD, "admin")

    await app[GATEWAY].write(seed)
    page = await browser.new_page(locale="en-US")
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    page.on("dialog", lambda dialog: asyncio.ensure_future(dialog.accept()))

    await page.goto(f"{base}/discovery")
    await page.fill("input[name=username]", "admin")
    await page.fill("input[name=password]", PASSWORD)
    await page.click("button[type=submit]")
    await page.wait_for_url(f"{base}/discovery")
    assert await page.locator("h1").inner_text() == "Discover cameras"
    # one credentials form for everything; the subnet field offers the server's own networks
    assert await page.locator("input[type=password]").count() == 1
    offered = await page.evaluate("[...document.querySelectorAll('#scan-subnets option')]"
                                  ".map(o => o.value)")
    assert await page.input_value("#scan-subnet") == (offered[0] if offered else "")

    await page.fill("#scan-subnet", f"{net}.0/29")  # never the real network: loopback only
    await page.fill("#scan-username", "admin")
    await page.fill("#scan-password", CAM_PASSWORD)
    await page.fill("#scan-timeout", "0.5")
    await page.select_option("#bulk-site", label="School 12")
    await page.click("#scan-start")
    await page.wait_for_selector("#discovery[data-state=done]", timeout=20_000)
    rows = page.locator("#scan-results tbody tr.device-row")
    assert await rows.count() == 3
    text = await page.locator("#scan-results").inner_text()
    for camera in fleet.cameras[:2]:  # the third refused the password before telling its MAC
        assert camera.info()["mac"] in text
    assert text.count("Ready to adopt") == 2 and "Wrong user name or password" in text
    assert "auth_failed" not in text  # plain words, not codes
    refused = await rows.nth(2).inner_text()  # the error said once, in plain words
    assert refused.count("Wrong user name or password") == 1, refused
    assert "wrong password" not in refused.replace("Wrong user name or password", "")
    assert "HTTP 401" in (await rows.nth(2).locator(".status").get_attribute("title") or "")
    await until(page, "[...document.querySelectorAll('#scan-results img')].filter("
                      "i => i.complete && i.naturalWidth > 0).length === 2")

    # adopt the first with its own button, the rest with "adopt all ready" (scan credentials:
    # the password field may be empty by now)
    await page.fill("#scan-password", "")
    await rows.nth(0).locator("button.adopt-one").click()
    await page.wait_for_selector("#scan-results a.adopted", timeout=15_000)
    await page.click("#bulk-adopt")
    await until(page, "document.querySelectorAll('#scan-results a.adopted').length === 2")
    assert "Adopted: 1" in await page.locator("#bulk-result").inner_text()
    assert await page.locator("#scan-error").is_hidden()

    # add a camera without ONVIF by its RTSP URL
    await page.fill("#scan-password", CAM_PASSWORD)
    await page.fill("#add-address", fleet.cameras[1].info()["rtsp"]["sub"])
    await page.fill("#add-name", "Side gate")
    await page.click("#add-submit")
    await page.wait_for_selector("#add-result a", timeout=15_000)
    assert "Side gate" in await page.locator("#add-result").inner_text()

    # its camera page: rename, move to the other site, remove (recordings kept, said so)
    await page.click("#add-result a")
    await page.wait_for_selector("#camera-manage")
    assert "Its recordings are kept" in await page.locator("#manage-remove").inner_text()
    await page.fill("#manage-name", "Side gate 2")
    await page.click("#manage-rename button[type=submit]")
    await until(page, "document.querySelector('h1').textContent === 'Side gate 2'")
    await page.select_option("#manage-site", label="Courtyard 7")
    await page.click("#manage-move button[type=submit]")
    await until(page, "document.getElementById('manage-result').textContent"
                      ".includes('Courtyard 7')")
    camera_url = page.url
    await page.reload()
    assert await page.locator("h1").inner_text() == "Side gate 2"
    assert "Courtyard 7" in await page.locator("main, body").first.inner_text()
    await page.click("#manage-remove-button")
    await page.wait_for_selector("#camera-archived", timeout=15_000)
    assert page.url == camera_url
    assert await page.locator("#camera-manage").count() == 0

    await page.goto(f"{base}/cameras")
    table = await page.locator("#camera-table").inner_text()
    assert "camsim-01" in table and "camsim-02" in table and "School 12" in table
    assert CAM_PASSWORD not in await page.content()
    assert not errors, errors
