"""The storage page in a real Chromium: the usage chart is drawn (server-side SVG with a line
through every sample) and the figures shown are those of ``GET /api/v1/storage``."""

from __future__ import annotations

from typing import Any

import pytest

from tests.storage_seed import S, hold, record
from vms.db import models as m
from vms.storage import DAY_US

pytestmark = pytest.mark.browser

PASSWORD = "browser-pass-123"


async def test_storage_page_draws_the_chart_and_matches_the_api(browser: Any,
                                                                live_app: Any) -> None:
    app, base = live_app
    from web.keys import ACCOUNTS, CLOCK, GATEWAY, SETTINGS
    from web.storage_chart import format_bytes

    accounts = app[ACCOUNTS]
    gw = app[GATEWAY]
    volume = app[SETTINGS].volumes[0]
    now = app[CLOCK].now_us()

    def seed() -> int:
        site = accounts.create_site("Courtyard 7", "Asia/Almaty")
        accounts.create_user("keeper", PASSWORD, "installer", ["Courtyard 7"])
        cam = m.Camera.create(site=site, name="Entrance", status_since_us=now, created_us=now,
                              updated_us=now)
        old = now - 5 * DAY_US
        record(volume, cam.id, [(old, old + 60 * S, 150_000), (now - 90 * S, now - 30 * S,
                                                               2_500_000)])
        hold(cam.id, old, old + 30 * S, "stolen bicycle")
        # a week of hourly samples, growing (the hourly job's own sample is newer)
        m.StorageSample.delete().execute()
        for hour in range(7 * 24):
            m.StorageSample.create(volume=volume.name, at_us=now - (7 * 24 - hour) * 3600 * S,
                                   used_bytes=hour * 10_000, free_bytes=10**9 - hour * 10_000,
                                   total_bytes=2 * 10**9)
        return int(cam.id)

    camera_id = await gw.write(seed)
    context = await browser.new_context(base_url=base, locale="en-US")
    errors: list[str] = []
    page = await context.new_page()
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    resp = await context.request.post("/api/v1/auth/login",
                                      data={"username": "keeper", "password": PASSWORD})
    assert resp.status == 200
    await page.goto("/")
    await page.click("nav a[href='/storage']")
    await page.wait_for_url(f"{base}/storage")
    api = await (await context.request.get("/api/v1/storage")).json()
    [vol] = api["volumes"]

    # the chart: an SVG with one line per series through every sample
    chart = page.locator(f"section[data-volume='{vol['name']}'] svg.storage-chart")
    assert await chart.count() == 1
    box = await chart.bounding_box()
    assert box is not None and box["width"] > 300 and box["height"] > 100
    used_d = await chart.locator("path.used").get_attribute("d")
    disk_d = await chart.locator("path.disk").get_attribute("d")
    assert used_d and disk_d
    samples = int(await chart.get_attribute("data-points"))
    assert samples == 7 * 24 or samples == 7 * 24 + 1  # the start-up sample may be newer
    assert used_d.count("L") == samples - 1 and used_d.startswith("M")
    length = await page.evaluate(
        "document.querySelector('svg.storage-chart path.used').getTotalLength()")
    assert length > 100  # drawn across the canvas, not a dot
    stroke = await page.evaluate(
        "getComputedStyle(document.querySelector('svg.storage-chart path.used')).stroke")
    assert stroke == "rgb(31, 111, 235)"  # the stylesheet styles it

    # the numbers on the page are the API's
    figures = page.locator(f"section[data-volume='{vol['name']}'] table.storage-figures")
    for field in ("used_bytes", "free_bytes", "max_bytes", "held_bytes", "freed_bytes_24h"):
        cell = figures.locator(f"td[data-field='{field}']")
        raw = await cell.get_attribute("data-value")
        if field == "free_bytes":  # the free space moves as others write to the disk
            assert abs(int(raw or 0) - vol[field]) < 64 * 1024 * 1024
            continue
        assert int(raw or 0) == vol[field], field
        if field != "max_bytes":
            assert (await cell.inner_text()).startswith(format_bytes(vol[field])), field
    assert vol["used_bytes"] == 2_650_000 and vol["held_bytes"] == 150_000
    rate = figures.locator("td[data-field='write_bytes_per_s']")
    assert float(await rate.get_attribute("data-value") or 0) == vol["write_bytes_per_s"]
    assert (await rate.inner_text()).startswith(format_bytes(vol["write_bytes_per_s"]))
    assert await figures.locator("td[data-field='max_bytes']").inner_text() == "none"
    assert await figures.locator("td[data-field='next_purge_us']").inner_text() == "not scheduled"
    holds = page.locator("table.storage-holds")
    assert "stolen bicycle" in await holds.inner_text()
    assert format_bytes(150_000) in await holds.inner_text()
    assert "recording stops" in await page.locator("p.notice").inner_text()

    [cam] = api["cameras"]
    row = page.locator(f"table.storage-cameras tr[data-camera-id='{camera_id}']")
    assert await row.locator("td[data-field='used_bytes']").inner_text() == format_bytes(
        cam["used_bytes"])
    assert int(await row.locator("td[data-field='retained_from_us']").get_attribute(
        "data-value") or 0) == cam["retained_from_us"]
    assert await row.locator("td[data-field='retained_days']").inner_text() == (
        f"{cam['retained_days']:.1f}") == "5.0"

    # in Russian, with the units translated
    await page.select_option("select[name=language]", "ru")
    await page.locator("html[lang=ru]").wait_for(state="attached")
    assert await page.locator("h1").inner_text() == "Хранилище"
    assert "МБ" in await figures.locator("td[data-field='used_bytes']").inner_text()
    assert not errors, errors
    await context.close()
