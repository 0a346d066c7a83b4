"""PTZ benchmark: from a button press in the browser to the camera receiving ContinuousMove, and
from the release to the camera receiving Stop; p50/p99 over ``--presses`` presses, as one JSON
object.

A camsim PTZ camera and the whole server (without recording, SQLite in a temporary folder) run in
this process on 127.0.0.1; Chromium opens the live page and the mouse presses and releases the
"right" button of the PTZ pad. The press and release instants are the page's own (its pointer
handlers stamp ``performance.timeOrigin + performance.now()``); the arrivals are camsim's (it
stamps each PTZ call with the wall clock when its SOAP request is handled). Both are the machine's
wall clock. The camera's streams are dropped, so no ffmpeg runs.

    python bench/ptz.py [--presses 100] [--hold-ms 200]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from aiohttp import web
from playwright.async_api import async_playwright

from camsim.camera import VirtualCamera
from vms.app import create_app
from vms.config import load_settings
from vms.db import models as m

CHROMIUM = os.environ.get("VMS_TEST_CHROMIUM", "/usr/bin/chromium")
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]
USER, PASSWORD = "bench", "bench-pass-123"
CAM_PASSWORD = "bench-ptz-cam"


def figures(values_ms: list[float]) -> dict[str, float]:
    ordered = sorted(values_ms)
    if not ordered:
        return {}

    def pct(p: float) -> float:
        return ordered[min(len(ordered) - 1, max(0, round(p / 100 * len(ordered)) - 1))]

    return {"p50": round(statistics.median(ordered), 2), "p99": round(pct(99), 2),
            "max": round(ordered[-1], 2), "min": round(ordered[0], 2)}


async def wait_call(camera: VirtualCamera, op: str, after: int, timeout_s: float = 5.0) -> int:
    """Arrival (wall µs) of the first ``op`` call after index ``after`` of camsim's log."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        calls = camera.state_model.ptz.calls  # type: ignore[union-attr]
        for name, at_us in list(calls)[after:]:
            if name == op:
                return at_us
        await asyncio.sleep(0.002)
    raise TimeoutError(f"camsim received no {op} within {timeout_s} s")


async def run(presses: int, hold_ms: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="vms-bench-ptz-") as tmp:
        settings = load_settings(None, env={}, overrides={
            "data_dir": Path(tmp) / "data", "server.port": 0, "logging.level": "WARNING"})
        app = create_app(settings, start_recorder=False)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        base = f"http://127.0.0.1:{runner.addresses[0][1]}"
        from web.keys import ACCOUNTS, GATEWAY, SERVICES

        async with VirtualCamera(name="bench-ptz", host="127.0.0.1", password=CAM_PASSWORD,
                                 rtsp=False) as camera:
            def seed() -> int:
                site_row = app[ACCOUNTS].create_site("Bench", "UTC")
                app[ACCOUNTS].create_user(USER, PASSWORD, "operator", ["Bench"])
                return int(site_row.id)

            site_id = await app[GATEWAY].write(seed)
            adopted = await app[SERVICES]["onboarding"].adopt(
                None, camera.onvif_url, "admin", CAM_PASSWORD, site_id=site_id)
            cam_id = adopted.camera_id
            await app[GATEWAY].write(lambda: m.CameraStream.delete().where(
                m.CameraStream.camera == cam_id).execute())
            try:
                return await _press(base, cam_id, camera, presses, hold_ms)
            finally:
                await runner.cleanup()


async def _press(base: str, cam_id: int, camera: VirtualCamera, presses: int,
                 hold_ms: int) -> dict[str, Any]:
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        try:
            context = await browser.new_context(base_url=base)
            resp = await context.request.post("/api/v1/auth/login",
                                              data={"username": USER, "password": PASSWORD})
            assert resp.status == 200, await resp.text()
            page = await context.new_page()
            await page.goto(f"/cameras/{cam_id}/live")
            await page.wait_for_function("window.vmsPtz && window.vmsPtz.stats.connected",
                                         timeout=20_000)
            button = page.locator('[data-ptz-move][data-pan="1"]:not([data-tilt])')
            await button.hover()
            to_move: list[float] = []
            to_stop: list[float] = []
            for i in range(presses):
                seen = len(camera.state_model.ptz.calls)  # type: ignore[union-attr]
                await page.mouse.down()
                moved_us = await wait_call(camera, "ContinuousMove", seen)
                await asyncio.sleep(hold_ms / 1000)
                seen = len(camera.state_model.ptz.calls)  # type: ignore[union-attr]
                await page.mouse.up()
                stopped_us = await wait_call(camera, "Stop", seen)
                stats = await page.evaluate("window.vmsPtz.stats")
                to_move.append(moved_us / 1000 - stats["presses"][i])
                to_stop.append(stopped_us / 1000 - stats["releases"][i])
                await asyncio.sleep(0.05)
        finally:
            await browser.close()
    return {
        "presses": presses, "hold_ms": hold_ms,
        "press_to_continuous_move_ms": figures(to_move),
        "release_to_stop_ms": figures(to_stop),
        "target_p99_ms": 150,
        "load_average_1m": round(os.getloadavg()[0], 2), "cpus": os.cpu_count(),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--presses", type=int, default=100, help="presses to time (default 100)")
    parser.add_argument("--hold-ms", type=int, default=200,
                        help="how long each press is held, ms (default 200)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    if not 1 <= args.presses <= 10_000:
        parser.error("--presses: 1 to 10000")
    print(json.dumps(asyncio.run(run(args.presses, args.hold_ms))), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
