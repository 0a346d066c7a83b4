"""PTZ on the live page in a real Chromium, on a desktop window and a 390×844 phone (touch).

One camsim PTZ camera is adopted through the onboarding service (its streams are dropped, so no
ffmpeg runs: this is about the controls, not the video). Checked on camsim's own state: holding a
button (mouse, touch) or an arrow key moves the camera and releasing stops it; the other operator
sees "Moved by …" live; a preset saved from the page appears in the list; a click on the picture
centres the camera (RelativeMove); closing the tab mid-move stops the camera within a second.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from vms.db import models as m

pytestmark = pytest.mark.browser

PASSWORD = "browser-pass-123"
CAM_PASSWORD = "ptz-browser-cam-9"


async def _page(browser: Any, base: str, user: str, camera_id: int, **context: Any) -> Any:
    ctx = await browser.new_context(base_url=base, locale="en-US", **context)
    resp = await ctx.request.post("/api/v1/auth/login",
                                  data={"username": user, "password": PASSWORD})
    assert resp.status == 200
    page = await ctx.new_page()
    await page.goto(f"/cameras/{camera_id}/live")
    await page.wait_for_selector("#ptz:not([hidden])")
    await page.wait_for_function("window.vmsPtz && window.vmsPtz.stats.connected")
    return page


async def _wait(camera: Any, check: Any, timeout_s: float, what: str) -> float:
    start = time.monotonic()
    while not check(camera.state()["ptz"]):
        assert time.monotonic() - start < timeout_s, f"{what}: {camera.state()['ptz']}"
        await asyncio.sleep(0.02)
    return time.monotonic() - start


async def test_press_hold_release_and_closing_the_tab(browser: Any, live_app: Any,
                                                      camsim_factory: Any) -> None:
    app, base = live_app
    from web.keys import ACCOUNTS, GATEWAY, SERVICES

    camera = (await camsim_factory(count=1, password=CAM_PASSWORD, rtsp=False)).cameras[0]

    def seed() -> int:
        site = app[ACCOUNTS].create_site("Junction 4", "UTC")
        app[ACCOUNTS].create_user("desk", PASSWORD, "operator", ["Junction 4"])
        app[ACCOUNTS].create_user("phone", PASSWORD, "installer", ["Junction 4"])
        return int(site.id)

    site_id = await app[GATEWAY].write(seed)
    adopted = await app[SERVICES]["onboarding"].adopt(
        None, camera.info()["onvif_url"], "admin", CAM_PASSWORD, site_id=site_id)
    camera_id = adopted.camera_id
    await app[GATEWAY].write(lambda: m.CameraStream.delete().where(
        m.CameraStream.camera == camera_id).execute())

    desk = await _page(browser, base, "desk", camera_id, viewport={"width": 1280, "height": 800})
    right = desk.locator('[data-ptz-move][data-pan="1"]:not([data-tilt])')
    await right.hover()
    await desk.mouse.down()
    await _wait(camera, lambda s: s["moving"], 1.0, "mouse press")
    await asyncio.sleep(0.8)  # held longer than the dead-man time: keep-alives keep it going
    assert camera.state()["ptz"]["moving"]
    assert "You are moving" in await desk.locator("[data-ptz-moved-by]").inner_text()
    await desk.mouse.up()
    await _wait(camera, lambda s: not s["moving"], 1.0, "mouse release")
    pan = camera.state()["ptz"]["pan"]
    assert pan > 0.3, pan  # speed "normal" is 0.5 a second, held for ~1 s

    await desk.keyboard.down("ArrowUp")
    await _wait(camera, lambda s: s["moving"], 1.0, "arrow key")
    await asyncio.sleep(0.3)
    await desk.keyboard.up("ArrowUp")
    await _wait(camera, lambda s: not s["moving"], 1.0, "arrow key released")
    assert camera.state()["ptz"]["tilt"] > 0.1

    # a preset saved from the page, listed and gone to
    await desk.fill("[data-ptz-preset-form] input[name=name]", "Crossing")
    await desk.click("[data-ptz-preset-form] button[type=submit]")
    await desk.locator("[data-ptz-goto]", has_text="Crossing").wait_for()
    assert list(camera.state()["ptz"]["presets"].values()) == ["Crossing"]

    # the phone: touch-sized buttons, press-and-hold by touch; the desk sees who moves it
    phone = await _page(browser, base, "phone", camera_id, viewport={"width": 390, "height": 844},
                        is_mobile=True, has_touch=True, device_scale_factor=2)
    left = phone.locator('[data-ptz-move][data-pan="-1"]:not([data-tilt])')
    box = await left.bounding_box()
    assert box is not None and box["width"] >= 48 and box["height"] >= 48, box
    assert box["x"] >= 0 and box["x"] + box["width"] <= 390
    # every PTZ control fits the phone's width (the page's top bar is not ours to check here)
    wide = await phone.evaluate("""() => [...document.querySelectorAll('#ptz, #ptz *')]
        .filter((e) => e.getBoundingClientRect().right > 390)
        .map((e) => e.tagName + '.' + e.className)""")
    assert wide == [], wide
    cdp = await phone.context.new_cdp_session(phone)
    point = {"x": box["x"] + box["width"] / 2, "y": box["y"] + box["height"] / 2}
    before = camera.state()["ptz"]["pan"]
    await cdp.send("Input.dispatchTouchEvent", {"type": "touchStart", "touchPoints": [point]})
    await _wait(camera, lambda s: s["moving"], 1.0, "touch press")
    await desk.locator("[data-ptz-moved-by]", has_text="Moved by phone").wait_for(timeout=2000)
    await asyncio.sleep(0.7)
    assert camera.state()["ptz"]["moving"]
    await cdp.send("Input.dispatchTouchEvent", {"type": "touchEnd", "touchPoints": []})
    await _wait(camera, lambda s: not s["moving"], 1.0, "touch release")
    assert camera.state()["ptz"]["pan"] < before - 0.2

    # click-to-centre: a click right of the middle pans right (RelativeMove)
    # the PTZ pad sits below the picture: scroll back up to the picture, as a person would
    await desk.locator("video.live-video").scroll_into_view_if_needed()
    video = await desk.locator("video.live-video").bounding_box()
    assert video is not None
    before = camera.state()["ptz"]["pan"]
    await desk.mouse.click(video["x"] + video["width"] * 0.9, video["y"] + video["height"] / 2)
    await _wait(camera, lambda s: s["pan"] > before + 0.1, 2.0, "click-to-centre")
    assert [c["op"] for c in camera.state()["ptz"]["calls"]][-1] == "RelativeMove"

    # closing the tab mid-move: the server stops the camera
    await cdp.send("Input.dispatchTouchEvent", {"type": "touchStart", "touchPoints": [point]})
    await _wait(camera, lambda s: s["moving"], 1.0, "touch press before closing")
    started = time.monotonic()
    await phone.close()
    await _wait(camera, lambda s: not s["moving"], 1.0, "stop after the tab closed")
    print(f"stopped {time.monotonic() - started:.3f} s after the tab closed")
    # and again from the desktop window, held with the mouse
    await right.hover()
    await desk.mouse.down()
    await _wait(camera, lambda s: s["moving"], 1.0, "mouse press before closing")
    await desk.context.close()
    await _wait(camera, lambda s: not s["moving"], 1.0, "stop after the desktop tab closed")
