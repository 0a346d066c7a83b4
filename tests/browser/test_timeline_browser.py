"""The timeline as an operator uses it, in a real Chromium at 1440×900 (one server, one browser,
one touch-capable context): the timeline is on screen without scrolling; a recording gap is drawn
red and "not recorded" is not, each with its reason on hover; hovering a recorded instant shows its
preview picture (the keyframe at or before it); dragging with the mouse or a finger pans freely and
never snaps back to the playhead; a pinch zooms; a tap on a gap tells its reason; the multi-camera
page is in the navigation, lets the user choose its cameras, and keeps the instant when switching
pages (``?at=``), "at now" opening at the latest footage; at 390 px nothing of the page sticks out
sideways."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest

from tests.browser.test_playback_browser import wait_js
from tests.playback.recording import PASSWORD, Recording, shared_recording

pytestmark = pytest.mark.browser

S = 1_000_000
CANVAS = "document.getElementById('pb-timeline')"
VIDEO = "document.querySelector('video.pb-video')"


@pytest.fixture(scope="session")
def recording(request: pytest.FixtureRequest) -> Recording:
    return shared_recording(request)


@pytest.fixture
async def server(recording: Recording) -> AsyncIterator[str]:
    from aiohttp import web

    from vms.app import create_app

    runner = web.AppRunner(create_app(recording.settings, start_recorder=False))
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    finally:
        await runner.cleanup()


async def geometry(page: Any) -> dict[str, float]:
    return await page.evaluate(f"""(() => {{ const c = {CANVAS}; const r = c.getBoundingClientRect();
        return {{start: Number(c.dataset.viewStart), end: Number(c.dataset.viewEnd), left: r.left,
                 top: r.top, width: r.width, height: r.height, bottom: r.bottom,
                 follow: c.dataset.follow || "1"}}; }})()""")


async def set_view(page: Any, start_ms: float, span_ms: float) -> dict[str, float]:
    await page.evaluate(f"window.VmsPlayback.timeline.setView({start_ms}, {span_ms})")
    return await geometry(page)


def x_of(g: dict[str, float], t_ms: float) -> float:
    return g["left"] + (t_ms - g["start"]) / (g["end"] - g["start"]) * g["width"]


async def column_colours(page: Any, x: float, g: dict[str, float],
                         wide: int = 5) -> dict[str, int]:
    """Counts of red (recording gap), green (recorded) and pale grey (hatch) pixels in the column
    ``wide`` pixels wide of the timeline's row around page x."""
    return await page.evaluate(f"""(() => {{
        const c = {CANVAS}; const ratio = c.width / c.clientWidth;
        const px = Math.round(({x} - {g['left']} - {wide // 2}) * ratio);
        const d = c.getContext('2d').getImageData(px, 0, Math.round({wide} * ratio),
                                                  Math.round((c.clientHeight - 22) * ratio)).data;
        const n = {{red: 0, green: 0, hatch: 0}};
        for (let i = 0; i < d.length; i += 4) {{
          const [r, gr, b] = [d[i], d[i + 1], d[i + 2]];
          if (r > 180 && gr < 120 && b < 120) n.red++;
          else if (gr > 110 && r < 90 && b < 120) n.green++;
          else if (r > 170 && r < 225 && Math.abs(r - b) < 30 && b > 180 && d[i + 3] > 0) n.hatch++;
        }}
        return n; }})()""")


async def tip_at(page: Any, x: float, y: float) -> dict[str, str]:
    await page.mouse.move(x, y)
    await wait_js(page, f"(() => {{ const t = document.getElementById('pb-tip');"
                        f" const left = {CANVAS}.getBoundingClientRect().left;"
                        f" return !t.hidden && Math.abs(Number(t.dataset.atUs) / 1000 - "
                        f"window.VmsPlayback.timeline.tOf({x} - left)) < 50; }})()", 5)
    return await page.evaluate("(() => { const t = document.getElementById('pb-tip');"
                               " return {type: t.dataset.type, kind: t.dataset.kind,"
                               " reason: t.dataset.reason, text: t.innerText}; })()")


async def test_timeline_gaps_previews_panning_and_multi_camera(browser, server: str,
                                                               recording: Recording) -> None:
    rec = recording
    context = await browser.new_context(base_url=server, viewport={"width": 1440, "height": 900},
                                        has_touch=True)
    page = await context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    assert (await context.request.post("/api/v1/auth/login", data={
        "username": "pb_admin", "password": PASSWORD})).ok
    first = rec.segments[0]["start_us"]
    await page.goto(f"/cameras/{rec.camera_id}/playback?at={first + 200_000}")
    await wait_js(page, f"{VIDEO}.readyState >= 2")

    # ---- the timeline is on screen at 1440×900 without scrolling ------------------------------
    g = await geometry(page)
    assert g["bottom"] <= 900 and await page.evaluate("window.scrollY") == 0, g

    # ---- "not recorded" before the first footage vs the red gaps where the camera was lost ------
    lost = [(a["end_us"], b["start_us"]) for a, b in zip(rec.runs, rec.runs[1:], strict=False)]
    g = await set_view(page, first / 1000 - 8_000, 60_000)
    await page.evaluate("window.VmsPlayback.timeline.setFollow(false)")
    await wait_js(page, f"window.VmsPlayback.timeline.rows.length === 1 && window.VmsPlayback"
                        f".timeline.rows[0].gaps.some((x) => x[0] <= {first / 1000 - 8_000})")
    row_y = g["top"] + g["height"] * 0.45
    before_x = x_of(g, first / 1000 - 4_000)
    colours = await column_colours(page, before_x, g)
    assert colours["red"] == 0 and colours["green"] == 0 and colours["hatch"] > 5, colours
    tip = await tip_at(page, before_x, row_y)
    assert (tip["type"], tip["kind"], tip["reason"]) == ("gap", "not_recorded", "not_recorded")
    assert "Not recorded" in tip["text"] and "gap" not in tip["text"].lower(), tip
    gap_start, gap_end = max(lost, key=lambda p: p[1] - p[0])
    assert gap_end - gap_start > 150_000, lost  # at least 3 pixels wide at this zoom
    gap_x = x_of(g, (gap_start + gap_end) / 2000)
    colours = await column_colours(page, gap_x, g, wide=1)
    assert colours["red"] > 20 and colours["green"] == 0, (colours, lost)
    tip = await tip_at(page, gap_x, row_y)
    assert (tip["type"], tip["kind"], tip["reason"]) == ("gap", "gap", "camera_lost")
    assert "Recording gap: connection to the camera lost" in tip["text"], tip

    # ---- hovering a recorded instant shows the preview of that instant --------------------------
    seg = rec.segments[4]
    target_ms = (seg["start_us"] + 600_000) / 1000
    tip = await tip_at(page, x_of(g, target_ms), row_y)
    assert tip["type"] == "span"
    await wait_js(page, "(() => { const i = document.getElementById('pb-tip-img');"
                        " return !i.hidden && i.complete && i.naturalWidth === 240"
                        " && Math.abs(Number(i.dataset.atUs) - Number(document.getElementById("
                        "'pb-tip').dataset.atUs)) < 1; })()", 10)
    shown = await page.evaluate("(() => { const i = document.getElementById('pb-tip-img');"
                                " return [Number(i.dataset.atUs), Number(i.dataset.frameUs)]; })()")
    at_us, frame_us = shown
    assert frame_us <= at_us < frame_us + 1_100_000, shown  # the keyframe at or before (GOP 1 s)
    assert seg["start_us"] <= frame_us < seg["end_us"]
    await page.mouse.move(g["left"] + g["width"] / 2, g["top"] - 200)  # leave: the tip goes
    await wait_js(page, "document.getElementById('pb-tip').hidden", 3)

    # ---- mouse drag pans freely: no snap back to the playhead while held, nor after ------------
    await page.click("#pb-follow")
    g = await geometry(page)
    playhead = int(await page.evaluate("document.getElementById('pb-clock').dataset.wallUs")) / 1000
    assert g["start"] <= playhead <= g["end"] and g["follow"] == "1"
    x0 = g["left"] + g["width"] * 0.2
    await page.mouse.move(x0, row_y)
    await page.mouse.down()
    await page.mouse.move(x0 + g["width"] * 0.7, row_y, steps=12)
    dragged = (await geometry(page))["start"]
    expected = g["start"] - 0.7 * (g["end"] - g["start"])
    assert abs(dragged - expected) < (g["end"] - g["start"]) * 0.02
    assert dragged + (g["end"] - g["start"]) < playhead  # the playhead is now off to the right
    await page.wait_for_timeout(900)  # the playhead clock ticks every 250 ms meanwhile
    assert (await geometry(page))["start"] == dragged
    await page.mouse.up()
    await page.wait_for_timeout(900)
    after = await geometry(page)
    assert after["start"] == dragged and after["follow"] == "0", after
    clock_after_drag = int(await page.evaluate("document.getElementById('pb-clock').dataset.wallUs"))
    assert abs(clock_after_drag / 1000 - playhead) < 15_000  # the drag did not seek
    await page.click("#pb-follow")
    g = await geometry(page)
    assert g["start"] <= playhead + 15_000 and g["end"] >= playhead and g["follow"] == "1"

    # ---- a finger drag pans too, and a pinch zooms ------------------------------------------------
    cdp = await context.new_cdp_session(page)
    span = g["end"] - g["start"]
    y = row_y
    xs = [g["left"] + g["width"] * f for f in (0.7, 0.6, 0.5, 0.4, 0.3)]
    await cdp.send("Input.dispatchTouchEvent", {"type": "touchStart", "touchPoints": [
        {"x": xs[0], "y": y, "id": 1}]})
    for x in xs[1:]:
        await cdp.send("Input.dispatchTouchEvent", {"type": "touchMove", "touchPoints": [
            {"x": x, "y": y, "id": 1}]})
        await asyncio.sleep(0.05)
    await page.wait_for_timeout(600)
    held = await geometry(page)
    await cdp.send("Input.dispatchTouchEvent", {"type": "touchEnd", "touchPoints": []})
    await page.wait_for_timeout(600)
    touched = await geometry(page)
    assert abs((touched["start"] - g["start"]) - 0.4 * span) < span * 0.03, (touched, g)
    assert held["start"] == touched["start"] and touched["follow"] == "0"
    await page.click("#pb-zoom-out")
    await page.click("#pb-zoom-out")
    g = await geometry(page)
    span = g["end"] - g["start"]
    assert span >= 4 * 60_000 - 1
    mid = g["left"] + g["width"] / 2
    await cdp.send("Input.dispatchTouchEvent", {"type": "touchStart", "touchPoints": [
        {"x": mid - 50, "y": y, "id": 1}, {"x": mid + 50, "y": y, "id": 2}]})
    for step in range(1, 6):
        await cdp.send("Input.dispatchTouchEvent", {"type": "touchMove", "touchPoints": [
            {"x": mid - 50 - 10 * step, "y": y, "id": 1},
            {"x": mid + 50 + 10 * step, "y": y, "id": 2}]})
        await asyncio.sleep(0.03)
    await cdp.send("Input.dispatchTouchEvent", {"type": "touchEnd", "touchPoints": []})
    await page.wait_for_timeout(300)
    pinched = await geometry(page)
    assert 0.45 < (pinched["end"] - pinched["start"]) / span < 0.55, (pinched, span)
    # a tap on a gap tells its reason (no hover on a touch screen)
    g = await set_view(page, first / 1000 - 8_000, 60_000)
    gap_x = x_of(g, (gap_start + gap_end) / 2000)
    await cdp.send("Input.dispatchTouchEvent", {"type": "touchStart", "touchPoints": [
        {"x": gap_x, "y": y, "id": 1}]})
    await cdp.send("Input.dispatchTouchEvent", {"type": "touchEnd", "touchPoints": []})
    await wait_js(page, "!document.getElementById('pb-tip').hidden", 3)
    tapped = await page.evaluate("(() => { const t = document.getElementById('pb-tip');"
                                 " return [t.dataset.reason, t.innerText]; })()")
    assert tapped[0] == "camera_lost" and "connection to the camera lost" in tapped[1], tapped

    # ---- the multi-camera page: in the navigation, choose cameras, keep the instant -------------
    await page.click("#pb-follow")
    wall = int(await page.evaluate("document.getElementById('pb-clock').dataset.wallUs"))
    multi_href = await page.get_attribute("#pb-multi-link", "href")
    assert multi_href and abs(int(parse_qs(urlparse(multi_href).query)["at"][0]) - wall) < 1_000_000
    assert await page.get_attribute("#pb-live-link", "href") == f"/cameras/{rec.camera_id}/live"
    await page.click("nav.mainnav a[href='/playback']")
    await page.wait_for_url("**/playback")
    names = await page.eval_on_selector_all("input.pb-choice", "els => els.map(e => e.value)")
    assert sorted(map(int, names)) == sorted([rec.camera_id, rec.other_camera_id])
    assert await page.locator(".pb-cell").count() == 2  # by default the cameras in service
    await wait_js(page, "window.VmsPlayback.timeline.rows.length === 2")
    g = await geometry(page)
    assert g["bottom"] <= 900 and await page.evaluate("window.scrollY") == 0, g
    # choose one camera; the playback page opens at the instant shown
    await page.click("#pb-choose summary")
    await page.uncheck(f"input.pb-choice[value='{rec.other_camera_id}']")
    shown = int(await wait_js(page, "document.getElementById('pb-clock').dataset.wallUs"))
    await page.click("#pb-choose-apply")
    await page.wait_for_url("**/playback?camera_ids=*")
    query = parse_qs(urlparse(page.url).query)
    assert query["camera_ids"] == [str(rec.camera_id)]
    assert abs(int(query["at"][0]) - shown) < 1_000_000
    assert await page.locator(".pb-cell").count() == 1
    await wait_js(page, "window.VmsPlayback.timeline.rows.length === 1")
    open_href = await page.get_attribute(".pb-cell a.pb-at-link", "href")
    assert open_href and open_href.startswith(f"/cameras/{rec.camera_id}/playback?at=")
    # choosing none is refused on the page
    await page.click("#pb-choose summary")
    await page.uncheck(f"input.pb-choice[value='{rec.camera_id}']")
    await page.click("#pb-choose-apply")
    assert await page.inner_text("#pb-choose-error")
    assert parse_qs(urlparse(page.url).query)["camera_ids"] == [str(rec.camera_id)]
    # "playback at now" (the live view's link) opens at the latest recorded footage, as the
    # segment being written is not indexed yet
    now_us = int(await page.evaluate("Date.now()")) * 1000
    await page.goto(f"/cameras/{rec.camera_id}/playback?at={now_us}")
    wall = int(await wait_js(page, "document.getElementById('pb-clock').dataset.wallUs"))
    last_end = rec.segments[-1]["end_us"]
    if now_us - last_end < 14 * 60 * S:  # the lookback is 15 minutes
        assert last_end - 6 * S <= wall <= last_end, (wall - last_end) / S
    else:
        assert abs(wall - now_us) < S
    # on a phone (390 px) nothing of the playback page sticks out sideways
    await page.set_viewport_size({"width": 390, "height": 844})
    for url in (f"/playback?camera_ids={rec.camera_id},{rec.other_camera_id}",
                f"/cameras/{rec.camera_id}/playback"):
        await page.goto(url)
        await wait_js(page, "window.VmsPlayback && window.VmsPlayback.timeline.rows.length > 0")
        wide = await page.evaluate("[...document.querySelectorAll('#playback *')].filter((e) =>"
                                   " e.getClientRects().length && e.getBoundingClientRect().right"
                                   " > window.innerWidth + 0.5).map((e) => e.outerHTML.slice(0, 80))")
        assert not wide, (url, wide)
    assert not errors, errors
    await context.close()
