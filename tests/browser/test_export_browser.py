"""The operator's export flow in a real browser: choose a camera and a local time range on the
exports page, watch the progress bar reach 100 %, get a download link that serves the MP4, and
play that MP4 in Chromium's own <video> element (our MP4 writer against a real decoder)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from tests.export.conftest import PASSWORD, seed_world
from tests.export.export_helpers import make_segment_files

pytestmark = pytest.mark.browser


async def until(page: Any, expression: str, timeout_s: float = 20.0) -> None:
    """Poll ``expression`` in the page (wait_for_function would need 'unsafe-eval' under our CSP)."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not await page.evaluate(expression):
        assert asyncio.get_running_loop().time() < deadline, f"not true in time: {expression}"
        await asyncio.sleep(0.1)


async def test_export_from_the_exports_page(browser: Any, live_app: Any, tmp_path: Path) -> None:
    app, base = live_app
    from web.keys import SETTINGS

    files = await asyncio.to_thread(make_segment_files, app[SETTINGS].ffmpeg_exe(),
                                    tmp_path / "segments", seconds=12)
    cam_a, _cam_b, _cam_a2, _end, _gap = await seed_world(app, files)
    page = await browser.new_page(locale="en-US")
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)

    await page.goto(f"{base}/exports")
    await page.fill("input[name=username]", "operator1")
    await page.fill("input[name=password]", PASSWORD)
    await page.click("button[type=submit]")
    await page.wait_for_url(f"{base}/exports")
    assert await page.locator("h1").inner_text() == "Exports"

    await page.check(f"input[name=camera_ids][value='{cam_a}']")
    # Site A is Europe/Berlin: 02:59:52 local on 2026-10-25 (summer time) = BASE + 2 s
    await page.fill("#export-from", "2026-10-25T02:59:52")
    await page.fill("#export-to", "2026-10-25T02:59:59")
    await page.click("#export-start")
    await page.wait_for_selector("#export-table tbody tr[data-state=done]", timeout=20_000)
    await until(page, "document.querySelector('#export-table tbody tr .export-progress')"
                      ".value === 1")
    link = page.locator("#export-table tbody tr[data-state=done] a.export-download")
    assert await link.count() == 1
    href = await link.get_attribute("href")
    response = await page.request.get(f"{base}{href}")
    assert response.status == 200
    body = await response.body()
    assert body[4:8] == b"ftyp" and len(body) > 10_000

    # the file plays: Chromium parses our moov, decodes frames and plays to the end
    await page.evaluate("""href => {
        const v = document.createElement('video');
        v.id = 'exported'; v.muted = true; v.src = href;
        document.body.appendChild(v);
        v.play();
    }""", href)
    await until(page, "document.getElementById('exported').readyState >= 2")
    info = await page.evaluate("""() => {
        const v = document.getElementById('exported');
        return {w: v.videoWidth, h: v.videoHeight, d: v.duration, error: v.error && v.error.code};
    }""")
    assert info["error"] is None and (info["w"], info["h"]) == (320, 180), info
    assert 7.0 <= info["d"] <= 8.5, info  # 7 s asked for, from the keyframe at or before
    await until(page, "document.getElementById('exported').ended", timeout_s=30)
    frames = await page.evaluate(
        "document.getElementById('exported').getVideoPlaybackQuality().totalVideoFrames")
    assert frames >= 7 * 25 * 0.9, frames
    assert errors == []
