"""Playback in a real Chromium: a recorded range plays (time advances, frames decode), and a click
on the timeline seeks to the clicked wall time (within a GOP)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests.playback.recording import PASSWORD, Recording, shared_recording

pytestmark = pytest.mark.browser


@pytest.fixture(scope="session")
def recording(request: pytest.FixtureRequest) -> Recording:
    return shared_recording(request)


@pytest.fixture
async def recorded_app(recording: Recording) -> AsyncIterator[str]:
    from aiohttp import web

    from vms.app import create_app

    app = create_app(recording.settings, start_recorder=False)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    finally:
        await runner.cleanup()


async def wait_js(page: Any, expression: str, timeout_s: float = 15) -> Any:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        value = await page.evaluate(expression)
        if value:
            return value
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"not true within {timeout_s}s: {expression}")
        await asyncio.sleep(0.1)


async def open_playback(browser: Any, base_url: str, rec: Recording, username: str, *,
                        console_errors: bool = False) -> tuple[Any, Any, list[str]]:
    """A new context logged in as ``username``, on the camera's playback page just after the
    recording starts; returns (context, page, the page errors seen)."""
    context = await browser.new_context(base_url=base_url, viewport={"width": 1000, "height": 900})
    errors: list[str] = []
    page = await context.new_page()
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    if console_errors:
        page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    resp = await context.request.post("/api/v1/auth/login",
                                      data={"username": username, "password": PASSWORD})
    assert resp.ok
    start_at = rec.segments[0]["start_us"] + 200_000
    await page.goto(f"/cameras/{rec.camera_id}/playback?at={start_at}")
    return context, page, errors


async def test_plays_a_recorded_range_and_seeks_by_clicking(browser, recorded_app: str,
                                                             recording: Recording) -> None:
    rec = recording
    context, page, errors = await open_playback(browser, recorded_app, rec, "pb_viewer")
    video = "document.querySelector('video.pb-video')"
    # plays: a frame is decoded and time advances
    await wait_js(page, f"{video}.readyState >= 2 && {video}.videoWidth === 320")
    t0 = await page.evaluate(f"{video}.currentTime")
    await wait_js(page, f"{video}.currentTime > {t0} + 0.5")
    frames = await page.evaluate(f"{video}.getVideoPlaybackQuality().totalVideoFrames")
    assert frames > 0
    wall = int(await wait_js(page, "document.getElementById('pb-clock').dataset.wallUs"))
    assert rec.segments[0]["start_us"] <= wall <= rec.segments[-1]["end_us"]
    text = await page.inner_text("#pb-clock")
    assert "CET" in text or "GMT+1" in text  # the site's zone (Europe/Berlin), not UTC
    # zoom to about a minute, then click the timeline inside the last run
    for _ in range(6):
        await page.click("#pb-zoom-in")
    target = rec.segments[-2]["start_us"] + 500_000
    view = await page.evaluate("(() => { const c = document.getElementById('pb-timeline');"
                               " const r = c.getBoundingClientRect();"
                               " return [Number(c.dataset.viewStart), Number(c.dataset.viewEnd),"
                               " r.left, r.top, r.width, r.height]; })()")
    v_start, v_end, left, top, width, height = view
    assert v_end - v_start <= 70_000
    assert v_start < target / 1000 < v_end
    x = left + (target / 1000 - v_start) / (v_end - v_start) * width
    await page.click("#pb-play")  # pause: the wall time shown must then come from the seek alone
    await page.wait_for_timeout(300)
    before = await page.evaluate(f"{video}.currentTime")
    await page.mouse.click(x, top + height / 3)
    slack_us = (v_end - v_start) / width * 1000 + 1_100_000  # a pixel and a GOP
    await page.wait_for_timeout(1500)  # the clock is re-read from the video's position every 250 ms
    await wait_js(page, f"{video}.readyState >= 2")
    wall = int(await page.evaluate("document.getElementById('pb-clock').dataset.wallUs"))
    assert target - slack_us <= wall <= target + slack_us, (wall - target) / 1e6
    after = await page.evaluate(f"{video}.currentTime")
    assert after - before > 3, "the video itself jumped forward to the clicked run"
    assert not errors, errors
    await context.close()


async def test_mark_a_range_while_playing_and_export_it(browser, recorded_app: str,
                                                        recording: Recording) -> None:
    """An operator marks start and end at the playhead, exports, and gets the clip's links; a
    viewer (no export right) sees no export controls."""
    rec = recording
    context, page, errors = await open_playback(browser, recorded_app, rec, "pb_admin",
                                                console_errors=True)
    start_at = rec.segments[0]["start_us"] + 200_000
    video = "document.querySelector('video.pb-video')"
    await wait_js(page, f"{video}.readyState >= 2 && !{video}.paused")
    assert await page.is_disabled("#pb-export-start")
    await page.click("#pb-mark-in")
    mark_in = int(await page.evaluate("document.getElementById('pb-clock').dataset.wallUs"))
    t0 = await page.evaluate(f"{video}.currentTime")
    await wait_js(page, f"{video}.currentTime > {t0} + 2.5")
    await page.click("#pb-mark-out")
    mark_out = int(await page.evaluate("document.getElementById('pb-clock').dataset.wallUs"))
    assert mark_out - mark_in >= 2_000_000
    assert "–" in await page.inner_text("#pb-selection")
    await page.click("#pb-export-start")
    await wait_js(page, "document.getElementById('pb-export').dataset.state === 'done'", 30)
    href = await page.get_attribute("a.pb-export-download", "href")
    assert href and href.endswith("/file")
    manifest = await (await context.request.get(href.replace("/file", "/manifest"))).json()
    camera = manifest["cameras"][0]
    assert camera["id"] == rec.camera_id
    # the range asked for is the marked one (to the playhead's precision: one tick of the clock)
    assert abs(camera["requested"]["from_us"] - mark_in) <= 300_000
    assert abs(camera["requested"]["to_us"] - mark_out) <= 300_000
    clip = await (await context.request.get(href)).body()
    assert clip[4:8] == b"ftyp"
    assert not errors, errors

    viewer = await context.new_page()
    await context.request.post("/api/v1/auth/logout", headers={
        "X-CSRF-Token": await page.evaluate("document.getElementById('pb-export').dataset.csrf")})
    resp = await context.request.post("/api/v1/auth/login",
                                      data={"username": "pb_viewer", "password": PASSWORD})
    assert resp.ok
    await viewer.goto(f"/cameras/{rec.camera_id}/playback?at={start_at}")
    assert await viewer.locator("#pb-export").count() == 0
    await context.close()
