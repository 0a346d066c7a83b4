"""The intercom in a real browser: Chromium's fake microphone (a beep near 400 Hz) reaches camsim,
and camsim's own sound (a 1 kHz tone) plays on the live page.

The live page is served from http://127.0.0.1 (getUserMedia needs a secure context), the resident
holds the talk button for a second and a half, and camsim's backchannel must have received
paced μ-law audio whose dominant frequency is the fake microphone's beep; then "Sound on" plays
the camera's audio track (AAC through MSE), measured by the page's own analyser.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import time
import wave

import pytest
from aiohttp import web

from camsim.media import ClipSpec
from camsim.rtsp import RtspServer
from tests.browser.conftest import CHROMIUM, CHROMIUM_ARGS
from tests.talk.conftest import USER_PASSWORD, seed_talk

pytestmark = pytest.mark.browser

CLIP = ClipSpec(width=320, height=180, fps=25, bitrate_kbps=300, audio="aac", seconds=10)
FAKE_MIC = ["--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
            "--autoplay-policy=no-user-gesture-required"]


async def test_holding_the_button_sends_the_microphone_to_the_panel(settings_factory,  # type: ignore[no-untyped-def]
                                                                     tmp_path) -> None:
    if not shutil.which(CHROMIUM):
        pytest.fail(f"{CHROMIUM} is missing: install Debian's chromium (scripts/test.sh does)")
    from playwright.async_api import async_playwright

    from vms.app import create_app

    rtsp = RtspServer(username="admin", password="Panel-pw-1")
    rtsp.add_stream("/main", CLIP)
    await rtsp.start()
    app = create_app(settings_factory(), start_recorder=False)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    base = f"http://127.0.0.1:{runner.addresses[0][1]}"
    try:
        ids = seed_talk(app, [("Panel", "A", rtsp.url("/main"), "Panel-pw-1")])
        async with async_playwright() as pw:
            browser = await pw.chromium.launch(executable_path=CHROMIUM, headless=True,
                                               args=CHROMIUM_ARGS + FAKE_MIC)
            try:
                page = await browser.new_page(locale="en-US",  # a phone's viewport
                                              viewport={"width": 390, "height": 844})
                errors: list[str] = []
                page.on("pageerror", lambda exc: errors.append(str(exc)))
                await page.goto(f"{base}/login")
                await page.fill("input[name=username]", "resident_a")
                await page.fill("input[name=password]", USER_PASSWORD)
                await page.click("button[type=submit]")
                await page.wait_for_url(f"{base}/")
                await page.goto(f"{base}/cameras/{ids['Panel']}/live")
                button = page.locator("[data-talk-button]")
                assert await button.inner_text() == "Hold to talk"
                await button.hover()
                await page.mouse.down()
                await page.wait_for_function(
                    "() => window.vmsTalk && window.vmsTalk.state === 'talking'", timeout=10_000)
                await page.wait_for_timeout(1500)
                await page.mouse.up()
                talk = await page.evaluate("() => ({...window.vmsTalk})")
                assert talk["state"] == "idle" and talk["engine"] == "worklet", talk
                assert talk["framesSent"] >= 30, talk  # 40 ms frames for 1.5 s

                # the panel's own sound (camsim's 1 kHz tone) plays on the page
                await page.click("[data-listen-button]")
                await page.wait_for_function(
                    "() => window.vmsListen && vmsListen.fragments > 15 && vmsListen.time > 0.5",
                    timeout=15_000)
                heard = await page.evaluate("() => window.vmsListen.measure()")
                listen = await page.evaluate("() => ({...window.vmsListen, measure: null})")
                print("listening:", json.dumps(listen), json.dumps(heard))
                assert listen["state"] == "on" and listen["codec"] == "mp4a.40.2", listen
                assert abs(heard["hz"] - 1000) <= 25 and heard["db"] > -60, heard
                await page.click("[data-listen-button]")
                assert await page.evaluate("() => window.vmsListen.state") == "off"
                assert errors == []
            finally:
                await browser.close()
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:  # released: the RTSP session ends
            if not rtsp.backchannel_state()["sessions_active"]:
                break
            await asyncio.sleep(0.1)
        back = rtsp.backchannel_state()
        print("camsim backchannel:", json.dumps(back))
        assert back["sessions_active"] == 0 and back["sessions_total"] == 1, back
        assert back["seconds"] >= 1.2 and back["packets"] >= 60, back
        assert back["seq_gaps"] == 0 and back["timestamp_errors"] == 0, back
        assert back["peak"] > 1000, back  # sound, not silence
        if abs(back["frequency_hz"] - 400) > 50:  # keep what arrived, to look at it
            assert rtsp.backchannel.latest is not None
            wav = tmp_path / "received.wav"  # pytest keeps the last three runs' tmp_path
            with wave.open(str(wav), "wb") as out:
                out.setnchannels(1)
                out.setsampwidth(2)
                out.setframerate(8000)
                out.writeframes(rtsp.backchannel.latest.samples.tobytes())
            pytest.fail(f"not the fake microphone's beep (~400 Hz): {back}; audio in {wav}")
    finally:
        await runner.cleanup()
        await rtsp.stop()
