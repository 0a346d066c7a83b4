"""The installer's flow in a real browser: scan for two camsim cameras, watch the progress bar and
the rows fill in, adopt one with its row button and the rest with the bulk form, find both in
/cameras."""

from __future__ import annotations

import asyncio
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


async def test_adopt_two_cameras_from_the_discovery_page(browser: Any, live_app: Any,
                                                         camsim_factory: Any) -> None:
    app, base = live_app
    from web.keys import ACCOUNTS, GATEWAY

    fleet = await camsim_factory(count=2, password=CAM_PASSWORD)
    accounts = app[ACCOUNTS]

    def seed() -> None:
        accounts.create_site("School 12", "Asia/Almaty")
        accounts.create_user("admin", PASSWORD, "admin")

    await app[GATEWAY].write(seed)
    page = await browser.new_page(locale="en-US")
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)

    await page.goto(f"{base}/discovery")
    await page.fill("input[name=username]", "admin")
    await page.fill("input[name=password]", PASSWORD)
    await page.click("button[type=submit]")
    await page.wait_for_url(f"{base}/discovery")
    assert await page.locator("h1").inner_text() == "Discover cameras"

    targets = "\n".join(camera.info()["discovery"] for camera in fleet.cameras)
    await page.fill("#scan-targets", targets)
    await page.fill("#scan-username", "admin")
    await page.fill("#scan-password", CAM_PASSWORD)
    await page.fill("#scan-timeout", "1")
    await page.click("#scan-start")
    await page.wait_for_selector("#discovery[data-state=done]", timeout=20_000)
    assert await page.evaluate("document.getElementById('scan-progress').value") == 1
    rows = page.locator("#scan-results tbody tr.device-row")
    assert await rows.count() == 2
    text = await page.locator("#scan-results").inner_text()
    for camera in fleet.cameras:
        assert camera.info()["mac"] in text
    assert "ok" in text
    # the thumbnails are real pictures
    await until(page, "[...document.querySelectorAll('#scan-results img')].filter("
                      "i => i.complete && i.naturalWidth > 0).length === 2")

    # adopt the first camera with its own button
    await page.select_option("#bulk-site", label="School 12")
    await rows.nth(0).locator("button.adopt-one").click()
    await page.wait_for_selector("#scan-results a.adopted", timeout=15_000)
    assert await page.locator("button.adopt-one").count() == 1
    # and the rest with "adopt all found"
    await page.click("#bulk-adopt")
    await until(page, "document.querySelectorAll('#scan-results a.adopted').length === 2")
    assert "1" in await page.locator("#bulk-result").inner_text()

    await page.goto(f"{base}/cameras")
    table = await page.locator("#camera-table").inner_text()
    assert "camsim-01" in table and "camsim-02" in table and "School 12" in table
    assert CAM_PASSWORD not in await page.content()

    # the camera page shows a fresh snapshot from the camera
    await page.click("text=camsim-01")
    await until(page, "(() => { const i = document.querySelector('#camera-snapshot img');"
                      " return !!i && i.complete && i.naturalWidth > 0; })()")
    assert not errors, errors
