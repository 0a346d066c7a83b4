"""Live view in a real browser: a camsim camera plays through MSE with low latency; the grid plays;
a saved layout, full screen, the playback links (the page's, each grid tile's) and the "no signal"
overlay of a stalled camera.

The camera is adopted straight into the database (Site + Camera + CameraStream rows pointing at a
camsim RTSP server, the password encrypted), the page is opened in Chromium, and the player's own
figures are read back: frames decoded, currentTime advancing, and the glass-to-glass latency
(camsim's capture time in the SEI of the newest frame vs the wall clock, plus how far playback is
behind that frame).
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.live.conftest import FAST, USER_PASSWORD, seed, start_camsim

pytestmark = pytest.mark.browser

PLAYING = """(i) => {
  const p = (window.vmsLivePlayers || [])[i];
  if (!p) return false;
  const q = p.video.getVideoPlaybackQuality();
  return q.totalVideoFrames > 10 && p.video.currentTime > 0 && p.stats.latencyMs !== null;
}"""

FIGURES = """(i) => {
  const p = window.vmsLivePlayers[i];
  const q = p.video.getVideoPlaybackQuality();
  return {frames: q.totalVideoFrames, dropped: q.droppedVideoFrames, time: p.video.currentTime,
          latencyMs: p.stats.latencyMs, lagS: p.stats.lagS, codec: p.stats.codec,
          captureToReceiveMs: p.stats.captureToReceiveMs, seeks: p.stats.seeks,
          width: p.video.videoWidth, error: p.stats.error};
}"""


async def test_live_page_and_grid_play(browser: Any, live_app: Any) -> None:
    app, base = live_app
    from web.keys import SERVICES

    rtsp = await start_camsim()
    try:
        app[SERVICES]["live"].options = FAST
        ids = await _seed(app, rtsp)
        page = await browser.new_page(locale="en-US")
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
        await page.goto(f"{base}/login")
        await page.fill("input[name=username]", "viewer_a")
        await page.fill("input[name=password]", USER_PASSWORD)
        await page.click("button[type=submit]")
        await page.wait_for_url(f"{base}/")

        # the camera page links to live view, and so does the navigation bar
        await page.goto(f"{base}/cameras/{ids['camera_1']}")
        await page.click("#camera-live a >> nth=0")
        await page.wait_for_url(f"{base}/cameras/{ids['camera_1']}/live")
        await page.wait_for_function(PLAYING, arg=0, timeout=20_000)
        first = await page.evaluate(FIGURES, 0)
        await page.wait_for_timeout(1500)
        later = await page.evaluate(FIGURES, 0)
        print("live page:", json.dumps(later))
        assert later["time"] > first["time"] + 1.0, (first, later)  # it keeps playing
        assert later["frames"] > first["frames"] + 20
        assert later["width"] == 320 and later["codec"].startswith("avc1.")
        assert later["latencyMs"] < 3000, later  # the target: under 3 s glass to glass
        assert "Live" in await page.locator("[data-live-status]").inner_text()

        await page.click("nav >> text=Live")
        await page.wait_for_url(f"{base}/live")
        tiles = page.locator("#live-grid video")
        assert await tiles.count() == 3  # Site A's three cameras, not Site B's
        for i in range(2):
            await page.wait_for_function(PLAYING, arg=i, timeout=20_000)
        grid = [await page.evaluate(FIGURES, i) for i in range(3)]
        print("grid:", json.dumps(grid))
        assert all(t["width"] == 160 for t in grid[:2])  # sub streams
        streams = app[SERVICES]["live"].stats()
        assert {s["stream"] for s in streams if s["viewers"]} == {"sub"}
        await _tile_playback_links(page)

        await _layout_editor(page, base, ids)
        await _stall_overlay_and_controls(page, base, rtsp, ids)
        assert errors == [], errors
    finally:
        await rtsp.stop()


async def _tile_playback_links(page: Any) -> None:
    """Each grid tile links to its camera's playback at the instant the tile shows (``?at=``
    µs, like the live page's link), and on a phone the link is finger-sized (44 px)."""
    tiles = page.locator("#live-grid figure:has(video)")
    assert await page.locator("#live-grid a.live-pb").count() == await tiles.count() == 3
    tile = tiles.nth(1)
    src = await tile.locator("video").get_attribute("data-live-src")
    camera = src.split("/")[4]
    link = tile.locator("a.live-pb")
    await link.focus()
    href = await link.get_attribute("href")
    now_ms = await page.evaluate("Date.now()")
    assert href is not None and href.startswith(f"/cameras/{camera}/playback?at="), href
    at_us = int(href.split("at=")[1])
    assert now_ms * 1000 - 5_000_000 < at_us <= now_ms * 1000, (href, now_ms)
    size = page.viewport_size
    await page.set_viewport_size({"width": 390, "height": 844})
    box = await link.bounding_box()
    assert box is not None and box["width"] >= 43.5 and box["height"] >= 43.5, box
    await page.set_viewport_size(size)


async def _layout_editor(page: Any, base: str, ids: dict[str, int]) -> None:
    """Save a 2×2 layout with camera 2 in the first tile and nothing else; the grid
    then shows exactly that, and the grid has a full-screen control that works."""
    await page.click("#layout-edit")
    await page.fill("#layout-name", "Porch")
    await page.select_option("#layout-grid", "2")
    tiles = page.locator("select.layout-tile")
    await tiles.nth(0).select_option(str(ids["camera_2"]))
    for i in range(1, 4):
        await tiles.nth(i).select_option("")
    await page.click("#layout-save")
    await page.wait_for_url(f"{base}/live?layout_id=*")
    assert await page.locator("h1").inner_text() == "Porch"
    videos = page.locator("#live-grid video")
    assert await videos.count() == 1
    assert await videos.first.get_attribute("data-live-src") == \
        f"/api/v1/cameras/{ids['camera_2']}/live?stream=sub"
    assert await page.locator("#live-grid .live-empty").count() == 3
    await page.wait_for_function(PLAYING, arg=0, timeout=20_000)
    await page.click("button[data-fullscreen='#live-grid']")
    await page.wait_for_function("() => document.fullscreenElement?.id === 'live-grid'",
                                 timeout=5_000)
    await page.evaluate("document.exitFullscreen()")
    await page.wait_for_function("() => !document.fullscreenElement", timeout=5_000)


STALLED = """() => {
  const p = window.vmsLivePlayers[0];
  const o = document.querySelector("[data-live-overlay]");
  return p.stats.stalled && !o.hidden ? {text: o.innerText, since: p.stats.stallSinceMs,
    status: document.querySelector("[data-live-status]").className,
    at: Date.now()} : null;
}"""


async def _stall_overlay_and_controls(page: Any, base: str, rtsp: Any,
                                      ids: dict[str, int]) -> None:
    """The live page: full screen on the tile, the playback link at the instant shown, and a camsim
    ``stall`` fault shown as "No signal since HH:MM:SS" over the last picture within 2 s, cleared
    when frames come back."""
    camera = ids["camera_1"]
    await page.goto(f"{base}/cameras/{camera}/live")
    await page.wait_for_function(PLAYING, arg=0, timeout=20_000)
    await page.click("button[data-fullscreen='#live-tile']")
    await page.wait_for_function("() => document.fullscreenElement?.id === 'live-tile'",
                                 timeout=5_000)
    await page.evaluate("document.exitFullscreen()")

    link = page.locator("#live-playback-link")
    await link.focus()
    href = await link.get_attribute("href")
    now_ms = await page.evaluate("Date.now()")
    assert href is not None and href.startswith(f"/cameras/{camera}/playback?at=")
    at_us = int(href.split("at=")[1])
    assert now_ms * 1000 - 5_000_000 < at_us <= now_ms * 1000, (href, now_ms)

    await page.wait_for_timeout(300)
    stalled_at = await page.evaluate("Date.now()")
    rtsp.stall(3.0)
    shown = await page.wait_for_function(STALLED, timeout=4_000)
    got = await shown.json_value()
    print("stall overlay:", json.dumps(got), "after", got["at"] - stalled_at, "ms")
    assert got["at"] - stalled_at <= 2000, got
    assert "live-bad" in got["status"] and "live-ok" not in got["status"]
    expected = await page.evaluate(
        "(ms) => new Intl.DateTimeFormat(document.documentElement.lang || undefined, "
        "{hour: '2-digit', minute: '2-digit', second: '2-digit'}).format(new Date(ms))",
        got["since"])
    assert got["text"] == f"No signal since {expected}", got
    assert stalled_at - 1500 <= got["since"] <= stalled_at + 100, (got, stalled_at)
    assert "Live ·" not in await page.locator("[data-live-status]").inner_text()
    # the picture comes back: overlay gone, "Live" again
    await page.wait_for_function(
        "() => !window.vmsLivePlayers[0].stats.stalled && "
        "document.querySelector('[data-live-overlay]').hidden", timeout=10_000)
    await page.wait_for_function(
        "() => document.querySelector('[data-live-status]').innerText.startsWith('Live')",
        timeout=5_000)


async def _seed(app: Any, rtsp: Any) -> dict[str, int]:
    import asyncio

    return await asyncio.to_thread(seed, app, rtsp, 3)
